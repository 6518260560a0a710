//! Claim records: where each put and get announces the position it is claiming (the intent
//! protocol of `models/intent_model.py`).
//!
//! A ring's claims are CASes on its `tail` and `head` (as in crossbeam's `ArrayQueue`), so the
//! slot words name no owner. What crash recovery needs instead: before its claim
//! CAS, a put stores `Put(t)` in a record of its own, a get `Get(h)`, and each clears it after
//! its publish or release store. A peer that finds a position claimed and not yet published
//! (or not yet released) looks for a *live* record showing that claim; none means the
//! claimant died, and the position may be stepped over (or the slot freed).
//!
//! Records belong to one thread of one participant at a time: `Queue` is `Sync`, and two
//! threads sharing a record would overwrite each other's claim (a get would then step over a
//! live writer's position). A record's liveness is its participant's.
//!
//! # Layout (per ring, `4 * participants` records of 128 bytes)
//!
//! | records | used by |
//! |---|---|
//! | `0 .. 3P` | leased to threads ([`Table::take`]), lowest free first |
//! | `3P + i` | participant `i`'s overflow record, shared under a process-local mutex by its threads that found no free record |
//!
//! Each record is `{owner, claim, taken, seen_head, seen_tail}` (`u64`s, then padding) alone
//! in a 128-byte pair of cache lines (x86's adjacent-line prefetcher moves lines in pairs, and
//! each side stores to its record on every operation):
//! `owner` 0 (free) or the [`Owner`] token of the participant that leased it; `claim` 0
//! (none), `PUT | t` or `GET | h` (positions modulo 2^62); `taken` the items gets through
//! this record took (wrapping), which only the record's thread writes, with plain stores;
//! `seen_head` and `seen_tail` the other side's index as the record's thread last read it, a
//! prefetch hint (`RawRing::prefetch_put`) that no decision depends on. A participant's items
//! in hand are the sum of its records' `taken` less its `tasks_done` (in its participant
//! record, raised by `task_done` from any thread): so a get counts its item with a plain
//! store to a line of its own, not a locked read-modify-write on a shared counter (row
//! `queue 1P1C | shmproc Queue (put/get) | 8 B`; ARCHITECTURE.md, "Items in hand counted per
//! record"). The ring control
//! block's `records_used` is the high mark of records ever leased: scans stop there, so a
//! 1P1C ring scans two records.

use super::{Liveness, Owner};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex, Weak};

/// Claim word: no claim.
pub const NONE: u64 = 0;
const PUT: u64 = 1 << 62;
const GET: u64 = 2 << 62;
const POS_MASK: u64 = (1 << 62) - 1;

/// The claim word of a put claiming position `t`.
#[inline]
pub fn put_claim(t: u64) -> u64 {
    PUT | (t & POS_MASK)
}

/// The claim word of a get claiming position `h` (or stepping over it).
#[inline]
pub fn get_claim(h: u64) -> u64 {
    GET | (h & POS_MASK)
}

/// The position a get's claim word names, if it is one (`Get(h)`: `h` modulo 2^62).
#[inline]
pub fn get_position(claim: u64) -> Option<u64> {
    (claim & !POS_MASK == GET).then_some(claim & POS_MASK)
}

/// Records a ring has for a segment of `participants` participants.
pub const fn records_for(participants: u32) -> u64 {
    4 * participants as u64
}

/// One claim record (128 bytes, all atomics: peers may write any of it).
#[repr(C, align(128))]
pub struct ClaimRecord {
    /// 0 (free) or the [`Owner`] token of the participant that leased the record.
    owner: AtomicU64,
    /// [`NONE`], or the claim the record's thread is making: `PUT | t` or `GET | h`.
    pub claim: AtomicU64,
    /// Items that gets through this record took (wrapping); only the record's thread writes it.
    pub taken: AtomicU64,
    /// `head` as this record's thread last read it when it put: a hint for prefetching
    /// (`RawRing::prefetch_put`), never trusted for anything else.
    pub seen_head: AtomicU64,
    /// `tail` as this record's thread last read it when it got (`RawRing::prefetch_get`).
    pub seen_tail: AtomicU64,
    /// Unused: the record is a 128-byte pair of cache lines.
    _pad: [AtomicU64; 11],
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<ClaimRecord>() == 128);

impl ClaimRecord {
    /// A free record (the same as all-zero bytes).
    pub fn new() -> ClaimRecord {
        ClaimRecord {
            owner: AtomicU64::new(0),
            claim: AtomicU64::new(NONE),
            taken: AtomicU64::new(0),
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
            _pad: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Leases the record to `owner` without a CAS (tests that hand records out by hand).
    #[cfg(test)]
    pub fn bind(&self, owner: Owner) {
        self.owner.store(u64::from(owner.0), Ordering::SeqCst);
    }
}

impl Default for ClaimRecord {
    fn default() -> ClaimRecord {
        ClaimRecord::new()
    }
}

/// A ring's claim records and the high mark of those ever leased.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    records: &'a [ClaimRecord],
    used: &'a AtomicU32,
}

impl<'a> Table<'a> {
    /// The table over `records`, whose high mark (records ever handed out) is `used`.
    pub fn new(records: &'a [ClaimRecord], used: &'a AtomicU32) -> Table<'a> {
        Table { records, used }
    }

    /// The records a scan must look at: those below the high mark (a scribbled mark is
    /// clamped to the table).
    fn in_use(&self) -> &'a [ClaimRecord] {
        // Acquire, partner: `raise`'s RMW, which precedes the first claim stored in a record
        // (and so the index CAS that made a scanner look).
        let n = self.used.load(Ordering::Acquire) as usize;
        &self.records[..n.min(self.records.len())]
    }

    /// Whether a live participant's record shows `claim`: "its claimant is alive and has not
    /// finished". Never `false` for a live claimant that stored `claim` before an index CAS
    /// the caller has seen (Acquire) and has not cleared it. `recent`: liveness may come
    /// from [`Liveness::is_alive_recent`] (the claims' hot paths); `len` and `join` ask
    /// [`Liveness::is_alive`].
    pub fn shows_live<L: Liveness + ?Sized>(&self, claim: u64, live: &L, recent: bool) -> bool {
        self.in_use().iter().any(|r| {
            // Acquire, partner: the Release stores of the claim words, so that "cleared" (or
            // a later claim) is read with the publish or release before it.
            r.claim.load(Ordering::Acquire) == claim && {
                let owner = r.owner.load(Ordering::Acquire) as u32;
                owner != 0
                    && if recent {
                        live.is_alive_recent(Owner(owner))
                    } else {
                        live.is_alive(Owner(owner))
                    }
            }
        })
    }

    /// The claims (`Put(t)`, `Get(h)` words) that records of dead participants still show:
    /// positions their claimants left half done. For inspection; loads only.
    pub fn dead_claims<'t, L: Liveness + ?Sized>(&'t self, live: &'t L) -> impl Iterator<Item = u64> + 't {
        self.in_use().iter().filter_map(move |r| {
            let claim = r.claim.load(Ordering::Acquire);
            let owner = r.owner.load(Ordering::Acquire) as u32;
            (claim != NONE && owner != 0 && !live.is_alive(Owner(owner))).then_some(claim)
        })
    }

    fn raise(&self, index: usize) {
        let want = u32::try_from(index + 1).unwrap_or(u32::MAX);
        self.used.fetch_max(want, Ordering::SeqCst);
    }

    /// Leases a free record of `range` (or one whose owner died) to `me`; `None` if all are
    /// taken by live participants.
    pub fn take<L: Liveness + ?Sized>(&self, range: core::ops::Range<usize>, live: &L) -> Option<usize> {
        let me = u64::from(live.me().0);
        let end = range.end.min(self.records.len());
        let start = range.start.min(end);
        let got = (start..end)
            .find(|&i| {
                let r = &self.records[i];
                r.owner.load(Ordering::Relaxed) == 0
                    && r.owner
                        .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
            })
            .or_else(|| {
                (start..end).find(|&i| {
                    let r = &self.records[i];
                    let o = r.owner.load(Ordering::Acquire);
                    o != me
                        && !live.is_alive(Owner(o as u32))
                        && r.owner
                            .compare_exchange(o, me, Ordering::SeqCst, Ordering::Relaxed)
                            .is_ok()
                })
            })?;
        self.adopt(got);
        Some(got)
    }

    /// Makes record `index` ours without a CAS: participant `i`'s overflow record is ours
    /// while we are participant `i`.
    fn own(&self, index: usize, me: u64) {
        if let Some(r) = self.records.get(index) {
            r.owner.store(me, Ordering::SeqCst);
            self.adopt(index);
        }
    }

    /// A record just taken: clear what a dead owner left, then let scans reach it.
    fn adopt(&self, index: usize) {
        self.records[index].claim.store(NONE, Ordering::Release);
        self.records[index].taken.store(0, Ordering::Release);
        self.raise(index);
    }

    /// The items `owner`'s records took (wrapping sum of their `taken`). Acquire, partner:
    /// the Release store of `taken` before a get's claim CAS, which the caller read first.
    pub fn taken_by(&self, owner: Owner) -> u64 {
        let o = u64::from(owner.0);
        self.in_use()
            .iter()
            .filter(|r| r.owner.load(Ordering::Acquire) == o)
            .fold(0u64, |sum, r| sum.wrapping_add(r.taken.load(Ordering::Acquire)))
    }

    /// Gives record `index` back (handle drop).
    pub fn give_back(&self, index: usize) {
        if let Some(r) = self.records.get(index) {
            r.claim.store(NONE, Ordering::Release);
            r.taken.store(0, Ordering::Release);
            r.owner.store(0, Ordering::Release);
        }
    }

    /// Record `index` (`index` in range).
    fn record(&self, index: usize) -> &'a ClaimRecord {
        &self.records[index]
    }
}

// ---------------------------------------------------------------------------------------------
// Leases: which record each thread of this process uses (process-local state)

/// One handle's leases of one ring's records: each thread that uses the handle gets a record
/// of its own on first use (cached in a thread-local, given back to this handle when the
/// thread ends), and records go back to the table when the handle is dropped.
pub struct Leases {
    id: u64,
    pool: Arc<Pool>,
}

struct Pool {
    /// Records this handle leased that no thread holds now.
    free: Mutex<Vec<usize>>,
    /// Every record this handle leased from the table (the overflow record included once
    /// used), to give back on drop.
    taken: Mutex<Vec<usize>>,
    /// Serialises the threads that use the overflow record.
    overflow: Mutex<()>,
}

struct Held {
    id: u64,
    index: usize,
    busy: bool,
    pool: Weak<Pool>,
}

/// A thread's leases; when the thread ends, each goes back to its handle (if still open).
struct HeldList(Vec<Held>);

impl Drop for HeldList {
    fn drop(&mut self) {
        // Their entries go back below: no later call on this thread (another thread-local's
        // destructor) may use them.
        LAST.with(|c| c.set((0, 0)));
        OTHER_WAYS.with(|ways| ways.iter().for_each(|w| w.set((0, 0))));
        for h in self.0.drain(..) {
            if let Some(pool) = h.pool.upgrade() {
                lock(&pool.free).push(h.index);
            }
        }
    }
}

thread_local! {
    static HELD: RefCell<HeldList> = const { RefCell::new(HeldList(Vec::new())) };
    /// The lease this thread used last, `(handle id, record)` (`(0, 0)`: none), with
    /// [`IN_USE`] set in the id while an operation runs on it: the fast path of
    /// [`Leases::with`], two `Cell` accesses. Its entry in `HELD` is marked busy for as long
    /// as it is here, so the slow path never hands it out twice. Way 0 of the leases the
    /// fast path keeps; the others are in [`OTHER_WAYS`].
    static LAST: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
    /// Ways 1.. of the leases the fast path keeps, as [`LAST`] is way 0: a thread that
    /// alternates between a few queues (a request queue and a reply queue, a pool's task and
    /// result queues) finds each one's lease here, not on the slow path (a `RefCell` borrow
    /// and two searches of `HELD` per call).
    static OTHER_WAYS: [Cell<(u64, usize)>; WAYS - 1] = const { [const { Cell::new((0, 0)) }; WAYS - 1] };
    /// The way the slow path refills next when none is empty.
    static VICTIM: Cell<usize> = const { Cell::new(0) };
}

/// How many handles' leases a thread keeps for the fast path ([`LAST`] and [`OTHER_WAYS`]).
const WAYS: usize = 4;

/// Way `way` (`< WAYS`) of the leases the fast path keeps.
fn way_get(way: usize) -> (u64, usize) {
    match way.checked_sub(1) {
        None => LAST.with(Cell::get),
        Some(k) => OTHER_WAYS.with(|ways| ways[k].get()),
    }
}

/// A way among [`OTHER_WAYS`] to put a lease in: an empty one, or else the next one round
/// robin if no operation is using it, whose lease then goes back to the idle ones.
fn spare_way() -> Option<usize> {
    if let Some(way) = (1..WAYS).find(|&way| way_get(way).0 == 0) {
        return Some(way);
    }
    let way = 1 + VICTIM.with(|v| {
        let k = v.get() % (WAYS - 1);
        v.set(k + 1);
        k
    });
    let (old, old_index) = way_get(way);
    if old & IN_USE != 0 {
        return None;
    }
    idle(old, old_index);
    way_set(way, (0, 0));
    Some(way)
}

/// Marks this thread's lease `(id, index)` idle in `HELD`, once no way of the fast path holds
/// it.
fn idle(id: u64, index: usize) {
    let _ = HELD.try_with(|h| {
        if let Some(e) = h.borrow_mut().0.iter_mut().find(|e| e.id == id && e.index == index) {
            e.busy = false;
        }
    });
}

/// Sets way `way` (`< WAYS`) of the leases the fast path keeps.
fn way_set(way: usize, lease: (u64, usize)) {
    match way.checked_sub(1) {
        None => LAST.with(|c| c.set(lease)),
        Some(k) => OTHER_WAYS.with(|ways| ways[k].set(lease)),
    }
}

/// Set in [`LAST`]'s id while an operation uses its record (ids count up from 1).
const IN_USE: u64 = 1 << 63;

/// Ends an operation on [`LAST`]'s record (unwinding included).
struct LastDone {
    id: u64,
    index: usize,
}

impl Drop for LastDone {
    #[inline]
    fn drop(&mut self) {
        LAST.with(|c| c.set((self.id, self.index)));
    }
}

/// Ends an operation on the record of way `way` of the fast path's leases (unwinding
/// included).
struct WayDone {
    way: usize,
    id: u64,
    index: usize,
}

impl Drop for WayDone {
    fn drop(&mut self) {
        way_set(self.way, (self.id, self.index));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Marks a thread's lease free again when the operation ends (unwinding included).
struct Unbusy {
    id: u64,
    index: usize,
}

impl Drop for Unbusy {
    fn drop(&mut self) {
        idle(self.id, self.index);
    }
}

impl Default for Leases {
    fn default() -> Leases {
        Leases::new()
    }
}

impl Leases {
    /// An empty set of leases with a process-unique id.
    pub fn new() -> Leases {
        Leases {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            pool: Arc::new(Pool {
                free: Mutex::new(Vec::new()),
                taken: Mutex::new(Vec::new()),
                overflow: Mutex::new(()),
            }),
        }
    }

    /// Runs `f` with a claim record that only this thread uses meanwhile.
    /// `participants` is the segment's participant count (the table has `4 *` that many
    /// records).
    #[inline]
    pub fn with<L, R>(&self, table: Table<'_>, participants: usize, live: &L, f: impl FnOnce(&ClaimRecord) -> R) -> R
    where
        L: Liveness + ?Sized,
    {
        let id = self.id;
        let (last, index) = LAST.with(Cell::get);
        if last == id && index < table.records.len() {
            LAST.with(|c| c.set((id | IN_USE, index)));
            let _done = LastDone { id, index };
            return f(table.record(index));
        }
        self.with_other_way(table, participants, live, f)
    }

    /// [`Leases::with`] when [`LAST`] is not an idle lease of this handle: one of
    /// [`OTHER_WAYS`], or else the slow path. (`LAST` alone is checked inline, so that a
    /// thread using one handle pays for one compare.)
    #[cold]
    #[inline(never)]
    fn with_other_way<L, R>(
        &self,
        table: Table<'_>,
        participants: usize,
        live: &L,
        f: impl FnOnce(&ClaimRecord) -> R,
    ) -> R
    where
        L: Liveness + ?Sized,
    {
        let id = self.id;
        let hit = (1..WAYS).find_map(|way| {
            let (last, index) = way_get(way);
            (last == id && index < table.records.len()).then_some((way, index))
        });
        if let Some((way, index)) = hit {
            way_set(way, (id | IN_USE, index));
            let _done = WayDone { way, id, index };
            return f(table.record(index));
        }
        self.with_slow(table, participants, live, f)
    }

    /// [`Leases::with`] when none of this thread's last leases is an idle one of this handle
    /// (a thread new to the handle, more than [`WAYS`] handles in turn, or a call made from
    /// inside a `put_with` closure): an idle entry of this handle, or a new lease, which
    /// becomes [`LAST`] (the lease there moves to another way) unless `LAST` is in use.
    #[cold]
    fn with_slow<L, R>(&self, table: Table<'_>, participants: usize, live: &L, f: impl FnOnce(&ClaimRecord) -> R) -> R
    where
        L: Liveness + ?Sized,
    {
        let id = self.id;
        let cached = HELD
            .try_with(|h| {
                let mut h = h.borrow_mut();
                let e = h.0.iter_mut().find(|e| e.id == id && !e.busy)?;
                e.busy = true;
                Some(e.index)
            })
            .ok()
            .flatten();
        let index = match cached {
            Some(index) => Some(index),
            None => match self.lease_new(table, participants, live) {
                Some((index, true)) => Some(index),
                Some((index, false)) => {
                    // This thread is ending (its thread-locals are gone): use the record for
                    // this operation only, then hand it back to the handle.
                    let r = f(table.record(index));
                    lock(&self.pool.free).push(index);
                    return r;
                }
                None => None,
            },
        };
        let Some(index) = index.filter(|&i| i < table.records.len()) else {
            return self.with_overflow(table, participants, live, f);
        };
        let (last, last_index) = LAST.with(Cell::get);
        if last & IN_USE == 0 {
            // Promote the new lease to `LAST`; `LAST`'s moves to another way (see `spare_way`),
            // or, if none is idle, back to the idle ones.
            if last != 0 {
                match spare_way() {
                    Some(way) => way_set(way, (last, last_index)),
                    None => idle(last, last_index),
                }
            }
            LAST.with(|c| c.set((id | IN_USE, index)));
            let _done = LastDone { id, index };
            return f(table.record(index));
        }
        // `LAST` is in use (this call is nested in another): another way, if one is idle.
        if let Some(way) = spare_way() {
            way_set(way, (id | IN_USE, index));
            let _done = WayDone { way, id, index };
            return f(table.record(index));
        }
        let _unbusy = Unbusy { id, index };
        f(table.record(index))
    }

    /// A record for this thread from the handle's idle ones or the table, entered in `HELD`
    /// as busy (`true`), or not, if this thread's thread-locals are gone (`false`: the caller
    /// gives it back after one operation); `None` if the table has none left.
    fn lease_new<L: Liveness + ?Sized>(
        &self,
        table: Table<'_>,
        participants: usize,
        live: &L,
    ) -> Option<(usize, bool)> {
        let index = lock(&self.pool.free).pop().or_else(|| {
            let i = table.take(0..3 * participants, live)?;
            lock(&self.pool.taken).push(i);
            Some(i)
        })?;
        let cached = HELD.try_with(|h| {
            let mut h = h.borrow_mut();
            h.0.retain(|e| e.pool.strong_count() > 0);
            h.0.push(Held {
                id: self.id,
                index,
                busy: true,
                pool: Arc::downgrade(&self.pool),
            });
        });
        Some((index, cached.is_ok()))
    }

    /// Every thread record is taken: share this participant's overflow record.
    #[cold]
    fn with_overflow<L, R>(
        &self,
        table: Table<'_>,
        participants: usize,
        live: &L,
        f: impl FnOnce(&ClaimRecord) -> R,
    ) -> R
    where
        L: Liveness + ?Sized,
    {
        let _serial = lock(&self.pool.overflow);
        let index = 3 * participants + live.me().index() as usize;
        {
            let mut taken = lock(&self.pool.taken);
            if !taken.contains(&index) {
                let me = u64::from(live.me().0);
                table.own(index, me);
                taken.push(index);
            }
        }
        match table.records.get(index) {
            Some(r) => f(r),
            // A table smaller than its participant count says: only a scribbled header can
            // do that, and it was validated. Use a private word: claims then go unseen, which
            // only makes peers step over our positions early (wrong answers, no UB).
            None => f(&ClaimRecord::new()),
        }
    }

    /// Gives every record this handle leased back to the table. Call when the handle is
    /// dropped (no operation can be running then).
    pub fn release(&self, table: Table<'_>) {
        for i in lock(&self.pool.taken).drain(..) {
            table.give_back(i);
        }
        lock(&self.pool.free).clear();
    }
}

/// A handle's [`Leases`] of a ring's table in its segment, given back when dropped: a field
/// of the handle declared before its segment, so that it drops while the mapping is there.
pub struct HandleLeases {
    leases: Leases,
    records: *const ClaimRecord,
    len: usize,
    used: *const AtomicU32,
    participants: usize,
    /// Whether dropping gives the records back (not after `HandleLeases::abandon`, a test-only
    /// call).
    give_back: bool,
}

// SAFETY: the pointers reach atomics in a mapping that the handle owning this value keeps
// alive (and that every process shares anyway); the rest is `Leases`, which is Send + Sync.
unsafe impl Send for HandleLeases {}
// SAFETY: as above; every access through `&HandleLeases` is atomic or under a mutex.
unsafe impl Sync for HandleLeases {}

impl HandleLeases {
    /// Leases of the `len` records at `records`, with the high mark at `used`, in a segment of
    /// `participants` participants (`len` is `records_for(participants)`).
    ///
    /// # Safety
    ///
    /// `records` (64-aligned, `len` records) and `used` (4-aligned) stay valid for reads and
    /// atomic writes for as long as this value lives, and are only accessed atomically.
    pub unsafe fn new(
        records: *const ClaimRecord,
        len: usize,
        used: *const AtomicU32,
        participants: usize,
    ) -> HandleLeases {
        HandleLeases {
            leases: Leases::new(),
            records,
            len,
            used,
            participants,
            give_back: true,
        }
    }

    /// The ring's claim records.
    fn records(&self) -> &[ClaimRecord] {
        // SAFETY: `new`'s contract; `ClaimRecord` is all atomics, valid for any bytes and
        // shared by design.
        unsafe { std::slice::from_raw_parts(self.records, self.len) }
    }

    fn table(&self) -> Table<'_> {
        // SAFETY: `new`'s contract; `AtomicU32` is valid for any bytes and shared by design.
        Table::new(self.records(), unsafe { &*self.used })
    }

    /// [`Leases::with`] on this handle's table.
    #[inline]
    pub fn with<L: Liveness + ?Sized, R>(&self, live: &L, f: impl FnOnce(&ClaimRecord) -> R) -> R {
        self.leases.with(self.table(), self.participants, live, f)
    }

    /// Drops without giving the records back, as a process killed now would leave them.
    #[cfg(any(test, feature = "testing"))]
    pub fn abandon(mut self) {
        self.give_back = false;
    }
}

impl Drop for HandleLeases {
    fn drop(&mut self) {
        if self.give_back {
            self.leases.release(self.table());
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Me(u32, Vec<u32>);
    impl Liveness for Me {
        fn me(&self) -> Owner {
            Owner(self.0)
        }
        fn is_alive(&self, o: Owner) -> bool {
            o.0 == self.0 || self.1.contains(&o.0)
        }
    }

    fn table(n: usize) -> (Vec<ClaimRecord>, AtomicU32) {
        ((0..n).map(|_| ClaimRecord::new()).collect(), AtomicU32::new(0))
    }

    #[test]
    fn each_thread_gets_its_own_record_and_scans_see_live_claims_only() {
        let (recs, used) = table(8);
        let t = Table::new(&recs, &used);
        let me = Me(Owner::new(0, 1).0, vec![]);
        let leases = Leases::new();
        let a = leases.with(t, 2, &me, |w| {
            w.claim.store(put_claim(5), Ordering::Release);
            w.taken.store(3, Ordering::Release);
            let inner = leases.with(t, 2, &me, |w2| core::ptr::from_ref(w2) as usize);
            assert_ne!(
                core::ptr::from_ref(w) as usize,
                inner,
                "a nested call needs another record"
            );
            assert!(t.shows_live(put_claim(5), &me, false));
            assert_eq!(t.taken_by(me.me()), 3);
            w.claim.store(NONE, Ordering::Release);
            core::ptr::from_ref(w) as usize
        });
        // The same thread gets the same record again.
        assert_eq!(leases.with(t, 2, &me, |w| core::ptr::from_ref(w) as usize), a);
        let other = std::thread::scope(|s| {
            s.spawn(|| leases.with(t, 2, &me, |w| core::ptr::from_ref(w) as usize))
                .join()
                .unwrap()
        });
        assert_ne!(other, a);
        assert_eq!(used.load(Ordering::Relaxed), 3);
        // The other thread ended: its record went back to the handle, not to the table.
        assert_eq!(lock(&leases.pool.free).len(), 1);
        // A dead owner's claim is not live, and its record can be taken over.
        recs[1].claim.store(get_claim(9), Ordering::Release);
        let stranger = Me(Owner::new(1, 1).0, vec![]);
        assert!(!t.shows_live(get_claim(9), &stranger, true));
        assert_eq!(t.take(0..6, &stranger), Some(3));
        assert_eq!(t.taken_by(stranger.me()), 0);
        leases.release(t);
        assert!(recs.iter().take(3).all(|r| r.owner.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn a_thread_alternating_between_handles_keeps_one_record_in_each() {
        let (recs, used) = table(4 * 8);
        let t = Table::new(&recs, &used);
        let me = Me(Owner::new(0, 1).0, vec![]);
        let record = |leases: &Leases| leases.with(t, 8, &me, |w| core::ptr::from_ref(w) as usize);
        // More handles than the fast path keeps, so that the slow path refills ways too.
        let handles: Vec<Leases> = (0..WAYS + 2).map(|_| Leases::new()).collect();
        let first: Vec<usize> = handles.iter().map(record).collect();
        for round in 0..3 {
            for n in [2, WAYS, WAYS + 2] {
                for (k, leases) in handles.iter().enumerate().take(n) {
                    assert_eq!(record(leases), first[k], "round {round}, {n} handles, handle {k}");
                }
            }
        }
        // Six handles in turn miss the four ways every time: each lease comes from the slow
        // path, which puts it in `LAST`, the inline fast path.
        for (k, leases) in handles.iter().enumerate() {
            record(leases);
            let index = (first[k] - core::ptr::from_ref(&recs[0]) as usize) / size_of::<ClaimRecord>();
            assert_eq!(LAST.with(Cell::get), (leases.id, index), "handle {k}");
        }
        // One record per handle, each handle's its own.
        assert_eq!(used.load(Ordering::Relaxed) as usize, handles.len());
        let mut distinct = first.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), handles.len());
        // A call nested in another of the same handle (through a second handle's call) gets a
        // record of its own, leased for it.
        let (a, b) = (&handles[0], &handles[1]);
        a.with(t, 8, &me, |outer| {
            let outer = core::ptr::from_ref(outer) as usize;
            let inner = b.with(t, 8, &me, |_| record(a));
            assert_ne!(inner, outer);
        });
        assert_eq!(used.load(Ordering::Relaxed) as usize, handles.len() + 1);
        for leases in &handles {
            leases.release(t);
        }
        assert!(recs.iter().all(|r| r.owner.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn threads_beyond_the_table_share_the_overflow_record() {
        let (recs, used) = table(4);
        let t = Table::new(&recs, &used);
        let me = Me(Owner::new(0, 1).0, vec![]);
        let leases = Leases::new();
        // participants = 1: records 0..3 for threads, 3 is participant 0's overflow record.
        // All four hold their records at once (a barrier, not a sleep: under Miri's scheduler
        // sleeping threads may run one after another and reuse one record).
        let all_in = std::sync::Barrier::new(4);
        let words: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        leases.with(t, 1, &me, |w| {
                            all_in.wait();
                            core::ptr::from_ref(w) as usize
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(words.contains(&(core::ptr::from_ref(&recs[3]) as usize)));
        assert_eq!(used.load(Ordering::Relaxed), 4);
        leases.release(t);
        assert!(recs.iter().all(|r| r.owner.load(Ordering::Relaxed) == 0));
    }
}
