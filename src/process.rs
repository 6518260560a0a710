//! `Process`: run a Rust function in a child process and get its result back, as Python's
//! `multiprocessing.Process` does, with arguments and results carried over a
//! [`Pipe`](crate::Pipe) in shared memory.
//!
//! ```no_run
//! use shmproc::Process;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), shmproc::ProcessError> {
//!     shmproc::init(); // first thing in main: in a child, this runs the job and exits
//!     let mut p = Process::spawn(square, 7)?;
//!     assert_eq!(p.join()?, 49);
//!     Ok(())
//! }
//! ```
//!
//! # How a child finds its job
//!
//! Forking a multi-threaded Rust program without `exec` is unsound, so a child is a fresh
//! run of the same executable: the parent executes `/proc/self/exe` (the very file it runs,
//! even if a rebuild has replaced its path since) with the arguments
//! `__shmproc_child_entry --exact --nocapture --test-threads=1 -q __shmproc_job=<pipe>`.
//! [`init`], called first thing in `main`, sees them, runs the job and exits the process:
//! `main` never goes on in a child. In the parent, `init` only records that it was called;
//! without it [`Process::spawn`] and [`Pool::new`](crate::Pool::new) fail with
//! [`ProcessError::NotInitialized`], so forgetting it can never start a second copy of your
//! program. Whatever runs before `init` in `main` runs in every child too: call it first.
//! The marker is an argument rather than an environment variable, so programs that a job
//! starts do not inherit it.
//!
//! Functions are plain `fn(A) -> R` pointers, where `A` and `R` are `Serialize +
//! DeserializeOwned`; several arguments travel as a tuple (`fn add((a, b): (u32, u32)) ->
//! u32`). A closure that captures nothing coerces to such a pointer; one that captures its
//! environment does not compile, because its state could not reach the child:
//!
//! ```compile_fail,E0308
//! let offset = 10;
//! let p = shmproc::Process::spawn(move |x: u32| x + offset, 1);
//! ```
//!
//! The parent sends the function's address as an offset from a fixed function of this
//! crate (the whole executable moves by one amount under ASLR), with a fingerprint of the
//! build (the executable's device, inode, size and modification time, and its code layout).
//! A child that finds another build refuses the job ([`ProcessError::Refused`]) instead of
//! jumping to a wrong address. Functions of shared libraries lie elsewhere in every process
//! and are refused before spawning ([`ProcessError::UnsupportedFunction`]).
//!
//! # In `cargo test` integration tests
//!
//! A test binary's `main` belongs to libtest, so it needs one extra line: the
//! [`test_support!`](crate::test_support) macro defines a test named
//! `__shmproc_child_entry` that calls `init()`. The child arguments above make libtest run
//! exactly that test, which runs the job and exits. Every test that starts processes calls
//! `shmproc::init()` first (in the parent it only records the call).
//!
//! ```no_run
//! // tests/my_test.rs
//! shmproc::test_support!();
//!
//! fn double(x: i32) -> i32 {
//!     2 * x
//! }
//!
//! #[test]
//! fn doubles_in_a_child() {
//!     shmproc::init();
//!     assert_eq!(shmproc::Process::spawn(double, 21).unwrap().join().unwrap(), 42);
//! }
//! ```
//!
//! A test binary without the macro runs no test in the child and exits 0: the parent then
//! reports [`ProcessError::NoResult`], whose message names the missing macro. (procspawn
//! relies on a constructor hook here, which its issues #36 and #39 show to be fragile;
//! libtest's own filter needs no hook.) Unit tests in `src/` are a test binary too: put the
//! macro in the crate root's test module if they start processes. Doctests cannot start
//! processes (rustdoc merges them into one binary with its own arguments).
//!
//! # Results, errors and reaping
//!
//! [`join`](Process::join) returns the function's result, or why there is none: it panicked
//! ([`ProcessError::Panicked`] with the message and location; the child also prints the
//! panic as usual), it was killed by a signal ([`ProcessError::Killed`]), or it exited
//! without a result ([`ProcessError::NoResult`]). Children are always reaped: a handle
//! dropped while its child runs hands the child to a background reaper thread, so no zombie
//! is left, and the child still runs its job (as in Python; the result is dropped).
//! Dropping the handle of a *daemon* child kills it. In a build with `panic = "abort"` a
//! panic cannot be caught: the child aborts and `join` reports `Killed { signal: 6 }`
//! (SIGABRT), and a pool reports `WorkerDied`.
//!
//! # Daemon children
//!
//! [`ProcessBuilder::daemon`] makes the kernel SIGKILL the child when its parent dies
//! (`PR_SET_PDEATHSIG`, checked against the parent's pid to close the race with a parent
//! that dies during the spawn). Linux fires this signal when the **thread** that spawned the
//! child exits, not only the process: spawn daemon children from a thread that lives as
//! long as they should (such as `main`). [`Pool`](crate::Pool) spawns its workers from its
//! own long-lived threads for this reason.
//!
//! # Trust
//!
//! A child's job pipe is a segment of mode `0600` whose name stays in `/dev/shm` until the
//! child has connected, so another process of the same user can open it and write it. What
//! such a process can do to the child's jobs:
//!
//! - make the child refuse a task, which comes back as [`ProcessError::Unauthenticated`] (a
//!   pool worker then goes on serving its other tasks);
//! - drop or delay tasks (remove or hold frames), or make the child exit with code 76 by
//!   writing a frame it cannot parse ([`ProcessError::NoResult`]; in a pool,
//!   [`ProcessError::WorkerDied`] and a new worker);
//! - rewrite the arguments, which are not authenticated: postcard arguments then fail to
//!   decode ([`ProcessError::Decode`]), and plain-data arguments
//!   ([`Pool::map_pod`](crate::Pool::map_pod)) are whatever bytes they are;
//! - if it may `ptrace` the child or the parent, read the child's key, and with it forge
//!   tasks (such a process can change either process's memory anyway).
//!
//! It cannot make the child run code the parent did not send. Every task frame carries a
//! sequence number, strictly rising per child, and a SipHash-2-4-128 MAC of its header (the
//! function and trampoline offsets, the task id, the item count and sizes, the sequence
//! number) and of its length, under a random 16-byte key that the parent makes for each
//! child and writes to a pipe on the child's stdin, never to shared memory, the command line
//! or the environment. The child checks the MAC and the sequence number before it reads an
//! offset, and also refuses offsets outside the executable's code segments. The child reads
//! its key first thing (a process started with the child arguments but without a key exits
//! with code 77) and then puts `/dev/null` on its stdin, so tasks see `/dev/null` there, as
//! they would in Python.

mod child;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod spawn;
mod sys;
pub(crate) mod wire;

use crate::error::ProcessError;
use crate::raw::expired;
use crate::{Connection, RecvError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wire::{FnRef, READY, REFUSED, RESULTS, TASK_REFUSED, TaskFrame};

/// Messages each way a `Process` child's pipe buffers.
const CHILD_PIPE_CAPACITY: usize = 4;

pub(crate) use child::{EXIT_MALFORMED, EXIT_NO_KEY};
pub(crate) use spawn::{Launch, Spawned, launch};

/// Default largest message between a parent and a child (arguments, results): 1 MiB.
///
/// The pipe between parent and child holds four messages each way and allocates room for
/// the largest in `/dev/shm` at creation: about 8.4 MiB per child with this default, held
/// while the child runs, and allocating it is most of the cost of starting one. Choose a
/// smaller maximum ([`ProcessBuilder::max_message_size`],
/// [`PoolBuilder::max_message_size`](crate::PoolBuilder::max_message_size))
/// when arguments and results are small. Starting a child fails with
/// [`ProcessError::Pipe`]`(`[`OpenError::NoSpace`](crate::OpenError::NoSpace)`)` when
/// `/dev/shm` lacks that room, instead of a later `SIGBUS` in either process.
pub const DEFAULT_PROCESS_MESSAGE_SIZE: usize = 1 << 20;

/// Smallest accepted maximum message size: room for the frames' headers and a panic report.
const MIN_MESSAGE_SIZE: usize = 1024;

/// Whether `init()` ran in this process (or this is a child serving its job).
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Makes this program able to serve as a child process. **Call it first thing in `main`**
/// (and at the start of each test that starts processes).
///
/// In a child started by [`Process::spawn`] or a [`Pool`](crate::Pool), it runs the job
/// and exits the process: it never returns there. Anywhere else it records that it was
/// called and returns at once. See the [module documentation](crate::process) for how the
/// child is recognised and for the [`test_support!`](crate::test_support) line that test
/// binaries need.
///
/// ```no_run
/// fn triple(x: u32) -> u32 {
///     3 * x
/// }
///
/// fn main() {
///     shmproc::init(); // nothing before this line: it would run in every child too
///     let mut p = shmproc::Process::spawn(triple, 14).expect("spawn");
///     assert_eq!(p.join().expect("join"), 42);
/// }
/// ```
pub fn init() {
    if let Some(pipe) = child::job_pipe() {
        child::child_main(&pipe);
    }
    INITIALIZED.store(true, Ordering::Release);
}

/// `NotInitialized` unless [`init`] ran in this process.
pub(crate) fn ensure_initialized() -> Result<(), ProcessError> {
    if INITIALIZED.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(ProcessError::NotInitialized)
    }
}

/// Lets an integration-test binary serve as a child process: defines the test
/// `__shmproc_child_entry`, which child processes of this binary run. Put it once at the top
/// level of each test file that starts processes, and call [`init`] at the start of each
/// such test.
///
/// ```no_run
/// shmproc::test_support!();
///
/// #[test]
/// fn starts_a_process() {
///     shmproc::init();
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! test_support {
    () => {
        #[test]
        fn __shmproc_child_entry() {
            // In a child, this runs the job and exits; in the parent it does nothing.
            $crate::init();
        }
    };
}

/// Options for [`Process::builder`]: a name, daemon mode and the largest message.
#[derive(Clone, Debug)]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
    max_message_size: usize,
}

impl Default for ProcessBuilder {
    fn default() -> Self {
        ProcessBuilder::new()
    }
}

impl ProcessBuilder {
    /// No name, not a daemon, messages of up to [`DEFAULT_PROCESS_MESSAGE_SIZE`].
    pub fn new() -> ProcessBuilder {
        ProcessBuilder {
            name: None,
            daemon: false,
            max_message_size: DEFAULT_PROCESS_MESSAGE_SIZE,
        }
    }

    /// A name for the child (Python's `name=`): [`Process::name`] returns it, and the child
    /// sets it as its process name (the first 15 bytes show in `ps` and `top`).
    pub fn name(mut self, name: impl Into<String>) -> ProcessBuilder {
        self.name = Some(name.into());
        self
    }

    /// `true`: the child is killed when the parent dies (see the module documentation:
    /// Linux fires this when the spawning *thread* exits), and when its handle is dropped.
    pub fn daemon(mut self, daemon: bool) -> ProcessBuilder {
        self.daemon = daemon;
        self
    }

    /// Largest encoded arguments or result, in bytes (default
    /// [`DEFAULT_PROCESS_MESSAGE_SIZE`], at least 1024).
    pub fn max_message_size(mut self, bytes: usize) -> ProcessBuilder {
        self.max_message_size = bytes;
        self
    }

    /// Starts `f(args)` in a new process.
    ///
    /// # Errors
    /// `NotInitialized` (no [`init`] call), `TooLarge` or `Encode` (the arguments),
    /// `UnsupportedFunction`, `InvalidArgument` (the maximum message size), `Pipe` (for
    /// example [`OpenError::NoSpace`](crate::OpenError::NoSpace): `/dev/shm` lacks room for
    /// the pipe's segment), `Spawn`.
    pub fn spawn<A, R>(&self, f: fn(A) -> R, args: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        ensure_initialized()?;
        check_message_size(self.max_message_size)?;
        let fref = FnRef::new(f)?;
        let mut item = Vec::new();
        wire::encode_into(&args, &mut item, "the arguments")?;
        let mut task = TaskFrame::new(0, fref);
        task.push(&item);
        let task = task.finish();
        if task.len() > self.max_message_size {
            return Err(ProcessError::TooLarge {
                what: "the arguments",
                size: item.len(),
                max: self.max_message_size - (task.len() - item.len()),
            });
        }
        let launch = Launch {
            name: self.name.as_deref(),
            daemon: self.daemon,
            one_shot: true,
            print_panics: true,
            max_message_size: self.max_message_size,
            capacity: CHILD_PIPE_CAPACITY,
        };
        let Spawned { child, conn, .. } = spawn::launch(&launch, Some(task))?;
        Ok(Process {
            pid: child.id(),
            child: Some(child),
            conn: Some(conn),
            name: self.name.clone(),
            daemon: self.daemon,
            status: None,
            taken: false,
            _result: PhantomData,
        })
    }
}

/// Checks a maximum message size given to a builder.
pub(crate) fn check_message_size(bytes: usize) -> Result<(), ProcessError> {
    if (MIN_MESSAGE_SIZE..=crate::MAX_MESSAGE_SIZE).contains(&bytes) {
        Ok(())
    } else {
        Err(ProcessError::InvalidArgument {
            what: format!(
                "max_message_size {bytes} is not in {MIN_MESSAGE_SIZE}..={}",
                crate::MAX_MESSAGE_SIZE
            ),
        })
    }
}

/// A child process running `f(args)`, whose result is an `R`. Python's
/// `multiprocessing.Process`, started at once.
///
/// The methods that wait for or look at the child take `&mut self`, as those of
/// [`std::process::Child`] do. Dropping the handle never leaves a zombie: a child that still
/// runs is reaped in the background, or killed first if it is a daemon.
///
/// ```no_run
/// use shmproc::{Process, ProcessError};
/// use std::time::Duration;
///
/// fn slow(secs: u64) -> u64 {
///     std::thread::sleep(Duration::from_secs(secs));
///     secs
/// }
///
/// # fn main() -> Result<(), ProcessError> {
/// shmproc::init();
/// let mut p = Process::builder().name("sleeper").spawn(slow, 60)?;
/// assert!(p.is_alive());
/// assert!(matches!(p.join_timeout(Duration::from_millis(100)), Err(ProcessError::Timeout)));
/// p.terminate().expect("SIGTERM");
/// assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 15 })));
/// # Ok(())
/// # }
/// ```
pub struct Process<R> {
    /// `None` once dropped into the reaper.
    child: Option<Child>,
    /// `None` once dropped into the reaper.
    conn: Option<Connection>,
    pid: u32,
    name: Option<String>,
    daemon: bool,
    /// Set once reaped.
    status: Option<ExitStatus>,
    /// Whether `join` returned an outcome already.
    taken: bool,
    _result: PhantomData<fn() -> R>,
}

impl Process<()> {
    /// A builder for a process with a name, daemon mode or a larger maximum message size.
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::new()
    }
}

impl<R: DeserializeOwned> Process<R> {
    /// Starts `f(args)` in a new process (Python's `Process(target=f, args=...).start()`).
    ///
    /// ```no_run
    /// fn greet(name: String) -> String {
    ///     format!("hello {name} from {}", std::process::id())
    /// }
    ///
    /// shmproc::init();
    /// let mut p = shmproc::Process::spawn(greet, "bob".to_owned())?;
    /// println!("{}", p.join()?);
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// As [`ProcessBuilder::spawn`].
    pub fn spawn<A>(f: fn(A) -> R, args: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize,
    {
        ProcessBuilder::new().spawn(f, args)
    }

    /// Waits for the child's result, then for the child to exit.
    ///
    /// # Errors
    /// `Panicked`, `Killed`, `NoResult`, `Refused`, `Unauthenticated`, `Decode` (the result
    /// is not an `R`, or a peer rewrote the arguments),
    /// `TooLarge` (the result exceeds the maximum message size), `AlreadyJoined`, `Ipc`.
    pub fn join(&mut self) -> Result<R, ProcessError> {
        self.wait_result(None)
    }

    /// [`join`](Process::join), waiting at most `timeout` for the result.
    ///
    /// # Errors
    /// `Timeout` (the child keeps running; join again later), and as
    /// [`join`](Process::join).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, ProcessError> {
        self.wait_result(crate::raw::deadline_after(timeout))
    }

    fn wait_result(&mut self, deadline: Option<Instant>) -> Result<R, ProcessError> {
        if self.taken {
            return Err(ProcessError::AlreadyJoined);
        }
        let Some(conn) = self.conn.take() else {
            return Err(ProcessError::AlreadyJoined);
        };
        let outcome = self.wait_on(&conn, deadline);
        self.conn = Some(conn);
        outcome
    }

    /// Receives frames until one settles the outcome, the child is gone, or `deadline`
    /// passes. The deadline and the child's exit are checked after every frame as well as
    /// after every empty slice: frames arrive through shared memory, and a peer that keeps
    /// sending frames that settle nothing must not hold the wait.
    fn wait_on(&mut self, conn: &Connection, deadline: Option<Instant>) -> Result<R, ProcessError> {
        let mut buf = Vec::new();
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(crate::PEER_CHECK),
                None => crate::PEER_CHECK,
            };
            match conn.recv_bytes_into_timeout(&mut buf, slice) {
                Ok(()) => {
                    if let Some(outcome) = self.frame(&buf) {
                        self.reap_until(deadline);
                        return self.finish(outcome);
                    }
                }
                Err(RecvError::Timeout) => {}
                Err(RecvError::Disconnected) => {
                    self.reap_until(deadline);
                    return self.finish(Err(exit_error(self.status)));
                }
                Err(e) => {
                    return Err(ProcessError::Ipc {
                        reason: format!("receiving from the child: {e}"),
                    });
                }
            }
            if self.try_reap().is_some() {
                // It exited: take what it sent just before (at most a ring's worth; anything
                // beyond that was not sent by the child), then say how.
                return self.finish(self.last_words(conn, &mut buf));
            }
            if expired(deadline) {
                return Err(ProcessError::Timeout);
            }
        }
    }

    /// After the child exited: its outcome among what it sent just before (at most a ring's
    /// worth; anything beyond that was not sent by the child), else how it exited.
    fn last_words(&self, conn: &Connection, buf: &mut Vec<u8>) -> Result<R, ProcessError> {
        for _ in 0..=CHILD_PIPE_CAPACITY {
            if conn.recv_bytes_into_timeout(buf, Duration::ZERO).is_err() {
                break;
            }
            if let Some(outcome) = self.frame(buf) {
                return outcome;
            }
        }
        Err(exit_error(self.status))
    }

    /// [`join`](Process::join) in async form (feature `tokio`): the result arrives over the
    /// child's pipe, awaited on the pipe's doorbell; no thread waits.
    ///
    /// Cancel safe: a future dropped at its await point takes nothing from the child's pipe
    /// but frames that settle nothing; join again to get the result.
    ///
    /// # Errors
    /// As [`join`](Process::join).
    #[cfg(feature = "tokio")]
    pub async fn join_async(&mut self) -> Result<R, ProcessError> {
        self.wait_result_async(None).await
    }

    /// [`join_timeout`](Process::join_timeout) in async form (feature `tokio`); cancel safe
    /// as [`join_async`](Process::join_async).
    ///
    /// # Errors
    /// `Timeout`, and as [`join`](Process::join).
    #[cfg(feature = "tokio")]
    pub async fn join_timeout_async(&mut self, timeout: Duration) -> Result<R, ProcessError> {
        self.wait_result_async(crate::raw::deadline_after(timeout)).await
    }

    #[cfg(feature = "tokio")]
    async fn wait_result_async(&mut self, deadline: Option<Instant>) -> Result<R, ProcessError> {
        if self.taken {
            return Err(ProcessError::AlreadyJoined);
        }
        let Some(conn) = self.conn.take() else {
            return Err(ProcessError::AlreadyJoined);
        };
        // Put back even if this future is dropped at an await point.
        struct Back<'a, R> {
            p: &'a mut Process<R>,
            conn: Option<Connection>,
        }
        impl<R> Drop for Back<'_, R> {
            fn drop(&mut self) {
                self.p.conn = self.conn.take();
            }
        }
        let back = Back {
            p: self,
            conn: Some(conn),
        };
        let mut buf = Vec::new();
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(crate::PEER_CHECK),
                None => crate::PEER_CHECK,
            };
            let conn = back.conn.as_ref().expect("put back only on drop");
            match conn.recv_bytes_into_timeout_async(&mut buf, slice).await {
                Ok(()) => {
                    if let Some(outcome) = back.p.frame(&buf) {
                        back.p.reap_async(deadline).await;
                        return back.p.finish(outcome);
                    }
                }
                Err(RecvError::Timeout) => {}
                Err(RecvError::Disconnected) => {
                    back.p.reap_async(deadline).await;
                    return back.p.finish(Err(exit_error(back.p.status)));
                }
                Err(e) => {
                    return Err(ProcessError::Ipc {
                        reason: format!("receiving from the child: {e}"),
                    });
                }
            }
            if back.p.try_reap().is_some() {
                let conn = back.conn.as_ref().expect("put back only on drop");
                let outcome = back.p.last_words(conn, &mut buf);
                return back.p.finish(outcome);
            }
            if expired(deadline) {
                return Err(ProcessError::Timeout);
            }
        }
    }

    /// [`reap_until`](Process::reap_until) for async callers: polls for the exit on a timer
    /// (1 ms, then up to 20 ms) instead of blocking in `waitpid`.
    #[cfg(feature = "tokio")]
    async fn reap_async(&mut self, deadline: Option<Instant>) {
        let mut pause = Duration::from_millis(1);
        while self.try_reap().is_none() && !expired(deadline) {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Waits for the child to exit, but not past `deadline` (it normally exits right after
    /// its outcome; one that does not is reaped later, by `Drop`).
    fn reap_until(&mut self, deadline: Option<Instant>) {
        if deadline.is_none() {
            self.reap();
            return;
        }
        while self.try_reap().is_none() && !expired(deadline) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Reads one frame from the child: `Some` once the outcome is known (the caller then
    /// reaps the child, which exits right after its outcome, and calls `finish`).
    fn frame(&self, frame: &[u8]) -> Option<Result<R, ProcessError>> {
        let outcome = match frame.first() {
            Some(&READY) => return None,
            Some(&REFUSED) => Err(ProcessError::Refused {
                reason: String::from_utf8_lossy(&frame[1..]).into_owned(),
            }),
            Some(&TASK_REFUSED) => Err(ProcessError::Unauthenticated {
                reason: String::from_utf8_lossy(&frame[1..]).into_owned(),
            }),
            Some(&RESULTS) => match wire::parse_results(frame) {
                Ok(r) if r.id != 0 || r.first != 0 || r.count != 1 => Err(ProcessError::Ipc {
                    reason: format!(
                        "the child answered task {} items {}+{}, not task 0 item 0",
                        r.id, r.first, r.count
                    ),
                }),
                Ok(mut r) => match r.entries.next() {
                    Some(Ok((tag, bytes))) => wire::decode_result(tag, bytes),
                    Some(Err(reason)) => Err(ProcessError::Ipc { reason }),
                    None => Err(ProcessError::Ipc {
                        reason: "the child sent an empty result".to_owned(),
                    }),
                },
                Err(reason) => Err(ProcessError::Ipc { reason }),
            },
            _ => Err(ProcessError::Ipc {
                reason: "the child sent a frame of an unknown kind".to_owned(),
            }),
        };
        Some(outcome)
    }

    fn finish(&mut self, outcome: Result<R, ProcessError>) -> Result<R, ProcessError> {
        self.taken = true;
        outcome
    }
}

impl<R> Process<R> {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given with [`ProcessBuilder::name`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether this is a daemon child.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the child is still running (it is reaped if it has exited).
    pub fn is_alive(&mut self) -> bool {
        self.try_reap().is_none()
    }

    /// How the child exited, or `None` while it runs (Python's `exitcode`; use
    /// `ExitStatusExt::signal` for a signal).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.try_reap()
    }

    /// Sends SIGTERM (Python's `terminate()`). Does nothing once the child was reaped.
    ///
    /// # Errors
    /// The `kill(2)` error, if any.
    pub fn terminate(&mut self) -> std::io::Result<()> {
        self.signal(crate::os::SIGTERM)
    }

    /// Sends SIGKILL (Python's `kill()`). Does nothing once the child was reaped.
    ///
    /// # Errors
    /// The `kill(2)` error, if any.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.signal(crate::os::SIGKILL)
    }

    fn signal(&mut self, signal: i32) -> std::io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // Not reaped yet (`status` is set exactly when we reap), so the pid is still ours.
        sys::send_signal(self.pid, signal)
    }

    fn try_reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some(c) = &mut self.child
            && let Ok(Some(st)) = c.try_wait()
        {
            self.status = Some(st);
        }
        self.status
    }

    fn reap(&mut self) {
        if self.status.is_none()
            && let Some(c) = &mut self.child
            && let Ok(st) = c.wait()
        {
            self.status = Some(st);
        }
    }
}

/// The error for a child that exited (`status`) without a result.
pub(crate) fn exit_error(status: Option<ExitStatus>) -> ProcessError {
    match status {
        Some(st) => match st.signal() {
            Some(signal) => ProcessError::Killed { signal },
            None => ProcessError::NoResult { status: st },
        },
        None => ProcessError::Ipc {
            reason: "the child's exit status is unknown".to_owned(),
        },
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let Some(mut child) = self.child.take() else { return };
        if self.daemon {
            let _ = child.kill();
            let _ = child.wait();
        } else if let Ok(None) = child.try_wait() {
            // Like Python, the child goes on with its job; its result is dropped. Our end of
            // the pipe stays open until it exits, so that it finds the job even if it has
            // not connected yet.
            spawn::reap_later(child, self.conn.take());
        }
    }
}

impl<R> std::fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("status", &self.status)
            .finish()
    }
}
