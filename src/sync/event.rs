//! `Event`: a named event flag (Python's `multiprocessing.Event`), `raw::event` in a segment.

use super::{Prim, Shape, opening};
use crate::error::OpenError;
use crate::options::Options;
use crate::raw::event::EventState;
use crate::segment::header::Kind;
use std::time::Duration;

pub(crate) const SHAPE: Shape = Shape {
    kind: Kind::Event,
    rec_size: 0,
    count_ok: |c| c == 1,
};

/// A flag shared between processes under a name, like Python's `multiprocessing.Event`:
/// [`set`](Event::set) raises it and wakes every waiter in every process,
/// [`clear`](Event::clear) lowers it, [`wait`](Event::wait) sleeps until it is up.
///
/// A waiter returns once the flag is up, or has gone up since its wait began, even if it was
/// cleared again before the waiter looked (so `set` then `clear` at once still releases
/// everyone who was waiting). Nothing a dead process leaves behind can stall an event: a
/// setter killed between raising the flag and waking the sleepers leaves them to notice it
/// within their re-check slice (10 ms).
///
/// ```
/// # let name = format!("doc-event-{}", std::process::id());
/// use shmproc::Event;
/// use std::time::Duration;
/// let ready = Event::create(&name)?;
/// let other = Event::open(&name)?; // usually in another process
/// assert!(!other.wait_timeout(Duration::from_millis(1)));
/// ready.set();
/// other.wait();
/// assert!(other.is_set());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Event {
    prim: Prim,
}

opening!(Event, SHAPE, |prim| Event { prim }, prim);

impl Event {
    /// Creates the event `name`, clear. The handle owns the name.
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `NoSpace`, `Io`.
    pub fn create(name: &str) -> Result<Self, OpenError> {
        Self::create_with(name, &Options::new())
    }

    /// [`create`](Event::create) with options.
    ///
    /// # Errors
    /// As [`create`](Event::create).
    pub fn create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Event {
            prim: Prim::create(name, &SHAPE, 1, opts, &|_| {})?,
        })
    }

    /// Opens `name`, or creates it clear if it does not exist (race-free among processes).
    ///
    /// # Errors
    /// As [`create`](Event::create) and [`open`](Event::open).
    pub fn open_or_create(name: &str) -> Result<Self, OpenError> {
        Self::open_or_create_with(name, &Options::new())
    }

    /// [`open_or_create`](Event::open_or_create) with options.
    ///
    /// # Errors
    /// As [`open_or_create`](Event::open_or_create).
    pub fn open_or_create_with(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Ok(Event {
            prim: Prim::open_or_create(name, &SHAPE, 1, opts, &|_| {})?,
        })
    }

    #[inline]
    fn state(&self) -> &EventState {
        self.prim.state()
    }

    /// Raises the flag and wakes every waiter (a no-op if it is up). What this process wrote
    /// before `set` is visible to a waiter that returns because of it.
    pub fn set(&self) {
        self.state().set(self.prim.segment());
    }

    /// Lowers the flag.
    pub fn clear(&self) {
        self.state().clear();
    }

    /// Whether the flag is up (the `try_` form of [`wait`](Event::wait)).
    pub fn is_set(&self) -> bool {
        self.state().is_set()
    }

    /// Waits until the flag is up (or went up since this call began).
    pub fn wait(&self) {
        self.state().wait(None, self.prim.segment());
    }

    /// [`wait`](Event::wait) for at most `timeout`: `true` if the flag went up, `false` on
    /// timeout (Python's `wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state()
            .wait(crate::raw::deadline_after(timeout), self.prim.segment())
    }

    /// [`wait`](Event::wait) in async form (feature `tokio`): the task sleeps on this
    /// handle's doorbell, registered with the tokio reactor, and costs no thread.
    ///
    /// Cancel safe: dropping the future at any await point leaves no registration behind
    /// and loses nothing (an event has nothing to take).
    #[cfg(feature = "tokio")]
    pub async fn wait_async(&self) {
        self.wait_async_inner(None).await;
    }

    /// [`wait_timeout`](Event::wait_timeout) in async form (feature `tokio`): `true` if the
    /// flag went up, `false` on timeout. Cancel safe, as [`wait_async`](Event::wait_async).
    #[cfg(feature = "tokio")]
    pub async fn wait_timeout_async(&self, timeout: Duration) -> bool {
        self.wait_async_inner(crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn wait_async_inner(&self, deadline: Option<std::time::Instant>) -> bool {
        let st = self.state();
        let first = st.first_look();
        self.prim
            .segment()
            .wait_async(deadline, || st.released(first).then_some(()), || st.announce(), |()| {})
            .await
            .is_some()
    }
}
