//! Async message queues and pipes (feature `tokio`) between real processes: 200 tasks
//! sharing a `ByteQueue` filled by another process; `join_async` woken by another process's
//! `task_done`; `MessageQueue<String>` both ways; a pipe whose peer is dropped or SIGKILLed
//! under an awaiting receiver; receives cancelled by `select!` that lose nothing.

mod common;

use common::{Name, child_main, say, spawn, wait_parent};
use shmproc::{ByteQueue, Connection, MessageQueue, Pipe, RecvError, SendError, TaskError};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn num(args: &[String], i: usize) -> u64 {
    args[i].parse().unwrap()
}

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // bq_put_n [name] [n]: puts "1".."n" with blocking puts.
        "bq_put_n" => {
            let q = ByteQueue::open(&args[0]).unwrap();
            for i in 1..=num(args, 1) {
                q.put(i.to_string().as_bytes()).unwrap();
            }
            say("PUT");
        }
        // bq_get_done [name] [n]: takes n messages, then on the parent's word marks them done.
        "bq_get_done" => {
            let q = ByteQueue::open(&args[0]).unwrap();
            for _ in 0..num(args, 1) {
                q.get().unwrap();
            }
            say("GOT");
            wait_parent();
            for _ in 0..num(args, 1) {
                q.task_done().unwrap();
            }
            say("DONE");
        }
        // mq_echo [in] [out] [n]: gets n strings from `in`, puts "echo <s>" into `out`.
        "mq_echo" => {
            let from = MessageQueue::<String>::open(&args[0]).unwrap();
            let to = MessageQueue::<String>::open(&args[1]).unwrap();
            for _ in 0..num(args, 2) {
                let s = from.get().unwrap();
                to.put(&format!("echo {s}")).unwrap();
            }
            say("ECHOED");
        }
        // pipe_echo [name] [n]: receives n numbers, sends each doubled; then, on the
        // parent's word, drops its end.
        "pipe_echo" => {
            let c = Connection::open(&args[0]).unwrap();
            for _ in 0..num(args, 1) {
                let v: u64 = c.recv().unwrap();
                c.send(&(v * 2)).unwrap();
            }
            say("ECHOED");
            wait_parent();
            drop(c);
            say("DROPPED");
            wait_parent();
        }
        // pipe_send [name] [n] [pace]: sends 0..n with blocking sends, pausing 1 ms after
        // every 10th if `pace` is 1; then waits to be killed.
        "pipe_send" => {
            let c = Connection::open(&args[0]).unwrap();
            for i in 0..num(args, 1) {
                c.send(&i).unwrap();
                if num(args, 2) == 1 && i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            say("SENT");
            wait_parent();
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn two_hundred_tasks_share_a_byte_queue_filled_by_another_process() {
    let name = Name::new("abq");
    let q = Arc::new(ByteQueue::create(&name, 16).unwrap());
    let rt = runtime();
    let seen = rt.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let q = q.clone();
                tokio::spawn(async move {
                    let bytes = if i % 2 == 0 {
                        q.get_timeout_async(T).await.unwrap()
                    } else {
                        let mut buf = b"stale".to_vec();
                        q.get_into_async(&mut buf).await.unwrap();
                        buf
                    };
                    String::from_utf8(bytes).unwrap().parse::<u64>().unwrap()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut kid = spawn("bq_put_n", &[&name, "200"]);
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        kid.expect_line("PUT", T);
        assert_eq!(
            q.get_timeout_async(Duration::from_millis(20)).await,
            Err(RecvError::Timeout)
        );
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.get_async().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.close();
        assert_eq!(waiter.await.unwrap(), Err(RecvError::Closed));
        seen
    });
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (1..=200).collect::<Vec<u64>>()); // each message exactly once
}

#[test]
fn async_puts_wait_for_room_and_join_waits_for_task_done_in_another_process() {
    let name = Name::new("abj");
    let q = Arc::new(ByteQueue::create(&name, 4).unwrap());
    let rt = runtime();
    rt.block_on(async {
        for i in 0..4u8 {
            q.put_async(&[i]).await.unwrap();
        }
        assert_eq!(
            q.put_timeout_async(b"x", Duration::from_millis(20)).await,
            Err(SendError::Timeout)
        );
        let mut kid = spawn("bq_get_done", &[&name, "40"]);
        for i in 4..40u8 {
            q.put_timeout_async(&[i], T).await.unwrap();
        }
        kid.expect_line("GOT", T);
        assert_eq!(
            q.join_timeout_async(Duration::from_millis(20)).await,
            Err(TaskError::Timeout)
        );
        let joiner = {
            let q = q.clone();
            tokio::spawn(async move { q.join_timeout_async(T).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!joiner.is_finished());
        kid.send("go");
        assert_eq!(joiner.await.unwrap(), Ok(()));
        kid.expect_line("DONE", T);
    });
}

#[test]
fn message_queue_strings_go_both_ways_between_processes() {
    let (to_kid, from_kid) = (Name::new("amqi"), Name::new("amqo"));
    let outq = MessageQueue::<String>::create(&to_kid, 4).unwrap();
    let inq = MessageQueue::<String>::create(&from_kid, 4).unwrap();
    let rt = runtime();
    rt.block_on(async {
        for i in 0..4 {
            outq.put_async(&format!("msg {i}")).await.unwrap();
        }
        assert_eq!(
            outq.put_timeout_async("msg 4", Duration::from_millis(20)).await,
            Err(SendError::Timeout)
        );
        assert!(matches!(
            inq.get_timeout_async(Duration::from_millis(20)).await,
            Err(RecvError::Timeout)
        ));
        let mut kid = spawn("mq_echo", &[&to_kid, &from_kid, "100"]);
        let producer = async {
            for i in 4..100 {
                outq.put_async(&format!("msg {i}")).await.unwrap();
            }
        };
        let consumer = async {
            for i in 0..100 {
                assert_eq!(inq.get_timeout_async(T).await.unwrap(), format!("echo msg {i}"));
            }
        };
        tokio::join!(producer, consumer);
        kid.expect_line("ECHOED", T);
    });
    assert!(outq.is_empty() && inq.is_empty());
}

#[test]
fn pipe_async_both_ways_then_a_dropped_peer_wakes_the_receiver() {
    let name = Name::new("apd");
    let conn = Arc::new(Pipe::new().capacity(4).create(&name).unwrap());
    let rt = runtime();
    rt.block_on(async {
        let mut kid = spawn("pipe_echo", &[&name, "100"]);
        let sender = async {
            for i in 0..100u64 {
                conn.send_timeout_async(&i, T).await.unwrap();
            }
        };
        let receiver = async {
            for i in 0..100u64 {
                assert_eq!(conn.recv_timeout_async::<u64>(T).await, Ok(2 * i));
            }
        };
        tokio::join!(sender, receiver);
        kid.expect_line("ECHOED", T);
        let waiter = {
            let conn = conn.clone();
            // A bound on the test, not on the wake-up: a missed one fails instead of hanging.
            tokio::spawn(async move { tokio::time::timeout(T, conn.recv_bytes_async()).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished());
        kid.send("go");
        kid.expect_line("DROPPED", T);
        assert_eq!(waiter.await.unwrap(), Ok(Err(RecvError::Disconnected)));
        assert_eq!(conn.send_bytes_async(b"late").await, Err(SendError::Disconnected));
    });
}

#[test]
fn pipe_recv_async_reports_a_killed_sender_promptly() {
    let name = Name::new("apk");
    let conn = Arc::new(Pipe::new().capacity(4).create(&name).unwrap());
    let rt = runtime();
    rt.block_on(async {
        let mut kid = spawn("pipe_send", &[&name, "50", "0"]);
        let mut buf = Vec::new();
        for i in 0..50u64 {
            if i % 2 == 0 {
                assert_eq!(conn.recv_timeout_async::<u64>(T).await, Ok(i));
            } else {
                conn.recv_bytes_into_timeout_async(&mut buf, T).await.unwrap();
                assert_eq!(postcard_u64(&buf), i);
            }
        }
        kid.expect_line("SENT", T);
        let waiter = {
            let conn = conn.clone();
            tokio::spawn(async move { tokio::time::timeout(T, conn.recv_async::<u64>()).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished());
        kid.kill();
        assert_eq!(waiter.await.unwrap(), Ok(Err(RecvError::Disconnected)));
        assert_eq!(conn.send_async(&1u64).await, Err(SendError::Disconnected));
    });
}

/// A small `u64` as postcard writes it (a varint).
fn postcard_u64(bytes: &[u8]) -> u64 {
    let mut v = 0u64;
    for (k, b) in bytes.iter().enumerate() {
        v |= u64::from(b & 0x7f) << (7 * k);
    }
    v
}

#[test]
fn a_cancelled_recv_async_loses_nothing() {
    let name = Name::new("apc");
    let conn = Pipe::new().capacity(4).create(&name).unwrap();
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(
            conn.recv_timeout_async::<u64>(Duration::from_millis(10)).await,
            Err(RecvError::Timeout)
        );
        let mut cancelled = 0;
        tokio::select! {
            r = conn.recv_async::<u64>() => panic!("nothing was sent: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(30)) => cancelled += 1,
        }
        let mut kid = spawn("pipe_send", &[&name, "300", "1"]);
        let mut got = Vec::new();
        while got.len() < 300 {
            tokio::select! {
                r = conn.recv_async::<u64>() => got.push(r.unwrap()),
                () = tokio::time::sleep(Duration::from_micros(500)) => cancelled += 1,
            }
        }
        kid.expect_line("SENT", T);
        assert_eq!(got, (0..300).collect::<Vec<u64>>()); // in order, none lost or doubled
        assert!(cancelled >= 1);
        assert_eq!(
            conn.recv_timeout_async::<u64>(Duration::from_millis(10)).await,
            Err(RecvError::Timeout)
        );
    });
}
