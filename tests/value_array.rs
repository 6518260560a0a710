//! Cross-process behaviour of `Value` and `Array`: real processes, real shared memory.

mod common;

use common::{LONG, Name, child_main, say, spawn, spawn_env, wait_parent};
use shmproc::{Array, LockError, Options, Value};
use std::time::Duration;

/// Two halves that a correct update keeps equal; a holder killed half-way leaves them torn.
type Pair = [u64; 2];

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        "incr" => {
            let v = Value::<u64>::open(&args[0]).unwrap();
            let n: u64 = args[1].parse().unwrap();
            for _ in 0..n {
                *v.lock().unwrap() += 1;
            }
            say("DONE");
        }
        "fill" => {
            let a = Array::<f64>::open(&args[0]).unwrap();
            let (start, end): (usize, usize) = (args[1].parse().unwrap(), args[2].parse().unwrap());
            for i in start..end {
                a.lock().unwrap().set(i, i as f64 * 0.5);
            }
            say("DONE");
        }
        "hold_half" => {
            // Take the lock, write half of an update, and wait to be killed.
            let v = Value::<Pair>::open(&args[0]).unwrap();
            let mut g = v.lock().unwrap();
            g[0] += 1;
            g.flush();
            say("READY");
            std::thread::sleep(Duration::from_secs(600));
        }
        "blocked_locker" => {
            // Already blocked in lock() when the holder dies; repairs or declines.
            let v = Value::<Pair>::open(&args[0]).unwrap();
            assert!(matches!(v.try_lock(), Err(LockError::WouldBlock)));
            say("WAITING");
            match v.lock() {
                Err(LockError::OwnerDied(mut g)) => {
                    say(format!("OWNER_DIED {} {}", g[0], g[1]));
                    if args[1] == "repair" {
                        g[1] = g[0];
                        g.mark_consistent();
                    }
                }
                Ok(_) => say("CLEAN"),
                Err(e) => say(format!("ERROR {e}")),
            }
            say("RELEASED");
        }
        "open_or_create" => {
            let v = Value::<u64>::open_or_create(&args[0], 7).unwrap();
            say(format!("OWNS {}", v.owns_name()));
            wait_parent();
        }
        "create_stuck" => {
            // Paused at a fault point during initialisation (SHMPROC_FAULT), then killed.
            let _ = Value::<u64>::create(&args[0], 1);
            say("CREATED");
        }
        "create_slow" => {
            // Stopped at a fault point after sizing, before publishing (SHMPROC_FAULT).
            let v = Value::<u64>::create(&args[0], 11).unwrap();
            say(format!("CREATED {}", v.load().unwrap()));
            wait_parent();
        }
        "open_or_create_zero" => {
            // Gives up on the creator at once; stopped before deciding it is abandoned.
            let r = Value::<u64>::open_or_create_with(&args[0], 5, &Options::new().init_timeout(Duration::ZERO));
            match r {
                Ok(v) => say(format!("RESULT owns={} value={}", v.owns_name(), v.load().unwrap())),
                Err(e) => say(format!("RESULT {e:?}")),
            }
            wait_parent();
        }
        _ => panic!("unknown role {role}"),
    });
}

#[test]
fn four_processes_increment_exactly() {
    let name = Name::new("incr");
    let v = Value::<u64>::create(&name, 0).unwrap();
    let n = 100_000u64;
    let n_s = n.to_string();
    let mut kids: Vec<_> = (0..4).map(|_| spawn("incr", &[&name, &n_s])).collect();
    for k in &mut kids {
        k.expect_line("DONE", LONG);
        k.wait_ok(LONG);
    }
    assert_eq!(v.load().unwrap(), 4 * n);
}

#[test]
fn processes_fill_disjoint_ranges() {
    let name = Name::new("fill");
    let len = 10_000usize;
    let a = Array::<f64>::create(&name, len, -1.0).unwrap();
    let parts = 4;
    let mut kids = Vec::new();
    for p in 0..parts {
        let (s, e) = ((p * len / parts).to_string(), ((p + 1) * len / parts).to_string());
        kids.push(spawn("fill", &[&name, &s, &e]));
    }
    for k in &mut kids {
        k.expect_line("DONE", LONG);
        k.wait_ok(LONG);
    }
    let all = a.to_vec().unwrap();
    for (i, x) in all.iter().enumerate() {
        assert_eq!(*x, i as f64 * 0.5, "element {i}");
    }
}

fn killed_holder(name: &Name) -> common::Child {
    let mut holder = spawn("hold_half", &[name]);
    holder.expect_line("READY", LONG);
    holder
}

#[test]
fn new_locker_gets_owner_died_and_recovers() {
    let name = Name::new("odnew");
    let v = Value::<Pair>::create(&name, [0, 0]).unwrap();
    let mut holder = killed_holder(&name);
    assert!(matches!(v.try_lock(), Err(LockError::WouldBlock)));
    holder.kill();
    match v.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert!(g.is_owner_died());
            assert_eq!(*g, [1, 0], "the half-written update is visible");
            g[1] = g[0];
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    let g = v.lock().unwrap();
    assert_eq!(*g, [1, 1]);
    assert!(!g.is_owner_died());
}

#[test]
fn new_locker_declines_and_lock_becomes_unrecoverable() {
    let name = Name::new("oddecl");
    let v = Value::<Pair>::create(&name, [0, 0]).unwrap();
    let mut holder = killed_holder(&name);
    holder.kill();
    match v.try_lock() {
        Err(LockError::OwnerDied(g)) => drop(g), // declined
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(matches!(v.lock(), Err(LockError::Unrecoverable)));
    assert!(matches!(v.try_lock(), Err(LockError::Unrecoverable)));
    let other = Value::<Pair>::open(&name).unwrap();
    assert!(matches!(
        other.lock_timeout(Duration::from_secs(1)),
        Err(LockError::Unrecoverable)
    ));
}

#[test]
fn blocked_waiter_gets_owner_died_then_repairs() {
    let name = Name::new("odwait");
    let v = Value::<Pair>::create(&name, [0, 0]).unwrap();
    let mut holder = killed_holder(&name);
    let mut waiter = spawn("blocked_locker", &[&name, "repair"]);
    waiter.expect_line("WAITING", LONG);
    holder.kill();
    assert_eq!(waiter.expect_line("OWNER_DIED", LONG), "1 0");
    waiter.expect_line("RELEASED", LONG);
    waiter.wait_ok(LONG);
    assert_eq!(v.load().unwrap(), [1, 1]);
}

#[test]
fn blocked_waiter_declines_then_everyone_sees_unrecoverable() {
    let name = Name::new("odwdec");
    let v = Value::<Pair>::create(&name, [0, 0]).unwrap();
    let mut holder = killed_holder(&name);
    let mut waiter = spawn("blocked_locker", &[&name, "decline"]);
    waiter.expect_line("WAITING", LONG);
    holder.kill();
    waiter.expect_line("OWNER_DIED", LONG);
    waiter.expect_line("RELEASED", LONG);
    waiter.wait_ok(LONG);
    assert!(matches!(v.lock(), Err(LockError::Unrecoverable)));
}

#[test]
fn lock_timeout_and_try_lock_against_a_live_holder() {
    let name = Name::new("tmo");
    let v = Value::<Pair>::create(&name, [0, 0]).unwrap();
    let _holder = killed_holder(&name);
    assert!(matches!(v.try_lock(), Err(LockError::WouldBlock)));
    assert!(matches!(
        v.lock_timeout(Duration::from_millis(50)),
        Err(LockError::Timeout)
    ));
}

#[test]
fn open_or_create_race_has_exactly_one_creator() {
    let name = Name::new("race");
    let mut kids: Vec<_> = (0..6).map(|_| spawn("open_or_create", &[&name])).collect();
    let owners = kids
        .iter_mut()
        .map(|k| k.expect_line("OWNS", LONG))
        .filter(|s| s == "true")
        .count();
    assert_eq!(owners, 1);
    let v = Value::<u64>::open(&name).unwrap();
    assert_eq!(v.load().unwrap(), 7);
    for k in &mut kids {
        k.close_stdin();
        k.wait_ok(LONG);
    }
}

#[test]
fn creator_killed_during_init_gives_init_timeout_and_open_or_create_recovers() {
    let name = Name::new("init");
    let mut c = spawn_env(
        "create_stuck",
        &[&name],
        &[("SHMPROC_FAULT", "segment.create.after_truncate")],
    );
    c.expect_line("SHMPROC_FAULT_HIT", LONG);
    let short = Options::new().init_timeout(Duration::from_millis(100));
    // Alive but not finished: open waits, then says InitTimeout.
    assert!(matches!(
        Value::<u64>::open_with(&name, &short),
        Err(shmproc::OpenError::InitTimeout { .. })
    ));
    c.kill();
    assert!(matches!(
        Value::<u64>::open_with(&name, &short),
        Err(shmproc::OpenError::InitTimeout { .. })
    ));
    let v = Value::<u64>::open_or_create_with(&name, 5, &short).unwrap();
    assert!(v.owns_name());
    assert_eq!(v.load().unwrap(), 5);
}

/// An opener whose init timeout expires while the creator is still at work, and which looks
/// for abandonment only after the creator published and registered: it opens the segment
/// (`models/init_model.py`, mutation `live_is_corrupt`), it does not call it corrupted.
#[test]
fn open_or_create_that_gave_up_on_a_creator_that_then_finished_opens_it() {
    let name = Name::new("slow");
    let stop = ("SHMPROC_FAULT_ACTION", "stop");
    let mut creator = spawn_env(
        "create_slow",
        &[&name],
        &[("SHMPROC_FAULT", "segment.create.after_truncate"), stop],
    );
    creator.expect_line("SHMPROC_FAULT_HIT", LONG);
    creator.wait_stopped();
    let mut opener = spawn_env(
        "open_or_create_zero",
        &[&name],
        &[("SHMPROC_FAULT", "segment.open_or_create.before_remove"), stop],
    );
    opener.expect_line("SHMPROC_FAULT_HIT", LONG);
    opener.wait_stopped();
    creator.signal(libc::SIGCONT);
    assert_eq!(creator.expect_line("CREATED", LONG), "11");
    opener.signal(libc::SIGCONT);
    assert_eq!(opener.expect_line("RESULT", LONG), "owns=false value=11");
    opener.close_stdin();
    opener.wait_ok(LONG);
    creator.close_stdin();
    creator.wait_ok(LONG);
}

#[test]
fn creator_exit_keeps_openers_working() {
    let name = Name::new("exit");
    let creator = Value::<u64>::create(&name, 3).unwrap();
    let opener = Value::<u64>::open(&name).unwrap();
    drop(creator); // unlinks the name
    assert!(matches!(
        Value::<u64>::open(&name),
        Err(shmproc::OpenError::NotFound { .. })
    ));
    opener.store(4).unwrap();
    assert_eq!(opener.load().unwrap(), 4);
}

#[test]
fn persist_keeps_the_name_until_removed() {
    let name = Name::new("persist");
    drop(Value::<u64>::create_with(&name, 9, &Options::new().persist(true)).unwrap());
    assert_eq!(Value::<u64>::open(&name).unwrap().load().unwrap(), 9);
    shmproc::remove(&name).unwrap();
    assert!(matches!(
        Value::<u64>::open(&name),
        Err(shmproc::OpenError::NotFound { .. })
    ));
}
