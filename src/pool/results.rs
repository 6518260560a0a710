//! The results a caller holds: `AsyncResult` (one task) and `Imap` (the lazy iterator of
//! `imap` and `imap_unordered`).

use super::Pool;
use super::job::Job;
use super::submit::Submitter;
use crate::error::ProcessError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The result of [`Pool::apply_async`]: Python's `AsyncResult`.
///
/// [`get`](AsyncResult::get) may be called more than once; each call decodes the result
/// afresh.
pub struct AsyncResult<R> {
    pub(super) job: Arc<Job>,
    pub(super) _result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> AsyncResult<R> {
    /// Waits for the result.
    ///
    /// # Errors
    /// `Panicked` (the task panicked), `WorkerDied` (its worker died while running it),
    /// `Terminated`, `PoolClosed`, `TooLarge`/`Encode`/`Decode` (the arguments or the
    /// result), `Refused`.
    pub fn get(&self) -> Result<R, ProcessError> {
        self.get_until(None)
    }

    /// [`get`](AsyncResult::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` (the task goes on; get again later), and as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, ProcessError> {
        self.get_until(crate::raw::deadline_after(timeout))
    }

    /// [`get`](AsyncResult::get) as a future, for any executor (it needs no runtime: the
    /// pool's supervisor threads wake the task when the result arrives).
    ///
    /// Cancel safe: the result stays in the `AsyncResult`; await `get_async` again, or call
    /// `get`.
    ///
    /// # Errors
    /// As [`get`](AsyncResult::get).
    pub fn get_async(&self) -> impl std::future::Future<Output = Result<R, ProcessError>> + '_ {
        std::future::poll_fn(move |cx| self.job.poll_peek(0, cx))
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<R, ProcessError> {
        self.job.peek(0, deadline).unwrap_or(Err(ProcessError::Timeout))
    }
}

impl<R> AsyncResult<R> {
    /// Whether the result is there (Python's `ready`).
    pub fn ready(&self) -> bool {
        self.job.succeeded(0).is_some()
    }

    /// Waits until the result is there, at most `timeout`; whether it is.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.job.wait(0, crate::raw::deadline_after(timeout))
    }

    /// `Some(true)` if the task returned a value, `Some(false)` if it failed, `None` while it
    /// runs (Python's `successful`, which raises instead of `None`).
    pub fn successful(&self) -> Option<bool> {
        self.job.succeeded(0)
    }
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult").field("ready", &self.ready()).finish()
    }
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: one `Result` per item.
pub struct Imap<'p, I, A, R> {
    sub: Submitter<'p, A>,
    input: std::iter::Fuse<I>,
    exhausted: bool,
    /// Items taken from `input`.
    taken: usize,
    /// Results taken from the job (into `ready`).
    fetched: usize,
    /// Results handed out.
    yielded: usize,
    /// Results decoded and not handed out yet.
    ready: VecDeque<Result<R, ProcessError>>,
    window: usize,
    unordered: bool,
    _pool: PhantomData<&'p Pool>,
}

impl<'p, I, A, R> Imap<'p, I, A, R>
where
    I: Iterator<Item = A>,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    pub(super) fn new(
        pool: &'p Pool,
        f: fn(A) -> R,
        input: I,
        chunksize: usize,
        window: usize,
        unordered: bool,
    ) -> Self {
        let job = Job::new(unordered, pool.shared.spares.clone());
        job.reserve(input.size_hint().0.min(window));
        Imap {
            sub: Submitter::new(&pool.shared, f, job, chunksize),
            input: input.fuse(),
            exhausted: false,
            taken: 0,
            fetched: 0,
            yielded: 0,
            ready: VecDeque::new(),
            window: window.max(chunksize),
            unordered,
            _pool: PhantomData,
        }
    }

    /// Takes items a chunk at a time while a whole chunk fits in the window, and queues
    /// them.
    fn top_up(&mut self) {
        let chunksize = self.sub.chunksize;
        while !self.exhausted && self.taken - self.yielded <= self.window - chunksize {
            for _ in 0..chunksize {
                match self.input.next() {
                    Some(item) => {
                        self.sub.add(&item);
                        self.taken += 1;
                    }
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            // Queue each chunk as soon as it is cut, so workers start while we encode.
            self.sub.flush();
        }
    }
}

impl<I, A, R> Iterator for Imap<'_, I, A, R>
where
    I: Iterator<Item = A>,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    type Item = Result<R, ProcessError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ready.is_empty() {
            self.top_up();
            if self.fetched == self.taken {
                return None;
            }
            let max = self.taken - self.fetched;
            let before = self.ready.len();
            if self.unordered {
                self.sub.job.take_arrived(max, &mut self.ready);
            } else {
                self.sub.job.take_run(self.fetched, max, &mut self.ready);
            }
            let got = self.ready.len() - before;
            if got == 0 {
                // Not expected: every taken item has room in the job before it is sent.
                self.ready.push_back(Err(ProcessError::Ipc {
                    reason: "a result went missing".to_owned(),
                }));
                self.fetched += 1;
            } else {
                self.fetched += got;
            }
        }
        self.yielded += 1;
        self.ready.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.taken - self.yielded;
        let (lo, hi) = self.input.size_hint();
        (left.saturating_add(lo), hi.and_then(|h| h.checked_add(left)))
    }
}
