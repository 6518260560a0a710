//! `Pool`: a fixed number of worker processes running `fn(A) -> R` tasks, as Python's
//! `multiprocessing.Pool` does, with tasks and results carried over one
//! [`Pipe`](crate::Pipe) per worker in shared memory.
//!
//! ```no_run
//! use shmproc::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), shmproc::ProcessError> {
//!     shmproc::init(); // first thing in main, see `shmproc::process`
//!     let pool = Pool::new(3)?;
//!     assert_eq!(pool.map(square, 1..=10)?, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
//!     let r = pool.apply_async(square, 12);
//!     assert_eq!(r.get()?, 144);
//!     Ok(())
//! }
//! ```
//!
//! Workers are children as [`Process`](crate::Process) starts them (same executable,
//! [`init`](crate::init) first in `main`, [`test_support!`](crate::test_support) in test
//! binaries), that serve tasks until the pool stops them.
//!
//! # A worker that dies does not take the pool with it
//!
//! When a worker dies in the middle of a task (SIGKILL, abort, out of memory, a call to
//! `std::process::exit`), Python's `Pool` waits forever for its result and
//! `ProcessPoolExecutor` breaks for good (`BrokenProcessPool`). Here that task's result is
//! [`ProcessError::WorkerDied`] with the worker's pid and signal or exit code, the tasks
//! the worker had fetched but not started go to other workers, a new worker takes its
//! place, and every other task completes.
//!
//! The pool knows which tasks each worker holds because it hands them out itself: one
//! thread per worker slot reads that worker's pipe, and tasks go to a worker with fewer
//! than `prefetch` (default 2) in hand. With `chunksize > 1` a task is a chunk of items;
//! a worker reports a chunk's results at least every 10 ms while it works through it, so
//! the items that get `WorkerDied` are those of the last 10 ms or so (for slow items, the
//! one that was running), never those already reported.
//!
//! A panic in a task is that task's [`ProcessError::Panicked`]; the worker lives on.
//!
//! # Python names
//!
//! | Python | shmproc |
//! |---|---|
//! | `Pool(n)`, `Pool()` | [`Pool::new(n)`](Pool::new), [`Pool::builder()`](Pool::builder)`.build()` (one worker per CPU) |
//! | `Pool(maxtasksperchild=k)` | [`PoolBuilder::max_tasks_per_child`] |
//! | `apply(f, (x,))` | [`apply(f, x)`](Pool::apply) |
//! | `apply_async(f, (x,))`, `.get()`, `.get(timeout)`, `.ready()`, `.successful()` | [`apply_async`](Pool::apply_async), [`get`](AsyncResult::get), [`get_timeout`](AsyncResult::get_timeout), [`ready`](AsyncResult::ready), [`successful`](AsyncResult::successful) |
//! | `map(f, it)`, `map(f, it, chunksize)` | [`map(f, it)`](Pool::map), [`chunksize(n).map(f, it)`](Pool::chunksize); for plain data (numbers, `#[repr(C)]` structs of numbers): [`map_pod(f, &items)`](Pool::map_pod), no encoding |
//! | `imap`, `imap_unordered` | [`imap`](Pool::imap), [`imap_unordered`](Pool::imap_unordered): iterators of `Result<R, ProcessError>` |
//! | `starmap(f, [(a, b), ...])` | [`starmap`](Pool::starmap): `f` takes the tuple, `fn f((a, b): (A, B))` |
//! | `close()`, `join()`, `terminate()` | [`close`](Pool::close), [`join`](Pool::join), [`terminate`](Pool::terminate); dropping the pool terminates it, like leaving a `with Pool() as p:` block |
//! | `Manager().Queue()` passed to workers | a named [`MessageQueue`](crate::MessageQueue) or [`Queue`](crate::Queue): pass its name, workers `open` it |

mod job;
mod spares;
mod supervisor;

use crate::codec;
use crate::error::ProcessError;
use crate::process::wire::{self, FnRef, ITEM_HEADER, RESULTS_HEADER, TASK_HEADER, TASK_POD_HEADER, TaskFrame};
use crate::process::{DEFAULT_PROCESS_MESSAGE_SIZE, check_message_size, ensure_initialized};
use job::Job;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use supervisor::{Chunk, Config, Shared};

/// Options for a [`Pool`]: worker count, `max_tasks_per_child`, prefetch, message size.
#[derive(Clone, Debug)]
pub struct PoolBuilder {
    processes: Option<usize>,
    max_tasks_per_child: Option<u64>,
    prefetch: usize,
    max_message_size: usize,
    name: Option<String>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder::new()
    }
}

impl PoolBuilder {
    /// One worker per CPU, workers that live as long as the pool, a prefetch of 2, messages
    /// of up to [`DEFAULT_PROCESS_MESSAGE_SIZE`].
    pub fn new() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            max_tasks_per_child: None,
            prefetch: 2,
            max_message_size: DEFAULT_PROCESS_MESSAGE_SIZE,
            name: None,
        }
    }

    /// Number of worker processes (default: [`std::thread::available_parallelism`]).
    pub fn processes(mut self, n: usize) -> PoolBuilder {
        self.processes = Some(n);
        self
    }

    /// A worker exits after this many tasks (chunks) and a new one replaces it (Python's
    /// `maxtasksperchild`, e.g. to release memory a task leaks). Default: no limit.
    pub fn max_tasks_per_child(mut self, n: u64) -> PoolBuilder {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// How many tasks (chunks) a worker may hold at once, the one it runs included
    /// (default 2, at least 1). More hides the hand-over latency; fewer spreads uneven
    /// tasks better.
    pub fn prefetch(mut self, n: usize) -> PoolBuilder {
        self.prefetch = n;
        self
    }

    /// Largest task or result message in bytes (default [`DEFAULT_PROCESS_MESSAGE_SIZE`]).
    /// A chunk is cut short to fit; a single item or result larger than this fails alone
    /// with [`ProcessError::TooLarge`].
    pub fn max_message_size(mut self, bytes: usize) -> PoolBuilder {
        self.max_message_size = bytes;
        self
    }

    /// A name for the worker processes (`ps` shows its first 15 bytes).
    pub fn name(mut self, name: impl Into<String>) -> PoolBuilder {
        self.name = Some(name.into());
        self
    }

    /// Starts the workers and waits until each is ready.
    ///
    /// # Errors
    /// `NotInitialized` (no [`init`](crate::init) call), `InvalidArgument`, and whatever
    /// kept a worker from starting (`Spawn`, `Pipe`, `Refused`, or `NoResult` for a test
    /// binary without [`test_support!`](crate::test_support)).
    pub fn build(&self) -> Result<Pool, ProcessError> {
        ensure_initialized()?;
        check_message_size(self.max_message_size)?;
        let processes = match self.processes {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if processes == 0 || self.prefetch == 0 || self.max_tasks_per_child == Some(0) {
            return Err(ProcessError::InvalidArgument {
                what: "processes, prefetch and max_tasks_per_child must be at least 1".to_owned(),
            });
        }
        let shared = Shared::new(Config {
            processes,
            prefetch: self.prefetch,
            max_tasks_per_child: self.max_tasks_per_child,
            max_message_size: self.max_message_size,
            name: self.name.clone(),
        });
        let mut threads = Vec::with_capacity(processes);
        for i in 0..processes {
            let s = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("shmproc-pool-{i}"))
                .spawn(move || supervisor::slot_main(s, i));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.terminate();
                    threads.into_iter().for_each(|t: JoinHandle<()>| drop(t.join()));
                    return Err(ProcessError::Spawn(e));
                }
            }
        }
        let pool = Pool {
            shared,
            threads: Mutex::new(threads),
        };
        pool.shared.wait_started()?;
        Ok(pool)
    }
}

/// A pool of worker processes (Python's `multiprocessing.Pool`). See the [module
/// documentation](crate::pool).
///
/// All methods take `&self`, so one pool can serve several threads. Dropping the pool
/// terminates it: call [`join`](Pool::join) first to let queued tasks finish.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// A pool of `processes` workers, started and ready.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool, ProcessError> {
        PoolBuilder::new().processes(processes).build()
    }

    /// A builder for the other options.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// Number of worker slots.
    pub fn processes(&self) -> usize {
        self.shared.config.processes
    }

    /// Process ids of the workers serving now (a replaced worker has a new pid).
    pub fn pids(&self) -> Vec<u32> {
        self.shared.pids()
    }

    /// Runs `f(args)` in a worker and waits for the result (Python's `apply`).
    ///
    /// # Errors
    /// As [`AsyncResult::get`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, args: A) -> Result<R, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, args).get()
    }

    /// Queues `f(args)` and returns at once with a handle to its result (Python's
    /// `apply_async`). Errors in queueing (a closed pool, arguments too large) show in the
    /// handle's [`get`](AsyncResult::get).
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, args: A) -> AsyncResult<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let job = Job::new(false, self.shared.spares.clone());
        let mut sub = Submitter::new(&self.shared, f, job.clone(), 1);
        sub.add(&args);
        sub.flush();
        AsyncResult {
            job,
            _result: PhantomData,
        }
    }

    /// `f` over every item, results in input order (Python's `map`). The first error (in
    /// input order) is returned; use [`imap`](Pool::imap) to see every item's outcome.
    ///
    /// The items are cut into chunks of `ceil(len / (4 * processes))` as Python does; see
    /// [`chunksize`](Pool::chunksize) to choose. Each chunk is queued as soon as it is cut,
    /// so workers start while the rest is encoded; an input whose exact length its
    /// iterator does not tell is collected first.
    ///
    /// # Errors
    /// The first item's error, as [`AsyncResult::get`].
    pub fn map<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        // The length decides the chunk size. An iterator that knows its length exactly
        // (a `Vec`, a range, `iter().copied()`) is encoded as it goes; any other is
        // collected first, as Python's `map` does with `list(iterable)`.
        let items = items.into_iter();
        let n = 4 * self.processes();
        match items.size_hint() {
            (lo, Some(hi)) if lo == hi => self.map_chunked(f, items, lo, lo.div_ceil(n).max(1)),
            _ => {
                let items: Vec<A> = items.collect();
                let len = items.len();
                self.map_chunked(f, items.into_iter(), len, len.div_ceil(n).max(1))
            }
        }
    }

    /// `items` (about `len` of them: a size hint may be wrong, and the count is what it
    /// is) in chunks of `chunksize`. Not inline: its loops are the per-item cost, and they
    /// inline what they call only as a function of their own.
    #[inline(never)]
    fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl Iterator<Item = A>,
        len: usize,
        chunksize: usize,
    ) -> Result<Vec<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        // `imap` with a window of everything, without its per-item `Result`s: every chunk
        // is queued as soon as it is cut (workers start while we encode the rest), then
        // the results are decoded straight into the output.
        let job = Job::new(false, self.shared.spares.clone());
        // Capped: a size hint is only a hint.
        job.reserve(len.min(1 << 24));
        let mut sub = Submitter::new(&self.shared, f, job.clone(), chunksize);
        let (mut count, mut in_chunk) = (0, 0);
        for item in items {
            sub.add(&item);
            count += 1;
            in_chunk += 1;
            if in_chunk == chunksize {
                sub.flush();
                in_chunk = 0;
            }
        }
        sub.flush();
        drop(sub);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            job.take_run_into(out.len(), count - out.len(), &mut out)?;
        }
        Ok(out)
    }

    /// [`map`](Pool::map) for plain data: `f` over every item of a slice, results in input
    /// order, with items and results carried as their raw bytes.
    ///
    /// Use it when the items and the results are [`bytemuck::Pod`] (numbers, arrays of
    /// them, `#[repr(C)]` structs of numbers without padding, as for
    /// [`Queue`](crate::Queue)): a chunk of items goes to its worker as one copy of the
    /// slice's bytes, the worker reads each item straight from them and writes each result's
    /// bytes, and the results are copied into the output a run at a time. There is no
    /// encoding and no per-item header, so the cost per item is a small part of `map`'s for
    /// trivial functions (see `cargo bench -p shmproc-bench --bench pool`). For anything else
    /// (strings, vectors, enums, references) use `map`.
    ///
    /// The guarantees are `map`'s: chunks of `ceil(len / (4 * processes))` items as in
    /// Python (or [`chunksize(n).map_pod`](Chunked::map_pod)), cut shorter to fit the
    /// maximum message size; the first error in input order is returned; a panic is the
    /// `Panicked` of the item that panicked, and the worker goes on with the next item; a
    /// worker that dies gives `WorkerDied` to the items of its chunk it had not reported yet
    /// (it reports at least every 10 ms) and the other chunks complete;
    /// `max_tasks_per_child` counts chunks.
    ///
    /// A worker runs a chunk's items in batches with one `catch_unwind` each (sized to take
    /// about a millisecond, one item at first), counting the items it completed as it goes,
    /// so after a panic it knows which item panicked without running any item twice.
    ///
    /// ```
    /// use shmproc::Pool;
    ///
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct Point {
    ///     x: f32,
    ///     y: f32,
    /// }
    ///
    /// fn norm2(p: Point) -> f32 {
    ///     p.x * p.x + p.y * p.y
    /// }
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// fn main() -> Result<(), shmproc::ProcessError> {
    ///     shmproc::init(); // first thing in main, see `shmproc::process`
    ///     let pool = Pool::new(2)?;
    ///     let items: Vec<u64> = (1..=100_000).collect();
    ///     let squares = pool.map_pod(square, &items)?;
    ///     assert_eq!(squares[..3], [1, 4, 9]);
    ///     let points = [Point { x: 3.0, y: 4.0 }, Point { x: 1.0, y: 0.0 }];
    ///     assert_eq!(pool.map_pod(norm2, &points)?, [25.0, 1.0]);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    /// The first item's error, as [`AsyncResult::get`]; `InvalidArgument` for an `A` or
    /// `R` of size 0, `TooLarge` for one larger than a message holds; `UnsupportedFunction`
    /// as for `map`.
    pub fn map_pod<A, R>(&self, f: fn(A) -> R, items: &[A]) -> Result<Vec<R>, ProcessError>
    where
        A: bytemuck::Pod,
        R: bytemuck::Pod,
    {
        let chunksize = items.len().div_ceil(4 * self.processes()).max(1);
        self.map_pod_chunked(f, items, chunksize)
    }

    /// `map_pod` in chunks of (at most) `chunksize` items.
    fn map_pod_chunked<A, R>(&self, f: fn(A) -> R, items: &[A], chunksize: usize) -> Result<Vec<R>, ProcessError>
    where
        A: bytemuck::Pod,
        R: bytemuck::Pod,
    {
        let (asize, rsize) = (size_of::<A>(), size_of::<R>());
        if asize == 0 || rsize == 0 {
            return Err(ProcessError::InvalidArgument {
                what: "map_pod needs items and results of at least one byte; use map".to_owned(),
            });
        }
        let max = self.shared.config.max_message_size;
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
        let job = Job::new_pod(rsize, self.shared.spares.clone());
        job.grow_to(items.len());
        for (k, chunk) in items.chunks(per_chunk).enumerate() {
            let base = k * per_chunk;
            let id = self.shared.next_id();
            let mut frame = self.shared.spares.take();
            wire::pod_task_header(&mut frame, id, fref, chunk.len() as u32, asize as u32, rsize as u32);
            frame.extend_from_slice(bytemuck::cast_slice(chunk));
            let chunk = Chunk {
                id,
                frame,
                job: job.clone(),
                base,
                count: chunk.len() as u32,
                answered: 0,
            };
            // Each chunk is queued as soon as it is cut, so workers start at once.
            if let Err((e, _)) = self.shared.submit(vec![chunk]) {
                job.fail_many(base, items.len() - base, e);
                break;
            }
        }
        let mut out = Vec::with_capacity(items.len());
        while out.len() < items.len() {
            job.take_run_pod_into(out.len(), items.len() - out.len(), &mut out)?;
        }
        Ok(out)
    }

    /// Like [`map`](Pool::map) for a function of a tuple: Python's `starmap(f, [(a, b),
    /// ...])` calls `f(a, b)`; here `f` takes the tuple, `fn f((a, b): (A, B)) -> R`.
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn starmap<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.map(f, items)
    }

    /// `f` over the items lazily, one result per item in input order, each a `Result`
    /// (Python's `imap`). Items are taken from `items` as results are consumed, a bounded
    /// number ahead, so `items` may be endless. Chunks of 1 item unless
    /// [`chunksize`](Pool::chunksize) says otherwise.
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, items: I) -> Imap<'_, I::IntoIter, A, R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.chunksize(1).imap(f, items)
    }

    /// [`imap`](Pool::imap) with results in the order they finish (Python's
    /// `imap_unordered`).
    pub fn imap_unordered<A, R, I>(&self, f: fn(A) -> R, items: I) -> Imap<'_, I::IntoIter, A, R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.chunksize(1).imap_unordered(f, items)
    }

    /// The map family with items sent `chunksize` at a time (Python's `chunksize`
    /// argument): `pool.chunksize(100).map(f, items)`. Larger chunks cost less per item;
    /// smaller ones spread uneven work better and lose fewer items when a worker dies.
    pub fn chunksize(&self, chunksize: usize) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: chunksize.max(1),
        }
    }

    /// Takes no new tasks; workers exit once every queued task is done (Python's
    /// `close`).
    pub fn close(&self) {
        self.shared.close();
    }

    /// Closes the pool, then waits until every queued task is done and every worker has
    /// exited (Python's `close(); join()`).
    pub fn join(&self) {
        self.close();
        self.join_threads();
    }

    /// Kills every worker now (SIGKILL); tasks not finished get
    /// [`ProcessError::Terminated`] (Python's `terminate`). Waits for the workers to be
    /// reaped.
    pub fn terminate(&self) {
        self.shared.terminate();
        self.join_threads();
    }

    fn join_threads(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("pids", &self.pids())
            .finish()
    }
}

/// The map family of a [`Pool`] with a chosen chunk size ([`Pool::chunksize`]).
#[derive(Clone, Copy, Debug)]
pub struct Chunked<'p> {
    pool: &'p Pool,
    chunksize: usize,
}

impl<'p> Chunked<'p> {
    /// [`Pool::map`] in chunks of this size.
    ///
    /// # Errors
    /// As [`Pool::map`].
    pub fn map<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let items = items.into_iter();
        let len = items.size_hint().0;
        self.pool.map_chunked(f, items, len, self.chunksize)
    }

    /// [`Pool::map_pod`] in chunks of this size (cut shorter to fit the maximum message
    /// size).
    ///
    /// # Errors
    /// As [`Pool::map_pod`].
    pub fn map_pod<A, R>(&self, f: fn(A) -> R, items: &[A]) -> Result<Vec<R>, ProcessError>
    where
        A: bytemuck::Pod,
        R: bytemuck::Pod,
    {
        self.pool.map_pod_chunked(f, items, self.chunksize)
    }

    /// [`Pool::starmap`] in chunks of this size.
    ///
    /// # Errors
    /// As [`Pool::map`].
    pub fn starmap<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.map(f, items)
    }

    /// [`Pool::imap`] in chunks of this size.
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, items: I) -> Imap<'p, I::IntoIter, A, R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        Imap::new(self.pool, f, items.into_iter(), self.chunksize, self.window(), false)
    }

    /// [`Pool::imap_unordered`] in chunks of this size.
    pub fn imap_unordered<A, R, I>(&self, f: fn(A) -> R, items: I) -> Imap<'p, I::IntoIter, A, R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        Imap::new(self.pool, f, items.into_iter(), self.chunksize, self.window(), true)
    }

    /// Items an `imap` keeps in flight: enough chunks to keep every worker's prefetch full
    /// twice over.
    fn window(&self) -> usize {
        let c = &self.pool.shared.config;
        self.chunksize.saturating_mul(c.processes * (c.prefetch + 1) * 2)
    }
}

/// Cuts a call's items into task frames and queues them.
struct Submitter<'s, A> {
    shared: &'s Shared,
    f: Result<FnRef, ProcessError>,
    job: Arc<Job>,
    chunksize: usize,
    max: usize,
    frame: Option<(u64, TaskFrame, usize)>,
    /// Index in `job` of the next item.
    next_index: usize,
    ready: Vec<Chunk>,
    /// Set once queueing failed: every later item gets this error.
    failed: Option<ProcessError>,
    _args: PhantomData<fn(A)>,
}

impl<'s, A: Serialize> Submitter<'s, A> {
    fn new<R>(shared: &'s Shared, f: fn(A) -> R, job: Arc<Job>, chunksize: usize) -> Self
    where
        A: DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        Submitter {
            shared,
            f: FnRef::new(f),
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
    fn add(&mut self, item: &A) {
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
    fn add_slow(&mut self, item: &A) {
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
    fn flush(&mut self) {
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

/// The result of [`Pool::apply_async`]: Python's `AsyncResult`.
///
/// [`get`](AsyncResult::get) may be called more than once; each call decodes the result
/// afresh.
pub struct AsyncResult<R> {
    job: Arc<Job>,
    _result: PhantomData<fn() -> R>,
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
    fn new(pool: &'p Pool, f: fn(A) -> R, input: I, chunksize: usize, window: usize, unordered: bool) -> Self {
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
