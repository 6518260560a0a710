//! `Pool::map` and `Process` against Python's `multiprocessing`, in one run.
//!
//! `cargo bench --bench pool` prints, for the same number of workers:
//! - `Pool::map` of a trivial function over 100 000 items (per-item cost), and
//!   `Pool::map_pod` of the same (items and results as raw bytes, no encoding);
//! - `Pool::map` over 1 000 items of 64 KiB each (bytes through the pipes), as `Vec<u8>`
//!   (which serde encodes byte by byte) and as a byte string (`serialize_bytes`, what
//!   `serde_bytes` does);
//! - spawn-to-result latency of `Process` (spawn, run a trivial function, join);
//! - the same three with Python's `multiprocessing` (`python3 -c`, if `python3` exists),
//!   and the ratios;
//! - in-process threads (`std::thread::scope`) on the same work, as the ceiling.
//!
//! `SHMPROC_BENCH_QUICK=1` runs fewer repetitions; `SHMPROC_BENCH_PROFILE=trivial` (or
//! `pod`, `vec`, or `bytes`) runs only that map, many times (`SHMPROC_BENCH_REPS`, default 50), for `perf record`
//! or callgrind. Workers: `SHMPROC_BENCH_WORKERS`
//! (default: the number of CPUs).

use shmproc::{Pool, Process};
use std::process::Command;
use std::time::{Duration, Instant};

fn trivial(x: u64) -> u64 {
    x.wrapping_mul(2654435761) ^ 7
}

fn sum64k(v: Vec<u8>) -> u64 {
    v.iter().map(|&b| u64::from(b)).sum()
}

/// Bytes that serde encodes as one byte string (as `serde_bytes::ByteBuf` does), where a
/// `Vec<u8>` is a sequence of separately encoded `u8`s.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl serde::Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
        }
        d.deserialize_bytes(V)
    }
}

fn sum64k_bytes(v: Bytes) -> u64 {
    sum64k(v.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> Duration {
    let _ = f(); // warm-up
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn threads_map<A: Sync, R: Send>(items: &[A], workers: usize, f: fn(&A) -> R) -> Vec<R> {
    let chunk = items.len().div_ceil(workers).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("thread")).collect()
    })
}

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
def trivial(x): return (x * 2654435761) ^ 7
def sum64k(b): return sum(b)
def nothing(_): return 0
def median(v): v = sorted(v); return v[len(v) // 2]
def main():
    workers, reps = int(sys.argv[1]), int(sys.argv[2])
    with mp.Pool(workers) as pool:
        items = list(range(100000))
        pool.map(trivial, items)
        t = []
        for _ in range(reps):
            s = time.perf_counter(); pool.map(trivial, items); t.append(time.perf_counter() - s)
        print("map_trivial", median(t))
        big = [bytes([i % 256]) * 65536 for i in range(1000)]
        pool.map(sum64k, big)
        t = []
        for _ in range(reps):
            s = time.perf_counter(); pool.map(sum64k, big); t.append(time.perf_counter() - s)
        print("map_64k", median(t))
    for method in ("fork", "spawn"):
        ctx = mp.get_context(method)
        t = []
        for _ in range(reps * 2 if method == "fork" else reps):
            s = time.perf_counter()
            p = ctx.Process(target=nothing, args=(0,)); p.start(); p.join()
            t.append(time.perf_counter() - s)
        print("process_" + method, median(t))
if __name__ == "__main__":
    main()
"#;

/// Python's timings in seconds by name, if python3 runs.
fn python(workers: usize, reps: usize) -> Option<Vec<(String, f64)>> {
    let out = Command::new("python3")
        .args(["-c", PYTHON, &workers.to_string(), &reps.to_string()])
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // a test runner asking for the list of benchmarks
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) this is a smoke
    // test: one run of each measure, no Python.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let quick = smoke || std::env::var_os("SHMPROC_BENCH_QUICK").is_some();
    let reps = if smoke {
        1
    } else if quick {
        3
    } else {
        9
    };
    let workers = match std::env::var("SHMPROC_BENCH_WORKERS") {
        Ok(s) => s.parse()?,
        Err(_) => std::thread::available_parallelism().map_or(2, usize::from),
    };
    println!("cpu: {}", shmproc_testkit::cpu_model());
    println!("workers: {workers}, median of {reps} runs");

    let pool = Pool::new(workers)?;
    let items: Vec<u64> = (0..100_000).collect();
    // Built lazily, so that a profile of the trivial map does not include it.
    let big =
        std::cell::LazyCell::new(|| -> Vec<Vec<u8>> { (0..1000).map(|i| vec![(i % 256) as u8; 64 << 10]).collect() });
    // One measure, many times: for `perf record`.
    let profile_reps = match std::env::var("SHMPROC_BENCH_REPS") {
        Ok(s) => s.parse()?,
        Err(_) => 50,
    };
    match std::env::var("SHMPROC_BENCH_PROFILE").as_deref() {
        Ok("trivial") => {
            let t = time(profile_reps, || pool.map(trivial, items.iter().copied()).expect("map"));
            println!("map of 100 000 trivial items: {:.0} ns/item", t.as_nanos() as f64 / 1e5);
            pool.join(); // workers exit normally, so that a profiler sees them out
            return Ok(());
        }
        Ok("pod") => {
            let t = time(profile_reps, || pool.map_pod(trivial, &items).expect("map_pod"));
            println!(
                "map_pod of 100 000 trivial items: {:.1} ns/item",
                t.as_nanos() as f64 / 1e5
            );
            pool.join();
            return Ok(());
        }
        Ok("vec") => {
            let t = time(profile_reps.div_ceil(2), || {
                pool.map(sum64k, big.iter().cloned()).expect("map")
            });
            println!(
                "map of 1 000 x 64 KiB Vec<u8>: {:.0} ns/item",
                t.as_nanos() as f64 / 1e3
            );
            pool.join();
            return Ok(());
        }
        Ok("bytes") => {
            let t = time(profile_reps.div_ceil(2), || {
                pool.map(sum64k_bytes, big.iter().map(|v| Bytes(v.clone())))
                    .expect("map")
            });
            println!("map of 1 000 x 64 KiB: {:.0} ns/item", t.as_nanos() as f64 / 1e3);
            pool.join();
            return Ok(());
        }
        _ => {}
    }
    let map_trivial = time(reps, || pool.map(trivial, items.iter().copied()).expect("map"));
    let map_pod_trivial = time(reps, || pool.map_pod(trivial, &items).expect("map_pod"));
    let map_64k = time(reps, || pool.map(sum64k, big.iter().cloned()).expect("map"));
    let map_64k_bytes = time(reps, || {
        pool.map(sum64k_bytes, big.iter().map(|v| Bytes(v.clone())))
            .expect("map")
    });
    pool.join();
    let process = time(reps * 2, || {
        Process::spawn(trivial, 1).expect("spawn").join().expect("join")
    });

    let threads_trivial = time(reps, || threads_map(&items, workers, |&x| trivial(x)));
    let threads_64k = time(reps, || threads_map(&big, workers, |v| sum64k(v.clone())));

    let py = if smoke { None } else { python(workers, reps) };
    let py_get = |k: &str| {
        py.as_ref()?
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| Duration::from_secs_f64(*v))
    };

    println!();
    println!(
        "| {:<44} | {:>12} | {:>12} | {:>14} | {:>12} |",
        "measure", "shmproc", "threads", "python3", "python/ours"
    );
    println!("|{:-<46}|{:->14}|{:->14}|{:->16}|{:->14}|", "", "", "", "", "");
    let row = |name: &str, ours: Duration, per: usize, threads: Option<Duration>, py: Option<Duration>| {
        let fmt = |d: Duration| {
            if per > 1 {
                let ns = d.as_nanos() as f64 / per as f64;
                if ns < 20.0 {
                    format!("{ns:.1} ns/item")
                } else {
                    format!("{ns:.0} ns/item")
                }
            } else {
                format!("{:.2} ms", d.as_secs_f64() * 1e3)
            }
        };
        println!(
            "| {:<44} | {:>12} | {:>12} | {:>14} | {:>12} |",
            name,
            fmt(ours),
            threads.map_or("-".to_owned(), fmt),
            py.map_or("n/a".to_owned(), fmt),
            py.map_or("n/a".to_owned(), |p| format!(
                "{:.1}x",
                p.as_secs_f64() / ours.as_secs_f64()
            )),
        );
    };
    row(
        "Pool::map, 100 000 trivial items",
        map_trivial,
        items.len(),
        Some(threads_trivial),
        py_get("map_trivial"),
    );
    row(
        "Pool::map_pod, the same 100 000 u64 items",
        map_pod_trivial,
        items.len(),
        Some(threads_trivial),
        py_get("map_trivial"),
    );
    row(
        "Pool::map, 1 000 items of 64 KiB",
        map_64k,
        big.len(),
        Some(threads_64k),
        py_get("map_64k"),
    );
    row(
        "Pool::map, 1 000 items of 64 KiB as bytes",
        map_64k_bytes,
        big.len(),
        Some(threads_64k),
        py_get("map_64k"),
    );
    row(
        "Process spawn -> result (python: fork)",
        process,
        1,
        None,
        py_get("process_fork"),
    );
    row(
        "Process spawn -> result (python: spawn)",
        process,
        1,
        None,
        py_get("process_spawn"),
    );
    Ok(())
}
