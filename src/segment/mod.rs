//! Named segments: create / open / open_or_create, header validation, the mapping, and the
//! participant registration that gives every handle a liveness-checked identity.
//!
//! This file holds the options and the open handle ([`Segment`]: its accessors, the liveness
//! and wait answers it gives `raw`, and what dropping it does); `open.rs` creates and opens
//! segments; `backing.rs` says what holds a segment's bytes.

mod backing;
pub(crate) mod header;
#[cfg(feature = "testing")]
pub(crate) mod heap;
pub(crate) mod name;
mod open;
pub(crate) mod participants;

use crate::error::OpenError;
use crate::os;
use crate::primitive::AtomicU32;
use crate::raw::{Liveness, Owner, Wait};
use backing::Backing;
use header::{Layout, TypeDesc};
use open::{map_missing, unlink_if_same};
use participants::Participant;
use std::time::{Duration, Instant};

/// Options for creating and opening segments. Build with [`Options::new`] and its methods.
///
/// ```
/// use std::time::Duration;
/// let opts = shmproc::Options::new()
///     .mode(0o600)
///     .init_timeout(Duration::from_secs(1))
///     .participants(16);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) mode: u32,
    pub(crate) allow_shared_write: bool,
    pub(crate) init_timeout: Duration,
    pub(crate) persist: bool,
    pub(crate) schema_id: u64,
    pub(crate) participants: u32,
    pub(crate) max_message_size: usize,
    pub(crate) sparse: bool,
}

/// Default [`Options::max_message_size`]: 4 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4096;

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// Defaults: mode `0o600`, group/other-writable segments refused, 5 s init timeout, the
    /// creating handle unlinks the name on drop, no schema id, 64 participant records,
    /// messages of up to 4 KiB, pages reserved at creation (not [`sparse`](Options::sparse)).
    pub fn new() -> Options {
        Options {
            mode: 0o600,
            allow_shared_write: false,
            init_timeout: Duration::from_secs(5),
            persist: false,
            schema_id: 0,
            participants: 64,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            sparse: false,
        }
    }

    /// Permission bits of a created segment (set with `fchmod`, so the umask does not apply).
    /// Asking for group or other write also allows opening such segments.
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode & 0o777;
        if mode & 0o022 != 0 {
            self.allow_shared_write = true;
        }
        self
    }

    /// Accept opening segments that group or others may write (refused by default: anyone
    /// who can write the mapping can corrupt the data and stall or mislead its users).
    pub fn allow_shared_write(mut self, allow: bool) -> Options {
        self.allow_shared_write = allow;
        self
    }

    /// How long `open` waits for a segment's creator to finish initialising it.
    pub fn init_timeout(mut self, d: Duration) -> Options {
        self.init_timeout = d;
        self
    }

    /// Keep the name after the creating handle is dropped (remove it later with
    /// [`remove`](crate::remove)). Default: the creating handle unlinks it on drop.
    pub fn persist(mut self, persist: bool) -> Options {
        self.persist = persist;
        self
    }

    /// A user-chosen id for the payload type. When both sides give one, it is compared
    /// instead of the Rust type name, so a type may be renamed between binaries.
    pub fn schema_id(mut self, id: u64) -> Options {
        self.schema_id = id;
        self
    }

    /// Largest message, in bytes, that a message queue or pipe created with these options
    /// carries (default [`DEFAULT_MAX_MESSAGE_SIZE`]). Every slot reserves this much: the
    /// segment needs about `capacity x max_message_size` bytes. Ignored by `Value`, `Array`
    /// and `Queue`, and on open (the creator's choice is read from the segment).
    pub fn max_message_size(mut self, bytes: usize) -> Options {
        self.max_message_size = bytes;
        self
    }

    /// Leave a created segment's pages unreserved (default `false`: reserve them). Ignored on
    /// open: whoever creates the segment decides for everyone who uses it.
    ///
    /// `/dev/shm` is a tmpfs, which allocates a file's pages when they are first written (or
    /// read). By default creation allocates every page of the segment up front (`fallocate`),
    /// so it fails with [`OpenError::NoSpace`] when `/dev/shm` lacks room, and no later access
    /// can fail for want of memory. The cost is that the whole segment occupies memory from
    /// the start, and creation takes the time to allocate and zero it, in proportion to its
    /// size.
    ///
    /// With `sparse(true)` a segment costs only the pages that are used, which suits a big
    /// message queue whose slots mostly carry small messages. Creation then refuses only a
    /// segment larger than the space `/dev/shm` has free at that moment. **If `/dev/shm`
    /// fills up later** (any local user or program can fill it), the first touch of a page
    /// not yet used (a slot never written before) kills the process that touches it, creator
    /// or not, with `SIGBUS`.
    ///
    /// ```
    /// // A queue of 1024 slots of 1 MiB that holds only a few small messages at a time.
    /// let opts = shmproc::Options::new().max_message_size(1 << 20).sparse(true);
    /// # let _ = opts;
    /// ```
    ///
    /// [`OpenError::NoSpace`]: crate::OpenError::NoSpace
    pub fn sparse(mut self, sparse: bool) -> Options {
        self.sparse = sparse;
        self
    }

    /// Size of the participant table: how many handles may have the segment open at once
    /// (1 to 1024; a dead process's record is reused).
    pub fn participants(mut self, n: u32) -> Options {
        self.participants = n;
        self
    }
}

/// Removes the segment `name` (its OS name), whoever created it. Handles that have it open
/// keep working; later `open`s fail with `NotFound`.
///
/// # Errors
/// `InvalidName`, `NotFound`, or `Io`.
pub fn remove(name: &str) -> Result<(), OpenError> {
    let os_name = name::os_name(name)?;
    os::shm_unlink(&os_name).map_err(|e| map_missing(e, name, "shm_unlink"))
}

/// Body size for an element count and element size; `None` if either is out of range.
pub(crate) type BodySize = fn(u64, u64, u32) -> Option<u64>;

/// What the kind-specific code tells the segment layer.
pub(crate) struct Spec<'a> {
    pub(crate) desc: TypeDesc,
    /// Body size for an element count and element size (both from the header), `None` if
    /// either is out of range.
    pub(crate) body_size: &'a dyn Fn(u64, u64, u32) -> Option<u64>,
}

/// An open segment: its memory (mapping and descriptor), validated layout, and our
/// participant record.
pub(crate) struct Segment {
    /// Start of the memory: the mapping's address (or the heap backing's allocation). Kept
    /// here so that `body()` is one add, whatever the backing.
    base: *mut u8,
    backing: Backing,
    layout: Layout,
    count: u64,
    /// Element size from the validated header (the cell size of a message queue).
    elem_size: u64,
    participants: u32,
    me: Owner,
    name: String,
    os_name: String,
    /// Unlink the name on drop (we created it and were not told to persist).
    unlink_on_drop: bool,
    inode: u64,
    /// Recent positive liveness answers (see [`participants::AliveCache`]).
    alive: participants::AliveCache,
}

// SAFETY: the mapping is shared memory accessed only through atomics and byte-wise atomic
// copies; the descriptor is a plain fd. Nothing is tied to the creating thread.
unsafe impl Send for Segment {}
// SAFETY: as above; every access through `&Segment` is an atomic operation.
unsafe impl Sync for Segment {}

impl Segment {
    /// Wraps memory whose header was validated into `layout`, and registers a participant.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        base: *mut u8,
        backing: Backing,
        layout: Layout,
        (count, elem_size): (u64, u64),
        participants: u32,
        name: &str,
        os_name: String,
        inode: u64,
    ) -> Result<Segment, OpenError> {
        crate::fault::install();
        let mut seg = Segment {
            base,
            backing,
            layout,
            count,
            elem_size,
            participants,
            me: Owner(0),
            name: name.to_owned(),
            os_name,
            unlink_on_drop: false,
            inode,
            alive: participants::AliveCache::new(),
        };
        let me = seg
            .backing
            .register(seg.participant_table())
            .map_err(|e| OpenError::io("fcntl(F_OFD_SETLK)", e))?
            .ok_or(OpenError::TooManyParticipants { max: participants })?;
        seg.me = me;
        Ok(seg)
    }

    /// The participant table.
    pub(crate) fn participant_table(&self) -> &[Participant] {
        let p = self.base.wrapping_add(self.layout.participants_offset as usize);
        // SAFETY: `participants * PARTICIPANT_SIZE` bytes from `participants_offset` lie in
        // the mapping (validated layout), the offset is 8-aligned, and `Participant` is all
        // atomics, valid for any bytes and safe to share.
        unsafe { std::slice::from_raw_parts(p.cast::<Participant>(), self.participants as usize) }
    }

    /// Start of the kind-specific body (`body_size()` bytes, aligned to at least 64).
    #[inline]
    pub(crate) fn body(&self) -> *mut u8 {
        self.base.wrapping_add(self.layout.body_offset as usize)
    }

    /// Size of the body in bytes.
    #[allow(dead_code)]
    pub(crate) fn body_size(&self) -> u64 {
        self.layout.body_size
    }

    /// This handle's count of `task_done` calls (its items in hand are what its claim
    /// records took less these, see `raw::claims`).
    pub(crate) fn tasks_done(&self) -> &crate::primitive::AtomicU64 {
        &self.participant_table()[self.me.index() as usize].tasks_done
    }

    /// Waits until every item put into `ring` (a ring in this segment) so far was taken and
    /// marked done, or `deadline` passes; items held by dead participants are not waited
    /// for (`RawRing::join`).
    pub(crate) fn join_ring(
        &self,
        ring: &crate::raw::ring::RawRing<'_>,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), crate::error::TaskError> {
        let table = self.participant_table();
        let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
            for (i, rec) in table.iter().enumerate() {
                if let Some(owner) = rec.occupant(i as u32)
                    // Acquire, before the ring reads the records' `taken`: a `task_done` seen
                    // here comes with the get it follows.
                    && !visit(owner, rec.tasks_done.load(crate::primitive::Ordering::Acquire))
                {
                    return;
                }
            }
        };
        ring.join(deadline, self, &participants, self)
            .map_err(|_| crate::error::TaskError::Timeout)
    }

    /// Participant count from the validated header.
    pub(crate) fn participant_count(&self) -> u32 {
        self.participants
    }

    /// Element count from the validated header.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Element size from the validated header.
    #[allow(dead_code)]
    pub(crate) fn elem_size(&self) -> u64 {
        self.elem_size
    }

    /// The user-visible name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Stop unlinking the name on drop.
    pub(crate) fn set_persist(&mut self) {
        self.unlink_on_drop = false;
    }

    /// Whether this handle will unlink the name when dropped.
    pub(crate) fn owns_name(&self) -> bool {
        self.unlink_on_drop
    }
}

impl Liveness for Segment {
    #[inline]
    fn me(&self) -> Owner {
        self.me
    }
    fn is_alive(&self, owner: Owner) -> bool {
        self.liveness(owner, false)
    }

    fn is_alive_recent(&self, owner: Owner) -> bool {
        self.liveness(owner, true)
    }
}

impl Segment {
    /// The beacon question about `owner`; `recent`: answered from [`Segment::alive`] when it
    /// holds a young positive answer (mapped backing only: tests on heap memory crash a
    /// participant and expect the next claim to see it).
    fn liveness(&self, owner: Owner, recent: bool) -> bool {
        let cache = recent.then_some(&self.alive);
        self.backing.is_alive(self.participant_table(), self.me, owner, cache)
    }
}

/// The waiter that suits the backing (`Backing`'s [`Wait`]). Called only to sleep and to
/// wake sleepers.
impl Wait for Segment {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        self.backing.wait(word, expected, deadline);
    }

    #[inline]
    fn wake_all(&self, word: &AtomicU32) {
        self.backing.wake_all(word);
    }

    #[inline]
    fn pause(&self, round: u32, deadline: Option<Instant>) {
        self.backing.pause(round, deadline);
    }

    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        self.backing.wake_one(word);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.backing.deregister(|| self.participant_table(), self.me);
        if self.unlink_on_drop {
            // Only if the name still refers to our object (someone may have removed it and
            // created a new one under the same name).
            unlink_if_same(&self.os_name, self.inode);
        }
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("count", &self.count)
            .field("me", &self.me)
            .finish()
    }
}
