//! Where a pool call's results wait for their reader: one [`Job`] per `apply_async`, `map`
//! or `imap` call, holding each item's outcome as bytes until the caller decodes it.

use crate::error::ProcessError;
use crate::process::wire;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// One item's outcome: a result entry (tag and bytes in a shared frame) or an error.
pub(crate) enum Item {
    Entry {
        tag: u8,
        frame: Arc<Vec<u8>>,
        range: Range<usize>,
    },
    Failed(ProcessError),
}

impl Item {
    /// Decodes the item as an `R`, or gives the error it stands for.
    pub(crate) fn decode<R: DeserializeOwned>(&self) -> Result<R, ProcessError> {
        match self {
            Item::Entry { tag, frame, range } => wire::decode_result(*tag, &frame[range.clone()]),
            Item::Failed(e) => Err(e.replicate()),
        }
    }

    pub(crate) fn is_ok(&self) -> bool {
        matches!(self, Item::Entry { tag: wire::ITEM_OK, .. })
    }
}

/// The results of one call.
pub(crate) struct Job {
    inner: Mutex<Inner>,
    changed: Condvar,
}

struct Inner {
    items: Vec<Option<Item>>,
    /// Indices in the order their outcomes arrived (kept only for `imap_unordered`).
    arrived: Option<VecDeque<usize>>,
}

impl Job {
    pub(crate) fn new(track_arrival: bool) -> Arc<Job> {
        Arc::new(Job {
            inner: Mutex::new(Inner {
                items: Vec::new(),
                arrived: track_arrival.then(VecDeque::new),
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for `n` more items; returns the index of the first.
    pub(crate) fn grow(&self, n: usize) -> usize {
        let mut g = self.lock();
        let first = g.items.len();
        g.items.resize_with(first + n, || None);
        first
    }

    /// Records the outcome of item `index` (the first outcome wins).
    pub(crate) fn deliver(&self, index: usize, item: Item) {
        let mut g = self.lock();
        let Some(slot) = g.items.get_mut(index) else { return };
        if slot.is_some() {
            return;
        }
        *slot = Some(item);
        if let Some(a) = &mut g.arrived {
            a.push_back(index);
        }
        drop(g);
        self.changed.notify_all();
    }

    /// Waits until item `index` has its outcome, then gives `f` a look at it. `None` at the
    /// deadline.
    pub(crate) fn with_item<T>(
        &self,
        index: usize,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Option<Item>) -> T,
    ) -> Option<T> {
        let mut g = self.lock();
        loop {
            match g.items.get_mut(index) {
                Some(slot @ Some(_)) => return Some(f(slot)),
                None => return None,
                Some(None) => {}
            }
            g = self.wait(g, deadline)?;
        }
    }

    /// Waits for the next outcome in arrival order and takes it. `None` at the deadline.
    pub(crate) fn take_arrived(&self, deadline: Option<Instant>) -> Option<Item> {
        let mut g = self.lock();
        loop {
            if let Some(index) = g.arrived.as_mut().and_then(VecDeque::pop_front) {
                return g.items[index].take();
            }
            g = self.wait(g, deadline)?;
        }
    }

    /// Whether item `index` has its outcome.
    pub(crate) fn is_ready(&self, index: usize) -> bool {
        self.lock().items.get(index).is_some_and(Option::is_some)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Inner>, deadline: Option<Instant>) -> Option<MutexGuard<'a, Inner>> {
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
