//! The one place that names atomics, so that the raw algorithms run unchanged under `loom`.
//!
//! Production code gets `core::sync::atomic`; `RUSTFLAGS="--cfg loom"` swaps in loom's
//! model-checked types. Shared-memory layouts are built from these types, so under loom the
//! same `#[repr(C)]` structs are simply allocated on the heap by the tests.

#[cfg(not(loom))]
#[allow(unused_imports)]
pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
#[allow(unused_imports)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// A hint to the CPU (or to loom's scheduler) that we are spinning.
#[inline]
pub fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
