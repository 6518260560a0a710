//! A cross-process barrier of `n` parties (Python's `multiprocessing.Barrier`) that breaks,
//! instead of hanging, when a party dies before it arrives.
//!
//! Protocol: `models/barrier_model.py` (the names below follow it: `load word`, `arrive`,
//! `record arrival`, `scan party`, `break`, `sleep`, `reset`, `abort`).
//!
//! Arrivals are counted in one word with the generation, so the last arrival, whose CAS
//! takes the count to `n`, is the leader and opens the next generation in the same CAS. How
//! each recent generation ended (completed, or broken/reset) is kept in the word as a history
//! of bits shifted at every generation change, so a waiter that wakes late still learns how
//! *its* generation ended.
//!
//! Every handle is a party: it has a record in the body naming it and the generation at which
//! it last arrived. A waiter looks at the records once per sleep slice; a party that has not
//! arrived in the waiter's generation and whose handle is dead will never arrive, so the
//! waiter breaks the barrier and every waiter gets `Broken` promptly (Python's waits for
//! ever). A party records its arrival only *after* its arrival CAS: killed between the two it
//! looks absent and breaks the barrier, which errs towards breaking, never towards a hang.
//!
//! Waiting: sleepers count themselves in `sleepers` and futex-wait on the eventcount `wake`,
//! which the leader, a breaker and `reset` bump (SeqCst on both sides, as in `raw::lock`).

use crate::primitive::{AtomicU32, AtomicU64, Ordering, spin_hint};
use crate::{Liveness, Owner, Wait, expired};
use std::time::Instant;

/// Parties arrived in the current generation: bits 0..16.
const ARRIVED_MASK: u64 = 0xFFFF;
/// The generation: bits 16..32 (wrapping).
const GEN_SHIFT: u32 = 16;
const GEN_MASK: u64 = 0xFFFF;
/// How the last 31 generations ended: bits 32..63; bit `32 + k` set means generation
/// `gen - 1 - k` was broken or reset, clear means it completed.
const HIST_SHIFT: u32 = 32;
const HIST_BITS: u32 = 31;
const HIST_MASK: u64 = (1 << HIST_BITS) - 1;
/// The current generation is broken: every waiter and every new `wait` fails until `reset`.
const BROKEN: u64 = 1 << 63;

/// A party record's arrived mark (bit 48); bits 32..48 hold the generation it arrived in.
const ARRIVED: u64 = 1 << 48;

/// Spin rounds before a waiter first sleeps (exponential backoff, as in `raw::lock`).
const SPIN_ROUNDS: u32 = if cfg!(loom) { 0 } else { 12 };
/// CAS attempts of `reset`, `abort` and a timed-out waiter's break against a word a peer
/// keeps rewriting.
const TRIES: u32 = 64;

#[inline]
fn gen_of(w: u64) -> u64 {
    (w >> GEN_SHIFT) & GEN_MASK
}

/// The word that opens the generation after `w`'s, with `ended_badly` shifted into the
/// history for the generation that ends.
#[inline]
fn next_generation(w: u64, ended_badly: bool) -> u64 {
    let hist = (((w >> HIST_SHIFT) & HIST_MASK) << 1 | u64::from(ended_badly)) & HIST_MASK;
    ((gen_of(w) + 1) & GEN_MASK) << GEN_SHIFT | hist << HIST_SHIFT
}

/// `record arrival`: party `me` arrived in generation `g`.
#[inline]
fn record_arrival(parties: &[Party], me: Owner, g: u64) {
    if let Some(p) = parties.get(me.index() as usize) {
        p.word.store(u64::from(me.0) | g << 32 | ARRIVED, Ordering::Release);
    }
}

/// The shared state of one barrier: 16 bytes, all atomics, any bit pattern valid.
///
/// `word`:
///
/// | bits   | meaning                                                              |
/// |--------|----------------------------------------------------------------------|
/// | 0..16  | parties arrived in the current generation                            |
/// | 16..32 | generation (wraps)                                                   |
/// | 32..63 | history: bit `32 + k` set = generation `gen - 1 - k` broken or reset |
/// | 63     | `BROKEN`: the current generation is broken                           |
///
/// `wake` is the eventcount sleepers wait on; `sleepers` counts them.
#[repr(C)]
pub struct BarrierState {
    word: AtomicU64,
    wake: AtomicU32,
    sleepers: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<BarrierState>() == 16 || cfg!(loom));

/// One party's record: 8 bytes, one atomic.
///
/// | bits   | meaning                                                |
/// |--------|--------------------------------------------------------|
/// | 0..32  | token of the handle (0: no party here)                 |
/// | 32..48 | generation in which it last arrived                    |
/// | 48     | `ARRIVED`: bits 32..48 are valid                       |
#[repr(C)]
#[derive(Default)]
pub struct Party {
    word: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<Party>() == 8 || cfg!(loom));

/// Why a barrier wait failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BarrierFailure {
    /// The barrier is broken: aborted, reset while this party waited, a party died before
    /// arriving, or a waiter timed out.
    Broken,
    /// The deadline passed: this waiter broke the barrier (as Python's does) and left.
    Timeout,
}

/// A successful wait.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Arrival {
    /// Arrival order in the generation, `0..n` (Python's return value of `wait`).
    pub index: u32,
    /// The last arrival, which opened the next generation.
    pub leader: bool,
}

/// A party that arrived and waits for its generation to end (see [`BarrierState::arrive`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ticket {
    generation: u64,
    index: u32,
}

/// What [`BarrierState::arrive`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arrived {
    /// The last arrival: it opened the next generation (the leader), nothing to wait for.
    Passed(Arrival),
    /// Arrived and counted: wait for the generation to end.
    Waiting(Ticket),
}

/// `load word` as a waiter reads it.
enum Look {
    /// The waiter's generation ended (passed or broken), or it is broken.
    Ended(Result<Arrival, BarrierFailure>),
    /// Still open: the word as seen.
    Open(u64),
}

/// The barrier's state as an observer sees it (see [`BarrierState::peek`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BarrierPeek {
    /// Parties waiting in the current generation.
    pub arrived: u32,
    /// The generation (wraps at 2^16).
    pub generation: u32,
    /// Broken until reset.
    pub broken: bool,
}

impl Default for BarrierState {
    fn default() -> Self {
        Self::new()
    }
}

impl BarrierState {
    /// Generation 0, nobody arrived, not broken (the same as all-zero bytes).
    pub fn new() -> BarrierState {
        BarrierState {
            word: AtomicU64::new(0),
            wake: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// The state now, one load, for inspection.
    pub fn peek(&self) -> BarrierPeek {
        let w = self.word.load(Ordering::Acquire);
        BarrierPeek {
            arrived: (w & ARRIVED_MASK) as u32,
            generation: gen_of(w) as u32,
            broken: w & BROKEN != 0,
        }
    }

    /// A handle becomes a party: its record names it, not arrived.
    pub fn join(&self, parties: &[Party], me: Owner) {
        if let Some(p) = parties.get(me.index() as usize) {
            p.word.store(u64::from(me.0), Ordering::Release);
        }
    }

    /// A handle stops being a party (dropped): its record is cleared if it still names it.
    pub fn leave(&self, parties: &[Party], me: Owner) {
        if let Some(p) = parties.get(me.index() as usize) {
            let r = p.word.load(Ordering::Acquire);
            if r as u32 == me.0 {
                let _ = p.word.compare_exchange(r, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// A party record's token and the generation it last arrived in (one load each).
    pub fn peek_party(parties: &[Party], index: usize) -> Option<(Owner, Option<u32>)> {
        let r = parties.get(index)?.word.load(Ordering::Acquire);
        let o = r as u32;
        (o != 0).then(|| (Owner(o), (r & ARRIVED != 0).then_some(((r >> 32) & GEN_MASK) as u32)))
    }

    /// Waits until `n` parties have called `wait` in this generation, or the barrier breaks,
    /// or `deadline` passes (then this waiter breaks it).
    pub fn wait(
        &self,
        parties: &[Party],
        n: u32,
        deadline: Option<Instant>,
        live: &impl Liveness,
        wait: &impl Wait,
    ) -> Result<Arrival, BarrierFailure> {
        let t = match self.arrive(parties, n, deadline, live, wait)? {
            Arrived::Passed(a) => return Ok(a),
            Arrived::Waiting(t) => t,
        };
        let mut spins = 0;
        let mut late = 0;
        loop {
            let w = match self.look(t, Ordering::Acquire) {
                Look::Ended(r) => return r,
                Look::Open(w) => w,
            };
            if spins < SPIN_ROUNDS {
                for _ in 0..1u32 << spins.min(6) {
                    spin_hint();
                }
                spins += 1;
                continue;
            }
            if expired(deadline) {
                late += 1;
                if self.break_generation(w, wait) || late > TRIES {
                    return Err(BarrierFailure::Timeout);
                }
                continue;
            }
            // `scan party`, then `break` or `sleep`.
            if self.party_gone(parties, t.generation, live) {
                if self.break_generation(w, wait) {
                    return Err(BarrierFailure::Broken);
                }
                continue;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let s = self.wake.load(Ordering::SeqCst);
            if self.word.load(Ordering::SeqCst) == w {
                wait.wait(&self.wake, s, deadline);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The first half of [`wait`](BarrierState::wait): `load word`, `arrive` (the arrival
    /// CAS; the last arrival opens the next generation and wakes the waiters), `record
    /// arrival`. A party that gets [`Arrived::Waiting`] is counted in its generation: it must
    /// go on with [`check`](BarrierState::check) until the generation ends, or
    /// [`give_up`](BarrierState::give_up), or the others wait for it (a live party that
    /// never comes hangs them, as a blocking waiter that never returns would).
    ///
    /// # Errors
    /// [`BarrierFailure::Broken`] when the barrier is broken (or its count is one no party
    /// leaves); [`BarrierFailure::Timeout`] when the CAS kept failing past `deadline` (not
    /// arrived: nothing to break).
    pub fn arrive(
        &self,
        parties: &[Party],
        n: u32,
        deadline: Option<Instant>,
        live: &impl Liveness,
        wait: &impl Wait,
    ) -> Result<Arrived, BarrierFailure> {
        let me = live.me();
        // `load word`, `arrive`.
        let mut w = self.word.load(Ordering::Acquire);
        let (g, index) = loop {
            if w & BROKEN != 0 {
                return Err(BarrierFailure::Broken);
            }
            let arrived = (w & ARRIVED_MASK) as u32;
            if arrived >= n {
                return Err(BarrierFailure::Broken); // a count no party leaves: a peer wrote it
            }
            if arrived + 1 == n {
                // The leader: open the next generation, its history saying this one completed.
                match self
                    .word
                    .compare_exchange(w, next_generation(w, false), Ordering::SeqCst, Ordering::Acquire)
                {
                    Ok(_) => {
                        // `record arrival (leader)`: without it a party that led the last
                        // generations and then died before arriving could show an old
                        // arrival that matches a wrapped generation, and nobody would break.
                        record_arrival(parties, me, gen_of(w));
                        self.wake_all(wait);
                        return Ok(Arrived::Passed(Arrival {
                            index: arrived,
                            leader: true,
                        }));
                    }
                    Err(x) => w = x,
                }
            } else {
                match self
                    .word
                    .compare_exchange(w, w + 1, Ordering::SeqCst, Ordering::Acquire)
                {
                    Ok(_) => break (gen_of(w), arrived),
                    Err(x) => w = x,
                }
            }
            if expired(deadline) {
                return Err(BarrierFailure::Timeout); // not arrived: nothing to break
            }
        };
        // `record arrival`: after the arrival CAS, see the module docs.
        record_arrival(parties, me, g);
        Ok(Arrived::Waiting(Ticket { generation: g, index }))
    }

    /// `load word`: has the ticket's generation ended, and how? A waiter lapped by more than
    /// HIST_BITS generations while it slept (possible only with more handles than parties,
    /// or with resets) no longer has its bit and is told it passed.
    #[inline]
    fn look(&self, t: Ticket, order: Ordering) -> Look {
        let w = self.word.load(order);
        if gen_of(w) != t.generation {
            let d = (gen_of(w).wrapping_sub(t.generation) & GEN_MASK) as u32;
            let badly = d <= HIST_BITS && (w >> (HIST_SHIFT + d - 1)) & 1 != 0;
            return Look::Ended(if badly {
                Err(BarrierFailure::Broken)
            } else {
                Ok(Arrival {
                    index: t.index,
                    leader: false,
                })
            });
        }
        if w & BROKEN != 0 {
            return Look::Ended(Err(BarrierFailure::Broken));
        }
        Look::Open(w)
    }

    /// One re-attempt of the waiting half of [`wait`](BarrierState::wait) for a waiter that
    /// waits in its own way (an async task), after [`arrive`](BarrierState::arrive): `load
    /// word` (its generation ended? broken?), then, while it is open, `scan party` once and
    /// `break` if a party that has not arrived is dead. `None`: still waiting.
    ///
    /// The load is SeqCst: after the caller's [`announce`](BarrierState::announce) (and
    /// whatever it did to be found by a wake-up), against the leader's and breakers' CAS
    /// before their look at `sleepers`.
    pub fn check(
        &self,
        parties: &[Party],
        t: Ticket,
        live: &impl Liveness,
        wait: &impl Wait,
    ) -> Option<Result<Arrival, BarrierFailure>> {
        for _ in 0..TRIES {
            let w = match self.look(t, Ordering::SeqCst) {
                Look::Ended(r) => return Some(r),
                Look::Open(w) => w,
            };
            if !self.party_gone(parties, t.generation, live) {
                return None;
            }
            if self.break_generation(w, wait) {
                return Some(Err(BarrierFailure::Broken));
            }
        }
        None
    }

    /// A waiter that arrived and stops waiting (its deadline passed, or an async waiter's
    /// future was dropped): if its generation ended, how; else it breaks the generation, as
    /// a timed-out [`wait`](BarrierState::wait) does (its arrival is counted and it will not
    /// come), and gets [`BarrierFailure::Timeout`].
    pub fn give_up(&self, t: Ticket, wait: &impl Wait) -> Result<Arrival, BarrierFailure> {
        for _ in 0..=TRIES {
            match self.look(t, Ordering::Acquire) {
                Look::Ended(r) => return r,
                Look::Open(w) => {
                    if self.break_generation(w, wait) {
                        break;
                    }
                }
            }
        }
        Err(BarrierFailure::Timeout)
    }

    /// `sleep` for a waiter that does not futex-wait (an async task): counts it among the
    /// sleepers, so that the leader, a breaker and `reset` call [`Wait::wake_all`]. SeqCst:
    /// after whatever the caller did to be found by that wake-up. Undo with
    /// [`depart`](BarrierState::depart).
    pub fn announce(&self) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
    }

    /// Undoes one [`announce`](BarrierState::announce).
    pub fn depart(&self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// `scan party`: whether some party that has not arrived in generation `g` is dead.
    fn party_gone(&self, parties: &[Party], g: u64, live: &impl Liveness) -> bool {
        let me = live.me();
        parties.iter().any(|p| {
            let r = p.word.load(Ordering::Acquire);
            let o = Owner(r as u32);
            let arrived = r & ARRIVED != 0 && (r >> 32) & GEN_MASK == g;
            o.0 != 0 && o != me && !arrived && !live.is_alive(o)
        })
    }

    /// `break`: marks generation `w` broken if the word is still `w`; wakes the waiters.
    fn break_generation(&self, w: u64, wait: &impl Wait) -> bool {
        let ok = self
            .word
            .compare_exchange(w, w | BROKEN, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.wake_all(wait);
        }
        ok
    }

    /// `abort`: breaks the barrier; waiters and later waits get `Broken` until `reset`.
    pub fn abort(&self, wait: &impl Wait) {
        for _ in 0..TRIES {
            let w = self.word.load(Ordering::Acquire);
            if w & BROKEN != 0 || self.break_generation(w, wait) {
                return;
            }
        }
    }

    /// `reset`: opens a new generation with nobody arrived and not broken; whoever waited in
    /// the old one gets `Broken`. Records of dead parties are cleared, so that a barrier
    /// broken by a death works again with the parties that live (and their replacements).
    pub fn reset(&self, parties: &[Party], live: &impl Liveness, wait: &impl Wait) {
        for _ in 0..TRIES {
            let w = self.word.load(Ordering::Acquire);
            if self
                .word
                .compare_exchange(w, next_generation(w, true), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        self.wake_all(wait);
        let me = live.me();
        for p in parties {
            let r = p.word.load(Ordering::Acquire);
            let o = Owner(r as u32);
            if o.0 != 0 && o != me && !live.is_alive(o) {
                let _ = p.word.compare_exchange(r, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    fn wake_all(&self, wait: &impl Wait) {
        // SeqCst after the word's CAS: a sleeper that counted itself before this load read
        // `wake` before the bump (see `raw::lock`).
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            self.wake.fetch_add(1, Ordering::SeqCst);
            wait.wake_all(&self.wake);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::doubles::{Oracle, Yield};
    use std::sync::Arc;
    use std::time::Duration;

    fn parties(n: usize) -> Arc<Vec<Party>> {
        Arc::new((0..n).map(|_| Party::default()).collect())
    }

    #[test]
    fn one_leader_per_generation() {
        const ROUNDS: usize = if cfg!(miri) { 5 } else { 200 };
        let b = Arc::new(BarrierState::new());
        let ps = parties(3);
        let dead = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..3u32)
            .map(|i| {
                let (b, ps, dead) = (b.clone(), ps.clone(), dead.clone());
                std::thread::spawn(move || {
                    let me = Oracle {
                        me: Owner::new(i, 1),
                        dead: &dead,
                    };
                    b.join(&ps, me.me);
                    (0..ROUNDS)
                        .filter(|_| b.wait(&ps, 3, None, &me, &Yield).unwrap().leader)
                        .count()
                })
            })
            .collect();
        let leaders: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(leaders, ROUNDS);
        // Every party's record shows the last generation, the leader's too.
        for i in 0..3 {
            let last = Some(ROUNDS as u32 - 1);
            assert_eq!(BarrierState::peek_party(&ps, i).map(|p| p.1), Some(last));
        }
        assert_eq!(
            b.peek(),
            BarrierPeek {
                arrived: 0,
                generation: ROUNDS as u32,
                broken: false
            }
        );
    }

    #[test]
    fn a_dead_party_breaks_it_and_reset_repairs_it() {
        let b = BarrierState::new();
        let ps = parties(3);
        let dead = AtomicU64::new(0);
        let a = Oracle {
            me: Owner::new(0, 1),
            dead: &dead,
        };
        b.join(&ps, a.me);
        b.join(&ps, Owner::new(1, 1));
        b.join(&ps, Owner::new(2, 1));
        dead.store(1 << 2, Ordering::SeqCst); // party 2 dies before arriving
        let d = crate::deadline_after(Duration::from_secs(20));
        // Party 1 is alive and slow: a's wait would time out, not break, if 2 were alive.
        assert_eq!(b.wait(&ps, 3, d, &a, &Yield), Err(BarrierFailure::Broken));
        assert!(b.peek().broken);
        assert_eq!(b.wait(&ps, 3, d, &a, &Yield), Err(BarrierFailure::Broken));
        b.reset(&ps, &a, &Yield);
        assert!(!b.peek().broken);
        assert_eq!(BarrierState::peek_party(&ps, 2), None);
        // With the dead party's record cleared, two parties of a barrier of 2 pass.
        let bo = Oracle {
            me: Owner::new(1, 1),
            dead: &dead,
        };
        std::thread::scope(|s| {
            let t = s.spawn(|| b.wait(&ps, 2, d, &bo, &Yield));
            let r = b.wait(&ps, 2, d, &a, &Yield).unwrap();
            let r2 = t.join().unwrap().unwrap();
            assert!(r.leader != r2.leader);
        });
    }

    #[test]
    fn a_timeout_breaks_it_and_reset_tells_waiters() {
        let b = BarrierState::new();
        let ps = parties(2);
        let dead = AtomicU64::new(0);
        let a = Oracle {
            me: Owner::new(0, 1),
            dead: &dead,
        };
        b.join(&ps, a.me);
        b.join(&ps, Owner::new(1, 1));
        let d = crate::deadline_after(Duration::from_millis(5));
        assert_eq!(b.wait(&ps, 2, d, &a, &Yield), Err(BarrierFailure::Timeout));
        assert!(b.peek().broken);
        b.reset(&ps, &a, &Yield);
        std::thread::scope(|s| {
            let t = s.spawn(|| b.wait(&ps, 3, None, &a, &Yield));
            while b.peek().arrived == 0 {
                std::thread::yield_now();
            }
            b.reset(&ps, &a, &Yield);
            assert_eq!(t.join().unwrap(), Err(BarrierFailure::Broken));
        });
    }

    #[test]
    fn arrive_then_check_or_give_up() {
        let b = BarrierState::new();
        let ps = parties(3);
        let dead = AtomicU64::new(0);
        let o = |i| Oracle {
            me: Owner::new(i, 1),
            dead: &dead,
        };
        let (a, c) = (o(0), o(1));
        for i in 0..3 {
            b.join(&ps, Owner::new(i, 1));
        }
        // a arrives, waits; the others arrive; a's check passes.
        let Ok(Arrived::Waiting(t)) = b.arrive(&ps, 2, None, &a, &Yield) else {
            panic!("a is not the last");
        };
        b.announce();
        assert_eq!(b.check(&ps, t, &a, &Yield), None);
        assert_eq!(b.sleepers.load(Ordering::Relaxed), 1);
        let wake = b.wake.load(Ordering::Relaxed);
        let led = b.arrive(&ps, 2, None, &c, &Yield);
        assert_eq!(led, Ok(Arrived::Passed(Arrival { index: 1, leader: true })));
        assert_eq!(b.wake.load(Ordering::Relaxed), wake + 1, "the leader wakes the sleeper");
        b.depart();
        let passed = Ok(Arrival {
            index: 0,
            leader: false,
        });
        assert_eq!(b.check(&ps, t, &a, &Yield), Some(passed));
        assert_eq!(b.give_up(t, &Yield), passed, "a generation that passed stays passed");
        // A party that dies before arriving: the check breaks the barrier.
        let Ok(Arrived::Waiting(t)) = b.arrive(&ps, 3, None, &a, &Yield) else {
            panic!("a is not the last");
        };
        assert_eq!(b.check(&ps, t, &a, &Yield), None);
        dead.store(1 << 2, Ordering::SeqCst);
        assert_eq!(b.check(&ps, t, &a, &Yield), Some(Err(BarrierFailure::Broken)));
        assert_eq!(b.arrive(&ps, 3, None, &c, &Yield), Err(BarrierFailure::Broken));
        b.reset(&ps, &a, &Yield);
        // A waiter that gives up breaks its generation.
        let Ok(Arrived::Waiting(t)) = b.arrive(&ps, 2, None, &a, &Yield) else {
            panic!("a is not the last");
        };
        assert_eq!(b.give_up(t, &Yield), Err(BarrierFailure::Timeout));
        assert!(b.peek().broken);
        assert_eq!(b.check(&ps, t, &a, &Yield), Some(Err(BarrierFailure::Broken)));
        assert_eq!(b.give_up(t, &Yield), Err(BarrierFailure::Broken));
    }

    #[test]
    fn a_waiter_that_wakes_late_reads_its_generations_end() {
        // Generation g completed, g + 1 was reset: a waiter of g still passes.
        let w = next_generation(next_generation(5 << GEN_SHIFT, false), true);
        let b = BarrierState::new();
        b.word.store(w, Ordering::Relaxed);
        let g = 5u64;
        let d = (gen_of(w) - g) as u32;
        assert_eq!((w >> (HIST_SHIFT + d - 1)) & 1, 0);
        assert_eq!((w >> HIST_SHIFT) & 1, 1);
    }

    #[test]
    fn garbage_never_panics_or_hangs() {
        let dead = AtomicU64::new(!0);
        let a = Oracle {
            me: Owner::new(0, 1),
            dead: &dead,
        };
        for w in [u64::MAX, BROKEN - 1, 0xFFFF, 0xFFFF_0000, 0] {
            for r in [u64::MAX, 0, ARRIVED | 5] {
                let ps = parties(2);
                ps[1].word.store(r, Ordering::Relaxed);
                let b = BarrierState::new();
                b.word.store(w, Ordering::Relaxed);
                let d = crate::deadline_after(Duration::from_millis(1));
                let _ = b.wait(&ps, 2, d, &a, &Yield);
                let _ = b.wait(&ps, 1, d, &a, &Yield);
                let _ = b.wait(&ps, 0, d, &a, &Yield);
                b.abort(&Yield);
                b.reset(&ps, &a, &Yield);
                let _ = BarrierState::peek_party(&ps, 1);
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::doubles::{Oracle, Yield};
    use loom::sync::Arc;

    /// Two parties: exactly one leader, both pass.
    #[test]
    fn two_parties_one_leader() {
        loom::model(|| {
            let b = Arc::new(BarrierState::new());
            let ps = Arc::new([Party::default(), Party::default()]);
            let dead = Arc::new(AtomicU64::new(0));
            let t = {
                let (b, ps, dead) = (b.clone(), ps.clone(), dead.clone());
                loom::thread::spawn(move || {
                    let me = Oracle {
                        me: Owner::new(1, 1),
                        dead: &dead,
                    };
                    b.wait(&ps[..], 2, None, &me, &Yield).unwrap().leader
                })
            };
            let me = Oracle {
                me: Owner::new(0, 1),
                dead: &dead,
            };
            let l0 = b.wait(&ps[..], 2, None, &me, &Yield).unwrap().leader;
            let l1 = t.join().unwrap();
            assert!(l0 != l1);
        });
    }
}
