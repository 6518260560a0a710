//! The crash-tolerant bounded MPMC ring behind the queues: pure code over caller-provided memory.
//!
//! # Source
//!
//! The skeleton is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>) as
//! crossbeam's `ArrayQueue` writes it (`crossbeam-queue/src/array_queue.rs`): `head` and `tail`
//! are positions, position `p` lives in slot `p % capacity` on lap `p / capacity`, a put claims
//! by a CAS on `tail` and a get by a CAS on `head`, and a per-slot word says whose turn it is.
//! Vyukov's stamp cannot tell a dead claimant from a slow one, so each claim is first
//! announced in the claimant's own record (`raw::claims`): the intent protocol, ring layout
//! version 5, model-checked by `models/intent_model.py` (modes `close_anytime`, `join`,
//! `retire_anytime`, `crashes=2`). Steps carry the model's names:
//!
//! | step (model)             | who  | what                                                       |
//! |--------------------------|------|------------------------------------------------------------|
//! | record claim (`p2`)      | put at `t` | own record := `Put(t)` (slot t is EMPTY(lap t))      |
//! | claim (`p3`)             | put  | CAS `tail` t -> t+1; on failure clear the record           |
//! | load closed (`pcc`)      | put  | closed: retire (store SKIP(lap t)), fail `Closed`           |
//! | write, publish (`p4`, `p5`) | put | copy in; store FULL(lap t) (guarded); clear the record    |
//! | previous lap (`pf`..`pr`) | put | slot still holds lap t-1: `head <= t-N` is full; else a get holds t-N: wait while a live record shows `Get(t-N)`, otherwise CAS the slot to EMPTY(lap t) (its reader died) |
//! | record claim, claim (`c2`, `c3`) | get at `h` | slot FULL(lap h): record `Get(h)`, the record's `taken += 1` (the model's `in_hand`), CAS `head` h -> h+1 |
//! | copy out, release (`c4`, `c5`) | get | copy; store EMPTY(lap h+1) (unguarded, see below); clear the record |
//! | claimed, unpublished (`ct`..`cr`) | get | slot EMPTY(lap h), `tail > h`: wait while a live record shows `Put(h)`; otherwise re-read the slot: unchanged means its writer died |
//! | step over (`cr2`..`cr4`) | get  | record `Get(h)`, CAS `head`, store EMPTY(lap h+1): nothing delivered (a dead writer's or a retired position) |
//!
//! A put whose slot reads exactly EMPTY(lap t) and a get whose slot reads exactly FULL(lap h)
//! take an inline path (`put_now`, `get_now`): those steps and nothing else, one compare
//! deciding the slot word. Anything else (full, empty, closed, a lost CAS, a peer mid-copy or
//! dead, a scribbled word) goes to the general path, which starts over with the same rules in
//! rounds (see [`Round`]). The inline path is what almost every call of a busy queue runs, so
//! it is kept to the protocol's own loads, stores and one CAS.
//!
//! A live claimant shows its claim from before its index CAS until after its publish or
//! release, so "no live record shows it, and the slot is unchanged after the scan" means the
//! claimant is dead. Liveness must be exact in that direction (never "dead" for a live owner;
//! see [`Liveness`]). `head` and `tail` move only by the claim CASes, so they are exact and
//! never move back; `len` and `join` scan `[head, tail)`.
//!
//! Claims are CASes on `tail` and `head`, never on a slot word: a CAS on the slot word would be
//! a locked instruction on the cache line the other process has just written, so each put and
//! get would stall for a line transfer, and slots could not share a line. The slot words are
//! only loaded and stored (measurements: `crates/shmproc-bench/README.md`).
//!
//! # Wake-ups
//!
//! A put reads the consumers' `sleepers` count right after its claim CAS (which is in the
//! total order `S`), then publishes with a plain store and wakes if the count was nonzero. A
//! get that announced itself as a sleeper before that claim is seen; one that announces later
//! re-checks and finds `tail` past a free slot with a live writer, and must not sleep on it,
//! because nobody will wake it: it polls ([`Wait::pause`]: yields, then short sleeps) until
//! the publish. Gets do the same for puts: a put blocked by a live get's claim on the previous
//! lap polls; one blocked on a FULL slot sleeps, because the get that claims it next will see it.
//!
//! # Memory ordering
//!
//! * Claim records: stored with `Release` before the index CAS (`SeqCst`, whose release half
//!   publishes them) and cleared with `Release` after the publish or release store; scanners
//!   load `tail`/`head` with `Acquire` (or `SeqCst`) first and the records with `Acquire`, so
//!   they see a claim whose CAS they saw, and a cleared record comes with the store before it.
//! * Payload hand-over: publish and release are `Release` stores after the payload accesses,
//!   read by the next claimant's `Acquire` slot load before its index CAS.
//! * Three Dekker-style races decide whether anything gets stranded, and each is closed by the
//!   single total order `S` of `SeqCst` operations (C++20 \[atomics.order\]): "claim; load
//!   `closed`" against "store `closed`" and "load `closed`; fence; reload slot, `head`,
//!   `tail`" (close never strands an item), "claim; load `sleepers`" against "`sleepers += 1`;
//!   fence; re-check" (no lost wake-up), and the same for `task_done` and the joiners. On the
//!   hot paths we rely on `SeqCst` accesses alone (free on x86, `ldar`/`stlr` on Arm); loom
//!   models `SeqCst` accesses as `AcqRel` (tokio-rs/loom#180) but does model `SeqCst` fences,
//!   so [`sc_fence_under_loom`] adds on the hot side, under loom only, the fence that
//!   expresses the same argument in a form loom checks.
//!
//! # Hostile memory
//!
//! A peer may write any bytes at any time. Every shared word is loaded once into a local,
//! decoded with masks ([`SlotWord::decode`] maps unknown phases to a value every rule retries
//! on), positions are reduced modulo the capacity before indexing, the records' high mark is
//! clamped to the table, all arithmetic wraps, and every loop that a peer's words could keep
//! going is bounded: a `try_*` call makes at most [`ATTEMPTS`] steps, waits at most
//! [`MID_COPY_WAIT`] in all for peers its records scan shows mid-copy, and then answers
//! conservatively (`Full`, `Empty`), blocking calls sleep on an eventcount and check their
//! deadline on every round. Garbage can produce wrong answers, never UB, a panic or an
//! unbounded spin. Positions are `u64` and wrap only after 2^64 operations (laps stay
//! continuous across that wrap when the capacity is a power of two).
//!
//! # Beyond the model
//!
//! * A put looks at `closed` before claiming, and fails `Closed` without effect if it is set
//!   (the model's early look); the look after the claim decides races with close.
//! * A put whose payload writer unwinds (a panicking `ByteQueue::put_with` closure) retires
//!   its position as a put that saw close does (mode `retire_anytime`).
//! * A put that finds the ring full because the head position holds nothing (retired, or its
//!   writer died) steps over it as a get would, with its own record showing `Get(h)`, so a
//!   dead producer does not take room until a consumer passes.
//! * Before scanning the records, a claim re-reads the slot a few times ([`SCAN_AFTER`]): a
//!   live peer finishes its copy in nanoseconds, and the scan reads other processes' lines.
//! * Where the model's get (put) waits for a live `Put(h)` (`Get(t - N)`), a `try_*` call
//!   waits at most [`MID_COPY_WAIT`] and then answers Empty (Full) with its record clear
//!   ([`Round::Patient`]); a blocking call polls, and its last attempt after the deadline is
//!   patient too.
//! * A get marks its slot TAKEN right after its claim (model mode `taken_mark`) and releases
//!   with an unguarded store (see `finish_get`); a put that meets a TAKEN slot of the
//!   previous lap re-reads it before it looks at `head` (see `claim_put`). Each keeps a
//!   cache-line transfer off the common path.
//! * Wake-ups and bounded attempts against scribbled words.

use super::claims::{ClaimRecord, Table, put_claim};
use super::{Liveness, Owner, Wait, expired};
use crate::primitive::{AtomicU64, Ordering, spin_hint};
use std::time::{Duration, Instant};

mod control;
mod eventcount;
mod get;
mod put;
mod slot;

#[cfg(test)]
pub(crate) mod heap;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use control::RingControl;
use eventcount::EventCount;
// Under loom the queues that use these are not built.
#[cfg_attr(loom, allow(unused_imports))]
pub use get::GetFail;
#[cfg_attr(loom, allow(unused_imports))]
pub use put::PutFail;
pub use slot::Slot;
use slot::{EMPTY, FULL, LAP_MASK, Lap, SlotWord, relate};

// ---------------------------------------------------------------------------------------------
// Bounds

/// Steps one `try_*` call may take before it answers conservatively (see "Hostile memory").
/// Each step either makes progress (ours or a helped peer's) or met a scribbled word.
/// (Loom explores every interleaving of each step, so its models use a handful.)
pub const ATTEMPTS: u32 = if cfg!(loom) { 8 } else { 1 << 10 };

/// Rounds a blocking call spins (re-trying, no syscall) before it sleeps on an eventcount.
const SPINS: u32 = if cfg!(loom) { 0 } else { FAST_ROUNDS + 64 };

/// The first spinning rounds, each one pause apart (a pause takes 25-40 ns on recent x86
/// cores): an answer that comes within about a microsecond, as a reply in a request/reply
/// exchange does, is seen within one pause of its arrival rather than up to [`MAX_PAUSES`]
/// later. After them, round `FAST_ROUNDS + k` waits `2^(k+1)` pauses, up to [`MAX_PAUSES`].
const FAST_ROUNDS: u32 = 32;

/// The most pause instructions between two spinning rounds, so that a blocking call spins for
/// about 530 pauses in all (some 13 to 20 µs, by CPU) before it sleeps. A sleep costs a
/// futex wait and a wake-up (tens of microseconds on a virtual machine: the bench's `bare
/// futex wait/wake` row), so spinning for a fraction of that first keeps a steady exchange of
/// messages off the scheduler (the blocking round trip row); waiting longer between
/// re-checks also leaves the other side's cache lines alone while it writes them. Caps of 4
/// to 16 measured alike; 64 rounds of one pause each spin only a few microseconds and then
/// sleep, which made the blocking round trip several times slower
/// (`crates/shmproc-bench/README.md`).
const MAX_PAUSES: u32 = 8;

/// Pause instructions after spinning round `spun` (counted from 0) of a blocking call.
const fn pauses_after(spun: u32) -> u32 {
    if spun < FAST_ROUNDS {
        1
    } else {
        let k = spun - FAST_ROUNDS + 1;
        let grown = if k >= 31 { u32::MAX } else { 1 << k };
        if grown < MAX_PAUSES { grown } else { MAX_PAUSES }
    }
}

/// The pauses of all the spinning rounds of a blocking call, before it sleeps.
const fn spin_pauses() -> u32 {
    let mut total = 0;
    let mut spun = 0;
    while spun < SPINS {
        total += pauses_after(spun);
        spun += 1;
    }
    total
}

// A fast start, and about as long a spin as a sleep is worth (see `MAX_PAUSES`).
#[cfg(not(loom))]
const _: () = assert!(pauses_after(0) == 1 && pauses_after(FAST_ROUNDS - 1) == 1);
#[cfg(not(loom))]
const _: () = assert!(spin_pauses() > 400 && spin_pauses() < 700);

/// A get that meets a free slot at the head loads `tail` (to tell "empty" from "claimed, not
/// yet published", and so find a dead writer's position) on one round in this many of a
/// blocking get's spinning (see [`Round`]); `try_get` always does.
const THOROUGH_EVERY: u32 = if cfg!(loom) { 1 } else { 16 };

/// In a blocking put's quick rounds, a put that found the ring full looks at its own slot
/// again only once the slot this many positions past it is free (at most a quarter of the
/// capacity): see [`RawRing::room_for_batch`].
const BATCH_ROOM: u64 = 32;

/// The longest a [`Round::Patient`] attempt waits, in all, for live peers mid-copy at the
/// position it needs (see [`Patience`]). A running peer finishes a copy in nanoseconds to a
/// few microseconds (a 64 KiB item); a peer still mid-copy after this long is descheduled or
/// stopped, and the attempt answers Empty (Full) rather than wait for the scheduler.
const MID_COPY_WAIT: Duration = Duration::from_micros(20);

/// Re-reads of the slot word between two clock checks (and yields) of a [`Patience`] wait.
const PATIENT_SPINS: u32 = if cfg!(loom) { 1 } else { 64 };

/// Re-reads of a slot a claim makes, while a peer that claimed the position before it is
/// copying, before it scans the claim records for that peer (see [`RawRing::changes`]).
const SCAN_AFTER: u32 = if cfg!(loom) { 0 } else { 32 };

/// The fence that makes a hot-path SeqCst argument visible to loom (see "Memory ordering").
/// In production the SeqCst accesses around it already are in the total order `S`.
#[inline(always)]
fn sc_fence_under_loom() {
    #[cfg(loom)]
    crate::primitive::fence(Ordering::SeqCst);
}

// ---------------------------------------------------------------------------------------------
// Payload storage and the participants seen by `join`

/// Where item `i` of the ring is stored: cell `i` of some caller-provided array.
///
/// Items are `Copy`: a put keeps its own value and writes a copy, so a put whose publish
/// lost ([`PutFail::Lost`]) can hand the caller's value back.
///
/// # Safety
///
/// Implementors guarantee that `read` and `write` are sound for every `index < self.len()`
/// as long as callers keep the contract below. Production storage lives in memory that a
/// peer may write at any time, so it must copy with atomic (e.g. byte-wise atomic, see
/// `raw::copy`) accesses, making even a contract breach by a peer a torn value, not UB.
#[allow(clippy::len_without_is_empty)] // a ring has at least one cell
pub unsafe trait Payload {
    /// The item type (plain data).
    type Item: Copy;

    /// Number of cells.
    fn len(&self) -> usize;

    /// Copies `item` into cell `index`.
    ///
    /// # Safety
    ///
    /// `index < self.len()`, and the caller holds the put claim of the position that owns
    /// cell `index` (no other access to the cell can happen until it publishes or retires).
    unsafe fn write(&self, index: usize, item: &Self::Item);

    /// Copies cell `index` out.
    ///
    /// # Safety
    ///
    /// `index < self.len()`, the cell was written by a put that published it, and the caller
    /// holds the get claim of the position that owns cell `index`.
    unsafe fn read(&self, index: usize) -> Self::Item;

    /// Copies cell `index` into `*out`: [`read`](Payload::read) without handing a large item
    /// back by value through every caller (each such move is a copy of the whole item).
    ///
    /// # Safety
    ///
    /// As [`read`](Payload::read).
    unsafe fn read_into(&self, index: usize, out: &mut core::mem::MaybeUninit<Self::Item>) {
        // SAFETY: the caller's contract is `read`'s.
        out.write(unsafe { self.read(index) });
    }
}

// SAFETY: every call goes to `P`'s implementation, which keeps its contract.
unsafe impl<P: Payload + ?Sized> Payload for &P {
    type Item = P::Item;

    fn len(&self) -> usize {
        (**self).len()
    }

    unsafe fn write(&self, index: usize, item: &Self::Item) {
        // SAFETY: the caller's contract is `P::write`'s.
        unsafe { (**self).write(index, item) }
    }

    unsafe fn read(&self, index: usize) -> Self::Item {
        // SAFETY: the caller's contract is `P::read`'s.
        unsafe { (**self).read(index) }
    }

    unsafe fn read_into(&self, index: usize, out: &mut core::mem::MaybeUninit<Self::Item>) {
        // SAFETY: the caller's contract is `P::read_into`'s.
        unsafe { (**self).read_into(index, out) }
    }
}

/// The participant records a `join` must consult.
///
/// `for_each` calls `visit(owner, tasks_done)` for every taken participant record and stops
/// early as soon as `visit` returns `false`; the ring adds what the owner's claim records
/// took (`raw::claims`). Load `tasks_done` with `Acquire`: a `task_done` seen then comes
/// with the get it follows. Any `Fn(&mut dyn FnMut(Owner, u64) -> bool)` closure is a
/// `Participants`.
pub trait Participants {
    /// Visits participants until `visit` returns `false`.
    fn for_each(&self, visit: &mut dyn FnMut(Owner, u64) -> bool);
}

impl<F> Participants for F
where
    F: Fn(&mut dyn FnMut(Owner, u64) -> bool),
{
    fn for_each(&self, visit: &mut dyn FnMut(Owner, u64) -> bool) {
        self(visit)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// `task_done` was called more often than this handle took items (or its counter was
/// scribbled on so fast that it could not be decremented).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task_done called more times than items were taken")]
pub struct TaskDoneError;

/// Why a join returned before all work was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The deadline passed with work still pending.
    #[error("timed out waiting for every item to be processed")]
    Timeout,
}

// ---------------------------------------------------------------------------------------------
// The ring

/// A view of one ring's control words, `capacity` slots and claim records, without payload
/// storage: puts and gets take a closure that copies the payload of the cell they hold the
/// claim of. The byte-message queue uses this directly; [`Ring`] adds typed cells.
pub struct RawRing<'a> {
    control: &'a RingControl,
    /// Slot `i` is `slots[i * stride]`; the words in between (if `stride > 1`) belong to the
    /// caller's payload cells, which then sit next to their slot word (one cache line per
    /// item, see `Queue`), and the ring never touches them.
    slots: &'a [Slot],
    stride: usize,
    /// The number of slots as a position count, at least 1.
    cap: u64,
    /// `log2(cap)` when `cap` is a power of two (then `locate` shifts and masks instead of
    /// making a 64-bit division on each side of every message).
    shift: Option<u32>,
    /// Where claimants announce their claims (see `raw::claims`).
    table: Table<'a>,
    /// Where the caller's cells lie, if they are worth prefetching ([`RawRing::with_ahead`]).
    ahead: Option<Ahead>,
}

/// The geometry of a ring view: how many slots `words` slot words hold `stride` apart, and how
/// a position maps to a slot (a shift and a mask when the capacity is a power of two: the
/// common capacities then cost no 64-bit division on each side of every message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingShape {
    stride: usize,
    cap: u64,
    shift: Option<u32>,
}

impl RingShape {
    /// The shape of `words` slot words read every `stride`-th from the first; `None` without
    /// a whole slot or with `stride` 0.
    fn new(words: usize, stride: usize) -> Option<RingShape> {
        let n = if stride.is_power_of_two() {
            words >> stride.trailing_zeros()
        } else {
            words.checked_div(stride)?
        };
        if n == 0 {
            return None;
        }
        let cap = u64::try_from(n).ok()?;
        Some(RingShape {
            stride,
            cap,
            shift: cap.is_power_of_two().then(|| cap.trailing_zeros()),
        })
    }
}

/// Where the payload cells of a ring lie, so that each claimant can prefetch the cell it will
/// need [`AHEAD`] positions later ([`RawRing::with_ahead`]). Addresses are plain integers:
/// a prefetch never faults and is never a memory access in Rust's sense (`copy::prefetch`).
#[derive(Clone, Copy, Debug)]
pub struct Ahead {
    /// Address of cell 0.
    pub base: usize,
    /// Bytes from one cell to the next.
    pub stride: usize,
    /// Whether the slot word lies in the cell's first line (a get writes it twice).
    pub word_inside: bool,
}

/// How many positions ahead of its claim a put or a get prefetches the cell it will need.
const AHEAD: u64 = 8;

/// A put or a get whose hint of the other side's index is too old to allow a prefetch reads
/// that index afresh once every this many positions (one line transfer each time).
const REFRESH_EVERY: u64 = 32;

impl Ahead {
    /// The one cell size worth prefetching: a pair of cache lines (items of 64 to 128 bytes,
    /// messages of up to 112). Smaller cells share line pairs with their neighbours'
    /// positions, which other claimants are writing, so a prefetch would take lines away from
    /// peers. Larger cells gain nothing from a prefetch, or lose: their copies span enough
    /// lines for the hardware prefetchers to stream them.
    pub const STRIDE: usize = 128;

    /// Prefetches both lines of cell `index`.
    #[inline]
    fn fetch(&self, index: usize, put: bool) {
        let cell = self.base.wrapping_add(index.wrapping_mul(self.stride));
        // A put writes the whole cell; a get writes only the slot word. (Loom's heap rings,
        // whose build has no `copy` module, never prefetch.)
        #[cfg(not(loom))]
        {
            crate::copy::prefetch(cell, put || self.word_inside);
            crate::copy::prefetch(cell.wrapping_add(64), put);
        }
        #[cfg(loom)]
        let _ = (cell, put);
    }
}

/// A [`RawRing`] with one typed payload cell per slot. It holds its payload storage `P` (a
/// reference to one, `&P`, is a [`Payload`] too), so that a handle can build its ring once and
/// lend it to every call.
pub struct Ring<'a, P> {
    raw: RawRing<'a>,
    payload: P,
}

impl<'a, P> core::ops::Deref for Ring<'a, P> {
    type Target = RawRing<'a>;
    fn deref(&self) -> &RawRing<'a> {
        &self.raw
    }
}

/// How much one attempt of a put or a get does before it answers Full or Empty.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Round {
    /// A blocking call's spinning round: a get that finds the head slot free (a put that finds
    /// its slot at the previous lap) answers at once, without loading the other side's index
    /// (`tail`, `head`): a poller that loaded it every round would pull that line away from
    /// the peers that claim with it.
    Quick,
    /// Loads the other side's index to tell "nothing there" from "claimed by a peer that is
    /// still copying", steps over the position of a dead claimant, and reports a live one as
    /// busy (a blocking call then polls).
    Thorough,
    /// [`Round::Thorough`], and before reporting a live claimant as busy, waits for its copy
    /// (at most [`MID_COPY_WAIT`] in all, see [`Patience`]): `try_put`, `try_get`, and a
    /// blocking call's last attempt after its deadline.
    Patient,
}

/// What one step of a claim read (the model's `pos` and `seen`): position `p` (the `tail` or
/// `head` it loaded), the `index` and `lap` of that position's slot, and the slot word `raw`.
/// The slow paths of a claim decide on it without loading either word again.
#[derive(Clone, Copy)]
struct Look {
    p: u64,
    index: usize,
    lap: u32,
    raw: u64,
}

/// The bounded wait of one [`Round::Patient`] attempt for live peers mid-copy (crossbeam's
/// `pop` spins with a `Backoff` in the same place, unboundedly; here a peer may be
/// descheduled or stopped, so the wait ends after [`MID_COPY_WAIT`], counted from the first
/// wait of the attempt).
struct Patience {
    /// When the attempt stops waiting (set when it first waits).
    until: Option<Instant>,
}

impl Patience {
    fn new() -> Patience {
        Patience { until: None }
    }

    /// Waits while `slot` still reads `raw`: [`PATIENT_SPINS`] re-reads, then a clock check
    /// and a yield ([`Wait::pause`] round 0), until the attempt's time is up. `true` once the
    /// word changed, `false` when the time ran out first (at once on later calls).
    #[cold]
    fn outwaits<W: Wait + ?Sized>(&mut self, slot: &AtomicU64, raw: u64, wait: &W) -> bool {
        // Loom explores one re-read: it cannot run a clock-bounded loop to its end.
        let until = if cfg!(loom) {
            None
        } else {
            Some(*self.until.get_or_insert_with(|| Instant::now() + MID_COPY_WAIT))
        };
        loop {
            for _ in 0..PATIENT_SPINS {
                // Acquire, partner: the publish or release store that the caller then reads
                // again (the caller's loop re-reads the slot; this only waits).
                if slot.load(Ordering::Acquire) != raw {
                    return true;
                }
                spin_hint();
            }
            match until {
                Some(until) if Instant::now() < until => {
                    // Round 0: a yield, never a sleep (a sleep overshoots by the timer slack).
                    wait.pause(0, Some(until));
                }
                _ => return false,
            }
        }
    }
}

/// A ring's state as [`RawRing::census`] read it: positions `[head, tail)` are claimed,
/// and each of them holds an item, is being written by a live producer, or holds nothing
/// that will ever be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Census {
    /// The next position a get claims.
    pub head: u64,
    /// The next position a put claims.
    pub tail: u64,
    /// Number of slots.
    pub capacity: usize,
    /// Whether the ring was closed.
    pub closed: bool,
    /// Published items waiting for a get.
    pub items: usize,
    /// Positions a live producer claimed and is still writing.
    pub writing: usize,
    /// Positions claimed by a producer that died before publishing, or retired: no item.
    pub abandoned: usize,
    /// Slots whose get died between its claim and its release (before `head`): a producer
    /// frees each when it reaches it; the item is lost.
    pub taken_by_dead: usize,
}

/// How long a put or get may wait for room or an item.
#[derive(Clone, Copy, Debug)]
pub enum Block {
    /// Not at all (`try_*`): one bounded attempt.
    No,
    /// Until the deadline (`None`: for ever).
    Until(Option<Instant>),
}

/// Whether position `a` comes after position `b` (positions wrap after 2^64 operations).
#[inline]
fn after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

impl<'a> RawRing<'a> {
    /// Views `control`, every `stride`-th word of `slots` (from the first) and the claim
    /// `records` as one ring of `slots.len() / stride` positions; `None` without a whole slot
    /// or with `stride` 0.
    pub fn new_strided(
        control: &'a RingControl,
        slots: &'a [Slot],
        stride: usize,
        records: &'a [ClaimRecord],
    ) -> Option<Self> {
        Self::with_shape(control, slots, RingShape::new(slots.len(), stride)?, records)
    }

    /// [`RawRing::new_strided`] with the shape computed beforehand; `None` if `slots` is too
    /// short for it.
    fn with_shape(
        control: &'a RingControl,
        slots: &'a [Slot],
        shape: RingShape,
        records: &'a [ClaimRecord],
    ) -> Option<Self> {
        // Every slot index `locate` yields (below `cap`) then lies inside `slots`.
        if (shape.cap as usize).checked_mul(shape.stride)? > slots.len() {
            return None;
        }
        Some(RawRing {
            control,
            slots,
            stride: shape.stride,
            cap: shape.cap,
            shift: shape.shift,
            table: Table::new(records, &control.records_used.0),
            ahead: None,
        })
    }

    /// Lets claims prefetch the cells of positions ahead of them, as `ahead` describes; a
    /// no-op unless the cells are [`Ahead::STRIDE`] bytes apart.
    pub fn with_ahead(mut self, ahead: Ahead) -> Self {
        if ahead.stride == Ahead::STRIDE {
            self.ahead = Some(ahead);
        }
        self
    }
    /// Number of slots.
    pub fn capacity(&self) -> usize {
        // `cap` came from a `usize` in `new_strided`.
        self.cap as usize
    }

    /// Whether [`RawRing::close`] was called (by anyone).
    pub fn is_closed(&self) -> bool {
        self.control.closed.0.load(Ordering::SeqCst) != 0
    }

    /// Slot index (always `< capacity`) and lap of position `p`.
    #[inline]
    fn locate(&self, p: u64) -> (usize, u32) {
        // `p % cap < cap = slots.len()`, so the cast is lossless and the index in bounds.
        let (index, lap) = match self.shift {
            Some(shift) => (p & (self.cap - 1), p >> shift),
            None => (p % self.cap, p / self.cap),
        };
        (index as usize, (lap & u64::from(LAP_MASK)) as u32)
    }

    #[inline]
    fn slot(&self, index: usize) -> &AtomicU64 {
        // `index < cap = slots.len() / stride`, so the product is below `slots.len()`.
        &self.slots[index * self.stride].word
    }

    #[inline]
    fn cas_slot(&self, index: usize, from: u64, to: u64) -> bool {
        self.slot(index)
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::Acquire)
            .is_ok()
    }

    /// The claim CAS on `tail` or `head` (model: "claim ok (CAS tail)", "CAS head").
    #[inline]
    fn claim_index(index: &AtomicU64, p: u64) -> bool {
        // SeqCst: the claim is in `S` before our `closed` and `sleepers` loads (see "Memory
        // ordering"); its release half publishes the claim record stored before it.
        index
            .compare_exchange(p, p.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// Spins a little while the word of slot `index` still reads `raw` (a live peer finishes
    /// its copy in nanoseconds); `true` if it changed. Keeps the record scans, which read
    /// other processes' cache lines, off the common path.
    fn changes(&self, index: usize, raw: u64) -> bool {
        for _ in 0..SCAN_AFTER {
            if self.slot(index).load(Ordering::Acquire) != raw {
                return true;
            }
            spin_hint();
        }
        false
    }

    // ----- len, join -----------------------------------------------------------------------

    /// Calls `visit(p, slot word)` for each position `p` of `[head, tail)` (at most
    /// `capacity` of them) until it returns `false`. `head` and `tail` move only by the claim
    /// CASes, so they are exact; the Acquire loads pair with the claims and the stores.
    fn scan_claimed(&self, mut visit: impl FnMut(u64, u32, SlotWord) -> bool) {
        let h = self.control.head.0.load(Ordering::Acquire);
        let t = self.control.tail.0.load(Ordering::Acquire);
        let n = t.wrapping_sub(h).min(self.cap);
        for k in 0..n {
            let p = h.wrapping_add(k);
            let (index, lap) = self.locate(p);
            let seen = SlotWord::decode(self.slot(index).load(Ordering::Acquire));
            if !visit(p, lap, seen) {
                return;
            }
        }
    }

    /// Whether position `p` (of lap `lap`, whose slot reads `seen`) holds or will hold an
    /// item: FULL, or claimed by a live writer that has not published yet.
    fn holds_item<L: Liveness + ?Sized>(&self, p: u64, lap: u32, seen: SlotWord, live: &L) -> bool {
        match (relate(seen.lap, lap), seen.phase) {
            (Lap::Same, FULL) => true,
            (Lap::Same, EMPTY) => self.table.shows_live(put_claim(p), live, false),
            _ => false,
        }
    }

    /// Number of items in the ring: the positions of `[head, tail)` that hold an item or
    /// will (FULL, or claimed by a live producer). Positions of producers that died after
    /// their claim, or that retired, are not counted. Exact once the ring is quiescent; a
    /// snapshot otherwise.
    pub fn len<L: Liveness + ?Sized>(&self, live: &L) -> usize {
        let mut n = 0usize;
        self.scan_claimed(|p, lap, seen| {
            if self.holds_item(p, lap, seen, live) {
                n += 1;
            }
            true
        });
        n
    }

    /// What the ring holds now, read with loads only (for inspection: it never claims,
    /// waits or writes). A snapshot: exact once the ring is quiescent.
    pub fn census<L: Liveness + ?Sized>(&self, live: &L) -> Census {
        let mut c = Census {
            head: self.control.head.0.load(Ordering::Acquire),
            tail: self.control.tail.0.load(Ordering::Acquire),
            capacity: self.capacity(),
            closed: self.is_closed(),
            items: 0,
            writing: 0,
            abandoned: 0,
            taken_by_dead: 0,
        };
        self.scan_claimed(|p, lap, seen| {
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, FULL) => c.items += 1,
                (Lap::Same, EMPTY) if self.table.shows_live(put_claim(p), live, false) => c.writing += 1,
                // Claimed and never published by a writer that is gone, or retired: a get
                // steps over it when it reaches it.
                _ => c.abandoned += 1,
            }
            true
        });
        // Gets that died between their claim and their release: the slot keeps their mark
        // until a producer reaches it a lap later and frees it (the item is lost).
        for claim in self.table.dead_claims(live) {
            let Some(low) = crate::claims::get_position(claim) else {
                continue;
            };
            // The full position: `head`'s high bits (claims keep 62 bits; positions that far
            // apart never meet).
            let h = (c.head & !((1 << 62) - 1)) | low;
            let (index, lap) = self.locate(h);
            let seen = SlotWord::decode(self.slot(index).load(Ordering::Acquire));
            if relate(seen.lap, lap) == Lap::Same && matches!(seen.phase, FULL | slot::TAKEN) {
                c.taken_by_dead += 1;
            }
        }
        c
    }

    /// The items that `owner`'s claim records took (see `raw::claims`): its items in hand
    /// are these less its `task_done` calls.
    pub fn taken_by(&self, owner: Owner) -> u64 {
        self.table.taken_by(owner)
    }

    /// `len(live) == 0`.
    pub fn is_empty<L: Liveness + ?Sized>(&self, live: &L) -> bool {
        self.len(live) == 0
    }

    /// `len(live) == capacity`.
    pub fn is_full<L: Liveness + ?Sized>(&self, live: &L) -> bool {
        self.len(live) == self.capacity()
    }

    // ----- waiters that do not futex-wait (async) --------------------------------------------

    /// Announces a waiter for an item that sleeps in its own way (an async task waiting on a
    /// doorbell): it arms `not_empty` as a blocking get would, so the next publish calls
    /// [`Wait::wake_all`], which the caller's `Wait` turns into its wake-up. The caller then
    /// attempts again (a publish before this is seen there) and calls
    /// [`depart_get`](RawRing::depart_get) when it stops waiting.
    pub fn announce_get(&self) {
        self.control.not_empty.0.announce();
    }

    /// Undoes [`announce_get`](RawRing::announce_get).
    pub fn depart_get(&self) {
        self.control.not_empty.0.depart();
    }

    /// [`announce_get`](RawRing::announce_get) for a waiter for room (`not_full`).
    pub fn announce_put(&self) {
        self.control.not_full.0.announce();
    }

    /// Undoes [`announce_put`](RawRing::announce_put).
    pub fn depart_put(&self) {
        self.control.not_full.0.depart();
    }

    /// [`announce_get`](RawRing::announce_get) for a joiner (`tasks`): the next `task_done`,
    /// retiring put or `close` calls [`Wait::wake_all`]. The caller then checks
    /// [`join_ready`](RawRing::join_ready) again and calls
    /// [`depart_join`](RawRing::depart_join) when it stops waiting.
    pub fn announce_join(&self) {
        self.control.tasks.0.announce();
    }

    /// Undoes [`announce_join`](RawRing::announce_join).
    pub fn depart_join(&self) {
        self.control.tasks.0.depart();
    }

    // ----- close, task accounting ----------------------------------------------------------

    /// Closes the ring: later puts fail `Closed(item)`, gets drain what was put before and
    /// then fail `Closed`. Wakes every sleeper (producers, consumers, joiners).
    pub fn close<W: Wait + ?Sized>(&self, wait: &W) {
        // Partner: the SeqCst `closed` loads in `finish_put`, `empty_or_closed`.
        self.control.closed.0.store(1, Ordering::SeqCst);
        self.control.not_empty.0.wake_always(wait);
        self.control.not_full.0.wake_always(wait);
        self.control.tasks.0.wake_always(wait);
    }

    /// Marks one item taken by participant `me` as processed: raises its `done` counter (in
    /// its participant record), and wakes joiners.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] when that would make `done` pass the items `me`'s records took: more
    /// `task_done` calls than items this handle took.
    pub fn task_done<W: Wait + ?Sized>(&self, done: &AtomicU64, me: Owner, wait: &W) -> Result<(), TaskDoneError> {
        let now = done.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        // Gets of other threads only raise `taken`, so a check that passes stays true.
        if (self.table.taken_by(me).wrapping_sub(now) as i64) < 0 {
            done.fetch_sub(1, Ordering::SeqCst);
            return Err(TaskDoneError);
        }
        // Dekker with `join`'s announce + rescan: our SeqCst decrement precedes the
        // `sleepers` load in S.
        self.control.tasks.0.wake(wait);
        Ok(())
    }

    /// Whether all work is done (model `js`..`jc`): no position of `[head, tail)` holds an
    /// item (FULL, or claimed by a live writer), then no live participant has an item in
    /// hand. Work held by dead participants is ignored: it died with them.
    pub fn join_ready<L, Q>(&self, live: &L, participants: &Q) -> bool
    where
        L: Liveness + ?Sized,
        Q: Participants + ?Sized,
    {
        // Acquire loads (in `scan_claimed`): if a get's claim is visible here (`head` past
        // its position), so is the `taken` count it stored before claiming.
        let mut clear = true;
        self.scan_claimed(|p, lap, seen| {
            clear = !self.holds_item(p, lap, seen, live);
            clear
        });
        if !clear {
            return false;
        }
        let mut ready = true;
        participants.for_each(&mut |owner, done| {
            // In hand: taken less done. Transiently negative (a `task_done` on one thread seen,
            // the get on another not yet): not ready, which is the safe answer.
            if self.table.taken_by(owner) != done && live.is_alive(owner) {
                ready = false;
            }
            ready
        });
        ready
    }

    /// Waits until [`RawRing::join_ready`], until `deadline` (`None`: no deadline). Sleeps on the
    /// tasks eventcount, which `task_done`, retiring puts and `close` bump; each [`Wait`]
    /// slice ends in a rescan, which covers work that died with its participant.
    ///
    /// # Errors
    ///
    /// [`JoinError::Timeout`].
    pub fn join<L, Q, W>(
        &self,
        deadline: Option<Instant>,
        live: &L,
        participants: &Q,
        wait: &W,
    ) -> Result<(), JoinError>
    where
        L: Liveness + ?Sized,
        Q: Participants + ?Sized,
        W: Wait + ?Sized,
    {
        // Sleeping is right even when a live put or get is mid-copy: the join waits for the
        // `task_done` after it, which wakes the tasks eventcount with an RMW.
        block_on(&self.control.tasks.0, deadline, wait, |_| {
            if self.join_ready(live, participants) {
                Attempt::Done(())
            } else {
                Attempt::Sleep
            }
        })
        .ok_or(JoinError::Timeout)
    }
}

impl<'a, P: Payload> Ring<'a, P> {
    /// Views `control`, `slots`, `records` and `payload` as one ring of `slots.len()` items.
    /// `None` when there are no slots or fewer payload cells than slots.
    #[cfg(test)]
    pub fn new(control: &'a RingControl, slots: &'a [Slot], records: &'a [ClaimRecord], payload: P) -> Option<Self> {
        Self::new_strided(control, slots, 1, records, payload)
    }

    /// [`RawRing::new_strided`] with typed cells (which may lie between the slot words).
    pub fn new_strided(
        control: &'a RingControl,
        slots: &'a [Slot],
        stride: usize,
        records: &'a [ClaimRecord],
        payload: P,
    ) -> Option<Self> {
        Self::with_shape(control, slots, RingShape::new(slots.len(), stride)?, records, payload)
    }

    /// [`RawRing::with_shape`] with typed cells.
    fn with_shape(
        control: &'a RingControl,
        slots: &'a [Slot],
        shape: RingShape,
        records: &'a [ClaimRecord],
        payload: P,
    ) -> Option<Self> {
        let raw = RawRing::with_shape(control, slots, shape, records)?;
        if payload.len() < raw.capacity() {
            return None;
        }
        Some(Ring { raw, payload })
    }

    /// [`RawRing::with_ahead`].
    pub fn with_ahead(self, ahead: Ahead) -> Self {
        Ring {
            raw: self.raw.with_ahead(ahead),
            payload: self.payload,
        }
    }
}

/// One round of a blocking call.
enum Attempt<R> {
    /// Finished (successfully or not).
    Done(R),
    /// Blocked on a state whose next change wakes the eventcount's sleepers: sleep.
    Sleep,
    /// Blocked on a live peer in the middle of its copy, whose publish or release is a plain
    /// store that wakes nobody who announced after its claim: poll (see "Wake-ups").
    Poll,
}

/// Runs `attempt` until it is done: a few spinning rounds, then rounds that announce
/// themselves on `ec`, re-check, and sleep (or pause and poll, while `attempt` says a peer is
/// mid-copy). `None` once `deadline` has passed.
///
/// `attempt(round)` ([`Round`]): every [`THOROUGH_EVERY`]th spinning round (not the first),
/// every round after the spinning, and the re-check after announcing are thorough (see
/// [`RawRing::claim_get`]): the re-check is what the wake-up argument needs to see a claim made
/// before we announced. Once the deadline has passed, one last attempt is patient, so that a
/// call with a timeout answers as the `try_*` call would: it may return up to
/// [`MID_COPY_WAIT`] after the deadline, and only while a peer is mid-copy where it needs.
fn block_on<R, W: Wait + ?Sized>(
    ec: &EventCount,
    deadline: Option<Instant>,
    wait: &W,
    mut attempt: impl FnMut(Round) -> Attempt<R>,
) -> Option<R> {
    let mut spins = SPINS;
    // Spinning rounds made so far (see `pauses_after`).
    let mut spun = 0u32;
    let mut polls = 0u32;
    loop {
        // Not the first round: a get that arrives while the head item is being written (or a
        // put while the slot it needs is being read) would otherwise pull the other side's
        // index line away on every call.
        let round = if spins % THOROUGH_EVERY == 0 && spins < SPINS {
            Round::Thorough
        } else {
            Round::Quick
        };
        let blocked = match attempt(round) {
            Attempt::Done(r) => return Some(r),
            b => b,
        };
        if expired(deadline) {
            return match attempt(Round::Patient) {
                Attempt::Done(r) => Some(r),
                _ => None,
            };
        }
        if spins > 0 {
            spins -= 1;
            for _ in 0..pauses_after(spun) {
                spin_hint();
            }
            spun += 1;
            continue;
        }
        if let Attempt::Poll = blocked
            && !cfg!(loom)
        {
            wait.pause(polls, deadline);
            polls = polls.saturating_add(1);
            continue;
        }
        polls = 0;
        let seq = ec.announce();
        let r = attempt(Round::Thorough);
        match r {
            Attempt::Poll if !cfg!(loom) => wait.pause(polls, deadline),
            Attempt::Sleep | Attempt::Poll => wait.wait(&ec.seq, seq, deadline),
            Attempt::Done(_) => {}
        }
        ec.depart();
        if let Attempt::Done(r) = r {
            return Some(r);
        }
    }
}
