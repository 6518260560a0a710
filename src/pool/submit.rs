//! `Submitter`: cuts a call's items into task frames, encoding each straight into its
//! chunk, and queues the chunks with the supervisor.

use super::job::Job;
use super::supervisor::{Chunk, Shared};
use crate::codec;
use crate::error::ProcessError;
use crate::process::wire::{self, FnRef, ITEM_HEADER, TASK_HEADER, TaskFrame};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;

/// Cuts a call's items into task frames and queues them.
pub(super) struct Submitter<'s, A> {
    shared: &'s Shared,
    f: Result<FnRef, ProcessError>,
    pub(super) job: Arc<Job>,
    pub(super) chunksize: usize,
    max: usize,
    frame: Option<(u64, TaskFrame, usize)>,
    /// Index in `job` of the next item.
    next_index: usize,
    ready: Vec<Chunk>,
    /// Set once queueing failed: every later item gets this error.
    failed: Option<ProcessError>,
    _args: PhantomData<fn(A)>,
}

impl<'s, A> Submitter<'s, A> {
    /// A submitter of postcard items for `f` (see [`add`](Submitter::add)).
    pub(super) fn new<R>(shared: &'s Shared, f: fn(A) -> R, job: Arc<Job>, chunksize: usize) -> Self
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        Self::with_fn(shared, FnRef::new(f), job, chunksize)
    }

    /// A submitter for the function `f` names (or, if naming it failed, that fails every
    /// item with the error).
    pub(super) fn with_fn(shared: &'s Shared, f: Result<FnRef, ProcessError>, job: Arc<Job>, chunksize: usize) -> Self {
        Submitter {
            shared,
            f,
            job,
            chunksize,
            max: shared.config.max_message_size,
            frame: None,
            next_index: 0,
            ready: Vec::new(),
            failed: None,
            _args: PhantomData,
        }
    }

    /// Adds one item (index: the job's next), encoding it straight into the open chunk.
    /// Always inline: this is the per-item loop of `map`, and LLVM's own choice varies
    /// with the shape of the caller's loop.
    #[inline(always)]
    pub(super) fn add(&mut self, item: &A)
    where
        A: Serialize,
    {
        // The common case, inline: an item that encodes and fits in the open chunk.
        if self.failed.is_none()
            && let Some((_, frame, _)) = &mut self.frame
        {
            let mark = frame.buf.len();
            frame.buf.extend_from_slice(&[0; ITEM_HEADER]);
            if codec::append(item, &mut frame.buf).is_ok() {
                let size = frame.buf.len() - mark - ITEM_HEADER;
                if frame.buf.len() <= self.max && TASK_HEADER + ITEM_HEADER + size <= self.max {
                    frame.buf[mark..mark + ITEM_HEADER].copy_from_slice(&(size as u32).to_le_bytes());
                    frame.count += 1;
                    self.next_index += 1;
                    if frame.count as usize >= self.chunksize {
                        self.close_frame();
                    }
                    return;
                }
            }
            // Not so simple: undo, and take the general way (which encodes it again).
            frame.buf.truncate(mark);
        }
        self.add_slow(item);
    }

    /// [`add`](Submitter::add) for every case: the first item of a chunk, one that does
    /// not fit after the others, one that fails to encode or is too large, a failed call.
    #[inline(never)]
    fn add_slow(&mut self, item: &A)
    where
        A: Serialize,
    {
        let index = self.next_index;
        self.next_index += 1;
        let fref = match (&self.failed, &self.f) {
            (Some(e), _) | (None, Err(e)) => {
                let e = e.replicate();
                self.fail_now(index, e);
                return;
            }
            (None, Ok(f)) => *f,
        };
        let (max, chunksize) = (self.max, self.chunksize);
        let (frame, mark) = self.open_frame(fref, index);
        let encoded = codec::append(item, &mut frame.buf);
        let size = frame.item_size(mark);
        let failure = match encoded {
            Err(reason) => Some(ProcessError::Encode {
                what: "the arguments",
                reason,
            }),
            Ok(()) if TASK_HEADER + ITEM_HEADER + size > max => Some(ProcessError::TooLarge {
                what: "the arguments",
                size,
                max: max - TASK_HEADER - ITEM_HEADER,
            }),
            Ok(()) => None,
        };
        if let Some(e) = failure {
            frame.take_item(mark);
            // Chunks are runs of consecutive items: the chunk before this item ends here
            // (one opened for it alone is dropped).
            if frame.count == 0 {
                self.frame = None;
            } else {
                self.close_frame();
            }
            self.fail_now(index, e);
            return;
        }
        if frame.buf.len() > max {
            // It does not fit after the items before it: they go as one chunk, and this one
            // starts the next.
            let bytes = frame.take_item(mark);
            self.close_frame();
            let (frame, mark) = self.open_frame(fref, index);
            frame.buf.truncate(mark);
            frame.push(&bytes);
        } else {
            frame.end_item(mark);
            if frame.count == 1 {
                // Room for a whole chunk of items like this one, within the maximum.
                let guess = chunksize.saturating_mul(ITEM_HEADER + size);
                frame.buf.reserve(guess.min(max).saturating_sub(frame.buf.len()));
            }
        }
        if self
            .frame
            .as_ref()
            .is_some_and(|(_, f, _)| f.count as usize >= chunksize)
        {
            self.close_frame();
        }
    }

    /// Adds the plain-data items `chunk` (the job's next) as one chunk of their own, with
    /// results of `rsize` bytes: its frame is the plain-data header and one copy of the
    /// items' bytes. Any open chunk of postcard items is closed first.
    pub(super) fn add_pod_chunk(&mut self, chunk: &[A], rsize: usize)
    where
        A: bytemuck::Pod,
    {
        self.close_frame();
        let base = self.next_index;
        self.next_index += chunk.len();
        self.job.grow_to(self.next_index);
        let fref = match (&self.failed, &self.f) {
            (Some(e), _) | (None, Err(e)) => {
                let e = e.replicate();
                self.job.fail_many(base, chunk.len(), e);
                return;
            }
            (None, Ok(f)) => *f,
        };
        let id = self.shared.next_id();
        let mut frame = self.shared.spares.take();
        let (count, asize) = (chunk.len() as u32, size_of::<A>() as u32);
        wire::pod_task_header(&mut frame, id, fref, count, asize, rsize as u32);
        frame.extend_from_slice(bytemuck::cast_slice(chunk));
        self.ready.push(Chunk {
            id,
            frame,
            job: self.job.clone(),
            base,
            count,
            answered: 0,
        });
    }

    /// The open chunk (opened for item `index` if there is none) and where the next item
    /// begins in it.
    fn open_frame(&mut self, fref: FnRef, index: usize) -> (&mut TaskFrame, usize) {
        if self.frame.is_none() {
            let id = self.shared.next_id();
            let mut frame = TaskFrame::new(id, fref);
            let mut buf = self.shared.spares.take();
            if buf.capacity() > 0 {
                buf.extend_from_slice(&frame.buf);
                frame.buf = buf;
            }
            self.frame = Some((id, frame, index));
        }
        match &mut self.frame {
            Some((_, frame, _)) => {
                let mark = frame.begin_item();
                (frame, mark)
            }
            None => unreachable!("opened above"),
        }
    }

    /// Item `index` fails before it is sent.
    fn fail_now(&self, index: usize, e: ProcessError) {
        self.job.grow_to(index + 1);
        self.job.fail(index, e);
    }

    fn close_frame(&mut self) {
        if let Some((id, frame, base)) = self.frame.take() {
            let count = frame.count;
            self.job.grow_to(base + count as usize);
            self.ready.push(Chunk {
                id,
                frame: frame.finish(),
                job: self.job.clone(),
                base,
                count,
                answered: 0,
            });
        }
    }

    /// Queues every complete chunk, and the partial one too.
    pub(super) fn flush(&mut self) {
        self.close_frame();
        self.submit_ready();
    }

    /// Queues the chunks closed so far.
    fn submit_ready(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        let chunks = std::mem::take(&mut self.ready);
        if let Err((e, failed)) = self.shared.submit(chunks) {
            for c in failed {
                self.job.fail_many(c.base, c.count as usize, e.replicate());
            }
            self.failed = Some(e);
        }
    }
}
