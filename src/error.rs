//! Error types, one per operation family. Every variant says exactly what went wrong.

use std::io;

/// Why a segment could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// `create` found the name taken. Nothing was adopted or modified.
    #[error("a shared-memory segment named {name:?} already exists")]
    AlreadyExists {
        /// The name asked for.
        name: String,
    },
    /// `open` found no segment under this name.
    #[error("no shared-memory segment named {name:?}")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The name breaks the naming rules.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name asked for.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The segment holds another kind of object or another payload type.
    #[error("incompatible segment: expected {expected}, found {found}")]
    IncompatibleType {
        /// What the caller asked for, e.g. `Value<u64> (8 bytes, align 8)`.
        expected: String,
        /// What the segment's header says.
        found: String,
    },
    /// The segment was made by an incompatible version of this crate's layout.
    #[error("segment layout version {found} is not supported (this build reads version {supported})")]
    VersionMismatch {
        /// The version in the header.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The header or layout is inconsistent: not a segment of ours, or damaged.
    #[error("corrupted segment: {what}")]
    Corrupted {
        /// Which check failed.
        what: String,
    },
    /// The segment belongs to another user; opening it would trust that user's writes.
    #[error("segment is owned by uid {owner}, not by this process's uid {expected}")]
    UntrustedOwner {
        /// The owner of the segment.
        owner: u32,
        /// Our effective uid.
        expected: u32,
    },
    /// The segment is writable by group or others, and the options did not allow that.
    #[error("segment mode {mode:#o} lets group or others write it (allow with Options::allow_shared_write)")]
    InsecurePermissions {
        /// The segment's permission bits.
        mode: u32,
    },
    /// The creator did not finish initialising the segment before the deadline (it may have
    /// died during creation).
    #[error("segment {name:?} was not initialised within {waited:?}")]
    InitTimeout {
        /// The name asked for.
        name: String,
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// A requested size (length, capacity, element size) is zero where it must not be, or
    /// the layout it needs overflows or exceeds the supported maximum.
    #[error("invalid size: {what}")]
    InvalidSize {
        /// What was wrong with it.
        what: String,
    },
    /// Every participant record of the segment is held by a live handle.
    #[error("all {max} participant slots of the segment are in use by live handles")]
    TooManyParticipants {
        /// The size of the participant table.
        max: u32,
    },
    /// The object is open elsewhere in a role only one handle may have at a time (the other
    /// end of a [`Connection`](crate::Connection) is already connected and alive).
    #[error("{name:?} is in use: {what}")]
    InUse {
        /// The name asked for.
        name: String,
        /// What is taken.
        what: &'static str,
    },
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// The operation, e.g. `shm_open`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl OpenError {
    pub(crate) fn io(op: &'static str, source: io::Error) -> OpenError {
        OpenError::Io { op, source }
    }
    pub(crate) fn corrupted(what: impl Into<String>) -> OpenError {
        OpenError::Corrupted { what: what.into() }
    }
}

/// Why a lock attempt on a [`Value`](crate::Value) or [`Array`](crate::Array) did not give a
/// clean guard. `G` is the guard type.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous holder died holding the lock (like POSIX `EOWNERDEAD`). The guard is
    /// yours: inspect and repair the data, then call its `mark_consistent()`. Dropping it
    /// without doing so makes the lock unrecoverable for everyone.
    #[error("the previous lock holder died while holding the lock; the data may be inconsistent")]
    OwnerDied(G),
    /// An earlier owner-died recovery was declined: the data is unrecoverable.
    #[error("the lock is unrecoverable: an earlier holder died and recovery was declined")]
    Unrecoverable,
    /// The deadline passed while a live process held the lock.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// `try_lock`: a live process holds the lock.
    #[error("the lock is held by another live handle")]
    WouldBlock,
}

impl<G> std::fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Unrecoverable => f.write_str("Unrecoverable"),
            LockError::Timeout => f.write_str("Timeout"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
        }
    }
}

impl<G> LockError<G> {
    /// Drops the guard an `OwnerDied` carries (which leaves the lock unrecoverable) and
    /// keeps the kind of error, e.g. to return it with `?` from a function whose error type
    /// must be `'static` (`Box<dyn Error>`): `v.lock().map_err(|e| e.without_guard())?`.
    pub fn without_guard(self) -> LockError<()> {
        match self {
            LockError::OwnerDied(_) => LockError::OwnerDied(()),
            LockError::Unrecoverable => LockError::Unrecoverable,
            LockError::Timeout => LockError::Timeout,
            LockError::WouldBlock => LockError::WouldBlock,
        }
    }
}

pub use crate::raw::ring::{GetError, PutError};

/// Errors of `task_done` and `join`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// `task_done` was called more times than this handle took items.
    #[error("task_done() called more times than items were taken through this handle")]
    TooManyTaskDone,
    /// `join_timeout`: work was still pending when the timeout passed.
    #[error("timed out waiting for every item to be marked done")]
    Timeout,
}

/// Why a message was not sent (message queues and pipes). The caller still has the message:
/// every send borrows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message (encoded, for typed queues) is larger than the queue's maximum.
    #[error("message of {size} bytes is larger than the maximum of {max} bytes")]
    TooLarge {
        /// Size of the message in bytes.
        size: usize,
        /// The queue's [`max_message_size`](crate::Options::max_message_size).
        max: usize,
    },
    /// `try_*`: no room now.
    #[error("the queue is full")]
    Full,
    /// The queue is closed (for a pipe: this direction was closed).
    #[error("the queue is closed")]
    Closed,
    /// The timeout passed with the queue still full.
    #[error("timed out waiting for room in the queue")]
    Timeout,
    /// A peer took this process for dead and retired the slot it was writing (see
    /// [`PutError::Lost`]); the message was not sent.
    #[error("the send was retired by a peer that took this process for dead")]
    Lost,
    /// The value could not be encoded (a `Serialize` impl failed, or a type postcard does
    /// not support, such as a map or sequence of unknown length).
    #[error("could not encode the message: {reason}")]
    Encode {
        /// What the encoder said.
        reason: String,
    },
    /// Pipes: the other end was dropped or its process died.
    #[error("the other end of the pipe is gone (dropped or its process died)")]
    Disconnected,
    /// Pipes: this end of a one-way pipe only receives.
    #[error("this end of a one-way pipe only receives")]
    ReceiveOnly,
}

/// Why no message was received (message queues and pipes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// `try_*`: no message now.
    #[error("no message is waiting")]
    Empty,
    /// The queue is closed and every message sent before the close has been received.
    #[error("the queue is closed and drained")]
    Closed,
    /// The timeout passed with no message.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The slot's length field was out of range (a buggy or hostile peer wrote the
    /// mapping). That one message is dropped; the next receive goes on with the next one.
    #[error("dropped a corrupted message: length field {len} exceeds the maximum of {max} bytes")]
    Corrupted {
        /// The length the slot claimed.
        len: u64,
        /// The queue's maximum message size.
        max: usize,
    },
    /// The message's bytes are not a valid encoding of the expected type. That one message
    /// is consumed; the next receive goes on with the next one.
    #[error("message of {len} bytes does not decode as {type_name}: {reason}")]
    Decode {
        /// The expected type.
        type_name: &'static str,
        /// Length of the message in bytes.
        len: usize,
        /// What the decoder said.
        reason: String,
    },
    /// Pipes: the other end was dropped or its process died, and every message it sent
    /// has been received.
    #[error("the other end of the pipe is gone (dropped or its process died)")]
    Disconnected,
    /// Pipes: this end of a one-way pipe only sends.
    #[error("this end of a one-way pipe only sends")]
    SendOnly,
}
