//! `MessageQueue<T>`: serde values over a `ByteQueue`, encoded with postcard through a
//! per-thread scratch buffer; `encode` and `decode` are shared with `Pipe`.

use super::{ByteQueue, until};
use crate::codec::append;
use crate::error::{OpenError, RecvError, SendError, TaskError};
use crate::options::Options;
use crate::raw::ring::Block;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

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

    /// [`put`](MessageQueue::put) in async form (feature `tokio`): the task waits for room
    /// on this handle's doorbell (ARCHITECTURE.md, "Async waiting"), with no thread. `value`
    /// is encoded once, on the first poll; a put that finds room at once sends from this
    /// thread's scratch buffer, and one that must wait keeps its own copy of the bytes.
    ///
    /// Cancel safe: the message is sent in one poll or not at all, so if the future is
    /// dropped at its await point (another branch of `select!` completed first), it is
    /// guaranteed that the value was not sent; it is borrowed, so the caller still has it.
    /// A dropped future leaves no registration behind.
    ///
    /// # Errors
    /// As [`put`](MessageQueue::put).
    #[cfg(feature = "tokio")]
    pub async fn put_async<Q: Serialize + ?Sized>(&self, value: &Q) -> Result<(), SendError>
    where
        T: Borrow<Q>,
    {
        self.send_async(value, None).await
    }

    /// [`put_timeout`](MessageQueue::put_timeout) in async form (feature `tokio`); cancel
    /// safe as [`put_async`](MessageQueue::put_async).
    ///
    /// # Errors
    /// `Timeout`, and as [`put`](MessageQueue::put).
    #[cfg(feature = "tokio")]
    pub async fn put_timeout_async<Q: Serialize + ?Sized>(&self, value: &Q, timeout: Duration) -> Result<(), SendError>
    where
        T: Borrow<Q>,
    {
        self.send_async(value, crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn send_async<Q: Serialize + ?Sized>(
        &self,
        value: &Q,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), SendError>
    where
        T: Borrow<Q>,
    {
        let waiting = with_scratch(|buf| {
            encode(value, buf)?;
            match self.bytes.try_put(buf) {
                // The task may resume on another thread: it waits with bytes of its own.
                Err(SendError::Full) => Ok(Some(buf.clone())),
                r => r.map(|()| None),
            }
        })?;
        match waiting {
            None => Ok(()),
            Some(bytes) => self.bytes.put_async_in(&bytes, deadline).await,
        }
    }

    /// [`get`](MessageQueue::get) in async form (feature `tokio`): the task waits on this
    /// handle's doorbell, with no thread.
    ///
    /// Cancel safe: a message is taken and decoded in one poll, so if the future is dropped
    /// at its await point, it is guaranteed that no message was received; it leaves no
    /// registration behind.
    ///
    /// # Errors
    /// As [`get`](MessageQueue::get).
    #[cfg(feature = "tokio")]
    pub async fn get_async(&self) -> Result<T, RecvError> {
        self.recv_async(None).await
    }

    /// [`get_timeout`](MessageQueue::get_timeout) in async form (feature `tokio`); cancel
    /// safe as [`get_async`](MessageQueue::get_async).
    ///
    /// # Errors
    /// `Timeout`, and as [`get`](MessageQueue::get).
    #[cfg(feature = "tokio")]
    pub async fn get_timeout_async(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_async(crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn recv_async(&self, deadline: Option<std::time::Instant>) -> Result<T, RecvError> {
        // Each attempt receives into this thread's scratch buffer and decodes there, so
        // nothing borrowed from it lives across an await.
        let attempt = || {
            with_scratch(|buf| match self.bytes.recv(Block::No, buf) {
                Err(RecvError::Empty) => None,
                Err(e) => Some(Err(e)),
                Ok(()) => Some(decode(buf)),
            })
        };
        self.bytes.wait_message(deadline, attempt).await
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

    /// [`join`](MessageQueue::join) in async form (feature `tokio`); see
    /// [`ByteQueue::join_async`]. Cancel safe: a join takes nothing.
    ///
    /// # Errors
    /// None in practice.
    #[cfg(feature = "tokio")]
    pub async fn join_async(&self) -> Result<(), TaskError> {
        self.bytes.join_async().await
    }

    /// [`join_timeout`](MessageQueue::join_timeout) in async form (feature `tokio`). Cancel
    /// safe: a join takes nothing.
    ///
    /// # Errors
    /// [`TaskError::Timeout`].
    #[cfg(feature = "tokio")]
    pub async fn join_timeout_async(&self, timeout: Duration) -> Result<(), TaskError> {
        self.bytes.join_timeout_async(timeout).await
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
