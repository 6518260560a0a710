//! `Array<T>`: a fixed-length `[T]` in a named segment, behind a crash-safe lock.

use crate::error::{LockError, OpenError};
use crate::locked::{Locked, to_result};
use crate::options::Options;
use crate::segment::header::Kind;
use crate::value::LockResult;
use bytemuck::Pod;
use std::cell::OnceCell;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A `[T]` of fixed length shared between processes under a name, like Python's
/// `multiprocessing.Array`.
///
/// # Examples
/// ```
/// # let name = format!("doc-array-{}", std::process::id());
/// use shmproc::Array;
/// let a = Array::<f64>::from_slice(&name, &[1.0, 2.0, 3.0])?;
/// {
///     let mut g = a.lock().map_err(|e| e.without_guard())?;
///     g.set(0, 10.0);
///     g[1] *= 2.0; // indexing works on a snapshot, written back when the guard drops
/// }
/// assert_eq!(a.to_vec().map_err(|e| e.without_guard())?, vec![10.0, 4.0, 3.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T> {
    inner: Locked<T>,
}

impl<T: Pod> Array<T> {
    /// Creates the segment `name` with `len` copies of `fill`. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidSize` for `len == 0` or a size that overflows; `NoSpace` when `/dev/shm` lacks
    /// room for the segment (nothing is left behind); `InvalidName`, `AlreadyExists`, `Io`.
    pub fn create(name: &str, len: usize, fill: T) -> Result<Self, OpenError> {
        Self::create_with(name, len, fill, &Options::new())
    }

    /// [`create`](Array::create) with options.
    ///
    /// # Errors
    /// As [`create`](Array::create).
    pub fn create_with(name: &str, len: usize, fill: T, opts: &Options) -> Result<Self, OpenError> {
        check_len::<T>(len)?;
        let init = move |p: *mut T| {
            for i in 0..len {
                // SAFETY: the fresh body holds `len` aligned elements starting at `p`.
                unsafe { crate::raw::copy::store(p.add(i), fill) }
            }
        };
        Ok(Array {
            inner: Locked::create(name, Kind::Array, len as u64, opts, &init)?,
        })
    }

    /// Creates the segment `name` holding a copy of `data`.
    ///
    /// # Errors
    /// As [`create`](Array::create).
    pub fn from_slice(name: &str, data: &[T]) -> Result<Self, OpenError> {
        Self::from_slice_with(name, data, &Options::new())
    }

    /// [`from_slice`](Array::from_slice) with options.
    ///
    /// # Errors
    /// As [`create`](Array::create).
    pub fn from_slice_with(name: &str, data: &[T], opts: &Options) -> Result<Self, OpenError> {
        check_len::<T>(data.len())?;
        let init = |p: *mut T| {
            for (i, v) in data.iter().enumerate() {
                // SAFETY: the fresh body holds `data.len()` aligned elements starting at `p`.
                unsafe { crate::raw::copy::store_ref(p.add(i), v) }
            }
        };
        Ok(Array {
            inner: Locked::create(name, Kind::Array, data.len() as u64, opts, &init)?,
        })
    }

    /// Opens the existing array `name`; its length comes from the segment.
    ///
    /// # Errors
    /// As [`Value::open`](crate::Value::open).
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](Array::open) with options.
    ///
    /// # Errors
    /// As [`Value::open`](crate::Value::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Array {
            inner: Locked::open(name, Kind::Array, opts)?,
        })
    }

    /// Opens `name`, or creates it with `len` copies of `fill`. Race-free among processes.
    /// An existing array of another length is opened as it is (check [`len`](Array::len)).
    ///
    /// # Errors
    /// As [`create`](Array::create) and [`open`](Array::open).
    pub fn open_or_create(name: &str, len: usize, fill: T) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, len, fill, &Options::new())
    }

    /// [`open_or_create`](Array::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Array::open_or_create).
    pub fn open_or_create_with(name: &str, len: usize, fill: T, opts: &Options) -> Result<Self, OpenError> {
        check_len::<T>(len)?;
        let init = move |p: *mut T| {
            for i in 0..len {
                // SAFETY: the fresh body holds `len` aligned elements starting at `p`.
                unsafe { crate::raw::copy::store(p.add(i), fill) }
            }
        };
        let (inner, _) = Locked::open_or_create(name, Kind::Array, len as u64, opts, &init)?;
        Ok(Array { inner })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Always false: arrays have at least one element.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Locks, waiting as long as a live process holds the lock.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the guard), [`LockError::Unrecoverable`].
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_inner(None, true)
    }

    /// Locks without waiting.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`], and as [`lock`](Array::lock).
    pub fn try_lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_inner(None, false)
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockError::Timeout`], and as [`lock`](Array::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_inner(crate::raw::deadline_after(timeout), true)
    }

    fn lock_inner(&self, deadline: Option<Instant>, blocking: bool) -> LockResult<ArrayGuard<'_, T>> {
        let r = self.inner.acquire(deadline, blocking);
        to_result(r, |died| self.guard(died))
    }

    /// [`lock`](Array::lock) in async form (feature `tokio`): the task waits on this handle's
    /// doorbell, registered with the tokio reactor, and costs no thread. Tasks of one process
    /// may share a handle: the lock excludes them from each other as it does processes.
    ///
    /// Cancel safe: the lock is taken in the same call that makes the guard, so a future
    /// dropped at its await point holds no lock and leaves no registration behind.
    ///
    /// # Errors
    /// As [`lock`](Array::lock).
    #[cfg(feature = "tokio")]
    pub async fn lock_async(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_async_inner(None).await
    }

    /// [`lock_timeout`](Array::lock_timeout) in async form (feature `tokio`); cancel safe as
    /// [`lock_async`](Array::lock_async).
    ///
    /// # Errors
    /// [`LockError::Timeout`], and as [`lock`](Array::lock).
    #[cfg(feature = "tokio")]
    pub async fn lock_timeout_async(&self, timeout: Duration) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_async_inner(crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn lock_async_inner(&self, deadline: Option<Instant>) -> LockResult<ArrayGuard<'_, T>> {
        let r = self.inner.acquire_async(deadline).await;
        to_result(r, |died| self.guard(died))
    }

    /// The guard of a lock just taken.
    fn guard(&self, died: bool) -> ArrayGuard<'_, T> {
        ArrayGuard {
            array: self,
            snapshot: OnceCell::new(),
            dirty: false,
            died,
        }
    }

    /// Copies the whole array out under the lock.
    ///
    /// # Errors
    /// As [`lock`](Array::lock).
    pub fn to_vec(&self) -> Result<Vec<T>, LockError<ArrayGuard<'_, T>>> {
        let g = self.lock()?;
        Ok(g.to_vec())
    }

    /// The name this handle was opened or created under.
    pub fn name(&self) -> &str {
        self.inner.segment().name()
    }

    /// Keep the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.inner.segment_mut().set_persist();
    }

    /// Whether dropping this handle unlinks the name.
    pub fn owns_name(&self) -> bool {
        self.inner.segment().owns_name()
    }
}

/// Heap-backed arrays (`crate::testing::heap_array`).
#[cfg(feature = "testing")]
impl<T: Pod> Array<T> {
    /// `len` copies of `fill` on heap memory laid out like a segment: no system call, so
    /// Miri can run it.
    pub(crate) fn heap(len: usize, fill: T) -> Result<Self, OpenError> {
        check_len::<T>(len)?;
        let init = move |p: *mut T| {
            for i in 0..len {
                // SAFETY: the fresh body holds `len` aligned elements starting at `p`.
                unsafe { crate::raw::copy::store(p.add(i), fill) }
            }
        };
        Ok(Array {
            inner: Locked::heap(Kind::Array, len as u64, &init)?,
        })
    }
}

/// Peer handles and simulated deaths, for the conformance suite (`crate::testing`).
#[cfg(feature = "testing")]
impl<T: Pod> crate::testing::Handle for Array<T> {
    /// Another handle on this array, as another process would open it.
    fn peer(&self) -> Result<Self, OpenError> {
        Ok(Array {
            inner: self.inner.peer(Kind::Array)?,
        })
    }

    /// Ends this handle as SIGKILL would (see `Segment::simulate_crash`).
    fn simulate_crash(self) {
        self.inner.simulate_crash();
    }
}

fn check_len<T>(len: usize) -> Result<(), OpenError> {
    if len == 0 {
        return Err(OpenError::InvalidSize {
            what: "an Array needs at least one element".into(),
        });
    }
    if core::mem::size_of::<T>() == 0 {
        return Err(OpenError::InvalidSize {
            what: "zero-sized element types cannot be shared".into(),
        });
    }
    Ok(())
}

impl<T> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("segment", self.inner.segment())
            .field("len", &self.inner.len())
            .finish()
    }
}

/// Exclusive access to an [`Array`], across processes, until dropped.
///
/// [`get`](ArrayGuard::get), [`set`](ArrayGuard::set), [`read_into`](ArrayGuard::read_into)
/// and [`write_from`](ArrayGuard::write_from) work on the shared elements directly.
/// Dereferencing the guard as a slice takes a snapshot (copied on first use) and, if it was
/// changed through `DerefMut`, writes it back when the guard is dropped: no reference into
/// memory another process may write is ever handed out.
pub struct ArrayGuard<'a, T: Pod> {
    array: &'a Array<T>,
    snapshot: OnceCell<Vec<T>>,
    dirty: bool,
    died: bool,
}

impl<T: Pod> ArrayGuard<'_, T> {
    /// Element `i`.
    ///
    /// # Panics
    /// If `i >= len`.
    pub fn get(&self, i: usize) -> T {
        match self.snapshot.get() {
            Some(s) => s[i],
            None => self.array.inner.read(i),
        }
    }

    /// Sets element `i` in shared memory now.
    ///
    /// # Panics
    /// If `i >= len`.
    pub fn set(&mut self, i: usize, v: T) {
        self.array.inner.write(i, v);
        if let Some(s) = self.snapshot.get_mut() {
            s[i] = v;
        }
    }

    /// Copies elements `start..start + out.len()` into `out`.
    ///
    /// # Panics
    /// If the range exceeds the array.
    pub fn read_into(&self, start: usize, out: &mut [T]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.get(start + k);
        }
    }

    /// Writes `data` to elements `start..start + data.len()`.
    ///
    /// # Panics
    /// If the range exceeds the array.
    pub fn write_from(&mut self, start: usize, data: &[T]) {
        assert!(
            start.checked_add(data.len()).is_some_and(|e| e <= self.array.len()),
            "range out of bounds"
        );
        for (k, v) in data.iter().enumerate() {
            self.set(start + k, *v);
        }
    }

    /// Whether this guard came from an owner-died take-over and is not marked consistent.
    pub fn is_owner_died(&self) -> bool {
        self.died
    }

    /// Declares the data repaired after [`LockError::OwnerDied`]. Without it, dropping the
    /// guard makes the lock unrecoverable for everyone.
    pub fn mark_consistent(&mut self) {
        if self.died {
            self.flush();
            self.array.inner.mark_consistent();
            self.died = false;
        }
    }

    /// Writes a changed snapshot back to shared memory now, keeping the lock.
    pub fn flush(&mut self) {
        if self.dirty
            && let Some(s) = self.snapshot.get()
        {
            for (i, v) in s.iter().enumerate() {
                self.array.inner.write(i, *v);
            }
        }
        self.dirty = false;
    }

    fn copy_out(&self) -> Vec<T> {
        (0..self.array.len()).map(|i| self.array.inner.read(i)).collect()
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.snapshot.get_or_init(|| self.copy_out())
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        if self.snapshot.get().is_none() {
            let s = self.copy_out();
            self.snapshot = OnceCell::from(s);
        }
        self.dirty = true;
        self.snapshot.get_mut().map(|v| v.as_mut_slice()).unwrap_or_default()
    }
}

impl<'a, T: Pod> ArrayGuard<'a, T> {
    /// Writes back, unlocks as dropping does and hands back the array (a condition wait).
    pub(crate) fn park(self) -> &'a Array<T> {
        let array = self.array;
        drop(self);
        array
    }
}

impl<T: Pod> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        self.flush();
        self.array.inner.release();
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayGuard")
            .field("len", &self.array.len())
            .field("owner_died", &self.died)
            .finish()
    }
}
