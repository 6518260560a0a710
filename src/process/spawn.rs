//! The parent's side of starting a child: the pipe, the start frame, the command line, the
//! parent-death signal; and the reaper that waits for children whose handles were dropped.

use super::child::{CHILD_ARGS, JOB_PREFIX};
use super::sys;
use super::wire::{self, Fingerprint, JobKey, START, Start};
use crate::error::{OpenError, ProcessError};
use crate::{Connection, Options, Pipe};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a child is started.
pub(crate) struct Launch<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) daemon: bool,
    pub(crate) one_shot: bool,
    pub(crate) print_panics: bool,
    pub(crate) max_message_size: usize,
    /// Messages each way the pipe buffers.
    pub(crate) capacity: usize,
}

/// A started child: its process, our end of its pipe, and the key its task frames are sealed
/// with ([`wire::seal`]).
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) conn: Connection,
    pub(crate) key: JobKey,
}

/// Creates the pipe, queues the start frame and `first` (a task frame, for a `Process`,
/// sealed here with sequence number 1), and starts this executable as a child that serves
/// the pipe, with the child's job key on its stdin.
pub(crate) fn launch(l: &Launch<'_>, first: Option<Vec<u8>>) -> Result<Spawned, ProcessError> {
    super::ensure_initialized()?;
    let fingerprint = Fingerprint::current().map_err(|reason| ProcessError::Spawn(std::io::Error::other(reason)))?;
    let key = JobKey::random().map_err(ProcessError::Spawn)?;
    // The key goes through a pipe of the child's own: never through shared memory, the
    // command line or the environment, which other processes can read.
    let key_pipe = super::sys::pipe_holding(&key.0).map_err(ProcessError::Spawn)?;
    let conn = create_pipe(l)?;
    let start = Start {
        fingerprint,
        parent: sys::pid(),
        daemon: l.daemon,
        name: l.name.map(str::to_owned),
        one_shot: l.one_shot,
        print_panics: l.print_panics,
    };
    let mut frame = vec![START];
    crate::codec::append(&start, &mut frame).map_err(|reason| ProcessError::Encode {
        what: "the start frame",
        reason,
    })?;
    let ipc = |e: crate::SendError| ProcessError::Ipc {
        reason: format!("could not queue the job for the child: {e}"),
    };
    conn.send_bytes(&frame).map_err(ipc)?;
    if let Some(mut task) = first {
        wire::seal(&mut task, &key, 1);
        conn.send_bytes(&task).map_err(ipc)?;
    }
    let mut cmd = Command::new("/proc/self/exe");
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    cmd.args(CHILD_ARGS)
        .arg(format!("{JOB_PREFIX}{}", conn.name()))
        .stdin(Stdio::from(key_pipe));
    if l.daemon {
        let parent = sys::pid();
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe system calls (prctl, getppid); it neither allocates nor locks.
        unsafe {
            cmd.pre_exec(move || sys::die_with_parent(parent));
        }
    }
    // `/proc/self/exe` is the very file this process runs, even if its path was replaced
    // or removed since (a rebuild during `cargo test`).
    let child = cmd.spawn().map_err(ProcessError::Spawn)?;
    Ok(Spawned { child, conn, key })
}

fn create_pipe(l: &Launch<'_>) -> Result<Connection, ProcessError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pipe = Pipe::new()
        .capacity(l.capacity)
        .options(Options::new().max_message_size(l.max_message_size));
    let mut tries = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // At most 1 + 7 + 1 + 13 = 22 bytes: pids are below 2^22 on Linux, and the counter
        // stays below 2^52.
        let name = format!("p{}x{n:x}", sys::pid());
        match pipe.create(&name) {
            Ok(c) => return Ok(c),
            // Left by an earlier process with our pid that was killed: take the next name.
            Err(OpenError::AlreadyExists { .. }) if tries < 16 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

static REAPER: Mutex<Reaper> = Mutex::new(Reaper {
    children: Vec::new(),
    running: false,
});

struct Reaper {
    /// Each child with our end of its pipe, kept until the child exits so that a child that
    /// has not connected yet still finds its job.
    children: Vec<(Child, Option<Connection>)>,
    running: bool,
}

/// Waits for `child` in the background (one thread for all such children, started when
/// needed and gone when none is left), so that it never stays a zombie; `conn` is dropped
/// once it has exited.
pub(crate) fn reap_later(child: Child, conn: Option<Connection>) {
    let mut r = REAPER.lock().unwrap_or_else(|p| p.into_inner());
    r.children.push((child, conn));
    if r.running {
        return;
    }
    let started = std::thread::Builder::new()
        .name("shmproc-reaper".to_owned())
        .spawn(reaper_loop);
    // If no thread can be started, the children stay in the list and the next call tries
    // again.
    r.running = started.is_ok();
}

fn reaper_loop() {
    let mut pause = Duration::from_millis(1);
    loop {
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
        let mut r = REAPER.lock().unwrap_or_else(|p| p.into_inner());
        r.children.retain_mut(|(c, _)| matches!(c.try_wait(), Ok(None)));
        if r.children.is_empty() {
            r.running = false;
            return;
        }
    }
}
