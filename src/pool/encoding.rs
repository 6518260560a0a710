//! How a map call's items go to the workers and its results come back: the one difference
//! between `map` and `map_pod`. [`Pool::map_chunked`](super::Pool) takes the items wrapped in
//! an [`Encoding`]: [`Postcard`] (any serde type, each item encoded into its chunk with its
//! length) or [`Plain`] (`bytemuck::Pod` items and results as their raw bytes, a chunk one
//! copy of a slice).

use super::job::Job;
use super::submit::Submitter;
use super::supervisor::Shared;
use crate::error::ProcessError;
use crate::process::wire::{FnRef, RESULTS_HEADER, TASK_POD_HEADER};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A map call's items, and how they and the results of a `fn(A) -> R` travel.
pub(super) trait Encoding<A, R> {
    /// Checks what can be checked before anything is queued, names `f` for the workers, and
    /// makes the call's job and a submitter of chunks of at most `chunksize` items.
    fn submitter<'s>(
        &self,
        shared: &'s Shared,
        f: fn(A) -> R,
        chunksize: usize,
    ) -> Result<Submitter<'s, A>, ProcessError>;

    /// Cuts the items into chunks and queues each as soon as it is cut; the number of items.
    fn queue(self, sub: &mut Submitter<'_, A>) -> usize;

    /// Waits for item `from`, then moves it and the ready items after it (at most `max`)
    /// onto the end of `out`, taking them; stops at the first item that failed and returns
    /// its error.
    fn take_run_into(job: &Job, from: usize, max: usize, out: &mut Vec<R>) -> Result<(), ProcessError>;
}

/// Items of any serde type (`Pool::map`), about `len` of them: a size hint may be wrong,
/// and the count is what it is.
pub(super) struct Postcard<I> {
    pub(super) items: I,
    pub(super) len: usize,
}

impl<A, R, I> Encoding<A, R> for Postcard<I>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
    I: Iterator<Item = A>,
{
    fn submitter<'s>(
        &self,
        shared: &'s Shared,
        f: fn(A) -> R,
        chunksize: usize,
    ) -> Result<Submitter<'s, A>, ProcessError> {
        let job = Job::new(false, shared.spares.clone());
        // Capped: a size hint is only a hint.
        job.reserve(self.len.min(1 << 24));
        Ok(Submitter::new(shared, f, job, chunksize))
    }

    /// Encodes each item straight into the open chunk ([`Submitter::add`]). Always inline:
    /// this is the per-item loop of `map`, and it belongs in `map_chunked`'s own code.
    #[inline(always)]
    fn queue(self, sub: &mut Submitter<'_, A>) -> usize {
        let chunksize = sub.chunksize;
        let (mut count, mut in_chunk) = (0, 0);
        for item in self.items {
            sub.add(&item);
            count += 1;
            in_chunk += 1;
            if in_chunk == chunksize {
                sub.flush();
                in_chunk = 0;
            }
        }
        count
    }

    fn take_run_into(job: &Job, from: usize, max: usize, out: &mut Vec<R>) -> Result<(), ProcessError> {
        job.take_run_into(from, max, out)
    }
}

/// Plain-data items (`Pool::map_pod`): a chunk is its header and one copy of a run of the
/// slice's bytes, and its results come back as raw bytes, copied into the output a run at a
/// time.
pub(super) struct Plain<'a, A>(pub(super) &'a [A]);

impl<A, R> Encoding<A, R> for Plain<'_, A>
where
    A: bytemuck::Pod,
    R: bytemuck::Pod,
{
    /// Refuses an `A` or `R` of size 0, or one too large for a message; cuts chunks shorter
    /// to fit the maximum message size.
    fn submitter<'s>(
        &self,
        shared: &'s Shared,
        f: fn(A) -> R,
        chunksize: usize,
    ) -> Result<Submitter<'s, A>, ProcessError> {
        let (asize, rsize) = (size_of::<A>(), size_of::<R>());
        if asize == 0 || rsize == 0 {
            return Err(ProcessError::InvalidArgument {
                what: "map_pod needs items and results of at least one byte; use map".to_owned(),
            });
        }
        let max = shared.config.max_message_size;
        for (what, size, header) in [
            ("the arguments", asize, TASK_POD_HEADER),
            ("the result", rsize, RESULTS_HEADER),
        ] {
            if header + size > max || u32::try_from(size).is_err() {
                return Err(ProcessError::TooLarge {
                    what,
                    size,
                    max: max.saturating_sub(header),
                });
            }
        }
        let fref = FnRef::new_pod(f)?;
        let per_chunk = chunksize
            .min((max - TASK_POD_HEADER) / asize)
            .min(u32::MAX as usize)
            .max(1);
        let job = Job::new_pod(rsize, shared.spares.clone());
        Ok(Submitter::with_fn(shared, Ok(fref), job, per_chunk))
    }

    fn queue(self, sub: &mut Submitter<'_, A>) -> usize {
        for chunk in self.0.chunks(sub.chunksize) {
            sub.add_pod_chunk(chunk, size_of::<R>());
            // Each chunk is queued as soon as it is cut, so workers start at once.
            sub.flush();
        }
        self.0.len()
    }

    fn take_run_into(job: &Job, from: usize, max: usize, out: &mut Vec<R>) -> Result<(), ProcessError> {
        job.take_run_pod_into(from, max, out)
    }
}
