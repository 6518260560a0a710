//! `Pool`: real worker processes of this test binary, real SIGKILLs.

mod common;

use common::Name;
use shmproc::{MessageQueue, Pool, ProcessError};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

shmproc::test_support!();

fn square(x: u64) -> u64 {
    x * x
}

fn add((a, b): (u64, u64)) -> u64 {
    a + b
}

fn pid_of(_: u32) -> u32 {
    std::process::id()
}

fn panics_on_5(x: u32) -> u32 {
    assert_ne!(x, 5, "five is not allowed");
    x
}

/// Panics on 5 with a message of 1 MiB, longer than any message of the pool below.
fn panics_at_length_on_5(x: u32) -> u32 {
    if x == 5 {
        panic!("{}", "long ".repeat(200 << 10));
    }
    x
}

/// SIGKILLs its own worker on 3.
fn dies_on_3(x: u32) -> u32 {
    if x == 3 {
        // SAFETY: kill(2) on our own pid.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        std::thread::sleep(Duration::from_secs(60));
    }
    x * 10
}

/// Takes 30 ms; SIGKILLs its own worker on 2.
fn slow_dies_on_2(x: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(30));
    dies_on_3(x + u32::from(x == 2))
}

fn exits_on_2(x: u32) -> u32 {
    if x == 2 {
        std::process::exit(3);
    }
    x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Reports its pid on the queue `name`, then hangs.
fn report_and_hang(name: String) -> u32 {
    let q = MessageQueue::<u32>::open(&name).expect("open");
    q.put(&std::process::id()).expect("put");
    std::thread::sleep(Duration::from_secs(600));
    0
}

fn byte_sum(v: Vec<u8>) -> u64 {
    v.iter().map(|&b| u64::from(b)).sum()
}

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until(bound: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ok()
}

/// An iterator whose size hint says an exact length that is wrong (safe code may do that).
struct Liar(std::ops::Range<u64>, usize);

impl Iterator for Liar {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

#[test]
fn results_come_in_input_order() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let expected: Vec<u64> = (0..200).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..200).expect("map"), expected);
    assert_eq!(pool.chunksize(7).map(square, 0..200).expect("map"), expected);
    assert_eq!(pool.map(square, Vec::new()).expect("map"), Vec::<u64>::new());
    // Inputs that do not know their length, and one that claims a wrong exact length.
    let odd = (0..200).filter(|_| true);
    assert_eq!(pool.map(square, odd.clone()).expect("map"), expected);
    assert_eq!(pool.chunksize(9).map(square, odd).expect("map"), expected);
    for claimed in [0, 3, 10_000] {
        let liar = Liar(0..200, claimed);
        assert_eq!(pool.map(square, liar).expect("map"), expected, "claimed {claimed}");
    }
    let imap: Vec<u64> = pool.imap(square, 0..200).map(Result::unwrap).collect();
    assert_eq!(imap, expected);
    let imap: Vec<u64> = pool.chunksize(16).imap(square, 0..200).map(Result::unwrap).collect();
    assert_eq!(imap, expected);
    let mut unordered: Vec<u64> = pool.imap_unordered(square, 0..200).map(Result::unwrap).collect();
    unordered.sort_unstable();
    assert_eq!(unordered, expected);
    // An endless input: imap takes only what it needs.
    let first: Vec<u64> = pool.imap(square, 0..).take(5).map(Result::unwrap).collect();
    assert_eq!(first, [0, 1, 4, 9, 16]);
    assert_eq!(
        pool.starmap(add, (0..10).map(|i| (i, 100 * i))).expect("starmap"),
        (0..10).map(|i| 101 * i).collect::<Vec<_>>()
    );
    assert_eq!(pool.apply(square, 12).expect("apply"), 144);
    let handles: Vec<_> = (0..10).map(|i| pool.apply_async(square, i)).collect();
    let results: Vec<u64> = handles.iter().map(|h| h.get().expect("get")).collect();
    assert_eq!(results, (0..10).map(|i| i * i).collect::<Vec<_>>());
    assert!(handles.iter().all(|h| h.ready() && h.successful() == Some(true)));
    // `get` may be called again.
    assert_eq!(handles[3].get().expect("again"), 9);
    // Awaited from async code (any executor: the supervisor threads wake the task).
    let later: Vec<_> = (20..30).map(|i| pool.apply_async(square, i)).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let awaited: Vec<u64> = rt.block_on(async {
        let mut v = Vec::new();
        for h in &later {
            v.push(h.get_async().await.expect("get_async"));
        }
        v
    });
    assert_eq!(awaited, (20..30).map(|i| i * i).collect::<Vec<_>>());
    // Work was spread over both workers.
    let pids: BTreeSet<u32> = pool.chunksize(1).map(pid_of, 0..50).expect("map").into_iter().collect();
    assert!(
        pids.iter().all(|p| pool.pids().contains(p)),
        "{pids:?} vs {:?}",
        pool.pids()
    );
    pool.join();
}

#[test]
fn a_panicking_task_fails_alone() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let pids = pool.pids();
    let out: Vec<_> = pool.imap(panics_on_5, 0..10).collect();
    for (i, r) in out.into_iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(v as usize, i),
            Err(ProcessError::Panicked { message, location }) => {
                assert_eq!(i, 5);
                assert!(message.contains("five is not allowed"), "{message}");
                assert!(location.starts_with("tests/pool.rs:"), "{location}");
            }
            Err(e) => panic!("item {i}: {e}"),
        }
    }
    // `map` reports the first error; the workers live on.
    assert!(matches!(
        pool.chunksize(3).map(panics_on_5, 0..10),
        Err(ProcessError::Panicked { .. })
    ));
    let r = pool.apply_async(panics_on_5, 5);
    assert!(matches!(r.get(), Err(ProcessError::Panicked { .. })));
    assert_eq!(r.successful(), Some(false));
    assert_eq!(pool.pids(), pids);
}

#[test]
fn a_worker_killed_mid_task_fails_that_task_only() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let before = pool.pids();
    let out: Vec<_> = pool.imap(dies_on_3, 0..12).collect();
    for (i, r) in out.into_iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(v as usize, 10 * i),
            Err(ProcessError::WorkerDied { pid, signal, .. }) => {
                assert_eq!(i, 3, "only the task that killed its worker fails");
                assert_eq!(signal, Some(libc::SIGKILL));
                assert!(before.contains(&pid), "{pid} was one of {before:?}");
            }
            Err(e) => panic!("item {i}: {e}"),
        }
    }
    // The pool keeps working, with a new worker in the dead one's place.
    assert_eq!(
        pool.map(square, 0..20).expect("map"),
        (0..20).map(|x| x * x).collect::<Vec<_>>()
    );
    assert!(wait_until(Duration::from_secs(30), || pool.pids().len() == 2));
    assert_ne!(pool.pids(), before);
    // A worker that exits in the middle of a task.
    let r = pool.apply_async(exits_on_2, 2);
    match r.get() {
        Err(ProcessError::WorkerDied { signal, code, .. }) => assert_eq!((signal, code), (None, Some(3))),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(pool.apply(exits_on_2, 7).expect("apply"), 7);
}

#[test]
fn a_death_in_a_chunk_costs_only_the_unreported_items() {
    shmproc::init();
    let pool = Pool::new(1).expect("pool");
    // One chunk of 4 slow items: items 0 and 1 are reported (a worker reports at least
    // every 10 ms) before item 2 kills the worker; 2 and 3 never ran to completion.
    let out: Vec<_> = pool.chunksize(4).imap(slow_dies_on_2, 0..4).collect();
    assert_eq!(out[0].as_ref().ok(), Some(&0));
    assert_eq!(out[1].as_ref().ok(), Some(&10));
    for r in &out[2..] {
        assert!(matches!(r, Err(ProcessError::WorkerDied { .. })), "{r:?}");
    }
    assert_eq!(pool.apply(square, 3).expect("apply"), 9);
}

#[test]
fn a_worker_killed_from_outside_fails_its_task_and_the_rest_complete() {
    shmproc::init();
    let name = Name::new("pool");
    let q = MessageQueue::<u32>::create(&name, 4).expect("queue");
    let pool = Pool::builder().processes(2).prefetch(1).build().expect("pool");
    let hung = pool.apply_async(report_and_hang, name.to_string());
    let victim = q.get_timeout(Duration::from_secs(60)).expect("victim pid");
    let others: Vec<_> = (0..6).map(|_| pool.apply_async(sleep_ms, 20)).collect();
    // SAFETY: kill(2) on a worker of our pool, which its slot thread has not reaped.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    match hung.get_timeout(Duration::from_secs(60)) {
        Err(ProcessError::WorkerDied { pid, signal, .. }) => {
            assert_eq!(pid, victim);
            assert_eq!(signal, Some(libc::SIGKILL));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    for o in &others {
        assert_eq!(o.get().expect("other task"), 20);
    }
    pool.join();
}

#[test]
fn terminate_stops_a_busy_pool() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let pids = pool.pids();
    let busy: Vec<_> = (0..5).map(|_| pool.apply_async(sleep_ms, 60_000)).collect();
    assert!(!busy[0].wait_timeout(Duration::from_millis(200)));
    let t0 = Instant::now();
    pool.terminate();
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "terminate took {:?}",
        t0.elapsed()
    );
    for b in &busy {
        assert!(matches!(b.get(), Err(ProcessError::Terminated)));
    }
    for pid in pids {
        assert!(gone(pid), "worker {pid} survived terminate");
    }
    assert!(matches!(pool.apply(square, 2), Err(ProcessError::Terminated)));
}

#[test]
fn close_then_join_finishes_queued_work() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let pids = pool.pids();
    let queued: Vec<_> = (0..8).map(|i| pool.apply_async(sleep_ms, 10 * i)).collect();
    pool.close();
    assert!(matches!(pool.apply(square, 2), Err(ProcessError::PoolClosed)));
    assert!(matches!(pool.map(square, 0..3), Err(ProcessError::PoolClosed)));
    assert!(matches!(
        pool.chunksize(1).map_pod(square, &[1, 2, 3]),
        Err(ProcessError::PoolClosed)
    ));
    pool.join();
    for (i, q) in queued.iter().enumerate() {
        assert!(q.ready());
        assert_eq!(q.get().expect("queued task"), 10 * i as u64);
    }
    for pid in pids {
        assert!(gone(pid), "worker {pid} still runs after join");
    }
}

/// A panic whose message is longer than a message the pool can send is reported as
/// `Panicked` with the message cut to fit, on the serde path and the plain-data one.
#[test]
fn a_panic_message_longer_than_a_message_is_cut_to_fit() {
    shmproc::init();
    let pool = Pool::builder()
        .processes(1)
        .max_message_size(64 << 10)
        .build()
        .expect("pool");
    let pids = pool.pids();
    let check = |r: Result<Vec<u32>, ProcessError>| match r {
        Err(ProcessError::Panicked { message, location }) => {
            assert!(
                message.starts_with("long long"),
                "{}",
                &message[..20.min(message.len())]
            );
            assert!(message.len() < 64 << 10, "{} bytes", message.len());
            assert!(location.starts_with("tests/pool.rs:"), "{location}");
        }
        other => panic!("expected Panicked, got {:?}", other.map(|v| v.len())),
    };
    check(pool.chunksize(1).map(panics_at_length_on_5, 0..10));
    check(pool.map_pod(panics_at_length_on_5, &(0..10).collect::<Vec<u32>>()));
    // The worker that reported it lives on.
    assert_eq!(pool.pids(), pids);
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    shmproc::init();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .expect("pool");
    let pids: Vec<u32> = pool.chunksize(1).map(pid_of, 0..6).expect("map");
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2]);
}

#[test]
fn large_items_and_too_large_items() {
    shmproc::init();
    let pool = Pool::builder()
        .processes(2)
        .max_message_size(256 << 10)
        .build()
        .expect("pool");
    let items: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 64 << 10]).collect();
    let sums = pool.map(byte_sum, items).expect("map");
    assert_eq!(sums, (0..40u64).map(|i| i * (64 << 10)).collect::<Vec<_>>());
    let mixed = vec![vec![1u8; 10], vec![2u8; 300 << 10], vec![3u8; 10]];
    let out: Vec<_> = pool.chunksize(3).imap(byte_sum, mixed).collect();
    assert_eq!(out[0].as_ref().ok(), Some(&10));
    assert!(
        matches!(
            out[1],
            Err(ProcessError::TooLarge {
                what: "the arguments",
                ..
            })
        ),
        "{:?}",
        out[1]
    );
    assert_eq!(out[2].as_ref().ok(), Some(&30));
}

fn kib_of(n: u32) -> Vec<u8> {
    vec![n as u8; n as usize * 1024]
}

#[test]
fn large_results_split_frames_and_too_large_results_fail_alone() {
    shmproc::init();
    let pool = Pool::builder()
        .processes(1)
        .max_message_size(256 << 10)
        .build()
        .expect("pool");
    // One chunk whose results need three frames, with a result too large in the middle.
    let sizes = [100u32, 100, 300, 100, 0, 120, 1];
    let out: Vec<_> = pool.chunksize(sizes.len()).imap(kib_of, sizes).collect();
    for (r, n) in out.iter().zip(sizes) {
        match r {
            Ok(v) => assert_eq!(v.len(), n as usize * 1024),
            Err(ProcessError::TooLarge { what: "the result", .. }) => assert_eq!(n, 300),
            Err(e) => panic!("item {n}: {e:?}"),
        }
    }
    assert!(out[2].is_err());
    assert_eq!(pool.map(kib_of, [2, 3]).expect("map after"), [kib_of(2), kib_of(3)]);
}

#[test]
fn invalid_arguments_are_refused() {
    shmproc::init();
    assert!(matches!(Pool::new(0), Err(ProcessError::InvalidArgument { .. })));
    assert!(matches!(
        Pool::builder().processes(1).prefetch(0).build(),
        Err(ProcessError::InvalidArgument { .. })
    ));
}

/// A reading of plain data: 12 bytes, read from unaligned places in a task frame.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Reading {
    sensor: u32,
    value: f32,
    scale: u32,
}

fn scaled(r: Reading) -> [u16; 3] {
    [r.sensor as u16, (r.value * r.scale as f32) as u16, 7]
}

fn panics_on_5_and_7(x: u32) -> u32 {
    assert!(x != 5 && x != 7, "item {x} is not allowed");
    x
}

fn nothing(_: ()) -> u8 {
    1
}

#[test]
fn map_pod_results_come_in_input_order() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let items: Vec<u64> = (0..100_000).collect();
    let expected: Vec<u64> = items.iter().map(|&x| square(x)).collect();
    assert_eq!(pool.map_pod(square, &items).expect("map_pod"), expected);
    assert_eq!(
        pool.chunksize(7).map_pod(square, &items[..200]).expect("map_pod"),
        expected[..200]
    );
    assert_eq!(
        pool.chunksize(1).map_pod(square, &items[..3]).expect("map_pod"),
        [0, 1, 4]
    );
    assert_eq!(pool.map_pod(square, &[]).expect("empty"), Vec::<u64>::new());
    let readings: Vec<Reading> = (0..1000)
        .map(|i| Reading {
            sensor: i,
            value: 0.5,
            scale: 2 * i,
        })
        .collect();
    let out = pool.map_pod(scaled, &readings).expect("map_pod of a struct");
    assert_eq!(out, readings.iter().map(|&r| scaled(r)).collect::<Vec<_>>());
    // The same results as `map`.
    assert_eq!(pool.map(square, items.iter().copied()).expect("map"), expected);
    // Items of size 0 are refused.
    assert!(matches!(
        pool.map_pod(nothing, &[(); 3]),
        Err(ProcessError::InvalidArgument { .. })
    ));
    pool.join();
    // Small messages: chunks are cut to fit, results come in several frames.
    let pool = Pool::builder()
        .processes(2)
        .max_message_size(1024)
        .build()
        .expect("pool");
    assert_eq!(pool.map_pod(square, &items).expect("map_pod"), expected);
    assert_eq!(
        pool.chunksize(1000).map_pod(square, &items[..5000]).expect("map_pod"),
        expected[..5000]
    );
}

#[test]
fn map_pod_a_panicking_item_fails_alone() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let pids = pool.pids();
    let items: Vec<u32> = (0..1000).collect();
    for chunksize in [1, 3, 1000] {
        match pool.chunksize(chunksize).map_pod(panics_on_5_and_7, &items) {
            Err(ProcessError::Panicked { message, location }) => {
                // The first failure in input order, and the item that panicked.
                assert!(message.contains("item 5 is not allowed"), "{message}");
                assert!(location.starts_with("tests/pool.rs:"), "{location}");
            }
            other => panic!("chunksize {chunksize}: {other:?}"),
        }
    }
    match pool.map_pod(panics_on_5_and_7, &[1, 7, 2, 5]) {
        Err(ProcessError::Panicked { message, .. }) => assert!(message.contains("item 7"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The workers live on.
    let fine: Vec<u32> = items.iter().copied().filter(|&x| x != 5 && x != 7).collect();
    assert_eq!(pool.map_pod(panics_on_5_and_7, &fine).expect("map_pod"), fine);
    assert_eq!(pool.pids(), pids);
}

#[test]
fn map_pod_a_killed_worker_fails_its_items_and_the_pool_goes_on() {
    shmproc::init();
    let pool = Pool::new(2).expect("pool");
    let before = pool.pids();
    let items: Vec<u32> = (0..1000).collect();
    match pool.map_pod(dies_on_3, &items) {
        Err(ProcessError::WorkerDied { pid, signal, .. }) => {
            assert!(before.contains(&pid), "{pid} not in {before:?}");
            assert_eq!(signal, Some(libc::SIGKILL));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    // A new worker took its place; every other chunk completed.
    assert!(wait_until(Duration::from_secs(30), || pool.pids().len() == 2));
    assert_ne!(pool.pids(), before);
    let fine: Vec<u32> = items.iter().copied().filter(|&x| x != 3).collect();
    let expected: Vec<u32> = fine.iter().map(|&x| x * 10).collect();
    assert_eq!(pool.map_pod(dies_on_3, &fine).expect("map_pod"), expected);
    // Slow items, a death in the middle of a chunk; the pool goes on.
    let pool = Pool::new(1).expect("pool");
    match pool.chunksize(4).map_pod(slow_dies_on_2, &[0, 1, 2, 3]) {
        Err(ProcessError::WorkerDied { signal, .. }) => assert_eq!(signal, Some(libc::SIGKILL)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(pool.map_pod(slow_dies_on_2, &[0, 1]).expect("map_pod"), [0, 10]);
    pool.join();
}

#[test]
fn map_pod_respects_max_tasks_per_child() {
    shmproc::init();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .expect("pool");
    let pids: Vec<u32> = pool.chunksize(1).map_pod(pid_of, &[0; 6]).expect("map_pod");
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2]);
}
