//! The table and the CSV (written with `--csv`, read back with `--extra-csv`).

use super::*;

// ---------------------------------------------------------------------------------------------
// The table

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Per {
    Msg,
    Copy,
    RoundTrip,
    Op,
    Open,
}

impl Per {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Per::Msg => "msg",
            Per::Copy => "copy",
            Per::RoundTrip => "round trip",
            Per::Op => "op",
            Per::Open => "open",
        }
    }

    pub(crate) fn is_transfer(self) -> bool {
        matches!(self, Per::Msg | Per::Copy)
    }
}

pub(crate) struct Row {
    pub(crate) group: &'static str,
    pub(crate) case: &'static str,
    pub(crate) payload: usize,
    pub(crate) per: Per,
    /// The shmproc row (same group and payload) this one is compared with.
    pub(crate) vs: Option<&'static str>,
    pub(crate) stats: Stats,
    /// The cores' distance measured right after the row (`line_round_trip_ns`), if placement
    /// was on and the row was measured in this run.
    pub(crate) distance_ns: Option<f64>,
}

impl Row {
    pub(crate) fn rate(&self) -> f64 {
        1e9 / self.stats.median
    }
    pub(crate) fn mb_per_s(&self) -> f64 {
        self.rate() * self.payload as f64 / 1e6
    }
}

pub(crate) struct Bench {
    pub(crate) cfg: Cfg,
    pub(crate) rows: Vec<Row>,
}

impl Bench {
    pub(crate) fn row(
        &mut self,
        (group, case, payload): (&'static str, &'static str, usize),
        per: Per,
        vs: Option<&'static str>,
        f: impl FnOnce(&Cfg) -> Stats,
    ) {
        let label = format!("{group} | {case} | {}", fmt_payload(payload));
        if !self.cfg.selected(&label) {
            return;
        }
        NEXT_KID_SLOT.store(1, Ordering::Relaxed);
        eprint!("  {label} ... ");
        let stats = f(&self.cfg);
        // The cores' distance right after the row, so that a row measured while the host had
        // moved the vCPUs apart (or together) shows it.
        let distance_ns = (!places().is_empty()).then(line_round_trip_ns);
        let distance = distance_ns.map_or(String::new(), |d| format!(", core distance {d:.0} ns"));
        eprintln!(
            "{} per {} ({} per run{distance})",
            fmt_ns(stats.median),
            per.label(),
            stats.count
        );
        self.rows.push(Row {
            group,
            case,
            payload,
            per,
            vs,
            stats,
            distance_ns,
        });
    }

    pub(crate) fn find(&self, group: &str, case: &str, payload: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.group == group && r.case == case && r.payload == payload)
    }

    /// `shmproc speed / this row's speed` (> 1: shmproc is faster).
    pub(crate) fn ratio(&self, row: &Row) -> Option<f64> {
        let reference = self.find(row.group, row.vs?, row.payload)?;
        Some(row.stats.median / reference.stats.median)
    }
}

pub(crate) fn fmt_payload(p: usize) -> String {
    match p {
        0 => "-".into(),
        p if p >= 1024 && p % 1024 == 0 => format!("{} KiB", p / 1024),
        p => format!("{p} B"),
    }
}

pub(crate) fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

pub(crate) fn fmt_rate(r: f64) -> String {
    if r >= 1e9 {
        format!("{:.2} G", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub(crate) fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

pub(crate) fn machine_line() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = shmproc_testkit::cpu_model();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: nproc {nproc}, {cpu}, Linux {}, load average at start {}",
        kernel.trim(),
        load_average()
    )
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every row.
pub(crate) fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

pub(crate) fn print_table(b: &Bench) {
    let header = [
        "group",
        "case",
        "payload",
        "per",
        "median",
        "min",
        "max",
        "msgs/s",
        "MB/s",
        "shmproc/this",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in &b.rows {
        let transfer = r.per.is_transfer();
        lines.push(vec![
            r.group.into(),
            r.case.into(),
            fmt_payload(r.payload),
            r.per.label().into(),
            fmt_ns(r.stats.median),
            fmt_ns(r.stats.min),
            fmt_ns(r.stats.max),
            if transfer { fmt_rate(r.rate()) } else { String::new() },
            if transfer {
                format!("{:.0}", r.mb_per_s())
            } else {
                String::new()
            },
            match (r.vs, b.ratio(r)) {
                (None, _) => String::new(),
                (Some(_), Some(x)) => fmt_ratio(x),
                (Some(_), None) => "-".into(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
        .collect();
    let numeric = |c: usize| c >= 4;
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if numeric(c) {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
        if i == 0 {
            println!(
                "{}",
                widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
            );
        }
    }
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The CSV columns, written by `--csv` and read back by `--extra-csv`.
pub(crate) const CSV_HEADER: &str = "group,case,payload_bytes,per,median_ns,min_ns,max_ns,msgs_per_s,mb_per_s,compared_with,shmproc_over_this,ops_per_run,runs";

pub(crate) fn write_csv(b: &Bench, path: &PathBuf) -> io::Result<()> {
    let mut out = format!("{CSV_HEADER}\n");
    for r in &b.rows {
        let transfer = r.per.is_transfer();
        let fields = [
            csv_field(r.group),
            csv_field(r.case),
            r.payload.to_string(),
            r.per.label().into(),
            format!("{:.2}", r.stats.median),
            format!("{:.2}", r.stats.min),
            format!("{:.2}", r.stats.max),
            if transfer {
                format!("{:.0}", r.rate())
            } else {
                String::new()
            },
            if transfer {
                format!("{:.1}", r.mb_per_s())
            } else {
                String::new()
            },
            csv_field(r.vs.unwrap_or("")),
            b.ratio(r).map_or(String::new(), |x| format!("{x:.3}")),
            r.stats.count.to_string(),
            b.cfg.runs.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    std::fs::write(path, out)
}

/// Splits one CSV line as `csv_field` writes them (fields with `,` or `"` quoted, `""` inside).
pub(crate) fn csv_split(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

pub(crate) fn parse_per(s: &str) -> Option<Per> {
    [Per::Msg, Per::Copy, Per::RoundTrip, Per::Op, Per::Open]
        .into_iter()
        .find(|p| p.label() == s)
}

/// Rows measured by another program (`compare_ext`) and written in this bench's CSV format.
/// Their names are leaked: they live as long as the run.
pub(crate) fn read_extra_rows(path: &PathBuf) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return Err(format!(
            "{}: the first line is not the header {CSV_HEADER:?}",
            path.display()
        ));
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: &str| format!("{} line {}: {what}", path.display(), i + 2);
        let f = csv_split(line);
        if f.len() != CSV_HEADER.split(',').count() {
            return Err(bad("wrong number of fields"));
        }
        let num = |k: usize| {
            f[k].parse::<f64>()
                .map_err(|_| bad(&format!("field {k} is not a number")))
        };
        rows.push(Row {
            group: leak(&f[0]),
            case: leak(&f[1]),
            payload: f[2].parse().map_err(|_| bad("payload_bytes"))?,
            per: parse_per(&f[3]).ok_or_else(|| bad("per"))?,
            vs: (!f[9].is_empty()).then(|| leak(&f[9])),
            stats: Stats {
                median: num(4)?,
                min: num(5)?,
                max: num(6)?,
                count: f[11].parse().map_err(|_| bad("ops_per_run"))?,
            },
            distance_ns: None,
        });
    }
    Ok(rows)
}

/// Puts each extra row after the last row of its group and payload (else of its group, else
/// at the end), so that it is printed beside what it is compared with.
pub(crate) fn merge_rows(b: &mut Bench, extra: Vec<Row>) {
    for row in extra {
        let label = format!("{} | {} | {}", row.group, row.case, fmt_payload(row.payload));
        if !b.cfg.selected(&label) {
            continue;
        }
        let last = |same: &dyn Fn(&Row) -> bool| b.rows.iter().rposition(same);
        let at = last(&|r| r.group == row.group && r.payload == row.payload)
            .or_else(|| last(&|r| r.group == row.group))
            .map_or(b.rows.len(), |i| i + 1);
        b.rows.insert(at, row);
    }
}
