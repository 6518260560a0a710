//! `SharedBytes`: a named block of raw bytes (Python's `multiprocessing.shared_memory.
//! SharedMemory`), copied in and out at offsets, or seen as atomics.
//!
//! Body layout: the bytes, from the body start (128-aligned). A fresh block is zero-filled.

use crate::error::{OpenError, RangeError};
use crate::options::Options;
use crate::segment::header::{Kind, TypeDesc};
use crate::segment::{Segment, Spec};
use std::sync::atomic::{AtomicU8, AtomicU64};

/// Largest block (bytes).
const MAX_SIZE: u64 = 1 << 40;

/// A named block of `len` bytes shared between processes, with no lock and no structure.
///
/// It never hands out `&[u8]` or `&mut [u8]` into the mapping: another process may write
/// those bytes at any moment, and a plain reference to memory that changes under it is
/// undefined behaviour in Rust (the compiler may assume it does not). Bytes are copied in and
/// out ([`write`](SharedBytes::write), [`read`](SharedBytes::read), byte-wise atomic copies,
/// so a concurrent writer gives torn data, never UB), or reached as atomics
/// ([`as_atomic_bytes`](SharedBytes::as_atomic_bytes), [`as_atomic_u64s`](SharedBytes::as_atomic_u64s)),
/// which are sound to share. Agree on what lives where, and on who writes when, between the
/// processes, as with any raw shared memory.
///
/// ```
/// # let name = format!("doc-bytes-{}", std::process::id());
/// use shmproc::SharedBytes;
/// let block = SharedBytes::create(&name, 4096)?;
/// // In any process: SharedBytes::open(&name)?
/// block.write(100, b"hello")?;
/// let mut buf = [0u8; 5];
/// block.read(100, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// assert!(block.write(4094, b"too long").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedBytes {
    seg: Segment,
    len: usize,
}

// SAFETY: the bytes are reached only through byte-wise atomic copies and atomics, in a
// mapping that moves with the handle; `Segment` is `Send + Sync`.
unsafe impl Send for SharedBytes {}
// SAFETY: as above.
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    fn spec(opts: &Options) -> (TypeDesc, crate::segment::BodySize) {
        let body: crate::segment::BodySize = |count, size, _| body_size_of(size, count);
        let desc = TypeDesc {
            kind: Kind::Bytes,
            name: "bytes",
            size: 1,
            align: 8,
            schema_id: opts.schema_id,
            any_size: false,
        };
        (desc, body)
    }

    /// Creates the block `name` of `len` bytes, all zero. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidSize` for `len == 0` or more than 1 TiB; `NoSpace`, `InvalidName`,
    /// `AlreadyExists`, `Io`.
    pub fn create(name: &str, len: usize) -> Result<Self, OpenError> {
        Self::create_with(name, len, &Options::new())
    }

    /// [`create`](SharedBytes::create) with options.
    ///
    /// # Errors
    /// As [`create`](SharedBytes::create).
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

    /// Opens the existing block `name`.
    ///
    /// # Errors
    /// `NotFound`, `IncompatibleType` (not a byte block), `Corrupted`, `VersionMismatch`,
    /// `UntrustedOwner`, `InsecurePermissions`, `InitTimeout`, `Io`.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](SharedBytes::open) with options.
    ///
    /// # Errors
    /// As [`open`](SharedBytes::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        let (desc, body) = Self::spec(opts);
        Self::wrap(Segment::open(name, &Spec { desc, body_size: &body }, opts)?)
    }

    /// Opens `name`, or creates it with `len` zero bytes if it does not exist (race-free among
    /// processes). An existing block keeps its own size.
    ///
    /// # Errors
    /// As [`create`](SharedBytes::create) and [`open`](SharedBytes::open).
    pub fn open_or_create(name: &str, len: usize) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, len, &Options::new())
    }

    /// [`open_or_create`](SharedBytes::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](SharedBytes::open_or_create).
    pub fn open_or_create_with(name: &str, len: usize, opts: &Options) -> Result<Self, OpenError> {
        let count = check_len(len)?;
        let (desc, body) = Self::spec(opts);
        let (seg, _) = Segment::open_or_create(name, &Spec { desc, body_size: &body }, count, opts, &|_| {})?;
        Self::wrap(seg)
    }

    fn wrap(seg: Segment) -> Result<Self, OpenError> {
        let len = usize::try_from(seg.count()).map_err(|_| OpenError::InvalidSize {
            what: format!("block size {} does not fit usize", seg.count()),
        })?;
        Ok(SharedBytes { seg, len })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a block has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), RangeError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(RangeError {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copies `data` into the block at `offset`.
    ///
    /// # Errors
    /// [`RangeError`] when `offset + data.len()` passes the end; nothing is written then.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), RangeError> {
        self.check(offset, data.len())?;
        // SAFETY: `offset + data.len() <= len` bytes of the body lie in the mapping; the copy
        // is byte-wise atomic (`raw::copy`), so concurrent peers cannot make it a data race.
        unsafe { crate::raw::copy::store_bytes(self.seg.body().add(offset), data) };
        Ok(())
    }

    /// Copies `buf.len()` bytes from `offset` of the block into `buf`.
    ///
    /// # Errors
    /// [`RangeError`] when `offset + buf.len()` passes the end; `buf` is untouched then.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), RangeError> {
        self.check(offset, buf.len())?;
        // SAFETY: as in `write`; `buf` is ours and has room for `buf.len()` bytes.
        unsafe { crate::raw::copy::load_bytes(buf.as_mut_ptr(), self.seg.body().add(offset), buf.len()) };
        Ok(())
    }

    /// `len` bytes from `offset`, in a new vector.
    ///
    /// # Errors
    /// [`RangeError`] when `offset + len` passes the end.
    pub fn read_to_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>, RangeError> {
        self.check(offset, len)?;
        let mut v = vec![0u8; len];
        self.read(offset, &mut v)?;
        Ok(v)
    }

    /// The block as atomic bytes (for example a coverage map that several processes set bits
    /// in with `fetch_or`).
    pub fn as_atomic_bytes(&self) -> &[AtomicU8] {
        // SAFETY: `len` bytes of the body lie in the mapping for as long as `self.seg`;
        // `AtomicU8` has no invalid bit pattern and is made to be shared.
        unsafe { std::slice::from_raw_parts(self.seg.body().cast::<AtomicU8>(), self.len) }
    }

    /// The block's first `len / 8` 8-byte words as atomics (the body is 128-aligned); the
    /// bytes past the last whole word are reached through the other views.
    pub fn as_atomic_u64s(&self) -> &[AtomicU64] {
        // SAFETY: as in `as_atomic_bytes`; the body start is 128-aligned, so each word is
        // aligned, and `len / 8` words fit in `len` bytes.
        unsafe { std::slice::from_raw_parts(self.seg.body().cast::<AtomicU64>(), self.len / 8) }
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

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBytes")
            .field("name", &self.name())
            .field("len", &self.len)
            .finish()
    }
}

/// Body size of a block of `count` bytes (elements of size 1).
pub(crate) fn body_size_of(size: u64, count: u64) -> Option<u64> {
    (size == 1 && (1..=MAX_SIZE).contains(&count)).then_some(count)
}

fn check_len(len: usize) -> Result<u64, OpenError> {
    match u64::try_from(len) {
        Ok(n) if (1..=MAX_SIZE).contains(&n) => Ok(n),
        _ => Err(OpenError::InvalidSize {
            what: format!("block size {len} is not in 1..={MAX_SIZE}"),
        }),
    }
}
