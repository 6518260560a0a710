//! `Pipe` and `Connection`: Python's `multiprocessing.Pipe`, two message rings in one named
//! segment, with the peer's death reported as [`RecvError::Disconnected`] /
//! [`SendError::Disconnected`].
//!
//! Body layout (offsets from the body start):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 64 | end 0's word, then the mode word (bit 0: one-way) |
//! | 64 | 64 | end 1's word |
//! | 128 | | ring 0: messages from end 0 to end 1 (layout in `message.rs`) |
//! | ring 0's end | | ring 1: messages from end 1 to end 0 |
//!
//! An end's word is 0 until that end connects, then `CONNECTED | owner token`; dropping the
//! end adds `GONE`. The peer is gone when its word has `GONE`, or holds an owner that the
//! participant table's liveness beacons report dead (SIGKILL included). The creator is end
//! 0, [`Connection::open`] takes end 1 (one opener at a time). A one-way pipe carries
//! messages from end 1 (the opener sends) to end 0 (the creator receives), like
//! `r, w = Pipe(duplex=False)` with `w` handed to a child.
//!
//! Waiting calls wait in slices of [`PEER_CHECK`] and look at the peer between slices, so
//! a peer that dies without a word is noticed within that time.

use crate::error::{OpenError, RecvError, SendError};
use crate::message::{MsgRing, RingLayout, check_sizes, decode, encode, with_scratch};
use crate::options::Options;
use crate::primitive::{AtomicU64, Ordering};
use crate::raw::ring::Block;
use crate::raw::{Liveness, Owner, deadline_after, expired};
use crate::segment::header::{Kind, TypeDesc};
use crate::segment::{Segment, Spec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// How often a waiting call checks that the peer is still there.
pub const PEER_CHECK: Duration = Duration::from_millis(50);

pub(crate) const CONNECTED: u64 = 1 << 32;
pub(crate) const GONE: u64 = 1 << 33;
pub(crate) const ONE_WAY: u64 = 1;
/// Bytes before ring 0: two end words on their own cache lines.
const ENDS_SIZE: u64 = 128;
/// Offsets in the body of end 0's word, end 1's word and the mode word.
pub(crate) const END_WORDS: [u64; 3] = [0, 64, 8];

pub(crate) fn layouts(cap: u64, max: u64, participants: u32) -> Option<(RingLayout, RingLayout)> {
    let a = RingLayout::new(ENDS_SIZE, cap, max, participants)?;
    let b = RingLayout::new(a.end, cap, max, participants)?;
    Some((a, b))
}

/// Builds a pipe: capacity, maximum message size (through [`Options`]), one-way or duplex.
///
/// ```
/// # let name = format!("doc-pipe-{}", std::process::id());
/// use shmproc::{Connection, Pipe};
/// let parent = Pipe::new().capacity(16).create(&name)?;
/// // In a child process, given `name` (e.g. on its command line):
/// let child = Connection::open(&name)?;
/// child.send(&("job", 42u32))?;
/// assert_eq!(parent.recv::<(String, u32)>()?, ("job".to_string(), 42));
/// parent.send_bytes(b"ack")?;
/// assert_eq!(child.recv_bytes()?, b"ack");
/// drop(child);
/// assert_eq!(parent.recv_bytes(), Err(shmproc::RecvError::Disconnected));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Pipe {
    capacity: usize,
    duplex: bool,
    options: Options,
}

impl Default for Pipe {
    fn default() -> Self {
        Pipe::new()
    }
}

impl Pipe {
    /// A duplex pipe of 64 messages each way, of up to 4 KiB each.
    pub fn new() -> Pipe {
        Pipe {
            capacity: 64,
            duplex: true,
            options: Options::new(),
        }
    }

    /// How many messages each direction buffers (default 64).
    pub fn capacity(mut self, capacity: usize) -> Pipe {
        self.capacity = capacity;
        self
    }

    /// `false`: a one-way pipe. The creating end only receives, the opening end only sends.
    pub fn duplex(mut self, duplex: bool) -> Pipe {
        self.duplex = duplex;
        self
    }

    /// Segment options, including [`Options::max_message_size`].
    pub fn options(mut self, options: Options) -> Pipe {
        self.options = options;
        self
    }

    /// Creates the pipe `name` and returns its first end. Hand `name` to the process that
    /// should hold the other end, which calls [`Connection::open`].
    ///
    /// # Errors
    /// As [`ByteQueue::create`](crate::ByteQueue::create).
    pub fn create(&self, name: &str) -> Result<Connection, OpenError> {
        let (cap, _) = check_sizes(self.capacity, self.options.max_message_size)?;
        let spec = Spec {
            desc: desc(&self.options),
            body_size: &body_size,
        };
        let one_way = !self.duplex;
        let init = |body: *mut u8| {
            if one_way {
                // SAFETY: the body starts with the two end words (at least 128 bytes,
                // 64-aligned); nobody else can see the segment before its header is published.
                unsafe { AtomicU64::from_ptr(body.wrapping_add(8).cast()) }.store(ONE_WAY, Ordering::Relaxed);
            }
        };
        let seg = Segment::create(name, &spec, cap, &self.options, &init)?;
        Connection::wrap(seg, 0)
    }
}

fn desc(opts: &Options) -> TypeDesc {
    TypeDesc {
        kind: Kind::Pipe,
        name: "pipe",
        size: opts.max_message_size as u64,
        align: 8,
        schema_id: opts.schema_id,
        any_size: true,
    }
}

pub(crate) fn body_size(count: u64, max: u64, participants: u32) -> Option<u64> {
    layouts(count, max, participants).map(|(_, b)| b.end)
}

/// One end of a [`Pipe`]: sends to and receives from the other end, in any process.
///
/// Values are encoded with postcard ([`send`](Connection::send) takes any `Serialize`,
/// [`recv`](Connection::recv) any `DeserializeOwned`, chosen per call as in Python), or sent
/// as raw bytes. When the other end is dropped or its process dies, receives return the
/// messages it sent and then [`RecvError::Disconnected`], and sends return
/// [`SendError::Disconnected`], within [`PEER_CHECK`].
pub struct Connection {
    /// Messages we send. (The rings come before `seg`: dropping them gives their claim
    /// records back, which needs the mapping.)
    out: MsgRing,
    /// Messages we receive.
    inc: MsgRing,
    seg: Segment,
    end: usize,
    one_way: bool,
}

// SAFETY: the rings' raw pointers point into `seg`'s mapping, which moves with the handle;
// shared state is reached only through atomics and atomic copies.
unsafe impl Send for Connection {}
// SAFETY: as above; every method takes `&self` and touches shared memory only atomically.
unsafe impl Sync for Connection {}

impl Connection {
    /// Opens the other end of the pipe `name` (created by [`Pipe::create`]).
    ///
    /// # Errors
    /// `InUse` if that end is already connected (and alive), or was connected before and is
    /// gone; `IncompatibleType` if `name` is not a pipe; and as
    /// [`ByteQueue::open`](crate::ByteQueue::open).
    pub fn open(name: &str) -> Result<Connection, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](Connection::open) with options.
    ///
    /// # Errors
    /// As [`open`](Connection::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Connection, OpenError> {
        let spec = Spec {
            desc: desc(opts),
            body_size: &body_size,
        };
        Self::wrap(Segment::open(name, &spec, opts)?, 1)
    }

    fn wrap(seg: Segment, end: usize) -> Result<Connection, OpenError> {
        let (a, b) = layouts(seg.count(), seg.elem_size(), seg.participant_count()).ok_or_else(|| {
            OpenError::corrupted(format!(
                "pipe capacity {} or message size {} out of range",
                seg.count(),
                seg.elem_size()
            ))
        })?;
        let body = seg.body();
        // SAFETY: the header was validated with `body_size == b.end`, so the body holds both
        // rings; it is 64-aligned and lives as long as `seg`, which the connection keeps.
        let (ring0, ring1) = unsafe { (MsgRing::new(body, &a), MsgRing::new(body, &b)) };
        let (out, inc) = if end == 0 { (ring0, ring1) } else { (ring1, ring0) };
        let mut conn = Connection {
            seg,
            end,
            one_way: false,
            out,
            inc,
        };
        conn.one_way = conn.word(2).load(Ordering::Relaxed) & ONE_WAY != 0;
        let me = CONNECTED | u64::from(conn.seg.me().0);
        let mine = conn.word(end);
        if end == 0 {
            mine.store(me, Ordering::SeqCst);
        } else if let Err(was) = mine.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
            // Leave the end alone (drop must not mark it gone).
            conn.end = usize::MAX;
            let what = if was & GONE != 0 || !conn.alive(was) {
                "the pipe's second end was connected before and is gone"
            } else {
                "the pipe's second end is connected to a live handle"
            };
            return Err(OpenError::InUse {
                name: conn.seg.name().to_owned(),
                what,
            });
        }
        Ok(conn)
    }

    /// End word `i` (0, 1) or the mode word (2).
    fn word(&self, i: usize) -> &AtomicU64 {
        let offset = END_WORDS[i.min(2)];
        // SAFETY: the body starts with 128 bytes of end words (`ENDS_SIZE`), 64-aligned, in
        // the mapping for as long as `seg` lives.
        unsafe { AtomicU64::from_ptr(self.seg.body().wrapping_add(offset as usize).cast()) }
    }

    fn alive(&self, word: u64) -> bool {
        word & GONE == 0 && self.seg.is_alive(Owner(word as u32))
    }

    /// Whether the other end was dropped or its process died. `false` while it has not
    /// connected yet.
    pub fn peer_gone(&self) -> bool {
        let w = self.word(1 - self.end.min(1)).load(Ordering::SeqCst);
        w != 0 && (w & CONNECTED == 0 || !self.alive(w))
    }

    fn may_send(&self) -> bool {
        !self.one_way || self.end == 1
    }

    fn may_recv(&self) -> bool {
        !self.one_way || self.end == 0
    }

    fn send_raw(&self, deadline: Option<Option<Instant>>, message: &[u8]) -> Result<(), SendError> {
        if !self.may_send() {
            return Err(SendError::ReceiveOnly);
        }
        loop {
            if self.peer_gone() {
                return Err(SendError::Disconnected);
            }
            let block = slice(deadline);
            match self.out.put(block, message, &self.seg, &self.seg) {
                // The peer closes the ring it receives from when it is dropped.
                Err(SendError::Closed) => return Err(SendError::Disconnected),
                Err(SendError::Timeout) if !past(deadline) => continue,
                other => return other,
            }
        }
    }

    fn recv_raw(&self, deadline: Option<Option<Instant>>, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        if !self.may_recv() {
            return Err(RecvError::SendOnly);
        }
        loop {
            // Look at the peer before the attempt: if it is gone now, whatever it sent is
            // already in the ring, and an empty ring means it will stay empty.
            let gone = self.peer_gone();
            let block = if gone { Block::No } else { slice(deadline) };
            match self.inc.get_into(block, buf, &self.seg, &self.seg) {
                Err(RecvError::Closed) => return Err(RecvError::Disconnected),
                Err(RecvError::Empty) if gone => return Err(RecvError::Disconnected),
                Err(RecvError::Timeout) if !past(deadline) => continue,
                other => return other,
            }
        }
    }

    /// Sends `value` (postcard-encoded), waiting while the pipe is full.
    ///
    /// # Errors
    /// `Disconnected` (the other end is gone), `TooLarge`, `Encode`, `ReceiveOnly`.
    pub fn send(&self, value: &(impl Serialize + ?Sized)) -> Result<(), SendError> {
        with_scratch(|buf| {
            encode(value, buf)?;
            self.send_raw(Some(None), buf)
        })
    }

    /// [`send`](Connection::send), waiting at most `timeout` for room.
    ///
    /// # Errors
    /// `Timeout`, and as [`send`](Connection::send).
    pub fn send_timeout(&self, value: &(impl Serialize + ?Sized), timeout: Duration) -> Result<(), SendError> {
        with_scratch(|buf| {
            encode(value, buf)?;
            self.send_raw(Some(deadline_after(timeout)), buf)
        })
    }

    /// Receives a value of type `T`, waiting for one.
    ///
    /// # Errors
    /// `Disconnected` once the other end is gone and its messages are drained; `Decode` (the
    /// message is consumed; the next call goes on); `Corrupted`; `SendOnly`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        with_scratch(|buf| {
            self.recv_raw(Some(None), buf)?;
            decode(buf)
        })
    }

    /// [`recv`](Connection::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, and as [`recv`](Connection::recv).
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, RecvError> {
        with_scratch(|buf| {
            self.recv_raw(Some(deadline_after(timeout)), buf)?;
            decode(buf)
        })
    }

    /// [`recv`](Connection::recv) if a message is waiting now.
    ///
    /// # Errors
    /// `Empty`, and as [`recv`](Connection::recv).
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        with_scratch(|buf| {
            self.recv_raw(None, buf)?;
            decode(buf)
        })
    }

    /// Sends `message` as raw bytes (Python's `send_bytes`).
    ///
    /// # Errors
    /// As [`send`](Connection::send) (without `Encode`).
    pub fn send_bytes(&self, message: &[u8]) -> Result<(), SendError> {
        self.send_raw(Some(None), message)
    }

    /// Receives one message's bytes (Python's `recv_bytes`).
    ///
    /// # Errors
    /// As [`recv`](Connection::recv) (without `Decode`).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.recv_raw(Some(None), &mut buf).map(|()| buf)
    }

    /// Receives one message's bytes into `buf`, replacing its contents and reusing its
    /// allocation (Python's `recv_bytes_into`).
    ///
    /// # Errors
    /// As [`recv_bytes`](Connection::recv_bytes).
    pub fn recv_bytes_into(&self, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        self.recv_raw(Some(None), buf)
    }

    /// [`recv_bytes_into`](Connection::recv_bytes_into), waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, and as [`recv_bytes`](Connection::recv_bytes).
    pub fn recv_bytes_into_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        self.recv_raw(Some(deadline_after(timeout)), buf)
    }

    /// One send that does not wait: `None` while the ring is full and the peer is there.
    #[cfg(feature = "tokio")]
    fn send_now(&self, message: &[u8]) -> Option<Result<(), SendError>> {
        if self.peer_gone() {
            return Some(Err(SendError::Disconnected));
        }
        match self.out.put(Block::No, message, &self.seg, &self.seg) {
            Err(SendError::Full) => None,
            // The peer closes the ring it receives from when it is dropped.
            Err(SendError::Closed) => Some(Err(SendError::Disconnected)),
            r => Some(r),
        }
    }

    /// One receive that does not wait: `None` while the ring is empty and the peer is there.
    /// The peer is looked at only when the ring is empty; if it is gone, what it sent is in
    /// the ring by then, so a second look at the ring decides.
    #[cfg(feature = "tokio")]
    fn recv_now(&self, buf: &mut Vec<u8>) -> Option<Result<(), RecvError>> {
        match self.inc.get_into(Block::No, buf, &self.seg, &self.seg) {
            Err(RecvError::Empty) => {}
            Err(RecvError::Closed) => return Some(Err(RecvError::Disconnected)),
            r => return Some(r),
        }
        if !self.peer_gone() {
            return None;
        }
        match self.inc.get_into(Block::No, buf, &self.seg, &self.seg) {
            Err(RecvError::Empty | RecvError::Closed) => Some(Err(RecvError::Disconnected)),
            r => Some(r),
        }
    }

    /// Sends `message` as soon as there is room, until `deadline`.
    #[cfg(feature = "tokio")]
    async fn send_raw_async(&self, message: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        if !self.may_send() {
            return Err(SendError::ReceiveOnly);
        }
        let raw = self.out.raw();
        self.seg
            .wait_async(
                deadline,
                || self.send_now(message),
                || raw.announce_put(),
                |()| raw.depart_put(),
            )
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    /// Encodes `value` once, sends it from this thread's scratch buffer if there is room now,
    /// and otherwise waits with a copy of its own (the task may resume on another thread).
    #[cfg(feature = "tokio")]
    async fn send_value_async(
        &self,
        value: &(impl Serialize + ?Sized),
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        if !self.may_send() {
            return Err(SendError::ReceiveOnly);
        }
        let waiting = with_scratch(|buf| {
            encode(value, buf)?;
            match self.send_now(buf) {
                None => Ok(Some(buf.clone())),
                Some(r) => r.map(|()| None),
            }
        })?;
        match waiting {
            None => Ok(()),
            Some(bytes) => self.send_raw_async(&bytes, deadline).await,
        }
    }

    /// Waits until `attempt` (a receive that does not wait) answers, until `deadline`.
    #[cfg(feature = "tokio")]
    async fn recv_raw_async<R>(
        &self,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Option<Result<R, RecvError>>,
    ) -> Result<R, RecvError> {
        if !self.may_recv() {
            return Err(RecvError::SendOnly);
        }
        let raw = self.inc.raw();
        self.seg
            .wait_async(deadline, attempt, || raw.announce_get(), |()| raw.depart_get())
            .await
            .unwrap_or(Err(RecvError::Timeout))
    }

    #[cfg(feature = "tokio")]
    async fn recv_value_async<T: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<T, RecvError> {
        // Received into this thread's scratch buffer and decoded in the same attempt, so
        // nothing borrowed from it lives across an await.
        let attempt = || with_scratch(|buf| self.recv_now(buf).map(|r| r.and_then(|()| decode(buf))));
        self.recv_raw_async(deadline, attempt).await
    }

    /// [`send`](Connection::send) in async form (feature `tokio`): the task waits for room on
    /// this handle's doorbell (ARCHITECTURE.md, "Async waiting"), with no thread, and looks at
    /// the peer at least every 10 ms. `value` is encoded once, on the first poll.
    ///
    /// Cancel safe: the message is sent in one poll or not at all, so if the future is
    /// dropped at its await point (another branch of `select!` completed first), it is
    /// guaranteed that the value was not sent; it is borrowed, so the caller still has it.
    /// A dropped future leaves no registration behind.
    ///
    /// # Errors
    /// As [`send`](Connection::send).
    #[cfg(feature = "tokio")]
    pub async fn send_async(&self, value: &(impl Serialize + ?Sized)) -> Result<(), SendError> {
        self.send_value_async(value, None).await
    }

    /// [`send_timeout`](Connection::send_timeout) in async form (feature `tokio`); cancel
    /// safe as [`send_async`](Connection::send_async).
    ///
    /// # Errors
    /// As [`send_timeout`](Connection::send_timeout).
    #[cfg(feature = "tokio")]
    pub async fn send_timeout_async(
        &self,
        value: &(impl Serialize + ?Sized),
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_value_async(value, deadline_after(timeout)).await
    }

    /// [`send_bytes`](Connection::send_bytes) in async form (feature `tokio`); cancel safe as
    /// [`send_async`](Connection::send_async).
    ///
    /// # Errors
    /// As [`send_bytes`](Connection::send_bytes).
    #[cfg(feature = "tokio")]
    pub async fn send_bytes_async(&self, message: &[u8]) -> Result<(), SendError> {
        self.send_raw_async(message, None).await
    }

    /// [`recv`](Connection::recv) in async form (feature `tokio`): the task waits on this
    /// handle's doorbell, with no thread. A peer that is dropped wakes it at once; a peer
    /// whose process dies is noticed within 10 ms (each wake-up and each 10 ms re-check looks
    /// at its liveness beacon when no message is waiting).
    ///
    /// Cancel safe: a message is taken and decoded in one poll, so if the future is dropped
    /// at its await point, it is guaranteed that no message was received; it leaves no
    /// registration behind.
    ///
    /// # Errors
    /// As [`recv`](Connection::recv).
    #[cfg(feature = "tokio")]
    pub async fn recv_async<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        self.recv_value_async(None).await
    }

    /// [`recv_timeout`](Connection::recv_timeout) in async form (feature `tokio`); cancel
    /// safe as [`recv_async`](Connection::recv_async).
    ///
    /// # Errors
    /// As [`recv_timeout`](Connection::recv_timeout).
    #[cfg(feature = "tokio")]
    pub async fn recv_timeout_async<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_value_async(deadline_after(timeout)).await
    }

    /// [`recv_bytes`](Connection::recv_bytes) in async form (feature `tokio`); cancel safe as
    /// [`recv_async`](Connection::recv_async).
    ///
    /// # Errors
    /// As [`recv_bytes`](Connection::recv_bytes).
    #[cfg(feature = "tokio")]
    pub async fn recv_bytes_async(&self) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.recv_bytes_into_async(&mut buf).await.map(|()| buf)
    }

    /// [`recv_bytes_into`](Connection::recv_bytes_into) in async form (feature `tokio`).
    ///
    /// Cancel safe as [`recv_async`](Connection::recv_async): if the future is dropped at its
    /// await point, no message was received. `buf`'s contents are then unspecified, as
    /// after an error.
    ///
    /// # Errors
    /// As [`recv_bytes`](Connection::recv_bytes).
    #[cfg(feature = "tokio")]
    pub async fn recv_bytes_into_async(&self, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        self.recv_raw_async(None, || self.recv_now(buf)).await
    }

    /// [`recv_bytes_into_timeout`](Connection::recv_bytes_into_timeout) in async form
    /// (feature `tokio`); cancel safe as
    /// [`recv_bytes_into_async`](Connection::recv_bytes_into_async).
    ///
    /// # Errors
    /// `Timeout`, and as [`recv_bytes`](Connection::recv_bytes).
    #[cfg(feature = "tokio")]
    pub async fn recv_bytes_into_timeout_async(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        self.recv_raw_async(deadline_after(timeout), || self.recv_now(buf))
            .await
    }

    /// Whether a receive would return now without waiting, waiting up to `timeout` for that
    /// (Python's `poll`): `true` when a message is waiting, and also when the other end is
    /// gone (the receive then reports `Disconnected`). `Duration::ZERO` only looks.
    pub fn poll(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        loop {
            if self.peer_gone() || !self.may_recv() {
                return true;
            }
            if self.inc.raw().wait_readable(slice_end(deadline), &self.seg, &self.seg) {
                return true;
            }
            if expired(deadline) {
                return self.peer_gone();
            }
        }
    }

    /// Which end this is: 0 for the creator, 1 for the opener.
    pub fn end(&self) -> usize {
        self.end
    }

    /// Whether this is an end of a one-way pipe.
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }

    /// The pipe's name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// The largest message, in bytes (chosen by the creator).
    pub fn max_message_size(&self) -> usize {
        self.out.max_message_size()
    }
}

/// The deadline of one waiting slice: `None` (outer) means "do not wait".
fn slice(deadline: Option<Option<Instant>>) -> Block {
    match deadline {
        None => Block::No,
        Some(d) => Block::Until(slice_end(d)),
    }
}

/// The end of one waiting slice towards `deadline` (`None`: none): [`PEER_CHECK`] from now,
/// or `deadline` if that comes first.
fn slice_end(deadline: Option<Instant>) -> Option<Instant> {
    match (deadline, deadline_after(PEER_CHECK)) {
        (Some(d), Some(next)) => Some(d.min(next)),
        (d, next) => d.or(next),
    }
}

fn past(deadline: Option<Option<Instant>>) -> bool {
    match deadline {
        None => true,
        Some(d) => expired(d),
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.end > 1 {
            return;
        }
        // Mark our end gone, then close both rings: the peer drains what we sent and then
        // gets `Disconnected`, and its sends fail at once instead of filling a ring that
        // nobody reads. Closing wakes everyone blocked on either ring.
        self.word(self.end).fetch_or(GONE, Ordering::SeqCst);
        self.out.raw().close(&self.seg);
        self.inc.raw().close(&self.seg);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("segment", &self.seg)
            .field("end", &self.end)
            .field("one_way", &self.one_way)
            .finish()
    }
}
