//! Linux: `/dev/shm` objects, shared (non-private) futexes, OFD locks as liveness beacons,
//! and the process calls of `process` (parent-death signal, names, signals, code ranges,
//! random bytes, the key pipe on a child's stdin).

use crate::primitive::AtomicU32;
use crate::raw::Wait;
use rustix::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::io;
use std::ops::Range;
use std::time::{Duration, Instant};

/// The file system that holds POSIX shared-memory objects on Linux (the directory glibc's
/// `shm_open` opens them in; a tmpfs), for paths and for error messages.
pub(crate) const SHM_FS: &str = "/dev/shm";

fn shm_path(os_name: &str) -> String {
    // `os_name` was validated by `segment::name` (no '/', no NUL, starts with the prefix).
    format!("{SHM_FS}/{}", os_name.trim_start_matches('/'))
}

/// Creates `os_name` exclusively (`O_CREAT | O_EXCL`, never adopting an existing object) and
/// sets its mode with `fchmod`, so the umask does not change it.
pub(crate) fn shm_create_exclusive(os_name: &str, mode: u32) -> io::Result<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(shm_path(os_name), flags, Mode::from_raw_mode(mode))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(fd)
}

/// Opens an existing object read-write, refusing symlinks.
pub(crate) fn shm_open_existing(os_name: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::open(shm_path(os_name), flags, Mode::empty())?)
}

/// Opens an existing object read-only, refusing symlinks (inspection: it never writes).
pub(crate) fn shm_open_readonly(os_name: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::open(shm_path(os_name), flags, Mode::empty())?)
}

/// The OS names (`/shmproc.<name>`) of the objects in `/dev/shm` whose file name starts with
/// `prefix` (without its leading '/'), sorted. Entries that are not valid UTF-8 are skipped.
pub(crate) fn shm_list(prefix: &str) -> io::Result<Vec<String>> {
    let prefix = prefix.trim_start_matches('/');
    let mut names: Vec<String> = std::fs::read_dir(SHM_FS)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("/{n}"))
        .collect();
    names.sort();
    Ok(names)
}

/// The inode that `os_name` names now (`lstat`: a symlink is reported as itself).
pub(crate) fn shm_inode(os_name: &str) -> io::Result<u64> {
    Ok(rustix::fs::lstat(shm_path(os_name))?.st_ino)
}

/// Removes the name; existing mappings stay valid.
pub(crate) fn shm_unlink(os_name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlink(shm_path(os_name))?)
}

/// What `fstat` says about a segment's descriptor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileInfo {
    pub(crate) size: u64,
    pub(crate) uid: u32,
    pub(crate) mode: u32,
    pub(crate) is_regular: bool,
    pub(crate) inode: u64,
    /// Last status change, seconds since the Unix epoch (tmpfs keeps no birth time: a
    /// segment's creation is its last status change until someone `fchmod`s or resizes it).
    pub(crate) changed: i64,
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileInfo> {
    let st = rustix::fs::fstat(fd)?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    Ok(FileInfo {
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        is_regular: kind == rustix::fs::FileType::RegularFile,
        inode: st.st_ino,
        changed: st.st_ctime,
    })
}

/// Bytes an unprivileged process may still allocate on the file system of `fd` (for
/// `/dev/shm`: what tmpfs has left; touching pages beyond it raises SIGBUS).
pub(crate) fn available_bytes(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = rustix::fs::fstatvfs(fd)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Sets the size of the object without allocating its pages (tmpfs keeps it sparse).
pub(crate) fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// Allocates the pages of bytes `0..len` of the object and sets its size to `len`
/// (`fallocate` with mode 0). On tmpfs the pages are taken now, so no later first touch of
/// them can fail; when tmpfs lacks room it fails with `ENOSPC` and gives back what it had
/// allocated, leaving the size unchanged. Retried on `EINTR` (tmpfs stops a long
/// allocation when a signal arrives, also undoing it).
pub(crate) fn reserve(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    loop {
        match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, len) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Maps `len` bytes of the object shared and read-only (inspection: its words are only
/// loaded; a store would fault).
pub(crate) fn map_readonly(fd: BorrowedFd<'_>, len: usize) -> io::Result<memmap2::MmapRaw> {
    memmap2::MmapOptions::new().len(len).map_raw_read_only(fd.as_raw_fd())
}

/// Maps `len` bytes of the object shared and read-write.
pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<memmap2::MmapRaw> {
    memmap2::MmapOptions::new().len(len).map_raw(fd.as_raw_fd())
}

fn flock(kind: libc::c_short, offset: u64) -> libc::flock {
    flock_range(kind, offset, 1)
}

fn flock_range(kind: libc::c_short, offset: u64, len: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value for every field.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl.l_pid = 0; // required by OFD locks
    fl
}

/// Takes the OFD write lock on byte `offset` of `fd` without waiting.
/// `Ok(false)`: somebody else holds it.
pub(crate) fn beacon_try_lock(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, offset);
    // SAFETY: `fd` is a live descriptor for the duration of the call and `fl` a valid
    // `flock` that the kernel reads; F_OFD_SETLK takes exactly that argument.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Releases the OFD lock on byte `offset` of `fd`.
pub(crate) fn beacon_unlock(fd: BorrowedFd<'_>, offset: u64) {
    let mut fl = flock(libc::F_UNLCK as libc::c_short, offset);
    // SAFETY: as in `beacon_try_lock`; unlocking a byte we do not hold is a no-op.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
}

/// Takes the OFD write lock on bytes `offset..offset + len` of `fd` without waiting.
/// `Ok(false)`: somebody else holds a lock on one of them. Needs `fd` open for writing.
pub(crate) fn beacon_range_try_lock(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<bool> {
    let mut fl = flock_range(libc::F_WRLCK as libc::c_short, offset, len);
    // SAFETY: as in `beacon_try_lock`.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Releases the OFD locks of `fd` on bytes `offset..offset + len` (a no-op where it holds
/// none).
pub(crate) fn beacon_range_unlock(fd: BorrowedFd<'_>, offset: u64, len: u64) {
    let mut fl = flock_range(libc::F_UNLCK as libc::c_short, offset, len);
    // SAFETY: as in `beacon_try_lock`; unlocking bytes we do not hold is a no-op.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
}

/// Whether some *other* open file description holds the OFD lock on byte `offset`.
/// Locks held through `fd` itself (or a dup of it) are reported free.
pub(crate) fn beacon_is_held(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, offset);
    // SAFETY: as in `beacon_try_lock`; F_OFD_GETLK writes the result into `fl`.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether some *other* open file description holds an OFD lock on any byte of
/// `offset..offset + len` (one `F_OFD_GETLK` for the whole range; locks held through `fd`
/// itself are reported free, as in [`beacon_is_held`]).
pub(crate) fn beacon_range_is_held(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<bool> {
    let mut fl = flock_range(libc::F_WRLCK as libc::c_short, offset, len);
    // SAFETY: as in `beacon_try_lock`; F_OFD_GETLK writes the result into `fl`.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// How long one sleep may last before the sleeper re-checks liveness and deadlines.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(10);

/// [`Wait`] with shared futexes: works across processes on a word in a shared mapping.
pub(crate) struct Futex;

impl Wait for Futex {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        let mut slice = WAIT_SLICE;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            slice = slice.min(left);
        }
        let ts = rustix::thread::futex::Timespec {
            tv_sec: slice.as_secs() as _,
            tv_nsec: slice.subsec_nanos() as _,
        };
        // Not FUTEX_PRIVATE: the word lives in a MAP_SHARED mapping that other processes
        // wait on. EAGAIN (value changed), EINTR and ETIMEDOUT all mean "re-check".
        let _ = rustix::thread::futex::wait(word, rustix::thread::futex::Flags::empty(), expected, Some(&ts));
    }

    fn wake_all(&self, word: &AtomicU32) {
        let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), i32::MAX as u32);
    }

    fn wake_one(&self, word: &AtomicU32) {
        let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
    }

    fn wake_n(&self, word: &AtomicU32, n: u32) {
        let n = n.min(i32::MAX as u32);
        let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), n);
    }

    fn pause(&self, round: u32, deadline: Option<Instant>) {
        pause(round, deadline);
    }
}

/// Rounds of [`pause`] that only yield the CPU before it starts to sleep.
const PAUSE_YIELDS: u32 = 32;

/// [`Wait::pause`]: `sched_yield` for the first rounds (a peer mid-copy is usually running,
/// or waiting for this CPU), then sleeps of 50 µs doubling up to 1 ms (it may be descheduled
/// or stopped), never past `deadline`.
pub(crate) fn pause(round: u32, deadline: Option<Instant>) {
    if round < PAUSE_YIELDS {
        std::thread::yield_now();
        return;
    }
    let mut d = Duration::from_micros(50u64 << (round - PAUSE_YIELDS).min(4)).min(Duration::from_millis(1));
    if let Some(end) = deadline {
        d = d.min(end.saturating_duration_since(Instant::now()));
    }
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

/// Sleeps for `d` (used only while waiting for a segment's creator to size it).
pub(crate) fn sleep(d: Duration) {
    std::thread::sleep(d);
}

/// Stops this process with SIGSTOP (fault injection: the test continues it with SIGCONT).
///
/// `raise` directs the signal at the calling thread (`tgkill`), so this thread stops before
/// it returns; `kill(getpid())` may be delivered to another thread first and let the caller
/// run on past the fault point.
#[cfg(feature = "fault-injection")]
pub(crate) fn stop_self() {
    // SAFETY: raise(3) has no memory-safety preconditions.
    unsafe { libc::raise(libc::SIGSTOP) };
}

// ---------------------------------------------------------------------------------------------
// Processes

/// SIGTERM's number, for [`send_signal`].
pub(crate) const SIGTERM: i32 = libc::SIGTERM;

/// SIGKILL's number, for [`send_signal`].
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// The parent's process id.
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid(2) takes no arguments and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// In a freshly forked child, before `exec`: asks the kernel to SIGKILL this process when
/// the thread that forked it exits, and fails with `ESRCH` if the parent `parent` is already
/// gone (prctl(2): it may have died before the request took effect, and then the signal
/// never comes). Only async-signal-safe calls, no allocation.
pub(crate) fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG takes a signal number and no pointers.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if parent_pid() != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Sets the name of the calling thread, which for the main thread is the process name that
/// `ps` and `top` show: the first 15 bytes of `name` that are not NUL.
pub(crate) fn set_thread_name(name: &str) {
    let mut buf = [0u8; 16];
    let bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    buf[..bytes.len()].copy_from_slice(&bytes);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the
    // pointer; `buf` is 16 bytes and its last byte is 0.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Sends `signal` to the process `pid` (kill(2)). The caller makes sure that `pid` is still
/// the process it means (for a child: not reaped yet, so the id cannot have been reused).
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
/// mapped in this process (`dl_iterate_phdr(3)`).
pub(crate) fn exe_code_ranges() -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    // SAFETY: the callback only reads the `dl_phdr_info` it is given, for the duration of the
    // call, and writes through `data`, which is `&mut ranges` cast to a pointer.
    unsafe { libc::dl_iterate_phdr(Some(collect_first), (&raw mut ranges).cast()) };
    ranges
}

/// `dl_iterate_phdr` callback: records the first object's (the main program's) executable
/// segments and stops.
///
/// # Safety
///
/// `info` points to a valid `dl_phdr_info` for the duration of the call, and `data` to a
/// `Vec<Range<usize>>` that nothing else accesses meanwhile (as `dl_iterate_phdr` called by
/// [`exe_code_ranges`] guarantees).
unsafe extern "C" fn collect_first(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `&mut Vec` passed by `exe_code_ranges`, alive for the whole
    // iteration.
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

/// A new pipe, both ends close-on-exec: `(read end, write end)`.
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) writes two descriptors to `fds`, an array of two `c_int`s.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Waits at most `timeout` (rounded to whole milliseconds, at least 1) for stdin to be
/// readable, poll(2): `Ok(true)` when it is (data, end of file or an error to read),
/// `Ok(false)` when the time passed. A signal gives `Err` of kind `Interrupted`.
pub(crate) fn wait_stdin_readable(timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: poll(2) reads and writes the one `pollfd` it is given.
    let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r > 0)
}

/// Reads at most `buf.len()` bytes from stdin with one read(2): the count, 0 at end of file.
pub(crate) fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: read(2) writes at most `buf.len()` bytes to `buf`, valid for that many.
    let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Makes descriptor 0 (stdin) a duplicate of `fd`, closing whatever stdin was (dup2(2)).
pub(crate) fn replace_stdin(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: dup2(2) on two descriptors: `fd` is open for the call, and replacing descriptor
    // 0 is what this function is for (std's `Stdin` reads descriptor 0 whatever it is).
    let r = unsafe { libc::dup2(fd.as_raw_fd(), libc::STDIN_FILENO) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The abstract Unix socket address of the async doorbell `nonce` of process `pid`
/// (`\0shmproc.<pid>.<nonce>`): abstract names need no file and vanish with their socket, so
/// a dead process leaves nothing behind and a send to it fails at once.
fn doorbell_addr(pid: u32, nonce: u32) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(format!("shmproc.{pid}.{nonce}"))
}

#[cfg(feature = "tokio")]
/// Binds this process's doorbell `nonce`: a non-blocking datagram socket that wakers send
/// one-byte datagrams to.
pub(crate) fn bind_doorbell(nonce: u32) -> io::Result<std::os::unix::net::UnixDatagram> {
    let sock = std::os::unix::net::UnixDatagram::bind_addr(&doorbell_addr(pid(), nonce)?)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Rings the doorbell `nonce` of process `pid`: one datagram, never waiting. Returns `false`
/// when no such socket exists (`ECONNREFUSED`: its process died, since a live one keeps its
/// doorbell open while any wait is armed; or a peer wrote the record). Every other failure is
/// ignored: a full socket already has a ring pending, and a waker must never stall on a slow
/// waiter.
pub(crate) fn ring_doorbell(pid: u32, nonce: u32) -> bool {
    static SENDER: std::sync::OnceLock<Option<std::os::unix::net::UnixDatagram>> = std::sync::OnceLock::new();
    let sender = SENDER.get_or_init(|| {
        let s = std::os::unix::net::UnixDatagram::unbound().ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    });
    if let (Some(s), Ok(addr)) = (sender, doorbell_addr(pid, nonce)) {
        if let Err(e) = s.send_to_addr(&[1], &addr) {
            return e.kind() != io::ErrorKind::ConnectionRefused;
        }
    }
    true
}
