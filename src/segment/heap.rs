//! Heap backing for segments (the `testing` feature only): the header, participant table and
//! body of a `/dev/shm` segment, written and validated by the same code, in one zeroed,
//! page-aligned heap allocation that the handles of one process share.
//!
//! Liveness beacons are bits here instead of OFD locks: a handle holds its bit from
//! registration until it deregisters, and a handle that "crashes"
//! (`Segment::simulate_crash`) drops its bit without deregistering, as the kernel drops a
//! killed process's OFD locks. Waiting sleeps in short slices instead of using a futex. No
//! system call is made, which is what lets Miri run the public types on this backing.

use super::backing::Backing;
use super::header::{self, INIT_READY};
use super::open::{init_state, read_header, write_and_publish};
use super::participants::{BEACON_BASE, Beacons};
use super::{Options, Segment, Spec};
use crate::error::OpenError;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::raw::{MAX_PARTICIPANTS, Wait};
use std::alloc::Layout;
use std::io;
use std::time::{Duration, Instant};

/// Alignment of the allocation: a page, as `mmap` gives (`header::MAX_ALIGN`).
const PAGE: usize = super::header::MAX_ALIGN as usize;

/// A zeroed, page-aligned allocation laid out like a segment, plus its beacon bits.
pub(crate) struct HeapMem {
    /// From `alloc_zeroed`: every access goes through pointers derived from this one (never
    /// from a reference), so atomics through them are fine under Stacked and Tree Borrows.
    base: *mut u8,
    layout: Layout,
    /// Bit `i % 64` of word `i / 64`: participant `i`'s beacon is held.
    beacons: Box<[AtomicU64]>,
}

// SAFETY: the allocation is owned by this value and accessed only through atomics and
// byte-wise atomic copies (as a shared mapping is); the beacons are atomics.
unsafe impl Send for HeapMem {}
// SAFETY: as above.
unsafe impl Sync for HeapMem {}

impl HeapMem {
    /// `len` zero bytes (at least 1), page-aligned.
    pub(crate) fn new(len: usize) -> HeapMem {
        let layout = match Layout::from_size_align(len.max(1), PAGE) {
            Ok(l) => l,
            Err(e) => panic!("heap segment of {len} bytes: {e}"),
        };
        // SAFETY: `layout` has a non-zero size.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        if base.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let words = (MAX_PARTICIPANTS as usize).div_ceil(64);
        HeapMem {
            base,
            layout,
            beacons: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Start of the allocation (where the header goes).
    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }

    /// Size of the allocation in bytes (the "file size" the header is validated against).
    pub(crate) fn len(&self) -> u64 {
        self.layout.size() as u64
    }

    /// Word and bit of the beacon at `offset`, `None` for offsets that name no participant.
    fn bit(&self, offset: u64) -> Option<(&AtomicU64, u64)> {
        let i = offset.checked_sub(BEACON_BASE)?;
        let word = self.beacons.get(usize::try_from(i / 64).ok()?)?;
        Some((word, 1 << (i % 64)))
    }
}

impl Drop for HeapMem {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed(layout)` and is freed once, here.
        unsafe { std::alloc::dealloc(self.base, self.layout) }
    }
}

/// Beacon bits. "Somebody else" cannot be told from ourselves here, but no caller asks about
/// its own beacon (`participants::is_alive` answers for `me` first).
impl Beacons for HeapMem {
    fn try_lock(&self, offset: u64) -> io::Result<bool> {
        Ok(self
            .bit(offset)
            .is_some_and(|(w, b)| w.fetch_or(b, Ordering::SeqCst) & b == 0))
    }

    fn unlock(&self, offset: u64) {
        if let Some((w, b)) = self.bit(offset) {
            w.fetch_and(!b, Ordering::SeqCst);
        }
    }

    fn is_held(&self, offset: u64) -> io::Result<bool> {
        Ok(self.bit(offset).is_some_and(|(w, b)| w.load(Ordering::SeqCst) & b != 0))
    }
}

/// Longest sleep of one [`Sleep::wait`]; callers re-check their condition after each.
const SLICE: Duration = Duration::from_micros(100);

/// [`Wait`] for heap segments: sleeps a short slice while the word is unchanged. Wakers do
/// nothing; sleepers notice within a slice. Miri runs `thread::sleep` on its virtual clock.
pub(crate) struct Sleep;

impl Wait for Sleep {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        if word.load(Ordering::Acquire) != expected {
            return;
        }
        let mut slice = SLICE;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            slice = slice.min(left);
        }
        std::thread::sleep(slice);
    }

    fn wake_all(&self, _word: &AtomicU32) {}

    fn pause(&self, round: u32, deadline: Option<Instant>) {
        crate::os::pause(round, deadline);
    }
}

/// Heap-backed segments and simulated deaths, for the conformance suite
/// (`tests/conformance/`, through `crate::testing`).
impl Segment {
    /// A segment on the heap: laid out, initialised (`init` on the body) and published like a
    /// created `/dev/shm` segment, then validated and registered in like an opened one.
    pub(crate) fn heap(
        spec: &Spec<'_>,
        count: u64,
        opts: &Options,
        init: &dyn Fn(*mut u8),
    ) -> Result<Segment, OpenError> {
        let body =
            (spec.body_size)(count, spec.desc.size, opts.participants).ok_or_else(|| OpenError::InvalidSize {
                what: format!("element count {count} is out of range"),
            })?;
        let layout = header::Layout::compute(opts.participants, spec.desc.align, body)
            .map_err(|what| OpenError::InvalidSize { what })?;
        let mem = std::sync::Arc::new(HeapMem::new(layout.total_size as usize));
        // SAFETY: a fresh, zeroed, page-aligned allocation of `total_size` bytes.
        unsafe { write_and_publish(mem.base(), spec, count, opts, &layout, init) };
        Segment::heap_attach(mem, spec)
    }

    /// Another handle on the heap segment `mem`: checks and copies its header as `open` does.
    fn heap_attach(mem: std::sync::Arc<HeapMem>, spec: &Spec<'_>) -> Result<Segment, OpenError> {
        let base = mem.base();
        // SAFETY: the allocation is at least HEADER_SIZE bytes (validated below) and lives as
        // long as `mem`.
        if unsafe { init_state(base) }.load(Ordering::Acquire) != INIT_READY {
            return Err(OpenError::corrupted("heap segment not initialised"));
        }
        // SAFETY: as above; page-aligned.
        let h = unsafe { read_header(base) };
        let layout = header::validate(&h, mem.len(), &spec.desc, spec.body_size)?;
        Segment::finish(
            base,
            Backing::Heap(mem),
            layout,
            (h.count, h.elem_size),
            h.participants,
            "heap",
            String::new(),
            (0, false),
            None,
        )
    }

    /// A second handle on the same segment, as another process would have: opened by name on
    /// `/dev/shm` (its own descriptor, so its own OFD beacon), attached on the heap.
    pub(crate) fn peer(&self, spec: &Spec<'_>) -> Result<Segment, OpenError> {
        match &self.backing {
            Backing::Shm { .. } => Segment::open(&self.name, spec, &Options::new()),
            Backing::Heap(mem) => Segment::heap_attach(mem.clone(), spec),
            Backing::Crashed => unreachable!("simulate_crash consumes the handle"),
        }
    }

    /// Drops this handle the way SIGKILL ends a process: no deregistration and no unlink; its
    /// beacon is released (on the heap by clearing its bit, on `/dev/shm` by closing its
    /// descriptor, which drops its OFD locks exactly as the kernel does at death), so peers
    /// find it dead. Its memory goes with its old backing; `Backing::Crashed` is only dropped.
    pub(crate) fn simulate_crash(mut self) {
        if let Backing::Heap(mem) = &self.backing {
            Beacons::unlock(&**mem, BEACON_BASE + u64::from(self.me.index()));
        }
        self.unlink_on_drop = false;
        self.backing = Backing::Crashed;
    }
}

#[cfg(test)]
mod tests {
    use super::super::header::{Kind, Layout, TypeDesc};
    use super::super::open::{init_state, read_header, write_and_publish};
    use super::super::{Options, Spec};
    use super::{HeapMem, INIT_READY};
    use crate::primitive::Ordering;

    /// An opener in the same process waits on `init_state` while its creator writes the
    /// header. The header copy must leave `init_state` out: covering it with 8-byte atomic
    /// stores while openers load it as 4 bytes is a mixed-size race, which Miri stops on
    /// (see `HEADER_REST` in `segment/open.rs`).
    #[test]
    fn an_opener_racing_its_creator_reads_a_whole_header() {
        let spec = Spec {
            desc: TypeDesc::of::<u64>(Kind::Value, 0),
            body_size: &|_, _, _| Some(72),
        };
        let opts = Options::new().participants(4);
        let layout = Layout::compute(4, 8, 72).unwrap();
        let mem = HeapMem::new(layout.total_size as usize);
        std::thread::scope(|s| {
            let opener = s.spawn(|| {
                let base = mem.base();
                // SAFETY: `mem` is `total_size` bytes and outlives the thread.
                let state = unsafe { init_state(base) };
                while state.load(Ordering::Acquire) != INIT_READY {
                    std::thread::yield_now();
                }
                // SAFETY: as above.
                let h = unsafe { read_header(base) };
                let desc = TypeDesc::of::<u64>(Kind::Value, 0);
                super::super::header::validate(&h, mem.len(), &desc, |_, _, _| Some(72)).unwrap()
            });
            // SAFETY: fresh, zeroed, page-aligned, `total_size` bytes.
            unsafe { write_and_publish(mem.base(), &spec, 1, &opts, &layout, &|_| {}) };
            assert_eq!(opener.join().unwrap(), layout);
        });
    }
}
