//! The crash-tolerant bounded MPMC ring behind the queues: pure code over caller-provided memory.
//!
//! # Source
//!
//! The skeleton is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>) as
//! crossbeam's `ArrayQueue` writes it (`crossbeam-queue/src/array_queue.rs`): `head` and `tail`
//! are positions, position `p` lives in slot `p % capacity` on lap `p / capacity`, and a
//! per-slot word says whose turn it is. Vyukov's stamp cannot tell a dead claimant from a slow
//! one, so here the slot word is `{phase, lap, owner}` and the protocol is the one in
//! `../shared/RELIABILITY.md` ("A ring protocol with no unguarded window"), model-checked by
//! `models/ring_model.py` (modes `fast`, `join`, `close_anytime`, `retire_anytime`). States
//! and steps carry the model's names:
//!
//! | step (model)       | who                 | slot word change (CAS unless noted)           |
//! |--------------------|---------------------|-----------------------------------------------|
//! | claim              | put at `t`          | EMPTY(lap t) -> WRITING(lap t, me)            |
//! | reload/store tail  | put, after its claim | `tail` t -> t+1 if it still reads t (load, then plain store) |
//! | help tail          | put                 | `tail` t -> t+1 (slot of lap t taken), or past a later lap (see [`RawRing::past`]) |
//! | publish            | put                 | WRITING(lap t, me) -> FULL(lap t) (load, then Release store) |
//! | retire             | put that saw closed, or whose payload writer unwound | WRITING(lap t, me) -> EMPTY(lap t+1) |
//! | repair R / W / S   | put at `t`          | READING(t-1, dead) -> EMPTY(t); WRITING(t-1, dead) -> SKIP(t-1); SKIP(t-1) -> EMPTY(t) |
//! | claim              | get at `h`          | FULL(lap h) -> READING(lap h, me)             |
//! | reload/store head  | get, after its claim | `head` h -> h+1 if it still reads h (load, then plain store) |
//! | help head          | get, settle         | `head` h -> h+1 (READING(lap h)), or past a later lap |
//! | release            | get                 | READING(lap h, me) -> EMPTY(lap h+1) (load, then Release store) |
//! | skip               | get, settle         | SKIP(lap h) -> EMPTY(lap h+1)                 |
//! | repair W / R       | get at `h`          | WRITING(h, dead) -> SKIP(h); READING(h-1, dead) -> EMPTY(h) |
//! | settle head        | retire, `len`       | the get-side helping and repairs, up to `tail` |
//!
//! Exactly one of publish/repair (and of release/repair) can win, because claim, phase and
//! owner are one word: a slow but live owner never loses its item, and a dead one loses at
//! most the one it held. Liveness must be exact in one direction (never "dead" for a live
//! owner; see [`Liveness`]): a repair of a live owner's slot would let its late payload copy
//! race with the slot's next owner.
//!
//! # The fast path (layout version 3, model mode `fast`)
//!
//! Only the two claims are read-modify-write operations; a put and a get cost one locked
//! instruction each on x86 (plus the get's `in_hand` count), as crossbeam's `ArrayQueue`
//! does, instead of three each:
//!
//! * **Publish and release are stores.** A repair takes a slot from its owner only once the
//!   owner is dead, so with exact liveness the slot still holds our claim when we publish or
//!   release, and a CAS could not fail. The store is guarded by a load (`Lost` if the claim
//!   is gone), which leaves a misjudged liveness (a scribbled participant table) a window of
//!   one load-to-store instead of none: that costs wrong answers, never undefined behaviour.
//!   The model's `fast` mode asserts that the guarded store never meets another word.
//! * **`tail`/`head` move by "store `p + 1` if it still reads `p`"** after the claim. A
//!   process that stalls between the load and the store can move an index back, by any
//!   number of positions. The indices stay hints that never pass an unclaimed position
//!   (claims form a prefix: see [`RawRing::scan_claimed`]); a lagging index costs the next
//!   claims some help steps, which jump a whole lap at a time over slots of later laps
//!   ([`RawRing::past`]), and `len`, `join` and settle head scan to the first unclaimed
//!   position instead of to `tail`.
//!
//! # Wake-ups
//!
//! A put reads the consumers' `sleepers` count right after its claim CAS (which is in the
//! total order `S`), then publishes with a plain store and wakes if the count was nonzero. A
//! get that announced itself as a sleeper before that claim is seen; one that announces later
//! re-checks and finds the WRITING claim, and must not sleep on it, because nobody will wake
//! it: it polls ([`Wait::pause`]: yields, then short sleeps) until the publish. Gets do the
//! same for puts: a put blocked on the previous lap's READING slot polls; one blocked on a
//! FULL slot sleeps, because the get that claims it next will see it.
//!
//! # Memory ordering
//!
//! * Payload hand-over: every slot CAS is `SeqCst` (which includes `AcqRel`) and every slot
//!   load `Acquire`, so a claim synchronises with the CAS that made the slot claimable
//!   (publish -> get's claim; release or repair -> put's claim) and payload accesses of
//!   consecutive owners are ordered. `head`/`tail` moves are `AcqRel` CASes read with
//!   `Acquire`: after reading position `p` from an index word, a slot load sees at least the
//!   slot state that justified moving the index to `p`.
//! * Publish and release are `Release` stores after payload accesses; the next claim CAS of
//!   the slot acquires them. Index stores are `Release` after the claim CAS, so a process
//!   that reads the new index sees the claim.
//! * Three Dekker-style races decide whether anything gets stranded, and each is closed by the
//!   single total order `S` of `SeqCst` operations (C++20 \[atomics.order\]): "claim; load
//!   `closed`" against "store `closed`" and "load `closed`; fence; reload slot" (close never
//!   strands an item), "claim (or repair, retire); load `sleepers`" against "`sleepers += 1`;
//!   fence; re-check slot" (no lost wake-up; see "Wake-ups"), and the same for `in_hand` and
//!   the joiners. On the hot paths we
//!   rely on `SeqCst` accesses alone (free on x86, `ldar`/`stlr` on Arm); loom models `SeqCst`
//!   accesses as `AcqRel` (tokio-rs/loom#180) but does model `SeqCst` fences, so
//!   [`sc_fence_under_loom`] adds on the hot side, under loom only, the fence that expresses the
//!   same argument in a form loom checks. Slow paths (sleeping, the closed re-check) always
//!   fence.
//!
//! # Hostile memory
//!
//! A peer may write any bytes at any time. Every shared word is loaded once into a local,
//! decoded with masks ([`SlotWord::decode`] maps unknown phases to SKIP), positions are
//! reduced modulo the capacity before indexing, all arithmetic wraps, and every loop that a
//! peer's words could keep going is bounded: a `try_*` call makes at most [`ATTEMPTS`] steps
//! and then answers conservatively (`Full`, `Empty`), blocking calls sleep on an eventcount
//! and check their deadline on every round. Garbage can produce wrong answers, never UB, a
//! panic or an unbounded spin. Positions are `u64` and wrap only after 2^64 operations
//! (laps stay continuous across that wrap when the capacity is a power of two).
//!
//! # Beyond the model
//!
//! * A put also looks at `closed` before claiming, and fails `Closed` without effect if it is
//!   set. Otherwise every put after close would claim and retire a position (which `len`
//!   counts until consumers pass it), and a put blocked on a full, closed queue would wait
//!   for consumers forever. The look after the claim still decides races with close.
//! * Settle head also steps over READING(lap h), as consumers' help head does, so `len` is
//!   right even when the consumer that took the head died before moving it.
//! * A put whose payload writer unwinds (a panicking `ByteQueue::put_with` closure) retires
//!   its claim while the queue is open, as a put that saw close does; checked by the model's
//!   `retire_anytime` mode.
//! * Wake-ups (eventcounts), memory orderings, bounded attempts against scribbled words, and
//!   a get whose release lost (it was declared dead) dropping its copy, undoing `in_hand` and
//!   starting over, as the model's "release lost" does.

use super::{Liveness, Owner, Wait, expired};
use crate::primitive::{AtomicU32, AtomicU64, Ordering, fence, spin_hint};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// The slot word

/// Phase: nothing at this position of this lap yet; a put may claim it.
const EMPTY: u32 = 0;
/// Phase: claimed by a put (`owner`) that is copying the payload in.
const WRITING: u32 = 1;
/// Phase: published, waiting for a get.
const FULL: u32 = 2;
/// Phase: claimed by a get (`owner`) that is copying the payload out.
const READING: u32 = 3;
/// Phase: a dead writer's position, to be stepped over (holds nothing deliverable).
const SKIP: u32 = 4;

const PHASE_MASK: u64 = 0b111;
const LAP_SHIFT: u32 = 3;
const LAP_BITS: u32 = 29;
const LAP_MASK: u32 = (1 << LAP_BITS) - 1;
/// Laps up to this far ahead of a position count as "later"; further ones as stale.
const LAP_HALF: u32 = 1 << (LAP_BITS - 1);
const OWNER_SHIFT: u32 = 32;

/// One slot's word in shared memory.
///
/// | bits    | field | meaning                                                          |
/// |---------|-------|------------------------------------------------------------------|
/// | 0..3    | phase | EMPTY 0, WRITING 1, FULL 2, READING 3, SKIP 4; 5..7 read as SKIP |
/// | 3..32   | lap   | `position / capacity` modulo 2^29                                |
/// | 32..64  | owner | [`Owner`] token of the WRITING/READING claimant, 0 otherwise     |
///
/// All-zero bytes are EMPTY, lap 0, no owner: the initial state of position `index`. Laps are
/// compared modulo 2^29 ([`relate`]), so a process would have to stall for about 2^28 laps
/// of the ring for a lap to be misjudged (the ABA bound of this design).
#[repr(C)]
pub(crate) struct Slot {
    word: AtomicU64,
}

impl Slot {
    /// An EMPTY slot of lap 0 (the same as all-zero bytes).
    pub(crate) fn new() -> Slot {
        Slot {
            word: AtomicU64::new(0),
        }
    }
}

impl Default for Slot {
    fn default() -> Slot {
        Slot::new()
    }
}

/// A slot word decoded into a local (never trusted beyond its masks).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct SlotWord {
    phase: u32,
    lap: u32,
    owner: u32,
}

impl SlotWord {
    fn decode(raw: u64) -> SlotWord {
        let phase = (raw & PHASE_MASK) as u32;
        SlotWord {
            // A phase this code never writes comes from a scribbling peer: treat it like a dead
            // writer's position (nothing deliverable, nobody owns it), so it heals the same way.
            phase: if phase > SKIP { SKIP } else { phase },
            lap: (raw >> LAP_SHIFT) as u32 & LAP_MASK,
            owner: (raw >> OWNER_SHIFT) as u32,
        }
    }

    fn encode(phase: u32, lap: u32, owner: u32) -> u64 {
        (u64::from(owner) << OWNER_SHIFT) | (u64::from(lap & LAP_MASK) << LAP_SHIFT) | u64::from(phase)
    }
}

fn empty(lap: u32) -> u64 {
    SlotWord::encode(EMPTY, lap, 0)
}
fn writing(lap: u32, owner: u32) -> u64 {
    SlotWord::encode(WRITING, lap, owner)
}
fn full(lap: u32) -> u64 {
    SlotWord::encode(FULL, lap, 0)
}
fn reading(lap: u32, owner: u32) -> u64 {
    SlotWord::encode(READING, lap, owner)
}
fn skip(lap: u32) -> u64 {
    SlotWord::encode(SKIP, lap, 0)
}
fn next_lap(lap: u32) -> u32 {
    lap.wrapping_add(1) & LAP_MASK
}

/// How a slot's lap relates to the lap of the position being looked at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lap {
    Same,
    /// One lap behind: the previous occupant of this slot is not done yet.
    Previous,
    /// Ahead: the position was already consumed (or retired) and the slot reused.
    Later,
    /// Further behind than the previous lap: impossible unless a word was scribbled.
    Stale,
}

fn relate(slot_lap: u32, position_lap: u32) -> Lap {
    match slot_lap.wrapping_sub(position_lap) & LAP_MASK {
        0 => Lap::Same,
        LAP_MASK => Lap::Previous,
        1..=LAP_HALF => Lap::Later,
        _ => Lap::Stale,
    }
}

// ---------------------------------------------------------------------------------------------
// The control block

/// Steps one `try_*` call may take before it answers conservatively (see "Hostile memory").
/// Each step either makes progress (ours or a helped peer's) or met a scribbled word.
/// (Loom explores every interleaving of each step, so its models use a handful.)
pub(crate) const ATTEMPTS: u32 = if cfg!(loom) { 8 } else { 1 << 10 };

/// Rounds a blocking call spins (re-trying, no syscall) before it sleeps on an eventcount.
const SPINS: u32 = if cfg!(loom) { 0 } else { 64 };

/// Keeps a shared word on its own 64-byte cache line.
#[repr(C, align(64))]
pub(crate) struct CachePadded<T>(T);

/// An eventcount: how one side of the ring sleeps until the other side changes something.
///
/// | word       | meaning                                                                    |
/// |------------|----------------------------------------------------------------------------|
/// | `seq`      | bit 0 *armed*: a sleeper waits on this value; bits 1..32 a wrapping count  |
/// | `sleepers` | number of announced sleepers (wrapping); 0 lets wakers skip everything     |
///
/// A sleeper announces itself (`sleepers += 1`), fences, arms `seq` (even -> odd), re-checks
/// its condition, then waits while `seq` is unchanged. A waker changes the state, reads
/// `sleepers`, and only if it is nonzero and `seq` is armed, disarms it (odd `v` -> `v + 1`)
/// and, if that CAS won, wakes: one system call per sleep episode. A scribbled or leaked
/// count (a sleeper killed while asleep) costs at most one spurious wake; a lost wake-up is
/// bounded by [`Wait`]'s re-check slice.
#[repr(C)]
pub(crate) struct EventCount {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

impl EventCount {
    fn new() -> EventCount {
        EventCount {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Announces a sleeper and returns the `seq` to wait on. The caller must re-check its
    /// condition after this and call [`EventCount::depart`] when done.
    ///
    /// The low bit of `seq` is the *armed* bit: a sleeper sets it before it re-checks and
    /// waits on the odd value; a waker makes the futex call only when it clears the bit
    /// (odd `v` -> `v + 1`). So each sleep episode costs at most one wake system call, even
    /// while the sleeper has not yet run to `depart` (a "wake storm" otherwise: every put
    /// called futex_wake while a woken consumer waited for the CPU), and a sleeper killed
    /// while asleep costs one extra wake, not one per operation forever.
    fn announce(&self) -> u32 {
        // Dekker with `wake`: our `sleepers` RMW and arming CAS, then a SeqCst fence, precede
        // the re-check; the waker's state change precedes its `sleepers` and `seq` loads (all
        // SeqCst). In S either the waker sees us armed, or our re-check sees its change.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut s = self.seq.load(Ordering::SeqCst);
        // Bounded: each failure means a peer changed `seq` (a wake happened); a hostile
        // peer toggling it only costs us a spurious, slice-bounded wait.
        for _ in 0..ATTEMPTS {
            if s & 1 != 0 {
                break;
            }
            match self.seq.compare_exchange(s, s | 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    s |= 1;
                    break;
                }
                Err(x) => s = x,
            }
        }
        // After the arming CAS, before the caller's re-check (which may use weaker loads):
        // the pair of this fence and the waker's is what orders "armed" against "changed".
        fence(Ordering::SeqCst);
        s
    }

    fn depart(&self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes sleepers, if any armed the sequence word. Call after a SeqCst state change.
    fn wake<W: Wait + ?Sized>(&self, wait: &W) {
        if self.has_sleepers() {
            self.wake_armed(wait);
        }
    }

    /// Whether a sleeper has announced itself. Call after a SeqCst state change (the hot paths
    /// call it right after their claim CAS and act on the answer after their plain-store
    /// publish or release; see "Wake-ups" in the module docs).
    #[inline]
    fn has_sleepers(&self) -> bool {
        sc_fence_under_loom();
        // Partner: the `sleepers` RMW + fence + arming CAS in `announce`.
        self.sleepers.load(Ordering::SeqCst) != 0
    }

    /// The second half of [`EventCount::wake`]: disarm `seq` if a sleeper armed it, and wake.
    #[cold]
    fn wake_armed<W: Wait + ?Sized>(&self, wait: &W) {
        let s = self.seq.load(Ordering::SeqCst);
        // Only the waker that disarms makes the system call.
        if s & 1 != 0
            && self
                .seq
                .compare_exchange(s, s.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            wait.wake_all(&self.seq);
        }
    }

    /// Wakes every sleeper without trusting `sleepers` (close: rare, and must reach all).
    fn wake_always<W: Wait + ?Sized>(&self, wait: &W) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        wait.wake_all(&self.seq);
    }
}

/// The ring's shared control words, on separate cache lines. 384 bytes, 64-byte aligned.
///
/// | offset | word               | meaning                                                   |
/// |--------|--------------------|-----------------------------------------------------------|
/// | 0      | `tail: u64`        | next position to claim for a put (a hint: the slot decides) |
/// | 64     | `head: u64`        | next position to claim for a get (a hint: the slot decides) |
/// | 128    | `closed: u32`      | 0 open; anything else closed (1 is written)               |
/// | 192    | `not_empty` (u32, u32) | [`EventCount`] consumers sleep on (`seq`, `sleepers`) |
/// | 256    | `not_full` (u32, u32)  | [`EventCount`] producers sleep on                     |
/// | 320    | `tasks` (u32, u32)     | [`EventCount`] joiners sleep on                       |
///
/// All-zero bytes are the initial state (empty, open, nobody asleep), so a freshly zeroed
/// mapping needs no initialisation; [`RingControl::new`] builds the same on the heap.
#[repr(C)]
pub(crate) struct RingControl {
    tail: CachePadded<AtomicU64>,
    head: CachePadded<AtomicU64>,
    closed: CachePadded<AtomicU32>,
    not_empty: CachePadded<EventCount>,
    not_full: CachePadded<EventCount>,
    tasks: CachePadded<EventCount>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Slot>() == 8 && align_of::<Slot>() == 8);
    assert!(size_of::<EventCount>() == 8);
    assert!(size_of::<RingControl>() == 384 && align_of::<RingControl>() == 64);
    assert!(offset_of!(RingControl, tail) == 0);
    assert!(offset_of!(RingControl, head) == 64);
    assert!(offset_of!(RingControl, closed) == 128);
    assert!(offset_of!(RingControl, not_empty) == 192);
    assert!(offset_of!(RingControl, not_full) == 256);
    assert!(offset_of!(RingControl, tasks) == 320);
    assert!(offset_of!(EventCount, seq) == 0 && offset_of!(EventCount, sleepers) == 4);
};

impl RingControl {
    /// An empty, open ring's control block (the same as all-zero bytes).
    pub(crate) fn new() -> RingControl {
        RingControl {
            tail: CachePadded(AtomicU64::new(0)),
            head: CachePadded(AtomicU64::new(0)),
            closed: CachePadded(AtomicU32::new(0)),
            not_empty: CachePadded(EventCount::new()),
            not_full: CachePadded(EventCount::new()),
            tasks: CachePadded(EventCount::new()),
        }
    }
}

impl Default for RingControl {
    fn default() -> RingControl {
        RingControl::new()
    }
}

/// The fence that makes a hot-path SeqCst argument visible to loom (see "Memory ordering").
/// In production the SeqCst accesses around it already are in the total order `S`.
#[inline(always)]
fn sc_fence_under_loom() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// A named point where crash tests can stop the process (`fault-injection` feature only;
/// loom builds have no `fault` module and no processes to stop).
#[inline(always)]
fn fault_point(_name: &'static str) {
    #[cfg(all(feature = "fault-injection", not(loom)))]
    crate::fault::hit(_name);
}

// ---------------------------------------------------------------------------------------------
// Payload storage and the participants seen by `join`

/// Where item `i` of the ring is stored: cell `i` of some caller-provided array.
///
/// Items are `Copy`: a put keeps its own value and writes a copy, so a put whose publish
/// lost (`PutError::Lost`) can hand the caller's value back.
///
/// # Safety
///
/// Implementors guarantee that `read` and `write` are sound for every `index < self.len()`
/// as long as callers keep the contract below. Production storage lives in memory that a
/// peer may write at any time, so it must copy with atomic (e.g. byte-wise atomic, see
/// `raw::copy`) accesses, making even a contract breach by a peer a torn value, not UB.
pub(crate) unsafe trait Payload {
    /// The item type (plain data).
    type Item: Copy;

    /// Number of cells.
    fn len(&self) -> usize;

    /// Copies `item` into cell `index`.
    ///
    /// # Safety
    ///
    /// `index < self.len()`, and the caller holds the WRITING claim of the slot that owns
    /// cell `index` (no other access to the cell can happen until it publishes or retires).
    unsafe fn write(&self, index: usize, item: &Self::Item);

    /// Copies cell `index` out.
    ///
    /// # Safety
    ///
    /// `index < self.len()`, the cell was written by a put that published it, and the caller
    /// holds the READING claim of the slot that owns cell `index`.
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

/// The participant records a `join` must consult.
///
/// `for_each` calls `visit(owner, in_hand)` for every taken participant record and stops
/// early as soon as `visit` returns `false`. `Relaxed` loads of `in_hand` suffice: the ring
/// scan's `Acquire` loads (and, when sleeping, the eventcount's fence) come first. Any
/// `Fn(&mut dyn FnMut(Owner, u64) -> bool)` closure is a `Participants`.
pub(crate) trait Participants {
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

/// Why a put did not send its item. Every variant hands the item back.
///
/// (Defined here, next to the algorithm that produces it, and re-exported as
/// `shmproc::PutError`.)
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PutError<T> {
    /// `try_put`: no room now (Python's `queue.Full` from `put_nowait`). Also the
    /// conservative answer when the ring's shared words look garbled.
    #[error("the queue is full")]
    Full(T),
    /// The queue is closed: no put can succeed any more.
    #[error("the queue is closed")]
    Closed(T),
    /// A peer took this process for dead and retired the slot it was writing, so the item
    /// was not sent. Happens only if liveness was misjudged (a peer scribbling on the
    /// participant table), and is then reported on a best-effort basis: a repair that lands
    /// between the publish's guard load and its store goes unnoticed.
    #[error("the put was retired by a peer that took this process for dead")]
    Lost(T),
    /// `put_timeout`: still full when the timeout passed.
    #[error("timed out waiting for room in the queue")]
    Timeout(T),
}

impl<T> core::fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PutError::Full(_) => "Full(..)",
            PutError::Closed(_) => "Closed(..)",
            PutError::Lost(_) => "Lost(..)",
            PutError::Timeout(_) => "Timeout(..)",
        })
    }
}

impl<T> PutError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t) | PutError::Closed(t) | PutError::Lost(t) | PutError::Timeout(t) => t,
        }
    }
}

/// Why a get returned no item (re-exported as `shmproc::GetError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// `try_get`: nothing to take now (Python's `queue.Empty` from `get_nowait`). Also the
    /// conservative answer when the ring's shared words look garbled.
    #[error("the queue is empty")]
    Empty,
    /// The queue is closed and every item put before the close has been taken.
    #[error("the queue is closed and drained")]
    Closed,
    /// `get_timeout`: still empty when the timeout passed.
    #[error("timed out waiting for an item")]
    Timeout,
}

/// `task_done` was called more often than this handle took items (or its counter was
/// scribbled on so fast that it could not be decremented).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task_done called more times than items were taken")]
pub(crate) struct TaskDoneError;

/// Why a join returned before all work was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JoinError {
    /// The deadline passed with work still pending.
    #[error("timed out waiting for every item to be processed")]
    Timeout,
}

// ---------------------------------------------------------------------------------------------
// The ring

/// A view of one ring's control words and `capacity` slots, without payload storage: puts
/// and gets take a closure that copies the payload of the cell they hold the claim of. The
/// byte-message queue uses this directly; [`Ring`] adds typed cells.
pub(crate) struct RawRing<'a> {
    control: &'a RingControl,
    /// Slot `i` is `slots[i * stride]`; the words in between (if `stride > 1`) belong to the
    /// caller's payload cells, which then sit next to their slot word (one cache line per
    /// item, see `Queue`), and the ring never touches them.
    slots: &'a [Slot],
    stride: usize,
    /// The number of slots as a position count, at least 1.
    cap: u64,
}

/// A [`RawRing`] with one typed payload cell per slot.
pub(crate) struct Ring<'a, P: Payload> {
    raw: RawRing<'a>,
    payload: &'a P,
}

impl<'a, P: Payload> core::ops::Deref for Ring<'a, P> {
    type Target = RawRing<'a>;
    fn deref(&self) -> &RawRing<'a> {
        &self.raw
    }
}

/// A put's claimed position (the model's local `pos` after "claim ok").
struct PutClaim {
    t: u64,
    index: usize,
    lap: u32,
    me: u32,
}

/// A get's claimed position.
struct GetClaim {
    h: u64,
    index: usize,
    lap: u32,
    me: u32,
}

/// Why a put did not send its payload ([`PutError`] without the item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PutFail {
    Full,
    Closed,
    Lost,
    Timeout,
}

/// How long a put or get may wait for room or an item.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Block {
    /// Not at all (`try_*`): one bounded attempt.
    No,
    /// Until the deadline (`None`: for ever).
    Until(Option<Instant>),
}

/// Retires a put's claim if the payload writer unwinds (see `finish_put`).
struct RetireOnUnwind<'r, 'a, L: Liveness + ?Sized, W: Wait + ?Sized> {
    ring: &'r RawRing<'a>,
    claim: &'r PutClaim,
    live: &'r L,
    wait: &'r W,
}

impl<L: Liveness + ?Sized, W: Wait + ?Sized> Drop for RetireOnUnwind<'_, '_, L, W> {
    fn drop(&mut self) {
        self.ring.retire(self.claim, self.live, self.wait);
    }
}

enum GetFail {
    Empty,
    /// Empty for now, because a live put is still writing the head item: its publish is a
    /// plain store that wakes nobody who announced after its claim, so poll, don't sleep.
    Busy,
    Closed,
}

impl<'a> RawRing<'a> {
    /// Views `control` and `slots` as one ring of `slots.len()` positions; `None` without
    /// slots.
    pub(crate) fn new(control: &'a RingControl, slots: &'a [Slot]) -> Option<Self> {
        Self::new_strided(control, slots, 1)
    }

    /// Views `control` and every `stride`-th word of `slots` (from the first) as one ring of
    /// `slots.len() / stride` positions; `None` without a whole slot or with `stride` 0.
    pub(crate) fn new_strided(control: &'a RingControl, slots: &'a [Slot], stride: usize) -> Option<Self> {
        let n = slots.len().checked_div(stride)?;
        if n == 0 {
            return None;
        }
        let cap = u64::try_from(n).ok()?;
        Some(RawRing {
            control,
            slots,
            stride,
            cap,
        })
    }

    /// Puts one payload: claims the position at the tail, calls `write(index)` to copy the
    /// payload into cell `index` (`index < capacity`) of the caller's storage, and publishes
    /// it. `write` runs while this process holds the cell's WRITING claim, so nobody else
    /// reads or writes the cell until it returns (unless a peer breaks the protocol: cells in
    /// shared memory must still be copied atomically). `write` runs at most once per
    /// successful claim, and only once in all unless the result is `Lost`.
    ///
    /// # Errors
    ///
    /// [`PutFail::Full`] (`Block::No` only: no room, or garbled words after [`ATTEMPTS`]
    /// steps), `Closed`, `Lost` (a peer found us dead and repaired our slot before we
    /// published), `Timeout`.
    pub(crate) fn put_with<L, W, F>(&self, block: Block, write: &mut F, live: &L, wait: &W) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        let deadline = match block {
            Block::No => return self.put_attempt(write, live, wait, &mut false),
            Block::Until(deadline) => deadline,
        };
        // Spins a few rounds, then sleeps on the not-full eventcount; every round re-asks
        // liveness about the owner of a slot that blocks it, so a dead consumer's slot is
        // repaired within one `Wait` slice.
        let mut busy = false;
        block_on(&self.control.not_full.0, deadline, wait, || {
            busy = false;
            match self.put_attempt(write, live, wait, &mut busy) {
                Err(PutFail::Full) if busy => Attempt::Poll,
                Err(PutFail::Full) => Attempt::Sleep,
                other => Attempt::Done(other),
            }
        })
        .unwrap_or(Err(PutFail::Timeout))
    }

    /// Takes the item at the head: claims it, calls `read(index)` to copy it out of cell
    /// `index` (`index < capacity`) while holding the cell's READING claim, and releases the
    /// slot. If the release loses (a peer took us for dead and repaired the slot), the copy
    /// may be torn: it is dropped and the get starts over, so `read` may run more than once.
    /// `read` must not unwind.
    ///
    /// `in_hand` is this handle's count of items taken and not yet `task_done` (in its
    /// participant record); it is raised before the claim so that a join never misses an item
    /// in flight (RELIABILITY.md, "Task accounting"). A user that never joins (or calls
    /// `task_done`) keeps `join` waiting, by design.
    ///
    /// # Errors
    ///
    /// `Empty` (`Block::No` only; also while a live producer is still writing the head item:
    /// FIFO waits for it), `Closed` once the queue is closed and drained, `Timeout`.
    pub(crate) fn get_with<L, W, R, F>(
        &self,
        block: Block,
        read: &mut F,
        live: &L,
        in_hand: &AtomicU64,
        wait: &W,
    ) -> Result<R, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let deadline = match block {
            Block::No => return self.get_attempt(read, live, in_hand, wait).map_err(get_error),
            Block::Until(deadline) => deadline,
        };
        let done = block_on(&self.control.not_empty.0, deadline, wait, || {
            match self.get_attempt(read, live, in_hand, wait) {
                Err(GetFail::Empty) => Attempt::Sleep,
                Err(GetFail::Busy) => Attempt::Poll,
                other => Attempt::Done(other),
            }
        });
        match done {
            Some(result) => result.map_err(get_error),
            None => Err(GetError::Timeout),
        }
    }

    /// Number of slots.
    pub(crate) fn capacity(&self) -> usize {
        // `cap` came from a `usize` in `new_strided`.
        self.cap as usize
    }

    /// Whether [`Ring::close`] was called (by anyone).
    pub(crate) fn is_closed(&self) -> bool {
        self.control.closed.0.load(Ordering::SeqCst) != 0
    }

    /// Slot index (always `< capacity`) and lap of position `p`.
    fn locate(&self, p: u64) -> (usize, u32) {
        // `p % cap < cap = slots.len()`, so the cast is lossless and the index in bounds.
        ((p % self.cap) as usize, ((p / self.cap) & u64::from(LAP_MASK)) as u32)
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

    /// Help tail: move `tail` from `t` to `t + 1` if nobody did yet.
    fn help_tail(&self, t: u64) {
        // Partner: the Acquire loads of `tail` in `claim_put` and the scans.
        let _ = self
            .control
            .tail
            .0
            .compare_exchange(t, t.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Help head: move `head` from `h` to `h + 1` if nobody did yet.
    fn help_head(&self, h: u64) {
        // Partner: the Acquire loads of `head` in `claim_get`, `settle_head` and the scans.
        let _ = self
            .control
            .head
            .0
            .compare_exchange(h, h.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Moves `index` (tail or head) from `p`, the position we just claimed, to `p + 1` with a
    /// plain store if it still reads `p` (model: "reload tail", "store tail"). Cheaper than
    /// [`RawRing::help_tail`]'s CAS; a process that stalls between the load and the store can
    /// move the index back, which only costs later claims a few help steps, because the
    /// indices are hints: positions below the index are always claimed, and `len`, `join`
    /// and settle head scan to the first unclaimed position instead of trusting `tail`.
    #[inline]
    fn advance(&self, index: &AtomicU64, p: u64) {
        if index.load(Ordering::Relaxed) == p {
            // Release: a process that reads `p + 1` and then our slot (Acquire) sees our claim.
            index.store(p.wrapping_add(1), Ordering::Release);
        }
    }

    /// The first position that can still be unconsumed, given that position `p`'s slot holds
    /// a word of the later lap `slot_lap`: that slot reached lap `slot_lap`, so position
    /// `q = p + (slot_lap - lap(p) - 1) * capacity` (same slot, one lap before) was consumed,
    /// and gets and puts claim in position order, so everything up to `q` was claimed by both.
    /// `q + 1`; that is `p + 1` for the next lap, further when an index lags by laps.
    fn past(&self, p: u64, slot_lap: u32) -> u64 {
        let (_, lap) = self.locate(p);
        let laps = u64::from(slot_lap.wrapping_sub(lap) & LAP_MASK).saturating_sub(1);
        p.wrapping_add(laps.wrapping_mul(self.cap)).wrapping_add(1)
    }

    /// Moves `index` from `p` to `to` (a position past `p`, see [`RawRing::past`]) if nobody
    /// moved it yet: help tail or help head over positions of a later lap.
    fn help_index(&self, index: &AtomicU64, p: u64, to: u64) {
        let _ = index.compare_exchange(p, to, Ordering::AcqRel, Ordering::Relaxed);
    }

    fn alive<L: Liveness + ?Sized>(live: &L, owner: u32) -> bool {
        live.is_alive(Owner(owner))
    }

    /// [`Liveness::is_alive_recent`]: the claims' question, which may be answered from a
    /// recent positive answer (a death is then noticed up to a millisecond later).
    fn alive_recent<L: Liveness + ?Sized>(live: &L, owner: u32) -> bool {
        live.is_alive_recent(Owner(owner))
    }

    // ----- put ---------------------------------------------------------------------------

    /// One bounded put attempt; `write(index)` copies the payload into cell `index` while we
    /// hold its WRITING claim (see [`RawRing::try_put_with`]).
    ///
    /// Sets `busy` when it fails `Full` because a live get holds the slot (READING of the
    /// previous lap): that get's release is a plain store that wakes nobody who announced
    /// after its claim, so a blocked put polls instead of sleeping.
    fn put_attempt<L, W, F>(&self, write: &mut F, live: &L, wait: &W, busy: &mut bool) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        // A put that finds the queue closed before claiming takes no effect: it is "after
        // close". Without this early look, every put after close would claim and retire a
        // position, which `len` counts until consumers pass it, and a put blocked on a full,
        // closed queue would wait for consumers forever. (An extension of the model, whose
        // producers only look after their claim; that look still decides races with close.)
        // Relaxed: a stale "open" only defers the decision to that look.
        if self.control.closed.0.load(Ordering::Relaxed) != 0 {
            return Err(PutFail::Closed);
        }
        let claim = self.claim_put_busy(live, busy)?;
        self.finish_put(&claim, write, live, wait)
    }

    /// [`RawRing::claim_put_busy`] for callers that do not block.
    #[cfg(test)]
    fn claim_put<L: Liveness + ?Sized>(&self, live: &L) -> Result<PutClaim, PutFail> {
        self.claim_put_busy(live, &mut false)
    }

    /// Model `p0`..`p2`: find position `tail`, claim it, or help, repair, or report Full
    /// (setting `busy` when a live get holds the slot, see [`RawRing::put_attempt`]).
    #[inline]
    fn claim_put_busy<L: Liveness + ?Sized>(&self, live: &L, busy: &mut bool) -> Result<PutClaim, PutFail> {
        let me = live.me().0;
        for _ in 0..ATTEMPTS {
            // Partner: `help_tail`'s AcqRel CAS; the slot we then load is at least as new as
            // what justified that move.
            let t = self.control.tail.0.load(Ordering::Acquire);
            let (index, lap) = self.locate(t);
            // Partner: the SeqCst CAS (release, consume or repair) that made it claimable.
            let raw = self.slot(index).load(Ordering::Acquire);
            let seen = SlotWord::decode(raw);
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, EMPTY) => {
                    fault_point("queue.put.before_claim");
                    if self.cas_slot(index, raw, writing(lap, me)) {
                        fault_point("queue.put.after_claim");
                        return Ok(PutClaim { t, index, lap, me });
                    }
                }
                // Position t is taken (or consumed and the slot reused): help tail.
                (Lap::Same, _) => self.help_tail(t),
                (Lap::Later, _) => self.help_index(&self.control.tail.0, t, self.past(t, seen.lap)),
                // Repair R: the reader of position t - N died; its one item is lost.
                (Lap::Previous, READING) if !Self::alive_recent(live, seen.owner) => {
                    self.cas_slot(index, raw, empty(lap));
                }
                // Repair W: the writer of t - N died; consumers will step over it.
                (Lap::Previous, WRITING) if !Self::alive_recent(live, seen.owner) => {
                    self.cas_slot(index, raw, skip(seen.lap));
                }
                // Repair S: a skipped position of the previous lap frees the slot for lap t.
                (Lap::Previous, SKIP) => {
                    self.cas_slot(index, raw, empty(lap));
                }
                // A live get is copying the previous lap's item out: full, but soon free.
                (Lap::Previous, READING) => {
                    *busy = true;
                    return Err(PutFail::Full);
                }
                // FULL, or a live owner's WRITING of the previous lap: full. The get that
                // claims it next sees a sleeper that announced before that claim.
                (Lap::Previous, WRITING | FULL) => return Err(PutFail::Full),
                // EMPTY of the previous lap or anything older: a scribbled word. Retry.
                _ => spin_hint(),
            }
        }
        Err(PutFail::Full)
    }

    /// Model `pcc`..`p5`: check `closed`, help tail, write, publish (or retire).
    fn finish_put<L, W, F>(&self, claim: &PutClaim, write: &mut F, live: &L, wait: &W) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        let PutClaim { t, index, lap, me } = *claim;
        // Partner: `close`'s store and `claim_get`'s "load closed; fence; reload slot". Our
        // claim CAS precedes this load in S: if we read "open", a consumer that reads
        // "closed" afterwards sees our claim when it re-reads the slot.
        sc_fence_under_loom();
        if self.control.closed.0.load(Ordering::SeqCst) != 0 {
            self.retire(claim, live, wait);
            return Err(PutFail::Closed);
        }
        // Wake-ups: a get that announced itself before our claim CAS is seen here; one that
        // announces later sees our WRITING claim when it re-checks, and polls.
        let wake = self.control.not_empty.0.has_sleepers();
        self.advance(&self.control.tail.0, t);
        // `index < capacity` (`locate`), and our claim CAS put WRITING(lap, me) in the slot.
        // Only a repair could take it away, which needs us dead; a live process is never
        // reported dead (`Liveness`). If `write` unwinds, the guard retires the claim as a
        // put that saw close does, so a panicking writer leaves a hole, never a slot that
        // blocks the ring behind a live owner forever.
        let guard = RetireOnUnwind {
            ring: self,
            claim,
            live,
            wait,
        };
        write(index);
        core::mem::forget(guard);
        fault_point("queue.put.after_write");
        // Publish: a Release store, guarded by a load. Only a repair could have replaced our
        // claim, and a repair needs us dead, so the guard never fails with exact liveness; it
        // narrows the damage of a misjudged liveness (a scribbled participant table) to the
        // window between the load and the store. Partner: the Acquire load + claim CAS in
        // `claim_get`.
        if self.slot(index).load(Ordering::Relaxed) == writing(lap, me) {
            self.slot(index).store(full(lap), Ordering::Release);
            fault_point("queue.put.after_publish");
            if cfg!(loom) {
                wake_after_store(&self.control.not_empty.0, wait);
            } else if wake {
                self.control.not_empty.0.wake_armed(wait);
            }
            Ok(())
        } else {
            // We were declared dead and our slot repaired: hand the item back.
            Err(PutFail::Lost)
        }
    }

    /// Retire (model `pundo`..`pundo4`): make our claimed position look consumed, help tail,
    /// settle head, and wake everyone who might wait on that position.
    fn retire<L, W>(&self, claim: &PutClaim, live: &L, wait: &W)
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        // If this fails, our claim was repaired (we looked dead); the position is SKIP and
        // settles the same way.
        self.cas_slot(claim.index, writing(claim.lap, claim.me), empty(next_lap(claim.lap)));
        self.help_tail(claim.t);
        self.settle_head(live);
        // A get waiting on our WRITING slot, a put waiting on it as the previous lap, and a
        // joiner counting it as live all need another look (close's wake may have come first).
        self.control.not_empty.0.wake(wait);
        self.control.not_full.0.wake(wait);
        self.control.tasks.0.wake(wait);
    }

    // ----- get ---------------------------------------------------------------------------

    /// One bounded get attempt; `read(index)` copies the payload out of cell `index` while
    /// we hold its READING claim (see [`RawRing::try_get_with`]).
    fn get_attempt<L, W, R, F>(&self, read: &mut F, live: &L, in_hand: &AtomicU64, wait: &W) -> Result<R, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let mut budget = ATTEMPTS;
        loop {
            // `claim_get` spends the budget and fails `Empty` once it is gone.
            let claim = self.claim_get(live, in_hand, wait, &mut budget)?;
            if let Some(item) = self.finish_get(&claim, read, in_hand, wait) {
                return Ok(item);
            }
        }
    }

    /// Model `c0`..`c2`: find position `head`, claim it, or help, skip, repair, or report
    /// Empty/Closed.
    fn claim_get<L, W>(&self, live: &L, in_hand: &AtomicU64, wait: &W, budget: &mut u32) -> Result<GetClaim, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let me = live.me().0;
        while *budget > 0 {
            *budget -= 1;
            // Partner: `help_head`'s AcqRel CAS.
            let h = self.control.head.0.load(Ordering::Acquire);
            let (index, lap) = self.locate(h);
            // Partner: the publish CAS (release) in `finish_put`.
            let raw = self.slot(index).load(Ordering::Acquire);
            let seen = SlotWord::decode(raw);
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, FULL) => {
                    fault_point("queue.get.before_claim");
                    // Before the claim (and undone if it fails): a joiner that sees the slot
                    // no longer FULL (Acquire) then sees this count.
                    in_hand.fetch_add(1, Ordering::SeqCst);
                    if self.cas_slot(index, raw, reading(lap, me)) {
                        fault_point("queue.get.after_claim");
                        return Ok(GetClaim { h, index, lap, me });
                    }
                    decrement(in_hand);
                }
                // Position h is taken, or consumed and the slot reused since (the consumer
                // that took it may have died before moving head): help head.
                (Lap::Same, READING) => self.help_head(h),
                (Lap::Later, _) => self.help_index(&self.control.head.0, h, self.past(h, seen.lap)),
                // Skip: a dead writer's position holds nothing; make it look consumed.
                (Lap::Same, SKIP) => {
                    if self.cas_slot(index, raw, empty(next_lap(lap))) {
                        self.control.not_full.0.wake(wait);
                    }
                    self.help_head(h);
                }
                // Repair W: the writer of position h died.
                (Lap::Same, WRITING) if !Self::alive_recent(live, seen.owner) => {
                    self.cas_slot(index, raw, skip(lap));
                }
                // A live writer: FIFO waits for it (polling: see `GetFail::Busy`).
                (Lap::Same, WRITING) => return Err(GetFail::Busy),
                // Repair R: the reader of h - N died; with no producer left to wrap around,
                // nobody else would ever free this slot.
                (Lap::Previous, READING) if !Self::alive_recent(live, seen.owner) => {
                    if self.cas_slot(index, raw, empty(lap)) {
                        self.control.not_full.0.wake(wait);
                    }
                }
                // Nothing produced at h yet (a live reader may still hold h - N).
                (Lap::Same, EMPTY) | (Lap::Previous, READING) => {
                    if self.control.closed.0.load(Ordering::SeqCst) == 0 {
                        return Err(GetFail::Empty);
                    }
                    // Closed. Partner: `finish_put`'s "claim; load closed". A put that read
                    // "open" claimed before that load, so after this fence the reload sees
                    // its claim; an unchanged slot and head mean empty for good.
                    fence(Ordering::SeqCst);
                    let again = self.slot(index).load(Ordering::SeqCst);
                    if again == raw && self.control.head.0.load(Ordering::SeqCst) == h {
                        return Err(GetFail::Closed);
                    }
                }
                // A previous-lap EMPTY/FULL/WRITING/SKIP or an older lap: scribbled. Retry.
                _ => spin_hint(),
            }
        }
        Err(GetFail::Empty)
    }

    /// Model `c3`..`c5`: help head, copy out, release. `None` when the release lost (a peer
    /// found us dead and repaired the slot): the copy may be torn, so it is dropped and the
    /// get starts over, as the model's "release lost" does.
    fn finish_get<W, R, F>(&self, claim: &GetClaim, read: &mut F, in_hand: &AtomicU64, wait: &W) -> Option<R>
    where
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let GetClaim { h, index, lap, me } = *claim;
        // Wake-ups: as in `finish_put`, with puts that wait for this slot's next lap.
        let wake = self.control.not_full.0.has_sleepers();
        self.advance(&self.control.head.0, h);
        // `index < capacity` (`locate`); our claim CAS replaced FULL(lap) (published by a put,
        // whose release it acquired) by READING(lap, me), and only a repair that needs us dead
        // could take it away. `read` must not unwind (crate-internal copies only): a claim
        // abandoned by a live process would block the ring.
        let item = read(index);
        fault_point("queue.get.after_read");
        // Release: a guarded Release store, as publish in `finish_put`. Partner: the Acquire
        // load + claim CAS in `claim_put`.
        if self.slot(index).load(Ordering::Relaxed) == reading(lap, me) {
            self.slot(index).store(empty(next_lap(lap)), Ordering::Release);
            fault_point("queue.get.after_release");
            if cfg!(loom) {
                wake_after_store(&self.control.not_full.0, wait);
            } else if wake {
                self.control.not_full.0.wake_armed(wait);
            }
            Some(item)
        } else {
            decrement(in_hand);
            None
        }
    }

    // ----- settle head, len ----------------------------------------------------------------

    /// Settle head: step `head` over positions that hold nothing deliverable (a later lap,
    /// READING of this lap, SKIP, WRITING by a dead owner after repairing it), up to `tail`.
    ///
    /// Stepping over READING(lap h) is the consumers' own "help head" rule; the model's settle
    /// leaves it to them, we also do it here so `len` is right even when the consumer that
    /// took the head died before moving it and no consumer is left.
    fn settle_head<L: Liveness + ?Sized>(&self, live: &L) {
        // Each round either moves head, changes a slot, or ends; `distance <= cap` bounds the
        // honest case, ATTEMPTS bounds contention and scribbles.
        let mut rounds = self.cap.saturating_add(u64::from(ATTEMPTS));
        while rounds > 0 {
            rounds -= 1;
            // No bound by `tail` (a hint that may lag, see `advance`): the rules below stop at
            // the first position that is not claimed yet (EMPTY of its lap, or the previous
            // lap's occupant).
            let h = self.control.head.0.load(Ordering::Acquire);
            let (index, lap) = self.locate(h);
            let raw = self.slot(index).load(Ordering::Acquire);
            let seen = SlotWord::decode(raw);
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, READING) => self.help_head(h),
                (Lap::Later, _) => self.help_index(&self.control.head.0, h, self.past(h, seen.lap)),
                (Lap::Same, SKIP) => {
                    self.cas_slot(index, raw, empty(next_lap(lap)));
                }
                (Lap::Same, WRITING) if !Self::alive(live, seen.owner) => {
                    self.cas_slot(index, raw, skip(lap));
                }
                // An item at the head (FULL, or a live writer), or nothing produced yet.
                _ => return,
            }
        }
    }

    /// Number of items in the ring: settles head, then counts the positions of
    /// `[head, tail)` (at most `cap` of them) that hold a deliverable item: FULL, or WRITING
    /// by a live producer. `tail - head` alone would also count holes behind an item (a
    /// producer that died after its claim, a put retired by close), which only a consumer
    /// passing them clears. Exact once the ring is quiescent; a snapshot otherwise.
    pub(crate) fn len<L: Liveness + ?Sized>(&self, live: &L) -> usize {
        self.settle_head(live);
        let mut n = 0usize;
        self.scan_claimed(|seen| {
            if seen.phase == FULL || (seen.phase == WRITING && Self::alive(live, seen.owner)) {
                n += 1;
            }
            true
        });
        n
    }

    /// Calls `visit` with the slot word of each claimed position from `head` on, stopping at
    /// the first position not claimed at its lap (EMPTY of its lap, or still the previous
    /// lap's), after `capacity` positions, or when `visit` returns `false`. Positions of a
    /// later lap (consumed, slot reused) are passed over without a visit.
    ///
    /// Claimed positions form a prefix: a put claims position `p` only after reading `p` from
    /// `tail` (every position below `tail` is claimed; `advance` and help tail keep it so) or
    /// help tail moved past `p - 1`. So this finds every item without trusting `tail`, which
    /// may lag. The Acquire loads pair with the claim, publish and release stores.
    fn scan_claimed(&self, mut visit: impl FnMut(SlotWord) -> bool) {
        let mut p = self.control.head.0.load(Ordering::Acquire);
        // From a head that lags (see `advance`) the jumps over later laps reach the live
        // window within about 2 * capacity steps; then at most capacity positions follow.
        for _ in 0..self.cap.saturating_mul(3) {
            let (index, lap) = self.locate(p);
            let seen = SlotWord::decode(self.slot(index).load(Ordering::Acquire));
            match relate(seen.lap, lap) {
                Lap::Same if seen.phase == EMPTY => return,
                Lap::Same => {
                    if !visit(seen) {
                        return;
                    }
                    p = p.wrapping_add(1);
                }
                Lap::Later => p = self.past(p, seen.lap),
                Lap::Previous | Lap::Stale => return,
            }
        }
    }

    /// `Done` when an item is ready at the head (after settling it), `Poll` while the head
    /// item's live producer is still writing it, `Sleep` otherwise.
    fn head_item<L: Liveness + ?Sized>(&self, live: &L) -> Attempt<()> {
        self.settle_head(live);
        let h = self.control.head.0.load(Ordering::Acquire);
        let (index, lap) = self.locate(h);
        let seen = SlotWord::decode(self.slot(index).load(Ordering::Acquire));
        match (relate(seen.lap, lap), seen.phase) {
            (Lap::Same, FULL) => Attempt::Done(()),
            (Lap::Same, WRITING) => Attempt::Poll,
            _ => Attempt::Sleep,
        }
    }

    /// Waits until an item is ready at the head (after settling it) or the ring is closed, until `deadline`; `false` if
    /// the deadline passed first.
    pub(crate) fn wait_readable<L, W>(&self, deadline: Option<Instant>, live: &L, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        block_on(&self.control.not_empty.0, deadline, wait, || {
            match self.head_item(live) {
                _ if self.is_closed() => Attempt::Done(()),
                found => found,
            }
        })
        .is_some()
    }

    /// `len(live) == 0`.
    pub(crate) fn is_empty<L: Liveness + ?Sized>(&self, live: &L) -> bool {
        self.len(live) == 0
    }

    /// `len(live) == capacity`.
    pub(crate) fn is_full<L: Liveness + ?Sized>(&self, live: &L) -> bool {
        self.len(live) == self.capacity()
    }

    // ----- close, task accounting ----------------------------------------------------------

    /// Closes the ring: later puts fail `Closed(item)`, gets drain what was put before and
    /// then fail `Closed`. Wakes every sleeper (producers, consumers, joiners).
    pub(crate) fn close<W: Wait + ?Sized>(&self, wait: &W) {
        // Partner: the SeqCst `closed` loads in `finish_put`, `claim_get`, `put_attempt`.
        self.control.closed.0.store(1, Ordering::SeqCst);
        self.control.not_empty.0.wake_always(wait);
        self.control.not_full.0.wake_always(wait);
        self.control.tasks.0.wake_always(wait);
    }

    /// Marks one item taken through `in_hand` as processed, and wakes joiners.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] when `in_hand` is 0: more `task_done` calls than items this handle
    /// took.
    pub(crate) fn task_done<W: Wait + ?Sized>(&self, in_hand: &AtomicU64, wait: &W) -> Result<(), TaskDoneError> {
        if !decrement(in_hand) {
            return Err(TaskDoneError);
        }
        // Dekker with `join`'s announce + rescan: our SeqCst decrement precedes the
        // `sleepers` load in S.
        self.control.tasks.0.wake(wait);
        Ok(())
    }

    /// Whether all work is done: no slot in `[head, tail)` holds a live item (FULL, or
    /// WRITING/READING by a live owner), then no live participant has an item in hand. Work
    /// held by dead participants is ignored: it died with them.
    pub(crate) fn join_ready<L, Q>(&self, live: &L, participants: &Q) -> bool
    where
        L: Liveness + ?Sized,
        Q: Participants + ?Sized,
    {
        // Acquire loads (in `scan_claimed`): if a get's claim or release is visible here, so is
        // the `in_hand` increment it made before claiming (partner: `claim_get`).
        let mut clear = true;
        self.scan_claimed(|seen| {
            clear = match seen.phase {
                FULL => false,
                WRITING | READING => !Self::alive(live, seen.owner),
                _ => true,
            };
            clear
        });
        if !clear {
            return false;
        }
        let mut ready = true;
        participants.for_each(&mut |owner, in_hand| {
            if in_hand != 0 && live.is_alive(owner) {
                ready = false;
            }
            ready
        });
        ready
    }

    /// Waits until [`Ring::join_ready`], until `deadline` (`None`: no deadline). Sleeps on the
    /// tasks eventcount, which `task_done`, retiring puts and `close` bump; each [`Wait`]
    /// slice ends in a rescan, which covers work that died with its participant.
    ///
    /// # Errors
    ///
    /// [`JoinError::Timeout`].
    pub(crate) fn join<L, Q, W>(
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
        block_on(&self.control.tasks.0, deadline, wait, || {
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
    /// Views `control`, `slots` and `payload` as one ring of `slots.len()` items. `None` when
    /// there are no slots or fewer payload cells than slots.
    #[cfg(test)]
    pub(crate) fn new(control: &'a RingControl, slots: &'a [Slot], payload: &'a P) -> Option<Self> {
        Self::new_strided(control, slots, 1, payload)
    }

    /// [`RawRing::new_strided`] with typed cells (which may lie between the slot words).
    pub(crate) fn new_strided(
        control: &'a RingControl,
        slots: &'a [Slot],
        stride: usize,
        payload: &'a P,
    ) -> Option<Self> {
        let raw = RawRing::new_strided(control, slots, stride)?;
        if payload.len() < raw.capacity() {
            return None;
        }
        Some(Ring { raw, payload })
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    ///
    /// `Full(item)`: no room (or garbled words, after [`ATTEMPTS`] steps); `Closed(item)`;
    /// `Lost(item)`: a peer found us dead and repaired our slot before we published.
    #[cfg(test)]
    pub(crate) fn try_put<L, W>(&self, item: P::Item, live: &L, wait: &W) -> Result<(), PutError<P::Item>>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.put_item(Block::No, item, live, wait)
    }

    /// Puts `item`, waiting for room until `deadline` (`None`: no deadline).
    ///
    /// # Errors
    ///
    /// As [`Ring::try_put`] without `Full`, plus `Timeout(item)`.
    #[cfg(test)]
    pub(crate) fn put<L, W>(
        &self,
        item: P::Item,
        deadline: Option<Instant>,
        live: &L,
        wait: &W,
    ) -> Result<(), PutError<P::Item>>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.put_item(Block::Until(deadline), item, live, wait)
    }

    #[cfg(test)]
    fn put_item<L, W>(&self, block: Block, item: P::Item, live: &L, wait: &W) -> Result<(), PutError<P::Item>>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.put_ref(block, &item, live, wait)
            .map_err(|fail| put_error(fail, item))
    }

    /// Puts a copy of `*item`; the caller keeps the item (and turns a failure into its
    /// `PutError` with [`put_error`]), so a large item is copied once, into its cell.
    ///
    /// # Errors
    ///
    /// As [`RawRing::put_with`].
    pub(crate) fn put_ref<L, W>(&self, block: Block, item: &P::Item, live: &L, wait: &W) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let payload = self.payload;
        let len = payload.len();
        let mut write = |index: usize| {
            debug_assert!(index < len);
            // SAFETY: `put_with` calls us with `index < capacity <= payload.len()` (`new`)
            // while we hold the WRITING claim of the slot that owns cell `index`.
            unsafe { payload.write(index, item) }
        };
        self.raw.put_with(block, &mut write, live, wait)
    }

    /// Takes the item at the head if one is deliverable now (see [`RawRing::get_with`]).
    ///
    /// # Errors
    ///
    /// `Empty`, `Closed` once the queue is closed and drained.
    #[cfg(test)]
    pub(crate) fn try_get<L, W>(&self, live: &L, in_hand: &AtomicU64, wait: &W) -> Result<P::Item, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.get_item(Block::No, live, in_hand, wait)
    }

    /// Takes the item at the head, waiting until `deadline` (`None`: no deadline).
    ///
    /// # Errors
    ///
    /// `Closed` once the queue is closed and drained; `Timeout`.
    #[cfg(test)]
    pub(crate) fn get<L, W>(
        &self,
        deadline: Option<Instant>,
        live: &L,
        in_hand: &AtomicU64,
        wait: &W,
    ) -> Result<P::Item, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.get_item(Block::Until(deadline), live, in_hand, wait)
    }

    #[cfg(test)]
    fn get_item<L, W>(&self, block: Block, live: &L, in_hand: &AtomicU64, wait: &W) -> Result<P::Item, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut out = core::mem::MaybeUninit::uninit();
        self.get_into(block, &mut out, live, in_hand, wait)?;
        // SAFETY: `get_into` returned `Ok`, so it wrote the item into `out`.
        Ok(unsafe { out.assume_init() })
    }

    /// Takes the item at the head into `*out`, which holds it when the result is `Ok` (after
    /// an error it may hold a copy that was dropped, see [`RawRing::get_with`]), so that a
    /// large item is copied once, out of its cell, and not moved through every caller.
    ///
    /// # Errors
    ///
    /// As [`RawRing::get_with`].
    pub(crate) fn get_into<L, W>(
        &self,
        block: Block,
        out: &mut core::mem::MaybeUninit<P::Item>,
        live: &L,
        in_hand: &AtomicU64,
        wait: &W,
    ) -> Result<(), GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let payload = self.payload;
        let mut read = |index: usize| {
            // SAFETY: `get_with` calls us with `index < capacity <= payload.len()` (`new`)
            // while we hold the READING claim of the slot that owns cell `index`, which a put
            // published.
            unsafe { payload.read_into(index, out) }
        };
        self.raw.get_with(block, &mut read, live, in_hand, wait)
    }

    /// `finish_put` with this ring's typed cells (unit tests drive single steps).
    #[cfg(test)]
    fn finish_put_item<L, W>(&self, claim: &PutClaim, item: &P::Item, live: &L, wait: &W) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let payload = self.payload;
        // SAFETY: as in `put_item`.
        self.raw
            .finish_put(claim, &mut |index| unsafe { payload.write(index, item) }, live, wait)
    }

    /// `finish_get` with this ring's typed cells.
    #[cfg(test)]
    fn finish_get_item<W: Wait + ?Sized>(&self, claim: &GetClaim, in_hand: &AtomicU64, wait: &W) -> Option<P::Item> {
        let payload = self.payload;
        // SAFETY: as in `get_item`.
        self.raw
            .finish_get(claim, &mut |index| unsafe { payload.read(index) }, in_hand, wait)
    }
}

/// Single steps for the conformance tests of the public queue: a participant that stops for
/// good right after its claim, as one SIGKILLed at the `queue.put.after_claim` or
/// `queue.get.after_claim` fault point does.
#[cfg(test)]
impl RawRing<'_> {
    /// Claims the tail position as `live` and returns without writing or publishing it.
    /// `false` when there was no room to claim.
    pub(crate) fn claim_put_and_stop<L: Liveness + ?Sized>(&self, live: &L) -> bool {
        self.claim_put(live).is_ok()
    }

    /// Claims the head item as `live` (counting it in `in_hand`) and returns without moving
    /// head, reading or releasing it. `false` when there was no item to claim.
    pub(crate) fn claim_get_and_stop<L, W>(&self, live: &L, in_hand: &AtomicU64, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut budget = ATTEMPTS;
        self.claim_get(live, in_hand, wait, &mut budget).is_ok()
    }
}

/// Under loom only: the conservative wake-up after a publish or release store (a SeqCst fence,
/// then [`EventCount::wake`]), so that blocked calls can always sleep instead of polling.
///
/// Loom cannot explore polling loops: it lets every re-read of a word return the stale value
/// again, so a poller's schedules never end (loom stops with "exceeded maximum number of
/// branches"). The production rule, sleepers read right after the claim CAS and pollers for
/// a peer mid-copy, rests on the `S` argument in "Wake-ups"; loom checks everything else
/// (stores, index moves, scans) with this stand-in.
fn wake_after_store<W: Wait + ?Sized>(ec: &EventCount, wait: &W) {
    fence(Ordering::SeqCst);
    ec.wake(wait);
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
fn block_on<R, W: Wait + ?Sized>(
    ec: &EventCount,
    deadline: Option<Instant>,
    wait: &W,
    mut attempt: impl FnMut() -> Attempt<R>,
) -> Option<R> {
    let mut spins = SPINS;
    let mut polls = 0u32;
    loop {
        let blocked = match attempt() {
            Attempt::Done(r) => return Some(r),
            b => b,
        };
        if expired(deadline) {
            return None;
        }
        if spins > 0 {
            spins -= 1;
            spin_hint();
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
        let r = attempt();
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

/// Decrements a counter that must not go below 0; `false` if it was 0 (or kept changing
/// under us for [`ATTEMPTS`] tries, which only a scribbling peer can cause).
fn decrement(counter: &AtomicU64) -> bool {
    let mut v = counter.load(Ordering::SeqCst);
    for _ in 0..ATTEMPTS {
        if v == 0 {
            return false;
        }
        match counter.compare_exchange(v, v - 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(now) => v = now,
        }
    }
    false
}

pub(crate) fn put_error<T>(fail: PutFail, item: T) -> PutError<T> {
    match fail {
        PutFail::Full => PutError::Full(item),
        PutFail::Closed => PutError::Closed(item),
        PutFail::Lost => PutError::Lost(item),
        PutFail::Timeout => PutError::Timeout(item),
    }
}

fn get_error(fail: GetFail) -> GetError {
    match fail {
        GetFail::Empty | GetFail::Busy => GetError::Empty,
        GetFail::Closed => GetError::Closed,
    }
}

#[cfg(test)]
pub(crate) mod heap {
    //! Ring memory on the heap, for unit tests, Miri and loom (here and in higher modules).
    use super::{Payload, Ring, RingControl, Slot};

    #[cfg(not(loom))]
    use core::cell::UnsafeCell;
    #[cfg(loom)]
    use loom::cell::UnsafeCell;

    /// Payload cells in `UnsafeCell`s, so that Miri and loom report any payload access the
    /// slot protocol fails to order.
    pub(crate) struct HeapPayload<T> {
        cells: Box<[UnsafeCell<T>]>,
    }

    impl<T: Copy + Default> HeapPayload<T> {
        pub(crate) fn new(len: usize) -> HeapPayload<T> {
            HeapPayload {
                cells: (0..len).map(|_| UnsafeCell::new(T::default())).collect(),
            }
        }
    }

    // SAFETY: cells are only reached through `Payload::read`/`write`, whose contract gives one
    // claimant (WRITING or READING) at a time per cell; the slot CASes order consecutive ones.
    unsafe impl<T: Copy + Send> Sync for HeapPayload<T> {}

    // SAFETY: `index` is bounds-checked (a panic, never an out-of-bounds access), and under the
    // callers' contract no two accesses to one cell overlap.
    unsafe impl<T: Copy> Payload for HeapPayload<T> {
        type Item = T;

        fn len(&self) -> usize {
            self.cells.len()
        }

        unsafe fn write(&self, index: usize, item: &T) {
            let cell = &self.cells[index];
            #[cfg(not(loom))]
            // SAFETY: the caller holds the WRITING claim of this cell: no other access overlaps.
            unsafe {
                *cell.get() = *item
            };
            #[cfg(loom)]
            // SAFETY: as above; loom checks the claim really ordered the accesses.
            cell.with_mut(|p| unsafe { *p = *item });
        }

        unsafe fn read(&self, index: usize) -> T {
            let cell = &self.cells[index];
            #[cfg(not(loom))]
            // SAFETY: the caller holds the READING claim of this published cell.
            let v = unsafe { *cell.get() };
            #[cfg(loom)]
            // SAFETY: as above; loom checks the claim really ordered the accesses.
            let v = cell.with(|p| unsafe { *p });
            v
        }
    }

    /// Everything one ring needs, on the heap.
    pub(crate) struct HeapRing<T> {
        pub(crate) control: RingControl,
        pub(crate) slots: Box<[Slot]>,
        pub(crate) payload: HeapPayload<T>,
    }

    impl<T: Copy + Default> HeapRing<T> {
        /// An empty, open ring of `capacity` (at least 1) items.
        pub(crate) fn new(capacity: usize) -> HeapRing<T> {
            HeapRing {
                control: RingControl::new(),
                slots: (0..capacity).map(|_| Slot::new()).collect(),
                payload: HeapPayload::new(capacity),
            }
        }

        pub(crate) fn ring(&self) -> Ring<'_, HeapPayload<T>> {
            Ring::new(&self.control, &self.slots, &self.payload).expect("a heap ring has at least one slot")
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::heap::HeapRing;
    use super::*;
    use crate::raw::doubles::{Oracle, Yield};
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    const SC: Ordering = Ordering::SeqCst;

    fn who(index: u32, dead: &AtomicU64) -> Oracle<'_> {
        Oracle {
            me: Owner::new(index, 1),
            dead,
        }
    }

    fn kill(dead: &AtomicU64, index: u32) {
        dead.fetch_or(1 << index, SC);
    }

    /// Puts 1 and 2; consumer `c` (index 2) claims 1, moves head, and dies before its
    /// release. Returns c's claim.
    fn consumer_dies_after_moving_head(
        ring: &Ring<'_, super::heap::HeapPayload<u64>>,
        dead: &AtomicU64,
        p: &Oracle<'_>,
        c: &Oracle<'_>,
        hand_c: &AtomicU64,
    ) -> GetClaim {
        ring.try_put(1, p, &Yield).unwrap();
        ring.try_put(2, p, &Yield).unwrap();
        let claim = ring.claim_get(c, hand_c, &Yield, &mut 10).ok().unwrap();
        ring.help_head(claim.h);
        kill(dead, 2);
        claim
    }

    fn word(ring: &Ring<'_, impl Payload>, p: u64) -> SlotWord {
        SlotWord::decode(ring.slot(ring.locate(p).0).load(SC))
    }

    /// Puts the ring's empty state at position `p0` (head = tail = p0), as if it had run there.
    fn start_at(mem: &HeapRing<u64>, p0: u64) {
        let ring = mem.ring();
        for i in 0..ring.cap {
            let (index, lap) = ring.locate(p0.wrapping_add(i));
            ring.slot(index).store(empty(lap), SC);
        }
        mem.control.head.0.store(p0, SC);
        mem.control.tail.0.store(p0, SC);
    }

    fn no_participants(_: &mut dyn FnMut(Owner, u64) -> bool) {}

    /// Runs `laps` laps of fill-then-drain plus a half-full phase, checking FIFO, Full, Empty.
    fn exercise(mem: &HeapRing<u64>, laps: u64) {
        let dead = AtomicU64::new(0);
        let (me, in_hand) = (who(1, &dead), AtomicU64::new(0));
        let ring = mem.ring();
        let cap = ring.capacity() as u64;
        let mut next = 0;
        for _ in 0..laps {
            for i in 0..cap {
                assert_eq!(ring.len(&me), i as usize);
                assert_eq!(ring.try_put(next + i, &me, &Yield), Ok(()));
            }
            assert!(ring.is_full(&me));
            assert_eq!(ring.try_put(99, &me, &Yield), Err(PutError::Full(99)));
            for i in 0..cap {
                assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(next + i));
            }
            assert!(ring.is_empty(&me));
            assert_eq!(ring.try_get(&me, &in_hand, &Yield), Err(GetError::Empty));
            next += cap;
            // Offset head within the lap: one in, one out.
            assert_eq!(ring.try_put(next, &me, &Yield), Ok(()));
            assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(next));
            next += 1;
        }
        assert_eq!(in_hand.load(SC), (laps * (cap + 1)));
    }

    #[test]
    fn slot_words_round_trip_and_laps_compare_modulo_2_29() {
        let w = SlotWord::decode(writing(LAP_MASK, u32::MAX));
        assert_eq!(
            w,
            SlotWord {
                phase: WRITING,
                lap: LAP_MASK,
                owner: u32::MAX
            }
        );
        assert_eq!(
            SlotWord::decode(0),
            SlotWord {
                phase: EMPTY,
                lap: 0,
                owner: 0
            }
        );
        assert_eq!(SlotWord::decode(7).phase, SKIP, "unknown phases read as SKIP");
        assert_eq!(next_lap(LAP_MASK), 0);
        assert_eq!(relate(5, 5), Lap::Same);
        assert_eq!(relate(4, 5), Lap::Previous);
        assert_eq!(relate(LAP_MASK, 0), Lap::Previous);
        assert_eq!(relate(0, LAP_MASK), Lap::Later);
        assert_eq!(relate(7, 5), Lap::Later);
        assert_eq!(relate(3, 5), Lap::Stale);
    }

    #[test]
    fn zeroed_control_and_slots_are_the_initial_state() {
        let mem = HeapRing::<u64>::new(3);
        let ring = mem.ring();
        assert_eq!(mem.control.tail.0.load(SC), 0);
        assert!(!ring.is_closed());
        assert!(ring.is_empty(&who(1, &AtomicU64::new(0))));
        assert!(Ring::new(&mem.control, &mem.slots[..0], &mem.payload).is_none());
        let short = super::heap::HeapPayload::<u64>::new(2);
        assert!(Ring::new(&mem.control, &mem.slots, &short).is_none());
    }

    #[test]
    fn fifo_full_and_empty_for_capacities_1_2_7() {
        for cap in [1, 2, 7] {
            exercise(&HeapRing::new(cap), 4);
        }
    }

    #[test]
    fn many_laps() {
        exercise(&HeapRing::new(3), if cfg!(miri) { 20 } else { 2_000 });
    }

    /// A strided ring (slot words interleaved with the caller's cells, as `Queue` lays out
    /// small items) behaves like a packed one and never touches the words in between.
    #[test]
    fn strided_slots_skip_the_words_between() {
        for (cap, stride) in [(1usize, 2usize), (3, 2), (7, 4), (4, 8)] {
            let control = RingControl::new();
            let slots: Box<[Slot]> = (0..cap * stride).map(|_| Slot::new()).collect();
            for (i, s) in slots.iter().enumerate() {
                if i % stride != 0 {
                    s.word.store(0xdead_beef_0000_0000 | i as u64, SC);
                }
            }
            let payload = super::heap::HeapPayload::<u64>::new(cap);
            assert!(Ring::new_strided(&control, &slots[..stride - 1], stride, &payload).is_none());
            assert!(Ring::new_strided(&control, &slots, 0, &payload).is_none());
            let ring = Ring::new_strided(&control, &slots, stride, &payload).unwrap();
            assert_eq!(ring.capacity(), cap);
            let dead = AtomicU64::new(0);
            let (me, in_hand) = (who(1, &dead), AtomicU64::new(0));
            let mut next = 0;
            for _ in 0..5 {
                for i in 0..cap as u64 {
                    assert_eq!(ring.try_put(next + i, &me, &Yield), Ok(()));
                }
                assert_eq!(ring.try_put(0, &me, &Yield), Err(PutError::Full(0)));
                assert_eq!(ring.len(&me), cap);
                for i in 0..cap as u64 {
                    assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(next + i));
                }
                assert_eq!(ring.try_get(&me, &in_hand, &Yield), Err(GetError::Empty));
                next += cap as u64;
            }
            for (i, s) in slots.iter().enumerate() {
                if i % stride != 0 {
                    assert_eq!(s.word.load(SC), 0xdead_beef_0000_0000 | i as u64);
                }
            }
        }
    }

    /// A process that stalls between `advance`'s load and store moves `head` or `tail` back,
    /// by any number of positions. Everything must still find the items: len and join scan
    /// past the lagging index, and help steps jump over later laps.
    #[test]
    fn lagging_head_and_tail_are_harmless() {
        for cap in [1u64, 2, 7] {
            for lag in [1, cap, 2 * cap + 1, 5 * cap + 3] {
                let mem = HeapRing::new(cap as usize);
                let dead = AtomicU64::new(0);
                let (me, in_hand) = (who(1, &dead), AtomicU64::new(0));
                let ring = mem.ring();
                // Cycle the ring for a while, then leave two items (one if cap is 1) in it.
                let mut next = 0;
                for _ in 0..(6 * cap + 5) {
                    ring.try_put(next, &me, &Yield).unwrap();
                    assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(next));
                    next += 1;
                }
                let items = cap.min(2);
                for i in 0..items {
                    ring.try_put(next + i, &me, &Yield).unwrap();
                }
                let (h, t) = (mem.control.head.0.load(SC), mem.control.tail.0.load(SC));
                mem.control.head.0.store(h - lag, SC);
                mem.control.tail.0.store(t - lag.min(t - h + lag), SC);
                let joined = |_: &mut dyn FnMut(Owner, u64) -> bool| {};
                assert_eq!(ring.len(&me), items as usize, "cap {cap} lag {lag}");
                assert!(!ring.join_ready(&me, &joined), "cap {cap} lag {lag}");
                mem.control.head.0.store(h - lag, SC);
                for i in 0..items {
                    assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(next + i), "cap {cap} lag {lag}");
                }
                assert_eq!(ring.try_get(&me, &in_hand, &Yield), Err(GetError::Empty));
                assert!(ring.join_ready(&me, &|_: &mut dyn FnMut(Owner, u64) -> bool| {}));
                next += items;
                mem.control.tail.0.store(t - lag, SC);
                for i in 0..cap {
                    assert_eq!(ring.try_put(next + i, &me, &Yield), Ok(()), "cap {cap} lag {lag}");
                }
                assert_eq!(ring.try_put(0, &me, &Yield), Err(PutError::Full(0)));
                for i in 0..cap {
                    assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(next + i));
                }
            }
        }
    }

    #[test]
    fn laps_wrap_around_modulo_2_29() {
        for cap in [1u64, 2, 7] {
            let mem = HeapRing::new(cap as usize);
            start_at(&mem, cap * u64::from(LAP_MASK - 1));
            exercise(&mem, 5);
        }
    }

    #[test]
    fn positions_wrap_around_u64_for_power_of_two_capacities() {
        for cap in [1u64, 2, 8] {
            let mem = HeapRing::new(cap as usize);
            start_at(&mem, 0u64.wrapping_sub(2 * cap + 1));
            exercise(&mem, 5);
        }
    }

    #[test]
    fn close_fails_puts_and_lets_gets_drain() {
        let mem = HeapRing::new(3);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (me, in_hand) = (who(1, &dead), AtomicU64::new(0));
        ring.try_put(1, &me, &Yield).unwrap();
        ring.try_put(2, &me, &Yield).unwrap();
        ring.close(&Yield);
        assert!(ring.is_closed());
        assert_eq!(ring.try_put(3, &me, &Yield), Err(PutError::Closed(3)));
        assert_eq!(ring.put(4, None, &me, &Yield), Err(PutError::Closed(4)));
        assert_eq!(ring.len(&me), 2);
        assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(1));
        assert_eq!(ring.get(None, &me, &in_hand, &Yield), Ok(2));
        assert_eq!(ring.try_get(&me, &in_hand, &Yield), Err(GetError::Closed));
        assert_eq!(ring.get(None, &me, &in_hand, &Yield), Err(GetError::Closed));
        assert_eq!(ring.len(&me), 0);
    }

    #[test]
    fn a_put_blocked_on_a_full_closed_queue_fails_closed() {
        let mem = HeapRing::new(2);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let me = who(1, &dead);
        ring.try_put(1, &me, &Yield).unwrap();
        ring.try_put(2, &me, &Yield).unwrap();
        ring.close(&Yield);
        assert_eq!(ring.put(3, None, &me, &Yield), Err(PutError::Closed(3)));
        assert_eq!(ring.try_put(3, &me, &Yield), Err(PutError::Closed(3)));
    }

    #[test]
    fn a_put_that_sees_close_after_its_claim_retires_as_consumed() {
        let mem = HeapRing::new(2);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (me, in_hand) = (who(1, &dead), AtomicU64::new(0));
        ring.try_put(1, &me, &Yield).unwrap();
        let claim = ring.claim_put(&me).ok().unwrap();
        ring.close(&Yield);
        assert!(matches!(
            ring.finish_put_item(&claim, &2, &me, &Yield),
            Err(PutFail::Closed)
        ));
        assert_eq!(
            word(&ring, 1),
            SlotWord {
                phase: EMPTY,
                lap: 1,
                owner: 0
            }
        );
        assert_eq!(mem.control.tail.0.load(SC), 2);
        // `len` counts deliverable items only: the position retired behind an item is a
        // hole until consumers pass it, and is not counted.
        assert_eq!(ring.len(&me), 1);
        assert_eq!(ring.try_get(&me, &in_hand, &Yield), Ok(1));
        assert_eq!(ring.try_get(&me, &in_hand, &Yield), Err(GetError::Closed));
        assert_eq!(ring.len(&me), 0);
        assert_eq!(mem.control.head.0.load(SC), 2);

        // Alone in the ring, the retiring put settles head itself.
        let mem = HeapRing::<u64>::new(1);
        let ring = mem.ring();
        let claim = ring.claim_put(&me).ok().unwrap();
        ring.close(&Yield);
        assert!(matches!(
            ring.finish_put_item(&claim, &2, &me, &Yield),
            Err(PutFail::Closed)
        ));
        assert_eq!(mem.control.head.0.load(SC), 1);
        assert_eq!(ring.len(&me), 0);
        assert_eq!(ring.try_get(&me, &in_hand, &Yield), Err(GetError::Closed));
    }

    #[test]
    fn task_done_and_join_account_for_every_item() {
        let mem = HeapRing::new(4);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (producer, consumer, other) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let hands = [AtomicU64::new(0), AtomicU64::new(0)];
        let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
            for (owner, hand) in [(consumer.me, &hands[0]), (other.me, &hands[1])] {
                if !visit(owner, hand.load(SC)) {
                    break;
                }
            }
        };
        assert!(ring.join_ready(&producer, &participants));
        assert_eq!(ring.task_done(&hands[0], &Yield), Err(TaskDoneError));
        ring.try_put(1, &producer, &Yield).unwrap();
        ring.try_put(2, &producer, &Yield).unwrap();
        assert!(!ring.join_ready(&producer, &participants), "items in the ring");
        assert_eq!(ring.try_get(&consumer, &hands[0], &Yield), Ok(1));
        assert_eq!(ring.try_get(&other, &hands[1], &Yield), Ok(2));
        assert!(!ring.join_ready(&producer, &participants), "items in hand");
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(
            ring.join(soon, &producer, &participants, &Yield),
            Err(JoinError::Timeout)
        );
        ring.task_done(&hands[0], &Yield).unwrap();
        assert!(!ring.join_ready(&producer, &participants));
        // The other consumer dies with its item in hand: that work died with it.
        kill(&dead, 3);
        assert!(ring.join_ready(&producer, &participants));
        assert_eq!(ring.join(None, &producer, &participants, &Yield), Ok(()));
        assert_eq!(
            ring.task_done(&hands[0], &Yield),
            Err(TaskDoneError),
            "more task_done than gets"
        );
        // A put still being written by a live producer is work too, as soon as it claimed
        // (the scan goes to the first unclaimed position, not to `tail`); a dead one's is
        // not. Participant 3's record is reused by a live process: its count starts at 0, so
        // only the claimed slot can keep the join waiting.
        hands[1].store(0, SC);
        dead.store(0, SC);
        let _claim = ring.claim_put(&other).ok().unwrap();
        assert!(!ring.join_ready(&producer, &participants), "a live writer's slot");
        kill(&dead, 3);
        assert!(ring.join_ready(&producer, &participants), "a dead writer's slot");
    }

    #[test]
    fn a_dead_producers_slot_is_skipped_and_capacity_kept() {
        for cap in [1, 2, 3] {
            let mem = HeapRing::new(cap);
            let ring = mem.ring();
            let dead = AtomicU64::new(0);
            let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
            let in_hand = AtomicU64::new(0);
            let _claim = ring.claim_put(&p).ok().unwrap(); // p is killed right after its claim
            if cap > 1 {
                ring.try_put(10, &q, &Yield).unwrap();
                assert_eq!(
                    ring.try_get(&c, &in_hand, &Yield),
                    Err(GetError::Empty),
                    "FIFO waits for p"
                );
            }
            kill(&dead, 1);
            if cap > 1 {
                assert_eq!(ring.try_get(&c, &in_hand, &Yield), Ok(10), "p's position is skipped");
            }
            assert_eq!(ring.try_get(&c, &in_hand, &Yield), Err(GetError::Empty));
            assert_eq!(ring.len(&c), 0);
            for i in 0..cap as u64 {
                assert_eq!(ring.try_put(i, &q, &Yield), Ok(()), "capacity {cap} must not shrink");
            }
            assert_eq!(ring.try_put(99, &q, &Yield), Err(PutError::Full(99)));
            for i in 0..cap as u64 {
                assert_eq!(ring.try_get(&c, &in_hand, &Yield), Ok(i));
            }
        }
    }

    #[test]
    fn a_producer_repairs_a_dead_writer_of_the_previous_lap() {
        let mem = HeapRing::new(1);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let in_hand = AtomicU64::new(0);
        let _claim = ring.claim_put(&p).ok().unwrap();
        assert_eq!(
            ring.try_put(1, &q, &Yield),
            Err(PutError::Full(1)),
            "a live writer holds the slot"
        );
        kill(&dead, 1);
        assert_eq!(ring.try_put(1, &q, &Yield), Ok(()));
        assert_eq!(ring.try_get(&c, &in_hand, &Yield), Ok(1));
        assert_eq!(ring.len(&c), 0);
    }

    #[test]
    fn a_dead_consumers_slot_is_repaired_by_producers() {
        let mem = HeapRing::new(2);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (p, c, d) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let (hand_c, hand_d) = (AtomicU64::new(0), AtomicU64::new(0));
        consumer_dies_after_moving_head(&ring, &dead, &p, &c, &hand_c);
        assert_eq!(ring.try_get(&d, &hand_d, &Yield), Ok(2));
        assert_eq!(ring.try_put(3, &p, &Yield), Ok(()), "repair R frees c's slot");
        assert_eq!(ring.try_put(4, &p, &Yield), Ok(()));
        assert_eq!(ring.try_put(5, &p, &Yield), Err(PutError::Full(5)));
        assert_eq!(ring.try_get(&d, &hand_d, &Yield), Ok(3));
        assert_eq!(ring.try_get(&d, &hand_d, &Yield), Ok(4));
    }

    #[test]
    fn a_dead_consumers_slot_is_repaired_by_consumers() {
        for cap in [1, 2] {
            let mem = HeapRing::new(cap);
            let ring = mem.ring();
            let dead = AtomicU64::new(0);
            let (p, c, d) = (who(1, &dead), who(2, &dead), who(3, &dead));
            let (hand_c, hand_d) = (AtomicU64::new(0), AtomicU64::new(0));
            ring.try_put(1, &p, &Yield).unwrap();
            // c dies right after its claim, before even moving head.
            let _claim = ring.claim_get(&c, &hand_c, &Yield, &mut 10).ok().unwrap();
            kill(&dead, 2);
            assert_eq!(ring.len(&d), 0, "len steps over the taken position");
            assert_eq!(ring.try_get(&d, &hand_d, &Yield), Err(GetError::Empty));
            if cap == 1 {
                assert_eq!(word(&ring, 0).lap, 1, "d repaired READING(lap h-1, dead)");
            }
            for i in 0..cap as u64 {
                assert_eq!(ring.try_put(i, &p, &Yield), Ok(()));
            }
            for i in 0..cap as u64 {
                assert_eq!(ring.try_get(&d, &hand_d, &Yield), Ok(i));
            }
            ring.close(&Yield);
            assert_eq!(ring.try_get(&d, &hand_d, &Yield), Err(GetError::Closed));
        }
    }

    #[test]
    fn a_slow_live_writer_is_waited_for_and_its_publish_never_lost() {
        let mem = HeapRing::new(3);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let in_hand = AtomicU64::new(0);
        let claim = ring.claim_put(&p).ok().unwrap();
        assert_eq!(ring.try_put(2, &q, &Yield), Ok(()));
        assert_eq!(
            ring.try_get(&c, &in_hand, &Yield),
            Err(GetError::Empty),
            "FIFO waits for p"
        );
        let soon = Some(Instant::now() + Duration::from_millis(2));
        assert_eq!(ring.get(soon, &c, &in_hand, &Yield), Err(GetError::Timeout));
        assert_eq!(ring.len(&c), 2);
        assert!(ring.finish_put_item(&claim, &1, &p, &Yield).is_ok());
        assert_eq!(ring.try_get(&c, &in_hand, &Yield), Ok(1));
        assert_eq!(ring.try_get(&c, &in_hand, &Yield), Ok(2));
        assert_eq!(in_hand.load(SC), 2);
    }

    #[test]
    fn a_repaired_put_is_handed_back_as_lost_never_delivered() {
        let mem = HeapRing::new(1);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (p, c) = (who(1, &dead), who(2, &dead));
        let in_hand = AtomicU64::new(0);
        let claim = ring.claim_put(&p).ok().unwrap();
        kill(&dead, 1); // wrongly, as if p had been SIGSTOPped and its beacon lost
        assert_eq!(ring.try_get(&c, &in_hand, &Yield), Err(GetError::Empty));
        assert!(matches!(
            ring.finish_put_item(&claim, &7, &p, &Yield),
            Err(PutFail::Lost)
        ));
        assert_eq!(ring.try_get(&c, &in_hand, &Yield), Err(GetError::Empty));
        assert_eq!(in_hand.load(SC), 0);
        dead.store(0, SC);
        assert_eq!(ring.try_put(8, &p, &Yield), Ok(()));
        assert_eq!(ring.try_get(&c, &in_hand, &Yield), Ok(8));
    }

    #[test]
    fn a_repaired_get_drops_its_copy_and_tries_again() {
        let mem = HeapRing::new(2);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let (p, c, d) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let (hand_c, hand_d) = (AtomicU64::new(0), AtomicU64::new(0));
        let claim = consumer_dies_after_moving_head(&ring, &dead, &p, &c, &hand_c);
        assert_eq!(ring.try_get(&d, &hand_d, &Yield), Ok(2));
        assert_eq!(ring.try_get(&d, &hand_d, &Yield), Err(GetError::Empty)); // repairs c's slot
        dead.store(0, SC);
        assert_eq!(ring.finish_get_item(&claim, &hand_c, &Yield), None);
        assert_eq!(hand_c.load(SC), 0, "the failed release undoes in_hand");
    }

    /// A tiny deterministic generator for garbage words.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Mostly garbage, sometimes a plausible word, so both kinds of path get exercised.
        fn word(&mut self, cap: u64) -> u64 {
            let r = self.next();
            match r % 4 {
                0 => r,
                1 => r % (4 * cap + 3),
                2 => SlotWord::encode((r >> 8) as u32 % 8, (r >> 16) as u32 % 4, (r >> 40) as u32 % 4),
                _ => u64::MAX - r % 4,
            }
        }
    }

    /// Payload cells that are atomics: a peer scribbling slot words can make two threads
    /// "own" one cell, which must give torn values and never UB (as production's copies).
    struct AtomicPayload(Box<[AtomicU64]>);
    // SAFETY: every access is an atomic load/store of an in-bounds cell.
    unsafe impl Payload for AtomicPayload {
        type Item = u64;
        fn len(&self) -> usize {
            self.0.len()
        }
        unsafe fn write(&self, index: usize, item: &u64) {
            self.0[index].store(*item, Ordering::Relaxed);
        }
        unsafe fn read(&self, index: usize) -> u64 {
            self.0[index].load(Ordering::Relaxed)
        }
    }

    fn scribble(rng: &mut XorShift, control: &RingControl, slots: &[Slot], cap: u64) {
        let words = [&control.tail.0, &control.head.0];
        for w in words {
            if rng.next() % 2 == 0 {
                w.store(rng.word(cap), SC);
            }
        }
        if rng.next() % 4 == 0 {
            control.closed.0.store(rng.next() as u32 % 3, SC);
        }
        for ec in [&control.not_empty.0, &control.not_full.0, &control.tasks.0] {
            ec.sleepers.store(rng.next() as u32 % 3, SC);
        }
        for s in slots {
            if rng.next() % 2 == 0 {
                s.word.store(rng.word(cap), SC);
            }
        }
    }

    #[test]
    fn garbage_words_never_panic_and_calls_return() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let dead = AtomicU64::new(0);
        let rounds = if cfg!(miri) { 30 } else { 3_000 };
        for round in 0..rounds {
            let cap = [1usize, 2, 3, 8][round % 4];
            let control = RingControl::new();
            let slots: Box<[Slot]> = (0..cap).map(|_| Slot::new()).collect();
            let payload = AtomicPayload((0..cap).map(|_| AtomicU64::new(0)).collect());
            let ring = Ring::new(&control, &slots, &payload).unwrap();
            dead.store(rng.next() & 0b1110, SC);
            let me = who(1 + round as u32 % 3, &dead);
            let in_hand = AtomicU64::new(rng.next() % 3);
            let soon = Some(Instant::now() + Duration::from_micros(200));
            for _ in 0..4 {
                scribble(&mut rng, &control, &slots, cap as u64);
                let _ = ring.try_put(round as u64, &me, &Yield);
                let _ = ring.try_get(&me, &in_hand, &Yield);
                assert!(ring.len(&me) <= cap);
                let _ = ring.is_full(&me);
                let _ = ring.join_ready(&me, &no_participants);
                let _ = ring.task_done(&in_hand, &Yield);
                let _ = ring.put(1, soon, &me, &Yield);
                let _ = ring.get(soon, &me, &in_hand, &Yield);
                let _ = ring.join(soon, &me, &no_participants, &Yield);
            }
        }
    }

    #[test]
    fn a_peer_scribbling_while_threads_work_causes_no_ub_and_no_hang() {
        let cap = 4;
        let control = RingControl::new();
        let slots: Box<[Slot]> = (0..cap).map(|_| Slot::new()).collect();
        let payload = AtomicPayload((0..cap).map(|_| AtomicU64::new(0)).collect());
        let ring = Ring::new(&control, &slots, &payload).unwrap();
        let dead = AtomicU64::new(0);
        let ops = if cfg!(miri) { 30 } else { 3_000 };
        std::thread::scope(|s| {
            for i in 0..2u32 {
                let (ring, dead) = (&ring, &dead);
                s.spawn(move || {
                    let me = who(i + 1, dead);
                    let in_hand = AtomicU64::new(0);
                    for n in 0..ops {
                        let soon = Some(Instant::now() + Duration::from_micros(100));
                        let _ = ring.put(n, soon, &me, &Yield);
                        let _ = ring.get(soon, &me, &in_hand, &Yield);
                        let _ = ring.len(&me);
                    }
                });
            }
            let mut rng = XorShift(42);
            for _ in 0..ops / 10 {
                scribble(&mut rng, &control, &slots, cap as u64);
                std::thread::yield_now();
            }
        });
    }

    /// Futex-like waiting: sleeps while the word holds `expected`, up to a long slice, and
    /// counts slices that ran out without a change, which here means a lost wake-up.
    struct Park {
        lock: Mutex<()>,
        cv: Condvar,
        slice: Duration,
        lost: std::sync::atomic::AtomicUsize,
    }

    impl Wait for Park {
        fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
            let slice_end = Instant::now() + self.slice;
            let end = deadline.map_or(slice_end, |d| d.min(slice_end));
            let mut guard = self.lock.lock().unwrap();
            while word.load(SC) == expected {
                let now = Instant::now();
                if now >= end {
                    if end == slice_end {
                        self.lost.fetch_add(1, SC);
                    }
                    return;
                }
                guard = self.cv.wait_timeout(guard, end - now).unwrap().0;
            }
        }
        fn wake_all(&self, _word: &AtomicU32) {
            let _guard = self.lock.lock().unwrap();
            self.cv.notify_all();
        }
    }

    #[test]
    fn two_producers_two_consumers_deliver_every_item_once_in_order() {
        const PRODUCERS: u64 = 2;
        const CONSUMERS: usize = 2;
        let per_producer: u64 = if cfg!(miri) { 200 } else { 10_000 };
        let mem = HeapRing::<u64>::new(4);
        let ring = mem.ring();
        let dead = AtomicU64::new(0);
        let park = Park {
            lock: Mutex::new(()),
            cv: Condvar::new(),
            slice: Duration::from_secs(20),
            lost: std::sync::atomic::AtomicUsize::new(0),
        };
        let hands: Vec<AtomicU64> = (0..CONSUMERS).map(|_| AtomicU64::new(0)).collect();
        let deadline = || Some(Instant::now() + Duration::from_secs(120));
        let received: Vec<Vec<u64>> = std::thread::scope(|s| {
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|c| {
                    let (ring, dead, park, hand) = (&ring, &dead, &park, &hands[c]);
                    s.spawn(move || {
                        let me = who(10 + c as u32, dead);
                        let mut got = Vec::new();
                        loop {
                            match ring.get(deadline(), &me, hand, park) {
                                Ok(v) => {
                                    got.push(v);
                                    ring.task_done(hand, park).unwrap();
                                }
                                Err(GetError::Closed) => return got,
                                Err(e) => panic!("consumer {c}: {e}"),
                            }
                        }
                    })
                })
                .collect();
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let (ring, dead, park) = (&ring, &dead, &park);
                    s.spawn(move || {
                        let me = who(1 + p as u32, dead);
                        for k in 0..per_producer {
                            ring.put((p << 32) | k, deadline(), &me, park).unwrap();
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
                for (c, hand) in hands.iter().enumerate() {
                    if !visit(Owner::new(10 + c as u32, 1), hand.load(SC)) {
                        break;
                    }
                }
            };
            ring.join(deadline(), &who(0, &dead), &participants, &park).unwrap();
            assert_eq!(ring.len(&who(0, &dead)), 0);
            ring.close(&park);
            consumers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = received.iter().flatten().copied().collect();
        for got in &received {
            for p in 0..PRODUCERS {
                let mine: Vec<u64> = got.iter().copied().filter(|v| v >> 32 == p).collect();
                assert!(
                    mine.windows(2).all(|w| w[0] < w[1]),
                    "producer {p}'s items out of order"
                );
            }
        }
        all.sort_unstable();
        let expected: Vec<u64> = (0..PRODUCERS)
            .flat_map(|p| (0..per_producer).map(move |k| (p << 32) | k))
            .collect();
        assert_eq!(all, expected, "every item exactly once");
        assert_eq!(park.lost.load(SC), 0, "a sleeper slept a whole slice: lost wake-up");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::heap::HeapRing;
    use super::*;
    use crate::raw::doubles::Oracle;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    const SC: Ordering = Ordering::SeqCst;

    /// Futex semantics with no re-check slice: `wait` blocks (under a lock, so no wake can slip
    /// between its check and its sleep) until a `wake_all` finds the word changed. A lost
    /// wake-up leaves a thread blocked for good, which loom reports as a deadlock.
    struct Futex {
        lock: Mutex<()>,
        cv: Condvar,
    }

    impl Wait for Futex {
        fn wait(&self, word: &AtomicU32, expected: u32, _deadline: Option<Instant>) {
            let mut guard = self.lock.lock().unwrap();
            while word.load(SC) == expected {
                guard = self.cv.wait(guard).unwrap();
            }
        }
        fn wake_all(&self, _word: &AtomicU32) {
            let _guard = self.lock.lock().unwrap();
            self.cv.notify_all();
        }
    }

    struct World {
        mem: HeapRing<u64>,
        dead: AtomicU64,
        hands: [AtomicU64; 3],
        flag: AtomicU32,
        futex: Futex,
    }

    fn world(capacity: usize) -> Arc<World> {
        Arc::new(World {
            mem: HeapRing::new(capacity),
            dead: AtomicU64::new(0),
            hands: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            flag: AtomicU32::new(0),
            futex: Futex {
                lock: Mutex::new(()),
                cv: Condvar::new(),
            },
        })
    }

    impl World {
        fn who(&self, index: u32) -> Oracle<'_> {
            Oracle {
                me: Owner::new(index, 1),
                dead: &self.dead,
            }
        }
    }

    /// Explores `f` with at most `bound` preemptions per execution (a few minutes in all on 2
    /// cores, see `.ci/loom.sh`); `LOOM_MAX_PREEMPTIONS`, read by `Builder::new`, overrides it
    /// for a deeper run.
    fn check(bound: usize, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(bound);
        }
        builder.check(f);
    }

    #[test]
    fn two_producers_one_consumer() {
        check(3, || {
            let w = world(1);
            let producers: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|v| {
                    let w = w.clone();
                    thread::spawn(move || w.mem.ring().put(v, None, &w.who(v as u32), &w.futex).unwrap())
                })
                .collect();
            let ring = w.mem.ring();
            let me = w.who(3);
            let a = ring.get(None, &me, &w.hands[0], &w.futex).unwrap();
            let b = ring.get(None, &me, &w.hands[0], &w.futex).unwrap();
            assert_eq!(a + b, 3);
            assert_ne!(a, b);
            for p in producers {
                p.join().unwrap();
            }
            assert_eq!(ring.len(&me), 0);
        });
    }

    #[test]
    fn one_producer_two_consumers() {
        check(3, || {
            let w = world(1);
            let consumers: Vec<_> = (0..2)
                .map(|c| {
                    let w = w.clone();
                    thread::spawn(move || {
                        let me = w.who(2 + c);
                        w.mem.ring().get(None, &me, &w.hands[c as usize], &w.futex).unwrap()
                    })
                })
                .collect();
            let ring = w.mem.ring();
            let me = w.who(1);
            ring.put(1, None, &me, &w.futex).unwrap();
            ring.put(2, None, &me, &w.futex).unwrap();
            let got: Vec<u64> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            assert!(got == [1, 2] || got == [2, 1], "{got:?}");
            assert_eq!(ring.len(&me), 0);
        });
    }

    /// The producer is reported dead while it is in fact still running (liveness misjudged,
    /// as only a peer scribbling on the participant table can cause): since layout 3 the
    /// publish is a guarded store, so the repair and the publish can both take effect (see
    /// "The fast path"). What must hold even then: no panic, no data race on the payload
    /// cell (loom checks every access), every call returns, and nothing but the one item is
    /// ever delivered, at most once per get.
    #[test]
    fn publish_races_repair() {
        check(3, || {
            let w = world(1);
            w.dead.store(1 << 1, SC);
            let producer = {
                let w = w.clone();
                thread::spawn(move || w.mem.ring().try_put(7, &w.who(1), &w.futex))
            };
            let consumer = {
                let w = w.clone();
                thread::spawn(move || {
                    let (ring, me) = (w.mem.ring(), w.who(2));
                    [
                        ring.try_get(&me, &w.hands[0], &w.futex),
                        ring.try_get(&me, &w.hands[0], &w.futex),
                    ]
                })
            };
            let put = producer.join().unwrap();
            let mut delivered: Vec<u64> = consumer.join().unwrap().into_iter().filter_map(Result::ok).collect();
            let (ring, me) = (w.mem.ring(), w.who(3));
            delivered.extend(ring.try_get(&me, &w.hands[1], &w.futex).ok());
            assert!(matches!(put, Ok(()) | Err(PutError::Lost(7))), "{put:?}");
            assert!(delivered.iter().all(|&x| x == 7), "{delivered:?}");
            if put.is_err() {
                assert_eq!(delivered, [], "a Lost item is not delivered");
            }
            // The ring answers (possibly Full: a late publish can leave a stale FULL word).
            let _ = ring.try_put(8, &me, &w.futex);
            let _ = ring.try_get(&me, &w.hands[1], &w.futex);
        });
    }

    /// A put that returns Ok is delivered; one that fails Closed is not; the consumer's
    /// Closed comes only after the delivered item, and len() ends at 0.
    #[test]
    fn close_races_put() {
        check(3, || {
            let w = world(1);
            let producer = {
                let w = w.clone();
                thread::spawn(move || w.mem.ring().put(1, None, &w.who(1), &w.futex))
            };
            let closer = {
                let w = w.clone();
                thread::spawn(move || w.mem.ring().close(&w.futex))
            };
            let (ring, me) = (w.mem.ring(), w.who(2));
            let first = ring.get(None, &me, &w.hands[0], &w.futex);
            let put = producer.join().unwrap();
            closer.join().unwrap();
            match put {
                Ok(()) => {
                    assert_eq!(first, Ok(1));
                    assert_eq!(ring.get(None, &me, &w.hands[0], &w.futex), Err(GetError::Closed));
                }
                Err(PutError::Closed(1)) => assert_eq!(first, Err(GetError::Closed)),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(ring.len(&me), 0);
        });
    }

    /// join returns only after the consumer's task_done, which follows its processing, and
    /// the joiner is woken by it.
    #[test]
    fn task_done_wakes_join() {
        check(3, || {
            let w = world(1);
            let (ring, me) = (w.mem.ring(), w.who(1));
            ring.put(5, None, &me, &w.futex).unwrap();
            let consumer = {
                let w = w.clone();
                thread::spawn(move || {
                    let ring = w.mem.ring();
                    assert_eq!(ring.get(None, &w.who(2), &w.hands[0], &w.futex), Ok(5));
                    w.flag.store(1, Ordering::Relaxed); // "processed"
                    ring.task_done(&w.hands[0], &w.futex).unwrap();
                })
            };
            let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
                visit(Owner::new(2, 1), w.hands[0].load(SC));
            };
            ring.join(None, &me, &participants, &w.futex).unwrap();
            assert_eq!(
                w.flag.load(Ordering::Relaxed),
                1,
                "join returned before the work was done"
            );
            consumer.join().unwrap();
            assert_eq!(ring.task_done(&w.hands[0], &w.futex), Err(TaskDoneError));
        });
    }
}
