//! Cross-process behaviour of `Queue<T>`: real processes, real shared memory.
//! Crash tests (processes killed at fault points) are in `queue_crash.rs`.

mod common;

use common::{LONG, Name, child_main, say, spawn};
use shmproc::{GetError, OpenError, Options, PutError, Queue, TaskError, Value};
use std::time::{Duration, Instant};

fn tag(producer: u64, seq: u64) -> u64 {
    (producer << 32) | seq
}

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        "producer" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let id: u64 = args[1].parse().unwrap();
            let n: u64 = args[2].parse().unwrap();
            for seq in 0..n {
                q.put(tag(id, seq)).unwrap();
            }
            say("DONE");
        }
        "consumer" => {
            // Checks per-producer order itself; reports count, sum and sum of squares per
            // producer so the parent can check exactly-once delivery.
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let producers: usize = args[1].parse().unwrap();
            let mut last = vec![None::<u64>; producers];
            let mut stats = vec![(0u64, 0u64, 0u128); producers];
            loop {
                match q.get() {
                    Ok(v) => {
                        let (p, s) = ((v >> 32) as usize, v & 0xFFFF_FFFF);
                        assert!(p < producers, "item from unknown producer: {v:#x}");
                        if let Some(prev) = last[p] {
                            assert!(s > prev, "producer {p}: {s} after {prev}");
                        }
                        last[p] = Some(s);
                        let st = &mut stats[p];
                        st.0 += 1;
                        st.1 += s;
                        st.2 += u128::from(s) * u128::from(s);
                    }
                    Err(GetError::Closed) => break,
                    Err(e) => panic!("get: {e}"),
                }
            }
            for (p, (c, s, s2)) in stats.iter().enumerate() {
                say(format!("STATS {p} {c} {s} {s2}"));
            }
            say("DONE");
        }
        "block_get" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            say("BLOCKING");
            say(format!("GOT {:?}", q.get()));
        }
        "block_put" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            say("BLOCKING");
            match q.put(99) {
                Err(PutError::Closed(v)) => say(format!("CLOSED {v}")),
                other => say(format!("OTHER {other:?}")),
            }
        }
        "worker_done" => {
            // Takes items, counts them in a Value, then marks them done, slowly.
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let done = Value::<u64>::open(&args[1]).unwrap();
            say("READY");
            while let Ok(_v) = q.get() {
                std::thread::sleep(Duration::from_millis(2));
                *done.lock().unwrap() += 1;
                q.task_done().unwrap();
            }
        }
        "timeouts" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let t = Instant::now();
            assert_eq!(q.get_timeout(Duration::from_millis(50)), Err(GetError::Timeout));
            assert!(t.elapsed() >= Duration::from_millis(50));
            say("DONE");
        }
        "cell_kinds" => {
            let (name, n): (&str, u64) = (&args[0], args[1].parse().unwrap());
            each_cell_kind!(|T| {
                let q = Queue::<T>::open(&format!("{name}-{}-{}", size_of::<T>(), align_of::<T>())).unwrap();
                for seq in 0..n {
                    q.put(patterned::<T>(seq)).unwrap();
                }
            });
            say("DONE");
        }
        _ => panic!("unknown role {role}"),
    });
}

/// Items of a 256-byte alignment, larger than the 128-byte cell granule.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(256))]
struct Align256([u8; 256]);

/// Items of a 64-byte alignment, which puts them a line after their slot word.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Align64([u8; 64]);

/// Runs `$body` once for each item type, with `$t` naming it: one of each kind of cell
/// (inline, 128-byte cells with the item beside or after the slot word, wider cells, large
/// alignments) and the sizes at each boundary.
macro_rules! each_cell_kind {
    (|$t:ident| $body:block) => {
        each_cell_kind!(@each $t $body; [u8; 56], [u8; 57], [u8; 64], [u8; 65], [u8; 120], [u8; 121], [u8; 1024], Align64, Align256)
    };
    (@each $t:ident $body:block; $($ty:ty),*) => {{
        $({
            type $t = $ty;
            $body
        })*
    }};
}
use each_cell_kind;

/// An item whose every byte depends on `seq` and its position.
fn patterned<T: bytemuck::Pod>(seq: u64) -> T {
    let mut v = T::zeroed();
    for (i, b) in bytemuck::bytes_of_mut(&mut v).iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i * 7) as u8;
    }
    v
}

#[test]
fn every_kind_of_cell_carries_whole_items_between_processes() {
    // A capacity of 3 and 200 items: dozens of laps, so every cell is rewritten while the
    // other side reads its neighbours.
    let name = Name::new("cells");
    let base: &str = &name;
    let n = 200u64;
    let mut queues = Vec::new();
    each_cell_kind!(|T| {
        queues.push(
            Queue::<T>::create(&format!("{base}-{}-{}", size_of::<T>(), align_of::<T>()), 3)
                .unwrap()
                .into_bytes_checker(),
        );
    });
    let mut kid = spawn("cell_kinds", &[&name, &n.to_string()]);
    for check in &queues {
        check(n);
    }
    kid.expect_line("DONE", LONG);
    kid.wait_ok(LONG);
}

/// A queue handle that checks `n` patterned items arrive whole and in order.
trait BytesChecker {
    fn into_bytes_checker(self) -> Box<dyn Fn(u64)>;
}

impl<T: bytemuck::Pod> BytesChecker for Queue<T> {
    fn into_bytes_checker(self) -> Box<dyn Fn(u64)> {
        Box::new(move |n| {
            for seq in 0..n {
                let got = self.get_timeout(LONG).unwrap();
                let want = patterned::<T>(seq);
                assert!(
                    bytemuck::bytes_of(&got) == bytemuck::bytes_of(&want),
                    "{}-byte item {seq} arrived changed",
                    size_of::<T>()
                );
            }
        })
    }
}

fn run_mpmc(producers: u64, consumers: usize, per_producer: u64, capacity: usize) {
    let name = Name::new("mpmc");
    let q = Queue::<u64>::create(&name, capacity).unwrap();
    let (np, n_s) = (producers.to_string(), per_producer.to_string());
    let mut cons: Vec<_> = (0..consumers).map(|_| spawn("consumer", &[&name, &np])).collect();
    let mut prods: Vec<_> = (0..producers)
        .map(|p| spawn("producer", &[&name, &p.to_string(), &n_s]))
        .collect();
    for p in &mut prods {
        p.expect_line("DONE", LONG);
        p.wait_ok(LONG);
    }
    q.close();
    let mut totals = vec![(0u64, 0u64, 0u128); producers as usize];
    for c in &mut cons {
        for _ in 0..producers {
            let line = c.expect_line("STATS", LONG);
            let f: Vec<&str> = line.split_whitespace().collect();
            let p: usize = f[0].parse().unwrap();
            totals[p].0 += f[1].parse::<u64>().unwrap();
            totals[p].1 += f[2].parse::<u64>().unwrap();
            totals[p].2 += f[3].parse::<u128>().unwrap();
        }
        c.expect_line("DONE", LONG);
        c.wait_ok(LONG);
    }
    let n = per_producer;
    let sum = n * (n - 1) / 2;
    let sum2: u128 = (0..u128::from(n)).map(|s| s * s).sum();
    for (p, t) in totals.iter().enumerate() {
        assert_eq!(*t, (n, sum, sum2), "producer {p}: every message exactly once");
    }
    assert!(q.is_empty());
    assert_eq!(q.len(), 0);
}

#[test]
fn two_producers_two_consumers_a_million_messages() {
    run_mpmc(2, 2, 500_000, 1024);
}

#[test]
fn tiny_capacity_many_processes() {
    run_mpmc(3, 3, 20_000, 2);
    run_mpmc(2, 1, 20_000, 1);
}

#[test]
fn close_wakes_blocked_consumers_in_other_processes() {
    let name = Name::new("cwake");
    let q = Queue::<u64>::create(&name, 4).unwrap();
    let mut kids: Vec<_> = (0..2).map(|_| spawn("block_get", &[&name])).collect();
    for k in &mut kids {
        k.expect_line("BLOCKING", LONG);
    }
    q.close();
    for k in &mut kids {
        assert_eq!(k.expect_line("GOT", LONG), "Err(Closed)");
        k.wait_ok(LONG);
    }
}

#[test]
fn close_wakes_blocked_producers_and_hands_the_item_back() {
    let name = Name::new("pwake");
    let q = Queue::<u64>::create(&name, 2).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(q.is_full());
    let mut k = spawn("block_put", &[&name]);
    k.expect_line("BLOCKING", LONG);
    q.close();
    assert_eq!(k.expect_line("CLOSED", LONG), "99");
    k.wait_ok(LONG);
    // Items put before the close are still delivered, then Closed.
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.get(), Ok(2));
    assert_eq!(q.get(), Err(GetError::Closed));
    assert!(matches!(q.try_put(3), Err(PutError::Closed(3))));
}

#[test]
fn a_put_in_another_process_wakes_a_blocked_get() {
    let name = Name::new("gwake");
    let q = Queue::<u64>::create(&name, 4).unwrap();
    let mut k = spawn("block_get", &[&name]);
    k.expect_line("BLOCKING", LONG);
    q.put(42).unwrap();
    assert_eq!(k.expect_line("GOT", LONG), "Ok(42)");
}

#[test]
fn try_and_timeout_variants() {
    let name = Name::new("try");
    let q = Queue::<u64>::create(&name, 2).unwrap();
    assert_eq!(q.capacity(), 2);
    assert_eq!(q.try_get(), Err(GetError::Empty));
    q.try_put(1).unwrap();
    q.try_put(2).unwrap();
    assert!(matches!(q.try_put(3), Err(PutError::Full(3))));
    assert!(matches!(
        q.put_timeout(4, Duration::from_millis(20)),
        Err(PutError::Timeout(4))
    ));
    assert!(q.is_full());
    assert_eq!(q.len(), 2);
    assert_eq!(q.try_get(), Ok(1));
    assert_eq!(q.get_timeout(Duration::from_millis(20)), Ok(2));
    assert_eq!(q.get_timeout(Duration::from_millis(20)), Err(GetError::Timeout));
    let mut k = spawn("timeouts", &[&name]);
    k.expect_line("DONE", LONG);
    k.wait_ok(LONG);
}

#[test]
fn join_returns_only_after_the_last_task_done() {
    let name = Name::new("join");
    let done_name = Name::new("jdone");
    let q = Queue::<u64>::create(&name, 8).unwrap();
    let done = Value::<u64>::create(&done_name, 0).unwrap();
    let mut kids: Vec<_> = (0..2).map(|_| spawn("worker_done", &[&name, &done_name])).collect();
    for k in &mut kids {
        k.expect_line("READY", LONG);
    }
    let n = 100;
    for i in 0..n {
        q.put(i).unwrap();
    }
    q.join().unwrap();
    // Every item was counted before its task_done: join saw them all done.
    assert_eq!(done.load().unwrap(), n);
    q.close();
    for k in &mut kids {
        k.wait_ok(LONG);
    }
}

#[test]
fn task_done_without_items_is_an_error_and_join_timeout_times_out() {
    let name = Name::new("tdone");
    let q = Queue::<u64>::create(&name, 4).unwrap();
    assert_eq!(q.task_done(), Err(TaskError::TooManyTaskDone));
    q.join_timeout(Duration::from_millis(10)).unwrap(); // nothing was ever put
    q.put(1).unwrap();
    assert_eq!(q.join_timeout(Duration::from_millis(20)), Err(TaskError::Timeout));
    q.get().unwrap();
    assert_eq!(q.join_timeout(Duration::from_millis(20)), Err(TaskError::Timeout));
    q.task_done().unwrap();
    q.join().unwrap();
    assert_eq!(q.task_done(), Err(TaskError::TooManyTaskDone));
}

#[test]
fn wrong_type_kind_and_capacity_are_typed_errors() {
    let name = Name::new("qbad");
    let _q = Queue::<u64>::create(&name, 4).unwrap();
    assert!(matches!(
        Queue::<u32>::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(matches!(
        Queue::<[u8; 8]>::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(matches!(
        Value::<u64>::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(matches!(
        Queue::<u64>::create(&name, 4),
        Err(OpenError::AlreadyExists { .. })
    ));
    let other = Name::new("qcap");
    assert!(matches!(
        Queue::<u64>::create(&other, 0),
        Err(OpenError::InvalidSize { .. })
    ));
    assert!(matches!(
        Queue::<u64>::create(&other, usize::MAX),
        Err(OpenError::InvalidSize { .. })
    ));
    assert!(matches!(
        Queue::<[u64; 512]>::create(&other, 1 << 32),
        Err(OpenError::InvalidSize { .. })
    ));
    assert!(matches!(
        Queue::<()>::create(&other, 4),
        Err(OpenError::InvalidSize { .. })
    ));
    let q2 = Queue::<u64>::open_or_create(&name, 99).unwrap();
    assert_eq!(q2.capacity(), 4, "an existing queue keeps its capacity");
    let _ = Options::new();
}

/// Garbage written straight into the ring (head, tail, slot words): every call returns
/// within its timeout with a value or a documented error, never a panic or a hang.
#[test]
fn scribbled_ring_words_never_hang_or_panic() {
    use std::io::{Seek, SeekFrom, Write};
    let name = Name::new("scrib");
    let q = Queue::<u64>::create(&name, 4).unwrap();
    let path = format!(
        "/dev/shm{}{}",
        shmproc::OS_PREFIX.trim_end_matches('.'),
        format_args!(".{}", &*name)
    );
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let body = 256 + 64 * 32; // header + default participant table (64 records)
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // head/tail (body + 0, + 64), closed (+128), slot words (+384..+416)
        let off = match round % 5 {
            0 => body,
            1 => body + 64,
            2 => body + 128,
            _ => body + 384 + (x as usize % 4) * 8,
        };
        let val = match round % 3 {
            0 => x,
            1 => u64::MAX,
            _ => x & 0xFFFF_FFFF,
        };
        f.seek(SeekFrom::Start(off as u64)).unwrap();
        f.write_all(&val.to_le_bytes()).unwrap();
        let t = Instant::now();
        let _ = q.try_put(round);
        let _ = q.try_get();
        let _ = q.put_timeout(round, Duration::from_millis(5));
        let _ = q.get_timeout(Duration::from_millis(5));
        let _ = (q.len(), q.is_empty(), q.is_full());
        let _ = q.join_timeout(Duration::from_millis(5));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "round {round}: calls took {:?}",
            t.elapsed()
        );
    }
}

/// Threads of one process sharing one handle: runs the real mapping and the payload copies
/// under ThreadSanitizer in CI (`.ci/san.sh`); processes are invisible to it.
#[test]
fn threads_share_one_handle() {
    use std::sync::Arc;
    let (name, vname) = (Name::new("thr"), Name::new("thrv"));
    let q = Arc::new(Queue::<[u64; 8]>::create(&name, 16).unwrap());
    let v = Arc::new(Value::<[u64; 4]>::create(&vname, [0; 4]).unwrap());
    let n = 20_000u64;
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    q.put([p << 32 | i; 8]).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, v) = (q.clone(), v.clone());
            std::thread::spawn(move || {
                let mut got = 0u64;
                while let Ok(item) = q.get() {
                    assert!(item.iter().all(|w| *w == item[0]), "torn item {item:?}");
                    got += 1;
                    if got % 64 == 0 {
                        let mut g = v.lock().unwrap();
                        let x = g[0] + 1;
                        *g = [x; 4];
                    }
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, 2 * n);
    let last = v.load().unwrap();
    assert!(last.iter().all(|w| *w == last[0]));
}
