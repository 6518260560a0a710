//! Named segments: create / open / open_or_create, header validation, the mapping, and the
//! participant registration that gives every handle a liveness-checked identity.

pub(crate) mod header;
#[cfg(test)]
pub(crate) mod heap;
pub(crate) mod name;
pub(crate) mod participants;

use crate::error::OpenError;
use crate::os;
use crate::primitive::{AtomicU32, Ordering};
use crate::raw::copy;
use crate::raw::{Liveness, MAX_PARTICIPANTS, Owner, Wait, deadline_after, expired};
use header::{HEADER_SIZE, Header, INIT_ABANDONED, INIT_READY, Layout, TypeDesc};
use participants::{BEACON_BASE, INIT_BEACON, Participant};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
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

fn map_missing(e: io::Error, name: &str, op: &'static str) -> OpenError {
    if e.kind() == io::ErrorKind::NotFound {
        OpenError::NotFound { name: name.to_owned() }
    } else {
        OpenError::io(op, e)
    }
}

/// `NoSpace` for a segment of `needed` bytes on a file system with `available` bytes free.
fn no_space(needed: u64, available: u64) -> OpenError {
    OpenError::NoSpace {
        needed,
        available,
        file_system: os::SHM_FS,
    }
}

/// The inode the name refers to now, if any.
fn name_inode(os_name: &str) -> Option<u64> {
    let fd = os::shm_open_existing(os_name).ok()?;
    os::fstat(fd.as_fd()).ok().map(|i| i.inode)
}

/// Unlinks `os_name` if it still refers to the object with `inode`. (A remaining window:
/// another process may replace the name between the check and the unlink; only a process
/// that removes and re-creates names concurrently can hit it.)
fn unlink_if_same(os_name: &str, inode: u64) {
    if name_inode(os_name) == Some(inode) {
        let _ = os::shm_unlink(os_name);
    }
}

/// Body size for an element count and element size; `None` if either is out of range.
pub(crate) type BodySize = fn(u64, u64, u32) -> Option<u64>;

/// The header's `init_state` word (offset 8).
///
/// # Safety
/// `base` is the start of at least `HEADER_SIZE` bytes of segment memory, valid for `'a`.
unsafe fn init_state<'a>(base: *mut u8) -> &'a AtomicU32 {
    // SAFETY: offset 8 is inside the header and 4-aligned (const assertions in `header`);
    // an atomic is valid for any bytes and may be shared.
    unsafe { &*base.add(8).cast::<AtomicU32>() }
}

// The header is copied in and out in three pieces that leave out `init_state` (bytes 8..12):
// the magic (one u64), the version (one u32) and the rest (u64 words). `init_state` is only
// ever accessed as one `AtomicU32` (the creator's release store, openers' acquire loads and
// futex waits, the abandon CAS). Copying it inside a wider word would make mixed-size atomic
// accesses to it, which the memory model does not allow to race, and an opener in the same
// process does race with its creator (Miri reports it on the heap backing; the test
// `an_opener_racing_its_creator_reads_a_whole_header` in `heap.rs`).
const HEADER_REST: usize = 16;
const _: () = assert!(core::mem::offset_of!(Header, version) == 12);
const _: () = assert!((HEADER_SIZE as usize - HEADER_REST) % 8 == 0);
type HeaderRest = [u64; (HEADER_SIZE as usize - HEADER_REST) / 8];

/// Writes the header for `spec`, `count` and `layout` at `base`, runs `init` on the body, then
/// publishes the segment (`INIT_READY`, release). Both backings create through here.
///
/// # Safety
/// `base` is the start of `layout.total_size` zeroed bytes, page-aligned, that nobody else
/// accesses except atomically.
unsafe fn write_and_publish(
    base: *mut u8,
    spec: &Spec<'_>,
    count: u64,
    opts: &Options,
    layout: &Layout,
    init: &dyn Fn(*mut u8),
) {
    let h = header::new_header(&spec.desc, count, opts.participants, layout, os::pid());
    let b: &[u8] = bytemuck::bytes_of(&h);
    // SAFETY: the memory is `total_size >= HEADER_SIZE` bytes and page-aligned, so each of the
    // three pieces is in bounds and aligned for its type; the stores are (word-wise) atomic,
    // so readers racing with them read garbage to reject, never a data race.
    unsafe { copy::store(base.cast::<u64>(), h.magic) };
    // SAFETY: as above.
    unsafe { copy::store(base.add(12).cast::<u32>(), h.version) };
    // SAFETY: as above.
    unsafe {
        copy::store(
            base.add(HEADER_REST).cast::<HeaderRest>(),
            bytemuck::pod_read_unaligned(&b[HEADER_REST..]),
        )
    };
    // SAFETY: `body_offset + body_size == total_size` was checked by `Layout::compute`.
    init(unsafe { base.add(layout.body_offset as usize) });
    // SAFETY: the memory outlives this call.
    let state = unsafe { init_state(base) };
    // Release: pairs with the opener's acquire load; everything above is visible to it.
    state.store(INIT_READY, Ordering::Release);
}

/// Copies the header out of the segment memory at `base`, in the pieces `write_and_publish`
/// wrote.
///
/// # Safety
/// `base` is valid for reads of `HEADER_SIZE` bytes, 8-aligned, for the duration of the call.
unsafe fn read_header(base: *mut u8) -> Header {
    let mut b = [0u8; HEADER_SIZE as usize];
    // SAFETY: the caller's range, aligned for each of the three pieces; the loads are
    // (word-wise) atomic, so a peer writing the header concurrently gives us garbage to
    // reject, not a data race.
    let magic: u64 = unsafe { copy::load(base.cast::<u64>()) };
    b[..8].copy_from_slice(bytemuck::bytes_of(&magic));
    // SAFETY: the caller's range.
    let state = unsafe { init_state(base) }.load(Ordering::Relaxed);
    b[8..12].copy_from_slice(bytemuck::bytes_of(&state));
    // SAFETY: as for the magic.
    let version: u32 = unsafe { copy::load(base.add(12).cast::<u32>()) };
    b[12..16].copy_from_slice(bytemuck::bytes_of(&version));
    // SAFETY: as for the magic.
    let rest: HeaderRest = unsafe { copy::load(base.add(HEADER_REST).cast::<HeaderRest>()) };
    b[HEADER_REST..].copy_from_slice(bytemuck::bytes_of(&rest));
    bytemuck::pod_read_unaligned(&b)
}

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
    /// `simulate_crash` was called: drop like a killed process (no deregistration).
    #[cfg(test)]
    crashed: bool,
}

/// What holds a segment's bytes and its participants' liveness beacons.
///
/// Production builds have only `Shm`, so every `match` on it compiles to nothing; test builds
/// add `Heap`, and the matches (none on a fast path: liveness questions, sleeps and wake-ups
/// only) become one predictable branch.
enum Backing {
    /// A `/dev/shm` object: the shared mapping (kept for its `Drop`, which unmaps), and the
    /// descriptor whose OFD locks are the beacons.
    Shm { _map: memmap2::MmapRaw, fd: OwnedFd },
    /// Heap memory laid out like a segment, shared by the handles of this process
    /// (`heap.rs`): beacon bits instead of OFD locks, sleeping instead of futexes.
    #[cfg(test)]
    Heap(std::sync::Arc<heap::HeapMem>),
}

// SAFETY: the mapping is shared memory accessed only through atomics and byte-wise atomic
// copies; the descriptor is a plain fd. Nothing is tied to the creating thread.
unsafe impl Send for Segment {}
// SAFETY: as above; every access through `&Segment` is an atomic operation.
unsafe impl Sync for Segment {}

enum OpenFail {
    Err(OpenError),
    /// Not initialised before the deadline: carries the descriptor for stale recovery.
    InitTimeout(OwnedFd),
    /// The name is being removed (creator died during init): try again.
    Abandoned,
}

/// What [`Segment::remove_if_abandoned`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Abandonment {
    /// The creator still holds its init beacon: it is alive and at work.
    CreatorAtWork,
    /// Some live participant holds the object open and its init-state word says READY: it
    /// was published after our wait gave up (a slow creator); open it again.
    Published,
    /// Some live participant holds the object open, yet its init-state word is not READY: a
    /// peer rewrote it. Not removed.
    LiveParticipants,
    /// Abandoned: removed by us or by another process (or nothing left to decide).
    Removed,
}

impl From<OpenError> for OpenFail {
    fn from(e: OpenError) -> Self {
        OpenFail::Err(e)
    }
}

impl Segment {
    /// Creates `name` exclusively, runs `init` on the zeroed body, publishes the header.
    pub(crate) fn create(
        name: &str,
        spec: &Spec<'_>,
        count: u64,
        opts: &Options,
        init: &dyn Fn(*mut u8),
    ) -> Result<Segment, OpenError> {
        let os_name = name::os_name(name)?;
        let body =
            (spec.body_size)(count, spec.desc.size, opts.participants).ok_or_else(|| OpenError::InvalidSize {
                what: format!("element count {count} is out of range"),
            })?;
        let layout = Layout::compute(opts.participants, spec.desc.align, body)
            .map_err(|what| OpenError::InvalidSize { what })?;
        // A process that wrongly takes us for a creator that died during initialisation
        // (possible only with a tiny init timeout) may unlink our fresh file before we hold
        // its init beacon. `init_new` notices and we start over; bounded, since each retry
        // means another process made progress on this name.
        for _ in 0..64 {
            let fd = os::shm_create_exclusive(&os_name, opts.mode).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    OpenError::AlreadyExists { name: name.to_owned() }
                } else {
                    OpenError::io("shm_open(O_CREAT|O_EXCL)", e)
                }
            })?;
            let inode = os::fstat(fd.as_fd()).map_err(|e| OpenError::io("fstat", e))?.inode;
            let map = match Self::init_new(&fd, &os_name, inode, spec, count, opts, &layout, init) {
                Ok(Some(m)) => m,
                Ok(None) => continue, // lost the name to a stale-segment recoverer: retry
                Err(e) => {
                    unlink_if_same(&os_name, inode);
                    return Err(e);
                }
            };
            let mut seg = Segment::finish(
                map.as_mut_ptr(),
                Backing::Shm { _map: map, fd },
                layout,
                (count, spec.desc.size),
                opts.participants,
                name,
                os_name,
                inode,
            )?;
            // Registered: our participant beacon now vouches for the object (an error above
            // closed the descriptor, which drops the init beacon with it).
            #[allow(irrefutable_let_patterns)] // the heap backing exists in test builds
            if let Backing::Shm { fd, .. } = &seg.backing {
                os::beacon_unlock(fd.as_fd(), INIT_BEACON);
            }
            seg.unlink_on_drop = !opts.persist;
            return Ok(seg);
        }
        Err(OpenError::AlreadyExists { name: name.to_owned() })
    }

    /// Sizes, maps and initialises a freshly created object, then publishes its header.
    /// `Ok(None)`: the name no longer refers to our object (see `create`).
    #[allow(clippy::too_many_arguments)]
    fn init_new(
        fd: &OwnedFd,
        os_name: &str,
        inode: u64,
        spec: &Spec<'_>,
        count: u64,
        opts: &Options,
        layout: &Layout,
        init: &dyn Fn(*mut u8),
    ) -> Result<Option<memmap2::MmapRaw>, OpenError> {
        // Held while we initialise: an opener that times out can tell a slow creator (beacon
        // held) from a dead one (beacon free). Somebody else holding it already took us for
        // dead; once we hold it, the name must still be ours.
        if !os::beacon_try_lock(fd.as_fd(), INIT_BEACON).map_err(|e| OpenError::io("fcntl(F_OFD_SETLK)", e))? {
            return Ok(None);
        }
        if name_inode(os_name) != Some(inode) {
            return Ok(None);
        }
        // tmpfs allocates a file's pages on first touch, and a process touching a page that
        // tmpfs cannot back dies of SIGBUS. Refuse a size that does not fit now, before
        // allocating anything; then allocate every page (unless sparse), so that no later
        // touch can fail. Reserving sets the size only once all pages are held: an opener
        // waiting for the size never maps a page that was not allocated.
        let available = os::available_bytes(fd.as_fd()).map_err(|e| OpenError::io("fstatvfs", e))?;
        if layout.total_size > available {
            return Err(no_space(layout.total_size, available));
        }
        if opts.sparse {
            os::set_len(fd.as_fd(), layout.total_size).map_err(|e| OpenError::io("ftruncate", e))?;
        } else {
            crate::fault::hit("segment.create.before_reserve");
            os::reserve(fd.as_fd(), layout.total_size).map_err(|e| {
                if e.kind() == io::ErrorKind::StorageFull {
                    no_space(layout.total_size, os::available_bytes(fd.as_fd()).unwrap_or(0))
                } else {
                    OpenError::io("fallocate", e)
                }
            })?;
        }
        crate::fault::hit("segment.create.after_truncate");
        let map = os::map(fd.as_fd(), layout.total_size as usize).map_err(|e| OpenError::io("mmap", e))?;
        // SAFETY: the fresh mapping is `total_size` zeroed, page-aligned bytes.
        unsafe { write_and_publish(map.as_mut_ptr(), spec, count, opts, layout, init) };
        // SAFETY: the mapping outlives `state`.
        os::Futex.wake_all(unsafe { init_state(map.as_mut_ptr()) });
        // The init beacon stays held until `create` has registered us as a participant.
        Ok(Some(map))
    }

    /// Opens an existing segment and validates it against `spec`.
    pub(crate) fn open(name: &str, spec: &Spec<'_>, opts: &Options) -> Result<Segment, OpenError> {
        let os_name = name::os_name(name)?;
        match Self::open_inner(name, &os_name, spec, opts) {
            Ok(s) => Ok(s),
            Err(OpenFail::Err(e)) => Err(e),
            Err(OpenFail::InitTimeout(_)) => Err(OpenError::InitTimeout {
                name: name.to_owned(),
                waited: opts.init_timeout,
            }),
            Err(OpenFail::Abandoned) => Err(OpenError::NotFound { name: name.to_owned() }),
        }
    }

    /// Opens `name`, or creates it if it does not exist; race-free among processes: exactly
    /// one creates and initialises, the others open after initialisation. A name left behind
    /// by a creator that died during initialisation is removed and created afresh.
    /// Returns the segment and whether this call created it.
    pub(crate) fn open_or_create(
        name: &str,
        spec: &Spec<'_>,
        count: u64,
        opts: &Options,
        init: &dyn Fn(*mut u8),
    ) -> Result<(Segment, bool), OpenError> {
        let os_name = name::os_name(name)?;
        let give_up = deadline_after(opts.init_timeout.saturating_mul(4).max(Duration::from_secs(1)));
        loop {
            match Self::create(name, spec, count, opts, init) {
                Ok(s) => return Ok((s, true)),
                Err(OpenError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            match Self::open_inner(name, &os_name, spec, opts) {
                Ok(s) => return Ok((s, false)),
                Err(OpenFail::Err(OpenError::NotFound { .. })) | Err(OpenFail::Abandoned) => {}
                Err(OpenFail::Err(e)) => return Err(e),
                Err(OpenFail::InitTimeout(fd)) => {
                    crate::fault::hit("segment.open_or_create.before_remove");
                    if Self::remove_if_abandoned(&fd, &os_name) == Abandonment::LiveParticipants {
                        return Err(OpenError::corrupted(
                            "its init-state word says it was never initialised, yet live \
                             participants hold it open (a peer rewrote the header)",
                        ));
                    }
                }
            }
            if expired(give_up) {
                return Err(OpenError::InitTimeout {
                    name: name.to_owned(),
                    waited: opts.init_timeout,
                });
            }
            os::sleep(Duration::from_millis(1));
        }
    }

    /// The creator of the object behind `fd` died before publishing it (its init beacon is
    /// free and the state is not READY): mark it abandoned (one CAS winner) and unlink the
    /// name if it still refers to this very object.
    ///
    /// The init-state word alone never decides: a peer can write it. An object that any
    /// live participant holds (a participant beacon is held) was published, whatever the
    /// word says now, and is left alone. The creator keeps its init beacon until it holds
    /// its participant beacon, so there is no moment when a published object has neither.
    ///
    /// `models/init_model.py` checks this protocol (with `create`, `init_new` and
    /// `open_inner`, whose steps it names) with processes killed at any step.
    fn remove_if_abandoned(fd: &OwnedFd, os_name: &str) -> Abandonment {
        // Take the init beacon and hold it while deciding (closing `fd` drops it): a creator
        // that has not locked it yet then fails to and starts over, and one that holds it
        // makes us fail here. Merely testing it would go stale before the decision.
        if !os::beacon_try_lock(fd.as_fd(), INIT_BEACON).unwrap_or(false) {
            return Abandonment::CreatorAtWork;
        }
        let Ok(info) = os::fstat(fd.as_fd()) else {
            return Abandonment::Removed;
        };
        // The header, if the creator sized the object (one that died first had not).
        let header_map = if info.size >= HEADER_SIZE {
            os::map(fd.as_fd(), HEADER_SIZE as usize).ok()
        } else {
            None
        };
        // SAFETY: the mapping is HEADER_SIZE bytes and outlives the returned reference.
        let state = |map: &memmap2::MmapRaw| unsafe { init_state(map.as_mut_ptr()) };
        if os::beacon_range_is_held(fd.as_fd(), BEACON_BASE, u64::from(MAX_PARTICIPANTS)).unwrap_or(true) {
            // A participant registers only after READY was stored, so READY now means a slow
            // creator published after our wait gave up (models/init_model.py,
            // `live_is_corrupt`).
            // Acquire: pairs with the creator's release store of INIT_READY.
            let published = header_map
                .as_ref()
                .is_some_and(|map| state(map).load(Ordering::Acquire) == INIT_READY);
            os::beacon_unlock(fd.as_fd(), INIT_BEACON);
            return if published {
                Abandonment::Published
            } else {
                Abandonment::LiveParticipants
            };
        }
        let won = if info.size >= HEADER_SIZE {
            let Some(map) = &header_map else {
                return Abandonment::Removed;
            };
            state(map)
                .compare_exchange(header::INIT_EMPTY, INIT_ABANDONED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        } else {
            // Died before sizing it: we hold its init beacon, so we remove it.
            true
        };
        if won {
            unlink_if_same(os_name, info.inode);
        }
        Abandonment::Removed
    }

    fn open_inner(name: &str, os_name: &str, spec: &Spec<'_>, opts: &Options) -> Result<Segment, OpenFail> {
        let deadline = deadline_after(opts.init_timeout);
        let fd = os::shm_open_existing(os_name).map_err(|e| map_missing(e, name, "shm_open"))?;
        let info = os::fstat(fd.as_fd()).map_err(|e| OpenError::io("fstat", e))?;
        if !info.is_regular {
            return Err(OpenError::corrupted("not a regular file").into());
        }
        let euid = os::euid();
        if info.uid != euid {
            return Err(OpenError::UntrustedOwner {
                owner: info.uid,
                expected: euid,
            }
            .into());
        }
        if info.mode & 0o022 != 0 && !opts.allow_shared_write {
            return Err(OpenError::InsecurePermissions { mode: info.mode }.into());
        }
        // Wait for the creator to size the object, then to publish the header.
        let mut size = info.size;
        while size < HEADER_SIZE {
            if expired(deadline) {
                return Err(OpenFail::InitTimeout(fd));
            }
            os::sleep(Duration::from_millis(1));
            size = os::fstat(fd.as_fd()).map_err(|e| OpenError::io("fstat", e))?.size;
        }
        let hmap = os::map(fd.as_fd(), HEADER_SIZE as usize).map_err(|e| OpenError::io("mmap", e))?;
        let hbase = hmap.as_mut_ptr();
        // SAFETY: the mapping is HEADER_SIZE bytes and outlives `state` (dropped below).
        let state = unsafe { init_state(hbase) };
        loop {
            // Acquire: pairs with the creator's release store of INIT_READY.
            match state.load(Ordering::Acquire) {
                INIT_READY => break,
                INIT_ABANDONED => return Err(OpenFail::Abandoned),
                s => {
                    if expired(deadline) {
                        return Err(OpenFail::InitTimeout(fd));
                    }
                    os::Futex.wait(state, s, deadline);
                }
            }
        }
        // SAFETY: HEADER_SIZE bytes are mapped.
        let h = unsafe { read_header(hbase) };
        drop(hmap);
        let size = os::fstat(fd.as_fd()).map_err(|e| OpenError::io("fstat", e))?.size;
        let layout = header::validate(&h, size, &spec.desc, spec.body_size)?;
        let map = os::map(fd.as_fd(), layout.total_size as usize).map_err(|e| OpenError::io("mmap", e))?;
        Ok(Segment::finish(
            map.as_mut_ptr(),
            Backing::Shm { _map: map, fd },
            layout,
            (h.count, h.elem_size),
            h.participants,
            name,
            os_name.to_owned(),
            info.inode,
        )?)
    }

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
            #[cfg(test)]
            crashed: false,
        };
        let table = seg.participant_table();
        let me = match &seg.backing {
            Backing::Shm { fd, .. } => participants::register(table, &fd.as_fd()),
            #[cfg(test)]
            Backing::Heap(mem) => participants::register(table, &**mem),
        }
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

/// Heap-backed segments and simulated deaths, for the conformance tests (`conformance.rs`).
#[cfg(test)]
impl Segment {
    /// A segment on the heap: laid out, initialised (`init` on the body) and published like a
    /// created `/dev/shm` segment, then validated and registered in like an opened one.
    pub(crate) fn heap(
        spec: &Spec<'_>,
        count: u64,
        opts: &Options,
        init: &dyn Fn(*mut u8),
    ) -> Result<Segment, OpenError> {
        let body =
            (spec.body_size)(count, spec.desc.size, opts.participants).ok_or_else(|| OpenError::InvalidSize {
                what: format!("element count {count} is out of range"),
            })?;
        let layout = Layout::compute(opts.participants, spec.desc.align, body)
            .map_err(|what| OpenError::InvalidSize { what })?;
        let mem = std::sync::Arc::new(heap::HeapMem::new(layout.total_size as usize));
        // SAFETY: a fresh, zeroed, page-aligned allocation of `total_size` bytes.
        unsafe { write_and_publish(mem.base(), spec, count, opts, &layout, init) };
        Segment::heap_attach(mem, spec)
    }

    /// Another handle on the heap segment `mem`: checks and copies its header as `open` does.
    fn heap_attach(mem: std::sync::Arc<heap::HeapMem>, spec: &Spec<'_>) -> Result<Segment, OpenError> {
        let base = mem.base();
        // SAFETY: the allocation is at least HEADER_SIZE bytes (validated below) and lives as
        // long as `mem`.
        if unsafe { init_state(base) }.load(Ordering::Acquire) != INIT_READY {
            return Err(OpenError::corrupted("heap segment not initialised"));
        }
        // SAFETY: as above; page-aligned.
        let h = unsafe { read_header(base) };
        let layout = header::validate(&h, mem.len(), &spec.desc, spec.body_size)?;
        Segment::finish(
            base,
            Backing::Heap(mem),
            layout,
            (h.count, h.elem_size),
            h.participants,
            "heap",
            String::new(),
            0,
        )
    }

    /// A second handle on the same segment, as another process would have: opened by name on
    /// `/dev/shm` (its own descriptor, so its own OFD beacon), attached on the heap.
    pub(crate) fn peer(&self, spec: &Spec<'_>) -> Result<Segment, OpenError> {
        match &self.backing {
            Backing::Shm { .. } => Segment::open(&self.name, spec, &Options::new()),
            Backing::Heap(mem) => Segment::heap_attach(mem.clone(), spec),
        }
    }

    /// Drops this handle the way SIGKILL ends a process: no deregistration and no unlink; its
    /// beacon is released (on `/dev/shm` by closing its descriptor, which drops its OFD locks
    /// exactly as the kernel does at death), so peers find it dead.
    pub(crate) fn simulate_crash(mut self) {
        self.crashed = true;
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
        let table = self.participant_table();
        match &self.backing {
            Backing::Shm { fd, .. } => {
                let cache = recent.then(|| (&self.alive, participants::now_us()));
                participants::is_alive_cached(table, &fd.as_fd(), self.me, owner, cache)
            }
            #[cfg(test)]
            Backing::Heap(mem) => participants::is_alive(table, &**mem, self.me, owner),
        }
    }
}

/// The waiter that suits the backing: shared futexes for `/dev/shm`, short sleeps on the
/// heap (where Miri runs without system calls). Called only to sleep and to wake sleepers.
impl Wait for Segment {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        match self.backing {
            Backing::Shm { .. } => os::Futex.wait(word, expected, deadline),
            #[cfg(test)]
            Backing::Heap(_) => heap::Sleep.wait(word, expected, deadline),
        }
    }

    #[inline]
    fn wake_all(&self, word: &AtomicU32) {
        match self.backing {
            Backing::Shm { .. } => os::Futex.wake_all(word),
            #[cfg(test)]
            Backing::Heap(_) => heap::Sleep.wake_all(word),
        }
    }

    #[inline]
    fn pause(&self, round: u32, deadline: Option<Instant>) {
        match self.backing {
            Backing::Shm { .. } => os::Futex.pause(round, deadline),
            #[cfg(test)]
            Backing::Heap(_) => heap::Sleep.pause(round, deadline),
        }
    }

    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        match self.backing {
            Backing::Shm { .. } => os::Futex.wake_one(word),
            #[cfg(test)]
            Backing::Heap(_) => heap::Sleep.wake_one(word),
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let table = self.participant_table();
        #[cfg(test)]
        if self.crashed {
            // As the kernel does for a killed process: the beacon goes (on shm, closing our
            // descriptor right after this drops its OFD locks), the record stays taken.
            if let Backing::Heap(mem) = &self.backing {
                participants::Beacons::unlock(&**mem, participants::BEACON_BASE + u64::from(self.me.index()));
            }
            return;
        }
        match &self.backing {
            Backing::Shm { fd, .. } => participants::deregister(table, &fd.as_fd(), self.me),
            #[cfg(test)]
            Backing::Heap(mem) => participants::deregister(table, &**mem, self.me),
        }
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
