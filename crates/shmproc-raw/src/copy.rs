//! Copies of plain-data payloads to and from memory that other processes may write at the
//! same time. The copies are made of relaxed atomic loads and stores (`atomic-memcpy`, the
//! byte-wise atomic memcpy of C++ proposal P1478; on x86-64, from 1 KiB on, one `rep movsb`
//! or a 32-byte vector loop, both of which behave as such a copy), so a racing peer yields
//! torn *values*, never a data race: every bit pattern is a valid `T` because `T: Pod`.

use bytemuck::Pod;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Above this size, `load` and `store` use the unrolled word loops below ([`load_bytes`],
/// [`store_bytes`]), which run at `memcpy` speed; `atomic-memcpy` is kept for small values,
/// where its single atomic access per word is the shortest code.
const BULK: usize = 8;

/// Reads a `T` from `src`.
///
/// # Safety
/// `src` is valid for reads of `size_of::<T>()` bytes and aligned for `T`; any concurrent
/// writers use atomic or byte-wise atomic stores (or are other processes).
#[inline]
pub unsafe fn load<T: Pod>(src: *const T) -> T {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the caller's contract is `load_into`'s; `v` is a private local for one `T`.
    unsafe { load_into(v.as_mut_ptr(), src) };
    // SAFETY: `load_into` initialised every byte, and any bytes (torn ones included) are a
    // valid `T` (`Pod`).
    unsafe { v.assume_init() }
}

/// Reads a `T` from `src` into `*dst`, copying a large `T` once, straight to where it goes.
///
/// # Safety
/// As [`load`], and `dst` is valid for writes of one `T`, private and not overlapping `src`.
#[inline]
pub unsafe fn load_into<T: Pod>(dst: *mut T, src: *const T) {
    if core::mem::size_of::<T>() > BULK {
        // SAFETY: both ranges hold `size_of::<T>()` bytes (caller); `dst` is private.
        unsafe { load_bytes(dst.cast(), src.cast(), core::mem::size_of::<T>()) };
        return;
    }
    // SAFETY: the caller guarantees `src` is valid and aligned.
    let v = unsafe { atomic_memcpy::atomic_load(src, Ordering::Relaxed) };
    // SAFETY: `dst` is valid for one `T` (caller); `atomic_load` initialised every byte of
    // `v`, and any bytes are a valid `T` (`Pod`).
    unsafe { dst.write(v.assume_init()) };
}

/// Writes `v` to `dst`.
///
/// # Safety
/// `dst` is valid for writes of `size_of::<T>()` bytes and aligned for `T`.
#[inline]
pub unsafe fn store<T: Pod>(dst: *mut T, v: T) {
    // SAFETY: the caller's contract is `store_ref`'s.
    unsafe { store_ref(dst, &v) }
}

/// Writes `*v` to `dst`, copying a large `T` once, straight from where it lies.
///
/// # Safety
/// As [`store`].
#[inline]
pub unsafe fn store_ref<T: Pod>(dst: *mut T, v: &T) {
    if core::mem::size_of::<T>() > BULK {
        // SAFETY: `dst` is valid for `size_of::<T>()` bytes (caller).
        unsafe { store_bytes(dst.cast(), bytemuck::bytes_of(v)) };
        return;
    }
    // SAFETY: the caller guarantees `dst` is valid and aligned.
    unsafe { atomic_memcpy::atomic_store(dst, *v, Ordering::Relaxed) }
}

/// From this length on, [`store_bytes`] and [`load_bytes`] copy with one string instruction
/// (`string_copy`) or a vector loop (`vector_copy`), as [`choose_long_copy`] decides for the
/// CPU; below it the word loops are faster (a sweep of the `queue 1P1C | shmproc
/// ByteQueue (put/get_into)` row of `crates/shmproc-bench/benches/compare/` over message
/// sizes; the figures are in `crates/shmproc-bench/README.md`, "Measurements behind the
/// code").
#[cfg(all(target_arch = "x86_64", not(miri)))]
const REP_MIN: usize = 1024;

/// Whether `rep movsb` from `src` to `dst` runs in its slow mode: when the destination lies
/// less than [`ALIAS_WINDOW`] bytes after the source modulo 4096 (including the same page
/// offset), the string copy's loads keep meeting its own recent stores at addresses equal
/// modulo 4096 (4 KiB aliasing), and on AMD Zen 3 the copy runs 10 to 25 times slower. Vector
/// and word loops do not show it. Which offsets a copy gets is up to where the caller's buffer
/// and the slot lie, so every copy checks.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn string_copy_is_slow(dst: *const u8, src: *const u8) -> bool {
    dst.addr().wrapping_sub(src.addr()) & 4095 < ALIAS_WINDOW
}

/// See [`string_copy_is_slow`]: on AMD Zen 3 `rep movsb` is 10-25 times slower from 1 to 31
/// bytes after, up to 3 times slower at 48 and 80, and as fast as a vector loop at 0, 32, 64,
/// 96 and from 128 on.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const ALIAS_WINDOW: usize = 128;

/// How this CPU copies [`REP_MIN`] bytes or more: not chosen yet, then one of the three below
/// (chosen once, by [`choose_long_copy`]).
#[cfg(all(target_arch = "x86_64", not(miri)))]
static LONG_COPY: AtomicU8 = AtomicU8::new(LONG_UNKNOWN);
#[cfg(all(target_arch = "x86_64", not(miri)))]
const LONG_UNKNOWN: u8 = 0;
/// No AVX: `rep movsb` always.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const LONG_REP: u8 = 1;
/// `rep movsb`, but a vector loop in the [`string_copy_is_slow`] window.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const LONG_REP_UNLESS_SLOW: u8 = 2;
/// A vector loop always.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const LONG_VECTOR: u8 = 3;

/// Whether a copy of [`REP_MIN`] bytes or more from `src` to `dst` uses the vector loop
/// (`vector_copy`, and then the CPU has AVX) rather than `rep movsb`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn long_copy_is_vector(dst: *const u8, src: *const u8) -> bool {
    let mut how = LONG_COPY.load(Ordering::Relaxed);
    if how == LONG_UNKNOWN {
        how = choose_long_copy();
    }
    how == LONG_VECTOR || (how == LONG_REP_UNLESS_SLOW && string_copy_is_slow(dst, src))
}

/// Chooses, once, how this CPU copies long payloads (the `copy_speed_at_page_offsets` test
/// prints the times of both methods through this choice, `copy_methods_by_size` those of each
/// method; figures in `crates/shmproc-bench/README.md`, "Per microarchitecture"):
///
/// - AMD before Zen 5 (family 25, Zen 3 and 4, and earlier): a 32-byte vector loop. On Zen 3
///   it is at least as fast as `rep movsb` from 1 KiB on and has no 4 KiB-aliasing window
///   where it runs 10-25 times slower.
/// - Others (Intel; AMD from Zen 5, family 26): `rep movsb`, which writes long copies to
///   lines another core holds without reading them first (the vector loop's stores read
///   them), except in the aliasing window, where the vector loop cannot be much worse. On
///   Zen 5, between two processes, it takes 1 KiB items in 52 ns against the vector loop's
///   58, and 64 KiB items in 2.1 us against 4.6, though on one core with hot buffers the
///   vector loop is the faster up to 32 KiB.
/// - No AVX: `rep movsb`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[cold]
fn choose_long_copy() -> u8 {
    let how = if !std::arch::is_x86_feature_detected!("avx") {
        LONG_REP
    } else if amd_family().is_some_and(|family| family < 26) {
        LONG_VECTOR
    } else {
        LONG_REP_UNLESS_SLOW
    };
    LONG_COPY.store(how, Ordering::Relaxed);
    how
}

/// The CPU's family (CPUID leaf 1: base family plus extended family) if its vendor string
/// (CPUID leaf 0) is AMD's (or Hygon's, whose cores are AMD's), `None` for other vendors.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn amd_family() -> Option<u32> {
    if !cpu_is_amd() {
        return None;
    }
    #[allow(unused_unsafe)] // `__cpuid` is a safe function in newer Rust, `unsafe` in older.
    // SAFETY: CPUID leaf 1 exists on every x86-64 processor and only reads identification
    // registers.
    let id = unsafe { std::arch::x86_64::__cpuid(1) };
    let base = (id.eax >> 8) & 0xF;
    let extended = (id.eax >> 20) & 0xFF;
    Some(if base == 0xF { base + extended } else { base })
}

/// Whether the CPU's vendor string (CPUID leaf 0) is AMD's (or Hygon's, whose cores are AMD's).
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn cpu_is_amd() -> bool {
    #[allow(unused_unsafe)] // `__cpuid` is a safe function in newer Rust, `unsafe` in older.
    // SAFETY: CPUID leaf 0 exists on every x86-64 processor and only reads identification
    // registers.
    let id = unsafe { std::arch::x86_64::__cpuid(0) };
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
    &vendor == b"AuthenticAMD" || &vendor == b"HygonGenuine"
}

/// Copies `len & !63` bytes from `src` to `dst` with 32-byte vector loads and stores, and
/// returns how many it copied. A byte-wise atomic copy for the same reasons as
/// [`string_copy`]: the `asm!` block is, to the compiler, relaxed `AtomicU8` loads and
/// stores, the hardware performs each byte access indivisibly, and vector loads and stores
/// are ordinary x86-64 loads and stores, ordered with the slot word's Acquire load and
/// Release store as any others are. `vzeroupper` at the end leaves no dirty upper halves to
/// slow down SSE code that follows.
///
/// # Safety
/// As [`string_copy`], and the CPU has AVX.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx")]
unsafe fn vector_copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    let n = len & !63;
    if n == 0 {
        return 0;
    }
    // SAFETY: the ranges are valid for `len >= n` bytes and disjoint (caller); the loop
    // copies exactly `n` bytes (a multiple of 64, at least 64) forwards, touches no other
    // memory and no stack, and clobbers only the registers named.
    unsafe {
        core::arch::asm!(
            "2:",
            "vmovdqu {a}, ymmword ptr [{s}]",
            "vmovdqu {b}, ymmword ptr [{s} + 32]",
            "vmovdqu ymmword ptr [{d}], {a}",
            "vmovdqu ymmword ptr [{d} + 32], {b}",
            "add {s}, 64",
            "add {d}, 64",
            "sub {n}, 64",
            "jnz 2b",
            "vzeroupper",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            n = inout(reg) n => _,
            a = out(ymm_reg) _,
            b = out(ymm_reg) _,
            options(nostack),
        );
    }
    n
}

/// Copies `len` bytes from `src` to `dst`, either of which may be memory that other
/// processes read or write at the same time, with one `rep movsb` (x86-64 only).
///
/// Why it is a byte-wise atomic copy: an `asm!` block is, to the compiler, an opaque call
/// whose effect must be one that Rust code could have had, and here that code is a sequence
/// of relaxed `AtomicU8` loads from `src` and stores to `dst` (the copy P1478 specifies).
/// The hardware performs each byte access indivisibly, so a racing peer leaves a mix of old
/// and new bytes, never a data race. Ordering: the block is a compiler barrier for memory (no
/// `nomem`/`readonly`), and x86-64 keeps the string instruction's loads and stores before any
/// later store (Intel SDM vol. 3A, memory ordering, "Out-of-Order Stores For String
/// Operations": only the stores *within* one string operation may be seen out of order;
/// "string operations are not reordered with other store operations", and order-dependent
/// code should "use a discrete semaphore uniquely stored to after any string operations",
/// which the slot word is), so the Release store that publishes or releases a slot after the
/// copy still orders it, and the Acquire load before it still orders the copy after. The slot
/// protocol never relies on an order among the bytes of one message.
///
/// Why: on a fresh destination line a long `rep movsb` writes whole lines without reading them
/// first, where 8-byte stores read each line in (rows `queue 1P1C | shmproc ByteQueue
/// (put/get_into) | 64 KiB` and `... (put/get_with, read in place) | 64 KiB` of
/// `crates/shmproc-bench/benches/compare/`; before and after in
/// `crates/shmproc-bench/README.md`, "Measurements behind the code"). Under Miri, which runs no assembly, and on other architectures the callers keep
/// their word loops.
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `len` bytes, and the two ranges do not
/// overlap; every concurrent access to either range is atomic (or made by another process).
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline]
unsafe fn string_copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the ranges are valid and disjoint (caller); `rep movsb` copies exactly `rcx`
    // bytes forwards (the direction flag is clear at every Rust call boundary, as the ABI
    // requires) and touches no other memory, no stack and no flags.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copies `src` to `dst` in memory that other processes may read or write at the same time:
/// relaxed `AtomicU64` stores for the 8-aligned words, `AtomicU8` stores for the bytes before
/// and after them. A racing peer sees (or leaves) torn bytes, never a data race.
///
/// # Safety
/// `dst` is valid for writes of `src.len()` bytes; any concurrent accesses to it are atomic
/// (or made by other processes).
#[inline]
pub unsafe fn store_bytes(dst: *mut u8, src: &[u8]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    let (dst, src) = if src.len() < REP_MIN {
        (dst, src)
    } else if !long_copy_is_vector(dst, src.as_ptr()) {
        // SAFETY: `dst` is valid for `src.len()` bytes and shared only atomically (caller);
        // `src` is a private slice of that length, so the two do not overlap.
        unsafe { string_copy(dst, src.as_ptr(), src.len()) };
        return;
    } else {
        // SAFETY: as for `string_copy`; the CPU has AVX (`long_copy_is_vector`).
        let done = unsafe { vector_copy(dst, src.as_ptr(), src.len()) };
        (dst.wrapping_add(done), &src[done..])
    };
    // SAFETY: the caller's contract, for the part the long copy left.
    unsafe { store_words(dst, src) }
}

/// [`store_bytes`] with word stores only: relaxed `AtomicU64` stores for the 8-aligned words,
/// `AtomicU8` stores for the bytes before and after them.
///
/// # Safety
/// As [`store_bytes`].
#[inline]
unsafe fn store_words(dst: *mut u8, src: &[u8]) {
    let head = dst.align_offset(8).min(src.len());
    let (first, rest) = src.split_at(head);
    let mut at = dst;
    for &b in first {
        // SAFETY: `at` is within the caller's range; atomics may alias memory that others
        // access atomically.
        unsafe { AtomicU8::from_ptr(at).store(b, Ordering::Relaxed) };
        at = at.wrapping_add(1);
    }
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // SAFETY: `at` is 8-aligned here (we stepped to alignment, then by 8) and within the
        // caller's range.
        unsafe { AtomicU64::from_ptr(at.cast()).store(v, Ordering::Relaxed) };
        at = at.wrapping_add(8);
    }
    for &b in words.remainder() {
        // SAFETY: as for the first bytes.
        unsafe { AtomicU8::from_ptr(at).store(b, Ordering::Relaxed) };
        at = at.wrapping_add(1);
    }
}

/// Copies `len` bytes from `src`, in memory that other processes may write at the same time,
/// to the private buffer `dst` (the counterpart of [`store_bytes`]).
///
/// # Safety
/// `src` is valid for reads of `len` bytes and any concurrent accesses to it are atomic (or
/// made by other processes); `dst` is valid for writes of `len` bytes, not shared and not
/// overlapping `src`.
#[inline]
pub unsafe fn load_bytes(dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    let (dst, src, len) = if len < REP_MIN {
        (dst, src, len)
    } else if !long_copy_is_vector(dst, src) {
        // SAFETY: the caller's contract is `string_copy`'s.
        unsafe { string_copy(dst, src, len) };
        return;
    } else {
        // SAFETY: the caller's contract is `string_copy`'s; the CPU has AVX
        // (`long_copy_is_vector`).
        let done = unsafe { vector_copy(dst, src, len) };
        (dst.wrapping_add(done), src.wrapping_add(done), len - done)
    };
    // SAFETY: the caller's contract, for the part the long copy left.
    unsafe { load_words(dst, src, len) }
}

/// [`load_bytes`] with word loads only: relaxed `AtomicU64` loads for the 8-aligned words,
/// `AtomicU8` loads for the bytes before and after them.
///
/// # Safety
/// As [`load_bytes`].
#[inline]
unsafe fn load_words(dst: *mut u8, src: *const u8, len: usize) {
    let head = src.align_offset(8).min(len);
    let mut from = src.cast_mut();
    let mut to = dst;
    let mut left = len;
    for _ in 0..head {
        // SAFETY: `from` is within the caller's source range, `to` within the destination.
        unsafe { to.write(AtomicU8::from_ptr(from).load(Ordering::Relaxed)) };
        from = from.wrapping_add(1);
        to = to.wrapping_add(1);
    }
    left -= head;
    // Four words per round: the loads are independent, so the CPU overlaps them.
    while left >= 32 {
        // SAFETY: `from` is 8-aligned here and 32 bytes of both ranges remain; `to` may be
        // unaligned, hence `write_unaligned`.
        unsafe {
            let f = from.cast::<u64>();
            let a = AtomicU64::from_ptr(f).load(Ordering::Relaxed);
            let b = AtomicU64::from_ptr(f.add(1)).load(Ordering::Relaxed);
            let c = AtomicU64::from_ptr(f.add(2)).load(Ordering::Relaxed);
            let d = AtomicU64::from_ptr(f.add(3)).load(Ordering::Relaxed);
            let t = to.cast::<u64>();
            t.write_unaligned(a);
            t.add(1).write_unaligned(b);
            t.add(2).write_unaligned(c);
            t.add(3).write_unaligned(d);
        }
        from = from.wrapping_add(32);
        to = to.wrapping_add(32);
        left -= 32;
    }
    while left >= 8 {
        // SAFETY: `from` is 8-aligned here and 8 bytes of both ranges remain; `to` may be
        // unaligned, hence `write_unaligned`.
        unsafe {
            let v = AtomicU64::from_ptr(from.cast()).load(Ordering::Relaxed);
            to.cast::<u64>().write_unaligned(v);
        }
        from = from.wrapping_add(8);
        to = to.wrapping_add(8);
        left -= 8;
    }
    for _ in 0..left {
        // SAFETY: as for the first bytes.
        unsafe { to.write(AtomicU8::from_ptr(from).load(Ordering::Relaxed)) };
        from = from.wrapping_add(1);
        to = to.wrapping_add(1);
    }
}

/// Asks the CPU to fetch the cache line holding `addr`, for reading (`prefetcht0`), or with
/// the intent to write it (`prefetchw`: the line arrives exclusive, so the stores that follow
/// need no second transfer). A hint only: a prefetch never faults, whatever the address (an
/// unmapped or truncated page is simply not fetched), and changes no memory, so `addr` is a
/// plain integer that is never dereferenced. Elsewhere than x86-64, and under Miri, nothing.
#[inline(always)]
pub fn prefetch(addr: usize, write: bool) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `prefetcht0` and `prefetchw` read no memory architecturally, cannot fault, touch
    // no register but the address operand and no flags (`prefetchw` decodes as a no-op on
    // x86-64 processors without it).
    unsafe {
        if write {
            core::arch::asm!("prefetchw [{}]", in(reg) addr, options(nostack, preserves_flags, readonly));
        } else {
            core::arch::asm!("prefetcht0 [{}]", in(reg) addr, options(nostack, preserves_flags, readonly));
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = (addr, write);
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

    #[test]
    fn long_copies_round_trip_at_every_page_offset_class() {
        // Offsets of the destination relative to the source (modulo 4096) inside and outside
        // the window where `rep movsb` is slow, so both the string copy and the vector loop
        // (with its word-loop tail) run, for lengths that are and are not multiples of 64.
        // A fresh buffer per copy, as in the test below (Miri and mixed-size atomics).
        let lens: &[usize] = if cfg!(miri) {
            &[64, 1031]
        } else {
            &[64, 100, 1024, 1031, 4096 + 7]
        };
        for &len in lens {
            for delta in [0usize, 1, 8, 16, 63, 64, 100, 2048, 4095] {
                let mut shared = vec![0u64; 3 * 4096 / 8];
                let base = shared.as_mut_ptr().cast::<u8>();
                let src: Vec<u8> = (0..len).map(|i| (i * 13 + delta) as u8).collect();
                let at = base.wrapping_add(delta);
                // SAFETY: `shared` has 12 KiB; `delta + len < 12 KiB`; it is accessed only
                // through these copies.
                unsafe { store_bytes(at, &src) };
                let mut back = vec![0u8; len + 4096];
                let to = back.as_mut_ptr().wrapping_add(delta);
                // SAFETY: as above; `back` has room for `len` bytes at `delta < 4096`.
                unsafe { load_bytes(to, at, len) };
                assert_eq!(&back[delta..delta + len], &src[..], "len {len} delta {delta}");
            }
        }
    }

    #[test]
    fn byte_copies_of_every_length_round_trip() {
        // A fresh buffer per copy: Miri's weak-memory emulation cannot follow one location
        // accessed by atomics of different sizes (here `AtomicU8` at one start offset,
        // `AtomicU64` at another), even when the accesses are ordered, as they are in the
        // queues (the slot protocol orders consecutive messages of a cell).
        for start in 0..9 {
            for len in (0..=(8 * 40 - 9)).step_by(if cfg!(miri) { 7 } else { 1 }) {
                let mut shared = [0u64; 40];
                let base = (&raw mut shared).cast::<u8>();
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let at = base.wrapping_add(start);
                // SAFETY: `shared` is 320 bytes; `start + len <= 320`; it is accessed only
                // through these copies.
                unsafe { store_bytes(at, &src) };
                let mut back = vec![0u8; len + 1];
                // SAFETY: as above; `back` has room for `len` bytes at offset 1 (unaligned).
                unsafe { load_bytes(back.as_mut_ptr().add(1), at, len) };
                assert_eq!(&back[1..], &src[..]);
            }
        }
    }

    #[test]
    fn long_copies_at_every_alignment_touch_only_their_range() {
        for start in 0..9 {
            // (Miri, which runs the word loops, is slow enough without the 64 KiB case.)
            let lens: &[usize] = if cfg!(miri) {
                &[255, 256, 777]
            } else {
                &[255, 256, 1023, 1024, 4093, 65536]
            };
            for &len in lens {
                let mut shared = vec![0xAAAA_AAAA_AAAA_AAAAu64; (len + 32) / 8];
                let base = shared.as_mut_ptr().cast::<u8>();
                let src: Vec<u8> = (0..len).map(|i| (i * 13 + start) as u8).collect();
                let at = base.wrapping_add(start);
                // SAFETY: `shared` holds `len + 25..=len + 32` bytes and `start + len <= len + 8`;
                // it is accessed only through these copies and the reads below.
                unsafe { store_bytes(at, &src) };
                let mut back = vec![0u8; len];
                // SAFETY: as above; `back` is private and has room for `len` bytes.
                unsafe { load_bytes(back.as_mut_ptr(), at, len) };
                assert_eq!(back, src);
                let bytes: &[u8] = bytemuck::cast_slice(&shared);
                assert!(bytes[..start].iter().chain(&bytes[start + len..]).all(|&b| b == 0xAA));
            }
        }
    }
}

#[cfg(all(test, not(miri)))]
mod speed {
    #[test]
    #[ignore = "prints timings; run with --release -- --ignored"]
    fn copy_speed_at_page_offsets() {
        use std::hint::black_box;
        use std::time::Instant;
        // Destination offsets after the source, modulo 4096: inside the window where `rep
        // movsb` is slow on AMD Zen 3 (0, 16) and outside it (80, 2048).
        let mut shared = vec![0u64; 3 * 65536 / 8];
        let mut private = vec![0u8; 3 * 65536];
        let base = shared.as_mut_ptr().cast::<u8>();
        let mine = private.as_mut_ptr();
        // Align both to a page, so that the deltas are exact.
        let base = base.wrapping_add(base.align_offset(4096));
        let mine = mine.wrapping_add(mine.align_offset(4096));
        for len in [1024usize, 4096, 65536] {
            let n = (50_000_000 / len) as u32;
            for delta in [0usize, 16, 80, 2048] {
                let at = base.wrapping_add(delta);
                let src = vec![7u8; len];
                let t = Instant::now();
                for _ in 0..n {
                    // A store from `mine` to `at`: `at - mine` is `delta` modulo 4096.
                    // SAFETY: both buffers hold `len + delta` bytes past these pointers.
                    unsafe { super::store_bytes(black_box(at), std::slice::from_raw_parts(black_box(mine), len)) };
                }
                let st = t.elapsed() / n;
                let t = Instant::now();
                for _ in 0..n {
                    // A load from `mine` (as the shared side) to `at`.
                    // SAFETY: as above.
                    unsafe { super::load_bytes(black_box(at), black_box(mine), len) };
                }
                let ld = t.elapsed() / n;
                black_box(&src);
                println!(
                    "{len:6} B, destination {delta:4} B after the source mod 4096: store_bytes {st:?}, load_bytes {ld:?}"
                );
            }
        }
    }

    /// The three ways to copy: word loops, the vector loop (then words for the rest) and
    /// `rep movsb`.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[derive(Clone, Copy, Debug)]
    enum Method {
        Words,
        Vector,
        String,
    }

    /// Copies `len` bytes from `src` to `dst` with `how`, as a store (`store`) or a load.
    ///
    /// # Safety
    /// As [`super::store_bytes`] and [`super::load_bytes`].
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    unsafe fn copy_with(how: Method, store: bool, dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller's contract; the vector loop only where the CPU has AVX.
        unsafe {
            match how {
                Method::String => super::string_copy(dst, src, len),
                Method::Vector | Method::Words => {
                    let done = if matches!(how, Method::Vector) && std::arch::is_x86_feature_detected!("avx") {
                        super::vector_copy(dst, src, len)
                    } else {
                        0
                    };
                    let (d, s) = (dst.wrapping_add(done), src.wrapping_add(done));
                    if store {
                        super::store_words(d, std::slice::from_raw_parts(s, len - done));
                    } else {
                        super::load_words(d, s, len - done);
                    }
                }
            }
        }
    }

    /// Every method, whichever this CPU's choice is, copies exactly its range both ways, at
    /// page offsets inside and outside the aliasing window and at lengths that are and are
    /// not multiples of 64.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    fn every_method_copies_exactly_its_range() {
        for how in [Method::Words, Method::Vector, Method::String] {
            for len in [128usize, 200, 1024, 1031, 65536 + 7] {
                for delta in [0usize, 5, 16, 100, 2048] {
                    let mut shared = vec![0xAAAA_AAAA_AAAA_AAAAu64; (len + 8192) / 8];
                    let base = shared.as_mut_ptr().cast::<u8>();
                    let src: Vec<u8> = (0..len).map(|i| (i * 13 + delta) as u8).collect();
                    let at = base.wrapping_add(delta);
                    // SAFETY: `shared` holds `len + 8192` bytes and `delta < 4096`; it is
                    // accessed only through these copies and the reads below.
                    unsafe { copy_with(how, true, at, src.as_ptr(), len) };
                    let mut back = vec![0u8; len + 4096];
                    let to = back.as_mut_ptr().wrapping_add(delta);
                    // SAFETY: as above; `back` has room for `len` bytes at `delta`.
                    unsafe { copy_with(how, false, to, at, len) };
                    assert_eq!(&back[delta..delta + len], &src[..], "{how:?} len {len} delta {delta}");
                    let bytes: &[u8] = bytemuck::cast_slice(&shared);
                    assert!(
                        bytes[..delta].iter().chain(&bytes[delta + len..]).all(|&b| b == 0xAA),
                        "{how:?} len {len} delta {delta} wrote outside its range"
                    );
                }
            }
        }
    }

    /// Prints the time of each copy method per size and page offset, on one core with hot
    /// buffers (`crates/shmproc-bench/README.md`, "Per microarchitecture", has the figures, and
    /// why [`REP_MIN`] and [`choose_long_copy`] follow the cross-process rows instead).
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    #[ignore = "prints timings; run with --release -- --ignored"]
    fn copy_methods_by_size() {
        use std::hint::black_box;
        use std::time::Instant;
        let mut a = vec![0u8; 2 * 262144];
        let mut b = vec![0u8; 2 * 262144];
        let pa = a.as_mut_ptr();
        let pb = b.as_mut_ptr();
        let pa = pa.wrapping_add(pa.align_offset(4096));
        let pb = pb.wrapping_add(pb.align_offset(4096));
        println!("size  dst-src mod 4096: store words / vector / rep movsb; load words / vector / rep movsb (ns)");
        for len in [64usize, 96, 128, 256, 512, 1024, 4096, 16384, 32768, 65536, 262144] {
            for delta in [0usize, 16, 80, 2048] {
                let dst = pa.wrapping_add(delta);
                let mut line = format!("{len:6} B {delta:5}:");
                for store in [true, false] {
                    for how in [Method::Words, Method::Vector, Method::String] {
                        let n = (20_000_000 / len).max(200) as u32;
                        // Best of three, to skip a descheduled run.
                        let mut best = u128::MAX;
                        for _ in 0..3 {
                            let t = Instant::now();
                            for _ in 0..n {
                                // SAFETY: both buffers hold `len + delta` bytes past these
                                // pointers, and are private to this test.
                                unsafe { copy_with(how, store, black_box(dst), black_box(pb), len) };
                            }
                            best = best.min(t.elapsed().as_nanos() * 10 / u128::from(n));
                        }
                        line += &format!(" {:>7.1}", best as f64 / 10.0);
                    }
                    line += if store { " ;" } else { "" };
                }
                println!("{line}");
            }
        }
    }

    #[test]
    #[ignore = "prints timings; run with --release -- --ignored"]
    fn copy_speed_against_memcpy() {
        use std::hint::black_box;
        use std::time::Instant;
        let n = 20_000;
        let mut shared = vec![0u64; 8192];
        let src = vec![7u8; 65536];
        let mut dst = vec![0u8; 65536];
        let base = shared.as_mut_ptr().cast::<u8>();
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: 64 KiB buffers, private to this test.
            unsafe { super::store_bytes(black_box(base), black_box(&src)) };
        }
        let st = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: as above.
            unsafe { super::load_bytes(black_box(dst.as_mut_ptr()), black_box(base), 65536) };
        }
        let ld = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            black_box(&mut dst).copy_from_slice(black_box(&src));
        }
        let mc = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: as above.
            let v: [[u8; 1024]; 64] = unsafe { super::load(black_box(base.cast::<[[u8; 1024]; 64]>())) };
            black_box(&v);
        }
        let pod = t.elapsed() / n;
        println!("64 KiB: store_bytes {st:?}, load_bytes {ld:?}, memcpy {mc:?}, Pod load {pod:?}");
        let m = 10_000_000u32;
        let t = Instant::now();
        for _ in 0..m {
            // SAFETY: as above.
            let v: [u8; 64] = unsafe {
                atomic_memcpy::atomic_load(black_box(base.cast::<[u8; 64]>()), std::sync::atomic::Ordering::Relaxed)
                    .assume_init()
            };
            black_box(&v);
        }
        let am = t.elapsed() / m;
        let t = Instant::now();
        for _ in 0..m {
            let mut v = [0u8; 64];
            // SAFETY: as above.
            unsafe { super::load_bytes(v.as_mut_ptr(), black_box(base), 64) };
            black_box(&v);
        }
        let lb = t.elapsed() / m;
        println!("64 B: atomic-memcpy load {am:?}, load_bytes {lb:?}");
    }
}
