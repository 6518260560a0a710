//! [`Options`]: the one builder of choices for creating and opening any shared object.
//!
//! Most of them are the segment's (permissions, init timeout, persistence, schema id,
//! participants, sparse pages), which `segment` reads; [`Options::max_message_size`] is the
//! message kinds' (`ByteQueue`, `MessageQueue`, `Pipe`), which they read when they lay out a
//! new segment. One type for all kinds, as `std::fs::OpenOptions` is one for all files.

use std::time::Duration;

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
    pub(crate) remove_with_last_user: bool,
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
            remove_with_last_user: false,
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

    /// Remove the name when the last handle leaves (dropped, or its process dies) instead of
    /// when the creating handle is dropped. The last one out removes it, whether it created
    /// the segment or opened it; if every user dies, `shmproc gc`
    /// ([`inspect::collect_garbage`](crate::inspect::collect_garbage)) or the next
    /// `open_or_create` (which then creates it afresh) does, while `open` joins what they left. A process that opens the name while the last one leaves
    /// either joins the live segment or finds no name (`open`: `NotFound`;
    /// `open_or_create` creates it afresh), never a segment removed under it
    /// (`models/leave_model.py`).
    ///
    /// Choose it for segments that exist only while processes use them (a job queue between
    /// workers that come and go, none of them the owner), so that nothing is left behind
    /// when they are done; keep the default (the creator owns the name) when the creator's
    /// life defines the segment's, or when the data must survive a moment with no user.
    /// Ignored on open (the creator's choice is read from the segment).
    pub fn remove_with_last_user(mut self, yes: bool) -> Options {
        self.remove_with_last_user = yes;
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
