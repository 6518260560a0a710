//! `Value` and `Array` conformance tests: the lock, guards, bounds, and a lock holder's death.

use crate::{Backend, LONG, ms};
use shmproc::LockError;
use shmproc::testing::Handle;
use std::panic::{AssertUnwindSafe, catch_unwind};

// ---------------------------------------------------------------------------------------------
// Value

pub(crate) fn value_lock_load_store<B: Backend>() {
    let v = B::value::<u64>(7);
    let peer = v.peer().unwrap();
    assert_eq!(v.load().unwrap(), 7);
    v.store(8).unwrap();
    assert_eq!(peer.load().unwrap(), 8);
    {
        let mut g = peer.lock().unwrap();
        assert!(!g.is_owner_died());
        *g += 1;
    }
    assert_eq!(v.load().unwrap(), 9);
    {
        let mut g = v.lock().unwrap();
        *g = 10;
        g.flush();
        assert_eq!(*g, 10);
    }
    assert_eq!(peer.load().unwrap(), 10);

    let pair = B::value::<[u16; 3]>([1, 2, 3]);
    pair.store([4, 5, 6]).unwrap();
    assert_eq!(pair.peer().unwrap().load().unwrap(), [4, 5, 6]);
}

pub(crate) fn value_try_lock_would_block_and_lock_timeout<B: Backend>() {
    let v = B::value::<u64>(0);
    let peer = v.peer().unwrap();
    let g = v.lock().unwrap();
    assert!(matches!(peer.try_lock(), Err(LockError::WouldBlock)));
    assert!(matches!(peer.lock_timeout(ms(20)), Err(LockError::Timeout)));
    drop(g);
    let mut g = peer.try_lock().unwrap();
    *g = 1;
    drop(g);
    assert_eq!(*v.lock_timeout(ms(20)).unwrap(), 1);
}

pub(crate) fn value_owner_died_then_repaired<B: Backend>() {
    let v = B::value::<u64>(1);
    let dying = v.peer().unwrap();
    {
        let mut g = dying.lock().unwrap();
        *g = 2;
        g.flush(); // a half-done update reached shared memory...
        std::mem::forget(g); // ...and the process died holding the lock
    }
    dying.simulate_crash();
    match v.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert!(g.is_owner_died());
            assert_eq!(*g, 2, "the dead owner's writes are visible");
            *g = 3;
            g.mark_consistent();
            assert!(!g.is_owner_died());
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert_eq!(v.load().unwrap(), 3, "clean again after mark_consistent");
    assert_eq!(v.peer().unwrap().load().unwrap(), 3);
}

pub(crate) fn value_blocked_locker_sees_owner_died<B: Backend>() {
    let v = B::value::<u64>(0);
    let dying = v.peer().unwrap();
    std::mem::forget(dying.lock().unwrap());
    std::thread::scope(|s| {
        let waiter = s.spawn(|| match v.lock_timeout(LONG) {
            Err(LockError::OwnerDied(mut g)) => {
                *g += 1;
                g.mark_consistent();
            }
            other => panic!("expected OwnerDied, got {other:?}"),
        });
        dying.simulate_crash();
        waiter.join().unwrap();
    });
    assert_eq!(v.load().unwrap(), 1);
}

pub(crate) fn value_declined_repair_is_unrecoverable<B: Backend>() {
    let v = B::value::<u64>(1);
    let dying = v.peer().unwrap();
    std::mem::forget(dying.lock().unwrap());
    dying.simulate_crash();
    match v.lock() {
        Err(LockError::OwnerDied(g)) => drop(g), // no mark_consistent: repair declined
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(matches!(v.lock(), Err(LockError::Unrecoverable)));
    assert!(matches!(v.try_lock(), Err(LockError::Unrecoverable)));
    assert!(matches!(v.lock_timeout(ms(10)), Err(LockError::Unrecoverable)));
    let other = v.peer().unwrap();
    assert!(matches!(other.load(), Err(LockError::Unrecoverable)));
    assert!(matches!(other.store(2), Err(LockError::Unrecoverable)));
}

// ---------------------------------------------------------------------------------------------
// Array

pub(crate) fn array_get_set_read_into_write_from<B: Backend>() {
    let a = B::array::<u32>(5, 7);
    assert_eq!(a.len(), 5);
    assert!(!a.is_empty());
    assert_eq!(a.to_vec().unwrap(), vec![7; 5]);
    let peer = a.peer().unwrap();
    assert_eq!(peer.len(), 5);
    {
        let mut g = a.lock().unwrap();
        g.set(0, 1);
        assert_eq!(g.get(0), 1);
        g.write_from(2, &[20, 30, 40]);
        let mut out = [0; 3];
        g.read_into(1, &mut out);
        assert_eq!(out, [7, 20, 30]);
        g[4] += 1; // through a snapshot, written back when the guard drops
        assert_eq!(g.get(4), 41);
        assert_eq!(&g[..], &[1, 7, 20, 30, 41]);
        g.set(1, 8); // keeps the snapshot in step
        assert_eq!(g[1], 8);
    }
    assert_eq!(peer.to_vec().unwrap(), vec![1, 8, 20, 30, 41]);
    let wide = B::array::<u64>(3, u64::MAX);
    wide.lock().unwrap().write_from(0, &[1, 2]);
    assert_eq!(wide.peer().unwrap().to_vec().unwrap(), vec![1, 2, u64::MAX]);
}

pub(crate) fn array_bounds_are_checked<B: Backend>() {
    let a = B::array::<u32>(4, 0);
    a.lock().unwrap().write_from(0, &[1, 2, 3, 4]);
    let mut g = a.lock().unwrap();
    let panics = |f: &mut dyn FnMut()| catch_unwind(AssertUnwindSafe(f)).is_err();
    assert!(panics(&mut || {
        g.get(4);
    }));
    assert!(panics(&mut || g.set(4, 9)));
    assert!(panics(&mut || g.read_into(2, &mut [0; 3])));
    assert!(panics(&mut || g.write_from(2, &[9, 9, 9])));
    assert!(panics(&mut || g.write_from(usize::MAX, &[9])));
    // Edges are fine: the last element, and empty ranges at the end.
    assert_eq!(g.get(3), 4);
    g.read_into(4, &mut []);
    g.write_from(4, &[]);
    drop(g);
    assert_eq!(
        a.to_vec().unwrap(),
        vec![1, 2, 3, 4],
        "a refused write_from writes nothing"
    );
}

pub(crate) fn array_owner_died_then_repaired<B: Backend>() {
    let a = B::array::<u64>(3, 0);
    let dying = a.peer().unwrap();
    {
        let mut g = dying.lock().unwrap();
        g.set(0, 5); // set writes through at once: a half-done update
        std::mem::forget(g);
    }
    dying.simulate_crash();
    match a.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(g.to_vec(), vec![5, 0, 0]);
            g.set(1, 5);
            g.set(2, 5);
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert_eq!(a.to_vec().unwrap(), vec![5, 5, 5]);
}
