//! Copies of plain-data payloads to and from memory that other processes may write at the
//! same time. The copies are made of relaxed atomic loads and stores (`atomic-memcpy`, the
//! byte-wise atomic memcpy of C++ proposal P1478), so a racing peer yields torn *values*,
//! never a data race: every bit pattern is a valid `T` because `T: Pod`.

use bytemuck::Pod;
use std::sync::atomic::Ordering;

/// Reads a `T` from `src`.
///
/// # Safety
/// `src` is valid for reads of `size_of::<T>()` bytes and aligned for `T`; any concurrent
/// writers use atomic or byte-wise atomic stores (or are other processes).
#[inline]
pub(crate) unsafe fn load<T: Pod>(src: *const T) -> T {
    // SAFETY: the caller guarantees `src` is valid and aligned.
    let v = unsafe { atomic_memcpy::atomic_load(src, Ordering::Relaxed) };
    // SAFETY: `T: Pod`, so every byte pattern (torn ones included) is a valid `T`, and
    // atomic_load initialised every byte.
    unsafe { v.assume_init() }
}

/// Writes `v` to `dst`.
///
/// # Safety
/// `dst` is valid for writes of `size_of::<T>()` bytes and aligned for `T`.
#[inline]
pub(crate) unsafe fn store<T: Pod>(dst: *mut T, v: T) {
    // SAFETY: the caller guarantees `dst` is valid and aligned.
    unsafe { atomic_memcpy::atomic_store(dst, v, Ordering::Relaxed) }
}
