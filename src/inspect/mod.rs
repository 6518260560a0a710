//! Looking at segments from outside: what exists in `/dev/shm`, what each segment holds, who
//! uses it, and removing the ones that only dead processes held ([`collect_garbage`]).
//!
//! Inspection is read-only and never waits: it opens a segment read-only, maps it read-only,
//! copies the header out and only *loads* shared words (a store would fault). It takes no
//! lock, registers as no participant, and asks liveness the way handles do (the kernel's OFD
//! locks on the participants' beacon bytes), so nobody ever waits for it and a process that
//! dies while inspecting leaves nothing behind. Every byte it reads is untrusted: a damaged or
//! hostile segment is reported as [`Status::Damaged`] with what was wrong, never a panic, and
//! the other segments of a listing are reported as usual. A segment of another layout
//! version is listed with its version only.
//!
//! A report is a snapshot: by the time it is printed, a live queue has moved on.
//!
//! # JSON
//!
//! Every report type implements `serde::Serialize`, and the `shmproc` command-line tool
//! (`crates/shmproc-cli`) prints them with `serde_json`. The shape is stable within a major
//! version: fields are only ever added. Enums are tagged by a `"status"` (for [`Status`]),
//! `"kind"` (for [`KindState`]) or `"state"` (for [`LockStatus`]) field with a snake_case
//! value (`"rlock"` for [`Kind::RLock`]); sizes are in bytes, times in seconds since the Unix
//! epoch, absent values `null`.
//! `shmproc show jobs --json` for a queue whose consumer was killed with one item in hand:
//!
//! ```json
//! {
//!   "name": "jobs", "os_name": "/shmproc.jobs", "size_bytes": 35840, "owner_uid": 1000,
//!   "mode": 384, "changed_unix": 1796612491,
//!   "status": {
//!     "status": "ready", "kind": "queue", "type_name": "u64", "elem_size": 8,
//!     "elem_align": 8, "schema_id": 0, "count": 8, "layout_version": 8,
//!     "creator_pid": 14676, "removed_with_last_user": false, "participant_slots": 64,
//!     "participants": [
//!       { "index": 0, "pid": 14676, "alive": true, "holds_lock": false, "in_hand": 0 },
//!       { "index": 1, "pid": 14679, "alive": false, "holds_lock": false, "in_hand": 1 }
//!     ],
//!     "state": {
//!       "kind": "queue",
//!       "ring": { "capacity": 8, "items": 2, "writing": 0, "abandoned": 0,
//!                 "taken_by_dead": 0, "closed": false, "in_hand": 0, "head": 1, "tail": 3 }
//!     }
//!   }
//! }
//! ```
//!
//! ```
//! # let name = format!("doc-inspect-{}", std::process::id());
//! use shmproc::Queue;
//! use shmproc::inspect::{KindState, Status};
//! let q = Queue::<u64>::create(&name, 8)?;
//! q.put(7)?;
//! let report = shmproc::inspect::inspect(&name)?;
//! let Status::Ready(details) = &report.status else { panic!("{report:?}") };
//! let KindState::Queue { ring } = &details.state else { panic!() };
//! assert_eq!((ring.items, ring.capacity), (1, 8));
//! assert_eq!(details.participants.len(), 1); // our handle
//! assert!(details.participants[0].alive);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod gc;
mod probe;

use crate::error::OpenError;
use crate::segment::name;
use serde::Serialize;

pub use gc::{Collected, collect_garbage, remove_unused};

/// One segment: what the file system says about it, and what its contents say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentReport {
    /// The name handles use (without the OS prefix).
    pub name: String,
    /// The name in `/dev/shm` (`/shmproc.<name>`).
    pub os_name: String,
    /// Size of the object in bytes (what it takes in memory once touched).
    pub size_bytes: u64,
    /// The user that owns it.
    pub owner_uid: u32,
    /// Permission bits (`0o600` by default).
    pub mode: u32,
    /// Last status change, seconds since the Unix epoch: its creation, unless someone changed
    /// its mode or size since (tmpfs keeps no birth time).
    pub changed_unix: i64,
    /// What it holds.
    pub status: Status,
}

/// What a segment's contents say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// A published segment of this layout version.
    Ready(Box<Details>),
    /// Its creator is initialising it now (it holds the initialisation beacon).
    Initializing,
    /// Its creator died before publishing it: nobody can open it; `open_or_create` and
    /// [`collect_garbage`] remove it.
    Abandoned,
    /// A segment of another layout version (another release of this crate): listed, not read.
    OtherVersion {
        /// Its layout version.
        version: u32,
    },
    /// Not a segment of this crate (no magic number), though its name has our prefix.
    Foreign,
    /// Its header or layout is inconsistent (a peer scribbled on it, or it was truncated).
    Damaged {
        /// What is wrong with it.
        what: String,
    },
    /// It could not be opened or mapped (permissions, or it vanished meanwhile).
    Unreadable {
        /// The error.
        what: String,
    },
}

/// A published segment: its type, participants and live state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Details {
    /// What kind of object it is.
    pub kind: Kind,
    /// The payload type's name as its creator's compiler wrote it (cut to its last 128 bytes).
    pub type_name: String,
    /// Size of one element (a message queue's or pipe's: the maximum message size).
    pub elem_size: u64,
    /// Alignment of one element.
    pub elem_align: u32,
    /// The creator's `Options::schema_id` (0: none).
    pub schema_id: u64,
    /// Element count: a queue's capacity, an array's length, 1 for a value.
    pub count: u64,
    /// The layout version (that of this build).
    pub layout_version: u32,
    /// The pid of the process that created it.
    pub creator_pid: u32,
    /// Whether the name goes away with its last user (`Options::remove_with_last_user`)
    /// rather than with its creator.
    pub removed_with_last_user: bool,
    /// How many handles may have it open at once (`Options::participants`).
    pub participant_slots: u32,
    /// The handles registered now, live or dead (a dead one's record stays until its slot
    /// is reused or the segment removed).
    pub participants: Vec<ParticipantReport>,
    /// The live state of the object.
    pub state: KindState,
}

/// The kinds of segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// [`Value`](crate::Value).
    Value,
    /// [`Array`](crate::Array).
    Array,
    /// [`Queue`](crate::Queue).
    Queue,
    /// [`ByteQueue`](crate::ByteQueue) or [`MessageQueue`](crate::MessageQueue).
    MessageQueue,
    /// [`Pipe`](crate::Pipe).
    Pipe,
    /// [`AtomicArray`](crate::AtomicArray).
    AtomicArray,
    /// [`SharedBytes`](crate::SharedBytes).
    Bytes,
    /// [`Lock`](crate::Lock).
    Lock,
    /// [`Semaphore`](crate::Semaphore).
    Semaphore,
    /// [`BoundedSemaphore`](crate::BoundedSemaphore).
    BoundedSemaphore,
    /// [`Event`](crate::Event).
    Event,
    /// [`Condition`](crate::Condition).
    Condition,
    /// [`Barrier`](crate::Barrier).
    Barrier,
    /// [`RLock`](crate::RLock) (`"rlock"` in JSON).
    #[serde(rename = "rlock")]
    RLock,
}

/// One registered handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParticipantReport {
    /// Its slot in the participant table.
    pub index: u32,
    /// The process that registered it.
    pub pid: u32,
    /// Whether it is alive: its process still holds its beacon (the kernel drops it when the
    /// process dies, however it dies).
    pub alive: bool,
    /// Whether it holds the segment's lock (`Value`, `Array`, `Lock`, `RLock`).
    pub holds_lock: bool,
    /// Queue kinds: items its gets took that it has not yet marked `task_done`: the work
    /// `join` waits for while it lives, or the items that died with it. Semaphores: the
    /// permits it holds through guards (a dead one's go back to the count at the next wait).
    /// `null` for the other kinds.
    pub in_hand: Option<u64>,
}

/// The live state of each kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum KindState {
    /// A value: its lock.
    Value {
        /// The lock.
        lock: LockReport,
    },
    /// An array: its lock.
    Array {
        /// The lock.
        lock: LockReport,
    },
    /// A queue of typed items.
    Queue {
        /// The ring.
        ring: RingReport,
    },
    /// A queue of messages.
    MessageQueue {
        /// The ring.
        ring: RingReport,
    },
    /// A lock with no data.
    Lock {
        /// The lock.
        lock: LockReport,
    },
    /// An array of atomics: no lock, no state beyond its values.
    AtomicArray {
        /// Number of elements.
        len: u64,
    },
    /// A raw byte block.
    Bytes {
        /// Size in bytes.
        size: u64,
    },
    /// A pipe: its two ends and two rings.
    Pipe {
        /// Whether only end 1 sends (a pipe created one-way).
        one_way: bool,
        /// End 0 (the creator's) and end 1 (the opener's).
        ends: [EndReport; 2],
        /// Messages from end 0 to end 1, and from end 1 to end 0.
        rings: [RingReport; 2],
    },
    /// A counting semaphore.
    Semaphore {
        /// Its permits.
        permits: PermitReport,
    },
    /// A semaphore bounded by its initial value.
    BoundedSemaphore {
        /// Its permits.
        permits: PermitReport,
    },
    /// An event flag.
    Event {
        /// Whether the flag is up.
        set: bool,
        /// Whether somebody began to wait since the flag last went up (a mark, not a count: a
        /// waiter that timed out or died leaves it until the next `set`).
        waiters: bool,
    },
    /// A condition variable.
    Condition {
        /// Waiters counted now (a waiter killed while it waited stays counted for good; it
        /// costs the notifiers a system call per notify, nothing else).
        waiters: u32,
    },
    /// A barrier.
    Barrier {
        /// Parties a generation needs.
        parties: u32,
        /// Parties waiting in the current generation.
        arrived: u32,
        /// The generation (wraps at 2^16).
        generation: u32,
        /// Broken (aborted, timed out, or a party died) until reset.
        broken: bool,
        /// Handles registered as parties whose process died before arriving in the current
        /// generation: the next waiter to look breaks the barrier over them (`reset` forgets
        /// them).
        dead_parties: u32,
    },
    /// A re-entrant lock (`"rlock"` in JSON): its lock word (the depth lives in the holder's
    /// handle, not in the segment).
    #[serde(rename = "rlock")]
    RLock {
        /// The lock.
        lock: LockReport,
    },
}

/// A semaphore's permits: `available` are in the count; `held` are recorded as held through
/// guards (each participant's share is its `in_hand`). Permits taken for good
/// (`SemaphoreGuard::forget`) or released beyond the initial value (`Semaphore::release`)
/// make `available + held` differ from `initial`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PermitReport {
    /// Permits available now.
    pub available: u32,
    /// The permits it was created with (the bound of a `BoundedSemaphore`).
    pub initial: u32,
    /// Permits recorded as held through guards, by live or dead handles.
    pub held: u64,
    /// Of `held`, those held by handles whose process died: the next waiter that finds no
    /// permit available returns them to the count.
    pub held_by_dead: u64,
}

/// A ring's state: positions `head..tail` are claimed; each holds an item, is being written
/// by a live producer, or was abandoned by a producer that died (gets step over it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RingReport {
    /// Slots.
    pub capacity: u64,
    /// Published items waiting for a get.
    pub items: u64,
    /// Positions live producers are writing now.
    pub writing: u64,
    /// Positions claimed by producers that died before publishing (or that retired).
    pub abandoned: u64,
    /// Slots held by consumers that died between taking an item and releasing its slot: a
    /// producer frees each when it reaches it (the item is lost).
    pub taken_by_dead: u64,
    /// Whether the queue was closed.
    pub closed: bool,
    /// Items that live participants took and have not yet marked `task_done` (what `join`
    /// waits for besides `items` and `writing`).
    pub in_hand: u64,
    /// The next position a get claims (a count of positions ever claimed by gets).
    pub head: u64,
    /// The next position a put claims.
    pub tail: u64,
}

/// A lock's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockReport {
    /// Free, held, and by whom.
    pub state: LockStatus,
    /// Somebody may be asleep waiting for it.
    pub waiters: bool,
}

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LockStatus {
    /// Nobody.
    Free,
    /// A participant; `alive: false` means it died holding it (the next locker takes it over
    /// and gets `OwnerDied`).
    Held {
        /// The holder's participant slot.
        index: u32,
        /// Its pid, if its record still names it.
        pid: Option<u32>,
        /// Whether it is alive.
        alive: bool,
        /// It took the lock over from a dead owner and has not marked it consistent yet.
        owner_died: bool,
    },
    /// A recovery was declined: every lock fails with `Unrecoverable`.
    Unrecoverable,
}

/// One end of a pipe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndReport {
    /// Whether a handle ever connected it.
    pub connected: bool,
    /// Whether that handle dropped it.
    pub dropped: bool,
    /// Its process, while its participant record names it.
    pub pid: Option<u32>,
    /// Whether it is connected to a live handle.
    pub alive: bool,
}

/// Every segment of this crate in `/dev/shm` that the current user can see, sorted by name.
/// A segment that cannot be read is listed as [`Status::Unreadable`] or
/// [`Status::Damaged`]; only failing to read the directory fails the call.
///
/// # Errors
/// `Io` when `/dev/shm` cannot be listed.
pub fn list() -> Result<Vec<SegmentReport>, OpenError> {
    let names = crate::os::shm_list(name::OS_PREFIX).map_err(|e| OpenError::io("read /dev/shm", e))?;
    Ok(names.iter().map(|os_name| probe::probe(os_name)).collect())
}

/// The report of the segment `name`.
///
/// # Errors
/// `InvalidName`, or `NotFound` when no segment has that name. Everything else is reported
/// in the [`Status`] of the answer.
pub fn inspect(name: &str) -> Result<SegmentReport, OpenError> {
    let os_name = name::os_name(name)?;
    if let Err(e) = crate::os::shm_inode(&os_name) {
        return Err(crate::segment::open::map_missing(e, name, "stat"));
    }
    Ok(probe::probe(&os_name))
}

impl SegmentReport {
    /// The participants that are alive (none unless [`Status::Ready`]).
    pub fn live_participants(&self) -> usize {
        match &self.status {
            Status::Ready(d) => d.participants.iter().filter(|p| p.alive).count(),
            _ => 0,
        }
    }

    /// The participants that died without leaving (none unless [`Status::Ready`]).
    pub fn dead_participants(&self) -> usize {
        match &self.status {
            Status::Ready(d) => d.participants.iter().filter(|p| !p.alive).count(),
            _ => 0,
        }
    }
}
