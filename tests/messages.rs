//! Cross-process behaviour of the message queues (`ByteQueue`, `MessageQueue<T>`) and of
//! `Pipe`/`Connection`: real processes, real shared memory, real SIGKILLs.

mod common;

use common::{LONG, Name, child_main, say, spawn, spawn_env, wait_parent};
use serde::{Deserialize, Serialize};
use shmproc::{ByteQueue, Connection, MessageQueue, OpenError, Options, Pipe, RecvError, SendError};
use std::time::{Duration, Instant};

/// Largest message of the stress test.
const MAX: usize = 1024;

/// Length and first byte of message `seq` of `producer`: lengths spread over 9..=MAX
/// (9 bytes carry the tag), contents that a consumer can recompute.
fn shape(producer: u8, seq: u64) -> (usize, u8) {
    let mut x = (u64::from(producer) << 40) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (9 + (x as usize) % (MAX - 8), (x >> 24) as u8)
}

fn fill(buf: &mut Vec<u8>, producer: u8, seq: u64) {
    let (len, first) = shape(producer, seq);
    buf.clear();
    buf.push(producer);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend((0..len - 9).map(|i| first.wrapping_add(i as u8)));
}

/// Checks a received message is intact and returns its (producer, seq).
fn verify(msg: &[u8]) -> (u8, u64) {
    assert!(msg.len() >= 9, "message of {} bytes is too short", msg.len());
    let producer = msg[0];
    let seq = u64::from_le_bytes(msg[1..9].try_into().unwrap());
    let (len, first) = shape(producer, seq);
    assert_eq!(msg.len(), len, "producer {producer} seq {seq}: wrong length");
    for (i, &b) in msg[9..].iter().enumerate() {
        assert_eq!(
            b,
            first.wrapping_add(i as u8),
            "producer {producer} seq {seq}: byte {i} differs"
        );
    }
    (producer, seq)
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Kind {
    Book,
    Gadget { watts: u32 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u64,
    product: String,
    tags: Vec<String>,
    kind: Kind,
    price: Option<f64>,
}

fn order(i: u64) -> Order {
    Order {
        id: i,
        product: format!("product {i} \u{e9}\u{1F980}"),
        tags: (0..i % 4).map(|t| format!("tag{t}")).collect(),
        kind: if i % 2 == 0 {
            Kind::Book
        } else {
            Kind::Gadget { watts: i as u32 }
        },
        price: (i % 3 != 0).then_some(i as f64 * 1.5),
    }
}

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        "bytes_producer" => {
            let q = ByteQueue::open(&args[0]).unwrap();
            let id: u8 = args[1].parse().unwrap();
            let n: u64 = args[2].parse().unwrap();
            let mut buf = Vec::with_capacity(MAX);
            for seq in 0..n {
                fill(&mut buf, id, seq);
                q.put(&buf).unwrap();
            }
            say("DONE");
        }
        "bytes_consumer" => {
            let q = ByteQueue::open(&args[0]).unwrap();
            let mut last: [Option<u64>; 4] = [None; 4];
            let mut count = [0u64; 4];
            let mut sum = [0u64; 4];
            let mut buf = Vec::new();
            loop {
                match q.get_into(&mut buf) {
                    Ok(()) => {
                        let (p, seq) = verify(&buf);
                        let p = p as usize;
                        if let Some(prev) = last[p] {
                            assert!(seq > prev, "producer {p}: {seq} after {prev}");
                        }
                        last[p] = Some(seq);
                        count[p] += 1;
                        sum[p] += seq;
                    }
                    Err(RecvError::Closed) => break,
                    Err(e) => panic!("get: {e}"),
                }
            }
            for p in 0..4 {
                say(format!("STATS {p} {} {}", count[p], sum[p]));
            }
        }
        "order_sender" => {
            let q = MessageQueue::<Order>::open(&args[0]).unwrap();
            for i in 0..100 {
                q.put(&order(i)).unwrap();
            }
            // Raw bytes that are not an `Order`, then one more good value.
            q.as_bytes().put(&[0xff, 0xff, 0xff, 0xff]).unwrap();
            q.put(&order(100)).unwrap();
            say("DONE");
        }
        "killed_mid_write" => {
            // Stops forever at the fault point with half of its first message written.
            let q = ByteQueue::open(&args[0]).unwrap();
            let mut buf = Vec::new();
            fill(&mut buf, 3, 0);
            q.put(&buf).unwrap();
            unreachable!("the fault point stops this process");
        }
        "pipe_echo" => {
            let c = Connection::open(&args[0]).unwrap();
            loop {
                match c.recv::<Order>() {
                    Ok(o) => c.send(&o).unwrap(),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
            say("DISCONNECTED");
        }
        "pipe_send_then_hang" => {
            let c = Connection::open(&args[0]).unwrap();
            for i in 0..3u64 {
                c.send(&i).unwrap();
            }
            say("SENT");
            wait_parent();
            std::thread::sleep(Duration::from_secs(3600));
        }
        "pipe_block_recv" => {
            let c = Connection::open(&args[0]).unwrap();
            say("RECEIVING");
            say(format!("GOT {:?}", c.recv::<u64>()));
        }
        _ => panic!("unknown role {role}"),
    });
}

#[test]
fn two_producers_two_consumers_exchange_200k_messages_of_random_lengths() {
    let name = Name::new("mpmc");
    let opts = Options::new().max_message_size(MAX);
    let q = ByteQueue::create_with(&name, 128, &opts).unwrap();
    let per: u64 = 100_000;
    let mut consumers: Vec<_> = (0..2).map(|_| spawn("bytes_consumer", &[&name])).collect();
    let mut producers: Vec<_> = (0..2u8)
        .map(|p| spawn("bytes_producer", &[&name, &p.to_string(), &per.to_string()]))
        .collect();
    for p in &mut producers {
        p.expect_line("DONE", LONG);
        p.wait_ok(LONG);
    }
    q.close();
    let mut total = [(0u64, 0u64); 2];
    for c in &mut consumers {
        for _ in 0..4 {
            let line = c.expect_line("STATS", LONG);
            let v: Vec<u64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
            if let Some(t) = total.get_mut(v[0] as usize) {
                t.0 += v[1];
                t.1 += v[2];
            } else {
                assert_eq!(v[1], 0, "messages from an unknown producer");
            }
        }
        c.wait_ok(LONG);
    }
    for (p, &(count, sum)) in total.iter().enumerate() {
        assert_eq!(count, per, "producer {p}: every message exactly once");
        assert_eq!(sum, per * (per - 1) / 2, "producer {p}: every message exactly once");
    }
    assert!(q.is_empty());
}

#[test]
fn lengths_from_zero_to_the_maximum_and_one_past_it() {
    let name = Name::new("lens");
    let q = ByteQueue::create_with(&name, 4, &Options::new().max_message_size(100)).unwrap();
    let mut buf = Vec::new();
    for len in [0usize, 1, 7, 8, 9, 63, 64, 99, 100] {
        let msg: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
        q.put(&msg).unwrap();
        q.get_into(&mut buf).unwrap();
        assert_eq!(buf, msg);
    }
    let big = vec![1u8; 101];
    assert_eq!(q.put(&big), Err(SendError::TooLarge { size: 101, max: 100 }));
    assert_eq!(
        q.put_with(101, |_| panic!("must not run")),
        Err(SendError::TooLarge { size: 101, max: 100 })
    );
    assert!(q.is_empty(), "a refused message leaves nothing behind");
    q.put(b"next").unwrap();
    assert_eq!(q.get().unwrap(), b"next");
}

#[test]
fn typed_messages_cross_processes_and_a_bad_one_does_not_stop_the_stream() {
    let name = Name::new("typed");
    let q = MessageQueue::<Order>::create(&name, 16).unwrap();
    let mut sender = spawn("order_sender", &[&name]);
    for i in 0..100 {
        assert_eq!(q.get_timeout(LONG).unwrap(), order(i));
    }
    match q.get_timeout(LONG) {
        Err(RecvError::Decode { type_name, len, .. }) => {
            assert!(type_name.ends_with("Order"), "{type_name}");
            assert_eq!(len, 4);
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert_eq!(q.get_timeout(LONG).unwrap(), order(100));
    sender.expect_line("DONE", LONG);
    sender.wait_ok(LONG);
}

#[test]
fn opening_with_another_type_or_kind_is_incompatible() {
    let name = Name::new("types");
    let _q = MessageQueue::<String>::create(&name, 4).unwrap();
    assert!(matches!(
        MessageQueue::<u64>::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(matches!(
        ByteQueue::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(matches!(
        Connection::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(matches!(
        shmproc::Queue::<u64>::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    let again = MessageQueue::<String>::open(&name).unwrap();
    assert_eq!(again.max_message_size(), shmproc::DEFAULT_MAX_MESSAGE_SIZE);
    let err = match MessageQueue::<u64>::open(&name) {
        Err(e) => e.to_string(),
        Ok(_) => unreachable!(),
    };
    assert!(err.contains("String"), "the error names the stored type: {err}");
}

#[test]
fn sizes_that_overflow_or_do_not_fit_in_dev_shm_are_refused() {
    let name = Name::new("huge");
    for (cap, max) in [
        (0, 16),
        (4, shmproc::MAX_MESSAGE_SIZE + 1),
        (shmproc::MAX_CAPACITY, shmproc::MAX_MESSAGE_SIZE),
        (1 << 20, 1 << 20),
    ] {
        let r = ByteQueue::create_with(&name, cap, &Options::new().max_message_size(max));
        match r {
            Err(OpenError::InvalidSize { what }) => println!("{cap} x {max}: {what}"),
            other => panic!("{cap} x {max}: expected InvalidSize, got {other:?}"),
        }
    }
    assert!(matches!(ByteQueue::open(&name), Err(OpenError::NotFound { .. })));
}

#[test]
fn a_producer_killed_mid_write_loses_only_its_message() {
    let name = Name::new("midw");
    let q = ByteQueue::create_with(&name, 8, &Options::new().max_message_size(MAX)).unwrap();
    let mut buf = Vec::new();
    fill(&mut buf, 0, 0);
    q.put(&buf).unwrap();
    let mut victim = spawn_env(
        "killed_mid_write",
        &[&name],
        &[("SHMPROC_FAULT", "message.put.half_written")],
    );
    victim.expect_line("SHMPROC_FAULT_HIT", LONG);
    // Messages put after the victim's claim queue up behind its half-written one.
    for seq in 1..4 {
        fill(&mut buf, 0, seq);
        q.put(&buf).unwrap();
    }
    victim.kill();
    let mut got = Vec::new();
    while let Ok(()) = q.get_into_timeout(&mut buf, Duration::from_secs(2)) {
        got.push(verify(&buf));
    }
    assert_eq!(
        got,
        vec![(0, 0), (0, 1), (0, 2), (0, 3)],
        "the half message is never delivered"
    );
    // Its position was stepped over: the queue keeps its whole capacity.
    for seq in 0..8 {
        fill(&mut buf, 1, seq);
        q.try_put(&buf).unwrap();
    }
    assert!(q.is_full());
}

#[test]
fn a_panicking_writer_gives_its_slot_back() {
    let name = Name::new("panic");
    // The given-back position is a hole until a consumer passes it: room for 3 more.
    let q = ByteQueue::create(&name, 4).unwrap();
    q.put(b"before").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = q.put_with(10, |w| w.write_at(5, b"too long for ten"));
    }));
    assert!(r.is_err());
    q.put(b"after").unwrap();
    assert_eq!(q.get().unwrap(), b"before");
    assert_eq!(q.get().unwrap(), b"after");
    assert!(q.is_empty());
}

#[test]
fn get_with_reads_in_place_and_a_panicking_reader_consumes_its_message() {
    let name = Name::new("getwith");
    let q = ByteQueue::create_with(&name, 4, &Options::new().max_message_size(100)).unwrap();
    assert_eq!(q.try_get_with(|m| m.len()), Err(RecvError::Empty));
    q.put(b"0123456789").unwrap();
    q.put(b"").unwrap();
    q.put(b"next").unwrap();
    q.put(b"last").unwrap();
    let (len, tail) = q
        .get_with(|m| {
            let mut t = [0u8; 3];
            m.read_at(7, &mut t);
            (m.len(), t)
        })
        .unwrap();
    assert_eq!((len, &tail), (10, b"789"));
    assert_eq!(q.get_with(|m| (m.len(), m.is_empty())).unwrap(), (0, true));
    // A read past the end is the caller's bug: it panics, after the slot was released, and
    // the message is consumed; the stream goes on.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = q.get_with(|m| m.read_at(2, &mut [0u8; 3]));
    }));
    assert!(r.is_err());
    let mut all = Vec::new();
    q.try_get_with(|m| m.append_to(&mut all)).unwrap();
    assert_eq!(all, b"last");
    assert!(q.is_empty());
    q.task_done().unwrap();
    q.put(b"again").unwrap();
    assert_eq!(q.get().unwrap(), b"again");
}

#[test]
fn task_done_and_join_across_processes() {
    let name = Name::new("join");
    let q = MessageQueue::<String>::create(&name, 8).unwrap();
    for s in ["a", "b", "c"] {
        q.put(s).unwrap();
    }
    assert!(q.join_timeout(Duration::from_millis(20)).is_err());
    let other = MessageQueue::<String>::open(&name).unwrap();
    for _ in 0..3 {
        other.get().unwrap();
        other.task_done().unwrap();
    }
    q.join_timeout(LONG).unwrap();
    assert!(other.task_done().is_err());
}

#[test]
fn pipe_carries_values_both_ways_and_reports_a_dropped_peer() {
    let name = Name::new("pipe");
    let parent = Pipe::new().capacity(4).create(&name).unwrap();
    let mut child = spawn("pipe_echo", &[&name]);
    // More than the capacity, so both directions fill up and wait.
    for i in 0..50 {
        parent.send(&order(i)).unwrap();
        assert_eq!(parent.recv_timeout::<Order>(LONG).unwrap(), order(i));
    }
    assert!(matches!(Connection::open(&name), Err(OpenError::InUse { .. })));
    drop(parent);
    child.expect_line("DISCONNECTED", LONG);
    child.wait_ok(LONG);
}

#[test]
fn pipe_peer_sigkilled_gives_its_messages_then_disconnected_within_a_second() {
    let name = Name::new("pkill");
    let parent = Pipe::new().create(&name).unwrap();
    let mut child = spawn("pipe_send_then_hang", &[&name]);
    child.expect_line("SENT", LONG);
    assert!(parent.poll(Duration::ZERO));
    assert!(!parent.peer_gone());
    child.kill();
    let killed = Instant::now();
    for i in 0..3u64 {
        assert_eq!(parent.recv_timeout::<u64>(LONG).unwrap(), i);
    }
    assert_eq!(
        parent.recv_timeout::<u64>(Duration::from_secs(1)),
        Err(RecvError::Disconnected)
    );
    assert_eq!(parent.send(&7u64), Err(SendError::Disconnected));
    assert!(
        parent.poll(Duration::from_secs(1)),
        "poll says a receive would not wait"
    );
    println!("Disconnected {:?} after SIGKILL", killed.elapsed());
}

#[test]
fn a_blocked_recv_wakes_with_disconnected_when_the_peer_is_killed() {
    let name = Name::new("pblk");
    let parent = Pipe::new().create(&name).unwrap();
    let mut child = spawn("pipe_block_recv", &[&name]);
    child.expect_line("RECEIVING", LONG);
    // The child is (about to be) blocked in recv; our end going away must wake it.
    std::thread::sleep(Duration::from_millis(50));
    drop(parent);
    assert_eq!(child.expect_line("GOT", LONG), "Err(Disconnected)");
    child.wait_ok(LONG);
}

#[test]
fn a_blocked_recv_in_this_process_sees_a_killed_peer() {
    let name = Name::new("pblk2");
    let parent = Pipe::new().create(&name).unwrap();
    let mut child = spawn("pipe_send_then_hang", &[&name]);
    child.expect_line("SENT", LONG);
    for i in 0..3u64 {
        assert_eq!(parent.recv::<u64>().unwrap(), i);
    }
    let pid = child.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: kill(2) on our child, which the test thread keeps unreaped until joined.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    assert_eq!(parent.recv::<u64>(), Err(RecvError::Disconnected));
    killer.join().unwrap();
    child.kill();
}

#[test]
fn one_way_pipes_refuse_the_wrong_direction() {
    let name = Name::new("oneway");
    let reader = Pipe::new().duplex(false).create(&name).unwrap();
    let writer = Connection::open(&name).unwrap();
    assert!(reader.is_one_way() && writer.is_one_way());
    assert_eq!(reader.send_bytes(b"x"), Err(SendError::ReceiveOnly));
    assert_eq!(writer.recv_bytes(), Err(RecvError::SendOnly));
    writer.send_bytes(b"hello").unwrap();
    let mut buf = Vec::new();
    reader.recv_bytes_into(&mut buf).unwrap();
    assert_eq!(buf, b"hello");
    assert_eq!(reader.try_recv::<u8>(), Err(RecvError::Empty));
    drop(writer);
    assert_eq!(reader.recv_bytes(), Err(RecvError::Disconnected));
}
