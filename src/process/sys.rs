//! The few system calls `process` and `pool` need beyond the public types: the parent-death
//! signal, the process name, signals to our own children, where the executable's code is
//! mapped, random bytes, and the pipe on a child's stdin that carries its job key. Linux
//! only, like the rest of the crate (`src/os`).

use std::io;
use std::ops::Range;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// This process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// The parent's process id.
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid(2) takes no arguments and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// In a freshly forked child, before `exec`: asks the kernel to SIGKILL this process when
/// the thread that forked it exits, and fails if the parent `parent` is already gone (it
/// may have died before the request took effect). Only async-signal-safe calls.
pub(crate) fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG takes a signal number and no pointers.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if parent_pid() != parent {
        // The parent exited before the request took effect. (No allocation here: this runs
        // between fork and exec.)
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Sets the name of the calling thread, which for the main thread is the process name that
/// `ps` and `top` show (at most 15 bytes are kept).
pub(crate) fn set_process_name(name: &str) {
    let mut buf = [0u8; 16];
    let bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    buf[..bytes.len()].copy_from_slice(&bytes);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the
    // pointer; `buf` is 16 bytes and its last byte is 0.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Sends `signal` to the process `pid`. The caller guarantees that `pid` is a child of this
/// process that has not been reaped yet, so the id cannot have been reused.
pub(crate) fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers.
    let r = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Address ranges of the main executable's executable (`PF_X`) `PT_LOAD` segments, as
/// mapped in this process.
fn exe_code() -> &'static [Range<usize>] {
    static CODE: OnceLock<Vec<Range<usize>>> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut ranges: Vec<Range<usize>> = Vec::new();
        // SAFETY: the callback only reads the `dl_phdr_info` it is given, for the duration
        // of the call, and writes through `data`, which is `&mut ranges` cast to a pointer.
        unsafe { libc::dl_iterate_phdr(Some(collect_first), (&raw mut ranges).cast()) };
        ranges
    })
}

/// `dl_iterate_phdr` callback: records the first object's (the main program's) executable
/// segments and stops.
unsafe extern "C" fn collect_first(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `&mut Vec` passed by `exe_code`, alive for the whole iteration.
    let ranges = unsafe { &mut *data.cast::<Vec<Range<usize>>>() };
    // SAFETY: the loader passes a valid `dl_phdr_info` for the duration of the callback.
    let info = unsafe { &*info };
    let count = usize::from(info.dlpi_phnum);
    if info.dlpi_phdr.is_null() || count == 0 {
        return 1;
    }
    // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of the object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, count) };
    for h in headers {
        if h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0 {
            let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
            ranges.push(start..start.wrapping_add(h.p_memsz as usize));
        }
    }
    // The first object is the main program; stop after it.
    1
}

/// Whether `addr` lies in the main executable's code.
pub(crate) fn in_exe_code(addr: usize) -> bool {
    exe_code().iter().any(|r| r.contains(&addr))
}

/// Fills `buf` with random bytes from the kernel's CSPRNG (getrandom(2), blocking only until
/// the pool is initialised at boot).
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: getrandom(2) writes at most `rest.len()` bytes to `rest`, which is valid
        // for writes of that many bytes.
        let r = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += r as usize;
    }
    Ok(())
}

/// A pipe that holds `bytes` (at most one page, so the write never blocks) with its write end
/// closed: its read end, close-on-exec, for a child's stdin.
pub(crate) fn pipe_holding(bytes: &[u8]) -> io::Result<OwnedFd> {
    assert!(bytes.len() <= 4096, "a pipe buffers at least one page");
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) writes two descriptors to `fds`, an array of two `c_int`s.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut file = std::fs::File::from(write);
    io::Write::write_all(&mut file, bytes)?;
    Ok(read)
}

/// Reads exactly `buf.len()` bytes from stdin, waiting at most `timeout` in all. Fails with
/// `UnexpectedEof` if stdin ends first, `TimedOut` if the bytes do not come in time.
pub(crate) fn read_stdin_exact(buf: &mut [u8], timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut done = 0;
    while done < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "nothing on stdin in time"));
        }
        let mut pfd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: poll(2) reads and writes the one `pollfd` it is given.
        let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            continue;
        }
        let rest = &mut buf[done..];
        // SAFETY: read(2) writes at most `rest.len()` bytes to `rest`, valid for that many.
        let n = unsafe { libc::read(libc::STDIN_FILENO, rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stdin ended")),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if !matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) {
                    return Err(e);
                }
            }
            n => done += n as usize,
        }
    }
    Ok(())
}

/// Makes `/dev/null` this process's stdin (closing whatever stdin was).
pub(crate) fn stdin_from_dev_null() -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2(2) on two descriptors: `null` is open, and replacing descriptor 0 is
    // what this function is for (std's `Stdin` reads descriptor 0 whatever it is).
    let r = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), libc::STDIN_FILENO) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
