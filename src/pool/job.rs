//! Where a pool call's results wait for their reader: one [`Job`] per `apply_async`, `map`
//! or `imap` call.
//!
//! A worker's results frame moves into the job whole; each item records which frame holds
//! its entry. The reader decodes items under the job's lock, a run of ready items at a
//! time, so a result costs no allocation, no reference count and no lock of its own; a
//! frame is freed once every entry in it was taken.
//!
//! Entries are found by walking the frame: each frame keeps a cursor (the next entry's
//! index and offset), and readers take a frame's entries in order (`map` and `imap` by
//! index, `imap_unordered` by arrival, which within a frame is index order), so a result
//! costs one step of the walk. Only an out-of-order read walks again from the frame's
//! start.
//!
//! A `map_pod` job's results come mostly in plain-data frames (raw results of one size, no
//! entry headers): a run of ready items of one such frame is copied into the output whole.

use super::spares::Spares;
use crate::error::ProcessError;
use crate::process::wire::{self, RESULT_HEADER, RESULTS_HEADER, RESULTS_POD};
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Where one item of a job stands: waiting, its outcome (a result entry or an error), or
/// taken by the reader. 8 bytes and nothing to drop, so that a map of many items is cheap
/// to make room for and to free.
#[derive(Clone, Copy)]
pub(crate) enum ItemState {
    /// No outcome yet.
    Waiting,
    /// An entry of frame `frame` (found, and checked, when it is read).
    Entry { frame: u32 },
    /// Failed with error `failures[k]` (one error for all the items that failed together).
    Failed(u32),
    /// Handed to the reader (`map`, `imap`): read once, not again.
    Taken,
}

const _: () = assert!(std::mem::size_of::<ItemState>() == 8);

/// The spare buffers of a pool, with a spare item table of [`ItemState`]s.
pub(crate) type JobSpares = Spares<ItemState>;

/// A results frame held for its items.
struct Frame {
    bytes: Vec<u8>,
    /// Entries not taken yet.
    live: u32,
    /// Index of the item of the frame's first entry.
    first: usize,
    /// Index of the item whose entry starts at byte `next_at`.
    next_index: usize,
    next_at: usize,
    /// A plain-data results frame: result `k` is at `RESULTS_HEADER + k * size` (its length
    /// was checked against the job's result size on arrival).
    pod: bool,
}

/// The tag and byte range of the entry at `at` in a results frame, and where the next one
/// starts; `None` if it overruns the frame.
#[inline]
fn entry_at(bytes: &[u8], at: usize) -> Option<(u8, usize, usize, usize)> {
    let head = bytes.get(at..at.checked_add(RESULT_HEADER)?)?;
    let tag = head[0];
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let start = at + RESULT_HEADER;
    let end = start.checked_add(len).filter(|&e| e <= bytes.len())?;
    Some((tag, start, end, end))
}

/// Wakes the tasks awaiting an outcome (they poll again and find theirs, or wait again).
fn wake_tasks(g: &mut Inner) {
    for w in std::mem::take(&mut g.wakers) {
        w.wake();
    }
}

/// The results of one call.
pub(crate) struct Job {
    inner: Mutex<Inner>,
    changed: Condvar,
}

struct Inner {
    items: Vec<ItemState>,
    /// Results frames not fully taken yet.
    frames: Vec<Option<Frame>>,
    free_frames: Vec<u32>,
    /// Indices in the order their outcomes arrived (kept only for `imap_unordered`).
    arrived: Option<VecDeque<usize>>,
    /// Where a frame's buffer goes once every entry in it was taken.
    spares: Arc<JobSpares>,
    /// The errors of failed items.
    failures: Vec<ProcessError>,
    /// A `map_pod` job: the size of its results.
    pod: Option<usize>,
    /// Tasks awaiting an outcome ([`Job::poll_peek`]), woken with the condition variable.
    wakers: Vec<std::task::Waker>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The table's memory serves the next job (see `Spares`).
        self.spares.give_table(std::mem::take(&mut self.items));
    }
}

impl Inner {
    #[inline]
    fn is_ready(&self, index: usize) -> bool {
        !matches!(self.items.get(index), Some(ItemState::Waiting))
    }

    /// Decodes item `index` as an `R`; with `take`, marks it taken and frees its frame when
    /// that was the frame's last entry.
    #[inline]
    fn decode<R: DeserializeOwned>(&mut self, index: usize, take: bool) -> Result<R, ProcessError> {
        let Some(state) = self.items.get_mut(index) else {
            return Err(lost());
        };
        let out = match state {
            &mut ItemState::Entry { frame } => {
                let f = frame as usize;
                match self.frames.get_mut(f) {
                    Some(Some(fr)) => {
                        let out = Self::decode_entry(fr, index);
                        if take {
                            fr.live -= 1;
                            if fr.live == 0 {
                                if let Some(done) = self.frames[f].take() {
                                    self.spares.give(done.bytes);
                                }
                                self.free_frames.push(frame);
                            }
                        }
                        out
                    }
                    _ => Err(lost()),
                }
            }
            &mut ItemState::Failed(k) => Err(self.failures.get(k as usize).map_or_else(lost, ProcessError::replicate)),
            ItemState::Waiting | ItemState::Taken => Err(lost()),
        };
        if take {
            self.items[index] = ItemState::Taken;
        }
        out
    }

    /// Finds the entry of item `index` in `fr` (tag and byte range), moving the frame's
    /// cursor past it. An entry that overruns the frame is an error for its item and every
    /// later one of the frame.
    #[inline]
    fn find_entry(fr: &mut Frame, index: usize) -> Result<(u8, usize, usize), ProcessError> {
        if fr.pod {
            return Err(ProcessError::Ipc {
                reason: "a plain-data result read as an encoded one".to_owned(),
            });
        }
        if index < fr.next_index {
            // Out of order: walk again from the start.
            (fr.next_index, fr.next_at) = (fr.first, RESULTS_HEADER);
        }
        loop {
            let Some((tag, start, end, next)) = entry_at(&fr.bytes, fr.next_at) else {
                return Err(ProcessError::Ipc {
                    reason: format!(
                        "entry {} of a results frame overruns the frame",
                        fr.next_index - fr.first
                    ),
                });
            };
            (fr.next_index, fr.next_at) = (fr.next_index + 1, next);
            if fr.next_index > index {
                return Ok((tag, start, end));
            }
        }
    }

    /// Decodes the entry of item `index` in `fr`, moving the frame's cursor past it.
    #[inline]
    fn decode_entry<R: DeserializeOwned>(fr: &mut Frame, index: usize) -> Result<R, ProcessError> {
        let (tag, start, end) = Self::find_entry(fr, index)?;
        let bytes = &fr.bytes[start..end];
        if tag == wire::ITEM_OK {
            // `postcard::from_bytes`, inline.
            let mut de = postcard::Deserializer::from_bytes(bytes);
            if let Ok(r) = R::deserialize(&mut de) {
                return Ok(r);
            }
        }
        // An error, or a value that does not decode: the general way says which.
        wire::decode_result(tag, bytes)
    }
}

fn lost() -> ProcessError {
    ProcessError::Ipc {
        reason: "a result went missing".to_owned(),
    }
}

impl Job {
    pub(crate) fn new(track_arrival: bool, spares: Arc<JobSpares>) -> Arc<Job> {
        Self::with_pod(track_arrival, spares, None)
    }

    /// A job of `map_pod`, whose results are `rsize` bytes of plain data each.
    pub(crate) fn new_pod(rsize: usize, spares: Arc<JobSpares>) -> Arc<Job> {
        Self::with_pod(false, spares, Some(rsize))
    }

    fn with_pod(track_arrival: bool, spares: Arc<JobSpares>, pod: Option<usize>) -> Arc<Job> {
        Arc::new(Job {
            inner: Mutex::new(Inner {
                items: spares.take_table(),
                frames: Vec::new(),
                free_frames: Vec::new(),
                arrived: track_arrival.then(VecDeque::new),
                spares,
                failures: Vec::new(),
                pod,
                wakers: Vec::new(),
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock, once item `from` has an outcome; `None` if the wait ends without one.
    fn lock_ready(&self, from: usize) -> Option<MutexGuard<'_, Inner>> {
        let mut g = self.lock();
        while !g.is_ready(from) {
            g = self.wait_on(g, None)?;
        }
        Some(g)
    }

    /// Makes room for items up to index `len - 1`. Outcomes for items beyond the room made
    /// are ignored.
    pub(crate) fn grow_to(&self, len: usize) {
        let mut g = self.lock();
        if g.items.len() < len {
            g.items.resize_with(len, || ItemState::Waiting);
        }
    }

    /// Makes room in memory for `n` more items (without making them part of the job).
    pub(crate) fn reserve(&self, n: usize) {
        self.lock().items.reserve(n);
    }

    /// Item `index` failed with `e` (unless it has an outcome already).
    pub(crate) fn fail(&self, index: usize, e: ProcessError) {
        self.fail_many(index, 1, e);
    }

    /// Items `first..first + count` failed with `e` (those without an outcome yet).
    pub(crate) fn fail_many(&self, first: usize, count: usize, e: ProcessError) {
        let mut g = self.lock();
        let g = &mut *g;
        let k = g.failures.len() as u32;
        g.failures.push(e);
        for index in first..first + count {
            if let Some(state @ ItemState::Waiting) = g.items.get_mut(index) {
                *state = ItemState::Failed(k);
                if let Some(a) = &mut g.arrived {
                    a.push_back(index);
                }
            }
        }
        wake_tasks(g);
        self.changed.notify_all();
    }

    /// Records the results in `frame` (a results frame whose header was checked) as the
    /// outcomes of items `first`, `first + 1`, ...: one lock and one wake-up for all. The
    /// entries are found when they are read: one that overruns the frame is then an error
    /// for its item and the later items of the frame.
    ///
    /// A plain-data results frame must be of a `map_pod` job and hold exactly `count`
    /// results of its size; otherwise its items fail.
    pub(crate) fn deliver_frame(&self, first: usize, frame: Vec<u8>) {
        let Ok(results) = wire::parse_results(&frame) else {
            return;
        };
        let count = results.count as usize;
        let pod = frame.first() == Some(&RESULTS_POD);
        let mut g = self.lock();
        if pod {
            let rsize = g.pod;
            if rsize.and_then(|r| count.checked_mul(r)?.checked_add(RESULTS_HEADER)) != Some(frame.len()) {
                drop(g);
                let reason = match rsize {
                    Some(r) => format!(
                        "a plain-data results frame of {count} results of {r} bytes has {} bytes",
                        frame.len()
                    ),
                    None => "plain-data results for a call that sent encoded items".to_owned(),
                };
                self.fail_many(first, count, ProcessError::Ipc { reason });
                return;
            }
        }
        let g = &mut *g;
        let f = match g.free_frames.pop() {
            Some(f) => f,
            None => {
                g.frames.push(None);
                (g.frames.len() - 1) as u32
            }
        };
        let mut live = 0;
        let end = first.saturating_add(count).min(g.items.len());
        for (index, state) in (first..end).zip(&mut g.items[first.min(end)..end]) {
            if matches!(state, ItemState::Waiting) {
                *state = ItemState::Entry { frame: f };
                live += 1;
                if let Some(a) = &mut g.arrived {
                    a.push_back(index);
                }
            }
        }
        if live > 0 {
            g.frames[f as usize] = Some(Frame {
                bytes: frame,
                live,
                first,
                next_index: first,
                next_at: RESULTS_HEADER,
                pod,
            });
        } else {
            g.free_frames.push(f);
            g.spares.give(frame);
        }
        wake_tasks(g);
        self.changed.notify_all();
    }

    /// Waits until item `index` has its outcome (`false` at the deadline).
    pub(crate) fn wait(&self, index: usize, deadline: Option<Instant>) -> bool {
        let mut g = self.lock();
        loop {
            if g.is_ready(index) {
                return true;
            }
            match self.wait_on(g, deadline) {
                Some(next) => g = next,
                None => return false,
            }
        }
    }

    /// Waits for item `index`, then decodes it without taking it (it can be read again).
    /// `None` at the deadline.
    pub(crate) fn peek<R: DeserializeOwned>(
        &self,
        index: usize,
        deadline: Option<Instant>,
    ) -> Option<Result<R, ProcessError>> {
        let mut g = self.lock();
        loop {
            if g.is_ready(index) {
                return Some(g.decode(index, false));
            }
            g = self.wait_on(g, deadline)?;
        }
    }

    /// [`peek`](Job::peek) as a future's poll: the outcome of item `index` if it has one,
    /// else `Pending` with the task's waker kept until the next outcome arrives.
    pub(crate) fn poll_peek<R: DeserializeOwned>(
        &self,
        index: usize,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<R, ProcessError>> {
        let mut g = self.lock();
        if g.is_ready(index) {
            return std::task::Poll::Ready(g.decode(index, false));
        }
        if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            g.wakers.push(cx.waker().clone());
        }
        std::task::Poll::Pending
    }

    /// Whether item `index` has a value (not an error); `None` while it has no outcome.
    pub(crate) fn succeeded(&self, index: usize) -> Option<bool> {
        let g = self.lock();
        match g.items.get(index)? {
            ItemState::Waiting => None,
            &ItemState::Entry { frame } => {
                let mut g = g;
                let fr = g.frames.get_mut(frame as usize)?.as_mut()?;
                Some(matches!(Inner::find_entry(fr, index), Ok((wire::ITEM_OK, _, _))))
            }
            ItemState::Failed(_) | ItemState::Taken => Some(false),
        }
    }

    /// Waits for item `from`, then takes it and the ready items after it (at most `max`),
    /// decoded, into `out`.
    pub(crate) fn take_run<R: DeserializeOwned>(
        &self,
        from: usize,
        max: usize,
        out: &mut VecDeque<Result<R, ProcessError>>,
    ) {
        let Some(mut g) = self.lock_ready(from) else {
            return;
        };
        let mut index = from;
        while index < from + max && index < g.items.len() && g.is_ready(index) {
            out.push_back(g.decode(index, true));
            index += 1;
        }
    }

    /// Waits for item `from`, then decodes it and the ready items after it (at most `max`)
    /// onto the end of `out`, taking them. Stops at the first item that failed and returns
    /// its error (that item is taken).
    pub(crate) fn take_run_into<R: DeserializeOwned>(
        &self,
        from: usize,
        max: usize,
        out: &mut Vec<R>,
    ) -> Result<(), ProcessError> {
        let Some(mut g) = self.lock_ready(from) else {
            return Err(lost());
        };
        let g = &mut *g;
        let end = from.saturating_add(max).min(g.items.len());
        out.reserve(end - from);
        let mut index = from;
        while index < end {
            match g.items[index] {
                ItemState::Waiting => break,
                ItemState::Entry { frame } => {
                    // The common case, inline: the next entry of the frame at its cursor.
                    let f = frame as usize;
                    let Some(Some(fr)) = g.frames.get_mut(f) else {
                        return Err(lost());
                    };
                    let r = Inner::decode_entry(fr, index);
                    fr.live -= 1;
                    if fr.live == 0 {
                        if let Some(done) = g.frames[f].take() {
                            g.spares.give(done.bytes);
                        }
                        g.free_frames.push(frame);
                    }
                    g.items[index] = ItemState::Taken;
                    out.push(r?);
                }
                ItemState::Failed(_) | ItemState::Taken => {
                    // The error, taken like any other outcome.
                    return g.decode::<R>(index, true).map(|_| ());
                }
            }
            index += 1;
        }
        Ok(())
    }

    /// [`take_run_into`](Job::take_run_into) for a `map_pod` job: a run of items of one
    /// plain-data frame is copied into `out` whole.
    pub(crate) fn take_run_pod_into<R: bytemuck::Pod>(
        &self,
        from: usize,
        max: usize,
        out: &mut Vec<R>,
    ) -> Result<(), ProcessError> {
        let rsize = size_of::<R>();
        let Some(mut g) = self.lock_ready(from) else {
            return Err(lost());
        };
        let g = &mut *g;
        if g.pod != Some(rsize) {
            return Err(lost());
        }
        let end = from.saturating_add(max).min(g.items.len());
        out.reserve(end - from);
        let mut index = from;
        while index < end {
            match g.items[index] {
                ItemState::Waiting => break,
                ItemState::Entry { frame } => {
                    let f = frame as usize;
                    let Some(Some(fr)) = g.frames.get_mut(f) else {
                        return Err(lost());
                    };
                    if fr.pod {
                        // The run of this frame's items from `index` on.
                        let frame_end = fr.first + (fr.bytes.len() - RESULTS_HEADER) / rsize;
                        let stop = end.min(frame_end);
                        let mut j = index;
                        while j < stop && matches!(g.items[j], ItemState::Entry { frame: k } if k == frame) {
                            g.items[j] = ItemState::Taken;
                            j += 1;
                        }
                        let n = j - index;
                        if n == 0 {
                            return Err(lost());
                        }
                        let at = RESULTS_HEADER + (index - fr.first) * rsize;
                        let Some(bytes) = fr.bytes.get(at..at + n * rsize) else {
                            return Err(lost());
                        };
                        let old = out.len();
                        out.resize(old + n, R::zeroed());
                        bytemuck::cast_slice_mut::<R, u8>(&mut out[old..]).copy_from_slice(bytes);
                        fr.live = fr.live.saturating_sub(n as u32);
                        if fr.live == 0 {
                            if let Some(done) = g.frames[f].take() {
                                g.spares.give(done.bytes);
                            }
                            g.free_frames.push(frame);
                        }
                        index = j;
                        continue;
                    }
                    // A tagged entry: a panic or a failure (or a value, should one come so).
                    let r = Inner::find_entry(fr, index).and_then(|(tag, start, end)| {
                        let bytes = &fr.bytes[start..end];
                        if tag == wire::ITEM_OK && bytes.len() == rsize {
                            Ok(bytemuck::pod_read_unaligned::<R>(bytes))
                        } else if tag == wire::ITEM_OK {
                            Err(ProcessError::Decode {
                                what: "the result",
                                reason: format!("{} bytes as {}", bytes.len(), std::any::type_name::<R>()),
                            })
                        } else {
                            wire::decode_result::<()>(tag, bytes).map(|()| R::zeroed())
                        }
                    });
                    fr.live -= 1;
                    if fr.live == 0 {
                        if let Some(done) = g.frames[f].take() {
                            g.spares.give(done.bytes);
                        }
                        g.free_frames.push(frame);
                    }
                    g.items[index] = ItemState::Taken;
                    out.push(r?);
                }
                ItemState::Failed(_) | ItemState::Taken => {
                    return g.decode::<()>(index, true);
                }
            }
            index += 1;
        }
        Ok(())
    }

    /// Waits for an outcome that arrived and was not taken yet, then takes it and any others
    /// that arrived (at most `max`), decoded, into `out`.
    pub(crate) fn take_arrived<R: DeserializeOwned>(&self, max: usize, out: &mut VecDeque<Result<R, ProcessError>>) {
        let mut g = self.lock();
        while g.arrived.as_ref().is_none_or(VecDeque::is_empty) {
            g = match self.wait_on(g, None) {
                Some(g) => g,
                None => return,
            };
        }
        for _ in 0..max {
            let Some(index) = g.arrived.as_mut().and_then(VecDeque::pop_front) else {
                break;
            };
            out.push_back(g.decode(index, true));
        }
    }

    fn wait_on<'a>(&self, g: MutexGuard<'a, Inner>, deadline: Option<Instant>) -> Option<MutexGuard<'a, Inner>> {
        match deadline {
            None => Some(self.changed.wait(g).unwrap_or_else(|p| p.into_inner())),
            Some(d) => {
                let left = d.checked_duration_since(Instant::now())?;
                let (g, _) = self.changed.wait_timeout(g, left).unwrap_or_else(|p| p.into_inner());
                Some(g)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::wire::{ITEM_OK, ITEM_PANICKED, ResultsFrame};

    fn frame(first: u32, values: &[u64]) -> Vec<u8> {
        let mut f = ResultsFrame::new(Vec::new(), 1, first);
        for v in values {
            f.push(ITEM_OK, &postcard::to_allocvec(v).unwrap());
        }
        f.seal().to_vec()
    }

    #[test]
    fn runs_decode_in_order_across_frames() {
        let job = Job::new(false, Spares::new(4, 1 << 20));
        job.grow_to(5);
        job.deliver_frame(0, frame(0, &[10, 11, 300_000]));
        job.deliver_frame(3, frame(3, &[13, 14]));
        let mut out = Vec::new();
        job.take_run_into::<u64>(0, 5, &mut out).unwrap();
        assert_eq!(out, [10, 11, 300_000, 13, 14]);
        assert!(job.lock().frames.iter().all(Option::is_none), "every frame freed");
    }

    #[test]
    fn a_dropped_jobs_table_serves_the_next_job_empty() {
        let spares = Spares::new(4, 1 << 20);
        let job = Job::new(false, spares.clone());
        job.grow_to(1000);
        job.fail(3, ProcessError::Ipc { reason: "x".into() });
        drop(job);
        let job = Job::new(false, spares.clone());
        {
            let g = job.lock();
            assert!(
                g.items.is_empty() && g.items.capacity() >= 1000,
                "the table came back, cleared"
            );
        }
        job.grow_to(2);
        assert!(!job.lock().is_ready(0), "a reused table starts with no outcomes");
        // A table beyond the byte bound is not kept.
        let small = Spares::new(4, 64);
        let big = Job::new(false, small.clone());
        big.grow_to(100);
        drop(big);
        assert_eq!(small.take_table().capacity(), 0);
    }

    fn pod_frame(first: u32, values: &[u64]) -> Vec<u8> {
        let mut f = ResultsFrame::new_pod(Vec::new(), 1, first);
        for v in values {
            f.buf.extend_from_slice(&v.to_ne_bytes());
            f.count += 1;
        }
        f.seal().to_vec()
    }

    #[test]
    fn pod_runs_copy_across_frames_and_errors_stop_them() {
        let job = Job::new_pod(8, Spares::new(4, 1 << 20));
        job.grow_to(7);
        job.deliver_frame(0, pod_frame(0, &[10, 11, 12]));
        let mut panicked = ResultsFrame::new(Vec::new(), 1, 3);
        panicked.push(ITEM_PANICKED, &postcard::to_allocvec(&("boom", "here")).unwrap());
        job.deliver_frame(3, panicked.seal().to_vec());
        job.deliver_frame(4, pod_frame(4, &[14, 15]));
        // A frame whose length does not match its count fails its items.
        let mut short = pod_frame(6, &[16]);
        short.pop();
        job.deliver_frame(6, short);
        let mut out = Vec::new();
        // A run stops at the first error, with the results before it taken.
        match job.take_run_pod_into::<u64>(0, 7, &mut out) {
            Err(ProcessError::Panicked { message, .. }) => assert_eq!(message, "boom"),
            other => panic!("{other:?}"),
        }
        assert_eq!(out, [10, 11, 12]);
        job.take_run_pod_into::<u64>(4, 2, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 14, 15]);
        assert!(matches!(
            job.take_run_pod_into::<u64>(6, 1, &mut out),
            Err(ProcessError::Ipc { .. })
        ));
        assert!(job.lock().frames.iter().all(Option::is_none), "every frame freed");
        // Plain-data results for an encoded call are its items' errors.
        let job = Job::new(false, Spares::new(4, 1 << 20));
        job.grow_to(1);
        job.deliver_frame(0, pod_frame(0, &[1]));
        assert_eq!(job.succeeded(0), Some(false));
    }

    #[test]
    fn out_of_order_reads_walk_again() {
        let job = Job::new(false, Spares::new(4, 1 << 20));
        job.grow_to(3);
        job.deliver_frame(0, frame(0, &[1, 2, 3]));
        assert_eq!(job.peek::<u64>(2, None).unwrap().unwrap(), 3);
        assert_eq!(job.peek::<u64>(0, None).unwrap().unwrap(), 1);
        assert_eq!(job.peek::<u64>(1, None).unwrap().unwrap(), 2);
        let mut out = VecDeque::new();
        job.take_run::<u64>(0, 3, &mut out);
        assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn an_overrunning_entry_is_its_items_error_and_stops_the_run() {
        let job = Job::new(false, Spares::new(4, 1 << 20));
        job.grow_to(3);
        let mut f = frame(0, &[7, 8, 9]);
        f.truncate(f.len() - 1);
        job.deliver_frame(0, f);
        let mut out = Vec::new();
        match job.take_run_into::<u64>(0, 3, &mut out) {
            Err(ProcessError::Ipc { reason }) => assert!(reason.contains("overruns"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(out, [7, 8]);
        assert_eq!(job.succeeded(2), Some(false));
        // Cut inside entry 1 of 3: items 1 and 2 both fail (none waits forever).
        let job = Job::new(false, Spares::new(4, 1 << 20));
        job.grow_to(3);
        let f = frame(0, &[7, 8, 9]);
        job.deliver_frame(0, f[..RESULTS_HEADER + RESULT_HEADER + 1 + 2].to_vec());
        assert_eq!(job.succeeded(0), Some(true));
        assert_eq!(job.succeeded(1), Some(false));
        let mut out = VecDeque::new();
        job.take_run::<u64>(0, 3, &mut out);
        let out: Vec<_> = out.into_iter().collect();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().ok(), Some(&7));
        for r in &out[1..] {
            assert!(
                matches!(r, Err(ProcessError::Ipc { reason }) if reason.contains("entry 1")),
                "{r:?}"
            );
        }
    }
}
