//! The pool's parent side: one thread per worker slot, the pending queue and dispatch.
//!
//! Each slot thread starts its worker process (so the worker's parent-death signal is tied
//! to a thread that lives as long as the pool), waits for it to be ready, then reads its
//! pipe: results go to the calls waiting for them, and a worker that dies or retires is
//! replaced. Dispatch runs under the pool lock, from whichever thread has something to
//! dispatch (a caller submitting tasks, or a slot thread whose worker answered): a chunk
//! goes to a ready worker with fewer than `prefetch` chunks in hand, and joins that
//! worker's `in_flight` list in the order the worker will run it. So the pool always knows
//! which chunks each worker holds, and when a worker dies:
//!
//! - the oldest chunk it held (the one it was running) gets `WorkerDied` for every item it
//!   had not answered yet (a worker sends answers at least every 10 ms while it works
//!   through a chunk, so for slow items that is the one item that was running);
//! - its other chunks go back to the front of the pending queue, in order;
//! - the slot starts a new worker; nothing else is affected.

use super::job::{Job, JobSpares};
use super::spares::Spares;
use crate::error::ProcessError;
use crate::process::wire::{self, EXIT, JobKey, READY, REFUSED, RESULTS, RESULTS_POD, TASK_REFUSED};
use crate::process::{Launch, Spawned, exit_error, launch};
use crate::raw::{deadline_after, expired};
use crate::{Connection, RecvError};
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often a slot thread looks at its worker's process and the pool's flags while the
/// pipe is quiet.
const POLL: Duration = Duration::from_millis(50);
/// How long a new worker may take to say it is ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of frame buffers a pool keeps for reuse (at least two of the largest messages).
const SPARE_BYTES: usize = 16 << 20;
/// A replacement worker that fails to start this many times in a row gives up its slot.
const MAX_START_FAILURES: u32 = 3;

/// Settings fixed at creation.
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) prefetch: usize,
    pub(crate) max_tasks_per_child: Option<u64>,
    pub(crate) max_message_size: usize,
    pub(crate) name: Option<String>,
}

/// A chunk of items of one call, encoded as a task frame.
pub(crate) struct Chunk {
    pub(crate) id: u64,
    pub(crate) frame: Vec<u8>,
    pub(crate) job: Arc<Job>,
    /// Index in `job` of the chunk's first item.
    pub(crate) base: usize,
    pub(crate) count: u32,
    /// Items answered so far.
    pub(crate) answered: u32,
}

impl Chunk {
    /// Gives every item not answered yet the error `e()`.
    fn fail_rest(&self, e: impl Fn() -> ProcessError) {
        let first = self.base + self.answered as usize;
        self.job.fail_many(first, (self.count - self.answered) as usize, e());
    }
}

#[derive(Default)]
enum Startup {
    #[default]
    Starting,
    Ready,
    Failed(ProcessError),
}

/// One worker slot, served by one thread for the pool's life: the worker process serving it
/// now (replaced when it dies or retires), the chunks that worker holds, and whether the
/// slot has started.
#[derive(Default)]
struct WorkerSlot {
    /// Our end of the worker's pipe, while a ready worker serves this slot.
    conn: Option<Arc<Connection>>,
    /// The worker process, not reaped yet (so its pid cannot be reused while it is here).
    child: Option<Child>,
    pid: u32,
    in_flight: VecDeque<Chunk>,
    /// Chunks sent to the current worker.
    sent: u64,
    /// The current worker's job key, which seals the chunks sent to it.
    key: Option<JobKey>,
    /// Sequence number of the last chunk sealed for the current worker (each send takes the
    /// next, so they rise strictly per worker).
    seq: u64,
    exit_sent: bool,
    startup: Startup,
}

pub(crate) struct State {
    pending: VecDeque<Chunk>,
    slots: Vec<WorkerSlot>,
    closed: bool,
    terminated: bool,
    /// `Pool::new` has returned: later start failures are retried instead of fatal.
    started: bool,
    /// Every slot gave up: why.
    broken: Option<ProcessError>,
    next_id: u64,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) spares: Arc<JobSpares>,
    state: Mutex<State>,
    /// Signalled when a slot becomes ready or fails (for `Pool::new`).
    changed: Condvar,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Arc<Shared> {
        let slots = (0..config.processes).map(|_| WorkerSlot::default()).collect();
        // Enough for every worker's chunks in hand and their answers, twice over.
        let count = (config.processes * (config.prefetch + 1) * 4).max(16);
        Arc::new(Shared {
            spares: Spares::new(count, SPARE_BYTES.max(2 * config.max_message_size)),
            config,
            state: Mutex::new(State {
                pending: VecDeque::new(),
                slots,
                closed: false,
                terminated: false,
                started: false,
                broken: None,
                next_id: 0,
            }),
            changed: Condvar::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every slot is ready (`Ok`) or one failed (its error).
    pub(crate) fn wait_started(&self) -> Result<(), ProcessError> {
        let mut st = self.lock();
        loop {
            if let Some(e) = st.slots.iter().find_map(|s| match &s.startup {
                Startup::Failed(e) => Some(e.replicate()),
                _ => None,
            }) {
                return Err(e);
            }
            if st.slots.iter().all(|s| matches!(s.startup, Startup::Ready)) {
                st.started = true;
                return Ok(());
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A fresh chunk id.
    pub(crate) fn next_id(&self) -> u64 {
        let mut st = self.lock();
        st.next_id += 1;
        st.next_id
    }

    /// Queues `chunks` and dispatches what workers have room for; hands them back with the
    /// reason if the pool takes no tasks.
    pub(crate) fn submit(&self, chunks: Vec<Chunk>) -> Result<(), (ProcessError, Vec<Chunk>)> {
        let mut st = self.lock();
        let refusal = if st.terminated {
            Some(ProcessError::Terminated)
        } else if st.closed {
            Some(ProcessError::PoolClosed)
        } else {
            st.broken.as_ref().map(ProcessError::replicate)
        };
        if let Some(e) = refusal {
            return Err((e, chunks));
        }
        st.pending.extend(chunks);
        self.dispatch(&mut st);
        Ok(())
    }

    /// Sends pending chunks to ready workers with room, one chunk at a time to the least
    /// loaded; once the pool is closed and nothing is pending, tells each worker to exit
    /// after the chunks it holds.
    fn dispatch(&self, st: &mut State) {
        let prefetch = self.config.prefetch;
        let budget = self.config.max_tasks_per_child.unwrap_or(u64::MAX);
        while !st.pending.is_empty() {
            let best = st
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.conn.is_some() && !s.exit_sent && s.in_flight.len() < prefetch && s.sent < budget)
                .min_by_key(|(_, s)| s.in_flight.len())
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let Some(mut chunk) = st.pending.pop_front() else { break };
            let slot = &mut st.slots[i];
            let (Some(conn), Some(key)) = (slot.conn.clone(), slot.key) else {
                st.pending.push_front(chunk);
                break;
            };
            // Sealed for this worker now: a chunk that comes back to the queue (its worker
            // died) is sealed again for the next.
            slot.seq += 1;
            wire::seal(&mut chunk.frame, &key, slot.seq);
            if conn.send_bytes(&chunk.frame).is_err() {
                // The worker is going away; its slot thread will notice. Keep the chunk.
                st.pending.push_front(chunk);
                slot.exit_sent = true;
                continue;
            }
            slot.in_flight.push_back(chunk);
            slot.sent += 1;
            if slot.sent >= budget {
                // `max_tasks_per_child`: this worker retires after these chunks.
                let _ = conn.send_bytes(&[EXIT]);
                slot.exit_sent = true;
            }
        }
        if st.closed && st.pending.is_empty() {
            for slot in &mut st.slots {
                if let Some(conn) = &slot.conn
                    && !slot.exit_sent
                {
                    let _ = conn.send_bytes(&[EXIT]);
                    slot.exit_sent = true;
                }
            }
        }
    }

    /// `Pool::close`: no new tasks; workers exit once everything queued is done.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        self.dispatch(&mut st);
    }

    /// `Pool::terminate`: kills every worker now; queued and running items get
    /// `Terminated`.
    pub(crate) fn terminate(&self) {
        let mut failed = Vec::new();
        {
            let mut st = self.lock();
            st.terminated = true;
            st.closed = true;
            failed.extend(st.pending.drain(..));
            for slot in &mut st.slots {
                failed.extend(slot.in_flight.drain(..));
                if let Some(c) = &mut slot.child {
                    let _ = c.kill();
                }
            }
        }
        for chunk in failed {
            chunk.fail_rest(|| ProcessError::Terminated);
        }
        self.changed.notify_all();
    }

    /// Process ids of the workers now serving.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let st = self.lock();
        st.slots.iter().filter(|s| s.conn.is_some()).map(|s| s.pid).collect()
    }

    fn set_startup(&self, i: usize, s: Startup) {
        self.lock().slots[i].startup = s;
        self.changed.notify_all();
    }

    /// Whether slot `i` should start a (new) worker.
    fn wanted(&self, i: usize) -> bool {
        let st = self.lock();
        !st.terminated
            && st.broken.is_none()
            && (!st.closed || !st.pending.is_empty() || !st.slots[i].in_flight.is_empty())
    }
}

/// Body of slot `i`'s thread: keeps a worker running in the slot until the pool is closed
/// and drained, or terminated.
pub(crate) fn slot_main(shared: Arc<Shared>, i: usize) {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_slot(&shared, i)));
    if run.is_err() {
        // A bug of ours: make sure nobody waits for this slot forever.
        let _ = kill_and_reap(&shared, i);
        let e = ProcessError::Ipc {
            reason: format!("the pool's thread for worker slot {i} panicked"),
        };
        if shared.lock().started {
            give_up(&shared, i, e);
        } else {
            shared.set_startup(i, Startup::Failed(e));
        }
    }
}

fn run_slot(shared: &Shared, i: usize) {
    let mut failures = 0;
    while shared.wanted(i) {
        match start_worker(shared, i) {
            Ok(conn) => {
                failures = 0;
                serve(shared, i, &conn);
            }
            Err(e) => {
                failures += 1;
                let started = shared.lock().started;
                if !started {
                    // `Pool::new` reports it.
                    shared.set_startup(i, Startup::Failed(e));
                    return;
                }
                if failures >= MAX_START_FAILURES {
                    give_up(shared, i, e);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50 << failures));
            }
        }
    }
}

/// Starts a worker for slot `i` and waits until it is ready.
fn start_worker(shared: &Shared, i: usize) -> Result<Arc<Connection>, ProcessError> {
    let c = &shared.config;
    let launch_cfg = Launch {
        name: c.name.as_deref(),
        daemon: true,
        one_shot: false,
        print_panics: false,
        max_message_size: c.max_message_size,
        capacity: (c.prefetch + 2).max(4),
    };
    let Spawned { child, conn, key } = launch(&launch_cfg, None)?;
    {
        let mut st = shared.lock();
        let slot = &mut st.slots[i];
        slot.pid = child.id();
        slot.child = Some(child);
        slot.key = Some(key);
        slot.seq = 0;
        if st.terminated {
            // `terminate` ran while we were spawning: do its job for this worker.
            if let Some(c) = &mut st.slots[i].child {
                let _ = c.kill();
            }
        }
    }
    let deadline = deadline_after(STARTUP_TIMEOUT);
    let mut buf = Vec::new();
    let outcome = loop {
        match conn.recv_bytes_into_timeout(&mut buf, POLL) {
            Ok(()) => match buf.first() {
                Some(&READY) => break Ok(()),
                Some(&REFUSED) => {
                    break Err(ProcessError::Refused {
                        reason: String::from_utf8_lossy(&buf[1..]).into_owned(),
                    });
                }
                _ => {
                    break Err(ProcessError::Ipc {
                        reason: "a new worker sent something other than ready".to_owned(),
                    });
                }
            },
            Err(RecvError::Timeout) => {
                if let Some(status) = try_reap(shared, i) {
                    break Err(exit_error(Some(status)));
                }
                if shared.lock().terminated {
                    break Err(ProcessError::Terminated);
                }
                if expired(deadline) {
                    break Err(ProcessError::Ipc {
                        reason: format!("a new worker did not start within {STARTUP_TIMEOUT:?}"),
                    });
                }
            }
            Err(RecvError::Disconnected) => break Err(exit_error(reap(shared, i))),
            Err(e) => {
                break Err(ProcessError::Ipc {
                    reason: format!("receiving from a new worker: {e}"),
                });
            }
        }
    };
    if let Err(e) = outcome {
        let _ = kill_and_reap(shared, i);
        return Err(e);
    }
    let conn = Arc::new(conn);
    let mut st = shared.lock();
    let slot = &mut st.slots[i];
    slot.conn = Some(conn.clone());
    slot.sent = 0;
    slot.exit_sent = false;
    slot.startup = Startup::Ready;
    shared.dispatch(&mut st);
    drop(st);
    shared.changed.notify_all();
    Ok(conn)
}

/// Reads slot `i`'s worker's answers until the worker is gone, then settles its chunks.
fn serve(shared: &Shared, i: usize, conn: &Connection) {
    let mut buf = Vec::new();
    let mut status = None;
    loop {
        match conn.recv_bytes_into_timeout(&mut buf, POLL) {
            Ok(()) => {
                if !answer(shared, i, std::mem::replace(&mut buf, shared.spares.take())) {
                    // A worker that sends nonsense is as good as dead.
                    status = kill_and_reap(shared, i);
                    break;
                }
            }
            Err(RecvError::Timeout) => {
                status = try_reap(shared, i);
                if status.is_some() || shared.lock().terminated {
                    // Take what it sent before it went.
                    while conn.recv_bytes_into_timeout(&mut buf, Duration::ZERO).is_ok() {
                        if !answer(shared, i, std::mem::take(&mut buf)) {
                            break;
                        }
                    }
                    break;
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(_) => {
                status = kill_and_reap(shared, i);
                break;
            }
        }
    }
    let status = status.or_else(|| reap(shared, i));
    let mut st = shared.lock();
    let slot = &mut st.slots[i];
    slot.conn = None;
    let mut held = std::mem::take(&mut slot.in_flight);
    if let Some(running) = held.pop_front() {
        // The worker died holding chunks: blame the one it was running, put the others
        // back in front of the queue for another worker.
        let pid = slot.pid;
        let (signal, code) = (status.and_then(|s| s.signal()), status.and_then(|s| s.code()));
        for chunk in held.into_iter().rev() {
            st.pending.push_front(chunk);
        }
        shared.dispatch(&mut st);
        drop(st);
        running.fail_rest(|| ProcessError::WorkerDied { pid, signal, code });
    }
}

/// Handles one frame from slot `i`'s worker; `false` if the worker is misbehaving.
fn answer(shared: &Shared, i: usize, frame: Vec<u8>) -> bool {
    if frame.first() == Some(&TASK_REFUSED) {
        return refused(shared, i, &frame);
    }
    if !matches!(frame.first(), Some(&RESULTS | &RESULTS_POD)) {
        return false;
    }
    let Ok(results) = wire::parse_results(&frame) else {
        return false;
    };
    let (job, base) = {
        let mut st = shared.lock();
        let slot = &mut st.slots[i];
        // The worker answers its chunks in the order it got them.
        let Some(chunk) = slot.in_flight.front_mut() else {
            return false;
        };
        if chunk.id != results.id || results.first != chunk.answered || results.count > chunk.count - chunk.answered {
            return false;
        }
        chunk.answered += results.count;
        let job = chunk.job.clone();
        let base = chunk.base + results.first as usize;
        if chunk.answered == chunk.count {
            if let Some(done) = slot.in_flight.pop_front() {
                shared.spares.give(done.frame);
            }
            shared.dispatch(&mut st);
        }
        (job, base)
    };
    job.deliver_frame(base, frame);
    true
}

/// Slot `i`'s worker refused the chunk it was to run next (its frame failed authentication):
/// that chunk's items get `Unauthenticated`, and the worker goes on with its other chunks.
/// `false` if the worker had started answering that chunk (it is misbehaving).
fn refused(shared: &Shared, i: usize, frame: &[u8]) -> bool {
    let chunk = {
        let mut st = shared.lock();
        let slot = &mut st.slots[i];
        // The worker takes its chunks in the order they were sent.
        if slot.in_flight.front().is_none_or(|c| c.answered != 0) {
            return false;
        }
        let Some(chunk) = slot.in_flight.pop_front() else {
            return false;
        };
        shared.dispatch(&mut st);
        chunk
    };
    let reason = String::from_utf8_lossy(&frame[1..]).into_owned();
    chunk.fail_rest(|| ProcessError::Unauthenticated { reason: reason.clone() });
    shared.spares.give(chunk.frame);
    true
}

/// Slot `i` cannot start a worker: if no slot can, fail everything queued.
fn give_up(shared: &Shared, i: usize, e: ProcessError) {
    let mut failed = Vec::new();
    {
        let mut st = shared.lock();
        let slot = &mut st.slots[i];
        slot.startup = Startup::Failed(e.replicate());
        slot.conn = None;
        // Chunks it still held go to the other slots.
        let held = std::mem::take(&mut slot.in_flight);
        for chunk in held.into_iter().rev() {
            st.pending.push_front(chunk);
        }
        let all_failed = st.slots.iter().all(|s| matches!(s.startup, Startup::Failed(_)));
        if all_failed {
            st.broken = Some(e.replicate());
            failed.extend(st.pending.drain(..));
        } else {
            shared.dispatch(&mut st);
        }
    }
    for chunk in failed {
        chunk.fail_rest(|| e.replicate());
    }
}

fn try_reap(shared: &Shared, i: usize) -> Option<ExitStatus> {
    let mut st = shared.lock();
    let c = st.slots[i].child.as_mut()?;
    match c.try_wait() {
        Ok(Some(status)) => {
            st.slots[i].child = None;
            Some(status)
        }
        _ => None,
    }
}

/// Waits for slot `i`'s worker to exit (it is exiting or dead when this is called) and
/// returns how it exited, if it was still there to reap.
fn reap(shared: &Shared, i: usize) -> Option<ExitStatus> {
    // Out of the slot first, so that waiting does not hold the pool lock.
    let mut child = shared.lock().slots[i].child.take()?;
    child.wait().ok()
}

fn kill_and_reap(shared: &Shared, i: usize) -> Option<ExitStatus> {
    let mut child = shared.lock().slots[i].child.take()?;
    let _ = child.kill();
    child.wait().ok()
}
