//! Message queues: byte strings ([`ByteQueue`]) and serde values ([`MessageQueue<T>`]) of any
//! length up to a maximum chosen at creation, on the same crash-tolerant ring as
//! [`Queue<T>`](crate::Queue).
//!
//! # Fixed-size slots, not a variable-length ring
//!
//! Every slot reserves room for the largest message: the segment needs about
//! `capacity x (max_message_size + 16)` bytes (each cell rounded up to 64), whatever the
//! messages' real sizes. A variable-length ring (a byte ring with wrap-around records) would
//! need only as much memory as the messages in flight, but its records cannot reuse the slot
//! protocol: a dead writer's half-reserved record, its skipping and its repair would need a
//! new protocol and a new model (`models/intent_model.py` checks the slot protocol).
//! Fixed slots keep every guarantee of `Queue<T>` (exactly once, per-producer order, a
//! killed process costs at most its own message, `close`, `join`) for free. By default the
//! whole segment is allocated at creation (see [`Options::sparse`]), so creation fails with
//! [`OpenError::NoSpace`] rather than a later first touch of a slot with `SIGBUS` when
//! `/dev/shm` is full. A queue created with `sparse(true)` allocates only the pages that
//! messages touch (tmpfs allocates on first touch: a 64 KiB slot that only ever carries
//! 100-byte messages costs one 4 KiB page), at the price of that `SIGBUS` should `/dev/shm`
//! fill up later.
//!
//! | choice | memory | large messages | crash tolerance |
//! |---|---|---|---|
//! | fixed slots (this) | `capacity x max`, allocated at creation (or on first touch with `sparse`) | any size up to [`MAX_MESSAGE_SIZE`] (1 GiB) | the ring's, model-checked |
//! | variable-length ring | bytes in flight | up to the ring size | a new protocol to design and check |
//!
//! # Layout of one message ring (offsets from its start, which is 128-aligned)
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 640 | `RingControl` (tail, head, closed, three eventcounts, the records' high mark) |
//! | 640 | 128 x 4 x participants | claim records (`raw/claims.rs`) |
//! | `cells` (128-aligned) | `stride` x capacity | cell `i`: slot word `i` (as in `Queue<T>`), a `u64` length, then up to `max` bytes; `stride = align_up(16 + max, 64)` |
//!
//! A consumer never trusts the length word: one larger than the maximum drops that message
//! with [`RecvError::Corrupted`], and bytes are copied out with atomic loads into the
//! caller's buffer, so a hostile peer can garble a message but not make us read outside the
//! cell, panic or race.

use crate::codec::append;
use crate::error::{OpenError, RecvError, SendError, TaskError};
use crate::primitive::{AtomicU64, Ordering};
use crate::queue::MAX_CAPACITY;
use crate::raw::claims::{ClaimRecord, HandleLeases, records_for};
use crate::raw::ring::{Ahead, Block, GetFail, PutFail, RawRing, RingControl, Slot};
use crate::raw::{Liveness, deadline_after};
use crate::segment::header::{Kind, TypeDesc, align_up};
use crate::segment::{Options, Segment, Spec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

/// Largest `max_message_size` a message queue or pipe may have (1 GiB).
pub const MAX_MESSAGE_SIZE: usize = 1 << 30;

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
    control: *const RingControl,
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
            control,
            cells: body.wrapping_add(layout.cells as usize),
            cap: layout.cap as usize,
            stride: layout.stride as usize,
            max: layout.max as usize,
        }
    }

    pub(crate) fn raw(&self) -> RawRing<'_> {
        // SAFETY: `control` is 128-aligned with 640 bytes reserved for it, inside the mapping
        // (`new`'s contract); `RingControl` is all atomics, valid for any bytes.
        let control = unsafe { &*self.control };
        // SAFETY: the `cap` cells of `stride` bytes (a multiple of 64) lie inside the mapping,
        // 128-aligned (`RingLayout`); seen as 8-byte `Slot`s (one atomic each, valid for any
        // bytes) they are the strided ring's words: slot word `i` starts cell `i`, and the
        // ring never touches the words in between, which are read and written atomically.
        let slots = unsafe {
            std::slice::from_raw_parts(
                self.cells.cast::<Slot>().cast_const(),
                self.cap * self.stride / SLOT_SIZE as usize,
            )
        };
        match RawRing::new_strided(control, slots, self.stride / SLOT_SIZE as usize, self.leases.records()) {
            Some(r) => r.with_ahead(Ahead {
                base: self.cells.addr(),
                stride: self.stride,
                word_inside: true,
            }),
            None => unreachable!("a message ring has at least one slot (RingLayout::new)"),
        }
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

/// One received message, read where it lies in its slot ([`ByteQueue::get_with`]): no copy
/// of the whole message, only of the bytes asked for.
///
/// It is not a `&[u8]`: the slot is memory other processes can write, so every read is a
/// copy made of atomic loads. Peers that keep the protocol never write the slot while a
/// reader exists, so what it reads is the message as sent; a hostile peer can only make it
/// read other bytes, never cause undefined behaviour.
pub struct MessageReader<'a> {
    data: *const u8,
    len: usize,
    _cell: PhantomData<&'a [u8]>,
}

impl MessageReader<'_> {
    /// The message length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `buf.len()` bytes of the message, from `offset` on, into `buf`.
    ///
    /// # Panics
    /// If `offset + buf.len()` exceeds the message length.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) {
        let end = offset.checked_add(buf.len());
        assert!(
            end.is_some_and(|e| e <= self.len),
            "MessageReader::read_at: {} bytes at offset {offset} exceed the message length {}",
            buf.len(),
            self.len
        );
        // SAFETY: `offset + buf.len() <= len <= max`, and the cell has `max` data bytes in
        // the mapping; we hold the claim of the slot's position (others touch it only atomically);
        // `buf` is private.
        unsafe { crate::raw::copy::load_bytes(buf.as_mut_ptr(), self.data.wrapping_add(offset), buf.len()) };
    }

    /// Appends the whole message to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + self.len, 0);
        self.read_at(0, &mut out[at..]);
    }
}

impl std::fmt::Debug for MessageReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Writes one message straight into its slot in shared memory ([`ByteQueue::put_with`]).
///
/// It is not a `&mut [u8]`: the slot is memory other processes can write, so every write is
/// a copy made of atomic stores. It has a fixed length, chosen before the slot was claimed;
/// bytes that the closure does not write keep whatever the slot held before (an older
/// message of this queue).
pub struct MessageWriter<'a> {
    data: *mut u8,
    len: usize,
    pos: usize,
    _cell: PhantomData<&'a mut [u8]>,
}

impl MessageWriter<'_> {
    /// The message length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` to `offset` of the message.
    ///
    /// # Panics
    /// If `offset + bytes.len()` exceeds [`len`](MessageWriter::len), like slice indexing.
    /// The message is then not sent (its slot is given back), and the panic goes on.
    #[inline]
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset.checked_add(bytes.len());
        assert!(
            end.is_some_and(|e| e <= self.len),
            "MessageWriter::write_at: {} bytes at offset {offset} exceed the message length {}",
            bytes.len(),
            self.len
        );
        // SAFETY: `offset + bytes.len() <= len <= max`, and the cell has `max` data bytes in
        // the mapping; we hold the claim of the slot's position (others touch it only atomically).
        unsafe { crate::raw::copy::store_bytes(self.data.wrapping_add(offset), bytes) };
    }
}

/// Sequential writes from the start of the message; a write past the end is short
/// (`Ok(0)` once full), as for a `&mut [u8]` writer.
impl std::io::Write for MessageWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.len - self.pos);
        self.write_at(self.pos, &buf[..n]);
        self.pos += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn until(timeout: Duration) -> Block {
    Block::Until(deadline_after(timeout))
}

/// A bounded queue of byte strings shared between processes under a name: any length from 0
/// to the maximum chosen at creation ([`Options::max_message_size`], default 4 KiB).
///
/// The contract is [`Queue<T>`](crate::Queue)'s: many producers and consumers in any
/// processes, each message delivered once, in each producer's order; a process killed at
/// any point costs at most the one message it was sending or receiving, and a half-written
/// message is never delivered. Sends borrow the message, so a failed send leaves it with the
/// caller. [`get_into`](ByteQueue::get_into) reuses the caller's buffer and
/// [`put_with`](ByteQueue::put_with) writes straight into the slot, so a steady stream
/// allocates nothing.
///
/// # Examples
/// ```
/// # let name = format!("doc-bytes-{}", std::process::id());
/// use shmproc::{ByteQueue, Options, RecvError, SendError};
/// let q = ByteQueue::create_with(&name, 8, &Options::new().max_message_size(16))?;
/// q.put(b"hello")?;
/// q.put(b"")?;
/// assert_eq!(q.put(&[0; 17]), Err(SendError::TooLarge { size: 17, max: 16 }));
/// let mut buf = Vec::new();
/// q.get_into(&mut buf)?;
/// assert_eq!(buf, b"hello");
/// q.close();
/// assert_eq!(q.get()?, b"");
/// assert_eq!(q.get(), Err(RecvError::Closed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ByteQueue {
    /// Before `seg`: dropping it gives its claim records back, which needs the mapping.
    ring: MsgRing,
    seg: Segment,
}

// SAFETY: the ring's raw pointers point into `seg`'s mapping, which moves with the handle;
// all shared state is reached through atomics and atomic copies.
unsafe impl Send for ByteQueue {}
// SAFETY: as above; every method takes `&self` and touches shared memory only atomically.
unsafe impl Sync for ByteQueue {}

impl ByteQueue {
    fn desc(name: &'static str, opts: &Options) -> TypeDesc {
        TypeDesc {
            kind: Kind::Messages,
            name,
            size: opts.max_message_size as u64,
            align: 8,
            schema_id: opts.schema_id,
            any_size: true,
        }
    }

    fn body_size(count: u64, max: u64, participants: u32) -> Option<u64> {
        RingLayout::new(0, count, max, participants).map(|l| l.end)
    }

    /// What the segment layer needs to create or open a message queue of `type_name`.
    fn spec(type_name: &'static str, opts: &Options) -> Spec<'static> {
        Spec {
            desc: Self::desc(type_name, opts),
            body_size: &Self::body_size,
        }
    }

    pub(crate) fn create_typed(
        name: &str,
        type_name: &'static str,
        capacity: usize,
        opts: &Options,
    ) -> Result<ByteQueue, OpenError> {
        let (cap, _) = check_sizes(capacity, opts.max_message_size)?;
        let spec = Self::spec(type_name, opts);
        // All-zero bytes are an empty, open ring.
        Self::wrap(Segment::create(name, &spec, cap, opts, &|_| {})?)
    }

    pub(crate) fn open_typed(name: &str, type_name: &'static str, opts: &Options) -> Result<ByteQueue, OpenError> {
        let spec = Self::spec(type_name, opts);
        Self::wrap(Segment::open(name, &spec, opts)?)
    }

    pub(crate) fn open_or_create_typed(
        name: &str,
        type_name: &'static str,
        capacity: usize,
        opts: &Options,
    ) -> Result<ByteQueue, OpenError> {
        let (cap, _) = check_sizes(capacity, opts.max_message_size)?;
        let spec = Self::spec(type_name, opts);
        let (seg, _) = Segment::open_or_create(name, &spec, cap, opts, &|_| {})?;
        Self::wrap(seg)
    }

    fn wrap(seg: Segment) -> Result<ByteQueue, OpenError> {
        let layout = RingLayout::new(0, seg.count(), seg.elem_size(), seg.participant_count()).ok_or_else(|| {
            OpenError::corrupted(format!(
                "message queue capacity {} or message size {} out of range",
                seg.count(),
                seg.elem_size()
            ))
        })?;
        // SAFETY: the header was validated with `body_size == layout.end`, so the body holds
        // the whole ring; it is 128-aligned and lives as long as `seg`, which we keep.
        let ring = unsafe { MsgRing::new(seg.body(), &layout) };
        Ok(ByteQueue { seg, ring })
    }

    /// Creates the queue `name` with room for `capacity` messages of up to 4 KiB
    /// ([`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE); choose another maximum
    /// with [`create_with`](ByteQueue::create_with)). The handle owns the name.
    ///
    /// # Errors
    /// `InvalidSize` (capacity 0 or too large, a maximum over [`MAX_MESSAGE_SIZE`]), `NoSpace`
    /// (`/dev/shm` lacks room for the segment, see [`Options::sparse`]; nothing is left
    /// behind), `InvalidName`, `AlreadyExists`, `Io`.
    pub fn create(name: &str, capacity: usize) -> Result<ByteQueue, OpenError> {
        Self::create_with(name, capacity, &Options::new())
    }

    /// [`create`](ByteQueue::create) with options, e.g.
    /// `Options::new().max_message_size(1 << 20)`.
    ///
    /// # Errors
    /// As [`create`](ByteQueue::create).
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<ByteQueue, OpenError> {
        Self::create_typed(name, BYTES, capacity, opts)
    }

    /// Opens the existing byte queue `name` (its capacity and maximum message size are the
    /// creator's).
    ///
    /// # Errors
    /// `NotFound`, `IncompatibleType` (not a byte queue: another kind, or a typed
    /// [`MessageQueue`]), `Corrupted`, `VersionMismatch`, `UntrustedOwner`,
    /// `InsecurePermissions`, `InitTimeout`, `InvalidName`, `Io`.
    pub fn open(name: &str) -> Result<ByteQueue, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](ByteQueue::open) with options.
    ///
    /// # Errors
    /// As [`open`](ByteQueue::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<ByteQueue, OpenError> {
        Self::open_typed(name, BYTES, opts)
    }

    /// Opens `name`, or creates it with room for `capacity` messages of up to 4 KiB if it
    /// does not exist; race-free among processes. An existing queue keeps its own capacity
    /// and maximum message size.
    ///
    /// # Examples
    /// ```
    /// # let name = format!("doc-bq-ooc-{}", std::process::id());
    /// use shmproc::ByteQueue;
    /// let first = ByteQueue::open_or_create(&name, 8)?; // creates
    /// let second = ByteQueue::open_or_create(&name, 8)?; // opens
    /// first.put(b"hi")?;
    /// assert_eq!(second.get()?, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`create`](ByteQueue::create) and [`open`](ByteQueue::open).
    pub fn open_or_create(name: &str, capacity: usize) -> Result<ByteQueue, OpenError> {
        Self::open_or_create_with(name, capacity, &Options::new())
    }

    /// [`open_or_create`](ByteQueue::open_or_create) with options (the maximum message size
    /// of a queue it creates among them).
    ///
    /// # Errors
    /// As [`create`](ByteQueue::create) and [`open`](ByteQueue::open).
    pub fn open_or_create_with(name: &str, capacity: usize, opts: &Options) -> Result<ByteQueue, OpenError> {
        Self::open_or_create_typed(name, BYTES, capacity, opts)
    }

    /// Sends `message`, waiting while the queue is full.
    ///
    /// # Errors
    /// `TooLarge` (nothing was sent), `Closed`, `Lost`.
    pub fn put(&self, message: &[u8]) -> Result<(), SendError> {
        self.ring.put(Block::Until(None), message, &self.seg, &self.seg)
    }

    /// Sends `message` if there is room now. `Full` means what it means for
    /// [`Queue::try_put`](crate::Queue::try_put): it also waits, at most 20 µs, for a running
    /// consumer that is copying out of the slot it needs.
    ///
    /// # Errors
    /// `Full`, `TooLarge`, `Closed`, `Lost`.
    pub fn try_put(&self, message: &[u8]) -> Result<(), SendError> {
        self.ring.put(Block::No, message, &self.seg, &self.seg)
    }

    /// Sends `message`, waiting at most `timeout` for room (then one last attempt as
    /// [`try_put`](ByteQueue::try_put) makes: see [`Queue::put_timeout`](crate::Queue::put_timeout)).
    ///
    /// # Errors
    /// `Timeout`, `TooLarge`, `Closed`, `Lost`.
    pub fn put_timeout(&self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.ring.put(until(timeout), message, &self.seg, &self.seg)
    }

    /// Sends a message of `len` bytes that `fill` writes straight into the slot (no
    /// intermediate buffer), waiting while the queue is full. `fill` runs once, after a slot
    /// was claimed; see [`MessageWriter`].
    ///
    /// ```
    /// # let name = format!("doc-putwith-{}", std::process::id());
    /// use std::io::Write;
    /// let q = shmproc::ByteQueue::create(&name, 4)?;
    /// q.put_with(11, |w| {
    ///     w.write_all(b"hello ").unwrap();
    ///     w.write_at(6, b"world");
    /// })?;
    /// assert_eq!(q.get()?, b"hello world");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `TooLarge` (before claiming anything; `fill` does not run), `Closed`, `Lost`. If
    /// `fill` panics, the slot is given back and nothing is sent.
    pub fn put_with(&self, len: usize, fill: impl FnOnce(&mut MessageWriter<'_>)) -> Result<(), SendError> {
        self.ring.put_with(Block::Until(None), len, fill, &self.seg, &self.seg)
    }

    /// [`put_with`](ByteQueue::put_with) if there is room now.
    ///
    /// # Errors
    /// `Full`, `TooLarge`, `Closed`, `Lost`.
    pub fn try_put_with(&self, len: usize, fill: impl FnOnce(&mut MessageWriter<'_>)) -> Result<(), SendError> {
        self.ring.put_with(Block::No, len, fill, &self.seg, &self.seg)
    }

    /// Receives the oldest message, waiting while the queue is empty.
    ///
    /// # Errors
    /// `Closed` once the queue is closed and drained; `Corrupted` (that message is dropped).
    pub fn get(&self) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.get_into(&mut buf).map(|()| buf)
    }

    /// Receives the oldest message if there is one now. `Empty` means what it means for
    /// [`Queue::try_get`](crate::Queue::try_get): it also waits, at most 20 µs, for a running
    /// producer that is still writing the head message.
    ///
    /// # Errors
    /// `Empty`, `Closed`, `Corrupted`.
    pub fn try_get(&self) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.try_get_into(&mut buf).map(|()| buf)
    }

    /// Receives the oldest message, waiting at most `timeout` (then one last attempt as
    /// [`try_get`](ByteQueue::try_get) makes: see [`Queue::get_timeout`](crate::Queue::get_timeout)).
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `Corrupted`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.get_into_timeout(&mut buf, timeout).map(|()| buf)
    }

    /// Receives the oldest message into `buf`, replacing its contents and reusing its
    /// allocation; waits while the queue is empty. On error `buf`'s contents are unspecified.
    ///
    /// # Errors
    /// As [`get`](ByteQueue::get).
    pub fn get_into(&self, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        self.recv(Block::Until(None), buf)
    }

    /// [`get_into`](ByteQueue::get_into) if a message is there now.
    ///
    /// # Errors
    /// As [`try_get`](ByteQueue::try_get).
    pub fn try_get_into(&self, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        self.recv(Block::No, buf)
    }

    /// [`get_into`](ByteQueue::get_into), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`get_timeout`](ByteQueue::get_timeout).
    pub fn get_into_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        self.recv(until(timeout), buf)
    }

    /// Receives the next message, waiting while the queue is empty, and calls `f` with it
    /// where it lies in its slot: `f` reads only the bytes it needs ([`MessageReader`]), and
    /// nothing is copied otherwise (the zero-copy counterpart of
    /// [`put_with`](ByteQueue::put_with)). The slot is released when `f` returns.
    ///
    /// ```
    /// # let name = format!("doc-getwith-{}", std::process::id());
    /// let q = shmproc::ByteQueue::create(&name, 4)?;
    /// q.put(b"header:payload")?;
    /// let header = q.get_with(|m| {
    ///     let mut h = [0u8; 6];
    ///     m.read_at(0, &mut h);
    ///     (h, m.len())
    /// })?;
    /// assert_eq!(header, (*b"header", 14));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// `f` should be short: the slot stays claimed while it runs, and the queue behind it
    /// waits (FIFO). If `f` panics, the message is consumed and the panic goes on after the
    /// slot is released. In the rare case that a peer took this process for dead while `f`
    /// ran (only a peer scribbling on the participant table can cause that), the result is
    /// dropped and `f` runs again on the next message.
    ///
    /// # Errors
    /// As [`get`](ByteQueue::get).
    pub fn get_with<R>(&self, mut f: impl FnMut(&MessageReader<'_>) -> R) -> Result<R, RecvError> {
        self.ring
            .get_with_reader(Block::Until(None), &mut f, &self.seg, &self.seg)
    }

    /// [`get_with`](ByteQueue::get_with) if a message is there now.
    ///
    /// # Errors
    /// As [`try_get`](ByteQueue::try_get).
    pub fn try_get_with<R>(&self, mut f: impl FnMut(&MessageReader<'_>) -> R) -> Result<R, RecvError> {
        self.ring.get_with_reader(Block::No, &mut f, &self.seg, &self.seg)
    }

    pub(crate) fn recv(&self, block: Block, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        self.ring.get_into(block, buf, &self.seg, &self.seg)
    }

    /// Number of messages in the queue (exact when nobody is sending or receiving).
    pub fn len(&self) -> usize {
        self.ring.raw().len(&self.seg)
    }

    /// Whether the queue holds no message (exact when quiescent).
    pub fn is_empty(&self) -> bool {
        self.ring.raw().is_empty(&self.seg)
    }

    /// Whether the queue holds `capacity` messages (exact when quiescent).
    pub fn is_full(&self) -> bool {
        self.ring.raw().is_full(&self.seg)
    }

    /// The number of messages the queue can hold.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The largest message, in bytes, the queue carries (chosen by its creator).
    pub fn max_message_size(&self) -> usize {
        self.ring.max_message_size()
    }

    /// Closes the queue for every process: sends fail with `Closed`, receives drain what
    /// is left and then fail with `Closed`, and every blocked caller wakes up.
    pub fn close(&self) {
        self.ring.raw().close(&self.seg);
    }

    /// Whether [`close`](ByteQueue::close) was called, by any process.
    pub fn is_closed(&self) -> bool {
        self.ring.raw().is_closed()
    }

    /// Marks one message received *through this handle* as processed (Python's
    /// `JoinableQueue.task_done`).
    ///
    /// # Errors
    /// [`TaskError::TooManyTaskDone`] when called more times than this handle received
    /// messages.
    pub fn task_done(&self) -> Result<(), TaskError> {
        self.ring
            .raw()
            .task_done(self.seg.tasks_done(), crate::raw::Liveness::me(&self.seg), &self.seg)
            .map_err(|_| TaskError::TooManyTaskDone)
    }

    /// Waits until every message sent so far has been received and marked done. Messages
    /// held by a process that died are not waited for.
    ///
    /// # Errors
    /// None in practice; the signature matches [`join_timeout`](ByteQueue::join_timeout).
    pub fn join(&self) -> Result<(), TaskError> {
        self.seg.join_ring(&self.ring.raw(), None)
    }

    /// [`join`](ByteQueue::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TaskError::Timeout`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TaskError> {
        self.seg.join_ring(&self.ring.raw(), deadline_after(timeout))
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

impl std::fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteQueue")
            .field("segment", &self.seg)
            .field("capacity", &self.capacity())
            .field("max_message_size", &self.max_message_size())
            .finish()
    }
}

/// The type name stored in a byte queue's header.
const BYTES: &str = "[u8]";

thread_local! {
    /// Encoding and decoding scratch space, reused so that typed messages allocate nothing
    /// in a steady stream (beyond what `T` itself allocates).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer (a fresh one if it is in use, e.g. by a
/// `Serialize` impl that sends a message itself).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

/// Encodes `value` with postcard into `buf` (cleared first).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), SendError> {
    buf.clear();
    append(value, buf).map_err(|reason| SendError::Encode { reason })
}

/// Decodes one `T` from exactly the bytes of `buf`.
pub(crate) fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<T, RecvError> {
    let fail = |reason: String| RecvError::Decode {
        type_name: std::any::type_name::<T>(),
        len: buf.len(),
        reason,
    };
    match postcard::take_from_bytes::<T>(buf) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(fail(format!("{} bytes left over after the value", rest.len()))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// A bounded queue of values of any serde type `T` (strings, structs, enums, vectors),
/// shared between processes under a name: Python's `multiprocessing.Queue` of picklable
/// objects, with `postcard` instead of pickle.
///
/// Everything [`ByteQueue`] says holds; values are encoded with postcard (a compact,
/// non-self-describing format) into slots of up to the creator's `max_message_size` bytes.
/// The segment records `T`'s type name, so opening it with another `T` fails with
/// `IncompatibleType` (give both sides an [`Options::schema_id`] to allow renamed types).
/// Bytes that do not decode as `T` (a buggy or hostile peer) give [`RecvError::Decode`]
/// for that one message; the next receive goes on with the next message.
///
/// # Examples
/// ```
/// # let name = format!("doc-msgq-{}", std::process::id());
/// use shmproc::MessageQueue;
/// let q = MessageQueue::<String>::create(&name, 16)?;
/// q.put(&"product 1".to_string())?;
/// q.put("a &str works too")?; // anything that serializes like a String
/// assert_eq!(q.get()?, "product 1");
/// assert_eq!(q.get()?, "a &str works too");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MessageQueue<T> {
    bytes: ByteQueue,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Serialize + DeserializeOwned> MessageQueue<T> {
    fn wrap(bytes: ByteQueue) -> Self {
        MessageQueue { bytes, _t: PhantomData }
    }

    /// Creates the queue `name` for `capacity` messages of up to 4 KiB encoded (see
    /// [`ByteQueue::create`]).
    ///
    /// # Errors
    /// As [`ByteQueue::create`].
    pub fn create(name: &str, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(name, capacity, &Options::new())
    }

    /// [`create`](MessageQueue::create) with options.
    ///
    /// # Errors
    /// As [`ByteQueue::create`].
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self, OpenError> {
        ByteQueue::create_typed(name, std::any::type_name::<T>(), capacity, opts).map(Self::wrap)
    }

    /// Opens the existing queue `name` of `T`.
    ///
    /// # Errors
    /// As [`ByteQueue::open`]; `IncompatibleType` if it holds another type.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](MessageQueue::open) with options.
    ///
    /// # Errors
    /// As [`open`](MessageQueue::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        ByteQueue::open_typed(name, std::any::type_name::<T>(), opts).map(Self::wrap)
    }

    /// Opens `name`, or creates it with room for `capacity` messages of up to 4 KiB encoded;
    /// race-free among processes. An existing queue keeps its own capacity and maximum
    /// message size.
    ///
    /// # Examples
    /// ```
    /// # let name = format!("doc-mq-ooc-{}", std::process::id());
    /// use shmproc::MessageQueue;
    /// let first = MessageQueue::<String>::open_or_create(&name, 8)?; // creates
    /// let second = MessageQueue::<String>::open_or_create(&name, 8)?; // opens
    /// first.put("hi")?;
    /// assert_eq!(second.get()?, "hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`create`](MessageQueue::create) and [`open`](MessageQueue::open).
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, capacity, &Options::new())
    }

    /// [`open_or_create`](MessageQueue::open_or_create) with options.
    ///
    /// # Errors
    /// As [`create`](MessageQueue::create) and [`open`](MessageQueue::open).
    pub fn open_or_create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self, OpenError> {
        ByteQueue::open_or_create_typed(name, std::any::type_name::<T>(), capacity, opts).map(Self::wrap)
    }

    fn send<Q: Serialize + ?Sized>(&self, block: Block, value: &Q) -> Result<(), SendError>
    where
        T: Borrow<Q>,
    {
        with_scratch(|buf| {
            encode(value, buf)?;
            self.bytes.ring.put(block, buf, &self.bytes.seg, &self.bytes.seg)
        })
    }

    fn recv(&self, block: Block) -> Result<T, RecvError> {
        with_scratch(|buf| {
            self.bytes.recv(block, buf)?;
            decode(buf)
        })
    }

    /// Sends `value`, waiting while the queue is full. Takes a `&T` or anything `T`
    /// borrows as (`&str` for `String`, `&[u8]` for `Vec<u8>`), which serialize the same
    /// way; any other type is a compile error, so an `i32` cannot slip into a queue of
    /// `u32`.
    ///
    /// ```compile_fail
    /// # let name = format!("doc-msgq-cf-{}", std::process::id());
    /// let q = shmproc::MessageQueue::<Option<u32>>::create(&name, 4).unwrap();
    /// q.put(&Some(-1i32)).unwrap(); // not an Option<u32>
    /// ```
    ///
    /// # Errors
    /// `TooLarge` (the encoded size and the limit), `Encode`, `Closed`, `Lost`.
    pub fn put<Q: Serialize + ?Sized>(&self, value: &Q) -> Result<(), SendError>
    where
        T: Borrow<Q>,
    {
        self.send(Block::Until(None), value)
    }

    /// Sends `value` if there is room now (`Full` as for
    /// [`Queue::try_put`](crate::Queue::try_put)).
    ///
    /// # Errors
    /// `Full`, and as [`put`](MessageQueue::put).
    pub fn try_put<Q: Serialize + ?Sized>(&self, value: &Q) -> Result<(), SendError>
    where
        T: Borrow<Q>,
    {
        self.send(Block::No, value)
    }

    /// Sends `value`, waiting at most `timeout` for room (see
    /// [`Queue::put_timeout`](crate::Queue::put_timeout)).
    ///
    /// # Errors
    /// `Timeout`, and as [`put`](MessageQueue::put).
    pub fn put_timeout<Q: Serialize + ?Sized>(&self, value: &Q, timeout: Duration) -> Result<(), SendError>
    where
        T: Borrow<Q>,
    {
        self.send(until(timeout), value)
    }

    /// Receives the oldest value, waiting while the queue is empty.
    ///
    /// # Errors
    /// `Closed` once closed and drained; `Decode` or `Corrupted` for a bad message (it is
    /// consumed; the next call goes on).
    pub fn get(&self) -> Result<T, RecvError> {
        self.recv(Block::Until(None))
    }

    /// Receives the oldest value if there is one now (`Empty` as for
    /// [`Queue::try_get`](crate::Queue::try_get)).
    ///
    /// # Errors
    /// `Empty`, and as [`get`](MessageQueue::get).
    pub fn try_get(&self) -> Result<T, RecvError> {
        self.recv(Block::No)
    }

    /// Receives the oldest value, waiting at most `timeout` (see
    /// [`Queue::get_timeout`](crate::Queue::get_timeout)).
    ///
    /// # Errors
    /// `Timeout`, and as [`get`](MessageQueue::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv(until(timeout))
    }

    /// The untyped queue underneath, e.g. for [`len`](ByteQueue::len),
    /// [`close`](ByteQueue::close), [`task_done`](ByteQueue::task_done) and
    /// [`join`](ByteQueue::join), which `MessageQueue` also offers directly.
    pub fn as_bytes(&self) -> &ByteQueue {
        &self.bytes
    }

    /// Number of messages in the queue (exact when quiescent).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the queue holds no message (exact when quiescent).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether the queue is full (exact when quiescent).
    pub fn is_full(&self) -> bool {
        self.bytes.is_full()
    }

    /// The number of messages the queue can hold.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// The largest encoded message, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.bytes.max_message_size()
    }

    /// Closes the queue for every process (see [`ByteQueue::close`]).
    pub fn close(&self) {
        self.bytes.close();
    }

    /// Whether the queue was closed, by any process.
    pub fn is_closed(&self) -> bool {
        self.bytes.is_closed()
    }

    /// Marks one value received through this handle as processed.
    ///
    /// # Errors
    /// [`TaskError::TooManyTaskDone`].
    pub fn task_done(&self) -> Result<(), TaskError> {
        self.bytes.task_done()
    }

    /// Waits until every value sent so far was received and marked done.
    ///
    /// # Errors
    /// None in practice.
    pub fn join(&self) -> Result<(), TaskError> {
        self.bytes.join()
    }

    /// [`join`](MessageQueue::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TaskError::Timeout`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TaskError> {
        self.bytes.join_timeout(timeout)
    }

    /// The name this handle was opened or created under.
    pub fn name(&self) -> &str {
        self.bytes.name()
    }

    /// Keep the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.bytes.persist();
    }
}

impl<T> std::fmt::Debug for MessageQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageQueue")
            .field("type", &std::any::type_name::<T>())
            .field("queue", &self.bytes)
            .finish()
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

    #[test]
    fn decode_rejects_garbage_and_leftovers() {
        let mut buf = Vec::new();
        encode(&"hi".to_string(), &mut buf).unwrap();
        assert_eq!(decode::<String>(&buf).unwrap(), "hi");
        buf.push(0);
        assert!(matches!(decode::<String>(&buf), Err(RecvError::Decode { .. })));
        assert!(matches!(
            decode::<String>(&[0xff, 0xff, 0xff]),
            Err(RecvError::Decode { .. })
        ));
        assert!(matches!(decode::<u32>(&[]), Err(RecvError::Decode { .. })));
    }
}
