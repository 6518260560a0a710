//! # shmproc: typed values, arrays and queues shared between processes
//!
//! Python's `multiprocessing` shared objects, rebuilt for Rust: a [`Value<T>`] or
//! [`Array<T>`] (`T: bytemuck::Pod`) lives in a named shared-memory segment; one process
//! creates it under a name, any other process of the same user opens it by that name, and
//! every access goes through a cross-process lock that survives its holder being killed.
//! [`Queue<T>`] is a bounded lock-free queue of plain data between any number of producer
//! and consumer processes; [`MessageQueue<T>`] carries any serde type (strings, structs,
//! enums) and [`ByteQueue`] byte strings the same way; [`Pipe`] / [`Connection`] is a duplex
//! pipe that reports a dropped or killed peer as `Disconnected`.
//!
//! ```
//! # let name = format!("doc-root-{}", std::process::id());
//! use shmproc::{LockError, Value};
//!
//! let total = Value::<u64>::create(&name, 0)?;       // parent
//! // ... in each worker process: Value::<u64>::open(&name)?
//! match total.lock() {
//!     Ok(mut g) => *g += 1,
//!     Err(LockError::OwnerDied(mut g)) => {
//!         // a worker died holding the lock: repair, then say so
//!         *g = 0;
//!         g.mark_consistent();
//!     }
//!     Err(e) => return Err(e.without_guard().into()),
//! }
//! // `?` needs an error without the borrowed guard:
//! assert_eq!(total.load().map_err(|e| e.without_guard())?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Ownership of names
//! - The handle that **created** a segment owns its name and unlinks it when dropped, unless
//!   created with [`Options::persist`] or turned persistent with `persist()`.
//! - [`remove`] unlinks a name explicitly, whoever created it.
//! - Unlinking removes the name only: every process that has the segment open keeps a valid
//!   mapping until it drops its handle. If the creator exits (or is killed), the name is
//!   gone (exit) or stays until removed (SIGKILL runs no destructor); processes that already
//!   opened it keep working either way.
//! - A segment whose creator died during initialisation is reported as
//!   [`OpenError::InitTimeout`] by `open`; `open_or_create` removes it and creates it afresh.
//!
//! ## Crash safety of the lock
//! The lock is a 64-bit word holding the owner's participant token (see `raw/lock.rs`).
//! Every handle registers in the segment's participant table and holds an OFD lock on a
//! byte named after its record for as long as it lives; the kernel releases it when the
//! process dies, SIGKILL included. A waiter re-checks the owner's liveness at least every
//! 10 ms, takes over a dead owner's lock and reports [`LockError::OwnerDied`] with the
//! guard. Repair the data and call `mark_consistent()`; dropping the guard without it makes
//! the lock [`LockError::Unrecoverable`] for everyone, as with POSIX robust mutexes. We do
//! not put a glibc robust mutex in the mapping: its robust-list pointers live inside the
//! mutex, so a peer that writes them can make our unlock write anywhere in our memory.
//!
//! ## Threat model
//! Segments are created `0600` and `open` refuses segments owned by another user
//! ([`OpenError::UntrustedOwner`]) or writable by group/other unless allowed
//! ([`Options::allow_shared_write`]). A process that *can* write the mapping (a buggy or
//! hostile peer of the same user) can:
//! - change the shared data, take or hold the lock, forge owner-died or unrecoverable
//!   states, and make liveness answers wrong, so it can stall or mislead its peers;
//! - truncate the segment file, which makes later accesses fault with SIGBUS (owner-only
//!   permissions are the guard against strangers; there is no defence against the owner).
//!
//! It cannot make this library read or write outside the mapping, panic, or hit undefined
//! behaviour: the header is copied out and validated with checked arithmetic against the
//! file size on open, and never re-read; indices are bounds-checked; payloads are copied in
//! and out with byte-wise atomic copies, and no reference into the mapping is handed out
//! (guards work on a local copy). Every wait has a bounded slice and a deadline. In
//! particular:
//! - `open_or_create` validates an existing segment exactly as `open` does, and removes a
//!   name only when its creator died before publishing it and no live participant holds it
//!   (a rewritten init-state word gives [`OpenError::Corrupted`], not a second segment);
//! - every `_timeout` call returns by its deadline plus one wait slice while a peer keeps
//!   rewriting the lock word or filling a pipe; `Duration::MAX` means no deadline and
//!   `Duration::ZERO` one attempt, and no timeout panics;
//! - `try_get`/`try_put` wait at most 20 µs for a live peer mid-copy at the next position
//!   before answering `Empty`/`Full`, so a writer of the mapping (or a descheduled peer) can
//!   make them slow by that bound and pessimistic, never unbounded;
//! - a writer of a child's job pipe can make a `Process`/`Pool` child refuse, drop or delay
//!   a task, or decode garbage arguments, never run code the parent did not send (task
//!   frames carry a MAC keyed with a per-child secret that never enters shared memory);
//! - a full `/dev/shm` (any local user can fill it) makes creation fail with
//!   [`OpenError::NoSpace`]: a segment's pages are allocated when it is created, so no later
//!   access raises SIGBUS for want of space, unless it was created with
//!   [`Options::sparse`]`(true)`.
//!
//! Handles are not fork-safe: a `fork()`ed child shares the parent's OFD locks and so its
//! identity. Open handles afresh in the child (spawned children re-execute, as the examples
//! do).
//!
//! ## Platforms
//! | platform | status |
//! |---|---|
//! | Linux x86_64 / aarch64 | supported and tested (futex, OFD locks, `/dev/shm`) |
//! | other Unix (macOS, BSD) | not yet: `src/os` needs a port (pid + start time liveness) |
//! | Windows, other targets | compile error |
//!
//! Names are at most [`MAX_NAME_LEN`] (22) bytes of `[A-Za-z0-9._-]`, so that the OS-level
//! name (`/shmproc.<name>`) fits macOS's 31-byte limit.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

/// The pure algorithms (lock word, ring, claims) live in their own crate, `shmproc-raw`,
/// so that they can name nothing above them and loom and Miri can check them alone.
pub(crate) use shmproc_raw as raw;
/// The atomics the algorithms name; shared layouts use the same types.
pub(crate) use shmproc_raw::primitive;

mod array;
mod atomic_array;
mod codec;
mod error;
mod fault;
pub mod inspect;
mod lock;
mod locked;
mod message;
mod options;
mod os;
mod pipe;
pub mod pool;
pub mod process;
mod queue;
#[cfg(feature = "tokio")]
mod queue_stream;
mod segment;
mod shared_bytes;
mod sync;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
mod value;

pub use array::{Array, ArrayGuard};
pub use atomic_array::{AtomicArray, SharedAtomic};
pub use error::{
    AcquireError, BarrierError, GetError, LockError, OpenError, ProcessError, PutError, RangeError, RecvError,
    ReleaseError, SendError, TaskError,
};
pub use lock::{Lock, LockGuard};
pub use message::{ByteQueue, MAX_MESSAGE_SIZE, MessageQueue, MessageReader, MessageWriter};
pub use options::{DEFAULT_MAX_MESSAGE_SIZE, Options};
pub use pipe::{Connection, PEER_CHECK, Pipe};
pub use pool::{AsyncResult, Chunked, Imap, Pool, PoolBuilder};
pub use process::{DEFAULT_PROCESS_MESSAGE_SIZE, Process, ProcessBuilder, init};
pub use queue::{MAX_CAPACITY, Queue};
#[cfg(feature = "tokio")]
pub use queue_stream::QueueStream;
pub use segment::header::LAYOUT_VERSION;
pub use segment::name::{MAX_NAME_LEN, OS_PREFIX};
pub use segment::remove;
pub use shared_bytes::SharedBytes;
pub use sync::barrier::{Barrier, BarrierWaitResult, MAX_PARTIES};
pub use sync::condition::{Condition, ConditionGuard, WaitTimeoutResult};
pub use sync::event::Event;
pub use sync::rlock::{RLock, RLockGuard};
pub use sync::semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};
pub use value::{LockResult, Value, ValueGuard};
