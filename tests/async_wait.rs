//! Async waiting (feature `tokio`) between real processes: many tasks of a multi-threaded
//! runtime awaiting one `Event`, set by another process; a wait cancelled by `select!`; a
//! process holding armed async waits SIGKILLed while others wait; blocking and async waiters
//! on the same event.

mod common;

use common::{Name, child_main, say, spawn, wait_parent};
use shmproc::Event;
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
