//! The synchronisation primitives of Python's `multiprocessing` beyond `Lock`: `RLock`,
//! `Semaphore`, `BoundedSemaphore`, `Event`, `Condition`, `Barrier`. Each is a thin type over
//! one algorithm of `raw` (`raw::semaphore`, `raw::event`, `raw::condvar`, `raw::barrier`;
//! `RLock` reuses `raw::lock`), in a segment of its own kind.
//!
//! Body layout, shared by all of them ([`Prim`]): the algorithm's state (at most 64 bytes,
//! all atomics) at offset 0, on its own cache line; then, for the kinds that keep something
//! per participant (a semaphore's permits held, a barrier's parties), one record per
//! participant record of the segment, from offset 64.

pub(crate) mod barrier;
pub(crate) mod condition;
pub(crate) mod event;
pub(crate) mod rlock;
pub(crate) mod semaphore;

use crate::error::OpenError;
use crate::options::Options;
use crate::segment::header::{Kind, TypeDesc};
use crate::segment::{Segment, Spec};

/// Where the per-participant records start in the body.
pub(crate) const RECORDS_OFFSET: u64 = 64;

/// Shared-state types made only of atomics: any bytes a peer writes are a valid value, so a
/// reference to them in the mapping is sound.
///
/// # Safety
/// Implementors are `#[repr(C)]`, made only of atomic integers, at most 8-aligned.
pub(crate) unsafe trait AllAtomic: Sized {}

// SAFETY: each is `#[repr(C)]` and made only of `AtomicU32`/`AtomicU64` (see `raw`).
unsafe impl AllAtomic for crate::raw::event::EventState {}
// SAFETY: as above.
unsafe impl AllAtomic for crate::raw::condvar::CondState {}
// SAFETY: as above.
unsafe impl AllAtomic for crate::raw::semaphore::SemState {}
// SAFETY: as above.
unsafe impl AllAtomic for crate::raw::semaphore::Holding {}
// SAFETY: as above.
unsafe impl AllAtomic for crate::raw::barrier::BarrierState {}
// SAFETY: as above.
unsafe impl AllAtomic for crate::raw::barrier::Party {}

/// What a primitive kind needs of its segment.
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    /// Bytes of one per-participant record (0: none).
    pub(crate) rec_size: u64,
    /// The header counts the kind allows (permits, parties; 1 for the others).
    pub(crate) count_ok: fn(u64) -> bool,
}

impl Shape {
    fn desc(&self, opts: &Options) -> TypeDesc {
        TypeDesc {
            kind: self.kind,
            name: Kind::name(self.kind as u32),
            size: 0,
            align: 1,
            schema_id: opts.schema_id,
            any_size: false,
        }
    }

    /// The body size for a header's count and participant count, `None` if the count is
    /// not one this kind allows.
    pub(crate) fn body_size(&self, count: u64, participants: u32) -> Option<u64> {
        if !(self.count_ok)(count) {
            return None;
        }
        RECORDS_OFFSET.checked_add(self.rec_size.checked_mul(u64::from(participants))?)
    }
}

/// A primitive's segment: the state at the body start, the records after it.
pub(crate) struct Prim {
    seg: Segment,
}

impl Prim {
    pub(crate) fn create(
        name: &str,
        shape: &Shape,
        count: u64,
        opts: &Options,
        init: &dyn Fn(*mut u8),
    ) -> Result<Prim, OpenError> {
        let body = |c, _, p| shape.body_size(c, p);
        let spec = Spec {
            desc: shape.desc(opts),
            body_size: &body,
        };
        Ok(Prim {
            seg: Segment::create(name, &spec, count, opts, init)?,
        })
    }

    pub(crate) fn open(name: &str, shape: &Shape, opts: &Options) -> Result<Prim, OpenError> {
        let body = |c, _, p| shape.body_size(c, p);
        let spec = Spec {
            desc: shape.desc(opts),
            body_size: &body,
        };
        Ok(Prim {
            seg: Segment::open(name, &spec, opts)?,
        })
    }

    pub(crate) fn open_or_create(
        name: &str,
        shape: &Shape,
        count: u64,
        opts: &Options,
        init: &dyn Fn(*mut u8),
    ) -> Result<Prim, OpenError> {
        let body = |c, _, p| shape.body_size(c, p);
        let spec = Spec {
            desc: shape.desc(opts),
            body_size: &body,
        };
        let (seg, _) = Segment::open_or_create(name, &spec, count, opts, init)?;
        Ok(Prim { seg })
    }

    /// The state at the body start.
    #[inline]
    pub(crate) fn state<S: AllAtomic>(&self) -> &S {
        const { assert!(core::mem::size_of::<S>() <= RECORDS_OFFSET as usize && core::mem::align_of::<S>() <= 8) };
        // SAFETY: the validated body is at least RECORDS_OFFSET bytes, 64-aligned, and
        // lives as long as `self.seg`; `S` fits in it and is all atomics (`AllAtomic`), so
        // any bytes are a valid `S` and shared mutation through `&S` is its purpose.
        unsafe { &*self.seg.body().cast::<S>() }
    }

    /// The per-participant records (one per participant record of the segment).
    #[inline]
    pub(crate) fn records<R: AllAtomic>(&self) -> &[R] {
        let n = self.seg.participant_count() as usize;
        debug_assert!(RECORDS_OFFSET + (core::mem::size_of::<R>() * n) as u64 <= self.seg.body_size());
        // SAFETY: the body size was validated against `Shape::body_size` with this
        // participant count and `rec_size == size_of::<R>()` (each kind passes its own record
        // type's size), so `n` records of `R` fit from RECORDS_OFFSET, which is a multiple of
        // `align_of::<R>()`; `R` is all atomics (`AllAtomic`).
        unsafe { std::slice::from_raw_parts(self.seg.body().wrapping_add(RECORDS_OFFSET as usize).cast::<R>(), n) }
    }

    /// The header's count (permits, parties), as validated at open.
    pub(crate) fn count(&self) -> u64 {
        self.seg.count()
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    pub(crate) fn name(&self) -> &str {
        self.seg.name()
    }

    pub(crate) fn persist(&mut self) {
        self.seg.set_persist();
    }
}

/// `open`, `open_with`, `name`, `persist` and `Debug` of a primitive type `$t` whose
/// [`Prim`] is `self.$field` and whose shape is `$shape`; `$wrap` turns a `Prim` into the
/// type.
macro_rules! opening {
    ($t:ident, $shape:expr, $wrap:expr, $($field:ident).+) => {
        impl $t {
            #[doc = concat!("Opens the existing `", stringify!($t), "` named `name`.")]
            ///
            /// # Errors
            /// `NotFound`, `IncompatibleType` (another kind), `Corrupted`, `VersionMismatch`,
            /// `UntrustedOwner`, `InsecurePermissions`, `InitTimeout`, `Io`.
            pub fn open(name: &str) -> Result<Self, crate::error::OpenError> {
                Self::open_with(name, &crate::options::Options::new())
            }

            #[doc = concat!("[`open`](", stringify!($t), "::open) with options.")]
            ///
            /// # Errors
            /// As `open`.
            pub fn open_with(name: &str, opts: &crate::options::Options) -> Result<Self, crate::error::OpenError> {
                let prim = crate::sync::Prim::open(name, &$shape, opts)?;
                Ok($wrap(prim))
            }

            /// The segment's name.
            pub fn name(&self) -> &str {
                self.$($field).+.name()
            }

            /// Keep the name after this handle is dropped.
            pub fn persist(&mut self) {
                self.$($field).+.persist();
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("name", &self.name()).finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use opening;
