//! The synchronisation primitives between real processes: `Semaphore`/`BoundedSemaphore`
//! permits coming back from a SIGKILLed holder, `RLock` re-entrance and a killed holder,
//! `Event` set across processes, `Condition` wait/notify with a waiter killed mid-wait, and
//! `Barrier` rounds, a party killed before arriving, abort and reset.

mod common;

use common::{Name, child_main, say, spawn, wait_parent};
use shmproc::{
    AcquireError, Barrier, BarrierError, BoundedSemaphore, Condition, Event, LockError, OpenError, RLock, ReleaseError,
    Semaphore, Value,
};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // sem_hold [name] [n]: takes n permits through guards and keeps them until killed.
        "sem_hold" => {
            let s = Semaphore::open(&args[0]).unwrap();
            let n: usize = args[1].parse().unwrap();
            let guards: Vec<_> = (0..n).map(|_| s.acquire()).collect();
            say("HELD");
            wait_parent();
            drop(guards);
            say("GAVE");
        }
        // bsem_hold [name]: a BoundedSemaphore permit, kept until killed.
        "bsem_hold" => {
            let s = BoundedSemaphore::open(&args[0]).unwrap();
            let _g = s.acquire();
            say("HELD");
            wait_parent();
        }
        // sem_signal [name]: adds a permit nobody held.
        "sem_signal" => {
            Semaphore::open(&args[0]).unwrap().release().unwrap();
            say("RELEASED");
        }
        // rlock_hold [name]: locks twice (re-entrant) and waits to be killed.
        "rlock_hold" => {
            let l = RLock::open(&args[0]).unwrap();
            let _a = l.lock().unwrap();
            let _b = l.lock().unwrap();
            say("LOCKED");
            wait_parent();
        }
        // event_wait [name]: waits for the event, says whether it came.
        "event_wait" => {
            let e = Event::open(&args[0]).unwrap();
            say("WAITING");
            say(format!("SET {}", e.wait_timeout(T)));
        }
        // cond_wait [value] [condition]: waits until the value is non-zero.
        "cond_wait" => {
            let v = Value::<u32>::open(&args[0]).unwrap();
            let c = Condition::open(&args[1]).unwrap();
            let g = v.lock().unwrap();
            say("WAITING");
            let g = c.wait_while(g, |g| **g == 0).unwrap();
            say(format!("GOT {}", *g));
        }
        // barrier_wait [name] [rounds]: waits that many rounds, says how each went.
        "barrier_wait" => {
            let b = Barrier::open(&args[0]).unwrap();
            say("OPEN");
            for _ in 0..args[1].parse::<u32>().unwrap() {
                match b.wait_timeout(T) {
                    Ok(r) => say(format!("PASSED {}", r.is_leader())),
                    Err(e) => {
                        say(format!("FAILED {e:?}"));
                        return;
                    }
                }
            }
        }
        // barrier_open [name]: a party that never arrives, until killed.
        "barrier_open" => {
            let _b = Barrier::open(&args[0]).unwrap();
            say("OPEN");
            wait_parent();
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn permits_held_by_killed_processes_come_back() {
    let name = Name::new("sk");
    let sem = Semaphore::create(&name, 2).unwrap();
    // Three crashes in a row, each holding both permits: the pool never shrinks.
    for _ in 0..3 {
        let mut kid = spawn("sem_hold", &[&name, "2"]);
        kid.expect_line("HELD", T);
        assert_eq!(sem.try_acquire().unwrap_err(), AcquireError::WouldBlock);
        assert_eq!(
            sem.acquire_timeout(Duration::from_millis(20)).unwrap_err(),
            AcquireError::Timeout
        );
        kid.kill();
        let a = sem.acquire_timeout(T).unwrap();
        let b = sem.acquire_timeout(T).unwrap();
        assert_eq!(sem.try_acquire().unwrap_err(), AcquireError::WouldBlock);
        drop((a, b));
        assert_eq!(sem.available(), 2);
    }
    // A holder that gives back normally.
    let mut kid = spawn("sem_hold", &[&name, "1"]);
    kid.expect_line("HELD", T);
    assert_eq!(sem.available(), 1);
    kid.send("go");
    kid.expect_line("GAVE", T);
    assert_eq!(sem.available(), 2);
}

#[test]
fn a_waiter_gets_the_permit_of_a_holder_killed_while_it_waits() {
    let name = Name::new("sw");
    let sem = Semaphore::create(&name, 1).unwrap();
    let mut kid = spawn("sem_hold", &[&name, "1"]);
    kid.expect_line("HELD", T);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        kid.kill();
    });
    let g = sem.acquire_timeout(T).unwrap();
    killer.join().unwrap();
    drop(g);
    assert_eq!(sem.available(), 1);
}

#[test]
fn a_release_from_another_process_signals_a_waiter() {
    let name = Name::new("ss");
    let sem = Semaphore::create(&name, 0).unwrap();
    let mut kid = spawn("sem_signal", &[&name]);
    let g = sem.acquire_timeout(T).unwrap();
    kid.expect_line("RELEASED", T);
    g.forget(); // taken for good: nothing comes back
    assert_eq!(sem.available(), 0);
    assert_eq!(sem.initial(), 0);
}

#[test]
fn a_bounded_semaphore_refuses_extra_releases_even_across_a_crash() {
    let name = Name::new("sb");
    let sem = BoundedSemaphore::create(&name, 1).unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound { bound: 1 }));
    let mut kid = spawn("bsem_hold", &[&name]);
    kid.expect_line("HELD", T);
    // The permit is held, not gone: releasing one would make two.
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound { bound: 1 }));
    kid.kill();
    let g = sem.acquire_timeout(T).unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound { bound: 1 }));
    drop(g);
    assert_eq!(sem.available(), 1);
    assert!(matches!(
        Semaphore::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
}

#[test]
fn an_rlock_is_re_entrant_and_a_killed_holder_is_reported() {
    let name = Name::new("rl");
    let lock = RLock::create(&name).unwrap();
    {
        let _a = lock.lock().unwrap();
        let _b = lock.try_lock().unwrap();
        // Another thread of this process is another owner.
        std::thread::scope(|s| {
            s.spawn(|| assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock))));
        });
    }
    let mut kid = spawn("rlock_hold", &[&name]);
    kid.expect_line("LOCKED", T);
    assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
    kid.kill();
    let Err(LockError::OwnerDied(mut g)) = lock.lock_timeout(T) else {
        panic!("no owner-died")
    };
    g.mark_consistent();
    let inner = lock.lock().unwrap();
    drop(inner);
    drop(g);
    let other = RLock::open(&name).unwrap();
    assert!(matches!(other.try_lock().map(|g| g.is_owner_died()), Ok(false)));
}

#[test]
fn an_event_wakes_waiters_in_other_processes() {
    let name = Name::new("ev");
    let e = Event::create(&name).unwrap();
    let mut kids: Vec<_> = (0..2).map(|_| spawn("event_wait", &[&name])).collect();
    for k in &mut kids {
        k.expect_line("WAITING", T);
    }
    e.set();
    for k in &mut kids {
        assert_eq!(k.expect_line("SET", T), "true");
    }
    e.clear();
    assert!(!e.wait_timeout(Duration::from_millis(5)));
    // Set and cleared at once: who was waiting is released anyway. "Waiting" is known from
    // the waiters mark the waiter raises before it sleeps, so this does not race the child;
    // a fresh event, since the timed-out wait above left the mark up (a mark, not a count).
    let name = Name::new("ev2");
    let e = Event::create(&name).unwrap();
    let mut kid = spawn("event_wait", &[&name]);
    kid.expect_line("WAITING", T);
    let deadline = Instant::now() + T;
    while !waiters_marked(&name) {
        assert!(Instant::now() < deadline, "the child never began to wait");
        std::thread::sleep(Duration::from_millis(1));
    }
    e.set();
    e.clear();
    assert_eq!(kid.expect_line("SET", T), "true");
    assert!(!e.is_set());
}

/// Whether the event's report shows its waiters mark.
fn waiters_marked(name: &str) -> bool {
    use shmproc::inspect::{KindState, Status, inspect};
    match inspect(name).unwrap().status {
        Status::Ready(d) => matches!(d.state, KindState::Event { waiters: true, .. }),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_condition_waiter_killed_mid_wait_does_not_stop_the_others() {
    let n = Name::new("cv");
    let v = Value::<u32>::create(&n, 0).unwrap();
    let cname = Name::new("cc");
    let c = Condition::create(&cname).unwrap();
    let mut doomed = spawn("cond_wait", &[&n, &cname]);
    doomed.expect_line("WAITING", T);
    // Once we hold the lock the waiter has unlocked it: it sleeps in the condition.
    let g = v.lock_timeout(T).unwrap();
    doomed.kill();
    drop(g);
    let mut kids: Vec<_> = (0..2).map(|_| spawn("cond_wait", &[&n, &cname])).collect();
    for k in &mut kids {
        k.expect_line("WAITING", T);
    }
    let mut g = v.lock_timeout(T).unwrap();
    *g = 7;
    drop(g);
    c.notify_all();
    for k in &mut kids {
        assert_eq!(k.expect_line("GOT", T), "7");
    }
    // Nobody notifies: a timed wait times out and gives the lock back.
    let g = v.lock().unwrap();
    let (g, r) = c.wait_timeout(g, Duration::from_millis(5)).unwrap();
    assert!(r.timed_out() || *g == 7);
    let (g, r) = c.wait_timeout_while(g, Duration::from_millis(5), |_| true).unwrap();
    assert!(r.timed_out());
    drop(g);
}

#[test]
fn a_barrier_releases_its_parties_with_one_leader_per_round() {
    let name = Name::new("br");
    let b = Barrier::create(&name, 3).unwrap();
    let mut kids: Vec<_> = (0..2).map(|_| spawn("barrier_wait", &[&name, "5"])).collect();
    for k in &mut kids {
        k.expect_line("OPEN", T);
    }
    for _ in 0..5 {
        let mine = b.wait_timeout(T).unwrap().is_leader();
        let theirs: Vec<bool> = kids.iter_mut().map(|k| k.expect_line("PASSED", T) == "true").collect();
        assert_eq!(theirs.iter().filter(|l| **l).count() + usize::from(mine), 1);
    }
    assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (3, 0, false));
}

#[test]
fn a_party_killed_before_arriving_breaks_the_barrier_promptly() {
    let name = Name::new("bk");
    let b = Barrier::create(&name, 3).unwrap();
    let mut absent = spawn("barrier_open", &[&name]);
    absent.expect_line("OPEN", T);
    let mut waiter = spawn("barrier_wait", &[&name, "1"]);
    waiter.expect_line("OPEN", T);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        absent.kill();
    });
    // Broken, not Timeout: the death is noticed, not waited out.
    assert_eq!(b.wait_timeout(T).unwrap_err(), BarrierError::Broken);
    assert_eq!(waiter.expect_line("FAILED", T), "Broken");
    killer.join().unwrap();
    assert!(b.is_broken());
    assert_eq!(b.wait().unwrap_err(), BarrierError::Broken);
    // Reset forgets the dead party: a replacement makes the three again.
    b.reset();
    let mut kids: Vec<_> = (0..2).map(|_| spawn("barrier_wait", &[&name, "1"])).collect();
    for k in &mut kids {
        k.expect_line("OPEN", T);
    }
    b.wait_timeout(T).unwrap();
    for k in &mut kids {
        k.expect_line("PASSED", T);
    }
}

#[test]
fn abort_and_timeout_break_the_barrier_for_every_waiter() {
    let name = Name::new("ba");
    let b = Barrier::create(&name, 3).unwrap();
    let mut kid = spawn("barrier_wait", &[&name, "1"]);
    kid.expect_line("OPEN", T);
    while b.n_waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    b.abort();
    assert_eq!(kid.expect_line("FAILED", T), "Broken");
    b.reset();
    let mut kid = spawn("barrier_wait", &[&name, "1"]);
    kid.expect_line("OPEN", T);
    while b.n_waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        b.wait_timeout(Duration::from_millis(30)).unwrap_err(),
        BarrierError::Timeout
    );
    assert_eq!(kid.expect_line("FAILED", T), "Broken");
    assert!(matches!(
        Barrier::create(&Name::new("b0"), 0),
        Err(OpenError::InvalidSize { .. })
    ));
}
