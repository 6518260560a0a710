//! `Semaphore` and `BoundedSemaphore`: named counting semaphores (Python's
//! `multiprocessing.Semaphore`/`BoundedSemaphore`), `raw::semaphore` in a segment, whose
//! permits held through guards come back when their process dies.

use super::{Prim, Shape, opening};
use crate::error::{AcquireError, OpenError, ReleaseError};
use crate::options::Options;
use crate::raw::Liveness;
use crate::raw::semaphore::{Holding, SemFailure, SemState};
use crate::segment::header::Kind;
use std::time::{Duration, Instant};

pub(crate) fn shape(kind: Kind) -> Shape {
    Shape {
        kind,
        rec_size: core::mem::size_of::<Holding>() as u64,
        count_ok: |c| c <= u64::from(u32::MAX),
    }
}

/// What both semaphore types are: the segment, joined as a holder of permits.
struct Sem {
    prim: Prim,
}

impl Sem {
    fn new(prim: Prim) -> Sem {
        let s = Sem { prim };
        s.state().join(s.records(), s.prim.segment().me(), s.prim.segment());
        s
    }

    fn create(name: &str, kind: Kind, permits: u32, opts: &Options, or_open: bool) -> Result<Sem, OpenError> {
        let shape = shape(kind);
        let init = |b: *mut u8| {
            // SAFETY: `b` is the fresh body (at least 64 bytes, 64-aligned, not yet shared);
            // `SemState` is 16 bytes of atomics.
            unsafe { b.cast::<SemState>().write(SemState::new(permits)) }
        };
        let prim = if or_open {
            Prim::open_or_create(name, &shape, u64::from(permits), opts, &init)?
        } else {
            Prim::create(name, &shape, u64::from(permits), opts, &init)?
        };
        Ok(Sem::new(prim))
    }

    #[inline]
    fn state(&self) -> &SemState {
        self.prim.state()
    }

    #[inline]
    fn records(&self) -> &[Holding] {
        self.prim.records()
    }

    fn acquire(&self, deadline: Option<Instant>, blocking: bool) -> Result<(), AcquireError> {
        let seg = self.prim.segment();
        let r = if blocking {
            self.state().take(self.records(), deadline, seg, seg)
        } else {
            self.state().try_take(self.records(), seg, seg)
        };
        r.map_err(|_| {
            if blocking {
                AcquireError::Timeout
            } else {
                AcquireError::WouldBlock
            }
        })
    }

    #[cfg(feature = "tokio")]
    async fn acquire_async(&self, deadline: Option<Instant>) -> Result<(), AcquireError> {
        let seg = self.prim.segment();
        let st = self.state();
        let recs = self.records();
        seg.wait_async(
            deadline,
            || st.try_take(recs, seg, seg).ok(),
            || st.announce(),
            |()| st.depart(),
        )
        .await
        .ok_or(AcquireError::Timeout)
    }

    fn release(&self, bound: Option<u32>) -> Result<(), ReleaseError> {
        match self.state().release(self.records(), bound, self.prim.segment()) {
            Ok(()) => Ok(()),
            Err(SemFailure::AboveBound) => match bound {
                Some(bound) => Err(ReleaseError::AboveBound { bound }),
                None => Err(ReleaseError::Overflow),
            },
            Err(SemFailure::WouldBlock) => Err(ReleaseError::Contended),
        }
    }

    fn give(&self) {
        let seg = self.prim.segment();
        self.state().give(self.records(), seg.me(), seg);
    }

    fn forget(&self) {
        let seg = self.prim.segment();
        self.state().forget(self.records(), seg.me(), seg);
    }
}

impl Drop for Sem {
    fn drop(&mut self) {
        let seg = self.prim.segment();
        self.state().leave(self.records(), seg.me(), seg);
    }
}

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`]; given back when dropped.
///
/// The permit is recorded as held by this handle: if the process dies (SIGKILL included)
/// before giving it back, the next process that waits for a permit returns it to the count.
#[must_use = "the permit is given back when the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Sem,
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit for good: it is not given back on drop, nor when this process dies
    /// (Python's `acquire()` without a matching `release()`). Another `release` adds one back.
    pub fn forget(self) {
        self.sem.forget();
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        self.sem.give();
    }
}

impl std::fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemaphoreGuard")
            .field("semaphore", &self.sem.prim.name())
            .finish()
    }
}

/// The methods both semaphore types share; `$bound` gives the bound of `self`.
macro_rules! permits {
    ($t:ident, $bound:expr) => {
        impl $t {
            /// Takes a permit, waiting as long as none is available. Permits that dead
            /// processes held through guards count as available (they are returned first).
            pub fn acquire(&self) -> SemaphoreGuard<'_> {
                loop {
                    if self.sem.acquire(None, true).is_ok() {
                        return SemaphoreGuard { sem: &self.sem };
                    }
                }
            }

            /// Takes a permit without waiting.
            ///
            /// # Errors
            /// [`AcquireError::WouldBlock`] when none is available.
            pub fn try_acquire(&self) -> Result<SemaphoreGuard<'_>, AcquireError> {
                self.sem.acquire(None, false)?;
                Ok(SemaphoreGuard { sem: &self.sem })
            }

            /// Takes a permit, waiting at most `timeout`.
            ///
            /// # Errors
            /// [`AcquireError::Timeout`] when none became available in time.
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, AcquireError> {
                self.sem.acquire(crate::raw::deadline_after(timeout), true)?;
                Ok(SemaphoreGuard { sem: &self.sem })
            }

            /// [`acquire`](Self::acquire) in async form (feature `tokio`): the task waits on
            /// the handle's doorbell, with no thread. Cancel safe: a permit is taken and
            /// recorded in the same call that returns it, so a future dropped at its await
            /// point holds none and leaves no registration behind.
            #[cfg(feature = "tokio")]
            pub async fn acquire_async(&self) -> SemaphoreGuard<'_> {
                loop {
                    if self.sem.acquire_async(None).await.is_ok() {
                        return SemaphoreGuard { sem: &self.sem };
                    }
                }
            }

            /// [`acquire_timeout`](Self::acquire_timeout) in async form (feature `tokio`);
            /// cancel safe as [`acquire_async`](Self::acquire_async).
            ///
            /// # Errors
            /// [`AcquireError::Timeout`] when no permit became available in time.
            #[cfg(feature = "tokio")]
            pub async fn acquire_timeout_async(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, AcquireError> {
                self.sem
                    .acquire_async(crate::raw::deadline_after(timeout))
                    .await?;
                Ok(SemaphoreGuard { sem: &self.sem })
            }

            /// Permits available now (Python's `get_value()`); others may take or add some
            /// at any moment.
            pub fn available(&self) -> u32 {
                self.sem.state().available()
            }

            /// The number of permits the semaphore was created with.
            pub fn initial(&self) -> u32 {
                self.sem.prim.count() as u32
            }

            #[allow(clippy::redundant_closure_call)]
            fn bound(&self) -> Option<u32> {
                ($bound)(self)
            }
        }

        opening!($t, shape(Kind::$t), |prim| $t { sem: Sem::new(prim) }, sem.prim);
    };
}

/// A counting semaphore shared between processes under a name, like Python's
/// `multiprocessing.Semaphore`.
///
/// [`acquire`](Semaphore::acquire) returns a [`SemaphoreGuard`] that gives the permit back
/// when dropped. Each handle records the permits it holds through guards, so the permits of
/// a process that dies holding them come back: the next process that finds no permit
/// available returns them before it sleeps, and a process that opens the semaphore in a dead
/// one's place returns what that one left. A pool of N permits never shrinks because its
/// holders crash. [`release`](Semaphore::release) adds a permit nobody held (the semaphore as
/// a signal between processes); [`SemaphoreGuard::forget`] keeps one for good.
///
/// There is no queue of waiters: a released permit goes to whoever takes it first, and a
/// process that releases and at once acquires again may keep it while a sleeper wakes (as
/// with `std::sync::Mutex`).
///
/// ```
/// # let name = format!("doc-sem-{}", std::process::id());
/// use shmproc::{AcquireError, Semaphore};
/// let slots = Semaphore::create(&name, 2)?;
/// let other = Semaphore::open(&name)?; // usually in another process
/// let a = slots.acquire();
/// let b = other.try_acquire()?;
/// assert_eq!(slots.try_acquire().unwrap_err(), AcquireError::WouldBlock);
/// drop(a);
/// assert_eq!(other.available(), 1);
/// # drop(b);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Semaphore {
    sem: Sem,
}

permits!(Semaphore, |_: &Semaphore| None);

impl Semaphore {
    /// Creates the semaphore `name` with `permits` available. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `NoSpace`, `Io`.
    pub fn create(name: &str, permits: u32) -> Result<Self, OpenError> {
        Self::create_with(name, permits, &Options::new())
    }

    /// [`create`](Semaphore::create) with options.
    ///
    /// # Errors
    /// As [`create`](Semaphore::create).
    pub fn create_with(name: &str, permits: u32, opts: &Options) -> Result<Self, OpenError> {
        Ok(Semaphore {
            sem: Sem::create(name, Kind::Semaphore, permits, opts, false)?,
        })
    }

    /// Opens `name`, or creates it with `permits` if it does not exist (race-free among
    /// processes). An existing semaphore keeps its own count.
    ///
    /// # Errors
    /// As [`create`](Semaphore::create) and [`open`](Semaphore::open).
    pub fn open_or_create(name: &str, permits: u32) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, permits, &Options::new())
    }

    /// [`open_or_create`](Semaphore::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Semaphore::open_or_create).
    pub fn open_or_create_with(name: &str, permits: u32, opts: &Options) -> Result<Self, OpenError> {
        Ok(Semaphore {
            sem: Sem::create(name, Kind::Semaphore, permits, opts, true)?,
        })
    }

    /// Adds a permit (Python's `release()` without a matching `acquire`).
    ///
    /// # Errors
    /// [`ReleaseError::Overflow`] at `u32::MAX` permits; [`ReleaseError::Contended`] if peers
    /// kept rewriting the semaphore for seconds.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem.release(self.bound())
    }
}

/// A [`Semaphore`] that refuses to hold more permits than it was created with, like Python's
/// `multiprocessing.BoundedSemaphore`: [`release`](BoundedSemaphore::release) fails with
/// [`ReleaseError::AboveBound`] when the permits in existence (available plus held through
/// guards) already equal the initial value. Permits come back from dead holders as with
/// `Semaphore`.
///
/// ```
/// # let name = format!("doc-bsem-{}", std::process::id());
/// use shmproc::{BoundedSemaphore, ReleaseError};
/// let s = BoundedSemaphore::create(&name, 1)?;
/// assert_eq!(s.release(), Err(ReleaseError::AboveBound { bound: 1 }));
/// s.acquire().forget(); // taken for good, as Python's acquire() without release()
/// s.release()?;
/// assert_eq!(s.available(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BoundedSemaphore {
    sem: Sem,
}

permits!(BoundedSemaphore, |s: &BoundedSemaphore| Some(s.initial()));

impl BoundedSemaphore {
    /// Creates the semaphore `name` with `permits` available, which is also its bound.
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `NoSpace`, `Io`.
    pub fn create(name: &str, permits: u32) -> Result<Self, OpenError> {
        Self::create_with(name, permits, &Options::new())
    }

    /// [`create`](BoundedSemaphore::create) with options.
    ///
    /// # Errors
    /// As [`create`](BoundedSemaphore::create).
    pub fn create_with(name: &str, permits: u32, opts: &Options) -> Result<Self, OpenError> {
        Ok(BoundedSemaphore {
            sem: Sem::create(name, Kind::BoundedSemaphore, permits, opts, false)?,
        })
    }

    /// Opens `name`, or creates it with `permits` if it does not exist.
    ///
    /// # Errors
    /// As [`create`](BoundedSemaphore::create) and [`open`](BoundedSemaphore::open).
    pub fn open_or_create(name: &str, permits: u32) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, permits, &Options::new())
    }

    /// [`open_or_create`](BoundedSemaphore::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](BoundedSemaphore::open_or_create).
    pub fn open_or_create_with(name: &str, permits: u32, opts: &Options) -> Result<Self, OpenError> {
        Ok(BoundedSemaphore {
            sem: Sem::create(name, Kind::BoundedSemaphore, permits, opts, true)?,
        })
    }

    /// Adds a permit, unless that would make more than the initial value exist.
    ///
    /// # Errors
    /// [`ReleaseError::AboveBound`]; [`ReleaseError::Contended`] if peers kept rewriting the
    /// semaphore for seconds.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem.release(self.bound())
    }
}
