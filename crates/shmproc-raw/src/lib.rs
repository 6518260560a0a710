//! The pure algorithms under `shmproc`, over caller-provided memory: the lock word, the ring,
//! participant tokens and claim records.
//!
//! Nothing here makes a system call of its own or knows how its memory was mapped, and a
//! lock, unlock, put or get allocates nothing (a thread's first use of a handle leases it a
//! claim record through process-local bookkeeping in `claims`, which does). Waiting and "is
//! this owner alive?" are passed in through [`Wait`] and [`Liveness`], which `shmproc`'s `os`
//! layer implements with futexes and OFD-lock beacons and the tests implement with doubles.
//! That is what lets loom and Miri run the real algorithms on heap memory: `RUSTFLAGS="--cfg
//! loom" cargo test -p shmproc-raw --release` and `cargo miri test -p shmproc-raw`.
//!
//! This crate is an implementation detail of `shmproc` (as `parking_lot_core` is of
//! `parking_lot`): its API follows `shmproc`'s needs and has no stability promise.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]
// The module docs explain each algorithm through its private constants and helpers; they are
// read with `cargo doc --document-private-items` or in the source.
#![allow(rustdoc::private_intra_doc_links)]

use crate::primitive::AtomicU32;
use std::time::{Duration, Instant};

pub mod barrier;
pub mod claims;
pub mod condvar;
#[cfg(not(loom))]
pub mod copy;
pub mod event;
pub mod fault;
pub mod lock;
pub mod primitive;
pub mod ring;
pub mod semaphore;

/// Bits of an [`Owner`] token that hold the participant index.
pub const OWNER_INDEX_BITS: u32 = 10;
/// Largest number of participant records a segment can have (index fits in the token).
pub const MAX_PARTICIPANTS: u32 = 1 << OWNER_INDEX_BITS;
/// Generations wrap within this many bits (never 0, so a token is never 0).
pub const OWNER_GENERATION_BITS: u32 = 32 - OWNER_INDEX_BITS;

/// Identity of a participant (one handle to a segment) as it is stored in shared words.
///
/// | bits    | meaning                                                      |
/// |---------|--------------------------------------------------------------|
/// | 0..10   | index of the participant record                              |
/// | 10..32  | generation of that record (1..2^22; bumped at every reuse)   |
///
/// The value 0 means "nobody". Because a reused record gets a new generation, a token held
/// by a dead process never vouches for the record's next occupant.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Owner(pub u32);

impl Owner {
    /// Token for record `index` at `generation` (generation is masked, 0 becomes 1).
    pub fn new(index: u32, generation: u32) -> Owner {
        let g = generation & ((1 << OWNER_GENERATION_BITS) - 1);
        let g = if g == 0 { 1 } else { g };
        Owner((g << OWNER_INDEX_BITS) | (index & (MAX_PARTICIPANTS - 1)))
    }
    /// The record index (always `< MAX_PARTICIPANTS`).
    pub fn index(self) -> u32 {
        self.0 & (MAX_PARTICIPANTS - 1)
    }
    /// The record generation.
    pub fn generation(self) -> u32 {
        self.0 >> OWNER_INDEX_BITS
    }
}

/// Next generation after `g`, skipping 0.
pub fn next_generation(g: u32) -> u32 {
    let n = g.wrapping_add(1) & ((1 << OWNER_GENERATION_BITS) - 1);
    if n == 0 { 1 } else { n }
}

/// The liveness oracle: who am I, and is the owner named by a token still alive?
///
/// Implementations must answer `true` for `me()` and must never answer `false` for a
/// participant that is alive (a false "dead" would let two processes into a critical
/// section). A false "alive" only delays recovery.
pub trait Liveness {
    /// The caller's own token.
    fn me(&self) -> Owner;
    /// Whether the participant named by `owner` is alive.
    fn is_alive(&self, owner: Owner) -> bool;
    /// [`is_alive`](Liveness::is_alive) for the claims of a queue's hot paths (a get that
    /// finds a position claimed and not yet published, or a put one claimed and not yet
    /// released, looks for the claimant's record), where the owner is nearly always alive and
    /// about to finish: the answer may be a positive one up to a millisecond old (never a
    /// negative one), so that those paths do not make a system call each time. Same
    /// contract: never "dead" for a live owner.
    fn is_alive_recent(&self, owner: Owner) -> bool {
        self.is_alive(owner)
    }
}

/// How the algorithms sleep and wake across processes.
pub trait Wait {
    /// Sleeps while `word` holds `expected`, but not past `deadline` and not longer than the
    /// implementation's re-check slice. Spurious returns are allowed: callers re-check.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>);
    /// Wakes every sleeper on `word`.
    fn wake_all(&self, word: &AtomicU32);
    /// Wakes at least one sleeper on `word` (default: all of them).
    fn wake_one(&self, word: &AtomicU32) {
        self.wake_all(word)
    }
    /// Wakes at least `n` sleepers on `word`, or all of them if fewer sleep (default: all).
    fn wake_n(&self, word: &AtomicU32, n: u32) {
        let _ = n;
        self.wake_all(word)
    }
    /// Pauses a poller (a waiter whose peer is mid-copy and will not wake it) before its
    /// `round`-th re-check: implementations yield the CPU first and sleep briefly, never past
    /// `deadline`, as rounds grow (the peer may be descheduled or stopped). Default: a spin
    /// hint (test doubles).
    fn pause(&self, round: u32, deadline: Option<Instant>) {
        let _ = (round, deadline);
        crate::primitive::spin_hint();
    }
}

/// The deadline `timeout` from now, or `None` (no deadline) when that instant lies beyond
/// what [`Instant`] can represent (`Duration::MAX` and the like).
///
/// Every `_timeout` call of the crate turns its timeout into a deadline here, so a timeout
/// too large to add to the clock means "wait without a deadline" everywhere, and
/// `Duration::ZERO` means a deadline that has already passed (one attempt).
#[inline]
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// True when `deadline` has passed.
pub fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

#[cfg(test)]
pub(crate) mod doubles {
    //! Test doubles for [`Liveness`] and [`Wait`] on heap memory (unit tests, Miri, loom).
    use super::{Liveness, Owner, Wait};
    use crate::primitive::{AtomicU32, AtomicU64, Ordering};
    use std::time::Instant;

    /// Liveness from a shared bitmap of dead indices (bit i set = participant i is dead).
    pub(crate) struct Oracle<'a> {
        pub(crate) me: Owner,
        pub(crate) dead: &'a AtomicU64,
    }

    impl Liveness for Oracle<'_> {
        fn me(&self) -> Owner {
            self.me
        }
        fn is_alive(&self, owner: Owner) -> bool {
            owner == self.me || self.dead.load(Ordering::SeqCst) & (1 << (owner.index() % 64)) == 0
        }
    }

    /// Waiting by yielding (loom) or spinning: spurious returns are always allowed.
    pub(crate) struct Yield;

    impl Wait for Yield {
        fn wait(&self, _word: &AtomicU32, _expected: u32, _deadline: Option<Instant>) {
            crate::primitive::spin_hint();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
        fn wake_all(&self, _word: &AtomicU32) {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owner_tokens_round_trip_and_are_never_zero() {
        for (i, g) in [(0, 0), (0, 1), (1023, 5), (7, (1 << 22) - 1), (3, 1 << 22)] {
            let o = Owner::new(i, g);
            assert_ne!(o.0, 0);
            assert_eq!(o.index(), i);
            assert_ne!(o.generation(), 0);
        }
        assert_eq!(next_generation((1 << 22) - 1), 1);
        assert_eq!(next_generation(1), 2);
    }

    #[test]
    fn huge_timeouts_mean_no_deadline() {
        assert_eq!(deadline_after(Duration::MAX), None);
        assert_eq!(deadline_after(Duration::new(u64::MAX, 999_999_999)), None);
        let zero = deadline_after(Duration::ZERO).unwrap();
        assert!(expired(Some(zero)));
        assert!(!expired(deadline_after(Duration::from_secs(3600))));
        assert!(!expired(None));
    }
}
