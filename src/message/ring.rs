//! The message ring: the layout of one ring of fixed-size cells in a segment body (checked
//! arithmetic), and `MsgRing`, which puts and gets length-prefixed messages in those cells
//! over the crash-tolerant slot protocol of `raw::ring`.

use super::MAX_MESSAGE_SIZE;
use super::stream::{MessageReader, MessageWriter};
use crate::error::{OpenError, RecvError, SendError};
use crate::primitive::{AtomicU64, Ordering};
use crate::queue::MAX_CAPACITY;
use crate::raw::Liveness;
use crate::raw::claims::{ClaimRecord, HandleLeases, records_for};
use crate::raw::ring::{Ahead, Block, GetFail, PutFail, RawRing, RingControl, Slot};
use crate::segment::header::align_up;
use std::marker::PhantomData;

const CONTROL_SIZE: u64 = core::mem::size_of::<RingControl>() as u64;
const SLOT_SIZE: u64 = core::mem::size_of::<Slot>() as u64;
/// Each cell starts with its slot word, then the length word, then the message bytes.
const CELL_HEADER: u64 = 16;
const RECORD_SIZE: u64 = core::mem::size_of::<ClaimRecord>() as u64;

/// Where one message ring lies, in bytes from the start of the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingLayout {
    control: u64,
    records: u64,
    nrecords: u64,
    participants: u32,
    /// Cell `i` starts with slot word `i` (so there is no separate slot array).
    cells: u64,
    stride: u64,
    cap: u64,
    max: u64,
    /// First byte after the ring.
    pub(crate) end: u64,
}

impl RingLayout {
    /// The layout of a ring of `cap` messages of up to `max` bytes starting at `base`
    /// (rounded up to 64); `None` if a size is out of range or the arithmetic overflows.
    pub(crate) fn new(base: u64, cap: u64, max: u64, participants: u32) -> Option<RingLayout> {
        if cap == 0 || cap > MAX_CAPACITY as u64 || max > MAX_MESSAGE_SIZE as u64 {
            return None;
        }
        // 128: the control block and the records keep their words in pairs of cache lines of
        // their own (see `RingControl`), and so do the cells' starts.
        let control = align_up(base, 128)?;
        let records = control.checked_add(CONTROL_SIZE)?;
        let nrecords = records_for(participants);
        let cells = align_up(records.checked_add(nrecords.checked_mul(RECORD_SIZE)?)?, 128)?;
        // The slot words live in the cells (a strided ring, as `Queue` does for small items):
        // a put or get touches its own cell's lines only, where separate slot words, eight to
        // a line, would have producer and consumer working on one line for eight messages.
        let stride = align_up(max.checked_add(CELL_HEADER)?, 64)?;
        let end = cells.checked_add(cap.checked_mul(stride)?)?;
        Some(RingLayout {
            control,
            records,
            nrecords,
            participants,
            cells,
            stride,
            cap,
            max,
            end,
        })
    }
}

/// Where a message ring's parts lie, in bytes from the body start (inspection).
pub(crate) struct RingParts {
    pub(crate) control: u64,
    pub(crate) records: u64,
    pub(crate) nrecords: u64,
    /// The first slot word (cell 0's first word).
    pub(crate) slots: u64,
    /// Slot words from one to the next.
    pub(crate) slot_stride: u64,
    pub(crate) cap: u64,
}

impl RingLayout {
    pub(crate) fn parts(&self) -> RingParts {
        RingParts {
            control: self.control,
            records: self.records,
            nrecords: self.nrecords,
            slots: self.cells,
            slot_stride: self.stride / SLOT_SIZE,
            cap: self.cap,
        }
    }
}

/// Checks a requested capacity and maximum message size, naming what is wrong.
pub(crate) fn check_sizes(capacity: usize, max: usize) -> Result<(u64, u64), OpenError> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(OpenError::InvalidSize {
            what: format!("capacity {capacity} is not in 1..={MAX_CAPACITY}"),
        });
    }
    if max > MAX_MESSAGE_SIZE {
        return Err(OpenError::InvalidSize {
            what: format!("max_message_size {max} exceeds the limit of {MAX_MESSAGE_SIZE} bytes"),
        });
    }
    Ok((capacity as u64, max as u64))
}

/// One message ring in a mapping: raw pointers into a segment body, valid as long as the
/// segment that owns the mapping.
pub(crate) struct MsgRing {
    /// This handle's claim records; the owner of a `MsgRing` declares it before its
    /// segment, so that these are given back while the mapping is there.
    leases: HandleLeases,
    /// The ring view every call uses, built once in `new`: its references point into the
    /// mapping, which outlives this value (`new`'s contract); `raw()` lends them for `&self`'s
    /// lifetime only, never `'static`.
    raw: RawRing<'static>,
    /// Cell `i`, whose first word is slot word `i`.
    cells: *mut u8,
    cap: usize,
    stride: usize,
    max: usize,
}

impl MsgRing {
    /// Views the ring described by `layout` in the body starting at `body`.
    ///
    /// # Safety
    /// `body` is valid for reads and writes of `layout.end` bytes, 128-aligned, for as long as
    /// the returned value is used, and all other accesses to it are atomic (or made by other
    /// processes).
    pub(crate) unsafe fn new(body: *mut u8, layout: &RingLayout) -> MsgRing {
        // `layout.end` fits in the mapping, hence in `usize`, and so does every offset below.
        let control: *const RingControl = body.wrapping_add(layout.control as usize).cast();
        let records: *const ClaimRecord = body.wrapping_add(layout.records as usize).cast();
        let nrecords = layout.nrecords as usize;
        let cells = body.wrapping_add(layout.cells as usize);
        let (cap, stride) = (layout.cap as usize, layout.stride as usize);
        // Seen as 8-byte `Slot`s, the cells are the strided ring's words: slot word `i` starts
        // cell `i`, and the ring never touches the words in between, which are read and
        // written atomically. The `'static` references are lent only through `raw()`.
        // SAFETY: control block (640 bytes), `nrecords` records and `cap` cells of `stride`
        // bytes lie in the ring, 128-aligned (`RingLayout`), mapped while we are used (this
        // function's contract); all are atomics, valid for any bytes.
        let (control_ref, slots, record_refs) = unsafe {
            (
                &*control,
                std::slice::from_raw_parts(cells.cast::<Slot>().cast_const(), cap * stride / SLOT_SIZE as usize),
                std::slice::from_raw_parts(records, nrecords),
            )
        };
        let raw = match RawRing::new_strided(control_ref, slots, stride / SLOT_SIZE as usize, record_refs) {
            Some(r) => r.with_ahead(Ahead {
                base: cells.addr(),
                stride,
                word_inside: true,
            }),
            None => unreachable!("a message ring has at least one slot (RingLayout::new)"),
        };
        MsgRing {
            // SAFETY: the records and the control block lie in the ring (this function's
            // contract), 128-aligned; the caller keeps the body alive while we are used.
            leases: unsafe {
                HandleLeases::new(
                    records,
                    nrecords,
                    core::ptr::addr_of!((*control).records_used).cast(),
                    layout.participants as usize,
                )
            },
            raw,
            cells,
            cap,
            stride,
            max: layout.max as usize,
        }
    }

    #[inline]
    pub(crate) fn raw(&self) -> &RawRing<'_> {
        &self.raw
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.max
    }

    /// Start of cell `index`; `index < cap` (the ring only hands out such indices).
    fn cell(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.cap);
        self.cells.wrapping_add(index.min(self.cap - 1) * self.stride)
    }

    fn len_word(&self, index: usize) -> &AtomicU64 {
        // SAFETY: the cell starts 64-aligned inside the mapping (`RingLayout`), so its bytes
        // 8..16 (after the slot word) are a valid, aligned `AtomicU64` for the mapping's
        // lifetime.
        unsafe { AtomicU64::from_ptr(self.cell(index).wrapping_add(8).cast()) }
    }

    /// Sends a message of `len` bytes written by `fill`, which runs at most once, while this
    /// process holds the slot's claim.
    pub(crate) fn put_with<L, W, F>(
        &self,
        block: Block,
        len: usize,
        fill: F,
        live: &L,
        wait: &W,
    ) -> Result<(), SendError>
    where
        L: Liveness + ?Sized,
        W: crate::raw::Wait + ?Sized,
        F: FnOnce(&mut MessageWriter<'_>),
    {
        if len > self.max {
            return Err(SendError::TooLarge {
                size: len,
                max: self.max,
            });
        }
        let mut fill = Some(fill);
        let mut write = |index: usize| {
            self.len_word(index).store(len as u64, Ordering::Relaxed);
            let mut w = MessageWriter {
                data: self.cell(index).wrapping_add(CELL_HEADER as usize),
                len,
                pos: 0,
                _cell: PhantomData,
            };
            if let Some(f) = fill.take() {
                f(&mut w);
            }
        };
        self.leases
            .with(live, |mine| self.raw().put_with(block, &mut write, mine, live, wait))
            .map_err(|fail| match fail {
                PutFail::Full => SendError::Full,
                PutFail::Closed => SendError::Closed,
                PutFail::Lost => SendError::Lost,
                PutFail::Timeout => SendError::Timeout,
            })
    }

    /// Sends `data`.
    pub(crate) fn put<L, W>(&self, block: Block, data: &[u8], live: &L, wait: &W) -> Result<(), SendError>
    where
        L: Liveness + ?Sized,
        W: crate::raw::Wait + ?Sized,
    {
        let fill = |w: &mut MessageWriter<'_>| {
            // In a process started with a fault point, two halves, so that crash tests can
            // kill a producer with half a message written (`message.put.half_written`).
            // Otherwise one copy, so that a message of 1 KiB or more stays one `rep movsb`
            // (`raw::copy`) instead of two halves below that threshold, copied by word loops
            // (row `queue 1P1C | shmproc MessageQueue<String> | 1 KiB`; ARCHITECTURE.md,
            // "Copies").
            if crate::fault::armed() {
                // Split at a multiple of 8, so that both halves are copied word by word.
                let (first, second) = data.split_at((data.len() / 2) & !7);
                w.write_at(0, first);
                crate::fault::hit("message.put.half_written");
                w.write_at(first.len(), second);
            } else {
                w.write_at(0, data);
            }
        };
        self.put_with(block, data.len(), fill, live, wait)
    }

    /// Receives the next message into `buf` (cleared first; its capacity is reused).
    pub(crate) fn get_into<L, W>(&self, block: Block, buf: &mut Vec<u8>, live: &L, wait: &W) -> Result<(), RecvError>
    where
        L: Liveness + ?Sized,
        W: crate::raw::Wait + ?Sized,
    {
        let max = self.max;
        let mut read = |index: usize| -> Result<(), u64> {
            // Untrusted: any value may be here. Only `len <= max` bytes are read.
            let len = self.len_word(index).load(Ordering::Relaxed);
            if len > max as u64 {
                return Err(len);
            }
            let len = len as usize;
            buf.clear();
            buf.reserve(len);
            let src = self.cell(index).wrapping_add(CELL_HEADER as usize);
            // SAFETY: the cell holds `16 + max >= 16 + len` bytes inside the mapping
            // (`RingLayout`), accessed by others only atomically; `buf` has room for `len`
            // bytes after `reserve` and is private.
            unsafe {
                crate::raw::copy::load_bytes(buf.as_mut_ptr(), src, len);
                buf.set_len(len);
            }
            Ok(())
        };
        match self
            .leases
            .with(live, |mine| self.raw().get_with(block, &mut read, mine, live, wait))
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(len)) => Err(RecvError::Corrupted { len, max }),
            Err(e) => Err(recv_error(e)),
        }
    }
}

impl MsgRing {
    /// Receives the next message and hands it to `f` where it lies in the slot. A panic in
    /// `f` is caught while we hold the claim, the slot is released (the message is consumed),
    /// and the panic resumes here.
    pub(crate) fn get_with_reader<L, W, R>(
        &self,
        block: Block,
        f: &mut dyn FnMut(&MessageReader<'_>) -> R,
        live: &L,
        wait: &W,
    ) -> Result<R, RecvError>
    where
        L: Liveness + ?Sized,
        W: crate::raw::Wait + ?Sized,
    {
        let max = self.max;
        let mut read = |index: usize| -> Result<std::thread::Result<R>, u64> {
            // Untrusted: any value may be here. Only `len <= max` bytes are ever read.
            let len = self.len_word(index).load(Ordering::Relaxed);
            if len > max as u64 {
                return Err(len);
            }
            let reader = MessageReader {
                data: self.cell(index).wrapping_add(CELL_HEADER as usize),
                len: len as usize,
                _cell: PhantomData,
            };
            // The ring's `read` must not unwind (a live process's abandoned claim would block
            // the ring), so the caller's panic waits until the slot is released.
            Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&reader))))
        };
        match self
            .leases
            .with(live, |mine| self.raw().get_with(block, &mut read, mine, live, wait))
        {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(panic))) => std::panic::resume_unwind(panic),
            Ok(Err(len)) => Err(RecvError::Corrupted { len, max }),
            Err(e) => Err(recv_error(e)),
        }
    }
}

/// The receive error for a ring get's failure.
fn recv_error(fail: GetFail) -> RecvError {
    match fail {
        GetFail::Empty | GetFail::Busy => RecvError::Empty,
        GetFail::Closed => RecvError::Closed,
        GetFail::Timeout => RecvError::Timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_checked_and_aligned() {
        // 640 bytes of control, then 4 records of 128 bytes (1 participant), then the cells
        // at a multiple of 128, each a slot word, a length word and the message.
        let l = RingLayout::new(0, 3, 5, 1).unwrap();
        assert_eq!(l.records, 640);
        assert_eq!(l.cells, 640 + 512);
        // (The slot words are the cells' first words: no separate offset to check.)
        assert_eq!(l.cells % 128, 0);
        assert_eq!(l.stride, 64);
        assert_eq!(l.end, 1152 + 3 * 64);
        let l = RingLayout::new(100, 1, 56, 1).unwrap();
        assert_eq!((l.control, l.stride), (128, 128));
        assert_eq!(RingLayout::new(130, 1, 48, 1).unwrap().control, 256);
        assert_eq!(RingLayout::new(0, 1, 48, 1).unwrap().stride, 64);
        assert_eq!(RingLayout::new(0, 1, 49, 1).unwrap().stride, 128);
        assert!(RingLayout::new(0, 0, 8, 1).is_none());
        assert!(RingLayout::new(0, 1, MAX_MESSAGE_SIZE as u64 + 1, 1).is_none());
        assert!(RingLayout::new(0, MAX_CAPACITY as u64, MAX_MESSAGE_SIZE as u64, 1024).is_some());
        assert!(RingLayout::new(u64::MAX - 10, 1, 1, 1).is_none());
    }
}
