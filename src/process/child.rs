//! The child's side: recognising that this process is a child, checking the job, running
//! tasks with panics caught, and sending results back.

use super::sys;
use super::wire::{
    self, EXIT, Failure, Fingerprint, ITEM_FAILED, ITEM_OK, ITEM_PANICKED, JobKey, READY, REFUSED, RESULT_HEADER,
    RESULTS_HEADER, Rejected, ResultsFrame, START, Start, TASK, TASK_REFUSED, Verifier,
};
use crate::{Connection, RecvError};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// The test name a child of a test binary runs, and the first argument of every child.
pub(crate) const ENTRY: &str = "__shmproc_child_entry";
/// The arguments every child is started with: in a libtest binary they run exactly the
/// `ENTRY` test, quietly, on one thread; a normal binary's `init()` exits before `main`
/// looks at them. The job argument follows; to libtest it is a second filter that matches
/// no test.
pub(crate) const CHILD_ARGS: [&str; 5] = [ENTRY, "--exact", "--nocapture", "--test-threads=1", "-q"];
/// Prefix of the argument that names the child's pipe.
pub(crate) const JOB_PREFIX: &str = "__shmproc_job=";

/// A child sends the results it has so far at least this often while it works through a
/// chunk, so that a worker's death costs only the items since (see `pool`).
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Exit code of a child that could not get its job (`EX_SOFTWARE`).
const EXIT_BROKEN: i32 = 70;
/// Exit code of a child that got a frame it cannot parse (`EX_PROTOCOL`): too short for its
/// header, or of no known kind. Something other than the parent wrote its pipe.
pub(crate) const EXIT_MALFORMED: i32 = 76;
/// Exit code of a child that found no job key on its stdin (`EX_NOPERM`): it was not started
/// by `Process`/`Pool`.
pub(crate) const EXIT_NO_KEY: i32 = 77;
/// How long a child waits for its job key on stdin (the parent writes it before the child
/// starts, so it is there at once unless stdin is something else).
const KEY_TIMEOUT: Duration = Duration::from_secs(10);

/// The pipe name if this process was started as a child, from its arguments.
pub(crate) fn job_pipe() -> Option<String> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != ENTRY {
        return None;
    }
    args.find_map(|a| a.to_str()?.strip_prefix(JOB_PREFIX).map(str::to_owned))
}

thread_local! {
    /// Whether this thread is running a task now (its panics are caught and reported).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    /// The message and location of this thread's last panic in a task.
    static CAUGHT: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Runs this process as a child serving the pipe `name`, then exits. Never returns.
pub(crate) fn child_main(name: &str) -> ! {
    let code = serve(name);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

/// Reads the job key from stdin, then puts `/dev/null` in its place, so that neither the
/// task nor a program it starts can read stdin.
fn read_key() -> Result<JobKey, String> {
    let mut key = [0; 16];
    let read = sys::read_stdin_exact(&mut key, KEY_TIMEOUT);
    sys::stdin_from_dev_null().map_err(|e| format!("cannot make /dev/null its stdin: {e}"))?;
    read.map_err(|e| format!("no job key on stdin ({e}); children are started by shmproc::Process and Pool"))?;
    Ok(JobKey(key))
}

fn serve(name: &str) -> i32 {
    let key = match read_key() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("shmproc: child {}: {e}", sys::pid());
            return EXIT_NO_KEY;
        }
    };
    let mut verifier = Verifier::new(key);
    crate::fault::hit("process.child.before_connect");
    let conn = match Connection::open(name) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmproc: child {} could not open its pipe {name:?}: {e}", sys::pid());
            return EXIT_BROKEN;
        }
    };
    // Connected: nobody else needs the name, and now nothing is left in /dev/shm whatever
    // happens to either side later.
    let _ = crate::remove(name);
    let mut buf = Vec::new();
    match conn.recv_bytes_into(&mut buf) {
        Ok(()) => {}
        // The parent is gone before we started: nothing to do.
        Err(RecvError::Disconnected) => return 0,
        Err(e) => {
            eprintln!("shmproc: child {} could not read its start frame: {e}", sys::pid());
            return EXIT_BROKEN;
        }
    }
    let start = match buf.split_first() {
        Some((&START, rest)) => match postcard::from_bytes::<Start>(rest) {
            Ok(s) => s,
            Err(e) => return refuse(&conn, format!("undecodable start frame: {e}")),
        },
        _ => return refuse(&conn, "the first frame is not a start frame".to_owned()),
    };
    match Fingerprint::current() {
        Ok(mine) if mine == start.fingerprint => {}
        Ok(mine) => {
            return refuse(
                &conn,
                format!(
                    "the child runs another build of the program than its parent (parent {:?}, \
                     child {mine:?})",
                    start.fingerprint
                ),
            );
        }
        Err(e) => return refuse(&conn, e),
    }
    if start.daemon && sys::parent_pid() != start.parent {
        // The parent died before our parent-death signal was armed.
        return 0;
    }
    // Started from `/proc/self/exe`, we would show as `exe` in `ps`: take the program's
    // name, or the one the parent chose.
    match &start.name {
        Some(n) => sys::set_process_name(n),
        None => {
            if let Some(n) = std::env::current_exe()
                .ok()
                .as_deref()
                .and_then(std::path::Path::file_name)
            {
                sys::set_process_name(&n.to_string_lossy());
            }
        }
    }
    // Jobs may start processes of their own.
    super::INITIALIZED.store(true, std::sync::atomic::Ordering::Release);
    install_panic_hook(start.print_panics);
    let mut ready = vec![READY];
    ready.extend_from_slice(&sys::pid().to_le_bytes());
    if conn.send_bytes(&ready).is_err() {
        return 0;
    }
    let mut out = Vec::new();
    loop {
        match conn.recv_bytes_into(&mut buf) {
            Ok(()) => {}
            // The parent (or pool) is gone: stop.
            Err(RecvError::Disconnected) => return 0,
            Err(e) => {
                eprintln!("shmproc: child {} could not read a task: {e}", sys::pid());
                return EXIT_BROKEN;
            }
        }
        let kind = buf.first().copied();
        if kind == Some(EXIT) {
            return 0;
        }
        match verifier.check(&buf) {
            Ok(()) => {}
            Err(Rejected::Malformed(e)) => {
                eprintln!("shmproc: child {} got a frame it cannot parse: {e}", sys::pid());
                return EXIT_MALFORMED;
            }
            Err(Rejected::Refused(reason)) => {
                eprintln!("shmproc: child {} refuses a task: {reason}", sys::pid());
                let mut frame = vec![TASK_REFUSED];
                frame.extend_from_slice(reason.as_bytes());
                frame.truncate(conn.max_message_size());
                if conn.send_bytes(&frame).is_err() {
                    return 0;
                }
                if start.one_shot {
                    return EXIT_BROKEN;
                }
                continue;
            }
        }
        // The frame is the parent's (MAC checked) and new (sequence checked); only the
        // two task kinds pass the check.
        let outcome = match kind {
            Some(TASK) => run_task(&conn, &buf, &mut out),
            _ => run_pod_task(&conn, &buf, &mut out),
        };
        match outcome {
            Outcome::ParentGone => return 0,
            Outcome::Broken => return EXIT_MALFORMED,
            Outcome::Done { panicked } if start.one_shot => return i32::from(panicked),
            Outcome::Done { .. } => {}
        }
    }
}

fn refuse(conn: &Connection, reason: String) -> i32 {
    eprintln!("shmproc: child {} refuses its job: {reason}", sys::pid());
    let mut frame = vec![REFUSED];
    frame.extend_from_slice(reason.as_bytes());
    frame.truncate(conn.max_message_size());
    let _ = conn.send_bytes(&frame);
    EXIT_BROKEN
}

enum Outcome {
    Done { panicked: bool },
    ParentGone,
    Broken,
}

/// Runs every item of the task frame `frame`, sending results at least every
/// [`FLUSH_EVERY`] and whenever a frame would outgrow the pipe's maximum message size.
/// `frame` has passed the [`Verifier`].
fn run_task(conn: &Connection, frame: &[u8], out: &mut Vec<u8>) -> Outcome {
    let task = match wire::parse_task(frame) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("shmproc: child {} got a malformed task: {e}", sys::pid());
            return Outcome::Broken;
        }
    };
    let max = conn.max_message_size();
    let tramp = task.f.trampoline();
    let mut results = ResultsFrame::new(std::mem::take(out), task.id, 0);
    let mut panicked = false;
    let mut last_flush = Instant::now();
    // Reading the clock costs as much as a trivial item: read it about once per millisecond
    // of work, every item for slow items, every 1024 at most for fast ones.
    let (mut check_every, mut since_check, mut checked_at) = (1u32, 0u32, last_flush);
    let mut items = task.items.enumerate().peekable();
    // Panics on this thread from here to the end of the task are the task's.
    let _in_task = InTask::enter();
    while let Some((index, item)) = items.next() {
        let item = match item {
            Ok((_, bytes)) => bytes,
            Err(e) => {
                eprintln!("shmproc: child {} got a malformed task: {e}", sys::pid());
                return Outcome::Broken;
            }
        };
        // The result is encoded straight into the frame, after a header whose length is
        // filled in once it is known.
        let mark = results.buf.len();
        results.buf.extend_from_slice(&[ITEM_OK, 0, 0, 0, 0]);
        let run = match tramp {
            // The frame's MAC under this child's key (checked by `serve` before `run_task`)
            // shows that the parent, a process of the same build (fingerprint checked at
            // start), wrote both offsets with `FnRef::new` from a `fn(A) -> R` and the
            // trampoline for that `A` and `R`; `trampoline()` checked both lie in our code.
            Ok(t) => std::panic::catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: `t` and `task.f.func` are a matching trampoline and function, as the
                // parent sent them (authenticated above), so `t`'s contract holds.
                unsafe { t(task.f.func, item, &mut results.buf) }
            })),
            Err(ref e) => Ok(Err(Failure::BadFunction(e.clone()))),
        };
        let other: Option<(u8, Vec<u8>)> = match run {
            Ok(Ok(())) => {
                let len = results.buf.len() - mark - RESULT_HEADER;
                (RESULTS_HEADER + RESULT_HEADER + len > max).then(|| {
                    let f = Failure::ResultTooLarge {
                        size: len as u64,
                        max: max.saturating_sub(RESULTS_HEADER + RESULT_HEADER) as u64,
                    };
                    (ITEM_FAILED, encode_failure(&f))
                })
            }
            Ok(Err(f)) => Some((ITEM_FAILED, encode_failure(&f))),
            Err(payload) => {
                panicked = true;
                Some((ITEM_PANICKED, panic_report(payload, max)))
            }
        };
        match other {
            None => {
                let len = (results.buf.len() - mark - RESULT_HEADER) as u32;
                results.buf[mark + 1..mark + RESULT_HEADER].copy_from_slice(&len.to_le_bytes());
                if results.count > 0 && results.buf.len() > max {
                    // It does not fit after the others: they go now, it starts the next frame.
                    let entry = results.buf.split_off(mark);
                    if !flush_and_restart(conn, &mut results, task.id, index) {
                        return Outcome::ParentGone;
                    }
                    results.buf.extend_from_slice(&entry);
                    last_flush = Instant::now();
                }
                results.count += 1;
            }
            Some((tag, bytes)) => {
                // Whatever a failed or panicking call left in the frame goes (and the memory
                // of a result too large to send).
                results.buf.truncate(mark);
                results.buf.shrink_to(max);
                if results.count > 0 && results.buf.len() + RESULT_HEADER + bytes.len() > max {
                    if !flush_and_restart(conn, &mut results, task.id, index) {
                        return Outcome::ParentGone;
                    }
                    last_flush = Instant::now();
                }
                results.push(tag, &bytes);
            }
        }
        let mut due = items.peek().is_none();
        since_check += 1;
        if !due && since_check >= check_every {
            let now = Instant::now();
            let spent = now.duration_since(checked_at).as_nanos().max(1);
            check_every = (u128::from(since_check) * 1_000_000 / spent).clamp(1, 1024) as u32;
            (since_check, checked_at) = (0, now);
            due = now.duration_since(last_flush) >= FLUSH_EVERY;
        }
        if due {
            if !flush(conn, &mut results) {
                return Outcome::ParentGone;
            }
            results = ResultsFrame::new(std::mem::take(&mut results.buf), task.id, index as u32 + 1);
            last_flush = Instant::now();
        }
    }
    if results.count > 0 || results.first() == 0 {
        // A task of no items still gets its (empty) answer.
        if !flush(conn, &mut results) {
            return Outcome::ParentGone;
        }
    }
    *out = std::mem::take(&mut results.buf);
    Outcome::Done { panicked }
}

/// The `Panicked` entry's bytes for a caught panic: its message and location (from the panic
/// hook, else from the payload), each cut to fit, so that the entry fits in one results frame
/// of `max` bytes however long the panic's message. The payload is dropped here; dropping it
/// can itself panic, which is caught too.
fn panic_report(payload: Box<dyn std::any::Any + Send>, max: usize) -> Vec<u8> {
    let caught = CAUGHT.with(|c| c.borrow_mut().take());
    let (mut message, mut location) =
        caught.unwrap_or_else(|| (payload_message(&*payload), "unknown location".to_owned()));
    let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
    let room = max.saturating_sub(RESULTS_HEADER + RESULT_HEADER + 32) / 2;
    for s in [&mut message, &mut location] {
        if s.len() > room {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
    }
    postcard::to_allocvec(&(message, location)).unwrap_or_default()
}

/// How long a batch of a plain-data task runs between two looks at the clock (and between
/// two `catch_unwind`s).
const POD_BATCH_TIME: Duration = Duration::from_millis(1);
/// Most items in one batch of a plain-data task.
const POD_MAX_BATCH: usize = 1 << 16;

/// Runs a plain-data task (`Pool::map_pod`): the items go to the trampoline in batches, one
/// `catch_unwind` per batch, sized to take about [`POD_BATCH_TIME`] (one item at first). The
/// trampoline counts the items it completed, so after a panic the item that panicked is
/// known without running anything again: the results before it are kept, it gets its
/// `Panicked` entry, and the batch goes on after it. Results go back as plain-data results
/// frames, at least every [`FLUSH_EVERY`] and whenever a frame is full. `frame` has passed
/// the [`Verifier`].
fn run_pod_task(conn: &Connection, frame: &[u8], out: &mut Vec<u8>) -> Outcome {
    let task = match wire::parse_pod_task(frame) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("shmproc: child {} got a malformed task: {e}", sys::pid());
            return Outcome::Broken;
        }
    };
    let (count, asize, rsize) = (task.count, task.asize, task.rsize);
    let max = conn.max_message_size();
    // Results per frame (the parent checks that at least one fits).
    let per_frame = max.saturating_sub(RESULTS_HEADER) / rsize;
    let tramp = match task.f.pod_trampoline() {
        Ok(_) if per_frame == 0 => {
            let f = Failure::ResultTooLarge {
                size: rsize as u64,
                max: max.saturating_sub(RESULTS_HEADER) as u64,
            };
            return fail_items(conn, task.id, 0, count, &f, out);
        }
        Ok(t) => t,
        Err(e) => return fail_items(conn, task.id, 0, count, &Failure::BadFunction(e), out),
    };
    let mut results = ResultsFrame::new_pod(std::mem::take(out), task.id, 0);
    results.buf.reserve(RESULTS_HEADER + count.min(per_frame) * rsize);
    let mut panicked = false;
    let mut last_flush = Instant::now();
    let (mut next, mut batch) = (0usize, 1usize);
    // Panics on this thread from here to the end of the task are the task's.
    let _in_task = InTask::enter();
    while next < count {
        let n = batch.min(count - next).min(per_frame - results.count as usize);
        let mark = results.buf.len();
        results.buf.resize(mark + n * rsize, 0);
        let input = &task.items[next * asize..(next + n) * asize];
        let mut done = 0;
        let started = Instant::now();
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            // The frame's MAC under this child's key (checked by `serve` before
            // `run_pod_task`) shows that the parent, a process of the same build, wrote both
            // offsets with `FnRef::new_pod` from a `fn(A) -> R` and the plain-data trampoline
            // for that `A` and `R`; `pod_trampoline()` checked both lie in our code.
            // SAFETY: a matching trampoline and function as the parent sent them (above);
            // the trampoline checks the sizes of `input` and the result buffer.
            unsafe { tramp(task.f.func, input, &mut results.buf[mark..], (asize, rsize), &mut done) }
        }));
        let now = Instant::now();
        match run {
            Ok(Ok(())) => {
                results.count += n as u32;
                next += n;
                let spent = now.duration_since(started).as_nanos().max(1);
                let fit = (n as u128 * POD_BATCH_TIME.as_nanos() / spent).clamp(1, POD_MAX_BATCH as u128) as usize;
                // Grow at most 8-fold at a time (the first items may be the fast ones).
                batch = fit.min(batch.saturating_mul(8));
            }
            Ok(Err(f)) => {
                // Sizes that do not match the function's types: nothing ran.
                results.buf.truncate(mark);
                if results.count > 0 && !flush(conn, &mut results) {
                    return Outcome::ParentGone;
                }
                *out = std::mem::take(&mut results.buf);
                return fail_items(conn, task.id, next, count - next, &f, out);
            }
            Err(payload) => {
                panicked = true;
                let done = done.min(n);
                results.buf.truncate(mark + done * rsize);
                results.count += done as u32;
                next += done;
                let report = panic_report(payload, max);
                // The results before it, then its own entry, then a frame for those after.
                if results.count > 0 && !flush(conn, &mut results) {
                    return Outcome::ParentGone;
                }
                let mut entry = ResultsFrame::new(std::mem::take(&mut results.buf), task.id, next as u32);
                entry.push(ITEM_PANICKED, &report);
                if !flush(conn, &mut entry) {
                    return Outcome::ParentGone;
                }
                next += 1;
                results = ResultsFrame::new_pod(std::mem::take(&mut entry.buf), task.id, next as u32);
                last_flush = Instant::now();
                batch = 1;
                continue;
            }
        }
        if next == count || results.count as usize == per_frame || now.duration_since(last_flush) >= FLUSH_EVERY {
            if !flush(conn, &mut results) {
                return Outcome::ParentGone;
            }
            results = ResultsFrame::new_pod(std::mem::take(&mut results.buf), task.id, next as u32);
            last_flush = now;
        }
    }
    if count == 0 || results.count > 0 {
        // A task of no items still gets its (empty) answer.
        if !flush(conn, &mut results) {
            return Outcome::ParentGone;
        }
    }
    *out = std::mem::take(&mut results.buf);
    Outcome::Done { panicked }
}

/// Answers items `first..first + count` of task `id` with the failure `f` each, in as many
/// results frames as it takes (`buf` is reused).
fn fail_items(conn: &Connection, id: u64, first: usize, count: usize, f: &Failure, buf: &mut Vec<u8>) -> Outcome {
    let bytes = encode_failure(f);
    let max = conn.max_message_size();
    let mut results = ResultsFrame::new(std::mem::take(buf), id, first as u32);
    for index in first..first + count {
        if results.count > 0
            && results.buf.len() + RESULT_HEADER + bytes.len() > max
            && !flush_and_restart(conn, &mut results, id, index)
        {
            return Outcome::ParentGone;
        }
        results.push(ITEM_FAILED, &bytes);
    }
    if (results.count > 0 || count == 0) && !flush(conn, &mut results) {
        return Outcome::ParentGone;
    }
    *buf = std::mem::take(&mut results.buf);
    Outcome::Done { panicked: false }
}

/// Sends the results so far, then starts a frame for those from item `index` on; `false` if
/// the parent is gone.
fn flush_and_restart(conn: &Connection, results: &mut ResultsFrame, id: u64, index: usize) -> bool {
    if !flush(conn, results) {
        return false;
    }
    *results = ResultsFrame::new(std::mem::take(&mut results.buf), id, index as u32);
    true
}

/// Sends a results frame; `false` if the parent is gone.
fn flush(conn: &Connection, results: &mut ResultsFrame) -> bool {
    // What the task printed comes before its result.
    let _ = std::io::stdout().flush();
    match conn.send_bytes(results.seal()) {
        Ok(()) => true,
        Err(e) => {
            if !matches!(e, crate::SendError::Disconnected) {
                eprintln!("shmproc: child {} could not send results: {e}", sys::pid());
            }
            false
        }
    }
}

/// Marks this thread as running a task until dropped.
struct InTask;

impl InTask {
    fn enter() -> InTask {
        IN_TASK.with(|c| c.set(true));
        InTask
    }
}

impl Drop for InTask {
    fn drop(&mut self) {
        IN_TASK.with(|c| c.set(false));
    }
}

fn encode_failure(f: &Failure) -> Vec<u8> {
    postcard::to_allocvec(f).unwrap_or_default()
}

fn install_panic_hook(print: bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_task = IN_TASK.with(Cell::get);
        if in_task {
            let message = payload_message(info.payload());
            let location = info
                .location()
                .map_or_else(|| "unknown location".to_owned(), ToString::to_string);
            CAUGHT.with(|c| *c.borrow_mut() = Some((message, location)));
        }
        if print || !in_task {
            previous(info);
        }
    }));
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any> (a panic payload that is not a string)".to_owned()
    }
}
