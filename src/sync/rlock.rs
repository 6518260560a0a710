//! `RLock`: a named re-entrant lock (Python's `multiprocessing.RLock`), the lock word of
//! `Lock` (`raw::lock`) with the owning thread and its depth kept in the handle.

use crate::error::OpenError;
use crate::locked::{Locked, to_result};
use crate::options::Options;
use crate::segment::header::Kind;
use crate::value::LockResult;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::error::LockError;

/// A lock shared between processes under a name that the thread holding it may lock again,
/// like Python's `multiprocessing.RLock`. Each `lock` returns a guard; the lock is released
/// when the thread's last guard is dropped.
///
/// Re-entrance is per handle and thread: a thread that holds the lock through this handle
/// locks it again at once. The depth lives in the handle (process memory), and the shared
/// lock word is `Lock`'s: when the holding process dies, the next locker gets
/// [`LockError::OwnerDied`] whatever depth the holder had reached. A second handle on the same
/// name, even in the same thread, is another owner and waits.
///
/// There is no async form: re-entrance is per thread, and async tasks share threads, so a
/// task would get in while another task of its thread holds the lock across an await. Use a
/// [`Lock`](crate::Lock) (`lock_async`) between tasks.
///
/// ```
/// # let name = format!("doc-rlock-{}", std::process::id());
/// use shmproc::RLock;
/// let lock = RLock::create(&name)?;
/// let outer = lock.lock().map_err(|e| e.without_guard())?;
/// let inner = lock.lock().map_err(|e| e.without_guard())?; // same thread: no wait
/// assert!(RLock::open(&name)?.try_lock().is_err());
/// drop(inner);
/// drop(outer);
/// assert!(RLock::open(&name)?.try_lock().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RLock {
    inner: Locked<()>,
    /// The holding thread's id ([`thread_id`]), 0 when no thread of this handle holds it.
    owner: AtomicUsize,
    /// Guards the holding thread has; touched only by that thread.
    depth: Cell<u32>,
}

// SAFETY: `depth` is read and written only by the thread whose id is in `owner` (it set
// `owner` to itself after taking the lock word, and clears it before releasing the word), so
// no two threads ever touch it at once; everything else is `Sync`.
unsafe impl Sync for RLock {}

/// A non-zero id for the calling thread, unique among live threads: the address of a
/// thread-local.
fn thread_id() -> usize {
    thread_local! {
        static ID: u8 = const { 0 };
    }
    ID.with(|b| b as *const u8 as usize)
}

impl RLock {
    fn wrap(inner: Locked<()>) -> RLock {
        RLock {
            inner,
            owner: AtomicUsize::new(0),
            depth: Cell::new(0),
        }
    }

    /// Creates the lock `name`, free. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `NoSpace`, `Io`.
    pub fn create(name: &str) -> Result<Self, OpenError> {
        Self::create_with(name, &Options::new())
    }

    /// [`create`](RLock::create) with options.
    ///
    /// # Errors
    /// As [`create`](RLock::create).
    pub fn create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Self::wrap(Locked::create(name, Kind::RLock, 1, opts, &|_| {})?))
    }

    /// Opens the existing lock `name`.
    ///
    /// # Errors
    /// `NotFound`, `IncompatibleType` (not an `RLock`), `Corrupted`, `VersionMismatch`,
    /// `UntrustedOwner`, `InsecurePermissions`, `InitTimeout`, `Io`.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](RLock::open) with options.
    ///
    /// # Errors
    /// As [`open`](RLock::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Self::wrap(Locked::open(name, Kind::RLock, opts)?))
    }

    /// Opens `name`, or creates it if it does not exist (race-free among processes).
    ///
    /// # Errors
    /// As [`create`](RLock::create) and [`open`](RLock::open).
    pub fn open_or_create(name: &str) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, &Options::new())
    }

    /// [`open_or_create`](RLock::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](RLock::open_or_create).
    pub fn open_or_create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        let (inner, _) = Locked::open_or_create(name, Kind::RLock, 1, opts, &|_| {})?;
        Ok(Self::wrap(inner))
    }

    /// Locks, at once if this thread holds it already, else waiting as long as a live
    /// process holds it.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the guard) when the previous holder died holding it;
    /// [`LockError::Unrecoverable`] after a declined recovery.
    ///
    /// # Panics
    /// If one thread nests more than `u32::MAX` guards.
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        self.lock_inner(None, true)
    }

    /// Locks without waiting.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] when another owner holds it, and as [`lock`](RLock::lock).
    pub fn try_lock(&self) -> LockResult<RLockGuard<'_>> {
        self.lock_inner(None, false)
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockError::Timeout`], and as [`lock`](RLock::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<RLockGuard<'_>> {
        self.lock_inner(crate::raw::deadline_after(timeout), true)
    }

    fn lock_inner(&self, deadline: Option<Instant>, blocking: bool) -> LockResult<RLockGuard<'_>> {
        if let Some(g) = self.reenter() {
            return Ok(g);
        }
        let r = self.inner.acquire(deadline, blocking);
        to_result(r, |died| self.took(died))
    }

    /// The re-entrant fast path: another level if this thread holds the lock.
    fn reenter(&self) -> Option<RLockGuard<'_>> {
        if self.owner.load(Ordering::Relaxed) != thread_id() {
            return None;
        }
        // Only this thread writes `owner` to its own id, so it is still ours.
        let d = self
            .depth
            .get()
            .checked_add(1)
            .expect("RLock nested more than u32::MAX times");
        self.depth.set(d);
        Some(self.guard(false))
    }

    /// The calling thread has just taken the lock word: it becomes the owner, depth 1.
    fn took(&self, died: bool) -> RLockGuard<'_> {
        self.owner.store(thread_id(), Ordering::Relaxed);
        self.depth.set(1);
        self.guard(died)
    }

    fn guard(&self, died: bool) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            died,
            _not_send: PhantomData,
        }
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.inner.segment().name()
    }

    /// Keep the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.inner.segment_mut().set_persist();
    }
}

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLock")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// One level of an [`RLock`] held by this thread; the lock is released when the thread's
/// outermost guard is dropped. Not `Send`: the depth belongs to the thread.
#[must_use = "the lock is released when the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    died: bool,
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// Whether this guard came from an owner-died take-over and is not marked consistent.
    pub fn is_owner_died(&self) -> bool {
        self.died
    }

    /// Declares what the lock guards repaired after [`LockError::OwnerDied`]. Without it,
    /// releasing the lock makes it unrecoverable for everyone.
    pub fn mark_consistent(&mut self) {
        if self.died {
            self.lock.inner.mark_consistent();
            self.died = false;
        }
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let d = self.lock.depth.get().saturating_sub(1);
        self.lock.depth.set(d);
        if d == 0 {
            self.lock.owner.store(0, Ordering::Relaxed);
            self.lock.inner.release();
        }
    }
}

impl std::fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLockGuard")
            .field("lock", &self.lock.name())
            .field("owner_died", &self.died)
            .finish()
    }
}
