//! `Value<T>`: one `T` in a named segment, behind a crash-safe cross-process lock.

use crate::error::{LockError, OpenError};
use crate::locked::{Locked, to_result};
use crate::options::Options;
use crate::segment::header::Kind;
use bytemuck::Pod;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A `T` shared between processes under a name, like Python's `multiprocessing.Value`.
///
/// Every access goes through [`lock`](Value::lock) (or the [`load`](Value::load) /
/// [`store`](Value::store) shorthands). The lock survives its holder's death: the next
/// locker gets [`LockError::OwnerDied`] carrying the guard.
///
/// # Examples
/// ```
/// # let name = format!("doc-value-{}", std::process::id());
/// use shmproc::Value;
/// let counter = Value::<u64>::create(&name, 0)?;
/// *counter.lock().map_err(|e| e.without_guard())? += 1;
/// let other = Value::<u64>::open(&name)?; // usually in another process
/// assert_eq!(other.load().map_err(|e| e.without_guard())?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T> {
    inner: Locked<T>,
}

/// The result of locking: the guard, or why there is none (or an owner-died guard).
pub type LockResult<G> = Result<G, LockError<G>>;

impl<T: Pod> Value<T> {
    /// Creates the segment `name` holding `initial`. The returned handle owns the name and
    /// unlinks it when dropped (unless [`Options::persist`]).
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `InvalidSize`, `NoSpace` (`/dev/shm` lacks room for
    /// the segment; nothing is left behind), `Io`.
    pub fn create(name: &str, initial: T) -> Result<Self, OpenError> {
        Self::create_with(name, initial, &Options::new())
    }

    /// [`create`](Value::create) with options.
    ///
    /// # Errors
    /// As [`create`](Value::create).
    pub fn create_with(name: &str, initial: T, opts: &Options) -> Result<Self, OpenError> {
        let fill = |p: *mut T| {
            // SAFETY: `p` points at the one element of the freshly mapped, sized body.
            unsafe { crate::raw::copy::store(p, initial) }
        };
        Ok(Value {
            inner: Locked::create(name, Kind::Value, 1, opts, &fill)?,
        })
    }

    /// Opens the existing segment `name`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidName`, `IncompatibleType` (another kind or `T`), `Corrupted`,
    /// `VersionMismatch`, `UntrustedOwner`, `InsecurePermissions`, `InitTimeout`, `Io`.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](Value::open) with options.
    ///
    /// # Errors
    /// As [`open`](Value::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Value {
            inner: Locked::open(name, Kind::Value, opts)?,
        })
    }

    /// Opens `name`, or creates it with `initial` if it does not exist. Race-free: among
    /// processes calling this at once, exactly one creates (and owns the name).
    ///
    /// # Errors
    /// As [`create`](Value::create) and [`open`](Value::open).
    pub fn open_or_create(name: &str, initial: T) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, initial, &Options::new())
    }

    /// [`open_or_create`](Value::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Value::open_or_create).
    pub fn open_or_create_with(name: &str, initial: T, opts: &Options) -> Result<Self, OpenError> {
        let fill = |p: *mut T| {
            // SAFETY: `p` points at the one element of the freshly mapped, sized body.
            unsafe { crate::raw::copy::store(p, initial) }
        };
        let (inner, _) = Locked::open_or_create(name, Kind::Value, 1, opts, &fill)?;
        Ok(Value { inner })
    }

    /// Locks, waiting as long as a live process holds the lock.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the guard: repair, then
    /// [`mark_consistent`](ValueGuard::mark_consistent)), [`LockError::Unrecoverable`].
    #[inline]
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.lock_inner(None, true)
    }

    /// Locks without waiting.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] when a live process holds it, and as [`lock`](Value::lock).
    pub fn try_lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.lock_inner(None, false)
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockError::Timeout`], and as [`lock`](Value::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ValueGuard<'_, T>> {
        self.lock_inner(crate::raw::deadline_after(timeout), true)
    }

    #[inline(always)]
    fn lock_inner(&self, deadline: Option<Instant>, blocking: bool) -> LockResult<ValueGuard<'_, T>> {
        let r = self.inner.acquire(deadline, blocking);
        to_result(r, |died| self.guard(died))
    }

    /// [`lock`](Value::lock) in async form (feature `tokio`): the task waits on this handle's
    /// doorbell, registered with the tokio reactor, and costs no thread. Tasks of one process
    /// may share a handle: the lock excludes them from each other as it does processes.
    ///
    /// Cancel safe: the lock is taken in the same call that makes the guard, so a future
    /// dropped at its await point holds no lock and leaves no registration behind.
    ///
    /// # Errors
    /// As [`lock`](Value::lock).
    #[cfg(feature = "tokio")]
    pub async fn lock_async(&self) -> LockResult<ValueGuard<'_, T>> {
        self.lock_async_inner(None).await
    }

    /// [`lock_timeout`](Value::lock_timeout) in async form (feature `tokio`); cancel safe as
    /// [`lock_async`](Value::lock_async).
    ///
    /// # Errors
    /// [`LockError::Timeout`], and as [`lock`](Value::lock).
    #[cfg(feature = "tokio")]
    pub async fn lock_timeout_async(&self, timeout: Duration) -> LockResult<ValueGuard<'_, T>> {
        self.lock_async_inner(crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn lock_async_inner(&self, deadline: Option<Instant>) -> LockResult<ValueGuard<'_, T>> {
        let r = self.inner.acquire_async(deadline).await;
        to_result(r, |died| self.guard(died))
    }

    /// The guard of a lock just taken.
    #[inline(always)]
    fn guard(&self, died: bool) -> ValueGuard<'_, T> {
        ValueGuard {
            value: self,
            local: self.inner.read(0),
            dirty: false,
            died,
        }
    }

    /// Reads the value under the lock.
    ///
    /// # Errors
    /// As [`lock`](Value::lock); an owner-died error carries the guard, so the caller can
    /// still repair and [`mark_consistent`](ValueGuard::mark_consistent).
    pub fn load(&self) -> Result<T, LockError<ValueGuard<'_, T>>> {
        Ok(*self.lock()?)
    }

    /// Writes the value under the lock.
    ///
    /// # Errors
    /// As [`lock`](Value::lock).
    pub fn store(&self, v: T) -> Result<(), LockError<ValueGuard<'_, T>>> {
        let mut g = self.lock()?;
        *g = v;
        Ok(())
    }

    /// The name this handle was opened or created under.
    pub fn name(&self) -> &str {
        self.inner.segment().name()
    }

    /// Keep the name after this handle is dropped (it is unlinked on drop otherwise, if
    /// this handle created it).
    pub fn persist(&mut self) {
        self.inner.segment_mut().set_persist();
    }

    /// Whether dropping this handle unlinks the name.
    pub fn owns_name(&self) -> bool {
        self.inner.segment().owns_name()
    }
}

/// Heap-backed values (`crate::testing::heap_value`).
#[cfg(feature = "testing")]
impl<T: Pod> Value<T> {
    /// A value on heap memory laid out like a segment: no system call, so Miri can run it.
    pub(crate) fn heap(initial: T) -> Result<Self, OpenError> {
        let fill = |p: *mut T| {
            // SAFETY: `p` points at the one element of the fresh, zeroed body.
            unsafe { crate::raw::copy::store(p, initial) }
        };
        Ok(Value {
            inner: Locked::heap(Kind::Value, 1, &fill)?,
        })
    }
}

/// Peer handles and simulated deaths, for the conformance suite (`crate::testing`).
#[cfg(feature = "testing")]
impl<T: Pod> crate::testing::Handle for Value<T> {
    /// Another handle on this value, as another process would open it.
    fn peer(&self) -> Result<Self, OpenError> {
        Ok(Value {
            inner: self.inner.peer(Kind::Value)?,
        })
    }

    /// Ends this handle as SIGKILL would (see `Segment::simulate_crash`).
    fn simulate_crash(self) {
        self.inner.simulate_crash();
    }
}

impl<T> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value").field("segment", self.inner.segment()).finish()
    }
}

/// Exclusive access to a [`Value`]'s `T`, across processes, until dropped.
///
/// The guard works on a local copy, read when the lock was taken and written back when the
/// guard is dropped (or at [`flush`](ValueGuard::flush)) if it was changed, so no reference
/// into memory another process may write is ever handed out.
pub struct ValueGuard<'a, T: Pod> {
    value: &'a Value<T>,
    local: T,
    dirty: bool,
    died: bool,
}

impl<T: Pod> ValueGuard<'_, T> {
    /// Whether this guard came from an owner-died take-over and is not marked consistent.
    pub fn is_owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data repaired after [`LockError::OwnerDied`]. Without it, dropping the
    /// guard makes the lock unrecoverable for everyone.
    pub fn mark_consistent(&mut self) {
        if self.died {
            self.flush();
            self.value.inner.mark_consistent();
            self.died = false;
        }
    }

    /// Writes the current value to shared memory now, keeping the lock.
    pub fn flush(&mut self) {
        self.value.inner.write(0, self.local);
        self.dirty = false;
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.local
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.dirty = true;
        &mut self.local
    }
}

impl<'a, T: Pod> ValueGuard<'a, T> {
    /// Writes back, unlocks as dropping does and hands back the value (a condition wait).
    pub(crate) fn park(self) -> &'a Value<T> {
        let value = self.value;
        drop(self);
        value
    }
}

impl<T: Pod> Drop for ValueGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.dirty {
            self.value.inner.write(0, self.local);
        }
        self.value.inner.release();
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueGuard")
            .field("value", &self.local)
            .field("owner_died", &self.died)
            .finish()
    }
}
