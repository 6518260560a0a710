//! Creating and opening segments: `create`, `open` and `open_or_create`, the header copied in
//! and out around its `init_state` word, and the removal of a name whose creator died during
//! initialisation (`remove_if_abandoned`). `models/init_model.py` checks this protocol; its
//! steps carry the names of the functions here.

use super::header::{self, HEADER_SIZE, Header, INIT_ABANDONED, INIT_READY, Layout};
use super::participants::{BEACON_BASE, INIT_BEACON};
use super::{Backing, Options, Segment, Spec, name};
use crate::error::OpenError;
use crate::os;
use crate::primitive::{AtomicU32, Ordering};
use crate::raw::copy;
use crate::raw::{MAX_PARTICIPANTS, Wait, deadline_after, expired};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

pub(crate) fn map_missing(e: io::Error, name: &str, op: &'static str) -> OpenError {
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

/// Unlinks `os_name` if it still refers to the object with `inode`; `true` if it did. (A
/// remaining window: another process may replace the name between the check and the unlink;
/// only a process that removes and re-creates names concurrently can hit it.)
pub(crate) fn unlink_if_same(os_name: &str, inode: u64) -> bool {
    name_inode(os_name) == Some(inode) && os::shm_unlink(os_name).is_ok()
}

/// Whether `os_name` still refers to the object with `inode`.
pub(crate) fn still_named(os_name: &str, inode: u64) -> bool {
    name_inode(os_name) == Some(inode)
}

/// Removes `os_name` if no live process holds the object behind `fd` (`inode`) and no creator
/// is initialising it: the steps `leave_lock`, `leave_same`, `leave_unlink` of
/// `models/leave_model.py`. Takes every beacon of the object at once (the init beacon and
/// every participant's), which fails while anybody holds one, and keeps them until `fd` is
/// closed: meanwhile no handle can register (an opener that tries finds the name gone once
/// we are done, see `Segment::finish`). `true` if it removed the name.
pub(crate) fn remove_if_unheld(fd: BorrowedFd<'_>, os_name: &str, inode: u64) -> bool {
    if !hold_every_beacon(fd) {
        return false;
    }
    let removed = unlink_if_same(os_name, inode);
    // After the unlink, never before (mutation `unlock_early`): from here a registration
    // succeeds, and the opener's name check sees the name gone.
    os::beacon_range_unlock(fd, INIT_BEACON, BEACON_SPAN);
    removed
}

/// Whether anybody holds a beacon of the object behind `fd`: a live participant, or a
/// creator initialising it (one `F_OFD_GETLK` over them all, whatever its header says).
pub(crate) fn anyone_home(fd: BorrowedFd<'_>) -> bool {
    os::beacon_range_is_held(fd, INIT_BEACON, BEACON_SPAN).unwrap_or(true)
}

/// Takes the init beacon and every participant beacon of the object behind `fd` at once;
/// `false` when somebody holds one. Released by `os::beacon_range_unlock` or when `fd` is
/// closed.
pub(crate) fn hold_every_beacon(fd: BorrowedFd<'_>) -> bool {
    os::beacon_range_try_lock(fd, INIT_BEACON, BEACON_SPAN).unwrap_or(false)
}

/// Bytes from the init beacon to past the last participant beacon.
pub(crate) const BEACON_SPAN: u64 = BEACON_BASE - INIT_BEACON + MAX_PARTICIPANTS as u64;

/// The header's `init_state` word (offset 8).
///
/// # Safety
/// `base` is the start of at least `HEADER_SIZE` bytes of segment memory, valid for `'a`.
pub(crate) unsafe fn init_state<'a>(base: *mut u8) -> &'a AtomicU32 {
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
pub(super) unsafe fn write_and_publish(
    base: *mut u8,
    spec: &Spec<'_>,
    count: u64,
    opts: &Options,
    layout: &Layout,
    init: &dyn Fn(*mut u8),
) {
    let flags = if opts.remove_with_last_user {
        header::FLAG_LAST_USER_REMOVES
    } else {
        0
    };
    let h = header::new_header(&spec.desc, count, opts.participants, layout, os::pid(), flags);
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
pub(crate) unsafe fn read_header(base: *mut u8) -> Header {
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
                (inode, opts.remove_with_last_user),
                None,
            )?;
            // Registered: our participant beacon now vouches for the object (an error above
            // closed the descriptor, which drops the init beacon with it).
            #[allow(irrefutable_let_patterns)] // the `testing` feature adds backings
            if let Backing::Shm { fd, .. } = &seg.backing {
                os::beacon_unlock(fd.as_fd(), INIT_BEACON);
            }
            seg.unlink_on_drop = !opts.persist && !opts.remove_with_last_user;
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
        match Self::open_inner(name, &os_name, spec, opts, false) {
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
            match Self::open_inner(name, &os_name, spec, opts, true) {
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

    /// Opens an existing object. `or_create`: called by `open_or_create`, which removes a
    /// segment whose name goes with its last user once all its users died (see below);
    /// `open` joins it instead.
    fn open_inner(
        name: &str,
        os_name: &str,
        spec: &Spec<'_>,
        opts: &Options,
        or_create: bool,
    ) -> Result<Segment, OpenFail> {
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
        // A segment whose name goes with its last user, and that nobody holds any more: its
        // users all died (the last one out would have removed it). `open_or_create` removes
        // it as `gc` would and creates it afresh; `open` joins it (it never removes a name).
        if or_create
            && h.flags & header::FLAG_LAST_USER_REMOVES != 0
            && !anyone_home(fd.as_fd())
            && remove_if_unheld(fd.as_fd(), os_name, info.inode)
        {
            return Err(OpenFail::Abandoned);
        }
        let map = os::map(fd.as_fd(), layout.total_size as usize).map_err(|e| OpenError::io("mmap", e))?;
        Ok(Segment::finish(
            map.as_mut_ptr(),
            Backing::Shm { _map: map, fd },
            layout,
            (h.count, h.elem_size),
            h.participants,
            name,
            os_name.to_owned(),
            (info.inode, h.flags & header::FLAG_LAST_USER_REMOVES != 0),
            deadline,
        )?)
    }
}
