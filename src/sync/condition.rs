//! `Condition`: a named condition variable (Python's `multiprocessing.Condition`, Rust's
//! `std::sync::Condvar`), `raw::condvar` in a segment, used with the guard of any lock of the
//! crate.

use super::{Prim, Shape, opening};
use crate::array::{Array, ArrayGuard};
use crate::error::LockError;
use crate::error::OpenError;
use crate::lock::{Lock, LockGuard};
use crate::options::Options;
use crate::raw::condvar::CondState;
use crate::segment::header::Kind;
use crate::value::{LockResult, Value, ValueGuard};
use bytemuck::Pod;
use std::time::{Duration, Instant};

pub(crate) const SHAPE: Shape = Shape {
    kind: Kind::Condition,
    rec_size: 0,
    count_ok: |c| c == 1,
};

mod sealed {
    use crate::value::LockResult;

    /// A guard a condition can unlock while it sleeps and lock again after.
    pub trait Relock: Sized {
        /// What is left of the guard while unlocked: the lock itself.
        type Parked;
        /// Unlocks as dropping the guard does (a `Value`'s or `Array`'s changes are written
        /// back first).
        fn park(self) -> Self::Parked;
        /// Locks again, waiting as long as it takes.
        fn relock(parked: Self::Parked) -> LockResult<Self>;
        /// [`relock`](Relock::relock) in async form (feature `tokio`): the async lock of the
        /// guard's kind.
        #[cfg(feature = "tokio")]
        fn relock_async(parked: Self::Parked) -> impl Future<Output = LockResult<Self>>;
    }
}

/// A guard that a [`Condition`] can wait with: [`LockGuard`], [`ValueGuard`] or
/// [`ArrayGuard`] (sealed).
pub trait ConditionGuard: sealed::Relock {}

impl<'a> sealed::Relock for LockGuard<'a> {
    type Parked = &'a Lock;
    fn park(self) -> &'a Lock {
        LockGuard::park(self)
    }
    fn relock(lock: &'a Lock) -> LockResult<Self> {
        lock.lock()
    }
    #[cfg(feature = "tokio")]
    fn relock_async(lock: &'a Lock) -> impl Future<Output = LockResult<Self>> {
        lock.lock_async()
    }
}
impl ConditionGuard for LockGuard<'_> {}

impl<'a, T: Pod> sealed::Relock for ValueGuard<'a, T> {
    type Parked = &'a Value<T>;
    fn park(self) -> &'a Value<T> {
        ValueGuard::park(self)
    }
    fn relock(value: &'a Value<T>) -> LockResult<Self> {
        value.lock()
    }
    #[cfg(feature = "tokio")]
    fn relock_async(value: &'a Value<T>) -> impl Future<Output = LockResult<Self>> {
        value.lock_async()
    }
}
impl<T: Pod> ConditionGuard for ValueGuard<'_, T> {}

impl<'a, T: Pod> sealed::Relock for ArrayGuard<'a, T> {
    type Parked = &'a Array<T>;
    fn park(self) -> &'a Array<T> {
        ArrayGuard::park(self)
    }
    fn relock(array: &'a Array<T>) -> LockResult<Self> {
        array.lock()
    }
    #[cfg(feature = "tokio")]
    fn relock_async(array: &'a Array<T>) -> impl Future<Output = LockResult<Self>> {
        array.lock_async()
    }
}
impl<T: Pod> ConditionGuard for ArrayGuard<'_, T> {}

/// Whether a timed condition wait returned because its time ran out (as
/// `std::sync::WaitTimeoutResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout passed (no notify came).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable shared between processes under a name, like Python's
/// `multiprocessing.Condition` and Rust's `std::sync::Condvar`.
///
/// It is used with the guard of a [`Lock`], a [`Value`] or an [`Array`] that guards the
/// shared state the waiters wait on: [`wait`](Condition::wait) unlocks, sleeps until a
/// [`notify_one`](Condition::notify_one)/[`notify_all`](Condition::notify_all), and locks
/// again. All users of one condition must use it with the same lock, and change the state
/// they wait on only while holding it; then a waiter never misses a notify that follows its
/// wait (no lost wake-ups). As with `Condvar`, `wait` may also return without a notify
/// (spuriously): wait in a loop that checks the state, or use
/// [`wait_while`](Condition::wait_while). Here that happens in one more case: after a
/// `notify_one`, the other waiters return within 10 ms too (then find the state unchanged and
/// wait again), so that a notify whose woken waiter was killed before it relocked is not lost.
///
/// When the lock's holder died while a waiter slept, relocking gives the waiter
/// [`LockError::OwnerDied`] with its guard, as any locker gets. A waiter killed while it waits
/// costs the notifiers one wake-up system call per notify from then on, and nothing else.
///
/// ```
/// # let n = std::process::id();
/// use shmproc::{Condition, Value};
/// let ready = Value::create(&format!("doc-cv-v-{n}"), 0u32)?;
/// let cv = Condition::create(&format!("doc-cv-{n}"))?;
/// // The notifier, usually in another process:
/// *ready.lock().map_err(|e| e.without_guard())? = 1;
/// cv.notify_all();
/// // The waiter:
/// let guard = ready.lock().map_err(|e| e.without_guard())?;
/// let guard = cv.wait_while(guard, |g| **g == 0).map_err(|e| e.without_guard())?;
/// assert_eq!(*guard, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Condition {
    prim: Prim,
}

opening!(Condition, SHAPE, |prim| Condition { prim }, prim);

impl Condition {
    /// Creates the condition `name`. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `NoSpace`, `Io`.
    pub fn create(name: &str) -> Result<Self, OpenError> {
        Self::create_with(name, &Options::new())
    }

    /// [`create`](Condition::create) with options.
    ///
    /// # Errors
    /// As [`create`](Condition::create).
    pub fn create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Condition {
            prim: Prim::create(name, &SHAPE, 1, opts, &|_| {})?,
        })
    }

    /// Opens `name`, or creates it if it does not exist (race-free among processes).
    ///
    /// # Errors
    /// As [`create`](Condition::create) and [`open`](Condition::open).
    pub fn open_or_create(name: &str) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, &Options::new())
    }

    /// [`open_or_create`](Condition::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Condition::open_or_create).
    pub fn open_or_create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Condition {
            prim: Prim::open_or_create(name, &SHAPE, 1, opts, &|_| {})?,
        })
    }

    #[inline]
    fn state(&self) -> &CondState {
        self.prim.state()
    }

    /// One wait: count in, unlock, sleep until a notify or `deadline`, lock again. Returns
    /// whether a notify came since the count.
    fn wait_once<G: ConditionGuard>(&self, guard: G, deadline: Option<Instant>) -> (LockResult<G>, bool) {
        let st = self.state();
        let ticket = st.prepare();
        let parked = guard.park();
        st.sleep(ticket, deadline, self.prim.segment());
        let notified = st.notified_since(ticket);
        let r = G::relock(parked);
        st.done();
        (r, notified)
    }

    /// Unlocks `guard`'s lock, sleeps until notified (or spuriously), and locks it again.
    ///
    /// # Errors
    /// Those of locking again: [`LockError::OwnerDied`] with the guard when a holder died
    /// meanwhile, [`LockError::Unrecoverable`].
    pub fn wait<G: ConditionGuard>(&self, guard: G) -> LockResult<G> {
        self.wait_once(guard, None).0
    }

    /// [`wait`](Condition::wait) for at most `timeout`.
    ///
    /// # Errors
    /// As [`wait`](Condition::wait).
    pub fn wait_timeout<G: ConditionGuard>(&self, guard: G, timeout: Duration) -> LockResult<(G, WaitTimeoutResult)> {
        let deadline = crate::raw::deadline_after(timeout);
        let (r, notified) = self.wait_once(guard, deadline);
        let res = WaitTimeoutResult(!notified && crate::raw::expired(deadline));
        with_result(r, res)
    }

    /// Waits while `condition` holds: returns the guard once it is false (Python's
    /// `wait_for(predicate)` with the predicate negated, as `Condvar::wait_while`).
    ///
    /// # Errors
    /// As [`wait`](Condition::wait); after [`LockError::OwnerDied`], repair, mark the guard
    /// consistent and call again.
    pub fn wait_while<G: ConditionGuard>(
        &self,
        mut guard: G,
        mut condition: impl FnMut(&mut G) -> bool,
    ) -> LockResult<G> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`wait_while`](Condition::wait_while) for at most `timeout` in all; the result says
    /// whether it ended with the condition still true because the time ran out.
    ///
    /// # Errors
    /// As [`wait_while`](Condition::wait_while).
    pub fn wait_timeout_while<G: ConditionGuard>(
        &self,
        mut guard: G,
        timeout: Duration,
        mut condition: impl FnMut(&mut G) -> bool,
    ) -> LockResult<(G, WaitTimeoutResult)> {
        let deadline = crate::raw::deadline_after(timeout);
        while condition(&mut guard) {
            if crate::raw::expired(deadline) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = with_result(self.wait_once(guard, deadline).0, WaitTimeoutResult(false))?.0;
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    /// [`wait_once`](Condition::wait_once) in async form: the sleep is the doorbell await
    /// and the relock the async lock of the guard's kind. The waiter is uncounted when the
    /// future ends or is dropped.
    #[cfg(feature = "tokio")]
    async fn wait_once_async<G: ConditionGuard>(&self, guard: G, deadline: Option<Instant>) -> (LockResult<G>, bool) {
        let st = self.state();
        let ticket = st.prepare();
        let counted = Uncount(st);
        let parked = guard.park();
        // Announce: nothing beyond the count in `prepare`: a notify that finds it bumps
        // `seq` and wakes, which rings the doorbells.
        let _ = self
            .prim
            .segment()
            .wait_async(deadline, || st.notified_since(ticket).then_some(()), || (), |()| {})
            .await;
        let notified = st.notified_since(ticket);
        let r = G::relock_async(parked).await;
        drop(counted);
        (r, notified)
    }

    /// [`wait`](Condition::wait) in async form (feature `tokio`): the task sleeps on this
    /// handle's doorbell, registered with the tokio reactor, with no thread, and relocks with
    /// the async lock of the guard's kind (e.g. [`Value::lock_async`]). Spurious returns are
    /// possible as with [`wait`](Condition::wait): check the state in a loop, or use
    /// [`wait_while_async`](Condition::wait_while_async).
    ///
    /// Cancel safety: the guard is consumed and its lock released when the wait begins, so
    /// a future dropped at an await point holds no lock (the relock is cancel safe), is no
    /// longer counted as a waiter, and takes no notify away from the other waiters (they all
    /// return within 10 ms of any notify, see the type's docs); to look at the state again,
    /// lock again.
    ///
    /// # Errors
    /// As [`wait`](Condition::wait).
    #[cfg(feature = "tokio")]
    pub async fn wait_async<G: ConditionGuard>(&self, guard: G) -> LockResult<G> {
        self.wait_once_async(guard, None).await.0
    }

    /// [`wait_timeout`](Condition::wait_timeout) in async form (feature `tokio`); cancel
    /// safety as [`wait_async`](Condition::wait_async). The timeout bounds the sleep; the
    /// relock after it waits as long as the lock's holder keeps it, as in the blocking form.
    ///
    /// # Errors
    /// As [`wait`](Condition::wait).
    #[cfg(feature = "tokio")]
    pub async fn wait_timeout_async<G: ConditionGuard>(
        &self,
        guard: G,
        timeout: Duration,
    ) -> LockResult<(G, WaitTimeoutResult)> {
        let deadline = crate::raw::deadline_after(timeout);
        let (r, notified) = self.wait_once_async(guard, deadline).await;
        let res = WaitTimeoutResult(!notified && crate::raw::expired(deadline));
        with_result(r, res)
    }

    /// [`wait_while`](Condition::wait_while) in async form (feature `tokio`): waits with
    /// [`wait_async`](Condition::wait_async) while `condition` holds. Cancel safety as
    /// [`wait_async`](Condition::wait_async): dropped, it holds no lock.
    ///
    /// # Errors
    /// As [`wait_while`](Condition::wait_while).
    #[cfg(feature = "tokio")]
    pub async fn wait_while_async<G: ConditionGuard>(
        &self,
        mut guard: G,
        mut condition: impl FnMut(&mut G) -> bool,
    ) -> LockResult<G> {
        while condition(&mut guard) {
            guard = self.wait_async(guard).await?;
        }
        Ok(guard)
    }

    /// [`wait_timeout_while`](Condition::wait_timeout_while) in async form (feature
    /// `tokio`); cancel safety as [`wait_async`](Condition::wait_async).
    ///
    /// # Errors
    /// As [`wait_while`](Condition::wait_while).
    #[cfg(feature = "tokio")]
    pub async fn wait_timeout_while_async<G: ConditionGuard>(
        &self,
        mut guard: G,
        timeout: Duration,
        mut condition: impl FnMut(&mut G) -> bool,
    ) -> LockResult<(G, WaitTimeoutResult)> {
        let deadline = crate::raw::deadline_after(timeout);
        while condition(&mut guard) {
            if crate::raw::expired(deadline) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            let r = self.wait_once_async(guard, deadline).await.0;
            guard = with_result(r, WaitTimeoutResult(false))?.0;
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    /// Wakes one waiter, if any waits.
    pub fn notify_one(&self) {
        self.state().notify(1, self.prim.segment());
    }

    /// Wakes up to `n` waiters (Python's `notify(n)`).
    pub fn notify(&self, n: u32) {
        self.state().notify(n.min(u32::MAX - 1), self.prim.segment());
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.state().notify(u32::MAX, self.prim.segment());
    }
}

/// `uncount` (`CondState::done`) when dropped: at the end of an async wait, and when its
/// future is dropped mid-wait.
#[cfg(feature = "tokio")]
struct Uncount<'a>(&'a CondState);

#[cfg(feature = "tokio")]
impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// `r` with `extra` beside the guard, in the error's guard too.
fn with_result<G, X: Copy>(r: LockResult<G>, extra: X) -> LockResult<(G, X)> {
    match r {
        Ok(g) => Ok((g, extra)),
        Err(LockError::OwnerDied(g)) => Err(LockError::OwnerDied((g, extra))),
        Err(LockError::Unrecoverable) => Err(LockError::Unrecoverable),
        Err(LockError::Timeout) => Err(LockError::Timeout),
        Err(_) => Err(LockError::WouldBlock),
    }
}
