//! `Barrier`: a named barrier of N parties (Python's `multiprocessing.Barrier`),
//! `raw::barrier` in a segment, which breaks instead of hanging when a party dies.

use super::{Prim, Shape, opening};
use crate::error::{BarrierError, OpenError};
use crate::options::Options;
use crate::raw::Liveness;
use crate::raw::barrier::{BarrierFailure, BarrierState, Party};
use crate::segment::header::Kind;
use std::time::{Duration, Instant};

/// Most parties a barrier may have (the arrival count's width).
pub const MAX_PARTIES: u32 = 0xFFFF;

pub(crate) const SHAPE: Shape = Shape {
    kind: Kind::Barrier,
    rec_size: core::mem::size_of::<Party>() as u64,
    count_ok: |c| c >= 1 && c <= MAX_PARTIES as u64,
};

/// A barrier shared between processes under a name, like Python's
/// `multiprocessing.Barrier(parties)`: [`wait`](Barrier::wait) returns once `parties` calls
/// of it (in any processes) have arrived, and one of them is told it is the leader.
///
/// **Deaths break it instead of hanging it.** Every handle counts as a party: a waiter looks
/// at the other handles once per re-check slice (10 ms), and if one whose process died (or
/// ended without dropping its handle) has not arrived in the waiter's generation, the barrier
/// breaks and every waiter gets [`BarrierError::Broken`] (Python's waiters wait for ever). A
/// timed-out waiter breaks it too, as in Python. A broken barrier fails every `wait` until
/// [`reset`](Barrier::reset), which also forgets the dead parties, so the survivors and
/// their replacements can use it again. Open a handle only in processes that take part: a
/// handle that never waits but dies breaks the barrier for the others.
///
/// ```
/// # let name = format!("doc-barrier-{}", std::process::id());
/// use shmproc::Barrier;
/// let b = Barrier::create(&name, 1)?; // 1 party: wait returns at once
/// assert!(b.wait()?.is_leader());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Barrier {
    prim: Prim,
}

opening!(Barrier, SHAPE, Barrier::joined, prim);

/// What [`Barrier::wait`] returns: whether this party was the leader (the last to arrive),
/// and its arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult {
    index: u32,
    leader: bool,
}

impl BarrierWaitResult {
    /// Whether this party arrived last and so opened the next generation (as
    /// `std::sync::BarrierWaitResult::is_leader`). Exactly one party per generation is.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The arrival order in its generation, `0..parties` (Python's return value of `wait`).
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl Barrier {
    fn joined(prim: Prim) -> Barrier {
        let b = Barrier { prim };
        b.state().join(b.parties_records(), b.prim.segment().me());
        b
    }

    /// Creates the barrier `name` for `parties` parties. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidSize` for 0 parties or more than [`MAX_PARTIES`]; `InvalidName`,
    /// `AlreadyExists`, `NoSpace`, `Io`.
    pub fn create(name: &str, parties: u32) -> Result<Self, OpenError> {
        Self::create_with(name, parties, &Options::new())
    }

    /// [`create`](Barrier::create) with options.
    ///
    /// # Errors
    /// As [`create`](Barrier::create).
    pub fn create_with(name: &str, parties: u32, opts: &Options) -> Result<Self, OpenError> {
        check_parties(parties)?;
        Ok(Self::joined(Prim::create(
            name,
            &SHAPE,
            u64::from(parties),
            opts,
            &|_| {},
        )?))
    }

    /// Opens `name`, or creates it for `parties` if it does not exist (race-free among
    /// processes). An existing barrier keeps its own number of parties.
    ///
    /// # Errors
    /// As [`create`](Barrier::create) and [`open`](Barrier::open).
    pub fn open_or_create(name: &str, parties: u32) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, parties, &Options::new())
    }

    /// [`open_or_create`](Barrier::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Barrier::open_or_create).
    pub fn open_or_create_with(name: &str, parties: u32, opts: &Options) -> Result<Self, OpenError> {
        check_parties(parties)?;
        Ok(Self::joined(Prim::open_or_create(
            name,
            &SHAPE,
            u64::from(parties),
            opts,
            &|_| {},
        )?))
    }

    #[inline]
    fn state(&self) -> &BarrierState {
        self.prim.state()
    }

    #[inline]
    fn parties_records(&self) -> &[Party] {
        self.prim.records()
    }

    /// Waits until all parties have arrived.
    ///
    /// # Errors
    /// [`BarrierError::Broken`]: see the type's docs.
    pub fn wait(&self) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_inner(None)
    }

    /// [`wait`](Barrier::wait) for at most `timeout`.
    ///
    /// # Errors
    /// [`BarrierError::Timeout`] (and the barrier is broken for the others), or
    /// [`BarrierError::Broken`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_inner(crate::raw::deadline_after(timeout))
    }

    fn wait_inner(&self, deadline: Option<Instant>) -> Result<BarrierWaitResult, BarrierError> {
        let seg = self.prim.segment();
        outcome(
            self.state()
                .wait(self.parties_records(), self.parties(), deadline, seg, seg),
        )
    }

    /// [`wait`](Barrier::wait) in async form (feature `tokio`): the task waits on this
    /// handle's doorbell, registered with the tokio reactor, and costs no thread. It
    /// arrives when first polled, then looks at the other parties (and breaks the barrier
    /// if one died before arriving) each time it is woken, at least every 10 ms.
    ///
    /// Not cancel safe, by design: once polled the party has arrived and is counted in its
    /// generation, so dropping the future before the generation ends breaks the barrier (as
    /// a timed-out wait does; the others get [`BarrierError::Broken`] rather than waiting for
    /// a party that will not come). A future dropped after its generation completed, or
    /// before its first poll, changes nothing.
    ///
    /// # Errors
    /// As [`wait`](Barrier::wait).
    #[cfg(feature = "tokio")]
    pub async fn wait_async(&self) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_async_inner(None).await
    }

    /// [`wait_timeout`](Barrier::wait_timeout) in async form (feature `tokio`); a timeout
    /// breaks the barrier for the others as the blocking form does. Cancellation as
    /// [`wait_async`](Barrier::wait_async).
    ///
    /// # Errors
    /// As [`wait_timeout`](Barrier::wait_timeout).
    #[cfg(feature = "tokio")]
    pub async fn wait_timeout_async(&self, timeout: Duration) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_async_inner(crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn wait_async_inner(&self, deadline: Option<Instant>) -> Result<BarrierWaitResult, BarrierError> {
        use crate::raw::barrier::Arrived;
        let seg = self.prim.segment();
        let st = self.state();
        let recs = self.parties_records();
        // `arrive` once; only the waiting half is re-attempted.
        let t = match st.arrive(recs, self.parties(), deadline, seg, seg) {
            Ok(Arrived::Passed(a)) => return outcome(Ok(a)),
            Ok(Arrived::Waiting(t)) => t,
            Err(e) => return outcome(Err(e)),
        };
        // Counted from here: a drop before the generation ends gives up, which breaks it.
        let gone = GiveUpOnDrop { st, t, seg };
        let r = seg
            .wait_async(
                deadline,
                || st.check(recs, t, seg, seg),
                || st.announce(),
                |()| st.depart(),
            )
            .await;
        std::mem::forget(gone);
        outcome(r.unwrap_or_else(|| st.give_up(t, seg)))
    }

    /// Breaks the barrier: current and later waiters get [`BarrierError::Broken`] until
    /// [`reset`](Barrier::reset) (Python's `abort()`).
    pub fn abort(&self) {
        self.state().abort(self.prim.segment());
    }

    /// Returns the barrier to its empty state: whoever waits now gets
    /// [`BarrierError::Broken`], later waits start a fresh generation, and dead parties are
    /// forgotten (Python's `reset()`).
    pub fn reset(&self) {
        let seg = self.prim.segment();
        self.state().reset(self.parties_records(), seg, seg);
    }

    /// The number of parties a generation needs.
    pub fn parties(&self) -> u32 {
        self.prim.count() as u32
    }

    /// Parties waiting now (Python's `n_waiting`).
    pub fn n_waiting(&self) -> u32 {
        self.state().peek().arrived
    }

    /// Whether the barrier is broken (Python's `broken`).
    pub fn is_broken(&self) -> bool {
        self.state().peek().broken
    }
}

impl Drop for Barrier {
    fn drop(&mut self) {
        self.state().leave(self.parties_records(), self.prim.segment().me());
    }
}

/// The public shape of a raw wait's result.
fn outcome(r: Result<crate::raw::barrier::Arrival, BarrierFailure>) -> Result<BarrierWaitResult, BarrierError> {
    match r {
        Ok(a) => Ok(BarrierWaitResult {
            index: a.index,
            leader: a.leader,
        }),
        Err(BarrierFailure::Broken) => Err(BarrierError::Broken),
        Err(BarrierFailure::Timeout) => Err(BarrierError::Timeout),
    }
}

/// An async waiter that arrived: when its future is dropped mid-wait, it gives up (breaks
/// the generation unless it ended), as a timed-out wait does.
#[cfg(feature = "tokio")]
struct GiveUpOnDrop<'a> {
    st: &'a BarrierState,
    t: crate::raw::barrier::Ticket,
    seg: &'a crate::segment::Segment,
}

#[cfg(feature = "tokio")]
impl Drop for GiveUpOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.st.give_up(self.t, self.seg);
    }
}

fn check_parties(parties: u32) -> Result<(), OpenError> {
    if parties == 0 || parties > MAX_PARTIES {
        return Err(OpenError::InvalidSize {
            what: format!("a barrier needs 1..={MAX_PARTIES} parties, not {parties}"),
        });
    }
    Ok(())
}
