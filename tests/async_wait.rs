//! Async waiting (feature `tokio`) between real processes: many tasks of a multi-threaded
//! runtime awaiting one `Event`, set by another process; a wait cancelled by `select!`; a
//! process holding armed async waits SIGKILLed while others wait; blocking and async waiters
//! on the same event.

mod common;

use common::{Name, child_main, say, spawn, wait_parent};
use shmproc::{Event, Queue, Semaphore};
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

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // set [name]: sets the event.
        "set" => {
            Event::open(&args[0]).unwrap().set();
            say("SET");
        }
        // wait_blocking [name]: a blocking waiter.
        "wait_blocking" => {
            let e = Event::open(&args[0]).unwrap();
            say("WAITING");
            say(format!("DONE {}", e.wait_timeout(T)));
        }
        // wait_async_forever [name]: arms async waits in 10 tasks and waits to be killed.
        "wait_async_forever" => {
            let e = Arc::new(Event::open(&args[0]).unwrap());
            runtime().block_on(async {
                let tasks: Vec<_> = (0..10)
                    .map(|_| {
                        let e = e.clone();
                        tokio::spawn(async move { e.wait_async().await })
                    })
                    .collect();
                tokio::time::sleep(Duration::from_millis(50)).await;
                say("WAITING");
                wait_parent();
                for t in tasks {
                    t.await.unwrap();
                }
            });
        }
        // sem_hold [name]: takes a permit, keeps it until told (or killed), gives it back.
        "sem_hold" => {
            let s = Semaphore::open(&args[0]).unwrap();
            let g = s.acquire();
            say("HELD");
            wait_parent();
            drop(g);
            say("GAVE");
        }
        // put_n [name] [n]: puts 1..=n with blocking puts.
        "put_n" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            for i in 1..=args[1].parse::<u64>().unwrap() {
                q.put(i).unwrap();
            }
            say("PUT");
        }
        // put_n_close [name] [n]: puts 1..=n, then closes the queue.
        "put_n_close" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            for i in 1..=args[1].parse::<u64>().unwrap() {
                q.put(i).unwrap();
            }
            q.close();
            say("CLOSED");
        }
        // get_done [name] [n]: takes n items, then on the parent's word marks each done.
        "get_done" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let n = args[1].parse::<u64>().unwrap();
            for _ in 0..n {
                q.get().unwrap();
            }
            say("TAKEN");
            wait_parent();
            for _ in 0..n {
                q.task_done().unwrap();
            }
            say("DONE");
        }
        // get_n [name] [n]: takes n items with blocking gets.
        "get_n" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let sum: u64 = (0..args[1].parse::<u64>().unwrap()).map(|_| q.get().unwrap()).sum();
            say(format!("SUM {sum}"));
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn a_thousand_tasks_wake_when_another_process_sets() {
    let name = Name::new("aw");
    let e = Arc::new(Event::create(&name).unwrap());
    let rt = runtime();
    let done = rt.block_on(async {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let e = e.clone();
                tokio::spawn(async move { e.wait_timeout_async(T).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut kid = spawn("set", &[&name]);
        kid.expect_line("SET", T);
        let mut n = 0;
        for t in tasks {
            n += usize::from(t.await.unwrap());
        }
        n
    });
    assert_eq!(done, 1000);
}

#[test]
fn a_cancelled_wait_leaves_nothing_behind_and_timeouts_answer() {
    let name = Name::new("ac");
    let e = Event::create(&name).unwrap();
    let rt = runtime();
    rt.block_on(async {
        tokio::select! {
            _ = e.wait_async() => panic!("not set yet"),
            _ = tokio::time::sleep(Duration::from_millis(30)) => {}
        }
        assert!(!e.wait_timeout_async(Duration::from_millis(20)).await);
        let other = Event::open(&name).unwrap();
        let waiter = async { e.wait_timeout_async(T).await };
        let setter = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            other.set();
        };
        let (got, ()) = tokio::join!(waiter, setter);
        assert!(got);
    });
}

#[test]
fn a_killed_async_waiter_and_a_blocking_one_do_not_stop_the_others() {
    let name = Name::new("ak");
    let e = Arc::new(Event::create(&name).unwrap());
    let mut doomed = spawn("wait_async_forever", &[&name]);
    doomed.expect_line("WAITING", T);
    doomed.kill();
    let mut blocking = spawn("wait_blocking", &[&name]);
    blocking.expect_line("WAITING", T);
    let rt = runtime();
    rt.block_on(async {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let e = e.clone();
                tokio::spawn(async move { e.wait_timeout_async(T).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut kid = spawn("set", &[&name]);
        kid.expect_line("SET", T);
        for t in tasks {
            assert!(t.await.unwrap());
        }
    });
    assert_eq!(blocking.expect_line("DONE", T), "true");
}

#[test]
fn async_acquires_get_permits_given_back_or_left_by_the_dead() {
    let name = Name::new("as");
    let sem = Arc::new(Semaphore::create(&name, 1).unwrap());
    let rt = runtime();
    // Given back by a live process: the doorbell wakes the waiting task.
    let mut kid = spawn("sem_hold", &[&name]);
    kid.expect_line("HELD", T);
    rt.block_on(async {
        let s = sem.clone();
        let task = tokio::spawn(async move { s.acquire_timeout_async(T).await.map(drop).is_ok() });
        tokio::time::sleep(Duration::from_millis(30)).await;
        kid.send("go");
        assert!(task.await.unwrap());
    });
    kid.expect_line("GAVE", T);
    // Held by a process that is killed: the waiting task reclaims it at its next look.
    let mut kid = spawn("sem_hold", &[&name]);
    kid.expect_line("HELD", T);
    rt.block_on(async {
        assert!(sem.acquire_timeout_async(Duration::from_millis(20)).await.is_err());
        let s = sem.clone();
        let task = tokio::spawn(async move { s.acquire_timeout_async(T).await.map(drop).is_ok() });
        tokio::time::sleep(Duration::from_millis(30)).await;
        kid.kill();
        assert!(task.await.unwrap());
        // Many tasks share one permit, one at a time.
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = sem.clone();
                tokio::spawn(async move {
                    let _p = s.acquire_async().await;
                    tokio::task::yield_now().await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(sem.available(), 1);
}

#[test]
fn a_thousand_tasks_share_a_queue_filled_by_another_process() {
    let name = Name::new("aq");
    let q = Arc::new(Queue::<u64>::create(&name, 64).unwrap());
    let rt = runtime();
    let (sum, n) = rt.block_on(async {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.get_timeout_async(T).await.unwrap() })
            })
            .collect();
        let mut kid = spawn("put_n", &[&name, "1000"]);
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        kid.expect_line("PUT", T);
        seen.sort_unstable();
        seen.dedup();
        (seen.iter().sum::<u64>(), seen.len())
    });
    assert_eq!((n, sum), (1000, 1000 * 1001 / 2)); // each item exactly once
    assert!(q.is_empty());
}

#[test]
fn async_puts_wait_for_room_made_by_another_process() {
    let name = Name::new("ap");
    let q = Arc::new(Queue::<u64>::create(&name, 4).unwrap());
    let rt = runtime();
    rt.block_on(async {
        for i in 1..=4 {
            q.put_async(i).await.unwrap();
        }
        assert!(matches!(
            q.put_timeout_async(9, Duration::from_millis(20)).await,
            Err(shmproc::PutError::Timeout(9))
        ));
        let puts: Vec<_> = (5..=100u64)
            .map(|i| {
                let q = q.clone();
                tokio::spawn(async move { q.put_timeout_async(i, T).await.is_ok() })
            })
            .collect();
        let mut kid = spawn("get_n", &[&name, "100"]);
        for p in puts {
            assert!(p.await.unwrap());
        }
        assert_eq!(kid.expect_line("SUM", T), (100 * 101 / 2).to_string());
    });
}

#[test]
fn a_queue_stream_ends_when_the_queue_is_closed_and_drained() {
    use futures_core::Stream;
    let name = Name::new("st");
    let q = Queue::<u64>::create(&name, 8).unwrap();
    let rt = runtime();
    let got = rt.block_on(async {
        let mut kid = spawn("put_n_close", &[&name, "100"]);
        let mut stream = std::pin::pin!(q.stream());
        let mut got = Vec::new();
        while let Some(x) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            got.push(x);
        }
        kid.expect_line("CLOSED", T);
        got
    });
    assert_eq!(got, (1..=100).collect::<Vec<u64>>());
}

#[test]
fn an_async_join_returns_when_another_process_marks_the_work_done() {
    let name = Name::new("aj");
    let q = Queue::<u64>::create(&name, 8).unwrap();
    let rt = runtime();
    rt.block_on(async {
        for i in 0..5 {
            q.put_async(i).await.unwrap();
        }
        let mut kid = spawn("get_done", &[&name, "5"]);
        kid.expect_line("TAKEN", T);
        assert!(q.join_timeout_async(Duration::from_millis(5)).await.is_err());
        let joiner = async { q.join_timeout_async(T).await };
        let go = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            kid.send("go");
        };
        let (joined, ()) = tokio::join!(joiner, go);
        joined.unwrap();
        kid.expect_line("DONE", T);
    });
}
