//! A hostile peer rewrites the task frames queued in a child's job pipe: the function and
//! trampoline offsets, the MAC, the sequence number (a replayed frame), a frame copied from
//! another child's pipe, the frame kind and the arguments.
//!
//! What must hold: the child refuses the task (`Unauthenticated`), exits with its
//! "cannot parse" code (`NoResult` / `WorkerDied` with code 76), or fails to decode the
//! arguments (`Decode`); it never jumps where the peer says, so it never dies of a signal.
//!
//! Each case runs in a role process started with `SHMPROC_FAULT=process.child.before_connect`
//! and `SHMPROC_FAULT_ACTION=stop`: the children it starts stop themselves before they
//! connect to their pipe, which is when a peer can still open the pipe's segment by name. The
//! role opens the segment file as the peer would (its own descriptor, reads and writes at
//! offsets), rewrites the frame, and lets the child go on with SIGCONT.

mod common;

use common::{child_main, say, spawn_env};
use shmproc::{Pool, Process, ProcessError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

shmproc::test_support!();

/// Task frame layout (`src/process/wire.rs`): kind, sequence, MAC, id, trampoline offset,
/// function offset, count, then items (length `u32`, postcard bytes).
const KIND: usize = 0;
const SEQ: usize = 1;
const MAC: usize = 9;
const TRAMP: usize = 33;
const FUNC: usize = 41;
const COUNT: usize = 49;
const HEADER: usize = 53;
/// A task frame's kind byte.
const TASK: u8 = 2;
/// The exit code of a child that got a frame it cannot parse.
const EXIT_MALFORMED: i32 = 76;

const FAULT: [(&str, &str); 2] = [
    ("SHMPROC_FAULT", "process.child.before_connect"),
    ("SHMPROC_FAULT_ACTION", "stop"),
];

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        "process" => {
            shmproc::init();
            for mode in args {
                say(format!("RESULT {mode} {}", tamper_process(mode)));
            }
        }
        "copy" => {
            shmproc::init();
            say(format!("RESULT copy {}", copy_between_children()));
        }
        "pool" => {
            shmproc::init();
            say(format!("RESULT {} {}", args[0], tamper_pool(&args[0])));
        }
        other => panic!("unknown role {other}"),
    });
}

fn square(x: u64) -> u64 {
    x * x
}

/// Waits (at most 30 s) until the file `path` exists; `true` if it does.
fn wait_for(path: String) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::path::Path::new(&path).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A short name for an outcome (no spaces, for a report line).
fn outcome<T: std::fmt::Debug>(r: Result<T, ProcessError>) -> String {
    let s = match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(ProcessError::Unauthenticated { .. }) => "Unauthenticated".to_owned(),
        Err(ProcessError::NoResult { status }) => format!("NoResult({:?})", status.code()),
        Err(ProcessError::Killed { signal }) => format!("Killed({signal})"),
        Err(ProcessError::Decode { what, .. }) => format!("Decode({what})"),
        Err(ProcessError::WorkerDied { signal, code, .. }) => format!("WorkerDied({signal:?},{code:?})"),
        Err(e) => format!("Other({e})"),
    };
    s.replace(' ', "_")
}

/// Names of this process's job pipes now in `/dev/shm`.
fn pipes() -> Vec<String> {
    let prefix = format!("shmproc.p{}x", std::process::id());
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.starts_with(&prefix))
        .collect()
}

/// The one pipe of this process that is not in `before`, waiting for it to appear.
fn new_pipe(before: &[String]) -> File {
    let deadline = Instant::now() + common::LONG;
    loop {
        if let Some(name) = pipes().into_iter().find(|p| !before.contains(p)) {
            return OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/dev/shm/{name}"))
                .unwrap();
        }
        assert!(Instant::now() < deadline, "no new job pipe appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// State and parent of process `pid` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s[s.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// Waits until the child `pid` has stopped itself at the fault point.
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + common::LONG;
    while stat(pid).map(|s| s.0) != Some('T') {
        assert!(Instant::now() < deadline, "child {pid} did not stop at the fault point");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A stopped child of this process, waiting for one to stop.
fn stopped_child() -> u32 {
    let me = std::process::id();
    let deadline = Instant::now() + common::LONG;
    loop {
        let found = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|&pid| stat(pid) == Some(('T', me)));
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "no child stopped at the fault point");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn resume(pid: u32) {
    // SAFETY: kill(2) with plain integers, on a child of ours that has not been reaped.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) }, 0);
}

fn contents(file: &File) -> Vec<u8> {
    let len = file.metadata().unwrap().len() as usize;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, 0).unwrap();
    buf
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Offset in the segment of the task frame with sequence number `seq` whose single item is
/// `item` (found by its bytes: the peer knows the frame layout, not the ring's).
fn find_frame(file: &File, seq: u64, item: &[u8]) -> Option<usize> {
    let bytes = contents(file);
    let len = HEADER + 4 + item.len();
    (0..bytes.len().saturating_sub(len)).find(|&o| {
        bytes[o + KIND] == TASK
            && u64_at(&bytes, o + SEQ) == seq
            && u32_at(&bytes, o + COUNT) == 1
            && u32_at(&bytes, o + HEADER) as usize == item.len()
            && &bytes[o + HEADER + 4..o + len] == item
    })
}

/// Waits for the frame of [`find_frame`] to be queued.
fn wait_frame(file: &File, seq: u64, item: &[u8]) -> usize {
    let deadline = Instant::now() + common::LONG;
    loop {
        if let Some(at) = find_frame(file, seq, item) {
            return at;
        }
        assert!(Instant::now() < deadline, "task frame {seq} never appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn add_u64(file: &File, at: usize, delta: u64) {
    let mut b = [0; 8];
    file.read_exact_at(&mut b, at as u64).unwrap();
    let v = u64::from_le_bytes(b).wrapping_add(delta);
    file.write_all_at(&v.to_le_bytes(), at as u64).unwrap();
}

/// Starts `square(7)` in a child stopped before it connects, rewrites its queued task frame
/// as `mode` says, lets it go on, and returns the outcome of `join`.
fn tamper_process(mode: &str) -> String {
    let before = pipes();
    let mut p = Process::builder().daemon(true).spawn(square, 7u64).unwrap();
    let file = new_pipe(&before);
    wait_stopped(p.pid());
    let item = [7u8]; // postcard of 7u64
    let at = find_frame(&file, 1, &item).expect("the queued task frame");
    let (what, amount) = mode.split_once('+').unwrap_or((mode, "0"));
    let amount: u64 = amount.parse().unwrap();
    match what {
        "func" => add_u64(&file, at + FUNC, amount),
        "tramp" => add_u64(&file, at + TRAMP, amount),
        "mac" => add_u64(&file, at + MAC, amount),
        // Sequence number 0: below the first a child accepts (as a replay would be).
        "seq" => file.write_all_at(&0u64.to_le_bytes(), (at + SEQ) as u64).unwrap(),
        "kind" => file.write_all_at(&[0x42], (at + KIND) as u64).unwrap(),
        // An incomplete varint: arguments that do not decode.
        "args" => file.write_all_at(&[0x80], (at + HEADER + 4) as u64).unwrap(),
        "none" => {}
        other => panic!("unknown mode {other}"),
    }
    drop(file);
    resume(p.pid());
    outcome(p.join_timeout(common::LONG))
}

/// Starts two children stopped before they connect and copies the first one's task frame
/// (sealed with the first child's key) over the second one's.
fn copy_between_children() -> String {
    let before = pipes();
    let mut a = Process::builder().daemon(true).spawn(square, 7u64).unwrap();
    let file_a = new_pipe(&before);
    let before = pipes();
    let mut b = Process::builder().daemon(true).spawn(square, 7u64).unwrap();
    let file_b = new_pipe(&before);
    wait_stopped(a.pid());
    wait_stopped(b.pid());
    let item = [7u8];
    let at_a = find_frame(&file_a, 1, &item).unwrap();
    let at_b = find_frame(&file_b, 1, &item).unwrap();
    let mut frame = vec![0; HEADER + 4 + 1];
    file_a.read_exact_at(&mut frame, at_a as u64).unwrap();
    file_b.write_all_at(&frame, at_b as u64).unwrap();
    resume(a.pid());
    resume(b.pid());
    let ra = outcome(a.join_timeout(common::LONG));
    let rb = outcome(b.join_timeout(common::LONG));
    format!("{ra} {rb}")
}

/// A pool of one worker, whose pipe the peer opened while the worker started. Task 1 holds
/// the worker until a file exists; meanwhile the peer rewrites the queued task 2 as `mode`
/// says (`replay`: task 1's frame, already run, copied over it; `kind`: an unknown kind).
/// Returns the outcomes of tasks 1 and 2, of a task 3 sent after, and whether task 3 ran on
/// the same worker.
fn tamper_pool(mode: &str) -> String {
    let before = pipes();
    let starting = std::thread::spawn(|| Pool::builder().processes(1).prefetch(2).build().unwrap());
    let file = new_pipe(&before);
    let worker = stopped_child();
    resume(worker);
    let pool = starting.join().unwrap();
    let dir = std::env::temp_dir();
    let stem = format!("shmproc-job-frames-{}", std::process::id());
    let (path1, path2) = (dir.join(format!("{stem}-1")), dir.join(format!("{stem}-2")));
    let (path1, path2) = (path1.to_str().unwrap().to_owned(), path2.to_str().unwrap().to_owned());
    let item = |p: &str| {
        let mut b = vec![p.len() as u8];
        b.extend_from_slice(p.as_bytes());
        b
    };
    assert!(path1.len() < 128, "a one-byte varint length");
    let t1 = pool.apply_async(wait_for, path1.clone());
    let t2 = pool.apply_async(wait_for, path2.clone());
    let at1 = wait_frame(&file, 1, &item(&path1));
    let at2 = wait_frame(&file, 2, &item(&path2));
    match mode {
        "replay" => {
            let mut frame = vec![0; HEADER + 4 + item(&path1).len()];
            file.read_exact_at(&mut frame, at1 as u64).unwrap();
            file.write_all_at(&frame, at2 as u64).unwrap();
        }
        "kind" => file.write_all_at(&[0x42], (at2 + KIND) as u64).unwrap(),
        other => panic!("unknown mode {other}"),
    }
    drop(file);
    std::fs::write(&path1, b"").unwrap();
    let r1 = outcome(t1.get_timeout(common::LONG));
    let r2 = outcome(t2.get_timeout(common::LONG));
    let _ = std::fs::remove_file(&path1);
    if mode == "kind" {
        // The replacement worker stops at the fault point too.
        resume(stopped_child());
    }
    let r3 = outcome(pool.apply(square, 6u64));
    let same = pool.pids() == [worker];
    pool.terminate();
    format!("{r1} {r2} {r3} same_worker={same}")
}

fn run_role(role: &str, args: &[&str]) -> Vec<String> {
    let mut c = spawn_env(role, args, &FAULT);
    let lines = (0..args.len().max(1))
        .map(|_| c.expect_line("RESULT", common::LONG))
        .collect();
    c.wait_ok(common::LONG);
    lines
}

#[test]
fn rewritten_offsets_mac_and_sequence_are_refused() {
    let modes = [
        "func+1", "func+5", "func+16", "tramp+1", "tramp+5", "tramp+16", "mac+1", "seq",
    ];
    for line in run_role("process", &modes) {
        let (mode, result) = line.split_once(' ').unwrap();
        assert_eq!(result, "Unauthenticated", "{mode}");
    }
}

#[test]
fn an_untouched_frame_runs_and_garbage_arguments_fail_to_decode() {
    let lines = run_role("process", &["none", "args"]);
    assert_eq!(lines, ["none Ok(49)", "args Decode(the_arguments)"]);
}

#[test]
fn a_frame_of_no_known_kind_ends_the_child_with_its_exit_code() {
    let lines = run_role("process", &["kind"]);
    assert_eq!(lines, [format!("kind NoResult(Some({EXIT_MALFORMED}))")]);
}

#[test]
fn a_frame_copied_from_another_childs_pipe_is_refused() {
    assert_eq!(run_role("copy", &[]), ["copy Ok(49) Unauthenticated"]);
}

#[test]
fn a_pool_worker_refuses_a_replayed_frame_and_serves_on() {
    assert_eq!(
        run_role("pool", &["replay"]),
        ["replay Ok(true) Unauthenticated Ok(36) same_worker=true"]
    );
}

#[test]
fn a_pool_replaces_a_worker_that_got_an_unparsable_frame() {
    assert_eq!(
        run_role("pool", &["kind"]),
        [format!(
            "kind Ok(true) WorkerDied(None,Some({EXIT_MALFORMED})) Ok(36) same_worker=false"
        )]
    );
}
