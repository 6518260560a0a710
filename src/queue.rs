//! `Queue<T>`: a bounded, lock-free, crash-tolerant MPMC queue in a named segment.
//!
//! Body layout (offsets from the body start, which is 128-aligned; `R = 4 * participants`
//! claim records, see `raw/claims.rs`):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 640 | `RingControl`: tail and head each in a 128-byte pair of cache lines, then closed, three eventcounts and the records' high mark, each on its own line |
//! | 640 | 128 x R | claim records `{owner, claim, taken, seen_head, seen_tail}` (`raw/claims.rs`), one per pair of lines |
//! | `cells` | `cell` x capacity | cell `i`: slot word `i` (`{phase, lap}`, see `raw/ring/slot.rs`), then item `i` |
//!
//! Every cell starts with its slot word, so a put or a get touches the slot word's line and
//! the item's lines and nobody else's. Two kinds of cell, by how much the slot word and the
//! item need:
//!
//! - **Inline** (slot word and item, at `max(8, align_of::<T>())`, fit in 64 bytes): `cell`
//!   is that size rounded up to a power of two (16, 32 or 64), `cells` = 640 + 128 R. A `u64`
//!   queue packs four slots per line, as crossbeam's `ArrayQueue` does: the claims are CASes
//!   on `head`/`tail`, and slot words are only loaded and stored, so neighbouring slots do not
//!   contend for their line (ARCHITECTURE.md, "Design rationale").
//! - **Wide** (anything larger): `cell` is the smallest multiple of 128 bytes (and of the
//!   item's alignment) that holds both, from `cells` rounded up to 128. x86's adjacent-line
//!   prefetcher moves lines in 128-byte pairs, so a smaller granule would share a pair with a
//!   neighbour cell that the other side is writing. The item starts on the line after its slot
//!   word (at `max(64, align_of::<T>())`) unless that makes the cell 128 bytes larger (items
//!   of 65 to 120 bytes, 193 to 248, ...), where it follows the slot word at
//!   `max(8, align_of::<T>())`. A get writes the slot word twice (its TAKEN mark, its
//!   release), so on a line of its own it takes only that line from the producer, not the
//!   item's first line as well (`crates/shmproc-bench/README.md`, "Queue cells").
//!
//! The algorithm is in `raw/ring/` (model: `models/intent_model.py`); this file
//! maps it onto a segment and adds the public API.

use crate::error::{GetError, OpenError, PutError, TaskError};
use crate::options::Options;
use crate::primitive::Ordering;
use crate::raw::Owner;
use crate::raw::claims::{ClaimRecord, HandleLeases, records_for};
use crate::raw::deadline_after;
use crate::raw::ring::{Ahead, Block, GetFail, Payload, PutFail, RawRing, Ring, RingControl, Slot};
use crate::segment::header::{Kind, TypeDesc, align_up};
use crate::segment::{Segment, Spec};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// Largest capacity a queue may have.
pub const MAX_CAPACITY: usize = 1 << 32;

const CONTROL_SIZE: u64 = core::mem::size_of::<RingControl>() as u64;
const SLOT_SIZE: u64 = core::mem::size_of::<Slot>() as u64;
const RECORD_SIZE: u64 = core::mem::size_of::<ClaimRecord>() as u64;

/// Where the cells may start: after the control block and the claim records.
const fn cells_offset(participants: u32) -> Option<u64> {
    match records_for(participants).checked_mul(RECORD_SIZE) {
        Some(records) => CONTROL_SIZE.checked_add(records),
        None => None,
    }
}

/// Offset of the item in its cell: after the slot word, aligned for the item.
const fn item_offset_of(align: u64) -> u64 {
    if align > 8 { align } else { 8 }
}

/// Where a queue's cells lie in its body. Every cell starts with its slot word and holds its
/// item at `item` bytes from the cell's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cells {
    /// Offset of cell 0 from the body start.
    offset: u64,
    /// Bytes from one cell to the next.
    size: u64,
    /// Offset of the item in its cell.
    item: u64,
}

/// The cells of a queue of items of `size` bytes aligned to `align` (see the module docs):
/// a power of two of at most 64 bytes (inline cells, several per line) when the slot word and
/// the item fit in 64 bytes, otherwise a multiple of 128 bytes starting on a 128-byte
/// boundary (wide cells, each on pairs of lines of its own). `None` for an alignment that is
/// not a power of two or a size that overflows.
const fn cells_of(size: u64, align: u64, participants: u32) -> Option<Cells> {
    if !align.is_power_of_two() {
        return None;
    }
    let start = match cells_offset(participants) {
        Some(start) => start,
        None => return None,
    };
    let item = item_offset_of(align);
    let Some(need) = item.checked_add(size) else {
        return None;
    };
    if need <= 64 {
        return Some(Cells {
            offset: start,
            size: need.next_power_of_two(),
            item,
        });
    }
    // Wide cells: 128-byte granules (x86's adjacent-line prefetcher moves lines in 128-byte
    // pairs, so with 64-byte granules a consumer reading cell `i` would keep pulling away the
    // line a producer is writing for cell `i + 1`), and a multiple of the item's alignment.
    let granule = if align > 128 { align } else { 128 };
    // The item starts on the line after its slot word unless that makes the cell 128 bytes
    // larger: a get writes the slot word twice (its TAKEN mark, its release), and then takes
    // only that line from the producer, not the item's first line as well.
    let apart = if align > 64 { align } else { 64 };
    let (item, need) = match apart.checked_add(size) {
        Some(far) => match (align_up(need, granule), align_up(far, granule)) {
            (Some(near), Some(wide)) if wide == near => (apart, far),
            _ => (item, need),
        },
        None => return None,
    };
    let (Some(offset), Some(size)) = (align_up(start, granule), align_up(need, granule)) else {
        return None;
    };
    Some(Cells { offset, size, item })
}

const fn cells<T>(participants: u32) -> Option<Cells> {
    cells_of(
        core::mem::size_of::<T>() as u64,
        core::mem::align_of::<T>() as u64,
        participants,
    )
}

/// Body size of a queue of `cap` items of `size` bytes aligned to `align`.
pub(crate) fn body_size_of(size: u64, align: u64, cap: u64, participants: u32) -> Option<u64> {
    if cap == 0 || cap > MAX_CAPACITY as u64 {
        return None;
    }
    let cells = cells_of(size, align, participants)?;
    cells.offset.checked_add(cap.checked_mul(cells.size)?)
}

fn body_size<T>(cap: u64, participants: u32) -> Option<u64> {
    body_size_of(
        core::mem::size_of::<T>() as u64,
        core::mem::align_of::<T>() as u64,
        cap,
        participants,
    )
}

/// Where a queue's ring lies in its body, for items of `size` bytes aligned to `align`
/// (inspection, which does not know the item type): the control block at 0, the claim
/// records after it, then the slot words from the returned offset, the returned number of
/// words apart (each cell starts with its slot word).
pub(crate) fn slot_words_of(size: u64, align: u64, participants: u32) -> Option<(u64, u64)> {
    let cells = cells_of(size, align, participants)?;
    Some((cells.offset, cells.size / SLOT_SIZE))
}

const _: () = {
    const fn cell<T>() -> u64 {
        match cells::<T>(1) {
            Some(c) => c.size,
            None => 0,
        }
    }
    assert!(cell::<u8>() == 16);
    assert!(cell::<u64>() == 16);
    assert!(cell::<u128>() == 32);
    assert!(cell::<[u8; 24]>() == 32);
    assert!(cell::<[u64; 7]>() == 64);
    assert!(cell::<[u8; 57]>() == 128);
    assert!(cell::<[u8; 64]>() == 128);
    assert!(cells::<[u8; 64]>(1).unwrap().item == 64);
    assert!(cell::<[u8; 120]>() == 128);
    assert!(cells::<[u8; 120]>(1).unwrap().item == 8);
    assert!(cells::<[u8; 1024]>(1).unwrap().item == 64);
    assert!(cell::<[u8; 121]>() == 256);
    assert!(cell::<[u8; 192]>() == 256);
    assert!(cell::<[u8; 1024]>() == 1152);
    assert!(CONTROL_SIZE % 128 == 0 && RECORD_SIZE % 128 == 0);
};

/// Payload cells in the mapping, copied with byte-wise atomic copies.
struct ShmPayload<T> {
    base: *mut u8,
    /// Bytes from one cell to the next (`Cells::size`).
    stride: usize,
    len: usize,
    _t: PhantomData<T>,
}

impl<T> ShmPayload<T> {
    /// Cell `index`, which must be `< len`.
    fn cell(&self, index: usize) -> *mut T {
        // `index < len` and `len` cells of `stride` bytes lie in the mapping, so the product
        // fits in `usize`.
        self.base.wrapping_add(index * self.stride).cast()
    }
}

// SAFETY: `base..base + len` is a validated, aligned range of the segment's mapping, which
// outlives every `Ring` built over it (both borrow the `Queue`). Copies are byte-wise atomic,
// so even a peer breaking the slot protocol yields a torn value, never a data race.
unsafe impl<T: Pod> Payload for ShmPayload<T> {
    type Item = T;

    fn len(&self) -> usize {
        self.len
    }

    unsafe fn write(&self, index: usize, item: &T) {
        if index < self.len {
            // SAFETY: `index < len`: the cell lies in the mapping and is aligned for `T` (the
            // cells start aligned for `T`, the item's offset in its cell is a multiple of its
            // alignment, and so is the stride: see `cells_of`).
            unsafe { crate::raw::copy::store_ref(self.cell(index), item) }
        }
    }

    unsafe fn read(&self, index: usize) -> T {
        if index < self.len {
            // SAFETY: as in `write`.
            unsafe { crate::raw::copy::load(self.cell(index)) }
        } else {
            T::zeroed()
        }
    }

    unsafe fn read_into(&self, index: usize, out: &mut MaybeUninit<T>) {
        if index < self.len {
            // SAFETY: as in `write`; `out` is private and has room for one `T`.
            unsafe { crate::raw::copy::load_into(out.as_mut_ptr(), self.cell(index)) }
        } else {
            out.write(T::zeroed());
        }
    }
}

/// A bounded queue of `T` shared between processes under a name, like Python's
/// `multiprocessing.Queue` / `JoinableQueue`.
///
/// Many producers and many consumers, in any processes; each item goes to exactly one
/// consumer, and each producer's items arrive in the order it put them. Puts and gets into
/// a queue that is neither full nor empty take no lock and make no system call. A process
/// killed at any instruction costs at most the one item it was putting or taking.
///
/// # Examples
/// ```
/// # let name = format!("doc-queue-{}", std::process::id());
/// use shmproc::{GetError, Queue};
/// let q = Queue::<u64>::create(&name, 16)?;
/// q.put(1)?;
/// q.try_put(2)?;
/// assert_eq!(q.len(), 2);
/// assert_eq!(q.get()?, 1);
/// q.close();
/// assert_eq!(q.get()?, 2); // close lets consumers drain what is left
/// assert_eq!(q.get(), Err(GetError::Closed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    /// This handle's claim records (one per thread that uses it). Before `seg`: it gives
    /// them back when dropped, while the mapping is still there.
    leases: HandleLeases,
    seg: Segment,
    /// The ring view every call uses, built once in `wrap`. Its references point into
    /// `seg`'s mapping, which stays mapped as long as the handle lives; `ring()` lends them
    /// for `&self`'s lifetime only, never `'static`.
    ring: Ring<'static, ShmPayload<T>>,
    cap: usize,
    _t: PhantomData<T>,
}

// SAFETY: the ring's references and raw pointers point into `seg`'s mapping, which moves
// with the handle (the mapping itself never moves); all
// shared state is reached through atomics or byte-wise atomic copies.
unsafe impl<T: Pod + Send> Send for Queue<T> {}
// SAFETY: as above; every method takes `&self` and touches shared memory only atomically.
unsafe impl<T: Pod + Send> Sync for Queue<T> {}

impl<T: Pod> Queue<T> {
    fn spec(opts: &Options) -> TypeDesc {
        TypeDesc::of::<T>(Kind::Queue, opts.schema_id)
    }

    fn check_capacity(capacity: usize) -> Result<u64, OpenError> {
        if core::mem::size_of::<T>() == 0 {
            return Err(OpenError::InvalidSize {
                what: "zero-sized item types cannot be queued".into(),
            });
        }
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(OpenError::InvalidSize {
                what: format!("capacity {capacity} is not in 1..={MAX_CAPACITY}"),
            });
        }
        Ok(capacity as u64)
    }

    /// Creates the queue `name` with room for `capacity` items. The handle owns the name and
    /// unlinks it when dropped (unless [`Options::persist`]).
    ///
    /// # Errors
    /// `InvalidSize` (capacity 0, too large, or a layout that overflows), `NoSpace`
    /// (`/dev/shm` lacks room for the segment; nothing is left behind), `InvalidName`,
    /// `AlreadyExists`, `Io`.
    pub fn create(name: &str, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(name, capacity, &Options::new())
    }

    /// [`create`](Queue::create) with options.
    ///
    /// # Errors
    /// As [`create`](Queue::create).
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self, OpenError> {
        let cap = Self::check_capacity(capacity)?;
        let spec = Spec {
            desc: Self::spec(opts),
            body_size: &|count, _, participants| body_size::<T>(count, participants),
        };
        // All-zero bytes are an empty, open ring: nothing to initialise.
        Self::wrap(Segment::create(name, &spec, cap, opts, &|_| {})?)
    }

    /// Opens the existing queue `name`.
    ///
    /// # Errors
    /// `NotFound`, `IncompatibleType` (another kind or `T`), `Corrupted`, `VersionMismatch`,
    /// `UntrustedOwner`, `InsecurePermissions`, `InitTimeout`, `InvalidName`, `Io`.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](Queue::open) with options.
    ///
    /// # Errors
    /// As [`open`](Queue::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        let spec = Spec {
            desc: Self::spec(opts),
            body_size: &|count, _, participants| body_size::<T>(count, participants),
        };
        Self::wrap(Segment::open(name, &spec, opts)?)
    }

    /// Opens `name`, or creates it with `capacity` if it does not exist; race-free among
    /// processes. An existing queue keeps its own capacity.
    ///
    /// # Errors
    /// As [`create`](Queue::create) and [`open`](Queue::open).
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, capacity, &Options::new())
    }

    /// [`open_or_create`](Queue::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Queue::open_or_create).
    pub fn open_or_create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self, OpenError> {
        let cap = Self::check_capacity(capacity)?;
        let spec = Spec {
            desc: Self::spec(opts),
            body_size: &|count, _, participants| body_size::<T>(count, participants),
        };
        let (seg, _) = Segment::open_or_create(name, &spec, cap, opts, &|_| {})?;
        Self::wrap(seg)
    }

    fn wrap(seg: Segment) -> Result<Self, OpenError> {
        let count = seg.count();
        let bad = || OpenError::corrupted(format!("queue capacity {count} is out of range"));
        let cap = usize::try_from(count).map_err(|_| bad())?;
        let participants = seg.participant_count();
        let cells = cells::<T>(participants).ok_or_else(bad)?;
        // `body_size::<T>(count, participants)` equals the validated body size, so every
        // offset below is inside the mapping (checked by `header::validate`).
        let body = seg.body();
        let control = body.cast::<RingControl>();
        let records = body.wrapping_add(CONTROL_SIZE as usize).cast::<ClaimRecord>();
        let nrecords = records_for(participants) as usize;
        // SAFETY: the records (128-aligned: the body is, and `CONTROL_SIZE` is a multiple of
        // 64) and the control block lie in the validated body, which lives as long as `seg`;
        // `leases` is declared before `seg`, so it is dropped first.
        let leases = unsafe {
            HandleLeases::new(
                records,
                nrecords,
                core::ptr::addr_of!((*control).records_used).cast(),
                participants as usize,
            )
        };
        let slot_stride = (cells.size / SLOT_SIZE) as usize;
        let base = body.wrapping_add((cells.offset + cells.item) as usize);
        let payload = ShmPayload {
            base,
            stride: cells.size as usize,
            len: cap,
            _t: PhantomData,
        };
        // The words between slot words hold items: the ring never touches them, and
        // `ShmPayload` copies them atomically (`Slot`'s `UnsafeCell` allows those writes). The
        // `'static` references are lent out only through `ring()`, for `&self`'s lifetime.
        // SAFETY: the control block (body start, 640 bytes), the `nrecords` records after it
        // and the `cap * slot_stride` slot words at `cells` lie in the validated body, mapped
        // while `seg` (so the handle) lives; all are atomics, valid for any bytes.
        let (control, slots, records) = unsafe {
            (
                &*control,
                std::slice::from_raw_parts(
                    body.wrapping_add(cells.offset as usize).cast::<Slot>(),
                    cap * slot_stride,
                ),
                std::slice::from_raw_parts(records, nrecords),
            )
        };
        let ring = Ring::new_strided(control, slots, slot_stride, records, payload).ok_or_else(bad)?;
        // Wide cells of 128 bytes are worth prefetching (`with_ahead` ignores other strides);
        // inline cells are too small, larger ones stream.
        let ring = ring.with_ahead(Ahead {
            base: body.wrapping_add(cells.offset as usize).addr(),
            stride: cells.size as usize,
            word_inside: true,
        });
        Ok(Queue {
            leases,
            ring,
            cap,
            seg,
            _t: PhantomData,
        })
    }

    #[inline]
    fn ring(&self) -> &Ring<'_, ShmPayload<T>> {
        &self.ring
    }

    /// The puts: `item` is copied once, into its cell, and handed back only in an error.
    #[inline]
    fn put_in(&self, block: Block, item: T) -> Result<(), PutError<T>> {
        self.leases
            .with(&self.seg, |mine| {
                self.ring().put_ref(block, &item, mine, &self.seg, &self.seg)
            })
            .map_err(|fail| put_error(fail, item))
    }

    /// The gets: the item is copied once, out of its cell, into the value returned.
    #[inline]
    fn get_in(&self, block: Block) -> Result<T, GetError> {
        let mut out = MaybeUninit::uninit();
        self.leases
            .with(&self.seg, |mine| {
                self.ring().get_into(block, &mut out, mine, &self.seg, &self.seg)
            })
            .map_err(get_error)?;
        // SAFETY: `get_into` returned `Ok`, so it wrote the item into `out`.
        Ok(unsafe { out.assume_init() })
    }

    /// Puts `item`, waiting while the queue is full.
    ///
    /// # Errors
    /// `Closed(item)` if the queue is (or gets) closed; `Lost(item)` (see [`PutError`]).
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_in(Block::Until(None), item)
    }

    /// Puts `item` if there is room now (Python's `put_nowait`).
    ///
    /// `Full` means that the slot the next item goes into is still taken: by an item that no
    /// consumer has claimed (the queue is full), or by a consumer still copying its item out.
    /// A running consumer finishes that copy in nanoseconds, and `try_put` waits for it, at
    /// most 20 µs in all (re-reading the slot, yielding the CPU now and then). The slot of a
    /// killed consumer is freed at once (its item is lost), and so is the head position of a
    /// killed producer. So `Full` while the queue has room remains only when the consumer in
    /// that slot is alive but has not run for that long (descheduled, or stopped by a signal
    /// or a debugger); such a call returns after about 20 µs.
    ///
    /// # Errors
    /// `Full(item)`, `Closed(item)`, `Lost(item)`.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_in(Block::No, item)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// Once `timeout` has passed, the call makes one last attempt as
    /// [`try_put`](Queue::try_put) does, so it may return up to 20 µs after the timeout (only
    /// while a consumer is copying out of the slot it needs), and `put_timeout(item,
    /// Duration::ZERO)` answers as `try_put` does, with `Timeout` for `Full`.
    ///
    /// # Errors
    /// `Timeout(item)`, `Closed(item)`, `Lost(item)`.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_in(Block::Until(deadline_after(timeout)), item)
    }

    /// [`put`](Queue::put) from a reference: the item is copied from `*item` straight into
    /// its cell. For large `T` (kilobytes) this saves the copy that passing `T` by value
    /// costs; the caller keeps the item, so the error carries `()`.
    ///
    /// # Errors
    /// `Closed(())`, `Lost(())` (see [`PutError`]).
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-put-ref-{}", std::process::id());
    /// let q = shmproc::Queue::<[u64; 512]>::create(&name, 4)?;
    /// let mut frame = [0u64; 512];
    /// frame[0] = 7;
    /// q.put_ref(&frame)?;
    /// let mut got = [0u64; 512];
    /// q.get_into(&mut got)?;
    /// assert_eq!(got[0], 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_ref(&self, item: &T) -> Result<(), PutError<()>> {
        self.put_ref_in(Block::Until(None), item)
    }

    /// [`try_put`](Queue::try_put) from a reference (see [`put_ref`](Queue::put_ref)).
    ///
    /// # Errors
    /// `Full(())`, `Closed(())`, `Lost(())`.
    pub fn try_put_ref(&self, item: &T) -> Result<(), PutError<()>> {
        self.put_ref_in(Block::No, item)
    }

    /// [`put_timeout`](Queue::put_timeout) from a reference (see [`put_ref`](Queue::put_ref)).
    ///
    /// # Errors
    /// `Timeout(())`, `Closed(())`, `Lost(())`.
    pub fn put_ref_timeout(&self, item: &T, timeout: Duration) -> Result<(), PutError<()>> {
        self.put_ref_in(Block::Until(deadline_after(timeout)), item)
    }

    #[inline]
    fn put_ref_in(&self, block: Block, item: &T) -> Result<(), PutError<()>> {
        self.leases
            .with(&self.seg, |mine| {
                self.ring().put_ref(block, item, mine, &self.seg, &self.seg)
            })
            .map_err(|fail| put_error(fail, ()))
    }

    /// [`get`](Queue::get) into `*out`: the item is copied from its cell straight into
    /// `*out`, which for large `T` saves the copy that returning `T` by value costs. After
    /// an error `*out` is still a valid `T`, but its bytes are unspecified.
    ///
    /// # Errors
    /// As [`get`](Queue::get).
    pub fn get_into(&self, out: &mut T) -> Result<(), GetError> {
        self.get_into_in(Block::Until(None), out)
    }

    /// [`try_get`](Queue::try_get) into `*out` (see [`get_into`](Queue::get_into)).
    ///
    /// # Errors
    /// As [`try_get`](Queue::try_get).
    pub fn try_get_into(&self, out: &mut T) -> Result<(), GetError> {
        self.get_into_in(Block::No, out)
    }

    /// [`get_timeout`](Queue::get_timeout) into `*out` (see [`get_into`](Queue::get_into)).
    ///
    /// # Errors
    /// As [`get_timeout`](Queue::get_timeout).
    pub fn get_into_timeout(&self, out: &mut T, timeout: Duration) -> Result<(), GetError> {
        self.get_into_in(Block::Until(deadline_after(timeout)), out)
    }

    #[inline]
    fn get_into_in(&self, block: Block, out: &mut T) -> Result<(), GetError> {
        // SAFETY: `MaybeUninit<T>` has `T`'s layout, and every value the ring writes through
        // it is a whole `T` (a `Pod`, any bytes valid), so `*out` stays a valid `T` whether or
        // not the get writes it.
        let out = unsafe { &mut *(out as *mut T).cast::<MaybeUninit<T>>() };
        self.leases
            .with(&self.seg, |mine| {
                self.ring().get_into(block, out, mine, &self.seg, &self.seg)
            })
            .map_err(get_error)
    }

    /// Takes the oldest item, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and drained.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_in(Block::Until(None))
    }

    /// Takes the oldest item if there is one now (Python's `get_nowait`).
    ///
    /// `Empty` means that no item is published at the head: the queue is empty, or the
    /// producer that claimed the head position is still writing it (FIFO: items behind it
    /// wait). A running producer finishes that copy in nanoseconds, and `try_get` waits for
    /// it, at most 20 µs in all (re-reading the slot, yielding the CPU now and then). The
    /// position of a killed producer is stepped over at once. So `Empty` while an item whose
    /// put has returned waits behind the head remains only when the producer at the head is
    /// alive but has not run for that long (descheduled, or stopped by a signal or a
    /// debugger); such a call returns after about 20 µs. A call that finds the head free
    /// reads the producers' `tail` word, so a loop polling an empty queue makes each put
    /// fetch that cache line back.
    ///
    /// # Errors
    /// [`GetError::Empty`], [`GetError::Closed`].
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_in(Block::No)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// Once `timeout` has passed, the call makes one last attempt as
    /// [`try_get`](Queue::try_get) does, so it may return up to 20 µs after the timeout (only
    /// while a producer is writing the head item), and `get_timeout(Duration::ZERO)` answers
    /// as `try_get` does, with `Timeout` for `Empty`.
    ///
    /// # Errors
    /// [`GetError::Timeout`], [`GetError::Closed`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_in(Block::Until(deadline_after(timeout)))
    }

    /// [`get`](Queue::get) in async form (feature `tokio`): the task waits on this handle's
    /// doorbell (ARCHITECTURE.md, "Async waiting"), with no thread.
    ///
    /// Cancel safe: an item is taken and returned in one poll, so a future dropped at its
    /// await point has taken nothing, and it leaves no registration behind. A producer that
    /// stalls for more than 20 µs in the middle of writing the head item is waited for in
    /// 10 ms steps.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and drained.
    #[cfg(feature = "tokio")]
    pub async fn get_async(&self) -> Result<T, GetError> {
        self.get_async_in(None).await
    }

    /// [`get_timeout`](Queue::get_timeout) in async form (feature `tokio`); cancel safe as
    /// [`get_async`](Queue::get_async).
    ///
    /// # Errors
    /// [`GetError::Timeout`], [`GetError::Closed`].
    #[cfg(feature = "tokio")]
    pub async fn get_timeout_async(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_async_in(deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn get_async_in(&self, deadline: Option<std::time::Instant>) -> Result<T, GetError> {
        let attempt = || match self.get_in(Block::No) {
            Err(GetError::Empty) => None,
            r => Some(r),
        };
        let r = self
            .seg
            .wait_async(
                deadline,
                attempt,
                || self.ring().announce_get(),
                |()| self.ring().depart_get(),
            )
            .await;
        r.unwrap_or(Err(GetError::Timeout))
    }

    /// [`put`](Queue::put) in async form (feature `tokio`): the task waits for room on this
    /// handle's doorbell, with no thread.
    ///
    /// Cancel safety: the item is put in one poll or not at all; a future dropped at its
    /// await point has not put it, and drops it (as tokio's `mpsc::Sender::send`). Use
    /// [`try_put`](Queue::try_put) in a loop to keep it.
    ///
    /// # Errors
    /// `Closed(item)`, `Lost(item)` (see [`PutError`]).
    #[cfg(feature = "tokio")]
    pub async fn put_async(&self, item: T) -> Result<(), PutError<T>> {
        self.put_async_in(item, None).await
    }

    /// [`put_timeout`](Queue::put_timeout) in async form (feature `tokio`).
    ///
    /// # Errors
    /// `Timeout(item)`, `Closed(item)`, `Lost(item)`.
    #[cfg(feature = "tokio")]
    pub async fn put_timeout_async(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_async_in(item, deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn put_async_in(&self, item: T, deadline: Option<std::time::Instant>) -> Result<(), PutError<T>> {
        let mut held = Some(item);
        let attempt = || {
            let item = held.take()?;
            match self.put_in(Block::No, item) {
                Err(PutError::Full(item)) => {
                    held = Some(item);
                    None
                }
                r => Some(r),
            }
        };
        let r = self
            .seg
            .wait_async(
                deadline,
                attempt,
                || self.ring().announce_put(),
                |()| self.ring().depart_put(),
            )
            .await;
        match r {
            Some(r) => r,
            None => Err(PutError::Timeout(held.take().expect("a timed-out put keeps its item"))),
        }
    }

    /// Number of items in the queue (exact when nobody is putting or getting).
    pub fn len(&self) -> usize {
        self.ring().len(&self.seg)
    }

    /// Whether the queue holds no item (exact when quiescent).
    pub fn is_empty(&self) -> bool {
        self.ring().is_empty(&self.seg)
    }

    /// Whether the queue holds `capacity` items (exact when quiescent). The position of a
    /// producer that died after claiming it keeps its room until a consumer passes it, so
    /// `try_put` can report `Full` a little before `is_full` does.
    pub fn is_full(&self) -> bool {
        self.ring().is_full(&self.seg)
    }

    /// The number of items the queue can hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Closes the queue for every process: puts fail with `Closed(item)`, gets drain what is
    /// left and then fail with [`GetError::Closed`], and every blocked caller wakes up.
    /// Replaces the "put a `None` sentinel" pattern.
    pub fn close(&self) {
        self.ring().close(&self.seg);
    }

    /// Whether [`close`](Queue::close) was called, by any process.
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }

    /// Marks one item taken *through this handle* as processed (Python's
    /// `JoinableQueue.task_done`).
    ///
    /// # Errors
    /// [`TaskError::TooManyTaskDone`] when called more times than this handle took items.
    pub fn task_done(&self) -> Result<(), TaskError> {
        self.ring()
            .task_done(self.seg.tasks_done(), crate::raw::Liveness::me(&self.seg), &self.seg)
            .map_err(|_| TaskError::TooManyTaskDone)
    }

    /// Waits until every item put so far has been taken and marked done (Python's
    /// `JoinableQueue.join`). Items held by a process that died are not waited for.
    ///
    /// # Errors
    /// None in practice; the signature matches [`join_timeout`](Queue::join_timeout).
    pub fn join(&self) -> Result<(), TaskError> {
        self.join_until(None)
    }

    /// [`join`](Queue::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TaskError::Timeout`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TaskError> {
        self.join_until(deadline_after(timeout))
    }

    /// [`join`](Queue::join) in async form (feature `tokio`): waits on this handle's
    /// doorbell, which `task_done` and `close` ring. Cancel safe: a join takes nothing and
    /// leaves no registration behind.
    ///
    /// # Errors
    /// As [`join`](Queue::join).
    #[cfg(feature = "tokio")]
    pub async fn join_async(&self) -> Result<(), TaskError> {
        crate::message::join_ring_async(&self.seg, self.ring(), None).await
    }

    /// [`join_timeout`](Queue::join_timeout) in async form (feature `tokio`); cancel safe as
    /// [`join_async`](Queue::join_async).
    ///
    /// # Errors
    /// [`TaskError::Timeout`], and as [`join`](Queue::join).
    #[cfg(feature = "tokio")]
    pub async fn join_timeout_async(&self, timeout: Duration) -> Result<(), TaskError> {
        crate::message::join_ring_async(&self.seg, self.ring(), deadline_after(timeout)).await
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<(), TaskError> {
        join_ring(&self.seg, self.ring(), deadline)
    }

    /// The name this handle was opened or created under.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Keep the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.seg.set_persist();
    }

    /// Whether dropping this handle unlinks the name.
    pub fn owns_name(&self) -> bool {
        self.seg.owns_name()
    }
}

/// Heap-backed queues (`crate::testing::heap_queue`).
#[cfg(feature = "testing")]
impl<T: Pod> Queue<T> {
    /// A queue of `capacity` items on heap memory laid out like a segment
    /// (`Segment::heap`): no system call, so Miri can run it.
    pub(crate) fn heap(capacity: usize) -> Result<Self, OpenError> {
        let cap = Self::check_capacity(capacity)?;
        let opts = Options::new();
        let spec = Spec {
            desc: Self::spec(&opts),
            body_size: &|count, _, participants| body_size::<T>(count, participants),
        };
        Self::wrap(Segment::heap(&spec, cap, &opts, &|_| {})?)
    }
}

/// Peer handles and simulated deaths, for the conformance suite (`crate::testing`).
#[cfg(feature = "testing")]
impl<T: Pod> crate::testing::Handle for Queue<T> {
    /// Another handle on this queue, as another process would open it.
    fn peer(&self) -> Result<Self, OpenError> {
        let spec = Spec {
            desc: Self::spec(&Options::new()),
            body_size: &|count, _, participants| body_size::<T>(count, participants),
        };
        Self::wrap(self.seg.peer(&spec)?)
    }

    /// Ends this handle as SIGKILL would (see `Segment::simulate_crash`).
    fn simulate_crash(self) {
        let Queue { leases, seg, .. } = self;
        leases.abandon();
        seg.simulate_crash();
    }
}

/// Participants stopped right after a claim, for the conformance suite (`crate::testing`).
#[cfg(feature = "testing")]
impl<T: Pod> crate::testing::Stall for Queue<T> {
    /// Claims the tail position for a put and stops there for good, as a producer stopped at
    /// the `queue.put.after_claim` fault point (then `simulate_crash` for a killed one).
    /// `false` if there was no room to claim.
    fn stall_after_put_claim(&self) -> bool {
        self.leases.with(&self.seg, |mine| {
            self.ring().claim_put_and_stop(mine, &self.seg, &self.seg)
        })
    }

    /// Claims the head item and stops holding it, as a consumer stopped at the
    /// `queue.get.after_claim` fault point. `false` if there was no item to claim.
    fn stall_after_get_claim(&self) -> bool {
        self.leases.with(&self.seg, |mine| {
            self.ring().claim_get_and_stop(mine, &self.seg, &self.seg)
        })
    }
}

/// Waits until every item put into `ring` (a ring in `seg`) so far was taken and marked done,
/// or `deadline` passes; items held by dead participants are not waited for
/// (`RawRing::join`). Shared by `Queue` and the message kinds, whose participants count their
/// `task_done`s in their records' `tasks_done` word.
pub(crate) fn join_ring(seg: &Segment, ring: &RawRing<'_>, deadline: Option<Instant>) -> Result<(), TaskError> {
    let table = seg.participant_table();
    let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
        for (i, rec) in table.iter().enumerate() {
            if let Some(owner) = rec.occupant(i as u32)
                // Acquire, before the ring reads the records' `taken`: a `task_done` seen
                // here comes with the get it follows.
                && !visit(owner, rec.tasks_done.load(Ordering::Acquire))
            {
                return;
            }
        }
    };
    ring.join(deadline, seg, &participants, seg)
        .map_err(|_| TaskError::Timeout)
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("segment", &self.seg)
            .field("capacity", &self.cap)
            .finish()
    }
}

/// The public error for a ring put's failure, handing `item` back.
fn put_error<T>(fail: PutFail, item: T) -> PutError<T> {
    match fail {
        PutFail::Full => PutError::Full(item),
        PutFail::Closed => PutError::Closed(item),
        PutFail::Lost => PutError::Lost(item),
        PutFail::Timeout => PutError::Timeout(item),
    }
}

/// The public error for a ring get's failure.
fn get_error(fail: GetFail) -> GetError {
    match fail {
        GetFail::Empty | GetFail::Busy => GetError::Empty,
        GetFail::Closed => GetError::Closed,
        GetFail::Timeout => GetError::Timeout,
    }
}
