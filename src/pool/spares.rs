//! Buffers a pool keeps for reuse between calls: frame buffers and one per-item table.

use std::sync::{Arc, Mutex};

/// Frame buffers kept for reuse: task frames once their chunk is answered, results frames
/// once their entries are taken. A `map` of many items moves megabytes of frames; fresh
/// allocations of that size often come from `mmap`, so that every page of them faults
/// in again on each call (the allocator's choice, which depends on the whole process's
/// heap). Bounded in count and in bytes.
///
/// It also keeps one job's per-item table (a `Vec<T>`, of the job's item states) for the
/// next job: a `map` of 100 000 items has an 800 KB table, which otherwise faults in again
/// (and, grown by doubling, is copied) on every call.
pub(crate) struct Spares<T> {
    /// The spare buffers and the sum of their capacities.
    bufs: Mutex<(Vec<Vec<u8>>, usize)>,
    /// Most buffers kept.
    max_count: usize,
    /// Most bytes kept in buffers, and the largest table kept.
    max_bytes: usize,
    /// The spare item table (empty, with its capacity).
    table: Mutex<Vec<T>>,
}

impl<T> Spares<T> {
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> Arc<Spares<T>> {
        Arc::new(Spares {
            bufs: Mutex::new((Vec::new(), 0)),
            max_count,
            max_bytes,
            table: Mutex::new(Vec::new()),
        })
    }

    /// An empty item table, with room from an earlier job if one is spare.
    pub(crate) fn take_table(&self) -> Vec<T> {
        std::mem::take(&mut *self.table.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Keeps `table` for a later job if it is larger than the one kept (and not larger
    /// than the byte bound).
    pub(crate) fn give_table(&self, mut table: Vec<T>) {
        if table.capacity() * size_of::<T>() > self.max_bytes {
            return;
        }
        table.clear();
        let mut g = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.capacity() > g.capacity() {
            *g = table;
        }
    }

    /// An empty buffer, with room from an earlier frame if one is spare.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut g = self.bufs.lock().unwrap_or_else(|p| p.into_inner());
        match g.0.pop() {
            Some(b) => {
                g.1 -= b.capacity();
                b
            }
            None => Vec::new(),
        }
    }

    /// Keeps `buf` for a later frame if there is room for it.
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > self.max_bytes {
            return;
        }
        buf.clear();
        let mut g = self.bufs.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.len() < self.max_count && g.1 + cap <= self.max_bytes {
            g.1 += cap;
            g.0.push(buf);
        }
    }
}
