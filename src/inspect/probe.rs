//! Reading one segment for a report: read-only descriptor and mapping, loads only.

use super::{
    Details, EndReport, Kind, KindState, LockReport, LockStatus, ParticipantReport, PermitReport, RingReport,
    SegmentReport, Status,
};
use crate::message::RingParts;
use crate::os;
use crate::primitive::{AtomicU64, Ordering};
use crate::raw::barrier::{BarrierState, Party};
use crate::raw::claims::{ClaimRecord, records_for};
use crate::raw::condvar::CondState;
use crate::raw::event::EventState;
use crate::raw::lock::LockState;
use crate::raw::ring::{RawRing, RingControl, Slot};
use crate::raw::semaphore::{Holding, SemState};
use crate::raw::{Liveness, MAX_PARTICIPANTS, Owner};
use crate::segment::header::{self, HEADER_SIZE, Header, INIT_ABANDONED, INIT_READY, LAYOUT_VERSION, Layout, MAGIC};
use crate::segment::name::OS_PREFIX;
use crate::segment::open::{init_state, read_header};
use crate::segment::participants::{self, INIT_BEACON, Participant};
use crate::sync::RECORDS_OFFSET;
use std::os::fd::{AsFd, BorrowedFd};

/// The report of the object `os_name` (one of ours by its name).
pub(super) fn probe(os_name: &str) -> SegmentReport {
    let name = os_name.strip_prefix(OS_PREFIX).unwrap_or(os_name).to_owned();
    let mut report = SegmentReport {
        name,
        os_name: os_name.to_owned(),
        size_bytes: 0,
        owner_uid: 0,
        mode: 0,
        changed_unix: 0,
        status: Status::Foreign,
    };
    let unreadable = |what: &str, e: std::io::Error| Status::Unreadable {
        what: format!("{what}: {e}"),
    };
    let fd = match os::shm_open_readonly(os_name) {
        Ok(fd) => fd,
        Err(e) => {
            report.status = unreadable("open", e);
            return report;
        }
    };
    let info = match os::fstat(fd.as_fd()) {
        Ok(info) => info,
        Err(e) => {
            report.status = unreadable("fstat", e);
            return report;
        }
    };
    report.size_bytes = info.size;
    report.owner_uid = info.uid;
    report.mode = info.mode;
    report.changed_unix = info.changed;
    report.status = status_of(fd.as_fd(), info.size, info.is_regular);
    report
}

/// The status of the object behind `fd`, of `size` bytes.
pub(super) fn status_of(fd: BorrowedFd<'_>, size: u64, is_regular: bool) -> Status {
    if is_regular {
        status(fd, size)
    } else {
        Status::Damaged {
            what: "not a regular file".into(),
        }
    }
}

/// Whether a creator holds the initialisation beacon (is initialising the object now).
fn initializing(fd: BorrowedFd<'_>) -> bool {
    // An error is answered "yes": the report then errs on the side of "in use".
    os::beacon_is_held(fd, INIT_BEACON).unwrap_or(true)
}

fn status(fd: BorrowedFd<'_>, size: u64) -> Status {
    if size < HEADER_SIZE {
        // Not sized yet (its creator is at work, or died before sizing it).
        return if initializing(fd) {
            Status::Initializing
        } else {
            Status::Abandoned
        };
    }
    let hmap = match os::map_readonly(fd, HEADER_SIZE as usize) {
        Ok(m) => m,
        Err(e) => {
            return Status::Unreadable {
                what: format!("mmap: {e}"),
            };
        }
    };
    // SAFETY: HEADER_SIZE bytes are mapped (read-only: only loaded) while `hmap` lives.
    let state = unsafe { init_state(hmap.as_mut_ptr()) }.load(Ordering::Acquire);
    // SAFETY: as above; the copy is byte-wise atomic, so a peer writing meanwhile gives
    // garbage to validate, never a data race.
    let h = unsafe { read_header(hmap.as_mut_ptr()) };
    drop(hmap);
    if h.magic != MAGIC {
        return Status::Foreign;
    }
    match state {
        INIT_READY => {}
        INIT_ABANDONED => return Status::Abandoned,
        _ if initializing(fd) => return Status::Initializing,
        _ => return Status::Abandoned,
    }
    if h.version != LAYOUT_VERSION {
        return Status::OtherVersion { version: h.version };
    }
    match read_ready(fd, size, &h) {
        Ok(details) => Status::Ready(Box::new(details)),
        Err(what) => Status::Damaged { what },
    }
}

/// The kind named by a header's `kind` word.
fn kind_of(h: &Header) -> Result<Kind, String> {
    Ok(match h.kind {
        1 => Kind::Value,
        2 => Kind::Array,
        3 => Kind::Queue,
        4 => Kind::MessageQueue,
        5 => Kind::Pipe,
        6 => Kind::AtomicArray,
        7 => Kind::Bytes,
        8 => Kind::Lock,
        9 => Kind::Semaphore,
        10 => Kind::BoundedSemaphore,
        11 => Kind::Event,
        12 => Kind::Condition,
        13 => Kind::Barrier,
        14 => Kind::RLock,
        k => return Err(format!("unknown kind {k}")),
    })
}

/// The body size of a segment of `kind` for its header's `(count, elem_size, participants)`
/// and `align`: the same functions the handles validate with.
fn body_size(kind: Kind, align: u64, count: u64, size: u64, participants: u32) -> Option<u64> {
    match kind {
        Kind::Value | Kind::Lock | Kind::RLock if count == 1 => crate::locked::body_size_of(size, align, count),
        Kind::Array if count >= 1 => crate::locked::body_size_of(size, align, count),
        Kind::Value | Kind::Array | Kind::Lock | Kind::RLock => None,
        Kind::Queue => crate::queue::body_size_of(size, align, count, participants),
        Kind::MessageQueue => crate::message::ByteQueue::body_size(count, size, participants),
        Kind::Pipe => crate::pipe::body_size(count, size, participants),
        Kind::AtomicArray => crate::atomic_array::body_size_of(size, count),
        Kind::Bytes => crate::shared_bytes::body_size_of(size, count),
        Kind::Semaphore => crate::sync::semaphore::shape(header::Kind::Semaphore).body_size(count, participants),
        Kind::BoundedSemaphore => {
            crate::sync::semaphore::shape(header::Kind::BoundedSemaphore).body_size(count, participants)
        }
        Kind::Event => crate::sync::event::SHAPE.body_size(count, participants),
        Kind::Condition => crate::sync::condition::SHAPE.body_size(count, participants),
        Kind::Barrier => crate::sync::barrier::SHAPE.body_size(count, participants),
    }
}

/// Liveness as an outside observer sees it: through our own descriptor, which holds no
/// beacon, so "held by somebody else" is "held by the participant's process". `me` is a
/// token no participant ever has (generation 0).
struct Observer<'a> {
    table: &'a [Participant],
    fd: BorrowedFd<'a>,
}

impl Liveness for Observer<'_> {
    fn me(&self) -> Owner {
        Owner(0)
    }

    fn is_alive(&self, owner: Owner) -> bool {
        owner.0 != 0 && participants::is_alive_cached(self.table, &self.fd, Owner(0), owner, None)
    }
}

/// The mapped, validated segment: base address and layout.
struct View<'a> {
    base: *const u8,
    layout: Layout,
    h: &'a Header,
}

impl View<'_> {
    /// A reference to a `T` (all atomics) at `offset` from the body start.
    ///
    /// # Safety
    /// `offset + size_of::<T>()` lies within the body, aligned for `T`, and the mapping
    /// outlives `'b`. `T` must be valid for any bytes and only loaded from (the mapping is
    /// read-only).
    unsafe fn at<'b, T>(&self, offset: u64) -> &'b T {
        // SAFETY: the caller's contract.
        unsafe { &*self.base.add((self.layout.body_offset + offset) as usize).cast::<T>() }
    }

    /// `n` consecutive `T`s from `offset` in the body (same contract as [`View::at`]).
    unsafe fn slice<'b, T>(&self, offset: u64, n: usize) -> &'b [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(self.at::<T>(offset), n) }
    }
}

fn read_ready(fd: BorrowedFd<'_>, size: u64, h: &Header) -> Result<Details, String> {
    header::check_common(h).map_err(|e| e.to_string())?;
    let kind = kind_of(h)?;
    let align = u64::from(h.elem_align);
    let layout = header::layout_of(h, size, |count, elem, participants| {
        body_size(kind, align, count, elem, participants)
    })
    .map_err(|e| e.to_string())?;
    let len = usize::try_from(layout.total_size).map_err(|_| "too large to map".to_string())?;
    let map = os::map_readonly(fd, len).map_err(|e| format!("mmap: {e}"))?;
    let view = View {
        base: map.as_ptr(),
        layout,
        h,
    };
    // SAFETY: `layout_of` checked `participants * PARTICIPANT_SIZE` bytes from
    // `participants_offset` against the mapped size (`total_size`); records are all atomics.
    let table: &[Participant] = unsafe {
        std::slice::from_raw_parts(
            view.base.add(layout.participants_offset as usize).cast(),
            h.participants.min(MAX_PARTICIPANTS) as usize,
        )
    };
    let observer = Observer { table, fd };
    let mut parts: Vec<ParticipantReport> = table
        .iter()
        .enumerate()
        .filter_map(|(i, rec)| {
            let owner = rec.occupant(i as u32)?;
            Some(ParticipantReport {
                index: i as u32,
                pid: rec.pid.load(Ordering::Relaxed),
                alive: observer.is_alive(owner),
                holds_lock: false,
                in_hand: None,
            })
        })
        .collect();
    let state = kind_state(&view, kind, &observer, &mut parts)?;
    let name_len = (h.type_name_len as usize).min(h.type_name.len());
    let details = Details {
        kind,
        type_name: String::from_utf8_lossy(&h.type_name[..name_len]).into_owned(),
        elem_size: h.elem_size,
        elem_align: h.elem_align,
        schema_id: h.schema_id,
        count: h.count,
        layout_version: h.version,
        creator_pid: h.creator_pid,
        removed_with_last_user: h.flags & header::FLAG_LAST_USER_REMOVES != 0,
        participant_slots: h.participants,
        participants: parts,
        state,
    };
    drop(map);
    Ok(details)
}

fn kind_state(
    view: &View<'_>,
    kind: Kind,
    observer: &Observer<'_>,
    parts: &mut [ParticipantReport],
) -> Result<KindState, String> {
    let h = view.h;
    Ok(match kind {
        Kind::Value | Kind::Array | Kind::Lock | Kind::RLock => {
            // SAFETY: `locked`'s body starts with the 16-byte lock (its own line), inside the
            // body whose size `layout_of` checked; `LockState` is all atomics.
            let lock = lock_report(unsafe { view.at::<LockState>(0) }, observer, parts);
            match kind {
                Kind::Value => KindState::Value { lock },
                Kind::Array => KindState::Array { lock },
                Kind::RLock => KindState::RLock { lock },
                _ => KindState::Lock { lock },
            }
        }
        Kind::Semaphore | Kind::BoundedSemaphore => {
            let permits = permit_report(view, observer, parts);
            if kind == Kind::Semaphore {
                KindState::Semaphore { permits }
            } else {
                KindState::BoundedSemaphore { permits }
            }
        }
        Kind::Event => {
            // SAFETY: the body (at least `RECORDS_OFFSET` bytes, checked by `layout_of` with
            // the kind's `Shape`) starts with the 8-byte state; `EventState` is all atomics.
            let event = unsafe { view.at::<EventState>(0) };
            KindState::Event {
                set: event.is_set(),
                waiters: event.waiters_marked(),
            }
        }
        Kind::Condition => KindState::Condition {
            // SAFETY: as for the event: the 8-byte `CondState` (all atomics) at the body start.
            waiters: unsafe { view.at::<CondState>(0) }.peek().1,
        },
        Kind::Barrier => barrier_report(view, observer),
        Kind::Queue => {
            let (slots, stride) = crate::queue::slot_words_of(h.elem_size, u64::from(h.elem_align), h.participants)
                .ok_or("queue layout out of range")?;
            let parts_q = RingParts {
                control: 0,
                records: size_of::<RingControl>() as u64,
                nrecords: records_for(h.participants),
                slots,
                slot_stride: stride,
                cap: h.count,
            };
            KindState::Queue {
                ring: ring_report(view, &parts_q, observer, Some(parts))?,
            }
        }
        Kind::MessageQueue => {
            let layout = crate::message::RingLayout::new(0, h.count, h.elem_size, h.participants)
                .ok_or("message ring layout out of range")?;
            KindState::MessageQueue {
                ring: ring_report(view, &layout.parts(), observer, Some(parts))?,
            }
        }
        Kind::AtomicArray => KindState::AtomicArray { len: h.count },
        Kind::Bytes => KindState::Bytes { size: h.count },
        Kind::Pipe => {
            let (a, b) =
                crate::pipe::layouts(h.count, h.elem_size, h.participants).ok_or("pipe layout out of range")?;
            // SAFETY: the body starts with the pipe's 128 bytes of end words, 8-aligned.
            let word = |i: usize| unsafe { view.at::<AtomicU64>(crate::pipe::END_WORDS[i]) }.load(Ordering::Acquire);
            let end = |w: u64| {
                let owner = Owner(w as u32);
                let connected = w & crate::pipe::CONNECTED != 0;
                let dropped = w & crate::pipe::GONE != 0;
                EndReport {
                    connected,
                    dropped,
                    pid: pid_of(observer.table, owner),
                    alive: connected && !dropped && observer.is_alive(owner),
                }
            };
            KindState::Pipe {
                one_way: word(2) & crate::pipe::ONE_WAY != 0,
                ends: [end(word(0)), end(word(1))],
                rings: [
                    ring_report(view, &a.parts(), observer, None)?,
                    ring_report(view, &b.parts(), observer, None)?,
                ],
            }
        }
    })
}

/// The primitive kinds' records (`sync::Prim::records`): one `R` per participant record
/// from `RECORDS_OFFSET` in the body.
///
/// # Safety
/// The segment's body size was checked by `layout_of` against the kind's `Shape`, whose
/// `rec_size` is `size_of::<R>()`; `R` is all atomics (valid for any bytes, only loaded).
unsafe fn prim_records<'b, R>(view: &View<'_>) -> &'b [R] {
    let n = view.h.participants.min(MAX_PARTICIPANTS) as usize;
    debug_assert!(RECORDS_OFFSET + (size_of::<R>() * n) as u64 <= view.layout.body_size);
    // SAFETY: `Shape::body_size` is `RECORDS_OFFSET + rec_size * participants`, so `n`
    // records fit in the body from `RECORDS_OFFSET` (a multiple of their alignment, the body
    // being 128-aligned): the caller's contract.
    unsafe { view.slice::<R>(RECORDS_OFFSET, n) }
}

/// A semaphore's permits, with each participant's share added to its `in_hand`.
fn permit_report(view: &View<'_>, observer: &Observer<'_>, parts: &mut [ParticipantReport]) -> PermitReport {
    // SAFETY: the 16-byte `SemState` (all atomics) at the body start, and `Holding` records
    // (16 bytes, the semaphore shape's `rec_size`) from `RECORDS_OFFSET`, in a body whose
    // size `layout_of` checked against that shape.
    let (state, records) = unsafe { (view.at::<SemState>(0), prim_records::<Holding>(view)) };
    let (mut held, mut held_by_dead) = (0u64, 0u64);
    for (i, rec) in records.iter().enumerate() {
        let (n, owner) = rec.peek();
        held += u64::from(n);
        // A record naming no handle, or a dead one: what the next waiter reclaims.
        if !owner.is_some_and(|o| observer.is_alive(o)) {
            held_by_dead += u64::from(n);
        }
        // The participant's share: the record names the handle registered in that slot.
        let slot = observer.table.get(i).and_then(|p| p.occupant(i as u32));
        if let Some(p) = parts.iter_mut().find(|p| p.index == i as u32) {
            let mine = owner.is_some() && owner == slot;
            p.in_hand = Some(if mine { u64::from(n) } else { 0 });
        }
    }
    PermitReport {
        available: state.available(),
        initial: u32::try_from(view.h.count).unwrap_or(u32::MAX),
        held,
        held_by_dead,
    }
}

fn barrier_report(view: &View<'_>, observer: &Observer<'_>) -> KindState {
    // SAFETY: the 16-byte `BarrierState` (all atomics) at the body start, and `Party` records
    // (8 bytes, the barrier shape's `rec_size`) from `RECORDS_OFFSET`, in a body whose size
    // `layout_of` checked against that shape.
    let (state, records) = unsafe { (view.at::<BarrierState>(0), prim_records::<Party>(view)) };
    let peek = state.peek();
    let dead_parties = (0..records.len())
        .filter_map(|i| BarrierState::peek_party(records, i))
        .filter(|&(owner, arrived_in)| arrived_in != Some(peek.generation) && !observer.is_alive(owner))
        .count() as u32;
    KindState::Barrier {
        parties: u32::try_from(view.h.count).unwrap_or(u32::MAX),
        arrived: peek.arrived,
        generation: peek.generation,
        broken: peek.broken,
        dead_parties,
    }
}

/// The pid in `owner`'s participant record, while the record still names that owner.
fn pid_of(table: &[Participant], owner: Owner) -> Option<u32> {
    let i = owner.index();
    let rec = table.get(i as usize)?;
    (owner.0 != 0 && rec.occupant(i) == Some(owner)).then(|| rec.pid.load(Ordering::Relaxed))
}

fn lock_report(lock: &LockState, observer: &Observer<'_>, parts: &mut [ParticipantReport]) -> LockReport {
    let peek = lock.peek();
    let state = if peek.unrecoverable {
        LockStatus::Unrecoverable
    } else if let Some(owner) = peek.owner {
        if let Some(p) = parts.iter_mut().find(|p| p.index == owner.index()) {
            p.holds_lock = pid_of(observer.table, owner).is_some();
        }
        LockStatus::Held {
            index: owner.index(),
            pid: pid_of(observer.table, owner),
            alive: observer.is_alive(owner),
            owner_died: peek.owner_died,
        }
    } else {
        LockStatus::Free
    };
    LockReport {
        state,
        waiters: peek.waiters,
    }
}

/// The census of the ring at `p` (offsets from the body start, checked against the body's
/// size by `layout_of` through the kind's body size); with `parts`, each live participant's
/// items in hand, added to theirs and summed into the report.
fn ring_report(
    view: &View<'_>,
    p: &RingParts,
    observer: &Observer<'_>,
    parts: Option<&mut [ParticipantReport]>,
) -> Result<RingReport, String> {
    let words = usize::try_from(p.cap.checked_mul(p.slot_stride).ok_or("ring size overflows")?)
        .map_err(|_| "ring size overflows")?;
    let end = p.slots.checked_add(words as u64 * 8).ok_or("ring size overflows")?;
    let records_end = p.records + p.nrecords * size_of::<ClaimRecord>() as u64;
    if end > view.layout.body_size || records_end > view.layout.body_size {
        return Err("ring outside the body".into());
    }
    // SAFETY: control block, records and slot words lie in the body (checked just above and
    // by `layout_of`), aligned (the layouts align them to 128 and 8); all are atomics, valid
    // for any bytes; the ring view below only loads (`census`, `taken_by`).
    let (control, records, slots) = unsafe {
        (
            view.at::<RingControl>(p.control),
            view.slice::<ClaimRecord>(p.records, p.nrecords as usize),
            view.slice::<Slot>(p.slots, words),
        )
    };
    let ring = RawRing::new_strided(control, slots, p.slot_stride as usize, records).ok_or("ring has no slot")?;
    let census = ring.census(observer);
    let mut in_hand = 0u64;
    if let Some(parts) = parts {
        for part in parts.iter_mut() {
            let Some(rec) = observer.table.get(part.index as usize) else {
                continue;
            };
            let Some(owner) = rec.occupant(part.index) else {
                continue;
            };
            let done = rec.tasks_done.load(Ordering::Acquire);
            // Transiently negative (a `task_done` seen before its get): none in hand.
            let n = ring.taken_by(owner).wrapping_sub(done);
            let n = if (n as i64) < 0 { 0 } else { n };
            part.in_hand = Some(part.in_hand.unwrap_or(0) + n);
            if part.alive {
                in_hand += n;
            }
        }
    }
    Ok(RingReport {
        capacity: census.capacity as u64,
        items: census.items as u64,
        writing: census.writing as u64,
        abandoned: census.abandoned as u64,
        taken_by_dead: census.taken_by_dead as u64,
        closed: census.closed,
        in_hand,
        head: census.head,
        tail: census.tail,
    })
}
