//! The few system calls `process` and `pool` need beyond the public types: the parent-death
//! signal, the process name, signals to our own children, where the executable's code is
//! mapped, random bytes, and the pipe on a child's stdin that carries its job key. The
//! system calls themselves are in `crate::os`.

use crate::os;
use crate::raw::deadline_after;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// This process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// The parent's process id.
pub(crate) fn parent_pid() -> u32 {
    os::parent_pid()
}

/// In a freshly forked child, before `exec`: asks the kernel to SIGKILL this process when
/// the thread that forked it exits, and fails if the parent `parent` is already gone (it
/// may have died before the request took effect). Only async-signal-safe calls.
pub(crate) fn die_with_parent(parent: u32) -> io::Result<()> {
    os::die_with_parent(parent)
}

/// Sets the name of the calling thread, which for the main thread is the process name that
/// `ps` and `top` show (at most 15 bytes are kept).
pub(crate) fn set_process_name(name: &str) {
    os::set_thread_name(name);
}

/// Sends `signal` to the process `pid`. The caller guarantees that `pid` is a child of this
/// process that has not been reaped yet, so the id cannot have been reused.
pub(crate) fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    os::send_signal(pid, signal)
}

/// Address ranges of the main executable's executable segments, looked up once.
fn exe_code() -> &'static [Range<usize>] {
    static CODE: OnceLock<Vec<Range<usize>>> = OnceLock::new();
    CODE.get_or_init(os::exe_code_ranges)
}

/// Whether `addr` lies in the main executable's code.
pub(crate) fn in_exe_code(addr: usize) -> bool {
    exe_code().iter().any(|r| r.contains(&addr))
}

/// Fills `buf` with random bytes from the kernel's CSPRNG (blocking only until the pool is
/// initialised at boot).
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    os::random_bytes(buf)
}

/// A pipe that holds `bytes` (at most one page, so the write never blocks) with its write end
/// closed: its read end, close-on-exec, for a child's stdin.
pub(crate) fn pipe_holding(bytes: &[u8]) -> io::Result<OwnedFd> {
    assert!(bytes.len() <= 4096, "a pipe buffers at least one page");
    let (read, write) = os::pipe_cloexec()?;
    let mut file = std::fs::File::from(write);
    io::Write::write_all(&mut file, bytes)?;
    Ok(read)
}

/// Reads exactly `buf.len()` bytes from stdin, waiting at most `timeout` in all. Fails with
/// `UnexpectedEof` if stdin ends first, `TimedOut` if the bytes do not come in time.
pub(crate) fn read_stdin_exact(buf: &mut [u8], timeout: Duration) -> io::Result<()> {
    let deadline = deadline_after(timeout);
    let mut done = 0;
    while done < buf.len() {
        // `None`: no deadline (a timeout past what `Instant` holds); poll(2) then waits in
        // slices of `i32::MAX` ms.
        let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "nothing on stdin in time"));
        }
        match os::wait_stdin_readable(left) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        match os::read_stdin(&mut buf[done..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stdin ended")),
            Ok(n) => done += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes `/dev/null` this process's stdin (closing whatever stdin was).
pub(crate) fn stdin_from_dev_null() -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    os::replace_stdin(null.as_fd())
}
