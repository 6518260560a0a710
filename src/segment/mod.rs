//! Named segments: create / open / open_or_create, header validation, the mapping, and the
//! participant registration that gives every handle a liveness-checked identity.
//!
//! This file holds the open handle ([`Segment`]: its accessors, the liveness
//! and wait answers it gives `raw`, and what dropping it does); `open.rs` creates and opens
//! segments; `backing.rs` says what holds a segment's bytes.

mod backing;
#[cfg(feature = "tokio")]
pub(crate) mod doorbell;
pub(crate) mod header;
#[cfg(feature = "testing")]
pub(crate) mod heap;
pub(crate) mod name;
pub(crate) mod open;
pub(crate) mod participants;

use crate::error::OpenError;
use crate::options::Options;
use crate::os;
use crate::primitive::AtomicU32;
use crate::raw::{Liveness, Owner, Wait, expired};
use backing::Backing;
use header::{Layout, TypeDesc};
use open::{map_missing, unlink_if_same};
use participants::Participant;
use std::time::Instant;

/// Removes the segment `name` (its OS name), whoever created it. Handles that have it open
/// keep working; later `open`s fail with `NotFound`.
///
/// # Errors
/// `InvalidName`, `NotFound`, or `Io`.
pub fn remove(name: &str) -> Result<(), OpenError> {
    let os_name = name::os_name(name)?;
    os::shm_unlink(&os_name).map_err(|e| map_missing(e, name, "shm_unlink"))
}

/// Body size for an element count and element size; `None` if either is out of range.
pub(crate) type BodySize = fn(u64, u64, u32) -> Option<u64>;

/// What the kind-specific code tells the segment layer.
pub(crate) struct Spec<'a> {
    pub(crate) desc: TypeDesc,
    /// Body size for an element count and element size (both from the header), `None` if
    /// either is out of range.
    pub(crate) body_size: &'a dyn Fn(u64, u64, u32) -> Option<u64>,
}

/// An open segment: its memory (mapping and descriptor), validated layout, and our
/// participant record.
pub(crate) struct Segment {
    /// Start of the memory: the mapping's address (or the heap backing's allocation). Kept
    /// here so that `body()` is one add, whatever the backing.
    base: *mut u8,
    backing: Backing,
    layout: Layout,
    count: u64,
    /// Element size from the validated header (the cell size of a message queue).
    elem_size: u64,
    participants: u32,
    me: Owner,
    name: String,
    os_name: String,
    /// Unlink the name on drop (we created it and were not told to persist).
    unlink_on_drop: bool,
    /// The header says the name goes away with its last user: every handle tries to remove
    /// it when it leaves (`models/leave_model.py`).
    last_user_removes: bool,
    inode: u64,
    /// Recent positive liveness answers (see [`participants::AliveCache`]).
    alive: participants::AliveCache,
    /// This handle's async doorbell, bound at its first async wait.
    #[cfg(feature = "tokio")]
    doorbell: std::sync::OnceLock<std::io::Result<doorbell::Doorbell>>,
}

/// How many registration scans in a row must find every participant record held, with no
/// remover at work after any of them, before an open reports `TooManyParticipants`.
const FULL_SCANS: u32 = 8;

// SAFETY: the mapping is shared memory accessed only through atomics and byte-wise atomic
// copies; the descriptor is a plain fd. Nothing is tied to the creating thread.
unsafe impl Send for Segment {}
// SAFETY: as above; every access through `&Segment` is an atomic operation.
unsafe impl Sync for Segment {}

impl Segment {
    /// Wraps memory whose header was validated into `layout`, and registers a participant.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        base: *mut u8,
        backing: Backing,
        layout: Layout,
        (count, elem_size): (u64, u64),
        participants: u32,
        name: &str,
        os_name: String,
        (inode, last_user_removes): (u64, bool),
        deadline: Option<Instant>,
    ) -> Result<Segment, OpenError> {
        crate::fault::install();
        let mut seg = Segment {
            base,
            backing,
            layout,
            count,
            elem_size,
            participants,
            me: Owner(0),
            name: name.to_owned(),
            os_name,
            unlink_on_drop: false,
            last_user_removes,
            inode,
            alive: participants::AliveCache::new(),
            #[cfg(feature = "tokio")]
            doorbell: std::sync::OnceLock::new(),
        };
        // Model `leave_model.py`, `register` .. `joined`: a remover holds every beacon while
        // it decides (the init beacon with them), so a registration that fails may mean
        // "being removed": once the name is gone, answer NotFound; while it is there and the
        // init beacon is held, try again (a remover holds them for microseconds, unless it
        // is descheduled) until `deadline`; otherwise, after `FULL_SCANS` such scans in a
        // row, every record is held by a live handle.
        let started = Instant::now();
        // Scans in a row that found every record held while no remover held the beacons.
        let mut full_scans = 0;
        let me = loop {
            let got = seg
                .backing
                .register(seg.participant_table())
                .map_err(|e| OpenError::io("fcntl(F_OFD_SETLK)", e))?;
            if let Some(me) = got {
                break me;
            }
            if !seg.backing.still_named(&seg.os_name, seg.inode) {
                return Err(OpenError::NotFound { name: seg.name.clone() });
            }
            if seg.backing.init_beacon_held() {
                full_scans = 0;
            } else {
                // A remover may have held every beacon for the whole scan and let go just
                // before this look: only a table that looks full on several scans in a row,
                // with no remover seen after any of them, is full.
                full_scans += 1;
                if full_scans >= FULL_SCANS {
                    return Err(OpenError::TooManyParticipants { max: participants });
                }
            }
            if expired(deadline) {
                return Err(OpenError::InitTimeout {
                    name: seg.name.clone(),
                    waited: started.elapsed(),
                });
            }
            os::sleep(std::time::Duration::from_micros(50));
        };
        seg.me = me;
        // `joined`: the name must still refer to the object we registered in. A remover
        // that held every beacon before our registration may have removed it since; then we
        // leave (dropping `seg` deregisters) and report the name as gone.
        if !seg.backing.still_named(&seg.os_name, seg.inode) {
            return Err(OpenError::NotFound { name: seg.name.clone() });
        }
        Ok(seg)
    }

    /// The participant table.
    pub(crate) fn participant_table(&self) -> &[Participant] {
        let p = self.base.wrapping_add(self.layout.participants_offset as usize);
        // SAFETY: `participants * PARTICIPANT_SIZE` bytes from `participants_offset` lie in
        // the mapping (validated layout), the offset is 8-aligned, and `Participant` is all
        // atomics, valid for any bytes and safe to share.
        unsafe { std::slice::from_raw_parts(p.cast::<Participant>(), self.participants as usize) }
    }

    /// Start of the kind-specific body (`body_size()` bytes, aligned to at least 64).
    #[inline]
    pub(crate) fn body(&self) -> *mut u8 {
        self.base.wrapping_add(self.layout.body_offset as usize)
    }

    /// Size of the body in bytes.
    #[allow(dead_code)]
    pub(crate) fn body_size(&self) -> u64 {
        self.layout.body_size
    }

    /// This handle's count of `task_done` calls, a word of its participant record that the
    /// queue kinds keep (its items in hand are what its claim records took less these, see
    /// `raw::claims`); other kinds leave it at 0.
    pub(crate) fn tasks_done(&self) -> &crate::primitive::AtomicU64 {
        &self.participant_table()[self.me.index() as usize].tasks_done
    }

    /// Participant count from the validated header.
    pub(crate) fn participant_count(&self) -> u32 {
        self.participants
    }

    /// Element count from the validated header.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Element size from the validated header.
    #[allow(dead_code)]
    pub(crate) fn elem_size(&self) -> u64 {
        self.elem_size
    }

    /// The user-visible name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Stop unlinking the name on drop.
    pub(crate) fn set_persist(&mut self) {
        self.unlink_on_drop = false;
    }

    /// Whether this handle will unlink the name when dropped.
    pub(crate) fn owns_name(&self) -> bool {
        self.unlink_on_drop
    }
}

impl Liveness for Segment {
    #[inline]
    fn me(&self) -> Owner {
        self.me
    }
    fn is_alive(&self, owner: Owner) -> bool {
        self.liveness(owner, false)
    }

    fn is_alive_recent(&self, owner: Owner) -> bool {
        self.liveness(owner, true)
    }
}

impl Segment {
    /// The beacon question about `owner`; `recent`: answered from [`Segment::alive`] when it
    /// holds a young positive answer (mapped backing only: tests on heap memory crash a
    /// participant and expect the next claim to see it).
    fn liveness(&self, owner: Owner, recent: bool) -> bool {
        let cache = recent.then_some(&self.alive);
        self.backing.is_alive(self.participant_table(), self.me, owner, cache)
    }
}

/// The waiter that suits the backing (`Backing`'s [`Wait`]). Called only to sleep and to
/// wake sleepers.
impl Wait for Segment {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        self.backing.wait(word, expected, deadline);
    }

    #[inline]
    fn wake_all(&self, word: &AtomicU32) {
        self.backing.wake_all(word);
        self.ring_doorbells();
    }

    #[inline]
    fn pause(&self, round: u32, deadline: Option<Instant>) {
        self.backing.pause(round, deadline);
    }

    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        self.backing.wake_one(word);
        self.ring_doorbells();
    }

    #[inline]
    fn wake_n(&self, word: &AtomicU32, n: u32) {
        self.backing.wake_n(word, n);
        self.ring_doorbells();
    }
}

/// Async waiting: the doorbells (`models/doorbell_model.py`). A waiter arms (its record's
/// armed count and the header's `async_waits`, both SeqCst) *before* it announces itself as
/// a sleeper in the primitive's own protocol, then re-checks, then awaits its doorbell. A
/// waker whose protocol finds a sleeper calls one of `Wait`'s wakes, which ring every armed
/// record's doorbell after the futex wake: whoever armed before announcing is seen here.
impl Segment {
    /// The live `async_waits` word of the header.
    #[inline]
    fn async_waits(&self) -> &crate::primitive::AtomicU64 {
        // SAFETY: the header is mapped at `base` (at least 256 bytes, 8-aligned), the word
        // at ASYNC_WAITS_OFFSET is 8-aligned and only ever accessed atomically.
        unsafe {
            &*self
                .base
                .wrapping_add(header::ASYNC_WAITS_OFFSET)
                .cast::<crate::primitive::AtomicU64>()
        }
    }

    /// Rings the doorbell of every record with async waits armed; one load when none is.
    #[inline]
    fn ring_doorbells(&self) {
        if self.async_waits().load(std::sync::atomic::Ordering::SeqCst) != 0 {
            self.ring_armed_doorbells();
        }
    }

    /// Rings every armed doorbell. A doorbell whose socket is gone belongs to a process that
    /// died with waits armed: its registration is reclaimed here (the record's word cleared
    /// if unchanged, its count taken off `async_waits`), so later wakes skip it.
    #[cold]
    fn ring_armed_doorbells(&self) {
        use std::sync::atomic::Ordering::{Relaxed, SeqCst};
        for rec in self.participant_table() {
            let d = rec.doorbell.load(SeqCst);
            if d >> 32 != 0
                && d as u32 != 0
                && !os::ring_doorbell(rec.pid.load(Relaxed), d as u32)
                && rec.doorbell.compare_exchange(d, 0, SeqCst, Relaxed).is_ok()
            {
                let armed = d >> 32;
                let _ = self
                    .async_waits()
                    .fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(armed)));
            }
        }
    }

    /// Arms one async wait of this handle, whose doorbell is `nonce`: names the doorbell in
    /// our record and counts the wait there and in the header. Undone by
    /// [`Segment::disarm`].
    #[cfg(feature = "tokio")]
    pub(crate) fn arm(&self, nonce: u32) {
        use std::sync::atomic::Ordering::SeqCst;
        if let Some(rec) = self.participant_table().get(self.me.index() as usize) {
            let _ = rec.doorbell.fetch_update(SeqCst, SeqCst, |d| {
                let armed = (d >> 32).saturating_add(1).min(u64::from(u32::MAX));
                Some(armed << 32 | u64::from(nonce))
            });
            self.async_waits().fetch_add(1, SeqCst);
        }
    }

    /// Undoes one [`Segment::arm`].
    #[cfg(feature = "tokio")]
    pub(crate) fn disarm(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if let Some(rec) = self.participant_table().get(self.me.index() as usize) {
            let _ = rec.doorbell.fetch_update(SeqCst, SeqCst, |d| {
                Some((d >> 32).saturating_sub(1) << 32 | (d & 0xFFFF_FFFF))
            });
            let _ = self
                .async_waits()
                .fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(1)));
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.me == Owner(0) {
            return; // never registered (`finish` failed): nothing to give back or remove
        }
        self.backing.deregister(|| self.participant_table(), self.me);
        if self.unlink_on_drop {
            // Only if the name still refers to our object (someone may have removed it and
            // created a new one under the same name).
            unlink_if_same(&self.os_name, self.inode);
        } else if self.last_user_removes {
            // `leave_lock` .. `leave_unlink`: the last one out removes the name.
            self.backing.remove_if_unheld(&self.os_name, self.inode);
        }
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("count", &self.count)
            .field("me", &self.me)
            .finish()
    }
}
