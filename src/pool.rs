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

mod encoding;
mod job;
mod results;
mod spares;
mod submit;
mod supervisor;

pub use results::{AsyncResult, Imap};

use crate::error::ProcessError;
use crate::process::{DEFAULT_PROCESS_MESSAGE_SIZE, check_message_size, ensure_initialized};
use encoding::{Encoding, Plain, Postcard};
use job::Job;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use submit::Submitter;
use supervisor::{Config, Shared};

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
            (lo, Some(hi)) if lo == hi => self.map_chunked(f, Postcard { items, len: lo }, lo.div_ceil(n).max(1)),
            _ => {
                let items: Vec<A> = items.collect();
                let len = items.len();
                let items = Postcard {
                    items: items.into_iter(),
                    len,
                };
                self.map_chunked(f, items, len.div_ceil(n).max(1))
            }
        }
    }

    /// The map family's one loop, for either [`Encoding`]: `imap` with a window of
    /// everything, without its per-item `Result`s. Every chunk of at most `chunksize` items
    /// is queued as soon as it is cut (workers start while the rest is cut), then the
    /// results go straight into the output. Not inline: its loops are the per-item cost, and
    /// they inline what they call only as a function of their own.
    #[inline(never)]
    fn map_chunked<A, R, E: Encoding<A, R>>(
        &self,
        f: fn(A) -> R,
        items: E,
        chunksize: usize,
    ) -> Result<Vec<R>, ProcessError> {
        let mut sub = items.submitter(&self.shared, f, chunksize)?;
        let job = sub.job.clone();
        let count = items.queue(&mut sub);
        sub.flush();
        drop(sub);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            E::take_run_into(&job, out.len(), count - out.len(), &mut out)?;
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
        self.map_chunked(f, Plain(items), chunksize)
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
        self.pool.map_chunked(f, Postcard { items, len }, self.chunksize)
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
        self.pool.map_chunked(f, Plain(items), self.chunksize)
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
