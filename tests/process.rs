//! `Process`: real child processes of this test binary, started through
//! `shmproc::test_support!()`.

mod common;

use common::{Name, child_main, say, spawn};
use serde::{Deserialize, Serialize};
use shmproc::{MessageQueue, Process, ProcessError};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

shmproc::test_support!();

/// Roles for children started by the common harness (not by `Process`), which run without
/// `init()`.
#[test]
fn child_entry() {
    child_main(|role, _args| match role {
        "spawn_without_init" => match Process::spawn(square, 3) {
            Err(ProcessError::NotInitialized) => say("RESULT not_initialized"),
            Err(e) => say(format!("RESULT other error {e}")),
            Ok(_) => say("RESULT spawned"),
        },
        other => panic!("unknown role {other}"),
    });
}

fn square(x: u64) -> u64 {
    x * x
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Job {
    id: u32,
    name: String,
    weights: Vec<f64>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Report {
    id: u32,
    summary: String,
    total: f64,
    pid: u32,
}

fn report(job: Job) -> Report {
    Report {
        id: job.id,
        summary: format!("{} x{}", job.name, job.weights.len()),
        total: job.weights.iter().sum(),
        pid: std::process::id(),
    }
}

fn boom(x: u32) -> u32 {
    if x > 0 {
        panic!("boom with {x}");
    }
    x
}

fn sleep_secs(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

fn exit_with(code: i32) {
    std::process::exit(code);
}

fn echo_len(v: Vec<u8>) -> usize {
    v.len()
}

fn make_bytes(n: usize) -> Vec<u8> {
    vec![7; n]
}

/// Reports this process's pid on the queue `name`, then sleeps.
fn report_pid_then_sleep(name: String) {
    let q = MessageQueue::<u32>::open(&name).expect("open queue");
    q.put(&std::process::id()).expect("put pid");
    std::thread::sleep(Duration::from_secs(600));
}

/// Starts a daemon child that reports its pid on the queue `name`, then sleeps.
fn daemon_parent(name: String) {
    let grandchild = Process::builder()
        .daemon(true)
        .name("grandchild")
        .spawn(report_pid_then_sleep, name)
        .expect("spawn grandchild");
    std::thread::sleep(Duration::from_secs(600));
    drop(grandchild);
}

/// Whether `pid` is gone: no such process, or a zombie.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gone(pid)
}

#[test]
fn results_come_back_typed_and_in_order() {
    shmproc::init();
    let jobs: Vec<Job> = (0..4)
        .map(|i| Job {
            id: i,
            name: format!("job {i} \u{e9}"),
            weights: (0..i).map(f64::from).collect(),
        })
        .collect();
    let mut procs: Vec<_> = jobs
        .iter()
        .map(|j| Process::spawn(report, j.clone()).expect("spawn"))
        .collect();
    for (i, p) in procs.iter_mut().enumerate() {
        let pid = p.pid();
        let r = p.join().expect("join");
        assert_eq!(r.id, i as u32);
        assert_eq!(r.summary, format!("job {i} \u{e9} x{i}"));
        assert_eq!(r.total, (0..i as u32).map(f64::from).sum::<f64>());
        assert_eq!(r.pid, pid, "ran in the child");
        assert_ne!(r.pid, std::process::id());
        assert!(p.exit_status().expect("reaped").success());
        assert!(!p.is_alive());
        assert!(matches!(p.join(), Err(ProcessError::AlreadyJoined)));
    }
    // A closure that captures nothing is a plain function.
    let mut p = Process::spawn(|(a, b): (u32, u32)| a + b, (40, 2)).expect("spawn");
    assert_eq!(p.join().expect("join"), 42);
}

#[test]
fn a_panic_comes_back_with_message_and_location() {
    shmproc::init();
    let mut p = Process::spawn(boom, 7).expect("spawn");
    match p.join() {
        Err(ProcessError::Panicked { message, location }) => {
            assert_eq!(message, "boom with 7");
            assert!(location.starts_with("tests/process.rs:"), "{location}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(p.exit_status().and_then(|s| s.code()), Some(1));
    let mut ok = Process::spawn(boom, 0).expect("spawn");
    assert_eq!(ok.join().expect("join"), 0);
}

#[test]
fn join_timeout_on_a_hung_child_then_kill() {
    shmproc::init();
    let mut p = Process::builder().name("hung").spawn(sleep_secs, 600).expect("spawn");
    assert_eq!(p.name(), Some("hung"));
    let t0 = Instant::now();
    assert!(matches!(
        p.join_timeout(Duration::from_millis(300)),
        Err(ProcessError::Timeout)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert!(p.is_alive());
    assert_eq!(p.exit_status(), None);
    p.kill().expect("kill");
    match p.join() {
        Err(ProcessError::Killed { signal }) => assert_eq!(signal, libc::SIGKILL),
        other => panic!("expected Killed, got {other:?}"),
    }
    assert_eq!(p.exit_status().and_then(|s| s.signal()), Some(libc::SIGKILL));
    // Signals after the child was reaped do nothing.
    p.terminate().expect("no-op");
}

#[test]
fn join_async_awaits_results_timeouts_and_kills() {
    shmproc::init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut ps: Vec<_> = (1..=4u64).map(|i| Process::spawn(square, i).expect("spawn")).collect();
        let mut got = Vec::new();
        for p in &mut ps {
            got.push(p.join_async().await.expect("join_async"));
        }
        assert_eq!(got, [1, 4, 9, 16]);
        assert!(matches!(ps[0].join_async().await, Err(ProcessError::AlreadyJoined)));
        let mut hung = Process::spawn(sleep_secs, 600).expect("spawn");
        // Cancelled mid-wait, then a timeout, then killed: the join still works.
        tokio::select! {
            _ = hung.join_async() => panic!("it sleeps"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        assert!(matches!(
            hung.join_timeout_async(Duration::from_millis(50)).await,
            Err(ProcessError::Timeout)
        ));
        hung.kill().expect("kill");
        assert!(matches!(hung.join_async().await, Err(ProcessError::Killed { .. })));
        let mut p = Process::spawn(boom, 7).expect("spawn");
        assert!(matches!(p.join_async().await, Err(ProcessError::Panicked { .. })));
    });
}

#[test]
fn terminate_sends_sigterm() {
    shmproc::init();
    let mut p = Process::spawn(sleep_secs, 600).expect("spawn");
    p.terminate().expect("terminate");
    match p.join() {
        Err(ProcessError::Killed { signal }) => assert_eq!(signal, libc::SIGTERM),
        other => panic!("expected Killed, got {other:?}"),
    }
}

#[test]
fn exiting_without_a_result_is_no_result() {
    shmproc::init();
    let mut p = Process::spawn(exit_with, 3).expect("spawn");
    match p.join() {
        Err(ProcessError::NoResult { status }) => assert_eq!(status.code(), Some(3)),
        other => panic!("expected NoResult, got {other:?}"),
    }
    // Exit code 0 without a result is what a test binary without `test_support!()` does:
    // the message says so.
    let mut p = Process::spawn(exit_with, 0).expect("spawn");
    let e = p.join().expect_err("no result");
    assert!(matches!(e, ProcessError::NoResult { .. }), "{e:?}");
    assert!(e.to_string().contains("test_support!()"), "{e}");
}

#[test]
fn sizes_are_checked() {
    shmproc::init();
    let b = Process::builder().max_message_size(4096);
    match b.spawn(echo_len, vec![1u8; 5000]) {
        Err(ProcessError::TooLarge { what, size, max }) => {
            assert_eq!(what, "the arguments");
            assert!(size > 5000 && max < 4096, "{size} {max}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let mut p = b.spawn(echo_len, vec![1u8; 3000]).expect("spawn");
    assert_eq!(p.join().expect("join"), 3000);
    let mut p = b.spawn(make_bytes, 5000).expect("spawn");
    match p.join() {
        Err(ProcessError::TooLarge { what, .. }) => assert_eq!(what, "the result"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        Process::builder().max_message_size(10).spawn(echo_len, vec![]),
        Err(ProcessError::InvalidArgument { .. })
    ));
    // A larger maximum carries a larger value.
    let mut p = Process::builder()
        .max_message_size(8 << 20)
        .spawn(make_bytes, 5 << 20)
        .expect("spawn");
    assert_eq!(p.join().expect("join").len(), 5 << 20);
}

#[test]
fn spawn_without_init_is_refused() {
    // The harness child runs only `child_entry`, so nothing there called `init()`.
    let mut c = spawn("spawn_without_init", &[]);
    assert_eq!(c.expect_line("RESULT", Duration::from_secs(60)), "not_initialized");
    c.wait_ok(Duration::from_secs(60));
}

/// Reports this process's pid on the queue `name`.
fn report_pid(name: String) {
    let q = MessageQueue::<u32>::open(&name).expect("open queue");
    q.put(&std::process::id()).expect("put pid");
}

#[test]
fn a_dropped_handle_still_runs_its_job_and_is_reaped() {
    shmproc::init();
    let name = Name::new("dropped");
    let q = MessageQueue::<u32>::create(&name, 4).expect("queue");
    // Dropped at once, before the child can have connected: it still finds its job.
    drop(Process::spawn(report_pid, name.to_string()).expect("spawn"));
    let pid = q.get_timeout(Duration::from_secs(60)).expect("the job ran");
    // Reaped: a zombie would keep /proc/PID.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "child {pid} was not reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn handles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Process<String>>();
    send_sync::<shmproc::Pool>();
    send_sync::<shmproc::AsyncResult<String>>();
    send_sync::<ProcessError>();
}

#[test]
fn a_daemon_child_dies_with_its_parent() {
    shmproc::init();
    let name = Name::new("daemon");
    let q = MessageQueue::<u32>::create(&name, 4).expect("queue");
    let mut middle = Process::spawn(daemon_parent, name.to_string()).expect("spawn");
    let grandchild = q.get_timeout(Duration::from_secs(60)).expect("grandchild pid");
    assert!(!gone(grandchild), "the grandchild runs");
    middle.kill().expect("kill");
    assert!(matches!(middle.join(), Err(ProcessError::Killed { .. })));
    assert!(
        wait_gone(grandchild, Duration::from_secs(30)),
        "daemon grandchild {grandchild} outlived its parent"
    );
}

#[test]
fn dropping_a_daemon_handle_kills_it() {
    shmproc::init();
    let p = Process::builder().daemon(true).spawn(sleep_secs, 600).expect("spawn");
    assert!(p.is_daemon());
    let pid = p.pid();
    drop(p);
    assert!(wait_gone(pid, Duration::from_secs(30)));
}
