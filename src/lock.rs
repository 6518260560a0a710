//! `Lock`: a named lock with no data (Python's `multiprocessing.Lock`), the same lock word as
//! `Value`'s (`raw::lock`, `models/lock_model.py`): a holder's death is reported to the next
//! locker as [`LockError::OwnerDied`].
//!
//! Body layout: the lock (16 bytes) on its own cache line, nothing else.

#[cfg(doc)]
use crate::error::LockError;
use crate::error::OpenError;
use crate::locked::{Locked, to_result};
use crate::options::Options;
use crate::segment::header::Kind;
use crate::value::LockResult;
use std::time::{Duration, Instant};

/// A lock shared between processes under a name, like Python's `multiprocessing.Lock`.
///
/// It guards whatever the processes agree it guards (a file, a device, a region of a
/// [`SharedBytes`](crate::SharedBytes) block). When its holder dies, the next locker gets
/// [`LockError::OwnerDied`] with the guard: repair what the holder may have left half done,
/// then [`LockGuard::mark_consistent`]; dropping the guard without it makes the lock
/// [`Unrecoverable`](LockError::Unrecoverable) for everyone, as with `Value`.
///
/// ```
/// # let name = format!("doc-lock-{}", std::process::id());
/// use shmproc::{Lock, LockError};
/// let lock = Lock::create(&name)?;
/// let other = Lock::open(&name)?; // usually in another process
/// let guard = lock.lock().map_err(|e| e.without_guard())?;
/// assert!(matches!(other.try_lock(), Err(LockError::WouldBlock)));
/// drop(guard);
/// assert!(other.try_lock().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lock {
    inner: Locked<()>,
}

impl Lock {
    /// Creates the lock `name`, free. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `NoSpace`, `Io`.
    pub fn create(name: &str) -> Result<Self, OpenError> {
        Self::create_with(name, &Options::new())
    }

    /// [`create`](Lock::create) with options.
    ///
    /// # Errors
    /// As [`create`](Lock::create).
    pub fn create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Lock {
            inner: Locked::create(name, Kind::Lock, 1, opts, &|_| {})?,
        })
    }

    /// Opens the existing lock `name`.
    ///
    /// # Errors
    /// `NotFound`, `IncompatibleType` (not a lock), `Corrupted`, `VersionMismatch`,
    /// `UntrustedOwner`, `InsecurePermissions`, `InitTimeout`, `Io`.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](Lock::open) with options.
    ///
    /// # Errors
    /// As [`open`](Lock::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Lock {
            inner: Locked::open(name, Kind::Lock, opts)?,
        })
    }

    /// Opens `name`, or creates it if it does not exist (race-free among processes).
    ///
    /// # Errors
    /// As [`create`](Lock::create) and [`open`](Lock::open).
    pub fn open_or_create(name: &str) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, &Options::new())
    }

    /// [`open_or_create`](Lock::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Lock::open_or_create).
    pub fn open_or_create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        let (inner, _) = Locked::open_or_create(name, Kind::Lock, 1, opts, &|_| {})?;
        Ok(Lock { inner })
    }

    /// Locks, waiting as long as a live process holds it.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the guard) when the previous holder died holding it;
    /// [`LockError::Unrecoverable`] after a declined recovery.
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        self.lock_inner(None, true)
    }

    /// Locks without waiting.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] when a live process holds it, and as [`lock`](Lock::lock).
    pub fn try_lock(&self) -> LockResult<LockGuard<'_>> {
        self.lock_inner(None, false)
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockError::Timeout`], and as [`lock`](Lock::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<LockGuard<'_>> {
        self.lock_inner(crate::raw::deadline_after(timeout), true)
    }

    /// [`lock`](Lock::lock) in async form (feature `tokio`): the task waits on this
    /// handle's doorbell, registered with the tokio reactor, and costs no thread. Tasks of
    /// one process may share a handle: the lock excludes them from each other as it does
    /// processes.
    ///
    /// Cancel safe: the lock is taken in the same call that makes the guard, so a future
    /// dropped at its await point holds no lock and leaves no registration behind.
    ///
    /// # Errors
    /// As [`lock`](Lock::lock).
    #[cfg(feature = "tokio")]
    pub async fn lock_async(&self) -> LockResult<LockGuard<'_>> {
        self.lock_async_inner(None).await
    }

    /// [`lock_timeout`](Lock::lock_timeout) in async form (feature `tokio`); cancel safe as
    /// [`lock_async`](Lock::lock_async).
    ///
    /// # Errors
    /// [`LockError::Timeout`], and as [`lock`](Lock::lock).
    #[cfg(feature = "tokio")]
    pub async fn lock_timeout_async(&self, timeout: Duration) -> LockResult<LockGuard<'_>> {
        self.lock_async_inner(crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn lock_async_inner(&self, deadline: Option<Instant>) -> LockResult<LockGuard<'_>> {
        let r = self.inner.acquire_async(deadline).await;
        to_result(r, |died| LockGuard { lock: self, died })
    }

    fn lock_inner(&self, deadline: Option<Instant>, blocking: bool) -> LockResult<LockGuard<'_>> {
        let r = self.inner.acquire(deadline, blocking);
        to_result(r, |died| LockGuard { lock: self, died })
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

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").field("name", &self.name()).finish()
    }
}

/// Holds a [`Lock`]; unlocks when dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    died: bool,
}

impl LockGuard<'_> {
    /// Whether this guard came from an owner-died take-over and is not marked consistent.
    pub fn is_owner_died(&self) -> bool {
        self.died
    }

    /// Declares what the lock guards repaired after [`LockError::OwnerDied`]. Without it,
    /// dropping the guard makes the lock unrecoverable for everyone.
    pub fn mark_consistent(&mut self) {
        if self.died {
            self.lock.inner.mark_consistent();
            self.died = false;
        }
    }
}

impl<'a> LockGuard<'a> {
    /// Unlocks as dropping does and hands back the lock (a condition wait).
    pub(crate) fn park(self) -> &'a Lock {
        let lock = self.lock;
        drop(self);
        lock
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.inner.release();
    }
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.lock.name())
            .field("owner_died", &self.died)
            .finish()
    }
}
