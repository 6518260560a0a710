//! The chart: 1P1C throughput against message size, as plain SVG (`--svg`).

use super::*;

// ---------------------------------------------------------------------------------------------
// The chart: 1P1C throughput against message size, one line per transport, as plain SVG.

/// Line colours, in the order the series first appear (shmproc's rows come first).
pub(crate) const PALETTE: [&str; 14] = [
    "#1f77b4", "#6baed6", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f", "#e377c2", "#bcbd22",
    "#17becf", "#393b79", "#ad494a", "#637939",
];

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `10^d` MB/s as an axis label.
pub(crate) fn fmt_decade(d: i32) -> String {
    let units = ["MB/s", "GB/s", "TB/s"];
    let (k, r) = (d.div_euclid(3), d.rem_euclid(3));
    match units.get(k.max(0) as usize) {
        Some(u) if k >= 0 => format!("{} {u}", 10u32.pow(r as u32)),
        _ => format!("{} MB/s", 10f64.powi(d)),
    }
}

/// One line of the chart: a transport's (payload, MB/s) points.
pub(crate) struct Series {
    pub(crate) case: &'static str,
    pub(crate) per: Per,
    pub(crate) points: Vec<(usize, f64)>,
}

/// The chart as an SVG document, or `None` when no 1P1C row was measured.
pub(crate) fn chart_svg(b: &Bench, machine: &str) -> Option<String> {
    use std::fmt::Write as _;
    let mut series: Vec<Series> = Vec::new();
    for r in b
        .rows
        .iter()
        .filter(|r| r.group == G_1P1C && r.payload > 0 && ![BARE_CB16, BARE_CB64].contains(&r.case))
    {
        let point = (r.payload, r.mb_per_s());
        match series.iter_mut().find(|s| s.case == r.case) {
            Some(s) => s.points.push(point),
            None => series.push(Series {
                case: r.case,
                per: r.per,
                points: vec![point],
            }),
        }
    }
    if series.is_empty() {
        return None;
    }
    let all = || series.iter().flat_map(|s| s.points.iter().map(|&(_, v)| v));
    let (lo, hi) = (all().fold(f64::MAX, f64::min), all().fold(0.0, f64::max));
    let y0 = lo.log10().floor() as i32;
    let y1 = (hi.log10().ceil() as i32).max(y0 + 1);
    let (width, height) = (1040.0, 600.0);
    let (left, right, top, bottom) = (90.0, 700.0, 80.0, 540.0);
    let (lx0, lx1) = (
        (PAYLOADS[0] as f64).log2(),
        (PAYLOADS[PAYLOADS.len() - 1] as f64).log2(),
    );
    let x = |p: usize| left + 30.0 + ((p as f64).log2() - lx0) / (lx1 - lx0) * (right - left - 60.0);
    let y = |v: f64| bottom - (v.log10() - f64::from(y0)) / f64::from(y1 - y0) * (bottom - top);

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{left}" y="28" font-size="17" font-weight="bold">Throughput between 1 producer and 1 consumer, by message size (log scales)</text>"#
    );
    let _ = writeln!(
        o,
        r##"<text x="{left}" y="48" fill="#444">{}</text>"##,
        xml_escape(machine)
    );
    let how = if b.cfg.quick {
        "quick smoke run (tiny counts, 1 run): not a measurement".to_owned()
    } else {
        format!(
            "median of {} run(s) of ~{} ms per point",
            b.cfg.runs,
            b.cfg.target.as_millis()
        )
    };
    let _ = writeln!(
        o,
        r##"<text x="{left}" y="64" fill="#444">{how}; MB/s = 10^6 bytes of payload per second; cargo bench --bench compare</text>"##
    );
    // Grid: decades (labelled) and 2x, 5x (faint); one vertical line per payload size.
    for d in y0..=y1 {
        let v = 10f64.powi(d);
        let yy = y(v);
        let _ = writeln!(
            o,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{right}" y2="{yy:.1}" stroke="#bbb"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 6.0,
            yy + 4.0,
            fmt_decade(d)
        );
        if d < y1 {
            for m in [2.0, 5.0] {
                let yy = y(v * m);
                let _ = writeln!(
                    o,
                    r##"<line x1="{left}" y1="{yy:.1}" x2="{right}" y2="{yy:.1}" stroke="#eee"/>"##
                );
            }
        }
    }
    for p in PAYLOADS {
        let xx = x(p);
        let _ = writeln!(
            o,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{bottom}" stroke="#ddd"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 18.0,
            fmt_payload(p)
        );
    }
    let _ = writeln!(
        o,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        right - left,
        bottom - top
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">message size</text>"#,
        (left + right) / 2.0,
        bottom + 40.0
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate(24 {:.1}) rotate(-90)" text-anchor="middle">throughput (MB/s)</text>"#,
        (top + bottom) / 2.0
    );
    // Series, then the legend.
    for (i, Series { case, per, points: pts }) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let ours = case.starts_with("shmproc");
        let stroke = if ours { 3.0 } else { 1.6 };
        let dash = if i >= PALETTE.len() {
            r#" stroke-dasharray="6 3""#
        } else {
            ""
        };
        if pts.len() > 1 {
            let path: Vec<String> = pts.iter().map(|&(p, v)| format!("{:.1},{:.1}", x(p), y(v))).collect();
            let _ = writeln!(
                o,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="{stroke}"{dash}/>"#,
                path.join(" ")
            );
        }
        for &(p, v) in pts {
            let tip = format!(
                "{case}, {}: {v:.0} MB/s, {} msgs/s",
                fmt_payload(p),
                fmt_rate(v * 1e6 / p as f64)
            );
            let shape = if *per == Per::Copy {
                format!(
                    r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{colour}">"#,
                    x(p) - 4.5,
                    y(v) - 4.5
                )
            } else {
                format!(r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}">"#, x(p), y(v))
            };
            let end = if *per == Per::Copy { "</rect>" } else { "</circle>" };
            let _ = writeln!(o, "{shape}<title>{}</title>{end}", xml_escape(&tip));
        }
        let ly = top + 8.0 + 20.0 * i as f64;
        let lx = right + 18.0;
        let weight = if ours { r#" font-weight="bold""# } else { "" };
        let key = if *per == Per::Copy {
            format!(
                r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{colour}"/>"#,
                lx + 7.5,
                ly - 4.5
            )
        } else {
            format!(
                r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{colour}" stroke-width="{stroke}"{dash}/>"#,
                lx + 24.0
            )
        };
        let _ = writeln!(
            o,
            r#"{key}<text x="{:.1}" y="{:.1}"{weight}>{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            xml_escape(case)
        );
    }
    o.push_str("</svg>\n");
    Some(o)
}
