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
