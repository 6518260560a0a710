//! `Lock` between real processes: exclusion, a holder SIGKILLed (owner-died, then repaired or
//! declined), and what inspection reports.

mod common;

use common::{Name, child_main, say, spawn, wait_parent};
use shmproc::inspect::{KindState, LockStatus, Status};
use shmproc::{Lock, LockError, OpenError, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // hold [name]: takes the lock and keeps it until killed or told to go.
        "hold" => {
            let l = Lock::open(&args[0]).unwrap();
            let g = l.lock().unwrap();
            say("LOCKED");
            wait_parent();
            drop(g);
            say("UNLOCKED");
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn a_lock_excludes_other_processes_until_released() {
    let name = Name::new("lx");
    let lock = Lock::create(&name).unwrap();
    let mut kid = spawn("hold", &[&name]);
    kid.expect_line("LOCKED", T);
    assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
    assert!(matches!(
        lock.lock_timeout(Duration::from_millis(20)),
        Err(LockError::Timeout)
    ));
    kid.send("go");
    kid.expect_line("UNLOCKED", T);
    let g = lock.lock_timeout(T).unwrap();
    assert!(!g.is_owner_died());
}

#[test]
fn a_holder_killed_is_reported_to_the_next_locker_who_repairs_or_declines() {
    let name = Name::new("lk");
    let lock = Lock::create(&name).unwrap();
    let mut kid = spawn("hold", &[&name]);
    kid.expect_line("LOCKED", T);
    let pid = kid.pid() as u32;
    kid.kill();
    let Status::Ready(d) = shmproc::inspect::inspect(&name).unwrap().status else {
        panic!()
    };
    let KindState::Lock { lock: report } = &d.state else {
        panic!("{d:?}")
    };
    assert!(matches!(report.state, LockStatus::Held { pid: Some(p), alive: false, .. } if p == pid));
    // Taken over: repaired, the lock is clean again.
    let Err(LockError::OwnerDied(mut g)) = lock.lock() else {
        panic!("no owner-died")
    };
    assert!(g.is_owner_died());
    g.mark_consistent();
    drop(g);
    assert!(!lock.lock().unwrap().is_owner_died());
    // Killed again, and this time the recovery is declined: unrecoverable for everyone.
    let mut kid = spawn("hold", &[&name]);
    kid.expect_line("LOCKED", T);
    kid.kill();
    let Err(LockError::OwnerDied(g)) = lock.lock() else {
        panic!("no owner-died")
    };
    drop(g);
    assert!(matches!(lock.try_lock(), Err(LockError::Unrecoverable)));
    assert!(matches!(
        Lock::open(&name).unwrap().lock(),
        Err(LockError::Unrecoverable)
    ));
}

#[test]
fn a_lock_is_its_own_kind() {
    let name = Name::new("lt");
    let _l = Lock::create(&name).unwrap();
    assert!(matches!(
        Value::<u64>::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(Lock::open_or_create(&name).is_ok());
}
