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

#[cfg(test)]
mod tests {
    use super::*;

    // The pointers are derived from `&raw mut`, as production's come from the mapping's
    // `*mut u8`: an atomic load through a pointer derived from `&T` is UB under Stacked
    // Borrows (it needs write permission), which Miri caught in the first version.
    #[test]
    fn round_trips_values_of_several_sizes_and_alignments() {
        let mut a = [0u64; 4];
        // SAFETY: `a` is a live, aligned local of exactly that type.
        unsafe { store(&mut a, [1, 2, 3, u64::MAX]) };
        // SAFETY: as above.
        assert_eq!(unsafe { load((&raw mut a).cast_const()) }, [1, 2, 3, u64::MAX]);
        let mut b = [0u8; 3];
        // SAFETY: as above.
        unsafe { store(&mut b, [7, 8, 9]) };
        // SAFETY: as above.
        assert_eq!(unsafe { load((&raw mut b).cast_const()) }, [7, 8, 9]);
        let mut c = [[0u8; 1024]; 2];
        // SAFETY: as above.
        unsafe { store(&mut c, [[5u8; 1024]; 2]) };
        // SAFETY: as above.
        assert_eq!(unsafe { load((&raw mut c).cast_const()) }, [[5u8; 1024]; 2]);
    }
}
