//! Async locks, barrier and condition (feature `tokio`) between real processes: an async
//! locker waiting for a holder in another process, or taking over from a killed one; tasks
//! and a blocking process sharing a `Value`; a barrier with an async party and blocking ones,
//! broken promptly when a party dies; a condition notified from another process.

mod common;

use common::{Name, child_main, say, spawn, wait_parent};
use shmproc::{Array, Barrier, BarrierError, Condition, Lock, LockError, Value};
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
        // lock_hold [name]: locks, keeps it until told (or killed), unlocks.
        "lock_hold" => {
            let l = Lock::open(&args[0]).unwrap();
            let g = l.lock().unwrap();
            say("HELD");
            wait_parent();
            drop(g);
            say("GAVE");
        }
        // incr_blocking [name] [n]: n increments of a Value<u64> under blocking locks.
        "incr_blocking" => {
            let v = Value::<u64>::open(&args[0]).unwrap();
            say("READY");
            for _ in 0..args[1].parse::<u64>().unwrap() {
                *v.lock().unwrap() += 1;
            }
            say("DONE");
        }
        // barrier_rounds [name] [rounds]: waits `rounds` times (blocking), says how many
        // times it led, then keeps its handle until told (or killed).
        "barrier_rounds" => {
            let b = Barrier::open(&args[0]).unwrap();
            let led = (0..args[1].parse::<u32>().unwrap())
                .filter(|_| b.wait_timeout(T).unwrap().is_leader())
                .count();
            say(format!("LED {led}"));
            wait_parent();
        }
        // notify [value] [condition]: sets the value to 1 under its lock, notifies all.
        "notify" => {
            let v = Value::<u32>::open(&args[0]).unwrap();
            let cv = Condition::open(&args[1]).unwrap();
            *v.lock().unwrap() = 1;
            cv.notify_all();
            say("NOTIFIED");
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn an_async_locker_waits_for_a_holder_in_another_process() {
    let name = Name::new("al");
    let lock = Arc::new(Lock::create(&name).unwrap());
    let rt = runtime();
    let mut kid = spawn("lock_hold", &[&name]);
    kid.expect_line("HELD", T);
    rt.block_on(async {
        assert!(matches!(
            lock.lock_timeout_async(Duration::from_millis(20)).await,
            Err(LockError::Timeout)
        ));
        let l = lock.clone();
        let task = tokio::spawn(async move { l.lock_timeout_async(T).await.map(drop).is_ok() });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!task.is_finished());
        kid.send("go");
        assert!(task.await.unwrap());
    });
    kid.expect_line("GAVE", T);
    // Tasks sharing the handle exclude each other, and a dropped future holds nothing.
    rt.block_on(async {
        let g = lock.lock_async().await.unwrap();
        tokio::select! {
            _ = lock.lock_async() => panic!("held"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        drop(g);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let l = lock.clone();
                tokio::spawn(async move {
                    let _g = l.lock_async().await.unwrap();
                    tokio::task::yield_now().await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert!(lock.try_lock().is_ok());
}

#[test]
fn an_async_locker_takes_over_from_a_killed_holder() {
    let name = Name::new("ak");
    let lock = Arc::new(Lock::create(&name).unwrap());
    let mut kid = spawn("lock_hold", &[&name]);
    kid.expect_line("HELD", T);
    let rt = runtime();
    rt.block_on(async {
        let l = lock.clone();
        let task = tokio::spawn(async move {
            match l.lock_timeout_async(T).await {
                Err(LockError::OwnerDied(mut g)) => {
                    g.mark_consistent();
                    true
                }
                _ => false,
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        kid.kill();
        assert!(task.await.unwrap(), "the async locker gets OwnerDied");
        assert!(lock.lock_async().await.is_ok(), "marked consistent: clean again");
    });
}

#[test]
fn value_increments_from_tasks_and_a_blocking_process_all_count() {
    const TASKS: u64 = 100;
    const PER_TASK: u64 = 20;
    const BLOCKING: u64 = 2000;
    let name = Name::new("av");
    let v = Arc::new(Value::<u64>::create(&name, 0).unwrap());
    let rt = runtime();
    let mut kid = spawn("incr_blocking", &[&name, &BLOCKING.to_string()]);
    kid.expect_line("READY", T);
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let v = v.clone();
                tokio::spawn(async move {
                    for k in 0..PER_TASK {
                        let mut g = v.lock_timeout_async(T).await.unwrap();
                        let x = *g;
                        if (i + k) % 7 == 0 {
                            tokio::task::yield_now().await; // held across an await
                        }
                        *g = x + 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    kid.expect_line("DONE", T);
    assert_eq!(v.load().unwrap(), TASKS * PER_TASK + BLOCKING);
}

#[test]
fn array_lock_async() {
    let an = Name::new("aa");
    let a = Array::<u32>::create(&an, 4, 0).unwrap();
    let other = Array::<u32>::open(&an).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut g = a.lock_async().await.unwrap();
        g.set(2, 7);
        let waiter = async { other.lock_timeout_async(T).await.unwrap().get(2) };
        let holder = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(g);
        };
        let (seen, ()) = tokio::join!(waiter, holder);
        assert_eq!(seen, 7);
    });
}

#[test]
fn a_barrier_with_an_async_party_breaks_promptly_when_a_party_dies() {
    const ROUNDS: u32 = 20;
    let name = Name::new("ab");
    let b = Arc::new(Barrier::create(&name, 3).unwrap());
    let mut kids = [
        spawn("barrier_rounds", &[&name, &ROUNDS.to_string()]),
        spawn("barrier_rounds", &[&name, &ROUNDS.to_string()]),
    ];
    let rt = runtime();
    let led = rt.block_on(async {
        let mut led = 0;
        for _ in 0..ROUNDS {
            led += u32::from(b.wait_timeout_async(T).await.unwrap().is_leader());
        }
        led
    });
    let kid_led: u32 = kids
        .iter_mut()
        .map(|k| k.expect_line("LED", T).parse::<u32>().unwrap())
        .sum();
    assert_eq!(led + kid_led, ROUNDS, "one leader per generation");
    rt.block_on(async {
        let bb = b.clone();
        let task = tokio::spawn(async move { bb.wait_timeout_async(T).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!task.is_finished());
        kids[0].kill();
        // Broken, not Timeout: the death is noticed, not waited out.
        assert_eq!(task.await.unwrap(), Err(BarrierError::Broken));
    });
    assert!(b.is_broken());
}

#[test]
fn a_dropped_or_timed_out_barrier_wait_breaks_it() {
    let name = Name::new("ad");
    let b = Barrier::create(&name, 2).unwrap();
    let other = Barrier::open(&name).unwrap();
    let rt = runtime();
    rt.block_on(async {
        tokio::select! {
            _ = b.wait_async() => panic!("the other party did not come"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        assert!(b.is_broken(), "a party dropped after arriving breaks it");
        assert_eq!(other.wait_async().await, Err(BarrierError::Broken));
        b.reset();
        assert_eq!(
            b.wait_timeout_async(Duration::from_millis(20)).await,
            Err(BarrierError::Timeout)
        );
        assert!(b.is_broken());
        b.reset();
        let (x, y) = tokio::join!(b.wait_async(), other.wait_async());
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(x.is_leader() != y.is_leader());
        assert!(!b.is_broken());
    });
}

#[test]
fn an_async_condition_waiter_is_notified_from_another_process() {
    let (vn, cn) = (Name::new("cv"), Name::new("cc"));
    let v = Arc::new(Value::<u32>::create(&vn, 0).unwrap());
    let cv = Arc::new(Condition::create(&cn).unwrap());
    let rt = runtime();
    rt.block_on(async {
        // A timed wait with no notify times out and gives the guard back.
        let g = v.lock_async().await.unwrap();
        let (g, res) = cv.wait_timeout_async(g, Duration::from_millis(20)).await.unwrap();
        assert!(res.timed_out());
        drop(g);
        // A dropped wait holds no lock.
        let g = v.lock_async().await.unwrap();
        tokio::select! {
            _ = cv.wait_async(g) => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        assert!(v.try_lock().is_ok());
        let (v2, cv2) = (v.clone(), cv.clone());
        let task = tokio::spawn(async move {
            let g = v2.lock_async().await.unwrap();
            let (g, res) = cv2.wait_timeout_while_async(g, T, |g| **g == 0).await.unwrap();
            (*g, res.timed_out())
        });
        let plain = {
            let (v, cv) = (v.clone(), cv.clone());
            tokio::spawn(async move {
                let g = v.lock_async().await.unwrap();
                *cv.wait_while_async(g, |g| **g == 0).await.unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!task.is_finished());
        let mut kid = spawn("notify", &[&vn, &cn]);
        kid.expect_line("NOTIFIED", T);
        assert_eq!(task.await.unwrap(), (1, false));
        assert_eq!(tokio::time::timeout(T, plain).await.unwrap().unwrap(), 1);
    });
}
