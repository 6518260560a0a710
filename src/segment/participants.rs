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
use std::io;
use std::os::fd::BorrowedFd;

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
    /// `task_done` calls this participant made (wrapping); its items in hand are the items
    /// its claim records took less these (`raw::claims`).
    pub(crate) tasks_done: AtomicU64,
    /// The async doorbell of the handle: bits 0..32 its nonce (0: none bound), bits 32..64
    /// how many async waits it has armed. A waker that wakes anything in the segment rings
    /// every record's doorbell that has waits armed (`Segment::ring_doorbells`).
    pub(crate) doorbell: AtomicU64,
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
            rec.tasks_done.store(0, Ordering::Relaxed);
            rec.doorbell.store(0, Ordering::Relaxed);
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

/// Whether `owner` is alive, asked through our own `beacons` (`me` is our token). The heap
/// backing's (the `testing` feature); the mapped backing uses [`is_alive_cached`].
#[cfg(feature = "testing")]
pub(crate) fn is_alive(table: &[Participant], beacons: &impl Beacons, me: Owner, owner: Owner) -> bool {
    is_alive_cached(table, beacons, me, owner, None)
}

/// [`is_alive`], answering "alive" without asking the beacon when `cache` (with the time
/// now) holds a positive answer for `owner` younger than [`ALIVE_TTL_US`].
pub(crate) fn is_alive_cached(
    table: &[Participant],
    beacons: &impl Beacons,
    me: Owner,
    owner: Owner,
    cache: Option<(&AliveCache, u32)>,
) -> bool {
    if owner == me {
        return true;
    }
    let Some(rec) = table.get(owner.index() as usize) else {
        return false; // names no record: nobody can hold it
    };
    if rec.state.load(Ordering::Acquire) != TAKEN | u64::from(owner.generation()) {
        return false; // freed or recycled since: that owner is gone
    }
    if let Some((cache, now)) = cache
        && cache.fresh(owner, now)
    {
        return true;
    }
    // An error from F_OFD_GETLK is answered "alive": a false "dead" could let two
    // processes into one critical section, a false "alive" only delays recovery.
    let alive = beacons.is_held(BEACON_BASE + u64::from(owner.index())).unwrap_or(true);
    if alive && let Some((cache, now)) = cache {
        cache.record(owner, now);
    }
    alive
}

/// How long a positive liveness answer is reused: how much later, at most, a handle notices
/// a death (a repair, `OwnerDied`, a disconnected pipe) than it would by asking every time.
pub(crate) const ALIVE_TTL_US: u32 = 1000;

/// Entries of an [`AliveCache`].
const ALIVE_CACHE_SIZE: usize = 64;

/// Recent positive answers of the beacon check, per handle (process-local memory).
///
/// A get that finds a put's position claimed and unpublished, or a put that finds a get's
/// position claimed and unreleased, asks
/// whether that owner is alive, because a dead one's slot must be repaired. The answer is an
/// `F_OFD_GETLK` system call (about a microsecond), and in a busy queue the owner is nearly
/// always alive and about to finish, so a stream of small items would ask every few messages
/// (ARCHITECTURE.md, "Liveness answers cached for 1 ms"). A positive answer less than
/// [`ALIVE_TTL_US`] old is reused instead.
/// That is sound because "alive" is the safe direction: an owner that died since is treated
/// as a slow live one a little longer (recovery is delayed, never wrong), while a negative
/// answer is never cached.
///
/// Entry `owner.index() % 64` holds `owner << 32 | time`, time in microseconds (wrapping
/// `u32`) since a process-wide start ([`now_us`]); another owner's entry is a miss.
pub(crate) struct AliveCache {
    entries: [std::sync::atomic::AtomicU64; ALIVE_CACHE_SIZE],
}

impl AliveCache {
    pub(crate) fn new() -> AliveCache {
        AliveCache {
            entries: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn entry(&self, owner: Owner) -> &std::sync::atomic::AtomicU64 {
        &self.entries[owner.index() as usize % ALIVE_CACHE_SIZE]
    }

    /// Whether `owner` was found alive less than [`ALIVE_TTL_US`] before `now`.
    pub(crate) fn fresh(&self, owner: Owner, now: u32) -> bool {
        // Relaxed: the entry only remembers an earlier answer of ours; it orders nothing.
        let e = self.entry(owner).load(std::sync::atomic::Ordering::Relaxed);
        (e >> 32) as u32 == owner.0 && now.wrapping_sub(e as u32) < ALIVE_TTL_US
    }

    /// `owner` was found alive at `now`.
    pub(crate) fn record(&self, owner: Owner, now: u32) {
        self.entry(owner).store(
            u64::from(owner.0) << 32 | u64::from(now),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// Microseconds since this process first asked, wrapping (the clock of [`AliveCache`]).
pub(crate) fn now_us() -> u32 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_micros() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// One beacon, held or not, counting the questions asked of it.
    struct FakeBeacon {
        held: Cell<bool>,
        asked: Cell<u32>,
    }

    impl Beacons for FakeBeacon {
        fn try_lock(&self, _: u64) -> io::Result<bool> {
            Ok(true)
        }
        fn unlock(&self, _: u64) {}
        fn is_held(&self, _: u64) -> io::Result<bool> {
            self.asked.set(self.asked.get() + 1);
            Ok(self.held.get())
        }
    }

    fn record(generation: u32) -> Participant {
        Participant {
            state: AtomicU64::new(TAKEN | u64::from(generation)),
            pid: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            tasks_done: AtomicU64::new(0),
            doorbell: AtomicU64::new(0),
        }
    }

    #[test]
    fn positive_answers_are_reused_until_they_expire_and_negative_ones_never() {
        let table = [record(0), record(5)];
        let (me, other) = (Owner::new(0, 0), Owner::new(1, 5));
        let beacon = FakeBeacon {
            held: Cell::new(true),
            asked: Cell::new(0),
        };
        let cache = AliveCache::new();
        let t0 = u32::MAX - 10; // the clock wraps in between
        assert!(is_alive_cached(&table, &beacon, me, other, Some((&cache, t0))));
        assert_eq!(beacon.asked.get(), 1);
        // The owner dies: within the time to live the earlier answer stands...
        beacon.held.set(false);
        assert!(is_alive_cached(
            &table,
            &beacon,
            me,
            other,
            Some((&cache, t0.wrapping_add(ALIVE_TTL_US - 1)))
        ));
        assert_eq!(beacon.asked.get(), 1, "answered from the cache");
        // ...and once it has expired the beacon is asked again, and "dead" is not kept.
        let later = t0.wrapping_add(ALIVE_TTL_US);
        assert!(!is_alive_cached(&table, &beacon, me, other, Some((&cache, later))));
        assert!(!is_alive_cached(&table, &beacon, me, other, Some((&cache, later))));
        assert_eq!(beacon.asked.get(), 3);
        // A freed or recycled record is dead whatever the cache holds.
        beacon.held.set(true);
        assert!(is_alive_cached(&table, &beacon, me, other, Some((&cache, later))));
        table[1].state.store(u64::from(5u32), Ordering::Release);
        assert!(!is_alive_cached(&table, &beacon, me, other, Some((&cache, later))));
        // Another owner of the same cache entry (index + 64, or a new generation) misses.
        assert!(!cache.fresh(Owner::new(1 + ALIVE_CACHE_SIZE as u32, 5), later));
        assert!(!cache.fresh(Owner::new(1, 6), later));
        assert!(cache.fresh(other, later));
    }
}
