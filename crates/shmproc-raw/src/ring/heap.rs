//! Ring memory on the heap, for the ring's unit tests, Miri and loom.

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

    pub(crate) fn ring(&self) -> Ring<'_, &HeapPayload<T>> {
        Ring::new(&self.control, &self.slots, &self.records, &self.payload).expect("a heap ring has at least one slot")
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
