//! `ByteQueue`: the public queue of byte strings, one `MsgRing` in a segment of kind
//! `Messages`.

use super::{MessageReader, MessageWriter, MsgRing, RingLayout, check_sizes, until};
use crate::error::{OpenError, RecvError, SendError, TaskError};
use crate::options::Options;
use crate::queue::join_ring;
use crate::raw::deadline_after;
use crate::raw::ring::Block;
use crate::segment::header::{Kind, TypeDesc};
use crate::segment::{Segment, Spec};
use std::time::Duration;

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
    pub(super) ring: MsgRing,
    pub(super) seg: Segment,
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

    pub(crate) fn body_size(count: u64, max: u64, participants: u32) -> Option<u64> {
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
    /// `InvalidSize` (capacity 0 or too large, a maximum over [`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE)), `NoSpace`
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
    /// [`MessageQueue`](crate::MessageQueue)), `Corrupted`, `VersionMismatch`, `UntrustedOwner`,
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

    /// [`put`](ByteQueue::put) in async form (feature `tokio`): the task waits for room on
    /// this handle's doorbell (ARCHITECTURE.md, "Async waiting"), with no thread.
    ///
    /// Cancel safe: the message is sent in one poll or not at all, so if the future is
    /// dropped at its await point (another branch of `select!` completed first), it is
    /// guaranteed that the message was not sent; it is borrowed, so the caller still has it.
    /// A dropped future leaves no registration behind. Waiting puts have no place in a line
    /// to lose: whichever attempt finds room first takes it.
    ///
    /// # Errors
    /// `TooLarge` (nothing was sent), `Closed`, `Lost`.
    #[cfg(feature = "tokio")]
    pub async fn put_async(&self, message: &[u8]) -> Result<(), SendError> {
        self.put_async_in(message, None).await
    }

    /// [`put_timeout`](ByteQueue::put_timeout) in async form (feature `tokio`); cancel safe
    /// as [`put_async`](ByteQueue::put_async).
    ///
    /// # Errors
    /// `Timeout`, `TooLarge`, `Closed`, `Lost`.
    #[cfg(feature = "tokio")]
    pub async fn put_timeout_async(&self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.put_async_in(message, deadline_after(timeout)).await
    }

    /// Sends `message` as soon as there is room, until `deadline`: shared by the async puts
    /// of `ByteQueue` and `MessageQueue`.
    #[cfg(feature = "tokio")]
    pub(super) async fn put_async_in(
        &self,
        message: &[u8],
        deadline: Option<std::time::Instant>,
    ) -> Result<(), SendError> {
        let attempt = || match self.try_put(message) {
            Err(SendError::Full) => None,
            r => Some(r),
        };
        let raw = self.ring.raw();
        self.seg
            .wait_async(deadline, attempt, || raw.announce_put(), |()| raw.depart_put())
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    /// [`get`](ByteQueue::get) in async form (feature `tokio`): the task waits on this
    /// handle's doorbell, with no thread.
    ///
    /// Cancel safe: a message is taken and returned in one poll, so if the future is dropped
    /// at its await point, it is guaranteed that no message was received; it leaves no
    /// registration behind. A producer that stalls for more than 20 µs in the middle of
    /// writing the head message is waited for in 10 ms steps.
    ///
    /// # Errors
    /// `Closed` once the queue is closed and drained; `Corrupted` (that message is dropped).
    #[cfg(feature = "tokio")]
    pub async fn get_async(&self) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.get_into_async(&mut buf).await.map(|()| buf)
    }

    /// [`get_timeout`](ByteQueue::get_timeout) in async form (feature `tokio`); cancel safe
    /// as [`get_async`](ByteQueue::get_async).
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `Corrupted`.
    #[cfg(feature = "tokio")]
    pub async fn get_timeout_async(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.get_into_timeout_async(&mut buf, timeout).await.map(|()| buf)
    }

    /// [`get_into`](ByteQueue::get_into) in async form (feature `tokio`).
    ///
    /// Cancel safe as [`get_async`](ByteQueue::get_async): if the future is dropped at its
    /// await point, no message was received. `buf`'s contents are then unspecified, as
    /// after an error.
    ///
    /// # Errors
    /// As [`get_async`](ByteQueue::get_async).
    #[cfg(feature = "tokio")]
    pub async fn get_into_async(&self, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        self.get_async_in(buf, None).await
    }

    /// [`get_into_timeout`](ByteQueue::get_into_timeout) in async form (feature `tokio`);
    /// cancel safe as [`get_into_async`](ByteQueue::get_into_async).
    ///
    /// # Errors
    /// As [`get_timeout_async`](ByteQueue::get_timeout_async).
    #[cfg(feature = "tokio")]
    pub async fn get_into_timeout_async(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        self.get_async_in(buf, deadline_after(timeout)).await
    }

    /// Waits until `attempt` finds a message (or the queue closed), until `deadline`:
    /// `attempt` runs a non-blocking receive and answers `None` for `Empty`. Shared by the
    /// async gets of `ByteQueue` and `MessageQueue`.
    #[cfg(feature = "tokio")]
    pub(super) async fn wait_message<R>(
        &self,
        deadline: Option<std::time::Instant>,
        attempt: impl FnMut() -> Option<Result<R, RecvError>>,
    ) -> Result<R, RecvError> {
        let raw = self.ring.raw();
        self.seg
            .wait_async(deadline, attempt, || raw.announce_get(), |()| raw.depart_get())
            .await
            .unwrap_or(Err(RecvError::Timeout))
    }

    #[cfg(feature = "tokio")]
    async fn get_async_in(&self, buf: &mut Vec<u8>, deadline: Option<std::time::Instant>) -> Result<(), RecvError> {
        let attempt = || match self.recv(Block::No, buf) {
            Err(RecvError::Empty) => None,
            r => Some(r),
        };
        self.wait_message(deadline, attempt).await
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
        join_ring(&self.seg, self.ring.raw(), None)
    }

    /// [`join`](ByteQueue::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TaskError::Timeout`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TaskError> {
        join_ring(&self.seg, self.ring.raw(), deadline_after(timeout))
    }

    /// [`join`](ByteQueue::join) in async form (feature `tokio`): the task waits on this
    /// handle's doorbell, which `task_done` and `close` (in any process) ring, with no
    /// thread; messages held by a process that died are noticed within 10 ms.
    ///
    /// Cancel safe: a join takes nothing, so dropping the future loses nothing, and it
    /// leaves no registration behind.
    ///
    /// # Errors
    /// None in practice; the signature matches
    /// [`join_timeout_async`](ByteQueue::join_timeout_async).
    #[cfg(feature = "tokio")]
    pub async fn join_async(&self) -> Result<(), TaskError> {
        super::join_ring_async(&self.seg, self.ring.raw(), None).await
    }

    /// [`join_timeout`](ByteQueue::join_timeout) in async form (feature `tokio`); cancel
    /// safe as [`join_async`](ByteQueue::join_async).
    ///
    /// # Errors
    /// [`TaskError::Timeout`].
    #[cfg(feature = "tokio")]
    pub async fn join_timeout_async(&self, timeout: Duration) -> Result<(), TaskError> {
        super::join_ring_async(&self.seg, self.ring.raw(), deadline_after(timeout)).await
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
