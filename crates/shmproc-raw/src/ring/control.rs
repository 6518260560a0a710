//! The ring's control block: the claim indices, the closed flag and the eventcounts, each on
//! its own cache line, as one `#[repr(C)]` struct whose all-zero bytes are an empty, open ring.

use super::eventcount::EventCount;
use crate::primitive::{AtomicU32, AtomicU64};

/// Keeps a shared word on its own 64-byte cache line.
#[repr(C, align(64))]
pub struct CachePadded<T>(pub(super) T);

/// Keeps a claim index (`tail`, `head`) alone in a 128-byte pair of cache lines: x86's
/// adjacent-line prefetcher moves lines in such pairs, so with `head` 64 bytes after `tail`
/// each side's locked CAS could find its line pulled away along with the other's (the
/// reason crossbeam pads to 128 bytes on x86-64).
#[repr(C, align(128))]
pub struct PairPadded<T>(pub(super) T);

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
pub struct RingControl {
    pub(super) tail: PairPadded<AtomicU64>,
    pub(super) head: PairPadded<AtomicU64>,
    pub(super) closed: CachePadded<AtomicU32>,
    pub(super) not_empty: CachePadded<EventCount>,
    pub(super) not_full: CachePadded<EventCount>,
    pub(super) tasks: CachePadded<EventCount>,
    /// High mark of the claim records handed out (see `claims::Table`).
    pub records_used: CachePadded<AtomicU32>,
}

#[cfg(not(loom))]
const _: () = {
    use super::slot::Slot;
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
    pub fn new() -> RingControl {
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
