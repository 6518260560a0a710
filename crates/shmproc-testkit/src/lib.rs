//! The re-exec harness of shmproc's tests and benchmarks: a process re-runs its own binary
//! with a role.
//!
//! The parent builds a [`Spawn`] for a role (and its arguments, environment, descriptors and
//! CPU) and starts it: the child is this same executable with `SHMPROC_ROLE` naming what to
//! do and `SHMPROC_ARGS` its arguments. The child's `main` (or, in a test binary, one test
//! that the parent selects with [`Spawn::libtest_entry`]) asks [`role`] whether it is a child
//! and runs the role if so. Parent and child talk in lines: the child reports on stdout
//! ([`say`], `READY`, `RESULT ...`), the parent sends on its stdin ([`Child::send`]). A
//! [`Child`] is killed and reaped when dropped, and every wait for one has a deadline.
//!
//! Benchmarks speak a fixed protocol on top of the lines: the child says `READY`, then
//! answers each `RUN n` with `DONE ...` ([`serve`] on the child side; [`Child::ready`],
//! [`Child::run`], [`Child::done`] on the parent side) until its stdin closes.

pub mod nats;

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child as StdChild, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The environment variable that names a child's role.
pub const ROLE_VAR: &str = "SHMPROC_ROLE";
/// The environment variable that holds a child's arguments, separated by spaces.
pub const ARGS_VAR: &str = "SHMPROC_ARGS";

/// A generous deadline for a child to do something it is expected to do at once.
pub const LONG: Duration = Duration::from_secs(60);

/// A name unique to this process and call: `{prefix}{pid}{middle}{n}`, where `n` counts the
/// calls in this process.
pub fn unique_name(prefix: &str, middle: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{middle}{n}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// Parent side

/// What to start: a role of this executable, with its arguments and surroundings.
#[must_use]
pub struct Spawn {
    role: String,
    args: Vec<String>,
    exe_args: Vec<String>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    fds: Vec<RawFd>,
    cpu: Option<usize>,
    die_with_parent: bool,
    grace: Duration,
}

impl Spawn {
    /// A child of this executable running `role`, with no arguments.
    pub fn new(role: &str) -> Spawn {
        Spawn {
            role: role.to_owned(),
            args: Vec::new(),
            exe_args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            fds: Vec::new(),
            cpu: None,
            die_with_parent: false,
            grace: Duration::ZERO,
        }
    }

    /// The role's arguments (in `SHMPROC_ARGS`, so none may contain a space or be empty).
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Spawn {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// In a test binary: runs only the test `name` in the child (exactly, on one thread,
    /// quietly, output not captured), which calls [`child_main`].
    pub fn libtest_entry(mut self, name: &str) -> Spawn {
        self.exe_args = [name, "--exact", "--nocapture", "--test-threads=1", "-q"]
            .map(str::to_owned)
            .to_vec();
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Spawn {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Spawn {
        self.env_remove.push(key.into());
        self
    }

    /// Places `fds` at descriptors 3, 4, ... of the child ([`inherited`] takes them there).
    /// The parent keeps them open until the spawn returns; each must be numbered above
    /// `2 + fds.len()`, so that placing one never overwrites another not yet placed.
    pub fn fds(mut self, fds: &[RawFd]) -> Spawn {
        self.fds = fds.to_vec();
        self
    }

    /// Runs the child on CPU `cpu` only (none: wherever the scheduler puts it).
    pub fn cpu(mut self, cpu: Option<usize>) -> Spawn {
        self.cpu = cpu;
        self
    }

    /// Has the kernel SIGKILL the child when this thread's process dies (`PR_SET_PDEATHSIG`).
    pub fn die_with_parent(mut self) -> Spawn {
        self.die_with_parent = true;
        self
    }

    /// On drop, closes the child's stdin and gives it `grace` to exit by itself before it is
    /// killed (none while unwinding). Without it, a child still running on drop is killed at
    /// once.
    pub fn grace(mut self, grace: Duration) -> Spawn {
        self.grace = grace;
        self
    }

    /// Starts the child: stdin and stdout piped, stderr inherited.
    ///
    /// # Panics
    ///
    /// If the executable cannot be found or started.
    pub fn spawn(self) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(&self.exe_args)
            .env(ROLE_VAR, &self.role)
            .env(ARGS_VAR, self.args.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if self.die_with_parent || self.cpu.is_some() || !self.fds.is_empty() {
            let setup = Setup {
                parent: self.die_with_parent.then(|| std::process::id() as libc::pid_t),
                fds: self.fds.clone(),
                cpus: self.cpu.map(cpu_set),
            };
            // SAFETY: `Setup::run` is safe to run between fork and exec: it makes only
            // async-signal-safe system calls, takes no lock and does not allocate; `setup`
            // was made before the fork and is only read.
            unsafe {
                cmd.pre_exec(move || setup.run());
            }
        }
        let role = self.role;
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn child {role}: {e}"));
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
            role,
            grace: self.grace,
        }
    }
}

/// What the forked child does before exec.
struct Setup {
    /// Die with this process (`PR_SET_PDEATHSIG`), if set.
    parent: Option<libc::pid_t>,
    /// Descriptors to place at 3, 4, ...
    fds: Vec<RawFd>,
    /// The CPU set to move to.
    cpus: Option<libc::cpu_set_t>,
}

impl Setup {
    /// Moves to the CPU set, arranges to die with the parent, and places the descriptors.
    /// Only async-signal-safe system calls; no allocation (`io::Error`s from raw codes).
    fn run(&self) -> io::Result<()> {
        if let Some(set) = &self.cpus {
            // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this process.
            if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(parent) = self.parent {
            // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours.
            if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: getppid has no preconditions. A parent that died before the prctl above
            // would not kill us any more: give up instead.
            if unsafe { libc::getppid() } != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        for (i, &fd) in self.fds.iter().enumerate() {
            // SAFETY: dup2 onto 3 + i of a descriptor the parent keeps open across the spawn;
            // sources are numbered above every target (`Spawn::fds`), so no target overwrites
            // a later source. The copy made by dup2 is not close-on-exec, so it survives the
            // exec.
            if unsafe { libc::dup2(fd, 3 + i as RawFd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// A child process running a role; killed and reaped when dropped.
pub struct Child {
    /// The process.
    pub child: StdChild,
    /// Its stdout, line by line (read by a thread, so the child never blocks on a full pipe).
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    /// The role it runs.
    pub role: String,
    /// How long drop waits for it to exit after closing its stdin.
    grace: Duration,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout line starting with `prefix` (skipping others) and returns the rest
    /// of it, trimmed.
    ///
    /// # Panics
    ///
    /// If no such line comes within `timeout` or the child exits first.
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

    /// Reads the next stdout line, which must start with the word `word`; returns the numbers
    /// after it. No deadline of its own (a benchmark's watchdog bounds it).
    ///
    /// # Panics
    ///
    /// If the line says something else or the child exits first.
    pub fn expect_word(&mut self, word: &str) -> Vec<u64> {
        let Ok(line) = self.lines.recv() else {
            let status = self.child.wait();
            panic!("child {} exited ({status:?}) instead of saying {word}", self.role);
        };
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some(word), "child {} said {line:?}", self.role);
        parts.map(|p| p.parse().expect("a number")).collect()
    }

    /// Waits for the child's `READY` (benchmark protocol).
    pub fn ready(&mut self) {
        self.expect_word("READY");
    }

    /// Asks the child for one run of `n` (benchmark protocol).
    ///
    /// # Panics
    ///
    /// If the child's stdin is closed or cannot be written.
    pub fn run(&mut self, n: u64) {
        let w = self.stdin.as_mut().expect("child stdin");
        if let Err(e) = writeln!(w, "RUN {n}").and_then(|()| w.flush()) {
            panic!("child {}: {e}", self.role);
        }
    }

    /// Waits for the child's `DONE` and returns its numbers (benchmark protocol).
    pub fn done(&mut self) -> Vec<u64> {
        self.expect_word("DONE")
    }

    /// Sends a line on the child's stdin (errors are ignored: a child that is gone is
    /// noticed where its answer is awaited).
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

    /// Sends signal `sig` to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; it is not reaped yet (we hold the Child).
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Polls until the child is stopped (the SIGSTOP it sends itself at a fault point took
    /// effect), so that a SIGCONT cannot overtake it.
    ///
    /// # Panics
    ///
    /// If it does not stop within [`LONG`].
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

    /// Waits for the child to exit successfully.
    ///
    /// # Panics
    ///
    /// If it fails, or is still running after `timeout`.
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
        if !self.grace.is_zero() {
            // EOF on its stdin makes an idle child exit; one that is busy (or we are unwinding
            // from a failure) is killed below.
            drop(self.stdin.take());
            let until = Instant::now() + self.grace;
            while !std::thread::panicking() && Instant::now() < until {
                match self.child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                    Err(_) => break,
                }
            }
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Child side

/// In a child: the role and arguments, if this process is a child.
pub fn role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let args = std::env::var(ARGS_VAR).unwrap_or_default();
    Some((role, args.split_whitespace().map(str::to_owned).collect()))
}

/// Body of a test binary's entry test ([`Spawn::libtest_entry`]): if this process is a child,
/// runs the role, then exits the process so that no other test runs in the child.
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

/// In a child: blocks until the parent closes stdin (`None`) or sends a line.
pub fn wait_parent() -> Option<String> {
    let mut s = String::new();
    match std::io::stdin().read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim().to_owned()),
    }
}

/// What a benchmark child's role returns.
pub type ChildResult = Result<(), Box<dyn std::error::Error>>;

/// In a benchmark child: says `READY`, then answers each `RUN n` with `DONE <on_run(n)>`
/// until stdin closes.
///
/// # Errors
///
/// A line that is not `RUN n`, or stdin/stdout failing.
pub fn serve(mut on_run: impl FnMut(u64) -> String) -> ChildResult {
    let mut out = io::stdout().lock();
    writeln!(out, "READY")?;
    out.flush()?;
    for line in io::stdin().lock().lines() {
        let line = line?;
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["RUN", n] => {
                let reply = on_run(n.parse()?);
                writeln!(out, "DONE {reply}")?;
                out.flush()?;
            }
            _ => return Err(format!("unknown command {line:?}").into()),
        }
    }
    Ok(())
}

/// In a child: the descriptor the parent placed at `fd` ([`Spawn::fds`]). Call it once per
/// descriptor: the result owns it.
///
/// # Panics
///
/// If `fd` is not open.
pub fn inherited(fd: RawFd) -> OwnedFd {
    // SAFETY: F_GETFD only reads the descriptor's flags; any number may be asked about.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
    assert!(open, "fd {fd} was not passed to this child");
    // SAFETY: the parent dup2'ed a descriptor onto `fd` for this role (see `Setup::run`), it
    // is open (checked above), and the caller takes ownership of it only here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---------------------------------------------------------------------------------------------
// CPUs

/// The CPU this runs on, for the header of every benchmark report: the model name, then the
/// vendor, family, model and stepping (which tell microarchitectures apart where the model
/// name does not, as in a VM's "AMD EPYC") and the copy-related flags (`erms`, `fsrm`,
/// `avx2`, `avx512f`). From `/proc/cpuinfo`; "unknown CPU" where that cannot be read.
pub fn cpu_model() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return "unknown CPU".into();
    };
    let field = |name: &str| {
        info.lines()
            .take_while(|l| !l.trim().is_empty())
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    let flags = field("flags");
    let copy_flags: Vec<&str> = ["erms", "fsrm", "avx2", "avx512f"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|g| g == *f))
        .collect();
    format!(
        "{} ({} family {} model {} stepping {}; {})",
        field("model name"),
        field("vendor_id"),
        field("cpu family"),
        field("model"),
        field("stepping"),
        copy_flags.join(" ")
    )
}

/// The CPUs this process may run on, in order (empty if the kernel does not say).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    // SAFETY: every index is below CPU_SETSIZE, the number of CPUs a cpu_set_t holds.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// The set holding `cpu` alone.
fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    assert!(cpu < libc::CPU_SETSIZE as usize, "CPU {cpu} out of range");
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set
}

/// Moves the calling thread to CPU `cpu`.
///
/// # Panics
///
/// If the kernel refuses.
pub fn pin_thread(cpu: usize) {
    let set = cpu_set(cpu);
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(r, 0, "sched_setaffinity: {}", io::Error::last_os_error());
}

/// Writes `bytes` at `offset` of the segment `name`'s file in `/dev/shm`, as a hostile or
/// buggy peer would (tests of damaged segments).
///
/// # Panics
///
/// If the file cannot be opened or written.
pub fn scribble(name: &str, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/shmproc.{name}"))
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}
