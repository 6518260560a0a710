//! A cross-process condition variable (Python's `multiprocessing.Condition`, Rust's
//! `std::sync::Condvar`) used with any lock of the crate.
//!
//! Protocol: `models/signal_model.py` (condition). A notify counter `seq` that sleepers
//! futex-wait on, as the futex condition variable of Rust's `std` (and Drepper, "Futexes Are
//! Tricky", 2011) does, plus a count of `waiters` so that a notify with nobody waiting makes no
//! system call. A waiter counts itself and reads `seq` while it still holds the lock, then
//! unlocks and sleeps while `seq` is unchanged: a notifier that changed the shared state under
//! the same lock after the waiter unlocked bumps `seq` after the waiter read it, so the sleep
//! returns at once instead of missing it (no lost wake-up). Returns without a notify are
//! possible (spurious wake-ups, as with `Condvar`); callers re-check their condition.
//!
//! A waiter killed while it waits leaves its count in `waiters` for good: notifies then make
//! the wake-up system call even when nobody sleeps, which costs time and nothing else. A
//! waiter killed after a notify woke it, before it relocked, would take that notify with it;
//! so sleeps are bounded slices, and a sleeper whose slice ends after a notify returns too
//! (see [`CondState::sleep`]).

use crate::Wait;
use crate::primitive::{AtomicU32, Ordering};
use std::time::Instant;

/// The shared state of one condition variable: 8 bytes, all atomics, any bits valid.
///
/// | field     | meaning                                                       |
/// |-----------|---------------------------------------------------------------|
/// | `seq`     | notify counter (wraps); sleepers wait while it is unchanged    |
/// | `waiters` | processes between `count waiter` and `uncount` (wraps)         |
#[repr(C)]
pub struct CondState {
    seq: AtomicU32,
    waiters: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<CondState>() == 8 || cfg!(loom));

impl Default for CondState {
    fn default() -> Self {
        Self::new()
    }
}

impl CondState {
    /// No waiters, no notifies (the same state as all-zero bytes).
    pub fn new() -> CondState {
        CondState {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// The notify counter and the waiters counted now (one load each), for inspection.
    pub fn peek(&self) -> (u32, u32) {
        (self.seq.load(Ordering::Acquire), self.waiters.load(Ordering::Acquire))
    }

    /// `count waiter` and `read seq`, called while the caller still holds the lock. Returns
    /// the ticket to pass to [`sleep`](CondState::sleep) after unlocking. SeqCst, with the
    /// notifier's load of `waiters` and bump of `seq`: a notifier that finds no waiter
    /// counted comes before this count in the one total order, hence before the caller's
    /// look at the shared state under the lock.
    pub fn prepare(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.seq.load(Ordering::SeqCst)
    }

    /// `sleep`: after unlocking, sleeps while `seq` still equals `ticket`, until a notify,
    /// `deadline` or a spurious return. Then the caller relocks and calls
    /// [`done`](CondState::done).
    ///
    /// Each sleep is one re-check slice of [`Wait::wait`] at most, and a sleeper whose slice
    /// ends after a notify returns too: a waiter that a notify woke and that was killed before
    /// it relocked would otherwise take the notify with it and leave the others asleep
    /// (`models/signal_model.py`, `strict`). So besides the ones a notify wakes, others may
    /// return within a slice (spurious wake-ups, which callers tolerate anyway).
    pub fn sleep(&self, ticket: u32, deadline: Option<Instant>, wait: &impl Wait) {
        while self.seq.load(Ordering::SeqCst) == ticket && !crate::expired(deadline) {
            wait.wait(&self.seq, ticket, deadline);
        }
    }

    /// `uncount`: the waiter is done waiting.
    pub fn done(&self) {
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a notify came since `ticket` was taken.
    pub fn notified_since(&self, ticket: u32) -> bool {
        self.seq.load(Ordering::SeqCst) != ticket
    }

    /// `notify`: wakes up to `n` waiters (`u32::MAX`: all). Does nothing when none is counted.
    pub fn notify(&self, n: u32, wait: &impl Wait) {
        if n == 0 || self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        // `bump seq` before `wake`: a waiter that has read the old value and not yet slept
        // finds the futex word changed and returns at once.
        self.seq.fetch_add(1, Ordering::SeqCst);
        if n == u32::MAX {
            wait.wake_all(&self.seq);
        } else {
            wait.wake_n(&self.seq, n);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::doubles::Yield;

    #[test]
    fn notify_with_no_waiter_changes_nothing() {
        let c = CondState::new();
        c.notify(1, &Yield);
        assert_eq!(c.seq.load(Ordering::Relaxed), 0);
        let t = c.prepare();
        c.notify(1, &Yield);
        assert!(c.notified_since(t));
        c.sleep(t, None, &Yield); // returns at once: seq moved
        c.done();
        assert_eq!(c.waiters.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::doubles::Yield;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Mutex};

    /// No lost wake-up: a waiter that checked the flag under the lock and found it false
    /// is released by a notify that follows the notifier's set under the lock.
    #[test]
    fn notify_after_set_under_the_lock_is_seen() {
        loom::model(|| {
            let lock = Arc::new(Mutex::new(()));
            let flag = Arc::new(AtomicBool::new(false));
            let c = Arc::new(CondState::new());
            let (l2, f2, c2) = (lock.clone(), flag.clone(), c.clone());
            let t = loom::thread::spawn(move || {
                let g = l2.lock().unwrap();
                f2.store(true, Ordering::Relaxed);
                drop(g);
                c2.notify(1, &Yield);
            });
            let mut g = lock.lock().unwrap();
            while !flag.load(Ordering::Relaxed) {
                let ticket = c.prepare();
                drop(g);
                // The test double returns at once; a lost wake-up shows as a ticket that
                // never changes, which loom reports as a hang.
                while !c.notified_since(ticket) {
                    c.sleep(ticket, None, &Yield);
                }
                g = lock.lock().unwrap();
                c.done();
            }
            drop(g);
            t.join().unwrap();
        });
    }
}
