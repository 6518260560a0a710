//! Linux: `/dev/shm` objects, shared (non-private) futexes, OFD locks as liveness beacons.

use crate::primitive::AtomicU32;
use crate::raw::Wait;
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::io;
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
