//! The synchronisation primitives against Python's `multiprocessing`, in one run.
//!
//! `cargo bench --bench sync` prints, per operation, this crate's time, Python's (the same
//! program with `multiprocessing`, through `python3 -c`, if `python3` exists) and the ratio:
//! - `Lock`, `RLock` and `Semaphore(1)`: an uncontended acquire and release in one process;
//! - `Event`: a round trip between two processes (A sets event 1 and waits for event 2; B
//!   waits for 1, clears it, sets 2), which sleeps and wakes on both sides;
//! - `Barrier(2)`: one wait in each of two processes.
//!
//! The comparisons with `std::sync::Mutex` and the bare futex floors are rows of the
//! `compare` bench (`lock+incr+unlock, 1 user`, `wake-up, 2 processes`).
//! `SHMPROC_BENCH_QUICK=1` runs fewer repetitions.

use shmproc::{Barrier, Event, Lock, RLock, Semaphore};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
def median(v): v = sorted(v); return v[len(v) // 2]
def ping(e1, e2, n):
    for _ in range(n): e1.wait(); e1.clear(); e2.set()
def meet(b, n):
    for _ in range(n): b.wait()
def main():
    n, trips, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for name, prim in (("lock", mp.Lock()), ("rlock", mp.RLock()), ("semaphore", mp.Semaphore(1))):
        t = []
        for _ in range(reps):
            s = time.perf_counter()
            for _ in range(n): prim.acquire(); prim.release()
            t.append((time.perf_counter() - s) / n)
        print(name, median(t))
    ctx = mp.get_context("fork")
    e1, e2 = ctx.Event(), ctx.Event()
    p = ctx.Process(target=ping, args=(e1, e2, trips * reps)); p.start()
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        for _ in range(trips): e1.set(); e2.wait(); e2.clear()
        t.append((time.perf_counter() - s) / trips)
    p.join(); print("event", median(t))
    b = ctx.Barrier(2)
    p = ctx.Process(target=meet, args=(b, trips * reps)); p.start()
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        for _ in range(trips): b.wait()
        t.append((time.perf_counter() - s) / trips)
    p.join(); print("barrier", median(t))
if __name__ == "__main__":
    main()
"#;

/// Python's seconds per operation by name, if python3 runs.
fn python(n: usize, trips: usize, reps: usize) -> Option<Vec<(String, f64)>> {
    let out = Command::new("python3")
        .args(["-c", PYTHON, &n.to_string(), &trips.to_string(), &reps.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per call of `op`, the median of `reps` runs of `n` calls.
fn per_op(n: usize, reps: usize, mut op: impl FnMut()) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    op();
                }
                t.elapsed().as_secs_f64() / n as f64
            })
            .collect(),
    )
}

/// The other side of the two-process measures: this binary again, with a role.
fn partner(role: &str, names: &[&str], count: usize) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .env("SHMPROC_SYNC_BENCH_ROLE", role)
        .args(names)
        .arg(count.to_string())
        .stdout(Stdio::null())
        .spawn()
}

fn child(role: &str) -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.last().ok_or("no count")?.parse()?;
    match role {
        "event" => {
            let (e1, e2) = (Event::open(&args[0])?, Event::open(&args[1])?);
            for _ in 0..count {
                e1.wait();
                e1.clear();
                e2.set();
            }
        }
        "barrier" => {
            let b = Barrier::open(&args[0])?;
            for _ in 0..count {
                b.wait()?;
            }
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(role) = std::env::var("SHMPROC_SYNC_BENCH_ROLE") {
        return child(&role);
    }
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // a test runner asking for the list of benchmarks
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) this is a smoke
    // test: short runs, no Python.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let quick = smoke || std::env::var_os("SHMPROC_BENCH_QUICK").is_some();
    let (n, trips, reps) = if smoke {
        (1_000, 10, 1)
    } else if quick {
        (100_000, 1_000, 3)
    } else {
        (1_000_000, 5_000, 7)
    };
    let tag = std::process::id();
    let name = |what: &str| format!("bs-{what}-{tag}");

    let mut ours: Vec<(&str, f64)> = Vec::new();
    let lock = Lock::create(&name("lock"))?;
    ours.push((
        "lock",
        per_op(n, reps, || {
            drop(lock.lock().map_err(|e| e.without_guard()).expect("lock"))
        }),
    ));
    let rlock = RLock::create(&name("rlock"))?;
    ours.push((
        "rlock",
        per_op(n, reps, || {
            drop(rlock.lock().map_err(|e| e.without_guard()).expect("rlock"))
        }),
    ));
    let sem = Semaphore::create(&name("sem"), 1)?;
    ours.push(("semaphore", per_op(n, reps, || drop(sem.acquire()))));

    let (n1, n2) = (name("e1"), name("e2"));
    let (e1, e2) = (Event::create(&n1)?, Event::create(&n2)?);
    let mut kid = partner("event", &[&n1, &n2], trips * reps)?;
    ours.push((
        "event",
        per_op(trips, reps, || {
            e1.set();
            e2.wait();
            e2.clear();
        }),
    ));
    kid.wait()?;
    let nb = name("barrier");
    let b = Barrier::create(&nb, 2)?;
    let mut kid = partner("barrier", &[&nb], trips * reps)?;
    ours.push((
        "barrier",
        per_op(trips, reps, || {
            b.wait().expect("barrier");
        }),
    ));
    kid.wait()?;

    let py = if smoke { None } else { python(n / 10, trips, reps) };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!("sync primitives against Python's multiprocessing ({cpu})");
    println!(
        "{:<44} {:>12} {:>14} {:>8}",
        "operation", "shmproc", "Python mp", "ratio"
    );
    let what = |k: &str| match k {
        "lock" => "Lock acquire+release, 1 process",
        "rlock" => "RLock acquire+release, 1 process",
        "semaphore" => "Semaphore(1) acquire+release, 1 process",
        "event" => "Event round trip, 2 processes",
        _ => "Barrier(2) wait, 2 processes",
    };
    for (k, s) in &ours {
        let p = py
            .as_ref()
            .and_then(|py| py.iter().find(|(n, _)| n == k).map(|(_, v)| *v));
        let (ps, ratio) = match p {
            Some(p) => (format!("{:.0} ns", p * 1e9), format!("{:.1}x", p / s)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!("{:<44} {:>9.1} ns {:>14} {:>8}", what(k), s * 1e9, ps, ratio);
    }
    Ok(())
}
