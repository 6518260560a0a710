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
    /// died during creation), or a process deciding whether to remove it (`shmproc gc`, the
    /// last user of a segment that goes with it) held it that long (it is stopped).
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
    /// The file system that holds segments (`/dev/shm`, a tmpfs) has too little free space
    /// for the segment: found before creating it, or when reserving its pages. No segment
    /// was left behind. Free space there (remove unused segments, or files another program
    /// left), choose a smaller capacity or message size, or enlarge the tmpfs.
    #[error(
        "the segment needs {needed} bytes and {file_system} has only {available} bytes free \
         (remove unused segments there or ask for a smaller size)"
    )]
    NoSpace {
        /// Bytes the segment needs (header, participant table and body).
        needed: u64,
        /// Bytes the file system had free when the segment was refused.
        available: u64,
        /// The file system, e.g. `/dev/shm`.
        file_system: &'static str,
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

/// Why a put did not send its item. Every variant hands the item back.
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PutError<T> {
    /// `try_put`: no room now (Python's `queue.Full` from `put_nowait`). Also the
    /// conservative answer when the ring's shared words look garbled.
    #[error("the queue is full")]
    Full(T),
    /// The queue is closed: no put can succeed any more.
    #[error("the queue is closed")]
    Closed(T),
    /// A peer took this process for dead and retired the slot it was writing, so the item
    /// was not sent. Happens only if liveness was misjudged (a peer scribbling on the
    /// participant table), and is then reported on a best-effort basis: a repair that lands
    /// between the publish's guard load and its store goes unnoticed.
    #[error("the put was retired by a peer that took this process for dead")]
    Lost(T),
    /// `put_timeout`: still full when the timeout passed.
    #[error("timed out waiting for room in the queue")]
    Timeout(T),
}

impl<T> core::fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PutError::Full(_) => "Full(..)",
            PutError::Closed(_) => "Closed(..)",
            PutError::Lost(_) => "Lost(..)",
            PutError::Timeout(_) => "Timeout(..)",
        })
    }
}

impl<T> PutError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t) | PutError::Closed(t) | PutError::Lost(t) | PutError::Timeout(t) => t,
        }
    }
}

/// Why a get returned no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// `try_get`: nothing to take now (Python's `queue.Empty` from `get_nowait`). Also the
    /// conservative answer when the ring's shared words look garbled.
    #[error("the queue is empty")]
    Empty,
    /// The queue is closed and every item put before the close has been taken.
    #[error("the queue is closed and drained")]
    Closed,
    /// `get_timeout`: still empty when the timeout passed.
    #[error("timed out waiting for an item")]
    Timeout,
}

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

/// Why a [`Process`](crate::Process) or a [`Pool`](crate::Pool) task gave no result.
///
/// Variants about one task's fate (`Panicked`, `Killed`, `NoResult`, `WorkerDied`, `Timeout`,
/// `Terminated`) leave everything else working: a pool carries on with its other tasks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `shmproc::init()` was not called in this process, so a child started from this binary
    /// would not know how to run a job (it would run a second copy of `main`).
    #[error(
        "shmproc::init() was not called: call it first thing in main(); in an integration \
         test binary, add `shmproc::test_support!();` once and call `shmproc::init()` at the \
         start of every test that starts processes"
    )]
    NotInitialized,
    /// The function does not lie in the main executable (it is in a shared library), so a
    /// child process cannot find it at the same place. Wrap it in a function of your own.
    #[error("cannot run this function in a child process: {reason}")]
    UnsupportedFunction {
        /// What is wrong with it.
        reason: String,
    },
    /// The arguments (or a result) are larger than the pipe's maximum message size.
    #[error(
        "{what} of {size} bytes exceed the maximum message size of {max} bytes (raise it with \
         the builder's max_message_size)"
    )]
    TooLarge {
        /// `"the arguments"` or `"the result"`.
        what: &'static str,
        /// Encoded size in bytes.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// The arguments or the result could not be encoded (a `Serialize` impl failed, or a
    /// type postcard does not support).
    #[error("could not encode {what}: {reason}")]
    Encode {
        /// `"the arguments"` or `"the result"`.
        what: &'static str,
        /// What the encoder said.
        reason: String,
    },
    /// The arguments or the result could not be decoded as the expected type.
    #[error("could not decode {what}: {reason}")]
    Decode {
        /// `"the arguments"` or `"the result"`.
        what: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The pipe to the child could not be created.
    #[error("could not create the pipe to the child process: {0}")]
    Pipe(#[from] OpenError),
    /// Starting the child process failed.
    #[error("could not start the child process: {0}")]
    Spawn(#[source] io::Error),
    /// The pipe to the child failed in a way other than the child's death.
    #[error("the pipe to the child process failed: {reason}")]
    Ipc {
        /// What failed.
        reason: String,
    },
    /// The child is not the same build as the parent (its executable or code layout
    /// differs) and refused the job instead of running code at a wrong address.
    #[error("the child process refused the job: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// A job frame failed authentication: the child (or pool worker) got a task frame whose
    /// MAC or sequence number was wrong, so something other than the parent wrote the job's
    /// pipe, and it did not run the task. A pool worker goes on serving other tasks.
    #[error("the child process refused the task: the job frame failed authentication ({reason})")]
    Unauthenticated {
        /// What the child found wrong.
        reason: String,
    },
    /// The function panicked in the child.
    #[error("the child process panicked at {location}: {message}")]
    Panicked {
        /// The panic message (the payload, when it is a string).
        message: String,
        /// `file:line:column` of the panic.
        location: String,
    },
    /// The child was killed by a signal before it sent its result.
    #[error("the child process was killed by signal {signal} ({})", signal_name(*.signal))]
    Killed {
        /// The signal number (`libc::SIGKILL` is 9).
        signal: i32,
    },
    /// The child exited without sending a result (it called `std::process::exit`, or it is
    /// a test binary without `shmproc::test_support!()`).
    #[error("the child process exited ({status}) without sending a result{}", no_result_hint(.status))]
    NoResult {
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// A pool worker died while running this task (killed, aborted, out of memory). The
    /// pool replaced it; other tasks are not affected.
    #[error("pool worker process {pid} died while running this task ({})", died_how(*.signal, *.code))]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// Its exit code, if it exited.
        code: Option<i32>,
    },
    /// `join_timeout` / `get_timeout`: the result was not there in time.
    #[error("timed out waiting for the result")]
    Timeout,
    /// The result was already taken by an earlier `join`.
    #[error("the result was already taken by an earlier join")]
    AlreadyJoined,
    /// The pool was closed (or joined): it takes no new tasks.
    #[error("the pool is closed and takes no new tasks")]
    PoolClosed,
    /// The pool was terminated (or dropped) before this task finished.
    #[error("the pool was terminated before this task finished")]
    Terminated,
    /// An argument of the call was out of range.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What is wrong.
        what: String,
    },
}

impl ProcessError {
    /// A copy of this error, for delivering one cause to several tasks (`io::Error` is not
    /// `Clone`: it is copied as its kind and message).
    pub(crate) fn replicate(&self) -> ProcessError {
        use ProcessError as E;
        match self {
            E::NotInitialized => E::NotInitialized,
            E::UnsupportedFunction { reason } => E::UnsupportedFunction { reason: reason.clone() },
            E::TooLarge { what, size, max } => E::TooLarge {
                what,
                size: *size,
                max: *max,
            },
            E::Encode { what, reason } => E::Encode {
                what,
                reason: reason.clone(),
            },
            E::Decode { what, reason } => E::Decode {
                what,
                reason: reason.clone(),
            },
            E::Pipe(e) => E::Ipc { reason: e.to_string() },
            E::Spawn(e) => E::Spawn(io::Error::new(e.kind(), e.to_string())),
            E::Ipc { reason } => E::Ipc { reason: reason.clone() },
            E::Refused { reason } => E::Refused { reason: reason.clone() },
            E::Unauthenticated { reason } => E::Unauthenticated { reason: reason.clone() },
            E::Panicked { message, location } => E::Panicked {
                message: message.clone(),
                location: location.clone(),
            },
            E::Killed { signal } => E::Killed { signal: *signal },
            E::NoResult { status } => E::NoResult { status: *status },
            E::WorkerDied { pid, signal, code } => E::WorkerDied {
                pid: *pid,
                signal: *signal,
                code: *code,
            },
            E::Timeout => E::Timeout,
            E::AlreadyJoined => E::AlreadyJoined,
            E::PoolClosed => E::PoolClosed,
            E::Terminated => E::Terminated,
            E::InvalidArgument { what } => E::InvalidArgument { what: what.clone() },
        }
    }
}

/// The usual name of a signal number, for messages.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => "signal",
    }
}

fn no_result_hint(status: &std::process::ExitStatus) -> &'static str {
    match status.code() {
        Some(0) => {
            "; if the child is an integration-test binary, it lacks a `shmproc::test_support!();` \
             line, so libtest found no test to run and exited 0"
        }
        Some(crate::process::EXIT_MALFORMED) => {
            " (it got a job frame it could not parse: something other than the parent wrote \
             its job pipe)"
        }
        Some(crate::process::EXIT_NO_KEY) => " (it got no job key on its stdin)",
        _ => "",
    }
}

fn died_how(signal: Option<i32>, code: Option<i32>) -> String {
    match (signal, code) {
        (Some(s), _) => format!("killed by signal {s}, {}", signal_name(s)),
        (None, Some(crate::process::EXIT_MALFORMED)) => format!(
            "exited with code {}: it got a job frame it could not parse, so something other \
             than the pool wrote its job pipe",
            crate::process::EXIT_MALFORMED
        ),
        (None, Some(c)) => format!("exited with code {c}"),
        (None, None) => "its exit status is unknown".to_owned(),
    }
}

/// A byte range outside a [`SharedBytes`](crate::SharedBytes) block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bytes {offset}..{offset}+{len} are outside the block of {size} bytes")]
pub struct RangeError {
    /// Where the range starts.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// The block's size.
    pub size: usize,
}

/// Why a [`Semaphore`](crate::Semaphore) or [`BoundedSemaphore`](crate::BoundedSemaphore)
/// gave no permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// `try_acquire`: no permit is available now.
    #[error("no permit is available")]
    WouldBlock,
    /// `acquire_timeout`: no permit became available in time.
    #[error("timed out waiting for a permit")]
    Timeout,
}

/// Why a semaphore refused a `release`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A [`BoundedSemaphore`](crate::BoundedSemaphore) already has `bound` permits in
    /// existence (available ones plus those held through guards); Python raises `ValueError`.
    #[error("released too many times: the semaphore already has its {bound} permits")]
    AboveBound {
        /// The semaphore's initial value.
        bound: u32,
    },
    /// The count would pass `u32::MAX`.
    #[error("the semaphore's count would overflow")]
    Overflow,
    /// Peers kept changing the semaphore's word for seconds; nothing was released.
    #[error("the semaphore's word kept changing; nothing was released")]
    Contended,
}

/// Why a [`Barrier`](crate::Barrier) wait did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken (Python's `BrokenBarrierError`): it was aborted, reset while
    /// this party waited, a party died (or its process ended without dropping its handle)
    /// before arriving, or a waiter timed out. It stays broken until
    /// [`reset`](crate::Barrier::reset).
    #[error("the barrier is broken")]
    Broken,
    /// `wait_timeout`: the time ran out. As in Python, this waiter broke the barrier on its
    /// way out, so the other waiters get [`Broken`](BarrierError::Broken).
    #[error("timed out waiting at the barrier (the barrier is now broken)")]
    Timeout,
}
