//! What holds a segment's bytes and answers for its participants: a `/dev/shm` mapping with
//! OFD-lock beacons and futexes, or (the `testing` feature) heap memory with beacon bits and
//! short sleeps (`heap.rs`). `Segment` asks its backing and never names a variant.

use super::participants::{self, AliveCache, Participant};
use crate::os;
use crate::primitive::AtomicU32;
use crate::raw::{Owner, Wait};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

/// What holds a segment's bytes and its participants' liveness beacons.
///
/// Production builds have only `Shm`, so every `match` on it compiles to nothing; builds with
/// the `testing` feature add `Heap` and `Crashed`, and the matches (none on a fast path:
/// registration, liveness questions, sleeps and wake-ups only) become one predictable branch.
pub(super) enum Backing {
    /// A `/dev/shm` object: the shared mapping (kept for its `Drop`, which unmaps), and the
    /// descriptor whose OFD locks are the beacons.
    Shm { _map: memmap2::MmapRaw, fd: OwnedFd },
    /// Heap memory laid out like a segment, shared by the handles of this process
    /// (`heap.rs`): beacon bits instead of OFD locks, sleeping instead of futexes.
    #[cfg(feature = "testing")]
    Heap(std::sync::Arc<super::heap::HeapMem>),
    /// A handle ended by `Segment::simulate_crash`: its memory and beacon are gone, as a
    /// killed process's are, and it is only dropped, leaving its record taken.
    #[cfg(feature = "testing")]
    Crashed,
}

impl Backing {
    /// Registers in `table`, taking a beacon (see [`participants::register`]).
    pub(super) fn register(&self, table: &[Participant]) -> io::Result<Option<Owner>> {
        match self {
            Backing::Shm { fd, .. } => participants::register(table, &fd.as_fd()),
            #[cfg(feature = "testing")]
            Backing::Heap(mem) => participants::register(table, &**mem),
            #[cfg(feature = "testing")]
            Backing::Crashed => Ok(None),
        }
    }

    /// Gives `me`'s record in `table` back and drops its beacon (see
    /// [`participants::deregister`]). A crashed handle leaves both as a killed process does;
    /// `table` is not called then, since its memory is gone.
    pub(super) fn deregister<'a>(&self, table: impl FnOnce() -> &'a [Participant], me: Owner) {
        match self {
            Backing::Shm { fd, .. } => participants::deregister(table(), &fd.as_fd(), me),
            #[cfg(feature = "testing")]
            Backing::Heap(mem) => participants::deregister(table(), &**mem, me),
            #[cfg(feature = "testing")]
            Backing::Crashed => {}
        }
    }

    /// Whether `os_name` still refers to this object (`inode`); a heap backing has no name,
    /// and is always "still named".
    pub(super) fn still_named(&self, os_name: &str, inode: u64) -> bool {
        match self {
            Backing::Shm { .. } => super::open::still_named(os_name, inode),
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => true,
        }
    }

    /// Whether somebody else holds the init beacon (a creator initialising, or a remover
    /// deciding); a heap backing has none.
    pub(super) fn init_beacon_held(&self) -> bool {
        match self {
            Backing::Shm { fd, .. } => os::beacon_is_held(fd.as_fd(), participants::INIT_BEACON).unwrap_or(false),
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => false,
        }
    }

    /// Removes `os_name` if no live process holds this object any more (the last handle
    /// leaving, see [`super::open::remove_if_unheld`]); nothing for a heap backing.
    pub(super) fn remove_if_unheld(&self, os_name: &str, inode: u64) {
        match self {
            Backing::Shm { fd, .. } => {
                super::open::remove_if_unheld(fd.as_fd(), os_name, inode);
            }
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => {}
        }
    }

    /// Whether `owner` is alive, asked as `me` of `table`'s beacons; with `cache`, a young
    /// positive answer is reused (mapped backing only: tests on heap memory crash a
    /// participant and expect the next claim to see it).
    pub(super) fn is_alive(&self, table: &[Participant], me: Owner, owner: Owner, cache: Option<&AliveCache>) -> bool {
        match self {
            Backing::Shm { fd, .. } => {
                let cache = cache.map(|alive| (alive, participants::now_us()));
                participants::is_alive_cached(table, &fd.as_fd(), me, owner, cache)
            }
            #[cfg(feature = "testing")]
            Backing::Heap(mem) => participants::is_alive(table, &**mem, me, owner),
            #[cfg(feature = "testing")]
            Backing::Crashed => false,
        }
    }
}

/// Shared futexes for `/dev/shm`, short sleeps on the heap (where Miri runs without system
/// calls).
impl Wait for Backing {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        match self {
            Backing::Shm { .. } => os::Futex.wait(word, expected, deadline),
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => super::heap::Sleep.wait(word, expected, deadline),
        }
    }

    #[inline]
    fn wake_all(&self, word: &AtomicU32) {
        match self {
            Backing::Shm { .. } => os::Futex.wake_all(word),
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => super::heap::Sleep.wake_all(word),
        }
    }

    #[inline]
    fn pause(&self, round: u32, deadline: Option<Instant>) {
        match self {
            Backing::Shm { .. } => os::Futex.pause(round, deadline),
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => super::heap::Sleep.pause(round, deadline),
        }
    }

    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        match self {
            Backing::Shm { .. } => os::Futex.wake_one(word),
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => super::heap::Sleep.wake_one(word),
        }
    }

    #[inline]
    fn wake_n(&self, word: &AtomicU32, n: u32) {
        match self {
            Backing::Shm { .. } => os::Futex.wake_n(word, n),
            #[cfg(feature = "testing")]
            Backing::Heap(_) | Backing::Crashed => super::heap::Sleep.wake_n(word, n),
        }
    }
}
