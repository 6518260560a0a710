//! A cross-process lock word with owner liveness: a dead holder's lock is taken over with an
//! owner-died mark, like POSIX `EOWNERDEAD`, and a declined recovery makes it unrecoverable.
//!
//! Protocol: `models/lock_model.py` (the names below follow it: load word, decide
//! take / take over / wait, set waiters, sleep, mark consistent, unlock). Waiting follows the
//! futex mutex of Drepper, "Futexes Are Tricky" (2011), mutex #2 (a waiters mark so unlock
//! wakes only when somebody sleeps), adapted to a 64-bit word through a separate 32-bit
//! sequence word that sleepers wait on, since Linux futexes are 32-bit.
//!
//! Why not a `PTHREAD_MUTEX_ROBUST` mutex in the mapping? glibc links a held robust mutex into
//! the thread's robust list through pointers stored *inside the mutex*, and unlock follows
//! them: a peer that rewrites those bytes turns our unlock into a write at an address of its
//! choosing (ARCHITECTURE.md, "No glibc robust mutex"). A plain word cannot be abused that
//! way: whatever a peer writes into it is only decoded as a lock state (the states and steps
//! of `models/lock_model.py`), so a forged word can stall or mislead the lock, never direct a
//! write. It also runs under loom and Miri, and an uncontended lock and unlock are one CAS
//! each (row `lock+incr+unlock, 1 user` of `crates/shmproc-bench/benches/compare/`).

use super::{Liveness, Owner, Wait, expired};
use crate::primitive::{AtomicU32, AtomicU64, Ordering, spin_hint};
use std::time::Instant;

/// Owner token mask in the lock word.
const OWNER_MASK: u64 = 0xFFFF_FFFF;
/// Somebody may be asleep on `seq`; unlock must bump it and wake.
const WAITERS: u64 = 1 << 32;
/// The holder took the lock over from a dead owner and has not marked it consistent.
const DIED: u64 = 1 << 33;
/// A recovery was declined: the protected data is unrecoverable, for good.
const UNRECOVERABLE: u64 = 1 << 34;

/// Spins before the first sleep; a short critical section is usually over by then.
const SPINS: u32 = 64;
/// Spin rounds of a blocking `lock` before it sleeps; round `k` spins `2^min(k, 6)` hints
/// (exponential backoff, as crossbeam's `Backoff`), about 1 500 hints in all.
const BACKOFF_ROUNDS: u32 = 28;

/// The shared state of one lock: 16 bytes, all atomics, so any bit pattern is a valid value.
///
/// `word`:
///
/// | bits   | meaning                                                          |
/// |--------|------------------------------------------------------------------|
/// | 0..32  | owner token ([`Owner`]), 0 when free                             |
/// | 32     | `WAITERS`: somebody may sleep on `seq`                           |
/// | 33     | `DIED`: taken over from a dead owner, not yet marked consistent  |
/// | 34     | `UNRECOVERABLE`: a recovery was declined; every lock fails       |
///
/// States: `0` free; `me` held; `me|WAITERS` held with sleepers; `me|DIED` held after a
/// take-over; `UNRECOVERABLE` dead for good. All-zero bytes are a free, consistent lock.
///
/// `seq` is an eventcount: sleepers wait while it is unchanged, unlock bumps it.
#[repr(C)]
pub struct LockState {
    word: AtomicU64,
    seq: AtomicU32,
    reserved: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<LockState>() == 16 || cfg!(loom));
const _: () = assert!(core::mem::align_of::<LockState>() == 8 || cfg!(loom));

/// How the lock was acquired.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Acquired {
    /// The data is consistent.
    Clean,
    /// The previous holder died holding the lock: the data may be half-updated.
    OwnerDied,
}

/// Why a lock attempt failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockFailure {
    /// Held by a live owner (try_lock) or the deadline passed (lock).
    WouldBlock,
    /// A recovery was declined: the data is unrecoverable.
    Unrecoverable,
}

impl Default for LockState {
    fn default() -> Self {
        Self::new()
    }
}

/// What a lock word says, decoded for an observer (see [`LockState::peek`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LockPeek {
    /// The holder's token, `None` when free (or unrecoverable).
    pub owner: Option<Owner>,
    /// Somebody may be asleep waiting for it.
    pub waiters: bool,
    /// The holder took it over from a dead owner and has not marked it consistent.
    pub owner_died: bool,
    /// A recovery was declined: every lock fails for good.
    pub unrecoverable: bool,
}

impl LockState {
    /// The lock's state now, with one load and no write: for inspection, which must never
    /// take, wait for or change a lock. Any word decodes to some answer.
    pub fn peek(&self) -> LockPeek {
        let w = self.word.load(Ordering::Acquire);
        let owner = (w & OWNER_MASK) as u32;
        LockPeek {
            owner: (owner != 0).then_some(Owner(owner)),
            waiters: w & WAITERS != 0,
            owner_died: w & DIED != 0,
            unrecoverable: w & UNRECOVERABLE != 0,
        }
    }

    /// A free, consistent lock (the same state as all-zero bytes).
    pub fn new() -> LockState {
        LockState {
            word: AtomicU64::new(0),
            seq: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
        }
    }

    /// The uncontended fast path shared by `try_lock` and `lock` (`decide take` on a free,
    /// clean word): one acquiring CAS, free -> me. Acquire pairs with unlock's release.
    #[inline(always)]
    fn take_free(&self, me: Owner) -> bool {
        self.word
            .compare_exchange(0, u64::from(me.0), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// One attempt: take a free lock, or take over a dead owner's; never sleeps.
    #[inline]
    pub fn try_lock(&self, live: &impl Liveness) -> Result<Acquired, LockFailure> {
        if self.take_free(live.me()) {
            return Ok(Acquired::Clean);
        }
        self.try_lock_slow(live)
    }

    /// `try_lock` once the fast path failed: a few looks at the word (a word that changes
    /// under us is retried; one held by a live owner fails at once).
    #[cold]
    #[inline(never)]
    fn try_lock_slow(&self, live: &impl Liveness) -> Result<Acquired, LockFailure> {
        for _ in 0..SPINS {
            match self.attempt(live, false, true)? {
                Attempt::Got(a) => return Ok(a),
                Attempt::Contended(_) => return Err(LockFailure::WouldBlock),
                Attempt::Retry => spin_hint(),
            }
        }
        Err(LockFailure::WouldBlock)
    }

    /// One attempt of a waiter that waits in its own way (an async task) and has announced
    /// itself with [`announce`](LockState::announce): as [`try_lock`](LockState::try_lock)
    /// (a dead owner's lock is taken over with the owner-died mark), but a lock it takes
    /// keeps the waiters mark, as `lock`'s sleepers do: unlock wakes one sleeper and clears
    /// the mark, so others may still sleep on `seq`.
    pub fn try_lock_announced(&self, live: &impl Liveness) -> Result<Acquired, LockFailure> {
        for _ in 0..SPINS {
            match self.attempt(live, true, true)? {
                Attempt::Got(a) => return Ok(a),
                Attempt::Contended(_) => return Err(LockFailure::WouldBlock),
                Attempt::Retry => spin_hint(),
            }
        }
        Err(LockFailure::WouldBlock)
    }

    /// `set waiters` for a waiter that does not futex-wait (an async task): if the lock is
    /// held, sets the waiters mark (a bounded CAS loop), so that the holder's unlock bumps
    /// `seq` and calls [`Wait::wake_one`] or [`Wait::wake_all`], which the caller's `Wait`
    /// turns into its wake-up. Returns whether the word is now held with the mark; `false`
    /// (free, unrecoverable, or rewritten under us too often): attempt again before waiting.
    ///
    /// SeqCst: ordered after whatever the caller did to be found by that wake-up (the async
    /// doorbell's arm), and before unlock's CAS if that CAS sees the mark.
    pub fn announce(&self) -> bool {
        let mut w = self.word.load(Ordering::SeqCst);
        for _ in 0..SPINS {
            if w & UNRECOVERABLE != 0 || w & OWNER_MASK == 0 {
                return false;
            }
            if w & WAITERS != 0 {
                return true;
            }
            match self
                .word
                .compare_exchange(w, w | WAITERS, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(x) => w = x,
            }
        }
        false
    }

    /// Locks, sleeping while a live owner holds the lock, until `deadline` (`None`: forever).
    ///
    /// Every sleep is a bounded slice of `wait`, after which the owner's liveness is asked
    /// again, so a holder killed at any instant is noticed even if no wake-up comes.
    ///
    /// Only the uncontended CAS is inlined into callers; spinning, liveness questions and
    /// sleeping live in the out-of-line `lock_slow`, so the fast path needs no stack frame.
    #[inline(always)]
    pub fn lock(
        &self,
        deadline: Option<Instant>,
        live: &impl Liveness,
        wait: &impl Wait,
    ) -> Result<Acquired, LockFailure> {
        if self.take_free(live.me()) {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(deadline, live, wait)
    }

    /// `lock` once the fast path failed: back off, then sleep in bounded slices.
    #[cold]
    #[inline(never)]
    fn lock_slow(
        &self,
        deadline: Option<Instant>,
        live: &impl Liveness,
        wait: &impl Wait,
    ) -> Result<Acquired, LockFailure> {
        let mut spins = 0;
        let mut slept = false;
        loop {
            // Ask the liveness oracle (a system call) only once spinning is over, that is
            // once per sleep slice, not on every spin round.
            // The deadline is checked on every unbounded path round the loop (retries, and
            // every round once spinning is over), not only before sleeping: a peer that keeps
            // rewriting the word would otherwise hold us in the retry path for ever. The
            // spinning rounds are bounded and come first, so even a zero timeout asks the
            // liveness oracle once and takes over a dead owner's lock.
            match self.attempt(live, slept, spins >= BACKOFF_ROUNDS)? {
                Attempt::Got(a) => return Ok(a),
                Attempt::Retry => {
                    if expired(deadline) {
                        return Err(LockFailure::WouldBlock);
                    }
                }
                Attempt::Contended(seen) => {
                    if spins < BACKOFF_ROUNDS {
                        for _ in 0..1u32 << spins.min(6) {
                            spin_hint();
                        }
                        spins += 1;
                        continue;
                    }
                    if expired(deadline) {
                        return Err(LockFailure::WouldBlock);
                    }
                    // `set waiters`, then `sleep`: announce ourselves, read the sequence,
                    // re-check the word, sleep while the sequence is unchanged. SeqCst on all
                    // four accesses (and on unlock's CAS and bump) orders them in one total
                    // order: if our re-check saw the lock held, unlock's bump comes after our
                    // read of `seq`, so the futex wait returns at once instead of sleeping.
                    let want = seen | WAITERS;
                    if seen & WAITERS == 0
                        && self
                            .word
                            .compare_exchange(seen, want, Ordering::SeqCst, Ordering::Relaxed)
                            .is_err()
                    {
                        continue;
                    }
                    let s = self.seq.load(Ordering::SeqCst);
                    if self.word.load(Ordering::SeqCst) != want {
                        continue;
                    }
                    wait.wait(&self.seq, s, deadline);
                    slept = true;
                }
            }
        }
    }

    /// `load word` + `decide`: one step of the lock protocol. With `check_owner` false a
    /// held lock is taken to be held by a live owner (no liveness question is asked).
    fn attempt(&self, live: &impl Liveness, slept: bool, check_owner: bool) -> Result<Attempt, LockFailure> {
        let me = live.me();
        // Acquire: if we take the lock with the CAS below, this pairs with unlock's release.
        let w = self.word.load(Ordering::Acquire);
        if w & UNRECOVERABLE != 0 {
            return Err(LockFailure::Unrecoverable);
        }
        let owner = Owner((w & OWNER_MASK) as u32);
        // A sleeper that takes the lock keeps the waiters mark: others may still sleep.
        let keep = if slept { WAITERS } else { w & WAITERS };
        if owner.0 == 0 {
            // `decide take`: free (stray flag bits without an owner are ignored).
            let new = u64::from(me.0) | keep;
            return Ok(
                match self.word.compare_exchange(w, new, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => Attempt::Got(Acquired::Clean),
                    Err(_) => Attempt::Retry,
                },
            );
        }
        if check_owner && owner != me && !live.is_alive(owner) {
            // `decide take over`: the owner is dead. Exactly one CAS wins the take-over; the
            // winner gets the owner-died mark (the data may be torn).
            let new = u64::from(me.0) | DIED | (w & WAITERS);
            return Ok(
                match self.word.compare_exchange(w, new, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => Attempt::Got(Acquired::OwnerDied),
                    Err(_) => Attempt::Retry,
                },
            );
        }
        Ok(Attempt::Contended(w))
    }

    /// `mark consistent`: the holder repaired the data after an owner-died take-over.
    pub fn mark_consistent(&self, me: Owner) {
        let mut w = self.word.load(Ordering::Relaxed);
        while w & OWNER_MASK == u64::from(me.0) && w & DIED != 0 {
            match self
                .word
                .compare_exchange(w, w & !DIED, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(x) => w = x,
            }
        }
    }

    /// `unlock`. A holder that got the lock with the owner-died mark and did not mark it
    /// consistent leaves it unrecoverable. Does nothing if `me` no longer owns the word (a
    /// peer overwrote it); the protocol has no answer to that beyond not making it worse.
    ///
    /// The fast path is one releasing CAS (an RMW rather than a store because a sleeper may
    /// set `WAITERS` at any moment, and a plain store would erase it and lose the wake-up);
    /// the rest is out of line.
    #[inline(always)]
    pub fn unlock(&self, me: Owner, wait: &impl Wait) {
        // Fast path: held by us, no sleepers, no mark. Release pairs with the acquiring CAS.
        let mine = u64::from(me.0);
        if self
            .word
            .compare_exchange(mine, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow(me, wait);
        }
    }

    /// `unlock` of a word with sleepers or marks (or one a peer overwrote).
    #[cold]
    #[inline(never)]
    fn unlock_slow(&self, me: Owner, wait: &impl Wait) {
        let mine = u64::from(me.0);
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & OWNER_MASK != mine {
                return;
            }
            let new = if w & (DIED | UNRECOVERABLE) != 0 {
                UNRECOVERABLE
            } else {
                0
            };
            // SeqCst: ordered before the bump below, see `lock`.
            match self.word.compare_exchange(w, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        if w & WAITERS != 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            if w & (DIED | UNRECOVERABLE) != 0 {
                wait.wake_all(&self.seq); // everyone must learn it is unrecoverable
            } else {
                wait.wake_one(&self.seq);
            }
        }
    }

    /// Whether the word says the data is unrecoverable.
    #[cfg(test)]
    pub fn is_unrecoverable(&self) -> bool {
        self.word.load(Ordering::Relaxed) & UNRECOVERABLE != 0
    }
}

enum Attempt {
    Got(Acquired),
    /// Held by a live owner; the word as seen.
    Contended(u64),
    /// The word changed under us; look again.
    Retry,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::doubles::{Oracle, Yield};
    use std::sync::Arc;

    fn oracle(i: u32, dead: &AtomicU64) -> Oracle<'_> {
        Oracle {
            me: Owner::new(i, 1),
            dead,
        }
    }

    #[test]
    fn lock_unlock_and_contention() {
        let dead = AtomicU64::new(0);
        let l = LockState::new();
        let a = oracle(0, &dead);
        let b = oracle(1, &dead);
        assert_eq!(l.try_lock(&a), Ok(Acquired::Clean));
        assert_eq!(l.try_lock(&b), Err(LockFailure::WouldBlock));
        let past = Some(Instant::now());
        assert_eq!(l.lock(past, &b, &Yield), Err(LockFailure::WouldBlock));
        l.unlock(a.me(), &Yield);
        assert_eq!(l.try_lock(&b), Ok(Acquired::Clean));
        l.unlock(b.me(), &Yield);
        assert_eq!(l.word.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn dead_owner_recovered_or_declined() {
        let dead = AtomicU64::new(0);
        let l = LockState::new();
        let a = oracle(0, &dead);
        let b = oracle(1, &dead);
        let c = oracle(2, &dead);
        assert_eq!(l.try_lock(&a), Ok(Acquired::Clean));
        dead.store(1, Ordering::SeqCst); // a dies holding it
        assert_eq!(l.lock(None, &b, &Yield), Ok(Acquired::OwnerDied));
        l.mark_consistent(b.me());
        l.unlock(b.me(), &Yield);
        assert_eq!(l.try_lock(&c), Ok(Acquired::Clean));
        dead.store(0b101, Ordering::SeqCst); // c dies too
        assert_eq!(l.try_lock(&b), Ok(Acquired::OwnerDied));
        l.unlock(b.me(), &Yield); // declined
        assert!(l.is_unrecoverable());
        assert_eq!(l.try_lock(&b), Err(LockFailure::Unrecoverable));
        assert_eq!(l.lock(None, &b, &Yield), Err(LockFailure::Unrecoverable));
    }

    #[test]
    fn recoverer_killed_before_unlock_passes_the_mark_on() {
        let dead = AtomicU64::new(0);
        let l = LockState::new();
        let (a, b, c) = (oracle(0, &dead), oracle(1, &dead), oracle(2, &dead));
        l.try_lock(&a).unwrap();
        dead.store(1, Ordering::SeqCst);
        assert_eq!(l.try_lock(&b), Ok(Acquired::OwnerDied));
        dead.store(0b11, Ordering::SeqCst); // b dies while recovering
        assert_eq!(l.try_lock(&c), Ok(Acquired::OwnerDied));
    }

    #[test]
    fn an_announced_waiter_is_woken_and_keeps_the_mark() {
        let dead = AtomicU64::new(0);
        let l = LockState::new();
        let (a, b) = (oracle(0, &dead), oracle(1, &dead));
        assert!(!l.announce()); // free: nothing to wait for
        assert_eq!(l.word.load(Ordering::Relaxed), 0);
        l.try_lock(&a).unwrap();
        assert!(l.announce());
        assert!(l.announce()); // already marked
        assert_eq!(l.try_lock_announced(&b), Err(LockFailure::WouldBlock));
        let seq = l.seq.load(Ordering::Relaxed);
        l.unlock(a.me(), &Yield);
        assert_eq!(
            l.seq.load(Ordering::Relaxed),
            seq + 1,
            "unlock bumps seq for the waiter"
        );
        assert_eq!(l.try_lock_announced(&b), Ok(Acquired::Clean));
        assert_eq!(l.word.load(Ordering::Relaxed), u64::from(b.me().0) | WAITERS);
        l.unlock(b.me(), &Yield);
        // A dead holder: the announced waiter takes it over with the mark.
        l.try_lock(&a).unwrap();
        assert!(l.announce());
        dead.store(1, Ordering::SeqCst);
        assert_eq!(l.try_lock_announced(&b), Ok(Acquired::OwnerDied));
        l.unlock(b.me(), &Yield); // declined
        assert!(!l.announce());
        assert_eq!(l.try_lock_announced(&b), Err(LockFailure::Unrecoverable));
    }

    #[test]
    fn garbage_words_never_panic() {
        let dead = AtomicU64::new(0);
        let a = oracle(0, &dead);
        for w in [
            u64::MAX,
            DIED,
            WAITERS,
            DIED | WAITERS,
            0xFFFF_FFFF,
            0xdead_beef_0000_0000,
        ] {
            let l = LockState::new();
            l.word.store(w, Ordering::Relaxed);
            let r = l.try_lock(&a);
            if r.is_ok() {
                l.unlock(a.me(), &Yield);
            }
            let _ = l.lock(Some(Instant::now()), &a, &Yield);
            l.word.store(w, Ordering::Relaxed);
            let _ = l.announce();
            if l.try_lock_announced(&a).is_ok() {
                l.unlock(a.me(), &Yield);
            }
        }
    }

    #[test]
    fn threads_exclude_each_other() {
        let n = if cfg!(miri) { 50 } else { 20_000 };
        let shared = Arc::new((LockState::new(), AtomicU64::new(0), AtomicU64::new(0)));
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let s = shared.clone();
                std::thread::spawn(move || {
                    let o = Oracle {
                        me: Owner::new(i, 1),
                        dead: &s.2,
                    };
                    for _ in 0..n {
                        assert_eq!(s.0.lock(None, &o, &Yield), Ok(Acquired::Clean));
                        // A non-atomic read-modify-write made of two atomic steps: a lost
                        // update shows a broken lock.
                        let v = s.1.load(Ordering::Relaxed);
                        s.1.store(v + 1, Ordering::Relaxed);
                        s.0.unlock(o.me(), &Yield);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(shared.1.load(Ordering::Relaxed), 3 * n);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::doubles::{Oracle, Yield};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    struct Shared {
        lock: LockState,
        data: UnsafeCell<(u64, u64)>,
        dead: AtomicU64,
    }

    /// Mutual exclusion: loom reports a data race on `data` if two holders overlap.
    #[test]
    fn mutual_exclusion() {
        loom::model(|| {
            let s = Arc::new(Shared {
                lock: LockState::new(),
                data: UnsafeCell::new((0, 0)),
                dead: AtomicU64::new(0),
            });
            let hs: Vec<_> = (0..2)
                .map(|i| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let o = Oracle {
                            me: Owner::new(i, 1),
                            dead: &s.dead,
                        };
                        assert_eq!(s.lock.lock(None, &o, &Yield), Ok(Acquired::Clean));
                        // SAFETY: we hold the lock; loom checks that nobody else touches it.
                        s.data.with_mut(|d| unsafe { (*d).0 += 1 });
                        s.lock.unlock(o.me(), &Yield);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            // SAFETY: every thread has been joined.
            assert_eq!(s.data.with(|d| unsafe { (*d).0 }), 2);
        });
    }

    /// A holder "killed" mid-update (it stops, the oracle says dead): the other thread takes
    /// over with the owner-died mark and sees the torn value; a clean take never sees it.
    #[test]
    fn take_over_from_dead_owner() {
        loom::model(|| {
            let s = Arc::new(Shared {
                lock: LockState::new(),
                data: UnsafeCell::new((0, 0)),
                dead: AtomicU64::new(0),
            });
            let s1 = s.clone();
            let victim = loom::thread::spawn(move || {
                let o = Oracle {
                    me: Owner::new(0, 1),
                    dead: &s1.dead,
                };
                if s1.lock.try_lock(&o) == Ok(Acquired::Clean) {
                    // SAFETY: we hold the lock.
                    s1.data.with_mut(|d| unsafe { (*d).0 = 1 });
                    s1.dead.store(1, Ordering::SeqCst); // dies here, half-way
                    true
                } else {
                    false
                }
            });
            let o = Oracle {
                me: Owner::new(1, 1),
                dead: &s.dead,
            };
            let got = s.lock.try_lock(&o);
            let victim_locked = victim.join().unwrap();
            match got {
                Ok(Acquired::Clean) => {
                    // SAFETY: we hold the lock and the victim has been joined.
                    let d = s.data.with(|d| unsafe { *d });
                    assert_eq!(d.0, d.1, "clean take over a torn value");
                    s.lock.unlock(o.me(), &Yield);
                }
                Ok(Acquired::OwnerDied) => {
                    assert!(victim_locked);
                    s.lock.unlock(o.me(), &Yield);
                    assert!(s.lock.is_unrecoverable());
                }
                Err(LockFailure::WouldBlock) => assert!(victim_locked),
                Err(e) => panic!("{e:?}"),
            }
        });
    }
}
