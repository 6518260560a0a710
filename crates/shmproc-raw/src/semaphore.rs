//! A cross-process counting semaphore whose permits come back when a holder dies.
//!
//! Protocol: `models/semaphore_model.py` (the names below follow it: `load word`, `help`,
//! `load record`, `claim`, `apply`, `reclaim`, `sleep`).
//!
//! The available permits are a count in one word. Besides, every participant has a record of
//! the permits it holds through guards, so that when it dies the permits it held can be
//! returned (otherwise a pool of N permits shrinks to nothing after N crashes). Moving a
//! permit between the count and a record is two writes to two words, and a process may be
//! killed between them; so every such move is named in the count word itself: the `claim` CAS
//! that changes the count also writes a tag (participant index, operation, sequence number),
//! and the record carries the sequence number of the last operation applied to it. The
//! operation a tag names is applied to its record (by its own process right after the claim,
//! or by anybody who comes next: `help`) before any other claim may replace the tag. So at
//! most one operation is ever half done, the one the word names, and anyone can finish it.
//! This is the announce-then-help pattern of lock-free multi-word updates (Harris, Fraser and
//! Pratt, "A Practical Multi-Word Compare-and-Swap Operation", 2002), reduced to one pending
//! operation.
//!
//! A dead participant's permits are returned by `reclaim`: a claim whose tag names the dead
//! participant's record with the operation "reclaim", adding its held permits to the count,
//! then applied like any other. Waiters reclaim before each sleep; a handle reclaims what a
//! previous occupant of its record left when it registers, and its own leftovers when dropped.
//!
//! Waiting: a waiter counts itself in `sleepers` and futex-waits on the eventcount `wake`;
//! a claim that adds permits bumps `wake` and wakes when it sees a sleeper (SeqCst on both
//! sides, as in `raw::lock`). Sleeps are bounded slices, so permits of a holder killed at any
//! instant are found at the next slice even if no wake-up comes.

use crate::primitive::{AtomicU32, AtomicU64, Ordering, spin_hint};
use crate::{Liveness, Owner, Wait, expired};
use std::time::Instant;

/// The count field of the word.
const COUNT_MASK: u64 = 0xFFFF_FFFF;
/// The tag's participant index: bits 32..42.
const INDEX_SHIFT: u32 = 32;
const INDEX_MASK: u64 = (crate::MAX_PARTICIPANTS - 1) as u64;
/// The tag's operation: bits 42..45.
const OP_SHIFT: u32 = 42;
const OP_MASK: u64 = 0b111;
/// The tag's sequence number: bits 45..64 (19 bits, wrapping); in a record, bits 32..51.
const SEQ_SHIFT: u32 = 45;
const SEQ_MASK: u64 = (1 << 19) - 1;
const REC_SEQ_SHIFT: u32 = 32;

/// Operations a tag names (`op` field). `OP_NONE` only in a fresh word: a release that
/// adds a permit nobody held keeps the tag it found.
const OP_NONE: u64 = 0;
/// A permit taken through a guard: count - 1, held + 1.
const OP_TAKE: u64 = 1;
/// A guard's permit given back: count + 1, held - 1.
const OP_GIVE: u64 = 2;
/// A dead participant's permits returned: count + held, held = 0.
const OP_RECLAIM: u64 = 3;
/// A guard's permit kept for good (`forget`): held - 1, count unchanged.
const OP_FORGET: u64 = 4;

/// Spin rounds of a blocking `take` before it sleeps (exponential backoff, as in `raw::lock`).
const BACKOFF_ROUNDS: u32 = if cfg!(loom) { 0 } else { 12 };
/// CAS attempts of a non-blocking call before it reports contention.
const TRIES: u32 = if cfg!(loom) { 4 } else { 64 };
/// CAS attempts of a `give` (a guard's drop, which cannot fail) before it gives up on a word
/// that a peer keeps rewriting; the pauses between them add up to seconds.
const GIVE_TRIES: u32 = if cfg!(loom) { 4 } else { 4096 };

#[inline]
fn count_of(w: u64) -> u32 {
    (w & COUNT_MASK) as u32
}

#[inline]
fn pack(count: u32, index: u32, op: u64, seq: u64) -> u64 {
    u64::from(count)
        | (u64::from(index) & INDEX_MASK) << INDEX_SHIFT
        | (op & OP_MASK) << OP_SHIFT
        | (seq & SEQ_MASK) << SEQ_SHIFT
}

#[inline]
fn held_of(r: u64) -> u32 {
    (r & COUNT_MASK) as u32
}

#[inline]
fn rec_seq(r: u64) -> u64 {
    (r >> REC_SEQ_SHIFT) & SEQ_MASK
}

/// The record after operation `op` with sequence number `seq` is applied to record `r`.
#[inline]
fn applied(r: u64, op: u64, seq: u64) -> u64 {
    let h = held_of(r);
    let h = match op {
        OP_TAKE => h.saturating_add(1),
        OP_GIVE | OP_FORGET => h.saturating_sub(1),
        _ => 0,
    };
    u64::from(h) | (seq & SEQ_MASK) << REC_SEQ_SHIFT
}

/// The shared state of one semaphore: 16 bytes, all atomics, any bit pattern valid.
///
/// `word`:
///
/// | bits   | meaning                                                           |
/// |--------|-------------------------------------------------------------------|
/// | 0..32  | available permits                                                 |
/// | 32..42 | tag: index of the record the last claim changes                   |
/// | 42..45 | tag: operation (none, take, give, reclaim, forget)                |
/// | 45..64 | tag: sequence number the record shows once the claim is applied   |
///
/// `wake` is the eventcount sleepers wait on; `sleepers` counts them.
#[repr(C)]
pub struct SemState {
    word: AtomicU64,
    wake: AtomicU32,
    sleepers: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<SemState>() == 16 || cfg!(loom));

/// One participant's record: 16 bytes, all atomics.
///
/// `held`:
///
/// | bits   | meaning                                                  |
/// |--------|----------------------------------------------------------|
/// | 0..32  | permits this participant holds through guards            |
/// | 32..51 | sequence number of the last operation applied here       |
///
/// `owner` is the token of the handle using the record (0: none), which `reclaim` asks the
/// liveness oracle about.
#[repr(C)]
pub struct Holding {
    held: AtomicU64,
    owner: AtomicU32,
    reserved: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<Holding>() == 16 || cfg!(loom));

impl Default for Holding {
    fn default() -> Self {
        Holding {
            held: AtomicU64::new(0),
            owner: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
        }
    }
}

impl Holding {
    /// Permits recorded here, and the token of the handle using the record (one load each,
    /// for inspection).
    pub fn peek(&self) -> (u32, Option<Owner>) {
        let o = self.owner.load(Ordering::Acquire);
        (held_of(self.held.load(Ordering::Acquire)), (o != 0).then_some(Owner(o)))
    }
}

/// Why a semaphore call failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SemFailure {
    /// No permit (a `try_` call), or none before the deadline.
    WouldBlock,
    /// A release would take the permits past the bound (or past `u32::MAX`).
    AboveBound,
}

/// One attempt's outcome.
enum Step {
    Done,
    /// The word changed under us: try again.
    Retry,
    /// No permit to take.
    Empty,
}

impl Default for SemState {
    fn default() -> Self {
        Self::new(0)
    }
}

impl SemState {
    /// A semaphore with `permits` available and no tag.
    pub fn new(permits: u32) -> SemState {
        SemState {
            word: AtomicU64::new(u64::from(permits)),
            wake: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Available permits now (one load).
    pub fn available(&self) -> u32 {
        count_of(self.word.load(Ordering::Acquire))
    }

    /// `help`: applies the operation that word `w` names to its record, unless it is applied.
    #[inline]
    fn help(&self, recs: &[Holding], w: u64) {
        let op = (w >> OP_SHIFT) & OP_MASK;
        if op == OP_NONE || op > OP_FORGET {
            return;
        }
        let Some(rec) = recs.get(((w >> INDEX_SHIFT) & INDEX_MASK) as usize) else {
            return;
        };
        let seq = (w >> SEQ_SHIFT) & SEQ_MASK;
        let r = rec.held.load(Ordering::Acquire);
        if rec_seq(r) != seq.wrapping_sub(1) & SEQ_MASK {
            return; // applied (or a record a peer rewrote: nothing to finish)
        }
        // A failure means somebody else applied it first.
        let _ = rec
            .held
            .compare_exchange(r, applied(r, op, seq), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// One attempt at `op` (take, give or forget) on `me`'s record: `load word`, `help`,
    /// `load record`, `claim`, `apply`.
    #[inline]
    fn step(&self, recs: &[Holding], me: Owner, op: u64) -> Step {
        let w = self.word.load(Ordering::Acquire);
        self.help(recs, w);
        let c = count_of(w);
        let Some(rec) = recs.get(me.index() as usize) else {
            return Step::Empty; // our own record is outside the table: a layout the caller checks
        };
        let r = rec.held.load(Ordering::Acquire);
        let c = match op {
            OP_TAKE if c == 0 => return Step::Empty,
            OP_TAKE => c - 1,
            OP_GIVE => c.saturating_add(1),
            _ if held_of(r) == 0 => return Step::Done, // nothing to forget
            _ => c,
        };
        let seq = (rec_seq(r) + 1) & SEQ_MASK;
        // `claim`. SeqCst: a give's claim is ordered before its look at `sleepers`.
        if self
            .word
            .compare_exchange(w, pack(c, me.index(), op, seq), Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Step::Retry;
        }
        // `apply` (a CAS, not a store: another thread of this handle may already have applied
        // it as a helper and gone on to its own next operation).
        let _ = rec
            .held
            .compare_exchange(r, applied(r, op, seq), Ordering::AcqRel, Ordering::Relaxed);
        Step::Done
    }

    /// Takes a permit without sleeping (a few attempts if the word changes under us).
    pub fn try_take(&self, recs: &[Holding], live: &impl Liveness, wait: &impl Wait) -> Result<(), SemFailure> {
        let me = live.me();
        for _ in 0..TRIES {
            match self.step(recs, me, OP_TAKE) {
                Step::Done => return Ok(()),
                Step::Retry => spin_hint(),
                Step::Empty => {
                    // Permits of the dead count as available.
                    if !self.reclaim_dead(recs, live, wait) {
                        return Err(SemFailure::WouldBlock);
                    }
                }
            }
        }
        Err(SemFailure::WouldBlock)
    }

    /// Takes a permit, sleeping in bounded slices while none is available, until `deadline`
    /// (`None`: for ever). Before each sleep the permits of dead holders are reclaimed.
    pub fn take(
        &self,
        recs: &[Holding],
        deadline: Option<Instant>,
        live: &impl Liveness,
        wait: &impl Wait,
    ) -> Result<(), SemFailure> {
        let me = live.me();
        if let Step::Done = self.step(recs, me, OP_TAKE) {
            return Ok(());
        }
        self.take_slow(recs, deadline, live, wait)
    }

    #[cold]
    #[inline(never)]
    fn take_slow(
        &self,
        recs: &[Holding],
        deadline: Option<Instant>,
        live: &impl Liveness,
        wait: &impl Wait,
    ) -> Result<(), SemFailure> {
        let me = live.me();
        let mut spins = 0;
        loop {
            match self.step(recs, me, OP_TAKE) {
                Step::Done => return Ok(()),
                Step::Retry => {
                    if expired(deadline) {
                        return Err(SemFailure::WouldBlock);
                    }
                    spin_hint();
                    continue;
                }
                Step::Empty => {}
            }
            if spins < BACKOFF_ROUNDS {
                for _ in 0..1u32 << spins.min(6) {
                    spin_hint();
                }
                spins += 1;
                continue;
            }
            // `reclaim`, then `sleep`: a dead holder's permits are as good as free ones.
            if self.reclaim_dead(recs, live, wait) {
                continue;
            }
            if expired(deadline) {
                return Err(SemFailure::WouldBlock);
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let s = self.wake.load(Ordering::SeqCst);
            if count_of(self.word.load(Ordering::SeqCst)) == 0 {
                wait.wait(&self.wake, s, deadline);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Gives back a permit that `me` holds through a guard (a guard's drop: it cannot fail;
    /// against a word a peer keeps rewriting it gives up after [`GIVE_TRIES`] attempts).
    pub fn give(&self, recs: &[Holding], me: Owner, wait: &impl Wait) {
        for round in 0..GIVE_TRIES {
            match self.step(recs, me, OP_GIVE) {
                Step::Done => return self.wake_sleepers(1, wait),
                _ => wait.pause(round, None),
            }
        }
    }

    /// Keeps a permit `me` holds through a guard for good: it leaves `me`'s record (so it is
    /// not returned when `me` dies) and the count does not grow (same bounded retries as
    /// [`give`](SemState::give)).
    pub fn forget(&self, recs: &[Holding], me: Owner, wait: &impl Wait) {
        for round in 0..GIVE_TRIES {
            match self.step(recs, me, OP_FORGET) {
                Step::Done => return,
                _ => wait.pause(round, None),
            }
        }
    }

    /// Adds a permit that nobody held through a guard (Python's `release()`, the signalling
    /// use). With `bound`, refuses to take the permits in existence (available plus held in
    /// records) above it.
    pub fn release(&self, recs: &[Holding], bound: Option<u32>, wait: &impl Wait) -> Result<(), SemFailure> {
        for round in 0..GIVE_TRIES {
            let w = self.word.load(Ordering::Acquire);
            self.help(recs, w);
            let c = count_of(w);
            let mut total = u64::from(c);
            if let Some(b) = bound {
                // Exact: with the tag applied, records change only through claims, which
                // change the word, so the CAS below fails if any moved since this sum.
                total += recs
                    .iter()
                    .map(|r| u64::from(held_of(r.held.load(Ordering::Acquire))))
                    .sum::<u64>();
                if total >= u64::from(b) {
                    return Err(SemFailure::AboveBound);
                }
            }
            if c == u32::MAX {
                return Err(SemFailure::AboveBound);
            }
            // The tag stays (it is applied: we helped). Clearing it would let the word come
            // back to a value some stale reader holds (the initial `(K, none)`, say), and
            // that reader's claim would then succeed with a tag already applied: a permit
            // created or lost (`models/semaphore_model.py`, mutation `signal_none`). Keeping
            // it, each tag is claimed once and under one tag the count only grows, so no
            // word value ever comes back.
            let nw = (w & !COUNT_MASK) | u64::from(c + 1);
            if self
                .word
                .compare_exchange(w, nw, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                self.wake_sleepers(1, wait);
                return Ok(());
            }
            wait.pause(round, None);
        }
        Err(SemFailure::WouldBlock)
    }

    /// `reclaim` of record `index`: returns its permits to the count unless `alive` says the
    /// handle named in it lives (`|_| false` for our own record, whose previous users are
    /// gone). Returns whether permits were returned.
    fn reclaim(&self, recs: &[Holding], index: u32, alive: impl Fn(Owner) -> bool, wait: &impl Wait) -> bool {
        let Some(rec) = recs.get(index as usize) else {
            return false;
        };
        for _ in 0..TRIES {
            let w = self.word.load(Ordering::Acquire);
            self.help(recs, w);
            let r = rec.held.load(Ordering::Acquire);
            let h = held_of(r);
            if h == 0 {
                return false;
            }
            // `ask liveness` after `load word`: if the record's handle changed or did anything
            // since, the word changed too and the claim below fails.
            let o = Owner(rec.owner.load(Ordering::Acquire));
            if o.0 != 0 && alive(o) {
                return false;
            }
            let seq = (rec_seq(r) + 1) & SEQ_MASK;
            let nw = pack(count_of(w).saturating_add(h), index, OP_RECLAIM, seq);
            if self
                .word
                .compare_exchange(w, nw, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                let _ = rec
                    .held
                    .compare_exchange(r, applied(r, OP_RECLAIM, seq), Ordering::AcqRel, Ordering::Relaxed);
                self.wake_sleepers(h, wait);
                return true;
            }
            spin_hint();
        }
        false
    }

    /// Reclaims the permits of every record whose handle is dead; whether any came back.
    pub fn reclaim_dead(&self, recs: &[Holding], live: &impl Liveness, wait: &impl Wait) -> bool {
        let me = live.me();
        let mut any = false;
        for (i, rec) in recs.iter().enumerate() {
            let i = i as u32;
            if i != me.index() && held_of(rec.held.load(Ordering::Relaxed)) != 0 {
                any |= self.reclaim(recs, i, |o| o == me || live.is_alive(o), wait);
            }
        }
        any
    }

    /// A handle starts using its record: it names itself the record's user, then returns
    /// whatever the record's previous user left (that user is gone: the record is ours).
    pub fn join(&self, recs: &[Holding], me: Owner, wait: &impl Wait) {
        if let Some(rec) = recs.get(me.index() as usize) {
            rec.owner.store(me.0, Ordering::Release);
            self.reclaim(recs, me.index(), |_| false, wait);
        }
    }

    /// A handle stops using its record: returns what it still holds (guards leaked with
    /// `mem::forget`) and clears its name from the record.
    pub fn leave(&self, recs: &[Holding], me: Owner, wait: &impl Wait) {
        if let Some(rec) = recs.get(me.index() as usize) {
            self.reclaim(recs, me.index(), |_| false, wait);
            let _ = rec.owner.compare_exchange(me.0, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Counts a waiter that does not futex-wait (an async task) among the sleepers, so that
    /// a claim that adds permits calls [`Wait::wake_n`]. SeqCst: after whatever the caller
    /// did to be found by that wake-up. Undo with [`depart`](SemState::depart).
    pub fn announce(&self) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
    }

    /// Undoes one [`announce`](SemState::announce).
    pub fn depart(&self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes up to `n` sleepers if any is counted (after a claim that added permits).
    #[inline]
    fn wake_sleepers(&self, n: u32, wait: &impl Wait) {
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            self.wake.fetch_add(1, Ordering::SeqCst);
            wait.wake_n(&self.wake, n);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::doubles::{Oracle, Yield};
    use std::time::Duration;

    fn records(n: usize) -> Vec<Holding> {
        (0..n).map(|_| Holding::default()).collect()
    }

    fn total(s: &SemState, recs: &[Holding]) -> u64 {
        u64::from(s.available()) + recs.iter().map(|r| u64::from(r.peek().0)).sum::<u64>()
    }

    #[test]
    fn take_give_forget_release_and_the_bound() {
        let dead = AtomicU64::new(0);
        let a = Oracle {
            me: Owner::new(0, 1),
            dead: &dead,
        };
        let recs = records(4);
        let s = SemState::new(2);
        s.join(&recs, a.me, &Yield);
        s.try_take(&recs, &a, &Yield).unwrap();
        s.take(&recs, None, &a, &Yield).unwrap();
        assert_eq!(s.try_take(&recs, &a, &Yield), Err(SemFailure::WouldBlock));
        assert_eq!(recs[0].peek().0, 2);
        assert_eq!(s.release(&recs, Some(2), &Yield), Err(SemFailure::AboveBound));
        s.give(&recs, a.me, &Yield);
        assert_eq!(s.available(), 1);
        s.forget(&recs, a.me, &Yield);
        assert_eq!((s.available(), recs[0].peek().0), (1, 0));
        s.release(&recs, Some(2), &Yield).unwrap();
        assert_eq!(s.release(&recs, Some(2), &Yield), Err(SemFailure::AboveBound));
        assert_eq!(total(&s, &recs), 2);
        let t0 = Instant::now();
        s.take(&recs, None, &a, &Yield).unwrap();
        s.take(&recs, None, &a, &Yield).unwrap();
        assert_eq!(
            s.take(&recs, crate::deadline_after(Duration::from_millis(5)), &a, &Yield),
            Err(SemFailure::WouldBlock)
        );
        assert!(t0.elapsed() >= Duration::from_millis(5));
        s.leave(&recs, a.me, &Yield);
        assert_eq!((s.available(), recs[0].peek()), (2, (0, None)));
    }

    #[test]
    fn a_release_keeps_the_tag_so_no_word_value_comes_back() {
        let dead = AtomicU64::new(0);
        let a = Oracle {
            me: Owner::new(0, 1),
            dead: &dead,
        };
        let recs = records(1);
        let s = SemState::new(1);
        let fresh = s.word.load(Ordering::Relaxed);
        s.take(&recs, None, &a, &Yield).unwrap();
        let taken = s.word.load(Ordering::Relaxed);
        s.release(&recs, None, &Yield).unwrap();
        let released = s.word.load(Ordering::Relaxed);
        assert_eq!(released & !COUNT_MASK, taken & !COUNT_MASK);
        assert_ne!(released, fresh); // (1, none) would be the first word again: ABA
    }

    #[test]
    fn a_dead_holders_permits_come_back_and_a_live_ones_do_not() {
        let dead = AtomicU64::new(0);
        let a = Oracle {
            me: Owner::new(1, 1),
            dead: &dead,
        };
        let b = Oracle {
            me: Owner::new(2, 1),
            dead: &dead,
        };
        let recs = records(4);
        let s = SemState::new(1);
        s.join(&recs, a.me, &Yield);
        s.join(&recs, b.me, &Yield);
        s.take(&recs, None, &a, &Yield).unwrap();
        assert_eq!(s.try_take(&recs, &b, &Yield), Err(SemFailure::WouldBlock));
        dead.store(1 << 1, Ordering::SeqCst); // a dies holding its permit
        s.try_take(&recs, &b, &Yield).unwrap();
        assert_eq!((recs[1].peek().0, recs[2].peek().0, s.available()), (0, 1, 0));
        // A new handle in a's record gets back nothing more: it was reclaimed already.
        let a2 = Oracle {
            me: Owner::new(1, 2),
            dead: &AtomicU64::new(0),
        };
        s.join(&recs, a2.me, &Yield);
        assert_eq!(total(&s, &recs), 1);
    }

    #[test]
    fn a_claim_left_unapplied_is_finished_by_the_next_caller() {
        let dead = AtomicU64::new(0);
        let a = Oracle {
            me: Owner::new(0, 1),
            dead: &dead,
        };
        let b = Oracle {
            me: Owner::new(1, 1),
            dead: &dead,
        };
        let recs = records(2);
        let s = SemState::new(2);
        s.join(&recs, a.me, &Yield);
        s.join(&recs, b.me, &Yield);
        // a's claim of a permit, as if killed right after the CAS: the word names it, its
        // record does not show it yet.
        let w = s.word.load(Ordering::Relaxed);
        s.word.store(pack(count_of(w) - 1, 0, OP_TAKE, 1), Ordering::Relaxed);
        assert_eq!(recs[0].peek().0, 0);
        s.try_take(&recs, &b, &Yield).unwrap(); // helps first
        assert_eq!((recs[0].peek().0, recs[1].peek().0, s.available()), (1, 1, 0));
        dead.store(1, Ordering::SeqCst);
        s.give(&recs, b.me, &Yield);
        s.try_take(&recs, &b, &Yield).unwrap();
        s.try_take(&recs, &b, &Yield).unwrap(); // a's permit, reclaimed
        assert_eq!(total(&s, &recs), 2);
    }

    #[test]
    fn garbage_never_panics_or_hangs() {
        let dead = AtomicU64::new(0);
        let a = Oracle {
            me: Owner::new(0, 1),
            dead: &dead,
        };
        for w in [
            u64::MAX,
            0xFFFF_FFFF_0000_0000,
            0x0000_0000_FFFF_FFFF,
            7 << OP_SHIFT | 1023 << INDEX_SHIFT,
        ] {
            for r in [u64::MAX, 0, 0xFFFF_FFFF] {
                let recs = records(2);
                recs[0].held.store(r, Ordering::Relaxed);
                recs[1].held.store(r, Ordering::Relaxed);
                recs[1].owner.store(u32::MAX, Ordering::Relaxed);
                let s = SemState::new(0);
                s.word.store(w, Ordering::Relaxed);
                let _ = s.try_take(&recs, &a, &Yield);
                let _ = s.take(&recs, crate::deadline_after(Duration::from_millis(1)), &a, &Yield);
                s.give(&recs, a.me, &Yield);
                s.forget(&recs, a.me, &Yield);
                let _ = s.release(&recs, Some(3), &Yield);
                let _ = s.release(&recs, None, &Yield);
                s.reclaim_dead(&recs, &a, &Yield);
                s.leave(&recs, a.me, &Yield);
                let _ = recs[1].peek();
            }
        }
    }

    #[test]
    fn threads_never_exceed_the_permits() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicU32 as StdU32;
        let s = Arc::new(SemState::new(3));
        let recs = Arc::new(records(4));
        let dead = Arc::new(AtomicU64::new(0));
        let inside = Arc::new(StdU32::new(0));
        let hs: Vec<_> = (0..4u32)
            .map(|i| {
                let (s, recs, dead, inside) = (s.clone(), recs.clone(), dead.clone(), inside.clone());
                std::thread::spawn(move || {
                    let me = Oracle {
                        me: Owner::new(i, 1),
                        dead: &dead,
                    };
                    s.join(&recs, me.me, &Yield);
                    for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
                        s.take(&recs, None, &me, &Yield).unwrap();
                        assert!(inside.fetch_add(1, Ordering::SeqCst) < 3);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        s.give(&recs, me.me, &Yield);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(total(&s, &recs), 3);
        assert_eq!(s.available(), 3);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::doubles::{Oracle, Yield};
    use loom::sync::Arc;

    /// Two threads of one handle share a record: every take and give is applied exactly
    /// once (helpers and the owner race to apply the same claim).
    #[test]
    fn shared_record_applies_each_claim_once() {
        loom::model(|| {
            let s = Arc::new(SemState::new(2));
            let recs = Arc::new([Holding::default(), Holding::default()]);
            let dead = Arc::new(AtomicU64::new(0));
            let t = {
                let (s, recs, dead) = (s.clone(), recs.clone(), dead.clone());
                loom::thread::spawn(move || {
                    let me = Oracle {
                        me: Owner::new(0, 1),
                        dead: &dead,
                    };
                    s.take(&recs[..], None, &me, &Yield).unwrap();
                    s.give(&recs[..], me.me, &Yield);
                })
            };
            let me = Oracle {
                me: Owner::new(0, 1),
                dead: &dead,
            };
            s.take(&recs[..], None, &me, &Yield).unwrap();
            t.join().unwrap();
            assert_eq!(recs[0].peek().0, 1);
            assert_eq!(s.available(), 1);
        });
    }
}
