//! What `Value` and `Array` share: a segment whose body is a lock followed by data.
//!
//! Body layout: `LockState` at offset 0 (its own cache line), then `count` elements of `T`
//! at `data_offset(align_of::<T>())`.

use crate::error::{LockError, OpenError};
use crate::options::Options;
use crate::raw::lock::{Acquired, LockFailure, LockState};
use crate::raw::{Liveness, Owner};
use crate::segment::header::{Kind, TypeDesc};
use crate::segment::{Segment, Spec};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::time::Instant;

#[inline]
fn data_offset(align: usize) -> u64 {
    (align as u64).max(64)
}

fn body_size<T>(count: u64) -> Option<u64> {
    body_size_of(
        core::mem::size_of::<T>() as u64,
        core::mem::align_of::<T>() as u64,
        count,
    )
}

/// Body size of `count` elements of `size` bytes aligned to `align` (the lock is at offset
/// 0 of the body).
pub(crate) fn body_size_of(size: u64, align: u64, count: u64) -> Option<u64> {
    let bytes = count.checked_mul(size)?;
    data_offset(usize::try_from(align).ok()?).checked_add(bytes)
}

/// A lock and `count` elements of `T` in a named segment.
pub(crate) struct Locked<T> {
    seg: Segment,
    len: usize,
    _t: PhantomData<T>,
}

impl<T> Locked<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl<T: Pod> Locked<T> {
    /// The type and the body size for `kind`. The element counts a kind allows (exactly 1
    /// for a `Value`, at least 1 for an `Array`) are checked here, in the body size, so that
    /// `create`, `open` and `open_or_create` all refuse a header with another count through
    /// the one validation of `header::validate`.
    fn spec(kind: Kind, opts: &Options) -> (TypeDesc, crate::segment::BodySize) {
        let body: crate::segment::BodySize = match kind {
            Kind::Value | Kind::Lock | Kind::RLock => {
                |count, _, _| if count == 1 { body_size::<T>(count) } else { None }
            }
            _ => |count, _, _| if count >= 1 { body_size::<T>(count) } else { None },
        };
        (TypeDesc::of::<T>(kind, opts.schema_id), body)
    }

    pub(crate) fn create(
        name: &str,
        kind: Kind,
        count: u64,
        opts: &Options,
        fill: &dyn Fn(*mut T),
    ) -> Result<Self, OpenError> {
        let (desc, body) = Self::spec(kind, opts);
        let spec = Spec { desc, body_size: &body };
        let init = |b: *mut u8| fill(b.wrapping_add(data_offset(core::mem::align_of::<T>()) as usize).cast());
        Self::wrap(Segment::create(name, &spec, count, opts, &init)?)
    }

    pub(crate) fn open(name: &str, kind: Kind, opts: &Options) -> Result<Self, OpenError> {
        let (desc, body) = Self::spec(kind, opts);
        Self::wrap(Segment::open(name, &Spec { desc, body_size: &body }, opts)?)
    }

    pub(crate) fn open_or_create(
        name: &str,
        kind: Kind,
        count: u64,
        opts: &Options,
        fill: &dyn Fn(*mut T),
    ) -> Result<(Self, bool), OpenError> {
        let (desc, body) = Self::spec(kind, opts);
        let spec = Spec { desc, body_size: &body };
        let init = |b: *mut u8| fill(b.wrapping_add(data_offset(core::mem::align_of::<T>()) as usize).cast());
        let (seg, created) = Segment::open_or_create(name, &spec, count, opts, &init)?;
        Ok((Self::wrap(seg)?, created))
    }

    fn wrap(seg: Segment) -> Result<Self, OpenError> {
        let len = usize::try_from(seg.count()).map_err(|_| OpenError::InvalidSize {
            what: format!("element count {} does not fit usize", seg.count()),
        })?;
        Ok(Locked {
            seg,
            len,
            _t: PhantomData,
        })
    }

    pub(crate) fn segment_mut(&mut self) -> &mut Segment {
        &mut self.seg
    }

    #[inline(always)]
    fn lock_state(&self) -> &LockState {
        // SAFETY: the body starts with 16 bytes reserved for the lock (validated layout), is
        // 64-aligned, and `LockState` is all atomics: valid for any bytes, shareable.
        unsafe { &*self.seg.body().cast::<LockState>() }
    }

    /// Pointer to element `i`; `i < len` is the caller's to check before dereferencing.
    #[inline]
    pub(crate) fn elem(&self, i: usize) -> *mut T {
        let base = self
            .seg
            .body()
            .wrapping_add(data_offset(core::mem::align_of::<T>()) as usize);
        base.cast::<T>().wrapping_add(i)
    }

    /// Reads element `i` (panics if out of range: that is the caller's index, not peer data).
    #[inline]
    pub(crate) fn read(&self, i: usize) -> T {
        assert!(i < self.len, "index {i} out of range for length {}", self.len);
        // SAFETY: `i < len`, so the element lies inside the validated body; the body offset
        // and `data_offset` are multiples of `align_of::<T>()`.
        unsafe { crate::raw::copy::load(self.elem(i)) }
    }

    /// Writes element `i` (panics if out of range).
    #[inline]
    pub(crate) fn write(&self, i: usize, v: T) {
        assert!(i < self.len, "index {i} out of range for length {}", self.len);
        // SAFETY: as in `read`.
        unsafe { crate::raw::copy::store(self.elem(i), v) }
    }

    #[inline]
    pub(crate) fn me(&self) -> Owner {
        self.seg.me()
    }

    /// Locks; `Ok(true)` means the previous owner died holding the lock.
    #[inline(always)]
    pub(crate) fn acquire<G>(&self, deadline: Option<Instant>, blocking: bool) -> Result<bool, LockError<G>> {
        let r = if blocking {
            self.lock_state().lock(deadline, &self.seg, &self.seg)
        } else {
            self.lock_state().try_lock(&self.seg)
        };
        match r {
            Ok(Acquired::Clean) => Ok(false),
            Ok(Acquired::OwnerDied) => Ok(true),
            Err(LockFailure::Unrecoverable) => Err(LockError::Unrecoverable),
            Err(LockFailure::WouldBlock) if blocking => Err(LockError::Timeout),
            Err(LockFailure::WouldBlock) => Err(LockError::WouldBlock),
        }
    }

    /// [`acquire`](Locked::acquire) (blocking) in async form (feature `tokio`): the task
    /// waits on the segment's doorbell (`Segment::wait_async`). The steps are `lock`'s: the
    /// attempt is `try_lock` (which takes over a dead owner's lock with the owner-died mark;
    /// once announced, `try_lock_announced`, which keeps the waiters mark as a woken sleeper
    /// does); the announce is `set waiters` on the held word, so that the holder's unlock
    /// bumps `seq` and wakes, which rings the doorbells. An attempt that finds the lock held
    /// after announcing announces again (the word may have been free at the announce and
    /// taken since), so that it never waits on a held word without the mark.
    ///
    /// The lock is taken in the same call that reports it, with no await in between: a
    /// future dropped at its await point holds nothing and leaves no registration behind.
    #[cfg(feature = "tokio")]
    pub(crate) async fn acquire_async<G>(&self, deadline: Option<Instant>) -> Result<bool, LockError<G>> {
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let st = self.lock_state();
        let seg = &self.seg;
        let announced = AtomicBool::new(false);
        let attempt = || {
            for _ in 0..64 {
                let r = if announced.load(Relaxed) {
                    st.try_lock_announced(seg)
                } else {
                    st.try_lock(seg)
                };
                if r != Err(LockFailure::WouldBlock) {
                    return Some(r);
                }
                if !announced.load(Relaxed) || st.announce() {
                    return None;
                }
            }
            None
        };
        let announce = || {
            announced.store(true, Relaxed);
            st.announce();
        };
        match seg.wait_async(deadline, attempt, announce, |()| {}).await {
            Some(Ok(Acquired::Clean)) => Ok(false),
            Some(Ok(Acquired::OwnerDied)) => Ok(true),
            Some(Err(LockFailure::Unrecoverable)) => Err(LockError::Unrecoverable),
            Some(Err(LockFailure::WouldBlock)) | None => Err(LockError::Timeout),
        }
    }

    pub(crate) fn mark_consistent(&self) {
        self.lock_state().mark_consistent(self.me());
    }

    #[inline(always)]
    pub(crate) fn release(&self) {
        self.lock_state().unlock(self.me(), &self.seg);
    }
}

/// Heap-backed values and arrays and simulated deaths, for the conformance suite
/// (`crate::testing`).
#[cfg(feature = "testing")]
impl<T: Pod> Locked<T> {
    /// `count` elements on heap memory laid out like a segment (`Segment::heap`).
    pub(crate) fn heap(kind: Kind, count: u64, fill: &dyn Fn(*mut T)) -> Result<Self, OpenError> {
        let opts = Options::new();
        let (desc, body) = Self::spec(kind, &opts);
        let init = |b: *mut u8| fill(b.wrapping_add(data_offset(core::mem::align_of::<T>()) as usize).cast());
        Self::wrap(Segment::heap(&Spec { desc, body_size: &body }, count, &opts, &init)?)
    }

    /// Another handle on the same segment, as another process would open it.
    pub(crate) fn peer(&self, kind: Kind) -> Result<Self, OpenError> {
        let (desc, body) = Self::spec(kind, &Options::new());
        Self::wrap(self.seg.peer(&Spec { desc, body_size: &body })?)
    }

    /// Ends this handle as SIGKILL would (see `Segment::simulate_crash`).
    pub(crate) fn simulate_crash(self) {
        self.seg.simulate_crash();
    }
}

/// Turns "acquired, owner died?" into the public result shape.
#[inline]
pub(crate) fn to_result<G>(r: Result<bool, LockError<G>>, make: impl FnOnce(bool) -> G) -> Result<G, LockError<G>> {
    match r {
        Ok(false) => Ok(make(false)),
        Ok(true) => Err(LockError::OwnerDied(make(true))),
        Err(e) => Err(e),
    }
}
