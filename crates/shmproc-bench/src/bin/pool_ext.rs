//! shmproc's `Pool::map` and `Process` against procspawn's `Pool` and `spawn`, with rayon
//! in-process as the ceiling, all in one run (issue 8; the Python rows are in this crate's
//! `benches/pool.rs`).
//!
//! `cargo run --release -p shmproc-bench --features ext --bin pool_ext` prints, for the
//! same number of workers (`SHMPROC_BENCH_WORKERS`, default: the number of CPUs), the median of
//! 5 runs (1 with `SHMPROC_BENCH_QUICK=1`), each after one warm-up run, of:
//! - a map of a trivial function over 100 000 `u64`s (ns per item);
//! - a map of a byte sum over 1 000 `Vec<u8>`s of 64 KiB (ns per item), and over the same
//!   bytes as a byte string (`Bytes` below: `serialize_bytes`, what `serde_bytes` does);
//! - spawn-to-result latency: start a process, run a trivial function in it, join (one process
//!   at a time).
//!
//! What each column does:
//! - shmproc: `Pool::map(f, items)` and `Process::spawn(f, x).join()`, as `benches/pool.rs`.
//! - procspawn 1.0: it has no map; one `Pool::spawn(x, f)` per item and `join` on its handle,
//!   in order, at most `WINDOW` items in flight (each queued item holds ipc-channel sockets,
//!   so submitting all 100 000 first would run out of file descriptors). Latency:
//!   `procspawn::spawn(x, f).join()`.
//! - rayon: `par_iter().map(f).collect()` in a rayon pool of the same number of threads, with
//!   the 64 KiB inputs cloned as the process pools' inputs are (in-process ceiling).

use rayon::prelude::*;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// procspawn items in flight at most (see the module comment).
const WINDOW: usize = 256;

fn trivial(x: u64) -> u64 {
    x.wrapping_mul(2654435761) ^ 7
}

fn sum64k(v: Vec<u8>) -> u64 {
    v.iter().map(|&b| u64::from(b)).sum()
}

/// Bytes that serde encodes as one byte string (`serialize_bytes`, as `serde_bytes` does), where
/// a `Vec<u8>` is a sequence of separately encoded `u8`s; the same type as in `benches/pool.rs`.
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
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
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
    std::hint::black_box(f()); // warm-up
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

/// procspawn's pool as a map: one task per item, results in order, `WINDOW` in flight.
fn procspawn_map<A, R>(pool: &procspawn::Pool, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Vec<R>
where
    A: serde::Serialize + serde::de::DeserializeOwned,
    R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let mut out = Vec::new();
    let mut inflight = VecDeque::with_capacity(WINDOW);
    for x in items {
        if inflight.len() == WINDOW {
            let h: procspawn::JoinHandle<R> = inflight.pop_front().expect("in flight");
            out.push(h.join().expect("procspawn join"));
        }
        inflight.push_back(pool.spawn(x, f));
    }
    for h in inflight {
        out.push(h.join().expect("procspawn join"));
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Both crates re-execute this binary for their children; each recognizes its own (shmproc
    // by its arguments, procspawn by an environment variable) and never returns there.
    shmproc::init();
    procspawn::init();

    let quick = std::env::var_os("SHMPROC_BENCH_QUICK").is_some();
    let reps = if quick { 1 } else { 5 };
    let workers = match std::env::var("SHMPROC_BENCH_WORKERS") {
        Ok(s) => s.parse()?,
        Err(_) => std::thread::available_parallelism().map_or(2, usize::from),
    };
    let items: Vec<u64> = (0..100_000).collect();
    let big: Vec<Vec<u8>> = (0..1000).map(|i| vec![(i % 256) as u8; 64 << 10]).collect();
    let want_trivial: Vec<u64> = items.iter().map(|&x| trivial(x)).collect();
    let want_64k: Vec<u64> = big.iter().map(|v| sum64k(v.clone())).collect();
    eprintln!("workers: {workers}, median of {reps} runs (after one warm-up run each)");

    // shmproc
    let pool = shmproc::Pool::new(workers)?;
    assert_eq!(pool.map(trivial, items.iter().copied())?, want_trivial);
    assert_eq!(pool.map(sum64k, big.iter().cloned())?, want_64k);
    let shm_trivial = time(reps, || pool.map(trivial, items.iter().copied()).expect("map"));
    eprintln!("shmproc map trivial: {shm_trivial:?}");
    let shm_64k = time(reps, || pool.map(sum64k, big.iter().cloned()).expect("map"));
    eprintln!("shmproc map 64 KiB: {shm_64k:?}");
    let as_bytes = || big.iter().map(|v| Bytes(v.clone()));
    assert_eq!(pool.map(sum64k_bytes, as_bytes())?, want_64k);
    let shm_64k_bytes = time(reps, || pool.map(sum64k_bytes, as_bytes()).expect("map"));
    eprintln!("shmproc map 64 KiB as bytes: {shm_64k_bytes:?}");
    pool.join();
    drop(pool);
    let shm_spawn = time(reps * 2, || {
        shmproc::Process::spawn(trivial, 1)
            .expect("spawn")
            .join()
            .expect("join")
    });
    eprintln!("shmproc spawn: {shm_spawn:?}");

    // procspawn
    let ppool = procspawn::Pool::new(workers)?;
    assert_eq!(procspawn_map(&ppool, trivial, items.iter().copied()), want_trivial);
    assert_eq!(procspawn_map(&ppool, sum64k, big.iter().cloned()), want_64k);
    let ps_trivial = time(reps, || procspawn_map(&ppool, trivial, items.iter().copied()));
    eprintln!("procspawn map trivial: {ps_trivial:?}");
    let ps_64k = time(reps, || procspawn_map(&ppool, sum64k, big.iter().cloned()));
    eprintln!("procspawn map 64 KiB: {ps_64k:?}");
    assert_eq!(procspawn_map(&ppool, sum64k_bytes, as_bytes()), want_64k);
    let ps_64k_bytes = time(reps, || procspawn_map(&ppool, sum64k_bytes, as_bytes()));
    eprintln!("procspawn map 64 KiB as bytes: {ps_64k_bytes:?}");
    ppool.shutdown();
    drop(ppool);
    let ps_spawn = time(reps * 2, || {
        procspawn::spawn(1u64, trivial).join().expect("procspawn join")
    });
    eprintln!("procspawn spawn: {ps_spawn:?}");

    // rayon, in process
    let rpool = rayon::ThreadPoolBuilder::new().num_threads(workers).build()?;
    let ry_trivial = rpool.install(|| {
        assert_eq!(items.par_iter().map(|&x| trivial(x)).collect::<Vec<_>>(), want_trivial);
        time(reps, || items.par_iter().map(|&x| trivial(x)).collect::<Vec<_>>())
    });
    let ry_64k = rpool.install(|| time(reps, || big.par_iter().map(|v| sum64k(v.clone())).collect::<Vec<_>>()));

    let fmt = |d: Duration, per: usize| {
        if per > 1 {
            let ns = d.as_nanos() as f64 / per as f64;
            if ns < 100.0 {
                format!("{ns:.1} ns/item")
            } else {
                format!("{ns:.0} ns/item")
            }
        } else {
            format!("{:.2} ms", d.as_secs_f64() * 1e3)
        }
    };
    let ratio = |d: Duration, ours: Duration| {
        let r = d.as_secs_f64() / ours.as_secs_f64();
        if r < 1.0 {
            format!("{r:.2}x")
        } else {
            format!("{r:.1}x")
        }
    };
    println!();
    println!("workers: {workers}, median of {reps} runs");
    println!(
        "| {:<38} | {:>14} | {:>14} | {:>14} | {:>17} | {:>13} |",
        "measure", "shmproc", "procspawn", "rayon", "procspawn/shmproc", "rayon/shmproc"
    );
    println!(
        "|{:-<40}|{:->15}:|{:->15}:|{:->15}:|{:->18}:|{:->14}:|",
        "", "", "", "", "", ""
    );
    let row = |name: &str, per: usize, ours: Duration, ps: Duration, ry: Option<Duration>| {
        println!(
            "| {:<38} | {:>14} | {:>14} | {:>14} | {:>17} | {:>13} |",
            name,
            fmt(ours, per),
            fmt(ps, per),
            ry.map_or("-".to_owned(), |d| fmt(d, per)),
            ratio(ps, ours),
            ry.map_or("-".to_owned(), |d| ratio(d, ours)),
        );
    };
    row(
        "map, 100 000 trivial items",
        items.len(),
        shm_trivial,
        ps_trivial,
        Some(ry_trivial),
    );
    row("map, 1 000 items of 64 KiB", big.len(), shm_64k, ps_64k, Some(ry_64k));
    row(
        "map, 1 000 items of 64 KiB as bytes",
        big.len(),
        shm_64k_bytes,
        ps_64k_bytes,
        Some(ry_64k),
    );
    row("Process spawn -> result", 1, shm_spawn, ps_spawn, None);
    Ok(())
}
