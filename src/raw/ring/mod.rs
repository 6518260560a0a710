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
//! | copy out, release (`c4`, `c5`) | get | copy; store EMPTY(lap h+1) (guarded); clear the record |
//! | claimed, unpublished (`ct`..`cr`) | get | slot EMPTY(lap h), `tail > h`: wait while a live record shows `Put(h)`; otherwise re-read the slot: unchanged means its writer died |
//! | step over (`cr2`..`cr4`) | get  | record `Get(h)`, CAS `head`, store EMPTY(lap h+1): nothing delivered (a dead writer's or a retired position) |
//!
//! A live claimant shows its claim from before its index CAS until after its publish or
//! release, so "no live record shows it, and the slot is unchanged after the scan" means the
//! claimant is dead. Liveness must be exact in that direction (never "dead" for a live owner;
//! see [`Liveness`]). `head` and `tail` move only by the claim CASes, so they are exact and
//! never move back; `len` and `join` scan `[head, tail)`.
//!
//! Why not layout 3's claims (a CAS on the slot word naming its owner): that CAS is a locked
//! instruction on the cache line the other process has just written, so each put and get
//! stalled for a line transfer, and slots could not share a line. Here the slot words are only
//! loaded and stored; the measurements are in `models/README.md` and `benches/README.md`.
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
//!   previous lap re-reads it before it looks at `head` (see `claim_put`). All three were
//!   measured on the 2-vCPU development VM.
//! * Wake-ups and bounded attempts against scribbled words.

use super::claims::{ClaimRecord, NONE, Table, get_claim, put_claim};
use super::{Liveness, Owner, Wait, expired};
use crate::primitive::{AtomicU32, AtomicU64, Ordering, fence, spin_hint};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The slot word

/// Phase: nothing at this position of this lap yet (or claimed by a put that is writing it).
const EMPTY: u32 = 0;
/// Phase: published, waiting for a get (or claimed by a get that is copying it out).
const FULL: u32 = 2;
/// Phase: taken by a get that is copying the item out (a mark the get stores right after its
/// claim CAS, so that its slot line is its own while it copies: the release store then does
/// not wait for the line; model mode `taken_mark`). Producers treat it as FULL of its lap.
const TAKEN: u32 = 3;
/// Phase: a put retired this position (it saw close, or its writer unwound); gets step over.
const SKIP: u32 = 4;
/// A phase this code never writes (1, 5..7; 1 was layout 3's WRITING): scribbled.
const GARBLED: u32 = 7;

const PHASE_MASK: u64 = 0b111;
const LAP_SHIFT: u32 = 3;
const LAP_BITS: u32 = 29;
const LAP_MASK: u32 = (1 << LAP_BITS) - 1;
/// Laps ahead by at most this much are "later"; further is "stale" (see [`relate`]).
const LAP_HALF: u32 = 1 << (LAP_BITS - 1);

/// One slot's word in shared memory.
///
/// | bits    | field | meaning                                                          |
/// |---------|-------|------------------------------------------------------------------|
/// | 0..3    | phase | EMPTY 0, FULL 2, SKIP 4; anything else was scribbled              |
/// | 3..32   | lap   | `position / capacity` modulo 2^29                                |
/// | 32..64  | 0     | (layout 3 kept the claimant's token here)                        |
///
/// All-zero bytes are EMPTY, lap 0: the initial state of position `index`. Laps are compared
/// modulo 2^29 ([`relate`]), so a process would have to stall for about 2^28 laps of the ring
/// for a lap to be misjudged (the ABA bound of this design).
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
}

impl SlotWord {
    fn decode(raw: u64) -> SlotWord {
        let phase = (raw & PHASE_MASK) as u32;
        SlotWord {
            // Unknown phases, and any word with the high half set, come from a scribbling
            // peer: every rule retries on them (bounded by `ATTEMPTS`).
            phase: if raw >> 32 != 0 || !matches!(phase, EMPTY | FULL | TAKEN | SKIP) {
                GARBLED
            } else {
                phase
            },
            lap: (raw >> LAP_SHIFT) as u32 & LAP_MASK,
        }
    }

    fn encode(phase: u32, lap: u32) -> u64 {
        (u64::from(lap & LAP_MASK) << LAP_SHIFT) | u64::from(phase)
    }
}

fn empty(lap: u32) -> u64 {
    SlotWord::encode(EMPTY, lap)
}
fn full(lap: u32) -> u64 {
    SlotWord::encode(FULL, lap)
}
fn skip(lap: u32) -> u64 {
    SlotWord::encode(SKIP, lap)
}
fn taken(lap: u32) -> u64 {
    SlotWord::encode(TAKEN, lap)
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

/// A get that meets a free slot at the head loads `tail` (to tell "empty" from "claimed, not
/// yet published", and so find a dead writer's position) on one round in this many of a
/// blocking get's spinning (see [`Round`]); `try_get` always does.
const THOROUGH_EVERY: u32 = if cfg!(loom) { 1 } else { 16 };

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

/// Keeps a shared word on its own 64-byte cache line.
#[repr(C, align(64))]
pub(crate) struct CachePadded<T>(T);

/// Keeps a claim index (`tail`, `head`) alone in a 128-byte pair of cache lines: x86's
/// adjacent-line prefetcher moves lines in such pairs, so with `head` 64 bytes after `tail`
/// each side's locked CAS could find its line pulled away along with the other's (the
/// reason crossbeam pads to 128 bytes on x86-64).
#[repr(C, align(128))]
pub(crate) struct PairPadded<T>(T);

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

/// The ring's shared control words, on separate cache lines, `tail` and `head` each alone in
/// a 128-byte pair of lines ([`PairPadded`]). 640 bytes, 128-byte aligned.
///
/// | offset | word               | meaning                                                   |
/// |--------|--------------------|-----------------------------------------------------------|
/// | 0      | `tail: u64`        | next position a put claims (moved only by the claim CAS) |
/// | 128    | `head: u64`        | next position a get claims (moved only by the claim CAS) |
/// | 256    | `closed: u32`      | 0 open; anything else closed (1 is written)               |
/// | 320    | `not_empty` (u32, u32) | [`EventCount`] consumers sleep on (`seq`, `sleepers`) |
/// | 384    | `not_full` (u32, u32)  | [`EventCount`] producers sleep on                     |
/// | 448    | `tasks` (u32, u32)     | [`EventCount`] joiners sleep on                       |
/// | 512    | `records_used: u32`    | high mark of claim records ever leased (`raw::claims`) |
///
/// All-zero bytes are the initial state (empty, open, nobody asleep), so a freshly zeroed
/// mapping needs no initialisation; [`RingControl::new`] builds the same on the heap.
#[repr(C)]
pub(crate) struct RingControl {
    tail: PairPadded<AtomicU64>,
    head: PairPadded<AtomicU64>,
    closed: CachePadded<AtomicU32>,
    not_empty: CachePadded<EventCount>,
    not_full: CachePadded<EventCount>,
    tasks: CachePadded<EventCount>,
    pub(crate) records_used: CachePadded<AtomicU32>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Slot>() == 8 && align_of::<Slot>() == 8);
    assert!(size_of::<EventCount>() == 8);
    assert!(size_of::<RingControl>() == 640 && align_of::<RingControl>() == 128);
    assert!(offset_of!(RingControl, tail) == 0);
    assert!(offset_of!(RingControl, head) == 128);
    assert!(offset_of!(RingControl, closed) == 256);
    assert!(offset_of!(RingControl, not_empty) == 320);
    assert!(offset_of!(RingControl, not_full) == 384);
    assert!(offset_of!(RingControl, tasks) == 448);
    assert!(offset_of!(RingControl, records_used) == 512);
    assert!(offset_of!(EventCount, seq) == 0 && offset_of!(EventCount, sleepers) == 4);
};

impl RingControl {
    /// An empty, open ring's control block (the same as all-zero bytes).
    pub(crate) fn new() -> RingControl {
        RingControl {
            tail: PairPadded(AtomicU64::new(0)),
            head: PairPadded(AtomicU64::new(0)),
            closed: CachePadded(AtomicU32::new(0)),
            not_empty: CachePadded(EventCount::new()),
            not_full: CachePadded(EventCount::new()),
            tasks: CachePadded(EventCount::new()),
            records_used: CachePadded(AtomicU32::new(0)),
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

/// The participant records a `join` must consult.
///
/// `for_each` calls `visit(owner, tasks_done)` for every taken participant record and stops
/// early as soon as `visit` returns `false`; the ring adds what the owner's claim records
/// took (`raw::claims`). Load `tasks_done` with `Acquire`: a `task_done` seen then comes
/// with the get it follows. Any `Fn(&mut dyn FnMut(Owner, u64) -> bool)` closure is a
/// `Participants`.
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

/// A view of one ring's control words, `capacity` slots and claim records, without payload
/// storage: puts and gets take a closure that copies the payload of the cell they hold the
/// claim of. The byte-message queue uses this directly; [`Ring`] adds typed cells.
pub(crate) struct RawRing<'a> {
    control: &'a RingControl,
    /// Slot `i` is `slots[i * stride]`; the words in between (if `stride > 1`) belong to the
    /// caller's payload cells, which then sit next to their slot word (one cache line per
    /// item, see `Queue`), and the ring never touches them.
    slots: &'a [Slot],
    stride: usize,
    /// The number of slots as a position count, at least 1.
    cap: u64,
    /// `log2(cap)` when `cap` is a power of two (then `locate` shifts and masks instead of
    /// dividing: a 64-bit division on each side of every message cost a few nanoseconds).
    shift: Option<u32>,
    /// Where claimants announce their claims (see `raw::claims`).
    table: Table<'a>,
    /// Where the caller's cells lie, if they are worth prefetching ([`RawRing::with_ahead`]).
    ahead: Option<Ahead>,
}

/// Where the payload cells of a ring lie, so that each claimant can prefetch the cell it will
/// need [`AHEAD`] positions later ([`RawRing::with_ahead`]). Addresses are plain integers:
/// a prefetch never faults and is never a memory access in Rust's sense (`copy::prefetch`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ahead {
    /// Address of cell 0.
    pub(crate) base: usize,
    /// Bytes from one cell to the next.
    pub(crate) stride: usize,
    /// Whether the slot word lies in the cell's first line (a get writes it twice).
    pub(crate) word_inside: bool,
}

/// How many positions ahead of its claim a put or a get prefetches the cell it will need.
/// Measured 1P1C on the development VM (`ByteQueue` 64 B, `get_into`): 4 and 8 alike.
const AHEAD: u64 = 8;

/// A put or a get whose hint of the other side's index is too old to allow a prefetch reads
/// that index afresh once every this many positions (one line transfer each time).
const REFRESH_EVERY: u64 = 32;

impl Ahead {
    /// The one cell size worth prefetching: a pair of cache lines (items of 64 to 128 bytes,
    /// messages of up to 112). Smaller cells share line pairs with their neighbours'
    /// positions, which other claimants are writing, so a prefetch would take lines away from
    /// peers. Larger cells gained nothing, or lost (1P1C on the development VM, read in place:
    /// 480-byte messages 75-99 ns per message against 62-84, 1 KiB 127-138 against 80-112):
    /// their copies span enough lines for the hardware prefetchers to stream them.
    pub(crate) const STRIDE: usize = 128;

    /// Prefetches both lines of cell `index`.
    #[inline]
    fn fetch(&self, index: usize, put: bool) {
        let cell = self.base.wrapping_add(index.wrapping_mul(self.stride));
        // A put writes the whole cell; a get writes only the slot word. (Loom's heap rings,
        // whose build has no `copy` module, never prefetch.)
        #[cfg(not(loom))]
        {
            crate::raw::copy::prefetch(cell, put || self.word_inside);
            crate::raw::copy::prefetch(cell.wrapping_add(64), put);
        }
        #[cfg(loom)]
        let _ = (cell, put);
    }
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
    index: usize,
    lap: u32,
}

/// A get's claimed position.
struct GetClaim {
    index: usize,
    lap: u32,
}

/// Why a put did not send its payload ([`PutError`] without the item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PutFail {
    Full,
    Closed,
    Lost,
    Timeout,
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

/// How long a put or get may wait for room or an item.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Block {
    /// Not at all (`try_*`): one bounded attempt.
    No,
    /// Until the deadline (`None`: for ever).
    Until(Option<Instant>),
}

/// Retires a put's claim if the payload writer unwinds (see `finish_put`).
struct RetireOnUnwind<'r, 'a, W: Wait + ?Sized> {
    ring: &'r RawRing<'a>,
    claim: &'r PutClaim,
    mine: &'r ClaimRecord,
    wait: &'r W,
}

impl<W: Wait + ?Sized> Drop for RetireOnUnwind<'_, '_, W> {
    fn drop(&mut self) {
        self.ring.retire(self.claim, self.mine, self.wait);
    }
}

enum GetFail {
    Empty,
    /// Empty for now, because a live put is still writing the head item: its publish is a
    /// plain store that wakes nobody who announced after its claim, so poll, don't sleep.
    Busy,
    Closed,
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
    pub(crate) fn new_strided(
        control: &'a RingControl,
        slots: &'a [Slot],
        stride: usize,
        records: &'a [ClaimRecord],
    ) -> Option<Self> {
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
            shift: cap.is_power_of_two().then(|| cap.trailing_zeros()),
            table: Table::new(records, &control.records_used.0),
            ahead: None,
        })
    }

    /// Lets claims prefetch the cells of positions ahead of them, as `ahead` describes; a
    /// no-op unless the cells are [`Ahead::STRIDE`] bytes apart.
    pub(crate) fn with_ahead(mut self, ahead: Ahead) -> Self {
        if ahead.stride == Ahead::STRIDE {
            self.ahead = Some(ahead);
        }
        self
    }

    /// Puts one payload: claims the position at the tail, calls `write(index)` to copy the
    /// payload into cell `index` (`index < capacity`) of the caller's storage, and publishes
    /// it. `mine` is the claim word of a record that only this thread uses meanwhile (see
    /// `raw::claims`). `write` runs while nobody else reads or writes the cell (unless a peer
    /// breaks the protocol: cells in shared memory must still be copied atomically), at most
    /// once.
    ///
    /// # Errors
    ///
    /// [`PutFail::Full`] (`Block::No` only: no room, or garbled words after [`ATTEMPTS`]
    /// steps), `Closed`, `Lost` (a peer found us dead and stepped over our position before we
    /// published: only a misjudged liveness can do that), `Timeout`.
    pub(crate) fn put_with<L, W, F>(
        &self,
        block: Block,
        write: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        let deadline = match block {
            // `try_put` is patient: it never says Full while the queue has room, nor while a
            // running consumer is copying out of the slot it needs.
            Block::No => return self.put_attempt(write, mine, live, wait, &mut false, Round::Patient),
            Block::Until(deadline) => deadline,
        };
        // Spins a few rounds, then sleeps on the not-full eventcount; while a live get is
        // copying out of the slot we need, polls instead (its release wakes nobody).
        let mut busy = false;
        block_on(&self.control.not_full.0, deadline, wait, |round| {
            busy = false;
            match self.put_attempt(write, mine, live, wait, &mut busy, round) {
                Err(PutFail::Full) if busy => Attempt::Poll,
                Err(PutFail::Full) => Attempt::Sleep,
                other => Attempt::Done(other),
            }
        })
        .unwrap_or(Err(PutFail::Timeout))
    }

    /// Takes the item at the head: claims it, calls `read(index)` to copy it out of cell
    /// `index` (`index < capacity`), and releases the slot. `read` runs once and must not
    /// unwind. `mine` as in [`RawRing::put_with`].
    ///
    /// The item is counted in `mine`'s `taken` before the claim, so that a join never misses
    /// an item in flight (RELIABILITY.md, "Task accounting"): items in hand are `taken` less
    /// the participant's `tasks_done`. A user that never joins (or calls `task_done`) keeps
    /// `join` waiting, by design.
    ///
    /// # Errors
    ///
    /// `Empty` (`Block::No` only; also while a live producer is still writing the head item:
    /// FIFO waits for it), `Closed` once the queue is closed and drained, `Timeout`.
    pub(crate) fn get_with<L, W, R, F>(
        &self,
        block: Block,
        read: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<R, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let deadline = match block {
            Block::No => {
                return self
                    .get_attempt(read, mine, live, wait, Round::Patient)
                    .map_err(get_error);
            }
            Block::Until(deadline) => deadline,
        };
        let done = block_on(&self.control.not_empty.0, deadline, wait, |round| {
            match self.get_attempt(read, mine, live, wait, round) {
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

    /// After claiming `t`: prefetches, for writing, the cell of position `t + AHEAD`, which
    /// this thread will likely write next-but-[`AHEAD`] (`mine.seen_head` as the hint).
    ///
    /// Only once a get has claimed the position that cell held a lap before (`head` past it,
    /// as last read): until then it holds an item a consumer is about to read, and fetching
    /// it would take the line away from them.
    ///
    /// Why: each cell moves between the two sides' caches once per lap, and without a
    /// prefetch every side waits for every such transfer in turn (a 1P1C stream with the ring
    /// nearly full spent two thirds of each side's time on the first load of the cell). With
    /// it the transfers of later cells overlap the copies of this one. Measured 1P1C in
    /// interleaved runs on the development VM, before and after: `ByteQueue` 64 B `get_into`
    /// 91-109 -> 28 ns per message, `Queue<[u8; 64]>` 70-71 -> 31-34, `MessageQueue<String>`
    /// 64 B 126-134 -> 80-82, and 2P2C `Queue<[u8; 64]>` 75-76 -> 37-39. Prefetching
    /// unguarded (either side) made several rows twice as slow: the two sides fetched the
    /// same lines from each other.
    #[inline(never)]
    fn prefetch_put(&self, ahead: Ahead, t: u64, mine: &ClaimRecord) {
        let p = t.wrapping_add(AHEAD);
        if after(mine.seen_head.load(Ordering::Relaxed), p.wrapping_sub(self.cap)) {
            ahead.fetch(self.locate(p).0, true);
        } else if t % REFRESH_EVERY == 0 {
            // Relaxed: a hint. `head` only grows, so an old value errs on the safe side.
            mine.seen_head
                .store(self.control.head.0.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// After claiming `h`: prefetches the cell of position `h + AHEAD` (the slot word's line
    /// for writing, when it lies in the cell), once a put has claimed that position (below
    /// `tail` as this thread last read it, `mine.seen_tail`): a cell not yet claimed is one a
    /// producer is about to write. See [`RawRing::prefetch_put`].
    #[inline(never)]
    fn prefetch_get(&self, ahead: Ahead, h: u64, mine: &ClaimRecord) {
        let p = h.wrapping_add(AHEAD);
        if after(mine.seen_tail.load(Ordering::Relaxed), p) {
            ahead.fetch(self.locate(p).0, false);
        } else if h % REFRESH_EVERY == 0 {
            // Relaxed: a hint; `tail` only grows.
            mine.seen_tail
                .store(self.control.tail.0.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    // ----- put ---------------------------------------------------------------------------

    /// One bounded put attempt; `write(index)` copies the payload into cell `index` (see
    /// [`RawRing::put_with`]).
    ///
    /// Sets `busy` when it fails `Full` because a live get is copying out of the slot (of the
    /// previous lap): that get's release is a plain store that wakes nobody who announced
    /// after its claim, so a blocked put polls instead of sleeping.
    fn put_attempt<L, W, F>(
        &self,
        write: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        busy: &mut bool,
        round: Round,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        // A put that finds the queue closed before claiming takes no effect: it is "after
        // close" (the model's early look in `close_anytime`). Relaxed: a stale "open" only
        // defers the decision to the look after the claim.
        if self.control.closed.0.load(Ordering::Relaxed) != 0 {
            return Err(PutFail::Closed);
        }
        let claim = self.claim_put(mine, live, wait, busy, round)?;
        self.finish_put(&claim, write, mine, wait)
    }

    /// Model `p0`..`p3`, `pf`..`pr`: find position `tail`, announce and claim it, or report
    /// Full, or free a slot whose reader died (setting `busy` when a live get holds the
    /// slot, see [`RawRing::put_attempt`]). On success `mine` shows `Put(t)`; otherwise it
    /// is clear.
    #[inline]
    ///
    /// In a [`Round::Quick`] (a blocking put's spinning rounds but one in [`THOROUGH_EVERY`]),
    /// a slot that still holds the previous lap is reported Full without loading `head`, as a
    /// get does with `tail` (see [`RawRing::claim_get`]): a producer polling a full queue
    /// otherwise pulled the consumers' `head` line away from them on every round (1P1C 64 B:
    /// 107-114 ns per message against 91-100). `try_put` is patient, so that it never answers
    /// Full while a dead consumer's slot is all that stands in the way, nor while a running
    /// consumer is copying out of it (see [`Patience`]).
    fn claim_put<L, W>(
        &self,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        busy: &mut bool,
        round: Round,
    ) -> Result<PutClaim, PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut patience = Patience::new();
        for _ in 0..ATTEMPTS {
            // Acquire, partner: the claim CAS that moved `tail` here.
            let t = self.control.tail.0.load(Ordering::Acquire);
            let (index, lap) = self.locate(t);
            // Partner: the release (or repair) store that freed the slot for lap t.
            let raw = self.slot(index).load(Ordering::Acquire);
            let seen = SlotWord::decode(raw);
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, EMPTY) => {
                    fault_point("queue.put.before_claim");
                    // "record claim": before the claim, so that a get that sees `tail > t`
                    // and a free slot finds it while we live (Release, read with Acquire
                    // after the get's Acquire load of `tail`).
                    mine.claim.store(put_claim(t), Ordering::Release);
                    if Self::claim_index(&self.control.tail.0, t) {
                        fault_point("queue.put.after_claim");
                        if let Some(ahead) = self.ahead {
                            self.prefetch_put(ahead, t, mine);
                        }
                        return Ok(PutClaim { index, lap });
                    }
                    mine.claim.store(NONE, Ordering::Release);
                }
                // A get is copying position t - N out (it marked the slot TAKEN after its
                // claim): it releases in nanoseconds, so re-read rather than leave the loop
                // (bounded by ATTEMPTS; a thorough round looks for a dead reader below).
                (Lap::Previous, TAKEN) if round == Round::Quick => spin_hint(),
                // Position t - N is not released yet (FULL, or claimed by a put or a step-over
                // that has not finished): full, or a get holds it.
                (Lap::Previous, phase) => {
                    if round == Round::Quick {
                        return Err(PutFail::Full);
                    }
                    // A TAKEN slot is being read out: wait for the release a little before
                    // looking at `head` (the consumers' line) and the records.
                    if phase == TAKEN && self.changes(index, raw) {
                        continue;
                    }
                    let h = self.control.head.0.load(Ordering::SeqCst);
                    let before = t.wrapping_sub(self.cap);
                    // "load head: full": no get has claimed t - N. The get that claims it sees
                    // a sleeper that announced before that claim.
                    if !after(h, before) {
                        // Beyond the model's producers: if t - N is the head and holds nothing
                        // (retired, or its writer died), step over it as a get would (the
                        // model's `cr2`..`cr4`, with our record showing `Get(t - N)`), so a
                        // dead producer's position does not take room until a get passes.
                        if h == before && seen.phase != FULL && self.holds_nothing(before, index, raw, live) {
                            self.step_over(before, index, self.locate(before).1, raw, mine, wait);
                            continue;
                        }
                        return Err(PutFail::Full);
                    }
                    // A get claimed t - N and has not released it: wait while it lives.
                    if self.changes(index, raw) {
                        continue;
                    }
                    if self.table.shows_live(get_claim(before), live, true) {
                        // A running consumer releases in nanoseconds: a patient put waits.
                        if round == Round::Patient && patience.outwaits(self.slot(index), raw, wait) {
                            continue;
                        }
                        *busy = true;
                        return Err(PutFail::Full);
                    }
                    // "repair reader": its reader died (one item lost, as in the model).
                    if self.cas_slot(index, raw, empty(lap)) {
                        self.control.not_full.0.wake(wait);
                    }
                }
                // We read `tail` before a claim that moved it, or a scribbled word: retry.
                _ => spin_hint(),
            }
        }
        Err(PutFail::Full)
    }

    /// Model `pcc`..`p6`: check `closed`, write, publish (or retire), clear the record.
    fn finish_put<W, F>(&self, claim: &PutClaim, write: &mut F, mine: &ClaimRecord, wait: &W) -> Result<(), PutFail>
    where
        W: Wait + ?Sized,
        F: FnMut(usize),
    {
        let PutClaim { index, lap, .. } = *claim;
        // Partner: `close`'s store and `claim_get`'s "load closed; fence; reload". Our claim
        // CAS precedes this load in S: if we read "open", a consumer that reads "closed"
        // afterwards sees `tail` past our position when it reloads.
        sc_fence_under_loom();
        if self.control.closed.0.load(Ordering::SeqCst) != 0 {
            self.retire(claim, mine, wait);
            return Err(PutFail::Closed);
        }
        // Wake-ups: a get that announced itself before our claim CAS is seen here; one that
        // announces later sees `tail` past a free slot when it re-checks, and polls.
        let wake = self.control.not_empty.0.has_sleepers();
        // `index < capacity` (`locate`), and nobody else touches the cell until we publish:
        // a get steps over our position only if no live record shows `Put(t)`, and ours does.
        // If `write` unwinds, the guard retires the position as a put that saw close does.
        let guard = RetireOnUnwind {
            ring: self,
            claim,
            mine,
            wait,
        };
        write(index);
        core::mem::forget(guard);
        fault_point("queue.put.after_write");
        // Publish: a Release store, guarded by a load. Only a step-over could have changed the
        // slot, which needs us dead, so with exact liveness the guard never fails; it narrows
        // the damage of a misjudged liveness to the window between the load and the store.
        // Partner: the Acquire slot load before `claim_get`'s CAS.
        let published = self.slot(index).load(Ordering::Relaxed) == empty(lap);
        if published {
            self.slot(index).store(full(lap), Ordering::Release);
            fault_point("queue.put.after_publish");
        }
        // "clear record": after the publish (Release: a scanner that reads it cleared reads
        // the publish too).
        mine.claim.store(NONE, Ordering::Release);
        if !published {
            return Err(PutFail::Lost);
        }
        if cfg!(loom) {
            wake_after_store(&self.control.not_empty.0, wait);
        } else if wake {
            self.control.not_empty.0.wake_armed(wait);
        }
        Ok(())
    }

    /// Retire (model `pret`, `puw`): mark our claimed position SKIP, so that gets step over
    /// it, clear the record, and wake everyone who might wait on that position.
    fn retire<W: Wait + ?Sized>(&self, claim: &PutClaim, mine: &ClaimRecord, wait: &W) {
        // Guarded as the publish is (the slot can only hold our lap's EMPTY).
        if self.slot(claim.index).load(Ordering::Relaxed) == empty(claim.lap) {
            self.slot(claim.index).store(skip(claim.lap), Ordering::SeqCst);
        }
        mine.claim.store(NONE, Ordering::SeqCst);
        // A get polling on our position, a put waiting on it as the previous lap, and a joiner
        // counting it as live all need another look (close's wake may have come first).
        self.control.not_empty.0.wake(wait);
        self.control.not_full.0.wake(wait);
        self.control.tasks.0.wake(wait);
    }

    // ----- get ---------------------------------------------------------------------------

    /// One bounded get attempt; `read(index)` copies the payload out of cell `index`.
    fn get_attempt<L, W, R, F>(
        &self,
        read: &mut F,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        round: Round,
    ) -> Result<R, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let mut budget = ATTEMPTS;
        // `claim_get` spends the budget and fails `Empty` once it is gone.
        let claim = self.claim_get(mine, live, wait, &mut budget, round)?;
        Ok(self.finish_get(&claim, read, mine, wait))
    }

    /// Model `c0`..`c3`, `ct`..`cr4`, `cc`: find position `head`, announce and claim it, step
    /// over a position that holds nothing, or report Empty/Busy/Closed. On success `mine`
    /// shows `Get(h)`; otherwise it is clear.
    ///
    /// In a [`Round::Quick`], a free slot at the head of an open ring is reported Empty
    /// without loading `tail`: that load is what tells "empty" from "claimed, not yet
    /// published", and a blocking get that made it on every spinning round pulled the
    /// producers' `tail` line away from them once per round. Other rounds load it; a
    /// [`Round::Patient`] one (`try_get`) also waits for a running producer that is still
    /// copying the head item (see [`Patience`]), so that it answers Empty only when no item
    /// is published behind a free head, or when the producer at the head is dead (stepped
    /// over) or not running.
    fn claim_get<L, W>(
        &self,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
        budget: &mut u32,
        round: Round,
    ) -> Result<GetClaim, GetFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut patience = Patience::new();
        while *budget > 0 {
            *budget -= 1;
            // Acquire, partner: the claim CAS that moved `head` here.
            let h = self.control.head.0.load(Ordering::Acquire);
            let (index, lap) = self.locate(h);
            // Acquire, partner: the publish store.
            let raw = self.slot(index).load(Ordering::Acquire);
            let seen = SlotWord::decode(raw);
            match (relate(seen.lap, lap), seen.phase) {
                (Lap::Same, FULL) => {
                    fault_point("queue.get.before_claim");
                    // "record claim", then count the item in our record's `taken` (before the
                    // claim, undone if it fails: a joiner that sees `head` past h then sees
                    // this count). Plain stores: only this thread writes the record.
                    mine.claim.store(get_claim(h), Ordering::Release);
                    let count = mine.taken.load(Ordering::Relaxed);
                    mine.taken.store(count.wrapping_add(1), Ordering::Release);
                    if Self::claim_index(&self.control.head.0, h) {
                        // "mark taken" (model `c3m`): nobody else writes the slot until our
                        // release, except a producer that found us dead; producers treat TAKEN
                        // and FULL of this lap alike. Release: a joiner that reads the mark
                        // (Acquire) instead of the FULL word must also see our `taken` count,
                        // or it would find the item neither in the ring nor in hand (loom's
                        // `task_done_wakes_join` found that with a Relaxed store).
                        self.slot(index).store(taken(lap), Ordering::Release);
                        fault_point("queue.get.after_claim");
                        if let Some(ahead) = self.ahead {
                            self.prefetch_get(ahead, h, mine);
                        }
                        return Ok(GetClaim { index, lap });
                    }
                    mine.taken.store(count, Ordering::Release);
                    mine.claim.store(NONE, Ordering::Release);
                }
                // A put retired position h (it saw close, or its writer unwound): step over.
                (Lap::Same, SKIP) => self.step_over(h, index, lap, raw, mine, wait),
                (Lap::Same, EMPTY) => {
                    // Empty for now, or a writer is copying: either way nothing to take yet.
                    // Relaxed: a stale "open" only defers the decision.
                    if round == Round::Quick && self.control.closed.0.load(Ordering::Relaxed) == 0 {
                        return Err(GetFail::Empty);
                    }
                    // SeqCst: "load tail" is the reload of the closed check below as well.
                    let t = self.control.tail.0.load(Ordering::SeqCst);
                    if after(t, h) {
                        // Position h is claimed and not published: its writer is copying, or
                        // dead. FIFO waits for a live one (polling: see `GetFail::Busy`).
                        if self.changes(index, raw) {
                            continue;
                        }
                        if self.table.shows_live(put_claim(h), live, true) {
                            // A running producer publishes in nanoseconds: a patient get
                            // waits, then takes the item in the next round.
                            if round == Round::Patient && patience.outwaits(self.slot(index), raw, wait) {
                                continue;
                            }
                            return Err(GetFail::Busy);
                        }
                        // "reload": a live writer shows `Put(h)` from before its claim until
                        // after its publish, so a slot still free now means it died.
                        if self.slot(index).load(Ordering::SeqCst) == raw {
                            self.step_over(h, index, lap, raw, mine, wait);
                        }
                    } else {
                        self.empty_or_closed(h, index, raw, t)?;
                    }
                }
                // Position h - N not released yet: nothing can be produced at h.
                (Lap::Previous, _) => {
                    if self.control.closed.0.load(Ordering::Relaxed) == 0 {
                        return Err(GetFail::Empty);
                    }
                    let t = self.control.tail.0.load(Ordering::SeqCst);
                    self.empty_or_closed(h, index, raw, t)?;
                }
                // We read `head` before a claim that moved it, or a scribbled word: retry.
                _ => spin_hint(),
            }
        }
        Err(GetFail::Empty)
    }

    /// Whether position `p`, claimed (below `tail`) and whose slot reads `raw` (EMPTY or SKIP
    /// of its lap), holds nothing for good: it retired, or no live record shows `Put(p)` and
    /// the slot is unchanged after the scan (model `ct`..`cr`).
    fn holds_nothing<L: Liveness + ?Sized>(&self, p: u64, index: usize, raw: u64, live: &L) -> bool {
        SlotWord::decode(raw).phase == SKIP
            || (!self.changes(index, raw)
                && !self.table.shows_live(put_claim(p), live, true)
                && self.slot(index).load(Ordering::SeqCst) == raw)
    }

    /// Model `cc`, `cc2`: nothing at `h`; `Empty` while open, `Closed` once closed and the
    /// slot, `head` and `tail` are unchanged after the fence; `Ok` to look again.
    fn empty_or_closed(&self, h: u64, index: usize, raw: u64, t: u64) -> Result<(), GetFail> {
        if self.control.closed.0.load(Ordering::SeqCst) == 0 {
            return Err(GetFail::Empty);
        }
        // Closed. Partner: `finish_put`'s "claim; load closed". A put that read "open"
        // claimed before that load, so after this fence the reloads see its claim; nothing
        // changed means empty for good.
        fence(Ordering::SeqCst);
        if self.slot(index).load(Ordering::SeqCst) == raw
            && self.control.head.0.load(Ordering::SeqCst) == h
            && self.control.tail.0.load(Ordering::SeqCst) == t
        {
            return Err(GetFail::Closed);
        }
        Ok(())
    }

    /// Model `cr2`..`cr4`, `c6`: step over position `h`, which holds nothing (its writer died,
    /// or it retired): claim it as a get does and release it free for the next lap, with
    /// nothing delivered.
    fn step_over<W: Wait + ?Sized>(&self, h: u64, index: usize, lap: u32, raw: u64, mine: &ClaimRecord, wait: &W) {
        mine.claim.store(get_claim(h), Ordering::Release);
        if Self::claim_index(&self.control.head.0, h) {
            // Guarded: the word we decided on (a put of the next lap waits for us, see
            // `claim_put`'s previous-lap rule).
            if self.slot(index).load(Ordering::Relaxed) == raw {
                self.slot(index).store(empty(next_lap(lap)), Ordering::SeqCst);
            }
            mine.claim.store(NONE, Ordering::SeqCst);
            self.control.not_full.0.wake(wait);
        } else {
            mine.claim.store(NONE, Ordering::Release);
        }
    }

    /// Model `c4`..`c6`: copy out, release, clear the record.
    fn finish_get<W, R, F>(&self, claim: &GetClaim, read: &mut F, mine: &ClaimRecord, wait: &W) -> R
    where
        W: Wait + ?Sized,
        F: FnMut(usize) -> R,
    {
        let GetClaim { index, lap } = *claim;
        // Wake-ups: as in `finish_put`, with puts that wait for this slot's next lap.
        let wake = self.control.not_full.0.has_sleepers();
        // `index < capacity` (`locate`); the slot holds TAKEN(lap) (our mark over the FULL
        // word of a put whose Release store our Acquire load read), and only a producer that
        // finds no live `Get(h)` (ours shows it) frees it. `read` must not unwind
        // (crate-internal copies only): a position abandoned by a live process would block
        // the ring.
        let item = read(index);
        fault_point("queue.get.after_read");
        // Release: a plain Release store (partner: the Acquire slot load in `claim_put`). Not
        // guarded by a load, unlike layout 3's and the publish: with exact liveness nobody
        // else wrote the slot since our mark, and the load cost a line transfer whenever the
        // producer had touched the line meanwhile (ByteQueue 1 KiB: 123-128 ns per message
        // with it, 98-106 without). Under a misjudged liveness (a scribbled participant
        // table) a producer may have freed the slot and started its next lap: our copy may
        // then be torn (a wrong answer), and this store may erase that producer's item,
        // whose position a get then steps over: the ring heals either way.
        self.slot(index).store(empty(next_lap(lap)), Ordering::Release);
        fault_point("queue.get.after_release");
        mine.claim.store(NONE, Ordering::Release);
        if cfg!(loom) {
            wake_after_store(&self.control.not_full.0, wait);
        } else if wake {
            self.control.not_full.0.wake_armed(wait);
        }
        item
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
    pub(crate) fn len<L: Liveness + ?Sized>(&self, live: &L) -> usize {
        let mut n = 0usize;
        self.scan_claimed(|p, lap, seen| {
            if self.holds_item(p, lap, seen, live) {
                n += 1;
            }
            true
        });
        n
    }

    /// Waits until an item is at the head (or being written there by a live producer) or the
    /// ring is closed, until `deadline`; `false` if the deadline passed first.
    pub(crate) fn wait_readable<L, W>(&self, deadline: Option<Instant>, live: &L, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        block_on(&self.control.not_empty.0, deadline, wait, |_| {
            let mut found = Attempt::Sleep;
            self.scan_claimed(|p, lap, seen| {
                if self.holds_item(p, lap, seen, live) {
                    found = Attempt::Done(());
                }
                false
            });
            match found {
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
    pub(crate) fn task_done<W: Wait + ?Sized>(
        &self,
        done: &AtomicU64,
        me: Owner,
        wait: &W,
    ) -> Result<(), TaskDoneError> {
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
    pub(crate) fn join_ready<L, Q>(&self, live: &L, participants: &Q) -> bool
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
    pub(crate) fn new(
        control: &'a RingControl,
        slots: &'a [Slot],
        records: &'a [ClaimRecord],
        payload: &'a P,
    ) -> Option<Self> {
        Self::new_strided(control, slots, 1, records, payload)
    }

    /// [`RawRing::new_strided`] with typed cells (which may lie between the slot words).
    pub(crate) fn new_strided(
        control: &'a RingControl,
        slots: &'a [Slot],
        stride: usize,
        records: &'a [ClaimRecord],
        payload: &'a P,
    ) -> Option<Self> {
        let raw = RawRing::new_strided(control, slots, stride, records)?;
        if payload.len() < raw.capacity() {
            return None;
        }
        Some(Ring { raw, payload })
    }

    /// [`RawRing::with_ahead`].
    pub(crate) fn with_ahead(self, ahead: Ahead) -> Self {
        Ring {
            raw: self.raw.with_ahead(ahead),
            payload: self.payload,
        }
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    ///
    /// `Full(item)`: no room (or garbled words, after [`ATTEMPTS`] steps); `Closed(item)`;
    /// `Lost(item)`: a peer found us dead and stepped over our position before we published.
    #[cfg(test)]
    pub(crate) fn try_put<L, W>(
        &self,
        item: P::Item,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), PutError<P::Item>>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.put_ref(Block::No, &item, mine, live, wait)
            .map_err(|fail| put_error(fail, item))
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
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), PutError<P::Item>>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.put_ref(Block::Until(deadline), &item, mine, live, wait)
            .map_err(|fail| put_error(fail, item))
    }

    /// Puts a copy of `*item`; the caller keeps the item (and turns a failure into its
    /// `PutError` with [`put_error`]), so a large item is copied once, into its cell.
    ///
    /// # Errors
    ///
    /// As [`RawRing::put_with`].
    pub(crate) fn put_ref<L, W>(
        &self,
        block: Block,
        item: &P::Item,
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), PutFail>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let payload = self.payload;
        let len = payload.len();
        let mut write = |index: usize| {
            debug_assert!(index < len);
            // SAFETY: `put_with` calls us with `index < capacity <= payload.len()` (`new`)
            // while we hold the claim of the position whose cell is `index`.
            unsafe { payload.write(index, item) }
        };
        self.raw.put_with(block, &mut write, mine, live, wait)
    }

    /// Takes the item at the head if one is deliverable now (see [`RawRing::get_with`]).
    ///
    /// # Errors
    ///
    /// `Empty`, `Closed` once the queue is closed and drained.
    #[cfg(test)]
    pub(crate) fn try_get<L, W>(&self, mine: &ClaimRecord, live: &L, wait: &W) -> Result<P::Item, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.get_item(Block::No, mine, live, wait)
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
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<P::Item, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.get_item(Block::Until(deadline), mine, live, wait)
    }

    #[cfg(test)]
    fn get_item<L, W>(&self, block: Block, mine: &ClaimRecord, live: &L, wait: &W) -> Result<P::Item, GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut out = core::mem::MaybeUninit::uninit();
        self.get_into(block, &mut out, mine, live, wait)?;
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
        mine: &ClaimRecord,
        live: &L,
        wait: &W,
    ) -> Result<(), GetError>
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let payload = self.payload;
        let mut read = |index: usize| {
            // SAFETY: `get_with` calls us with `index < capacity <= payload.len()` (`new`)
            // while we hold the claim of the position whose cell is `index`, which a put
            // published.
            unsafe { payload.read_into(index, out) }
        };
        self.raw.get_with(block, &mut read, mine, live, wait)
    }
}

/// Single steps for the conformance tests of the public queue: a participant that stops for
/// good right after its claim, as one SIGKILLed at the `queue.put.after_claim` or
/// `queue.get.after_claim` fault point does (its record keeps showing the claim).
#[cfg(test)]
impl RawRing<'_> {
    /// Claims the tail position as `live`, announced in `mine`, and returns without writing
    /// or publishing it. `false` when there was no room to claim.
    pub(crate) fn claim_put_and_stop<L, W>(&self, mine: &ClaimRecord, live: &L, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        self.claim_put(mine, live, wait, &mut false, Round::Patient).is_ok()
    }

    /// Claims the head item as `live` (counting it in `mine`'s `taken`) and returns without reading
    /// or releasing it. `false` when there was no item to claim.
    pub(crate) fn claim_get_and_stop<L, W>(&self, mine: &ClaimRecord, live: &L, wait: &W) -> bool
    where
        L: Liveness + ?Sized,
        W: Wait + ?Sized,
    {
        let mut budget = ATTEMPTS;
        self.claim_get(mine, live, wait, &mut budget, Round::Patient).is_ok()
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
    use super::{ClaimRecord, Owner, Payload, Ring, RingControl, Slot};
    use crate::primitive::Ordering;

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
    // claimant at a time per cell; the publish and release stores, read by the next claim's
    // Acquire slot load, order consecutive ones.
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
            // SAFETY: the caller holds the put claim of this cell: no other access overlaps.
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
            // SAFETY: the caller holds the get claim of this published cell.
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
        pub(crate) records: Box<[ClaimRecord]>,
    }

    impl<T: Copy + Default> HeapRing<T> {
        /// An empty, open ring of `capacity` (at least 1) items.
        pub(crate) fn new(capacity: usize) -> HeapRing<T> {
            HeapRing {
                control: RingControl::new(),
                slots: (0..capacity).map(|_| Slot::new()).collect(),
                payload: HeapPayload::new(capacity),
                records: (0..RECORDS).map(|_| ClaimRecord::new()).collect(),
            }
        }

        pub(crate) fn ring(&self) -> Ring<'_, HeapPayload<T>> {
            Ring::new(&self.control, &self.slots, &self.records, &self.payload)
                .expect("a heap ring has at least one slot")
        }

        /// `who`'s claim record (record `who.index()`), leased to it.
        pub(crate) fn mine(&self, who: Owner) -> &ClaimRecord {
            claim_word(&self.control, &self.records, who)
        }
    }

    /// Records of a heap ring: participant `i` uses record `i`.
    pub(crate) const RECORDS: usize = 16;

    /// Leases record `who.index()` of `records` to `who` and returns it.
    pub(crate) fn claim_word<'r>(control: &RingControl, records: &'r [ClaimRecord], who: Owner) -> &'r ClaimRecord {
        let i = who.index() as usize % records.len();
        records[i].bind(who);
        control.records_used.0.fetch_max(i as u32 + 1, Ordering::SeqCst);
        &records[i]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::heap::{HeapRing, RECORDS, claim_word};
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
        let me = who(1, &dead);
        let mine = mem.mine(me.me);
        let ring = mem.ring();
        let cap = ring.capacity() as u64;
        let mut next = 0;
        for _ in 0..laps {
            for i in 0..cap {
                assert_eq!(ring.len(&me), i as usize);
                assert_eq!(ring.try_put(next + i, mine, &me, &Yield), Ok(()));
            }
            assert!(ring.is_full(&me));
            assert_eq!(ring.try_put(99, mine, &me, &Yield), Err(PutError::Full(99)));
            for i in 0..cap {
                assert_eq!(ring.try_get(mine, &me, &Yield), Ok(next + i));
            }
            assert!(ring.is_empty(&me));
            assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetError::Empty));
            next += cap;
            // Offset head within the lap: one in, one out.
            assert_eq!(ring.try_put(next, mine, &me, &Yield), Ok(()));
            assert_eq!(ring.try_get(mine, &me, &Yield), Ok(next));
            next += 1;
        }
        assert_eq!(mine.taken.load(SC), (laps * (cap + 1)));
        assert_eq!(mine.claim.load(SC), NONE, "every call clears its claim");
    }

    #[test]
    fn prefetch_hints_follow_the_other_index_and_only_128_byte_cells_prefetch() {
        let dead = AtomicU64::new(0);
        let me = who(1, &dead);
        // Cells somewhere in memory (a prefetch never faults, but let them be real).
        let cells = vec![0u8; 64 * Ahead::STRIDE];
        for (stride, prefetches) in [(64, false), (Ahead::STRIDE, true), (256, false)] {
            let mem = HeapRing::<u64>::new(64);
            let mine = mem.mine(me.me);
            let ring = mem.ring().with_ahead(Ahead {
                base: cells.as_ptr().addr(),
                stride,
                word_inside: false,
            });
            assert_eq!(ring.raw.ahead.is_some(), prefetches, "stride {stride}");
            for i in 0..200u64 {
                assert_eq!(ring.try_put(i, mine, &me, &Yield), Ok(()));
                assert_eq!(ring.try_get(mine, &me, &Yield), Ok(i));
                // Hints never run ahead of the index they copy.
                assert!(!after(mine.seen_head.load(SC), mem.control.head.0.load(SC)));
                assert!(!after(mine.seen_tail.load(SC), mem.control.tail.0.load(SC)));
            }
            // Read afresh while the guard held the prefetch back (the consumer at once: it
            // starts with no hint; the producer once the ring wrapped), and not at all
            // without an `Ahead`.
            let (seen_head, seen_tail) = (mine.seen_head.load(SC), mine.seen_tail.load(SC));
            assert_eq!(seen_head != 0 && seen_tail != 0, prefetches, "{seen_head} {seen_tail}");
        }
    }

    #[test]
    fn slot_words_round_trip_and_laps_compare_modulo_2_29() {
        assert_eq!(
            SlotWord::decode(full(LAP_MASK)),
            SlotWord {
                phase: FULL,
                lap: LAP_MASK
            }
        );
        assert_eq!(SlotWord::decode(0), SlotWord { phase: EMPTY, lap: 0 });
        assert_eq!(SlotWord::decode(taken(3)), SlotWord { phase: TAKEN, lap: 3 });
        for garbage in [1, 5, 6, 7, 1 << 32 | FULL as u64] {
            assert_eq!(SlotWord::decode(garbage).phase, GARBLED, "{garbage:#x}");
        }
        assert_eq!(next_lap(LAP_MASK), 0);
        assert_eq!(relate(5, 5), Lap::Same);
        assert_eq!(relate(4, 5), Lap::Previous);
        assert_eq!(relate(LAP_MASK, 0), Lap::Previous);
        assert_eq!(relate(0, LAP_MASK), Lap::Later);
        assert_eq!(relate(7, 5), Lap::Later);
        assert_eq!(relate(3, 5), Lap::Stale);
        assert!(after(1, 0) && !after(0, 0) && !after(0, 1) && after(0, u64::MAX));
    }

    #[test]
    fn zeroed_control_and_slots_are_the_initial_state() {
        let mem = HeapRing::<u64>::new(3);
        let ring = mem.ring();
        assert_eq!(mem.control.tail.0.load(SC), 0);
        assert!(!ring.is_closed());
        assert!(ring.is_empty(&who(1, &AtomicU64::new(0))));
        assert!(Ring::new(&mem.control, &mem.slots[..0], &mem.records, &mem.payload).is_none());
        let short = super::heap::HeapPayload::<u64>::new(2);
        assert!(Ring::new(&mem.control, &mem.slots, &mem.records, &short).is_none());
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
            let records: Box<[ClaimRecord]> = (0..RECORDS).map(|_| ClaimRecord::new()).collect();
            let slots: Box<[Slot]> = (0..cap * stride).map(|_| Slot::new()).collect();
            for (i, s) in slots.iter().enumerate() {
                if i % stride != 0 {
                    s.word.store(0xdead_beef_0000_0000 | i as u64, SC);
                }
            }
            let payload = super::heap::HeapPayload::<u64>::new(cap);
            assert!(Ring::new_strided(&control, &slots[..stride - 1], stride, &records, &payload).is_none());
            assert!(Ring::new_strided(&control, &slots, 0, &records, &payload).is_none());
            let ring = Ring::new_strided(&control, &slots, stride, &records, &payload).unwrap();
            assert_eq!(ring.capacity(), cap);
            let dead = AtomicU64::new(0);
            let me = who(1, &dead);
            let mine = claim_word(&control, &records, me.me);
            let mut next = 0;
            for _ in 0..5 {
                for i in 0..cap as u64 {
                    assert_eq!(ring.try_put(next + i, mine, &me, &Yield), Ok(()));
                }
                assert_eq!(ring.try_put(0, mine, &me, &Yield), Err(PutError::Full(0)));
                assert_eq!(ring.len(&me), cap);
                for i in 0..cap as u64 {
                    assert_eq!(ring.try_get(mine, &me, &Yield), Ok(next + i));
                }
                assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetError::Empty));
                next += cap as u64;
            }
            for (i, s) in slots.iter().enumerate() {
                if i % stride != 0 {
                    assert_eq!(s.word.load(SC), 0xdead_beef_0000_0000 | i as u64);
                }
            }
        }
    }

    #[test]
    fn laps_wrap_around_modulo_2_29() {
        let mem = HeapRing::new(3);
        start_at(&mem, 3 * u64::from(LAP_MASK) - 4);
        exercise(&mem, 6);
    }

    #[test]
    fn positions_wrap_around_u64_for_power_of_two_capacities() {
        let mem = HeapRing::new(4);
        start_at(&mem, u64::MAX - 9);
        exercise(&mem, 6);
    }

    #[test]
    fn close_fails_puts_and_lets_gets_drain() {
        let mem = HeapRing::<u64>::new(4);
        let dead = AtomicU64::new(0);
        let me = who(1, &dead);
        let mine = mem.mine(me.me);
        let ring = mem.ring();
        ring.try_put(1, mine, &me, &Yield).unwrap();
        ring.close(&Yield);
        assert!(ring.is_closed());
        assert_eq!(ring.try_put(2, mine, &me, &Yield), Err(PutError::Closed(2)));
        assert_eq!(ring.try_get(mine, &me, &Yield), Ok(1));
        assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetError::Closed));
        assert_eq!(ring.get(None, mine, &me, &Yield), Err(GetError::Closed));
        assert_eq!(ring.len(&me), 0);
    }

    /// Model `pcc`/`pret`: a put that sees close after its claim stores SKIP; a get steps over
    /// it and the position is not counted.
    #[test]
    fn a_put_that_sees_close_after_its_claim_retires_its_position() {
        let mem = HeapRing::<u64>::new(2);
        let dead = AtomicU64::new(0);
        let me = who(1, &dead);
        let mine = mem.mine(me.me);
        let ring = mem.ring();
        let claim = ring
            .claim_put(mine, &me, &Yield, &mut false, Round::Patient)
            .ok()
            .unwrap();
        ring.close(&Yield);
        assert_eq!(ring.finish_put(&claim, &mut |_| {}, mine, &Yield), Err(PutFail::Closed));
        assert_eq!(word(&ring, 0).phase, SKIP);
        assert_eq!(mine.claim.load(SC), NONE);
        assert_eq!(ring.len(&me), 0);
        assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetError::Closed));
        assert_eq!(mem.control.head.0.load(SC), 1, "the get stepped over it");
        assert_eq!(mine.taken.load(SC), 0);
    }

    #[test]
    fn a_writer_that_unwinds_retires_its_position_and_the_ring_goes_on() {
        let mem = HeapRing::<u64>::new(2);
        let dead = AtomicU64::new(0);
        let me = who(1, &dead);
        let mine = mem.mine(me.me);
        let ring = mem.ring();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = ring.put_with(Block::No, &mut |_| panic!("writer"), mine, &me, &Yield);
        }));
        assert!(r.is_err());
        assert_eq!(mine.claim.load(SC), NONE);
        ring.try_put(5, mine, &me, &Yield).unwrap();
        assert_eq!(ring.len(&me), 1);
        assert_eq!(ring.try_get(mine, &me, &Yield), Ok(5));
    }

    #[test]
    fn task_done_and_join_account_for_every_item() {
        let mem = HeapRing::new(2);
        let dead = AtomicU64::new(0);
        let (p, c) = (who(1, &dead), who(2, &dead));
        let (mp, mc) = (mem.mine(p.me), mem.mine(c.me));
        let done = AtomicU64::new(0);
        let ring = mem.ring();
        let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
            visit(c.me, done.load(SC));
        };
        assert!(ring.join_ready(&p, &participants));
        ring.try_put(1, mp, &p, &Yield).unwrap();
        assert!(!ring.join_ready(&p, &participants), "an item in the ring");
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(1));
        assert!(!ring.join_ready(&p, &participants), "an item in hand");
        ring.task_done(&done, c.me, &Yield).unwrap();
        assert!(ring.join_ready(&p, &participants));
        assert_eq!(ring.task_done(&done, c.me, &Yield), Err(TaskDoneError));
        assert_eq!(done.load(SC), 1, "a refused task_done leaves no trace");
        // A claimed, unpublished position counts while its writer lives.
        assert!(ring.claim_put_and_stop(mp, &p, &Yield));
        assert!(!ring.join_ready(&c, &participants));
        assert_eq!(ring.len(&c), 1);
        kill(&dead, 1);
        assert!(ring.join_ready(&c, &participants), "work of the dead is not waited for");
        assert_eq!(ring.len(&c), 0);
        // In hand by a dead consumer: not waited for either.
        assert_eq!(ring.join(Some(Instant::now()), &c, &participants, &Yield), Ok(()));
    }

    /// Model `ct`..`cr4`: a writer that died after its claim leaves a free slot below `tail`
    /// and no live `Put(t)`: a get steps over the position, and the ring keeps its capacity.
    #[test]
    fn a_dead_producers_position_is_stepped_over_and_capacity_kept() {
        for cap in [1usize, 3] {
            let mem = HeapRing::new(cap);
            let dead = AtomicU64::new(0);
            let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
            let (mp, mq, mc) = (mem.mine(p.me), mem.mine(q.me), mem.mine(c.me));

            let ring = mem.ring();
            assert!(ring.claim_put_and_stop(mp, &p, &Yield));
            // While it lives, the get waits for it (FIFO).
            assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty));
            kill(&dead, 1);
            for k in 0..cap as u64 - 1 {
                ring.try_put(10 + k, mq, &q, &Yield).unwrap();
            }
            for k in 0..cap as u64 - 1 {
                assert_eq!(ring.try_get(mc, &c, &Yield), Ok(10 + k));
            }
            assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty));
            for k in 0..cap as u64 {
                ring.try_put(20 + k, mq, &q, &Yield).unwrap();
            }
            assert_eq!(ring.try_put(0, mq, &q, &Yield), Err(PutError::Full(0)));
            for k in 0..cap as u64 {
                assert_eq!(ring.try_get(mc, &c, &Yield), Ok(20 + k));
            }
        }
    }

    /// `try_get` looks past a free head slot on every call: while the writer that claimed the
    /// head position lives but stays mid-copy (stopped here), it answers Empty after its
    /// bounded wait, keeping that position and the item behind it; once the writer is dead,
    /// the next call steps over its position and takes the item behind it.
    #[test]
    fn try_get_outwaits_a_live_writer_and_steps_over_a_dead_one_at_once() {
        let mem = HeapRing::new(4);
        let dead = AtomicU64::new(0);
        let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let (mp, mq, mc) = (mem.mine(p.me), mem.mine(q.me), mem.mine(c.me));
        let ring = mem.ring();
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty));
        ring.try_put(7, mq, &q, &Yield).unwrap();
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(7));
        // Position 1 claimed by a producer that stops there; position 2 holds an item.
        assert!(ring.claim_put_and_stop(mp, &p, &Yield));
        ring.try_put(8, mq, &q, &Yield).unwrap();
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty), "the writer lives");
        assert_eq!(ring.len(&c), 2);
        kill(&dead, 1);
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(8), "the first call steps over");
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty));
    }

    /// Model `pf`..`pr`: a get that died after its claim leaves its slot FULL of the previous
    /// lap with `head` past it and no live `Get(h)`: the next put frees it (one item lost).
    #[test]
    fn a_dead_consumers_slot_is_freed_by_the_next_put() {
        let mem = HeapRing::new(2);
        let dead = AtomicU64::new(0);
        let (p, c, d) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let (mp, mc, md) = (mem.mine(p.me), mem.mine(c.me), mem.mine(d.me));

        let ring = mem.ring();
        ring.try_put(1, mp, &p, &Yield).unwrap();
        ring.try_put(2, mp, &p, &Yield).unwrap();
        assert!(ring.claim_get_and_stop(mc, &c, &Yield));
        assert_eq!(ring.try_get(md, &d, &Yield), Ok(2));
        // Position 0's reader lives: its slot is not free yet.
        assert_eq!(ring.try_put(3, mp, &p, &Yield), Err(PutError::Full(3)));
        kill(&dead, 2);
        ring.try_put(3, mp, &p, &Yield).unwrap();
        ring.try_put(4, mp, &p, &Yield).unwrap();
        assert_eq!(ring.try_get(md, &d, &Yield), Ok(3));
        assert_eq!(ring.try_get(md, &d, &Yield), Ok(4));
        assert_eq!(ring.len(&d), 0);
    }

    /// A [`Wait`] whose first `pause` (the first yield of a patient call waiting for a peer
    /// mid-copy) runs `then`: that peer finishing its copy while the call waits.
    struct FinishOnPause<'f> {
        then: std::cell::Cell<Option<Box<dyn FnOnce() + 'f>>>,
    }

    impl Wait for FinishOnPause<'_> {
        fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
            Yield.wait(word, expected, deadline);
        }
        fn wake_all(&self, _word: &AtomicU32) {}
        fn pause(&self, _round: u32, _deadline: Option<Instant>) {
            if let Some(then) = self.then.take() {
                then();
            }
        }
    }

    /// `try_get` waits for a live writer mid-copy at the head: when it publishes during the
    /// wait, the call takes its item (not Empty), and the item behind it comes next. The same
    /// for `try_put` and a live reader copying out of the slot it needs.
    #[test]
    #[cfg_attr(miri, ignore = "Miri's clock runs out the 20 µs bound before the first yield")]
    fn try_calls_wait_for_a_peer_that_finishes_its_copy_meanwhile() {
        let mem = HeapRing::new(2);
        let dead = AtomicU64::new(0);
        let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let (mp, mq, mc) = (mem.mine(p.me), mem.mine(q.me), mem.mine(c.me));
        let ring = mem.ring();
        let claim = ring.claim_put(mp, &p, &Yield, &mut false, Round::Patient).ok().unwrap();
        ring.try_put(8, mq, &q, &Yield).unwrap();
        let publish = FinishOnPause {
            then: std::cell::Cell::new(Some(Box::new(|| {
                // SAFETY: `i < capacity`, and we hold the claim of the position whose cell it is.
                let write = &mut |i| unsafe { mem.payload.write(i, &7) };
                assert_eq!(ring.finish_put(&claim, write, mp, &Yield), Ok(()));
            }))),
        };
        assert_eq!(ring.try_get(mc, &c, &publish), Ok(7));
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(8));

        // Full ring; a reader stays mid-copy of position 2 (slot 0, the next put's slot).
        ring.try_put(9, mq, &q, &Yield).unwrap();
        ring.try_put(10, mq, &q, &Yield).unwrap();
        let mut budget = ATTEMPTS;
        let taken = ring
            .claim_get(mc, &c, &Yield, &mut budget, Round::Patient)
            .ok()
            .unwrap();
        let release = FinishOnPause {
            then: std::cell::Cell::new(Some(Box::new(|| {
                // SAFETY: `i < capacity`, and we hold the claim of the position whose cell it is.
                let got = ring.finish_get(&taken, &mut |i| unsafe { mem.payload.read(i) }, mc, &Yield);
                assert_eq!(got, 9);
            }))),
        };
        assert_eq!(ring.try_put(11, mq, &q, &release), Ok(()));
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(10));
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(11));
    }

    /// A live writer that takes its time is waited for: its position is never stepped over.
    #[test]
    fn a_slow_live_writer_is_waited_for_and_its_publish_never_lost() {
        let mem = HeapRing::new(2);
        let dead = AtomicU64::new(0);
        let (p, c) = (who(1, &dead), who(2, &dead));
        let (mp, mc) = (mem.mine(p.me), mem.mine(c.me));

        let ring = mem.ring();
        let claim = ring.claim_put(mp, &p, &Yield, &mut false, Round::Patient).ok().unwrap();
        for _ in 0..3 {
            assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty));
        }
        assert_eq!(
            // SAFETY: `i < capacity`, and we hold the claim of the position whose cell it is.
            ring.finish_put(&claim, &mut |i| unsafe { mem.payload.write(i, &7) }, mp, &Yield),
            Ok(())
        );
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(7));
    }

    /// A writer declared dead (a misjudged liveness) whose position was stepped over gets
    /// `Lost` back; the item is not delivered.
    #[test]
    fn a_stepped_over_put_is_handed_back_as_lost() {
        let mem = HeapRing::<u64>::new(2);
        let dead = AtomicU64::new(0);
        let (p, c) = (who(1, &dead), who(2, &dead));
        let (mp, mc) = (mem.mine(p.me), mem.mine(c.me));

        let ring = mem.ring();
        let claim = ring.claim_put(mp, &p, &Yield, &mut false, Round::Patient).ok().unwrap();
        kill(&dead, 1);
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty));
        assert_eq!(mem.control.head.0.load(SC), 1, "stepped over");
        dead.store(0, SC);
        assert_eq!(ring.finish_put(&claim, &mut |_| {}, mp, &Yield), Err(PutFail::Lost));
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetError::Empty));
    }

    /// Payload storage made of atomics, so that tests with deliberately broken protocols
    /// (scribbled words) race on nothing but atomics.
    struct AtomicPayload(Box<[AtomicU64]>);

    // SAFETY: bounds-checked (a panic, never out of bounds), and every access is atomic.
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

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// A word near the ring's live range or anything at all.
        fn word(&mut self, cap: u64) -> u64 {
            match self.next() % 3 {
                0 => self.next(),
                1 => self.next() % (4 * cap + 8),
                _ => SlotWord::encode((self.next() % 8) as u32, (self.next() % 4) as u32),
            }
        }
    }

    fn scribble(rng: &mut XorShift, control: &RingControl, slots: &[Slot], records: &[ClaimRecord], cap: u64) {
        for w in [&control.tail.0, &control.head.0] {
            if rng.next() % 2 == 0 {
                w.store(rng.word(cap), SC);
            }
        }
        if rng.next() % 4 == 0 {
            control.closed.0.store(rng.next() as u32 % 3, SC);
        }
        if rng.next() % 4 == 0 {
            control.records_used.0.store(rng.next() as u32, SC);
        }
        for ec in [&control.not_empty.0, &control.not_full.0, &control.tasks.0] {
            ec.sleepers.store(rng.next() as u32 % 3, SC);
        }
        for s in slots {
            if rng.next() % 2 == 0 {
                s.word.store(rng.word(cap), SC);
            }
        }
        for r in records {
            if rng.next() % 4 == 0 {
                r.claim.store(rng.word(cap), SC);
                r.taken.store(rng.next() % 4, SC);
            }
            if rng.next() % 8 == 0 {
                r.bind(Owner((rng.next() % 8) as u32));
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
            let records: Box<[ClaimRecord]> = (0..4).map(|_| ClaimRecord::new()).collect();
            let payload = AtomicPayload((0..cap).map(|_| AtomicU64::new(0)).collect());
            let ring = Ring::new(&control, &slots, &records, &payload).unwrap();
            dead.store(rng.next() & 0b1110, SC);
            let me = who(1 + round as u32 % 3, &dead);
            let mine = ClaimRecord::new();
            let in_hand = AtomicU64::new(rng.next() % 3);
            let soon = Some(Instant::now() + Duration::from_micros(200));
            for _ in 0..4 {
                scribble(&mut rng, &control, &slots, &records, cap as u64);
                let _ = ring.try_put(round as u64, &mine, &me, &Yield);
                let _ = ring.try_get(&mine, &me, &Yield);
                assert!(ring.len(&me) <= cap);
                let _ = ring.is_full(&me);
                let _ = ring.join_ready(&me, &no_participants);
                let _ = ring.task_done(&in_hand, me.me, &Yield);
                let _ = ring.put(1, soon, &mine, &me, &Yield);
                let _ = ring.get(soon, &mine, &me, &Yield);
                let _ = ring.join(soon, &me, &no_participants, &Yield);
                let _ = ring.wait_readable(soon, &me, &Yield);
            }
        }
    }

    #[test]
    fn a_peer_scribbling_while_threads_work_causes_no_ub_and_no_hang() {
        let cap = 4;
        let control = RingControl::new();
        let slots: Box<[Slot]> = (0..cap).map(|_| Slot::new()).collect();
        let records: Box<[ClaimRecord]> = (0..4).map(|_| ClaimRecord::new()).collect();
        let payload = AtomicPayload((0..cap).map(|_| AtomicU64::new(0)).collect());
        let ring = Ring::new(&control, &slots, &records, &payload).unwrap();
        let dead = AtomicU64::new(0);
        let ops = if cfg!(miri) { 30 } else { 3_000 };
        std::thread::scope(|s| {
            for i in 0..2u32 {
                let (ring, dead, control, records) = (&ring, &dead, &control, &records);
                s.spawn(move || {
                    let me = who(i + 1, dead);
                    let mine = claim_word(control, records, me.me);

                    for n in 0..ops {
                        let soon = Some(Instant::now() + Duration::from_micros(100));
                        let _ = ring.put(n, soon, mine, &me, &Yield);
                        let _ = ring.get(soon, mine, &me, &Yield);
                        let _ = ring.len(&me);
                    }
                });
            }
            let mut rng = XorShift(42);
            for _ in 0..ops / 10 {
                scribble(&mut rng, &control, &slots, &records, cap as u64);
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
                    let (ring, dead, park, hand, mem) = (&ring, &dead, &park, &hands[c], &mem);
                    s.spawn(move || {
                        let me = who(10 + c as u32, dead);
                        let mine = mem.mine(me.me);
                        let mut got = Vec::new();
                        loop {
                            match ring.get(deadline(), mine, &me, park) {
                                Ok(v) => {
                                    got.push(v);
                                    ring.task_done(hand, me.me, park).unwrap();
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
                    let (ring, dead, park, mem) = (&ring, &dead, &park, &mem);
                    s.spawn(move || {
                        let me = who(1 + p as u32, dead);
                        let mine = mem.mine(me.me);
                        for k in 0..per_producer {
                            ring.put((p << 32) | k, deadline(), mine, &me, park).unwrap();
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
        let w = Arc::new(World {
            mem: HeapRing::new(capacity),
            dead: AtomicU64::new(0),
            hands: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            flag: AtomicU32::new(0),
            futex: Futex {
                lock: Mutex::new(()),
                cv: Condvar::new(),
            },
        });
        for i in 1..=3 {
            w.mem.records[i as usize - 1].bind(Owner::new(i, 1));
        }
        w.mem.control.records_used.0.store(3, SC);
        w
    }

    impl World {
        fn who(&self, index: u32) -> Oracle<'_> {
            Oracle {
                me: Owner::new(index, 1),
                dead: &self.dead,
            }
        }

        /// Participant `index`'s (1 to 3) claim record, record `index - 1` (bound before the
        /// threads start, so that scans read three records: each load is a branch for loom).
        fn mine(&self, index: u32) -> &ClaimRecord {
            &self.mem.records[index as usize - 1]
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
                    thread::spawn(move || {
                        w.mem
                            .ring()
                            .put(v, None, w.mine(v as u32), &w.who(v as u32), &w.futex)
                            .unwrap()
                    })
                })
                .collect();
            let ring = w.mem.ring();
            let me = w.who(3);
            let a = ring.get(None, w.mine(3), &me, &w.futex).unwrap();
            let b = ring.get(None, w.mine(3), &me, &w.futex).unwrap();
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
                        w.mem.ring().get(None, w.mine(2 + c), &me, &w.futex).unwrap()
                    })
                })
                .collect();
            let ring = w.mem.ring();
            let me = w.who(1);
            ring.put(1, None, w.mine(1), &me, &w.futex).unwrap();
            ring.put(2, None, w.mine(1), &me, &w.futex).unwrap();
            let got: Vec<u64> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            assert!(got == [1, 2] || got == [2, 1], "{got:?}");
            assert_eq!(ring.len(&me), 0);
        });
    }

    /// The producer is reported dead while it is in fact still running (liveness misjudged,
    /// as only a peer scribbling on the participant table can cause): a get may step over
    /// its position while it writes, and the publish is a guarded store. What must hold even
    /// then: no panic, no data race on the payload cell (loom checks every access), every
    /// call returns, and nothing but the one item is ever delivered, at most once.
    #[test]
    fn publish_races_step_over() {
        check(3, || {
            let w = world(1);
            w.dead.store(1 << 1, SC);
            let producer = {
                let w = w.clone();
                thread::spawn(move || w.mem.ring().try_put(7, w.mine(1), &w.who(1), &w.futex))
            };
            let consumer = {
                let w = w.clone();
                thread::spawn(move || {
                    let (ring, me) = (w.mem.ring(), w.who(2));
                    [
                        ring.try_get(w.mine(2), &me, &w.futex),
                        ring.try_get(w.mine(2), &me, &w.futex),
                    ]
                })
            };
            let put = producer.join().unwrap();
            let mut delivered: Vec<u64> = consumer.join().unwrap().into_iter().filter_map(Result::ok).collect();
            let (ring, me) = (w.mem.ring(), w.who(3));
            delivered.extend(ring.try_get(w.mine(3), &me, &w.futex).ok());
            assert!(matches!(put, Ok(()) | Err(PutError::Lost(7))), "{put:?}");
            assert!(delivered.iter().all(|&x| x == 7), "{delivered:?}");
            assert!(delivered.len() <= 1, "{delivered:?}");
            if put.is_err() {
                assert_eq!(delivered, [], "a Lost item is not delivered");
            }
            let _ = ring.try_put(8, w.mine(3), &me, &w.futex);
            let _ = ring.try_get(w.mine(3), &me, &w.futex);
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
                thread::spawn(move || w.mem.ring().put(1, None, w.mine(1), &w.who(1), &w.futex))
            };
            let closer = {
                let w = w.clone();
                thread::spawn(move || w.mem.ring().close(&w.futex))
            };
            let (ring, me) = (w.mem.ring(), w.who(2));
            let first = ring.get(None, w.mine(2), &me, &w.futex);
            let put = producer.join().unwrap();
            closer.join().unwrap();
            match put {
                Ok(()) => {
                    assert_eq!(first, Ok(1));
                    assert_eq!(ring.get(None, w.mine(2), &me, &w.futex), Err(GetError::Closed));
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
            ring.put(5, None, w.mine(1), &me, &w.futex).unwrap();
            let consumer = {
                let w = w.clone();
                thread::spawn(move || {
                    let ring = w.mem.ring();
                    assert_eq!(ring.get(None, w.mine(2), &w.who(2), &w.futex), Ok(5));
                    w.flag.store(1, Ordering::Relaxed); // "processed"
                    ring.task_done(&w.hands[0], Owner::new(2, 1), &w.futex).unwrap();
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
            assert_eq!(
                ring.task_done(&w.hands[0], Owner::new(2, 1), &w.futex),
                Err(TaskDoneError)
            );
        });
    }
}
