//! Comparison benchmark: shmproc against the usual ways of moving data between processes,
//! measured in one run and printed as one table of medians and ratios.
//!
//! `cargo bench -p shmproc-bench --bench compare` runs everything (about a minute);
//! `SHMPROC_BENCH_QUICK=1 cargo bench -p shmproc-bench --bench compare` is a smoke test of a
//! few seconds. The crate's `README.md` lists the options and says what every row means.
//!
//! Every cross-process row uses real processes: this binary re-executes itself
//! (`current_exe()`, `shmproc-testkit`) with a role for the other side(s). The parent
//! creates every segment (so only the parent ever owns a name), starts the children, waits for
//! each one's `READY` line, then removes the names, so nothing is left in /dev/shm even when
//! the run is killed (only the "open by name" rows hold a name for a few microseconds at a
//! time; a later run removes what a killed one left there). A child then obeys `RUN n` lines on
//! its stdin and answers `DONE ...` on its stdout; it dies with the parent
//! (`PR_SET_PDEATHSIG`) and is reaped (killed if need be) when its handle drops. Descriptors
//! for pipes, sockets and the memfd are handed over by `dup2` onto fds 3 and 4 between fork
//! and exec.

use bytemuck::Pod;
use crossbeam_queue::ArrayQueue;
use shmproc::{ByteQueue, GetError, MessageQueue, Options, PutError, Queue, Value};
use shmproc_testkit::{ChildResult, inherited, serve};
use std::ffi::CString;
use std::fs::File;
use std::hint::{black_box, spin_loop};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Queue capacity (items) for every queue in the benchmark, ours and crossbeam's.
const CAPACITY: usize = 1024;
/// Messages per `write_all` / `read_exact` in the batched socket rows.
const BATCH: usize = 64;
/// Stamp of the end-of-stream message in the 2-producer/2-consumer rows.
const SENTINEL: u64 = u64::MAX;
/// Payload sizes in bytes: `u64`, `[u8; 64]`, `[u8; 1024]`, 64 KiB.
const PAYLOADS: [usize; 4] = [8, 64, 1024, 65536];
/// Largest message a pipe writes atomically (so several writers and readers may share it).
const PIPE_BUF: usize = 4096;

/// 64 KiB of bytes. `[u8; 65536]` is `Pod` only with bytemuck's `min_const_generics` feature,
/// which this crate does not enable; 64 arrays of `[u8; 1024]` have the same size, alignment (1)
/// and layout, and are `Pod` without it.
type Kib64 = [[u8; 1024]; 64];

/// Runs `$body` with `$t` bound to the payload type of `$size` bytes.
macro_rules! with_payload {
    ($size:expr, $t:ident => $body:expr) => {
        match $size {
            8 => {
                type $t = u64;
                $body
            }
            64 => {
                type $t = [u8; 64];
                $body
            }
            1024 => {
                type $t = [u8; 1024];
                $body
            }
            65536 => {
                type $t = Kib64;
                $body
            }
            other => panic!("no payload type of {other} bytes"),
        }
    };
}

mod bare;
mod chart;
mod child;
mod latency;
mod lock_open;
mod report;
mod rows;
mod sys;
mod throughput;

use bare::*;
use chart::*;
use child::*;
use latency::*;
use lock_open::*;
use report::*;
use rows::*;
use sys::*;
use throughput::*;

// ---------------------------------------------------------------------------------------------
// Messages: the producer stamps message i with i in its first and last 8 bytes; the consumer
// checks both words and sums the stamps, so a run that loses, repeats or tears a message fails.

fn stamp_bytes(b: &mut [u8], i: u64) {
    let n = b.len();
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[n - 8..].copy_from_slice(&i.to_le_bytes());
}

fn check_bytes(b: &[u8]) -> u64 {
    let word = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let (first, last) = (word(&b[..8]), word(&b[b.len() - 8..]));
    assert_eq!(first, last, "torn message");
    first
}

fn stamped<T: Pod>(template: &mut T, i: u64) -> T {
    stamp_bytes(bytemuck::bytes_of_mut(template), i);
    *template
}

fn check<T: Pod>(m: &T) -> u64 {
    check_bytes(bytemuck::bytes_of(m))
}

/// Sum of the stamps 0..n (wrapping, as the consumers sum).
fn stamps_sum(n: u64) -> u64 {
    (u128::from(n) * u128::from(n.saturating_sub(1)) / 2) as u64
}

// ---------------------------------------------------------------------------------------------
// Configuration

struct Cfg {
    runs: usize,
    quick: bool,
    /// Wall time one measurement aims at.
    target: Duration,
    csv: Option<PathBuf>,
    /// Where to draw the 1P1C throughput chart (SVG).
    svg: Option<PathBuf>,
    /// Rows measured elsewhere (`compare_ext`), in this bench's CSV format, to merge in.
    extra_csv: Option<PathBuf>,
    filters: Vec<String>,
}

/// A path from the environment variable `name`, if set and not empty.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|s| !s.is_empty()).map(PathBuf::from)
}

fn env_flag(name: &str) -> Option<bool> {
    let v = std::env::var(name).ok()?;
    Some(!matches!(v.trim(), "" | "0" | "false" | "no"))
}

impl Cfg {
    /// Arguments as cargo passes them: `--bench` (absent under `cargo test`), libtest flags
    /// (ignored), `--csv PATH`, `--svg PATH`, `--extra-csv PATH` (each also as `--opt=PATH`),
    /// and filters (substrings of a row's label).
    fn parse(args: &[String]) -> Cfg {
        let mut csv = env_path("SHMPROC_BENCH_CSV");
        let mut svg = env_path("SHMPROC_BENCH_SVG");
        let mut extra_csv = env_path("SHMPROC_BENCH_EXTRA_CSV");
        let mut filters = Vec::new();
        let mut bench_mode = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (a.as_str(), None),
            };
            let slot = match flag {
                "--csv" => &mut csv,
                "--svg" => &mut svg,
                "--extra-csv" => &mut extra_csv,
                "--bench" => {
                    bench_mode = true;
                    continue;
                }
                f if f.starts_with('-') => continue,
                f => {
                    filters.push(f.to_owned());
                    continue;
                }
            };
            let path = inline.or_else(|| it.next().cloned());
            *slot = Some(PathBuf::from(path.unwrap_or_else(|| panic!("{flag} needs a path"))));
        }
        // Like criterion: without `--bench` (`cargo test --benches`) run a smoke test.
        let quick = env_flag("SHMPROC_BENCH_QUICK").unwrap_or(!bench_mode);
        let runs = if quick {
            1
        } else {
            std::env::var("SHMPROC_BENCH_RUNS")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(5usize)
                .max(1)
        };
        let target_ms = std::env::var("SHMPROC_BENCH_TARGET_MS")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(200u64)
            .max(1);
        Cfg {
            runs,
            quick,
            target: Duration::from_millis(target_ms),
            csv,
            svg,
            extra_csv,
            filters,
        }
    }

    fn selected(&self, label: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| label.contains(f.as_str()))
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// Nanoseconds per operation over the runs.
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    /// Operations per run.
    count: u64,
}

/// Largest operation count one run may ask for.
const MAX_COUNT: u64 = 1 << 32;

/// Runs `once(n)` (which performs about `n` operations and returns the time they took and the
/// exact number performed): first to calibrate, growing `n` from `start` until a run takes a
/// tenth of the target, then `cfg.runs` times with the count that fills the target.
/// Quick mode: one run of `start / 20`, no calibration.
fn measure(cfg: &Cfg, start: u64, mut once: impl FnMut(u64) -> (Duration, u64)) -> Stats {
    let n = if cfg.quick {
        (start / 20).max(4)
    } else {
        let mut n = start.max(1);
        loop {
            let (d, ops) = timed(&mut once, n);
            if d >= cfg.target / 10 || n >= MAX_COUNT {
                let per_op = d.as_secs_f64() / ops.max(1) as f64;
                let fill = cfg.target.as_secs_f64() / per_op.max(1e-12);
                break (fill as u64).clamp(16, MAX_COUNT);
            }
            n = n.saturating_mul(10).min(MAX_COUNT);
        }
    };
    let mut per_op: Vec<f64> = Vec::with_capacity(cfg.runs);
    let mut count = 0;
    for _ in 0..cfg.runs {
        let (d, ops) = timed(&mut once, n);
        per_op.push(d.as_nanos() as f64 / ops.max(1) as f64);
        count = ops;
    }
    per_op.sort_by(f64::total_cmp);
    let mid = per_op.len() / 2;
    let median = if per_op.len() % 2 == 1 {
        per_op[mid]
    } else {
        (per_op[mid - 1] + per_op[mid]) / 2.0
    };
    Stats {
        median,
        min: per_op[0],
        max: per_op[per_op.len() - 1],
        count,
    }
}

/// One call of `once` under the watchdog.
fn timed(once: &mut impl FnMut(u64) -> (Duration, u64), n: u64) -> (Duration, u64) {
    watchdog_arm();
    let r = once(n);
    watchdog_disarm();
    r
}

/// Milliseconds since `epoch()` after which the watchdog aborts the run (0: disarmed).
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
/// How long one timed call may take before the run is declared hung.
const HANG: Duration = Duration::from_secs(120);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

fn watchdog_arm() {
    DEADLINE_MS.store(now_ms() + HANG.as_millis() as u64, Ordering::Relaxed);
}

fn watchdog_disarm() {
    DEADLINE_MS.store(0, Ordering::Relaxed);
}

/// A hung measurement (a bug, or a child stuck) ends the process instead of hanging CI. Names
/// were removed as soon as the children opened them, and the children die with us
/// (`PR_SET_PDEATHSIG`), so exiting leaves nothing behind.
fn start_watchdog() {
    epoch();
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let d = DEADLINE_MS.load(Ordering::Relaxed);
            if d != 0 && now_ms() > d {
                eprintln!("compare: a measurement ran for over {} s; giving up", HANG.as_secs());
                std::process::exit(3);
            }
        }
    });
}

fn main() {
    if let Some((role, args)) = shmproc_testkit::role() {
        if let Err(e) = child_main(&role, &args) {
            eprintln!("compare child {role}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = Cfg::parse(&args);
    remove_stale_names();
    // Before placement narrows this process's affinity (which `nproc` reports).
    let machine = machine_line();
    pin_self(0);
    start_watchdog();
    let mode = if cfg.quick { "quick (smoke test)" } else { "full" };
    eprintln!("shmproc compare: {mode}, {} run(s) per row", cfg.runs);
    let distance_start = distance_line("at start");
    eprintln!("{distance_start}");
    let extra = extra_rows(&cfg);
    let mut b = Bench { cfg, rows: Vec::new() };
    let t0 = Instant::now();
    run_all(&mut b);
    merge_rows(&mut b, extra);
    println!();
    println!("shmproc compare ({mode})");
    println!("{machine}");
    println!("{}", placement_line());
    println!("{distance_start}");
    println!("{}", distance_line("at end"));
    println!("load average at end {}", load_average());
    println!(
        "each row: median of {} run(s) of ~{} ms (min and max beside it); queue capacity {CAPACITY}; \
         shmproc/this > 1 means shmproc is faster; total {:.1} s",
        b.cfg.runs,
        b.cfg.target.as_millis(),
        t0.elapsed().as_secs_f64()
    );
    println!();
    print_table(&b);
    print_targets(&b);
    if let Some(path) = &b.cfg.csv {
        match write_csv(&b, path) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    if let Some(path) = &b.cfg.svg {
        let Some(svg) = chart_svg(&b, &machine) else {
            eprintln!("no 1P1C row was measured: no chart written to {}", path.display());
            std::process::exit(1);
        };
        match std::fs::write(path, svg) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
}

/// The `--extra-csv` rows, read before measuring so that a bad file fails at once.
fn extra_rows(cfg: &Cfg) -> Vec<Row> {
    let Some(path) = &cfg.extra_csv else { return Vec::new() };
    match read_extra_rows(path) {
        Ok(rows) => {
            eprintln!(
                "{} row(s) from {} will be merged into the table",
                rows.len(),
                path.display()
            );
            rows
        }
        Err(e) => {
            eprintln!("--extra-csv {e}");
            std::process::exit(1);
        }
    }
}
