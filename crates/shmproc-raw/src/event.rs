//! A cross-process event flag (Python's `multiprocessing.Event`): `set` wakes every waiter in
//! every process, `clear` lowers the flag, `wait` sleeps until it is set.
//!
//! Protocol: `models/signal_model.py` (event). The flag, a waiters mark and a generation
//! share one 32-bit word that sleepers futex-wait on directly, so a `set` can never slip in
//! between a waiter's last look and its sleep (the futex compares the whole word). The
//! generation makes a `set` followed at once by a `clear` still release everyone who was
//! waiting: a waiter returns when the flag is up *or* the generation moved since it began.
//!
//! A setter killed between its CAS and its wake-up leaves sleepers to their re-check slice
//! ([`Wait::wait`] never sleeps longer than one), so they notice the flag a slice late at
//! worst; nothing else a dead process can leave behind matters to an event.

use crate::primitive::{AtomicU32, Ordering};
use crate::{Wait, expired};
use std::time::Instant;

/// The flag is set.
const SET: u32 = 1;
/// Somebody may sleep on the word: `set` must wake.
const WAITERS: u32 = 2;
/// One step of the generation (bits 2..32), bumped by every `set` that raises the flag.
const GEN_ONE: u32 = 4;

/// The shared state of one event: 8 bytes, all atomics, so any bit pattern is a valid value.
///
/// `word`:
///
/// | bits  | meaning                                              |
/// |-------|------------------------------------------------------|
/// | 0     | `SET`: the flag is up                                |
/// | 1     | `WAITERS`: somebody may sleep on the word            |
/// | 2..32 | generation: how many times the flag went up (wraps)  |
///
/// All-zero bytes are a clear event with no waiters.
#[repr(C)]
pub struct EventState {
    word: AtomicU32,
    reserved: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<EventState>() == 8 || cfg!(loom));

impl Default for EventState {
    fn default() -> Self {
        Self::new()
    }
}

impl EventState {
    /// A clear event (the same state as all-zero bytes).
    pub fn new() -> EventState {
        EventState {
            word: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
        }
    }

    /// Whether the flag is up. Acquire: pairs with `set`'s release, so what the setter wrote
    /// before setting is visible to whoever sees the flag.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Whether the waiters mark is up: somebody began to sleep on the word since the last
    /// `set` (a mark, not a count: a waiter that timed out or died leaves it up until the next
    /// `set`). For reports; no protocol step reads it this way.
    #[inline]
    pub fn waiters_marked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }

    /// `set`: raises the flag (a no-op if it is up) and wakes every sleeper.
    pub fn set(&self, wait: &impl Wait) {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & SET != 0 {
                return;
            }
            // The waiters mark is cleared: everyone asleep now is woken below, and a waiter
            // that goes on waiting sets it again.
            let new = (w & !(SET | WAITERS)).wrapping_add(GEN_ONE) | SET;
            // Release: pairs with the waiters' acquire loads. SeqCst: ordered before the
            // wake-up's look at async waiters (see `announce`).
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        // `wake`: after the CAS, so a sleeper whose futex compared the old word is woken.
        if w & WAITERS != 0 {
            wait.wake_all(&self.word);
        }
    }

    /// `clear`: lowers the flag (the generation and the waiters mark stay).
    pub fn clear(&self) {
        self.word.fetch_and(!SET, Ordering::AcqRel);
    }

    /// The first look of a waiter that waits in its own way (an async task): the word to pass
    /// to [`released`](EventState::released) and [`announce`](EventState::announce).
    #[inline]
    pub fn first_look(&self) -> u32 {
        self.word.load(Ordering::Acquire)
    }

    /// Whether a waiter whose first look was `first` may return: the flag is up, or went up
    /// since (the generation moved).
    #[inline]
    pub fn released(&self, first: u32) -> bool {
        let w = self.word.load(Ordering::Acquire);
        w & SET != 0 || w & !(SET | WAITERS) != first & !(SET | WAITERS)
    }

    /// `set waiters` for a waiter that does not futex-wait: after it, a `set` calls
    /// [`Wait::wake_all`], which the caller's `Wait` turns into its wake-up. SeqCst: ordered
    /// after whatever the caller did to be found by that wake-up (the async doorbell's arm).
    pub fn announce(&self) {
        let mut w = self.word.load(Ordering::SeqCst);
        for _ in 0..64 {
            if w & (SET | WAITERS) != 0 {
                return;
            }
            match self
                .word
                .compare_exchange(w, w | WAITERS, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(x) => w = x,
            }
        }
    }

    /// `wait`: returns `true` once the flag is up, or went up since this call began (even if
    /// it was cleared again before this waiter looked); `false` when `deadline` passed first.
    pub fn wait(&self, deadline: Option<Instant>, wait: &impl Wait) -> bool {
        let first = self.word.load(Ordering::Acquire);
        if first & SET != 0 {
            return true;
        }
        let generation = first & !(SET | WAITERS);
        let mut w = first;
        loop {
            if w & SET != 0 || w & !(SET | WAITERS) != generation {
                return true;
            }
            if expired(deadline) {
                return false;
            }
            // `set waiters`, then `sleep` on the word as it is with the mark.
            if w & WAITERS == 0 {
                if let Err(x) = self
                    .word
                    .compare_exchange_weak(w, w | WAITERS, Ordering::Acquire, Ordering::Acquire)
                {
                    w = x;
                    continue;
                }
                w |= WAITERS;
            }
            wait.wait(&self.word, w, deadline);
            w = self.word.load(Ordering::Acquire);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::doubles::Yield;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn set_clear_wait() {
        let e = EventState::new();
        assert!(!e.is_set());
        assert!(!e.wait(crate::deadline_after(Duration::ZERO), &Yield));
        e.set(&Yield);
        assert!(e.is_set());
        assert!(e.wait(None, &Yield));
        e.set(&Yield);
        e.clear();
        assert!(!e.is_set());
        assert!(!e.wait(crate::deadline_after(Duration::from_millis(1)), &Yield));
    }

    #[test]
    fn a_set_then_clear_releases_who_was_waiting() {
        let e = Arc::new(EventState::new());
        let waiter = {
            let e = e.clone();
            std::thread::spawn(move || e.wait(crate::deadline_after(Duration::from_secs(20)), &Yield))
        };
        // Let the waiter start, then set and clear at once.
        while e.word.load(Ordering::Relaxed) & WAITERS == 0 {
            std::thread::yield_now();
        }
        e.set(&Yield);
        e.clear();
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn garbage_words_never_panic() {
        for w in [u32::MAX, u32::MAX - 1, 2, 0x8000_0000] {
            let e = EventState::new();
            e.word.store(w, Ordering::Relaxed);
            let _ = e.is_set();
            let _ = e.wait(crate::deadline_after(Duration::ZERO), &Yield);
            e.clear();
            e.set(&Yield);
            assert!(e.is_set());
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::doubles::Yield;
    use loom::sync::Arc;

    /// A set after a waiter began is never lost, even if a clear follows at once.
    #[test]
    fn set_reaches_a_waiter() {
        loom::model(|| {
            let e = Arc::new(EventState::new());
            let e2 = e.clone();
            let t = loom::thread::spawn(move || {
                e2.set(&Yield);
                e2.clear();
            });
            assert!(e.wait(None, &Yield));
            t.join().unwrap();
        });
    }
}
