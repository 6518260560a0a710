//! `AtomicArray<A>`: a named array of atomic integers, shared without a lock (Python's
//! `RawArray`, `RawValue`, `Value(lock=False)`), for counters, flags and maps that many
//! processes update at once.
//!
//! Body layout: `len` elements of `A` from the body start (128-aligned), nothing else. A fresh
//! segment is zero-filled.

use crate::error::OpenError;
use crate::options::Options;
use crate::segment::header::{Kind, TypeDesc};
use crate::segment::{Segment, Spec};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64};

mod sealed {
    pub trait Sealed {
        /// The name stored in the header: fixed here, not `std::any::type_name` (which
        /// differs between compiler versions: `AtomicU32` or `Atomic<u32>`), so programs
        /// built with different toolchains open each other's arrays.
        const NAME: &'static str;
    }
}

/// An atomic integer type that may live in shared memory: every bit pattern is one of its
/// values, so whatever a peer writes, a reference to it stays sound and every load returns
/// some value. Implemented for `AtomicU8`..`AtomicU64` and `AtomicI8`..`AtomicI64`.
///
/// Not for `AtomicBool`: a byte other than 0 or 1 behind an `AtomicBool` is undefined
/// behaviour, and any process that can write the segment could store one. Use an `AtomicU8`
/// (0 or not) for flags.
pub trait SharedAtomic: sealed::Sealed + Send + Sync + 'static {}

macro_rules! shared_atomic {
    ($($t:ident),*) => {$(
        impl sealed::Sealed for $t {
            const NAME: &'static str = stringify!($t);
        }
        impl SharedAtomic for $t {}
        // All atomics: any bytes are a valid value (the promise of `SharedAtomic`).
        const _: () = assert!(core::mem::size_of::<$t>() == core::mem::align_of::<$t>());
    )*};
}
shared_atomic!(
    AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicI8, AtomicI16, AtomicI32, AtomicI64
);

/// Largest length an atomic array may have (elements).
const MAX_LEN: u64 = 1 << 36;

/// A named array of `len` atomics of type `A`, shared between processes with no lock.
///
/// Each element is a plain atomic in the mapping: `fetch_add`, `compare_exchange`, `load`,
/// `store` and the rest are the `std` methods, through [`as_slice`](AtomicArray::as_slice),
/// [`get`](AtomicArray::get) or indexing, and cost what an atomic in a shared mapping costs
/// (the `fetch_add` rows of the `compare` bench). Nothing else is shared: no lock, no
/// participant's death can leave it in any state but the values stored so far. A single
/// element is Python's `RawValue` (an array of length 1).
///
/// ```
/// # let name = format!("doc-atomics-{}", std::process::id());
/// use shmproc::AtomicArray;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// let hits = AtomicArray::<AtomicU64>::create(&name, 4)?;
/// // In any process: AtomicArray::<AtomicU64>::open(&name)?
/// hits[2].fetch_add(5, Ordering::Relaxed);
/// assert_eq!(hits.as_slice().iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>(), 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AtomicArray<A: SharedAtomic> {
    seg: Segment,
    len: usize,
    _a: PhantomData<A>,
}

// SAFETY: the elements are atomics in a mapping that moves with the handle; `Segment` is
// `Send + Sync`.
unsafe impl<A: SharedAtomic> Send for AtomicArray<A> {}
// SAFETY: as above; every access is an atomic operation on `A`.
unsafe impl<A: SharedAtomic> Sync for AtomicArray<A> {}

impl<A: SharedAtomic> AtomicArray<A> {
    fn spec(opts: &Options) -> (TypeDesc, crate::segment::BodySize) {
        let body: crate::segment::BodySize = |count, _, _| body_size::<A>(count);
        let desc = TypeDesc {
            kind: Kind::AtomicArray,
            name: <A as sealed::Sealed>::NAME,
            size: core::mem::size_of::<A>() as u64,
            align: core::mem::align_of::<A>() as u32,
            schema_id: opts.schema_id,
            any_size: false,
        };
        (desc, body)
    }

    /// Creates the segment `name` with `len` elements, all zero. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidSize` for `len == 0` or too large; `NoSpace`, `InvalidName`, `AlreadyExists`,
    /// `Io`.
    pub fn create(name: &str, len: usize) -> Result<Self, OpenError> {
        Self::create_with(name, len, &Options::new())
    }

    /// [`create`](AtomicArray::create) with options.
    ///
    /// # Errors
    /// As [`create`](AtomicArray::create).
    pub fn create_with(name: &str, len: usize, opts: &Options) -> Result<Self, OpenError> {
        let count = check_len(len)?;
        let (desc, body) = Self::spec(opts);
        Self::wrap(Segment::create(
            name,
            &Spec { desc, body_size: &body },
            count,
            opts,
            &|_| {},
        )?)
    }

    /// Opens the existing array `name`.
    ///
    /// # Errors
    /// `NotFound`, `IncompatibleType` (another kind or element type), `Corrupted`,
    /// `VersionMismatch`, `UntrustedOwner`, `InsecurePermissions`, `InitTimeout`, `Io`.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](AtomicArray::open) with options.
    ///
    /// # Errors
    /// As [`open`](AtomicArray::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        let (desc, body) = Self::spec(opts);
        Self::wrap(Segment::open(name, &Spec { desc, body_size: &body }, opts)?)
    }

    /// Opens `name`, or creates it with `len` zero elements if it does not exist (race-free
    /// among processes). An existing array keeps its own length.
    ///
    /// # Errors
    /// As [`create`](AtomicArray::create) and [`open`](AtomicArray::open).
    pub fn open_or_create(name: &str, len: usize) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, len, &Options::new())
    }

    /// [`open_or_create`](AtomicArray::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](AtomicArray::open_or_create).
    pub fn open_or_create_with(name: &str, len: usize, opts: &Options) -> Result<Self, OpenError> {
        let count = check_len(len)?;
        let (desc, body) = Self::spec(opts);
        let (seg, _) = Segment::open_or_create(name, &Spec { desc, body_size: &body }, count, opts, &|_| {})?;
        Self::wrap(seg)
    }

    fn wrap(seg: Segment) -> Result<Self, OpenError> {
        let len = usize::try_from(seg.count()).map_err(|_| OpenError::InvalidSize {
            what: format!("element count {} does not fit usize", seg.count()),
        })?;
        Ok(AtomicArray {
            seg,
            len,
            _a: PhantomData,
        })
    }

    /// The elements, as a slice of atomics in the mapping.
    #[inline]
    pub fn as_slice(&self) -> &[A] {
        // SAFETY: the validated body holds `len` elements of `A` from its start, which is
        // 128-aligned (a multiple of `align_of::<A>()`), and lives as long as `self.seg`.
        // `A` is an atomic integer (`SharedAtomic`): every bit pattern is valid and shared
        // mutation is its purpose, so a reference to it is sound whatever peers write.
        unsafe { std::slice::from_raw_parts(self.seg.body().cast::<A>(), self.len) }
    }

    /// Element `i`, or `None` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&A> {
        self.as_slice().get(i)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: an array has at least one element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Keep the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.seg.set_persist();
    }
}

impl<A: SharedAtomic> std::ops::Index<usize> for AtomicArray<A> {
    type Output = A;

    /// Element `i`; panics past the end, as slice indexing does.
    #[inline]
    fn index(&self, i: usize) -> &A {
        &self.as_slice()[i]
    }
}

impl<A: SharedAtomic> std::fmt::Debug for AtomicArray<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicArray")
            .field("name", &self.name())
            .field("type", &<A as sealed::Sealed>::NAME)
            .field("len", &self.len)
            .finish()
    }
}

fn body_size<A>(count: u64) -> Option<u64> {
    if count == 0 || count > MAX_LEN {
        return None;
    }
    count.checked_mul(core::mem::size_of::<A>() as u64)
}

/// Body size of an atomic array of `count` elements of `size` bytes (inspection).
pub(crate) fn body_size_of(size: u64, count: u64) -> Option<u64> {
    if count == 0 || count > MAX_LEN || !matches!(size, 1 | 2 | 4 | 8) {
        return None;
    }
    count.checked_mul(size)
}

fn check_len(len: usize) -> Result<u64, OpenError> {
    match u64::try_from(len) {
        Ok(n) if (1..=MAX_LEN).contains(&n) => Ok(n),
        _ => Err(OpenError::InvalidSize {
            what: format!("length {len} is not in 1..={MAX_LEN}"),
        }),
    }
}
