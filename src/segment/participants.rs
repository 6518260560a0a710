//! The participant table: one record per live handle, each backed by an OFD-lock beacon.
//!
//! A handle registers beacon-first: it takes the OFD lock on byte `BEACON_BASE + i`, *then*
//! CASes record `i` from free (or taken by a dead owner) to taken with the next generation.
//! The kernel drops the OFD lock when the process dies (SIGKILL included, before the zombie
//! is reaped), so "record taken, beacon free" means "owner dead". Owner identity everywhere
//! is the [`Owner`] token `(index, generation)`, which a recycled record never reproduces
//! (until the 22-bit generation wraps), so PID reuse and record reuse cannot fool it.
//!
//! The beacons are reached through [`Beacons`]: OFD locks on the segment's descriptor, or
//! (tests) bits in a heap-backed segment, so both backings run the same table code.

use crate::os;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::raw::{Owner, next_generation};
use rustix::fd::BorrowedFd;
use std::io;

/// Byte offset of participant 0's beacon. Far past any segment's end: OFD locks may cover
/// bytes beyond EOF, and these never overlap data.
pub(crate) const BEACON_BASE: u64 = 1 << 48;
/// Held by a creator while it initialises the segment.
pub(crate) const INIT_BEACON: u64 = BEACON_BASE - 1;

/// `state` bit: the record is taken.
const TAKEN: u64 = 1 << 32;

/// One participant record (32 bytes, all atomics).
///
/// `state`:
///
/// | bits   | meaning                                             |
/// |--------|-----------------------------------------------------|
/// | 0..32  | generation of the record's current or last occupant |
/// | 32     | `TAKEN`                                             |
#[repr(C)]
pub(crate) struct Participant {
    pub(crate) state: AtomicU64,
    pub(crate) pid: AtomicU32,
    pub(crate) flags: AtomicU32,
    /// Items this participant took from a queue and has not marked done yet.
    pub(crate) in_hand: AtomicU64,
    pub(crate) reserved: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<Participant>() == super::header::PARTICIPANT_SIZE as usize);

impl Participant {
    /// The token of the record's current occupant, if it is taken.
    pub(crate) fn occupant(&self, index: u32) -> Option<Owner> {
        let s = self.state.load(Ordering::Acquire);
        (s & TAKEN != 0).then(|| Owner::new(index, s as u32))
    }
}

/// Exclusive liveness beacons, one per participant record, named by byte offsets
/// (`BEACON_BASE + index`), each held by its occupant for as long as it lives and dropped
/// when it dies, whatever kills it.
pub(crate) trait Beacons {
    /// Takes the beacon at `offset` without waiting; `Ok(false)`: somebody else holds it.
    fn try_lock(&self, offset: u64) -> io::Result<bool>;
    /// Releases the beacon at `offset` (a no-op if we do not hold it).
    fn unlock(&self, offset: u64);
    /// Whether somebody *else* holds the beacon at `offset`.
    fn is_held(&self, offset: u64) -> io::Result<bool>;
}

/// OFD byte-range locks on the segment's descriptor: the kernel drops them when the process
/// dies (or closes the descriptor).
impl Beacons for BorrowedFd<'_> {
    #[inline]
    fn try_lock(&self, offset: u64) -> io::Result<bool> {
        os::beacon_try_lock(*self, offset)
    }
    #[inline]
    fn unlock(&self, offset: u64) {
        os::beacon_unlock(*self, offset)
    }
    #[inline]
    fn is_held(&self, offset: u64) -> io::Result<bool> {
        os::beacon_is_held(*self, offset)
    }
}

/// Registers in `table`, taking a beacon of `beacons`; returns the token, or `None` if every
/// record is held by a live handle.
pub(crate) fn register(table: &[Participant], beacons: &impl Beacons) -> io::Result<Option<Owner>> {
    for (i, rec) in table.iter().enumerate() {
        let i = i as u32;
        let s = rec.state.load(Ordering::Acquire);
        let beacon = BEACON_BASE + u64::from(i);
        if s & TAKEN != 0 && beacons.is_held(beacon)? {
            continue; // a live occupant
        }
        // Free, or taken by a dead owner: the beacon decides who may have it.
        if !beacons.try_lock(beacon)? {
            continue;
        }
        let g = next_generation(s as u32);
        let new = TAKEN | u64::from(g);
        // AcqRel: a reclaimed record's previous state is read before we overwrite it.
        if rec
            .state
            .compare_exchange(s, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            rec.in_hand.store(0, Ordering::Relaxed);
            rec.pid.store(os::pid(), Ordering::Relaxed);
            return Ok(Some(Owner::new(i, g)));
        }
        beacons.unlock(beacon);
    }
    Ok(None)
}

/// Gives the record back (state free, same generation), then drops the beacon.
pub(crate) fn deregister(table: &[Participant], beacons: &impl Beacons, me: Owner) {
    if let Some(rec) = table.get(me.index() as usize) {
        let mine = TAKEN | u64::from(me.generation());
        // Release: everything we did with the segment happens before the record reads free.
        let _ = rec
            .state
            .compare_exchange(mine, u64::from(me.generation()), Ordering::Release, Ordering::Relaxed);
    }
    beacons.unlock(BEACON_BASE + u64::from(me.index()));
}

/// Whether `owner` is alive, asked through our own `beacons` (`me` is our token).
pub(crate) fn is_alive(table: &[Participant], beacons: &impl Beacons, me: Owner, owner: Owner) -> bool {
    if owner == me {
        return true;
    }
    let Some(rec) = table.get(owner.index() as usize) else {
        return false; // names no record: nobody can hold it
    };
    if rec.state.load(Ordering::Acquire) != TAKEN | u64::from(owner.generation()) {
        return false; // freed or recycled since: that owner is gone
    }
    // An error from F_OFD_GETLK is answered "alive": a false "dead" could let two
    // processes into one critical section, a false "alive" only delays recovery.
    beacons.is_held(BEACON_BASE + u64::from(owner.index())).unwrap_or(true)
}
