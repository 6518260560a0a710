//! Where a pool call's results wait for their reader: one [`Job`] per `apply_async`, `map`
//! or `imap` call.
//!
//! A worker's results frame moves into the job whole; each item records where its entry
//! lies in it. The reader decodes items under the job's lock, a run of ready items at a
//! time, so a result costs no allocation, no reference count and no lock of its own; a
//! frame is freed once every entry in it was taken.

use crate::error::ProcessError;
use crate::process::wire;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// One item's state.
enum Slot {
    /// No outcome yet.
    Waiting,
    /// An entry of frame `frame`: its tag and byte range.
    Entry { frame: u32, tag: u8, start: u32, len: u32 },
    /// Boxed: errors are rare, and a small slot keeps a map of many items cheap.
    Failed(Box<ProcessError>),
    /// Handed to the reader (`imap`).
    Taken,
}

/// The results of one call.
pub(crate) struct Job {
    inner: Mutex<Inner>,
    changed: Condvar,
}

struct Inner {
    items: Vec<Slot>,
    /// Results frames, with how many of their entries are not taken yet.
    frames: Vec<Option<(Vec<u8>, u32)>>,
    free_frames: Vec<u32>,
    /// Indices in the order their outcomes arrived (kept only for `imap_unordered`).
    arrived: Option<VecDeque<usize>>,
}

impl Inner {
    fn is_ready(&self, index: usize) -> bool {
        !matches!(self.items.get(index), Some(Slot::Waiting))
    }

    /// Decodes item `index` as an `R`; with `take`, marks it taken and frees its frame when
    /// that was the frame's last entry.
    fn decode<R: DeserializeOwned>(&mut self, index: usize, take: bool) -> Result<R, ProcessError> {
        let Some(slot) = self.items.get_mut(index) else {
            return Err(lost());
        };
        let out = match slot {
            Slot::Entry { frame, tag, start, len } => {
                let (f, tag, start, len) = (*frame as usize, *tag, *start as usize, *len as usize);
                match self.frames.get_mut(f) {
                    Some(Some((bytes, live))) => {
                        let out = wire::decode_result(tag, &bytes[start..start + len]);
                        if take {
                            *live -= 1;
                            if *live == 0 {
                                self.frames[f] = None;
                                self.free_frames.push(f as u32);
                            }
                        }
                        out
                    }
                    _ => Err(lost()),
                }
            }
            Slot::Failed(e) => Err(e.replicate()),
            Slot::Waiting | Slot::Taken => Err(lost()),
        };
        if take {
            self.items[index] = Slot::Taken;
        }
        out
    }
}

fn lost() -> ProcessError {
    ProcessError::Ipc {
        reason: "a result went missing".to_owned(),
    }
}

impl Job {
    pub(crate) fn new(track_arrival: bool) -> Arc<Job> {
        Arc::new(Job {
            inner: Mutex::new(Inner {
                items: Vec::new(),
                frames: Vec::new(),
                free_frames: Vec::new(),
                arrived: track_arrival.then(VecDeque::new),
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for items up to index `len - 1`. Outcomes for items beyond the room made
    /// are ignored.
    pub(crate) fn grow_to(&self, len: usize) {
        let mut g = self.lock();
        if g.items.len() < len {
            g.items.resize_with(len, || Slot::Waiting);
        }
    }

    /// Makes room in memory for `n` more items (without making them part of the job).
    pub(crate) fn reserve(&self, n: usize) {
        self.lock().items.reserve(n);
    }

    /// Item `index` failed with `e` (unless it has an outcome already).
    pub(crate) fn fail(&self, index: usize, e: ProcessError) {
        self.fail_many(index, 1, |_| e.replicate());
    }

    /// Items `first..first + count` failed with `e()` (those without an outcome yet).
    pub(crate) fn fail_many(&self, first: usize, count: usize, e: impl Fn(usize) -> ProcessError) {
        let mut g = self.lock();
        let g = &mut *g;
        for index in first..first + count {
            if let Some(slot @ Slot::Waiting) = g.items.get_mut(index) {
                *slot = Slot::Failed(Box::new(e(index)));
                if let Some(a) = &mut g.arrived {
                    a.push_back(index);
                }
            }
        }
        self.changed.notify_all();
    }

    /// Records the results in `frame` (a results frame whose header was checked) as the
    /// outcomes of items `first`, `first + 1`, ...: one lock and one wake-up for all.
    pub(crate) fn deliver_frame(&self, first: usize, frame: Vec<u8>) {
        let Ok(results) = wire::parse_results(&frame) else {
            return;
        };
        let base = frame.as_ptr() as usize;
        let mut g = self.lock();
        let g = &mut *g;
        let f = match g.free_frames.pop() {
            Some(f) => f,
            None => {
                g.frames.push(None);
                (g.frames.len() - 1) as u32
            }
        };
        let mut live = 0;
        for (index, entry) in (first..).zip(results.entries) {
            let Some(slot @ Slot::Waiting) = g.items.get_mut(index) else {
                continue;
            };
            *slot = match entry {
                Ok((tag, bytes)) => {
                    live += 1;
                    Slot::Entry {
                        frame: f,
                        tag,
                        start: (bytes.as_ptr() as usize - base) as u32,
                        len: bytes.len() as u32,
                    }
                }
                Err(reason) => Slot::Failed(Box::new(ProcessError::Ipc { reason })),
            };
            if let Some(a) = &mut g.arrived {
                a.push_back(index);
            }
        }
        if live > 0 {
            g.frames[f as usize] = Some((frame, live));
        } else {
            g.free_frames.push(f);
        }
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

    /// Whether item `index` has a value (not an error); `None` while it has no outcome.
    pub(crate) fn succeeded(&self, index: usize) -> Option<bool> {
        let g = self.lock();
        match g.items.get(index)? {
            Slot::Waiting => None,
            Slot::Entry { tag, .. } => Some(*tag == wire::ITEM_OK),
            Slot::Failed(_) | Slot::Taken => Some(false),
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
        let mut g = self.lock();
        while !g.is_ready(from) {
            g = match self.wait_on(g, None) {
                Some(g) => g,
                None => return,
            };
        }
        let mut index = from;
        while index < from + max && index < g.items.len() && g.is_ready(index) {
            out.push_back(g.decode(index, true));
            index += 1;
        }
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
