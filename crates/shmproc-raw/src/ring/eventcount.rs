//! The eventcount each side of the ring sleeps on until the other side changes something.

use super::{ATTEMPTS, sc_fence_under_loom};
use crate::Wait;
use crate::primitive::{AtomicU32, Ordering, fence};

/// An eventcount: how one side of the ring sleeps until the other side changes something.
///
/// | word       | meaning                                                                    |
/// |------------|----------------------------------------------------------------------------|
/// | `seq`      | bit 0 *armed*: a sleeper waits on this value; bits 1..32 a wrapping count  |
/// | `sleepers` | number of announced sleepers (wrapping); 0 lets wakers skip everything     |
///
/// A sleeper announces itself (`sleepers += 1`), fences, arms `seq` (even -> odd), re-checks
/// its condition, then waits while `seq` is unchanged. A waker changes the state, reads
/// `sleepers`, and only if it is nonzero and `seq` is armed, disarms it (odd `v` -> `v + 1`)
/// and, if that CAS won, wakes: one system call per sleep episode. A scribbled or leaked
/// count (a sleeper killed while asleep) costs at most one spurious wake; a lost wake-up is
/// bounded by [`Wait`]'s re-check slice.
#[repr(C)]
pub struct EventCount {
    pub(super) seq: AtomicU32,
    pub(super) sleepers: AtomicU32,
}

impl EventCount {
    pub(super) fn new() -> EventCount {
        EventCount {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Announces a sleeper and returns the `seq` to wait on. The caller must re-check its
    /// condition after this and call [`EventCount::depart`] when done.
    ///
    /// The low bit of `seq` is the *armed* bit: a sleeper sets it before it re-checks and
    /// waits on the odd value; a waker makes the futex call only when it clears the bit
    /// (odd `v` -> `v + 1`). So each sleep episode costs at most one wake system call, even
    /// while the sleeper has not yet run to `depart` (without the bit, every put would call
    /// futex_wake while a woken consumer waits for the CPU: a wake storm), and a sleeper
    /// killed while asleep costs one extra wake, not one per operation forever.
    pub(super) fn announce(&self) -> u32 {
        // Dekker with `wake`: our `sleepers` RMW and arming CAS, then a SeqCst fence, precede
        // the re-check; the waker's state change precedes its `sleepers` and `seq` loads (all
        // SeqCst). In S either the waker sees us armed, or our re-check sees its change.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut s = self.seq.load(Ordering::SeqCst);
        // Bounded: each failure means a peer changed `seq` (a wake happened); a hostile
        // peer toggling it only costs us a spurious, slice-bounded wait.
        for _ in 0..ATTEMPTS {
            if s & 1 != 0 {
                break;
            }
            match self.seq.compare_exchange(s, s | 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    s |= 1;
                    break;
                }
                Err(x) => s = x,
            }
        }
        // After the arming CAS, before the caller's re-check (which may use weaker loads):
        // the pair of this fence and the waker's is what orders "armed" against "changed".
        fence(Ordering::SeqCst);
        s
    }

    pub(super) fn depart(&self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes sleepers, if any armed the sequence word. Call after a SeqCst state change.
    pub(super) fn wake<W: Wait + ?Sized>(&self, wait: &W) {
        if self.has_sleepers() {
            self.wake_armed(wait);
        }
    }

    /// Whether a sleeper has announced itself. Call after a SeqCst state change (the hot paths
    /// call it right after their claim CAS and act on the answer after their plain-store
    /// publish or release; see "Wake-ups" in the ring's module docs).
    #[inline]
    pub(super) fn has_sleepers(&self) -> bool {
        sc_fence_under_loom();
        // Partner: the `sleepers` RMW + fence + arming CAS in `announce`.
        self.sleepers.load(Ordering::SeqCst) != 0
    }

    /// The second half of [`EventCount::wake`]: disarm `seq` if a sleeper armed it, and wake.
    #[cold]
    pub(super) fn wake_armed<W: Wait + ?Sized>(&self, wait: &W) {
        let s = self.seq.load(Ordering::SeqCst);
        // Only the waker that disarms makes the system call.
        if s & 1 != 0
            && self
                .seq
                .compare_exchange(s, s.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            wait.wake_all(&self.seq);
        }
    }

    /// Wakes every sleeper without trusting `sleepers` (close: rare, and must reach all).
    pub(super) fn wake_always<W: Wait + ?Sized>(&self, wait: &W) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        wait.wake_all(&self.seq);
    }
}

/// Under loom only: the conservative wake-up after a publish or release store (a SeqCst fence,
/// then [`EventCount::wake`]), so that blocked calls can always sleep instead of polling.
///
/// Loom cannot explore polling loops: it lets every re-read of a word return the stale value
/// again, so a poller's schedules never end (loom stops with "exceeded maximum number of
/// branches"). The production rule, sleepers read right after the claim CAS and pollers for
/// a peer mid-copy, rests on the `S` argument in "Wake-ups" (the ring's module docs); loom
/// checks everything else (stores, index moves, scans) with this stand-in.
pub(super) fn wake_after_store<W: Wait + ?Sized>(ec: &EventCount, wait: &W) {
    fence(Ordering::SeqCst);
    ec.wake(wait);
}
