//! Cross-process test harness: the test binary re-runs itself with a role.
//!
//! A parent test calls [`spawn`]`(role, args)`: the child is this same test binary, asked to
//! run only the `child_entry` test, with `SHMPROC_ROLE` naming what to do. Each test file
//! defines `#[test] fn child_entry()` that calls [`child_main`] with its role table. Children
//! report with lines on stdout (`READY`, `RESULT ...`), are killed and reaped on drop, and
//! segment names are unique per test and removed by [`Name`]'s drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child as StdChild, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// A segment name unique to this process and call, removed from the system on drop.
pub struct Name(pub String);

impl Name {
    pub fn new(tag: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(6).collect();
        Name(format!("t{}{}{}", std::process::id(), tag, n))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmproc::remove(&self.0);
    }
}

/// A child process running a role; killed and reaped when dropped.
pub struct Child {
    pub child: StdChild,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    pub role: String,
}

/// Starts this test binary as a child running `role` with `args` (in `SHMPROC_ARGS`,
/// separated by spaces), plus extra environment variables.
pub fn spawn_env(role: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args(["child_entry", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("SHMPROC_ROLE", role)
        .env("SHMPROC_ARGS", args.join(" "))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let out = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Child {
        child,
        lines: rx,
        stdin,
        role: role.to_owned(),
    }
}

pub fn spawn(role: &str, args: &[&str]) -> Child {
    spawn_env(role, args, &[])
}

impl Child {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout line starting with `prefix` and returns the rest of it.
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("child {} sent no {prefix:?} line within {timeout:?}", self.role)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let st = self.child.wait();
                    panic!("child {} exited ({st:?}) without a {prefix:?} line", self.role)
                }
            }
        }
    }

    /// Sends a line on the child's stdin.
    pub fn send(&mut self, line: &str) {
        if let Some(s) = &mut self.stdin {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Closes the child's stdin (children that wait for it then exit).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; it is not reaped yet (we hold the Child).
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Polls until the child is stopped (the SIGSTOP it sends itself at a fault point took
    /// effect), so that a SIGCONT cannot overtake it.
    pub fn wait_stopped(&self) {
        let deadline = Instant::now() + LONG;
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
            // The state follows the command name, which is in parentheses.
            if stat.rsplit_once(')').unwrap().1.trim_start().starts_with('T') {
                return;
            }
            assert!(Instant::now() < deadline, "child {} did not stop", self.pid());
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits for the child to exit successfully (panics otherwise or after `timeout`).
    pub fn wait_ok(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                assert!(st.success(), "child {} failed: {st:?}", self.role);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit within {timeout:?}",
                self.role
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// In a child: the role and arguments, if this process is a child.
pub fn role() -> Option<(String, Vec<String>)> {
    let role = std::env::var("SHMPROC_ROLE").ok()?;
    let args = std::env::var("SHMPROC_ARGS").unwrap_or_default();
    Some((role, args.split_whitespace().map(str::to_owned).collect()))
}

/// Body of each test file's `child_entry` test: runs the role, then exits the process so
/// that no other test runs in the child.
pub fn child_main(dispatch: impl FnOnce(&str, &[String])) {
    if let Some((role, args)) = role() {
        dispatch(&role, &args);
        std::io::stdout().flush().ok();
        std::process::exit(0);
    }
}

/// Prints a report line and flushes it.
pub fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// In a child: blocks until the parent closes stdin (or sends a line).
pub fn wait_parent() -> Option<String> {
    let mut s = String::new();
    match std::io::stdin().read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim().to_owned()),
    }
}

pub const LONG: Duration = Duration::from_secs(60);
