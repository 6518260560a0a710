//! Names, descriptors, shared pages, futexes, memfds, CPU placement and the children's spawn:
//! the system calls the rows make themselves.

use super::*;

// ---------------------------------------------------------------------------------------------
// Names and descriptors

/// A segment name unique to this run: `cmp-<pid>-<n>` (at most 22 bytes).
pub(crate) fn seg_name() -> String {
    shmproc_testkit::unique_name("cmp-", "-")
}

/// Removes what an earlier run that was killed (SIGKILL, Ctrl-C) left in /dev/shm: names of
/// this benchmark (`shmproc.cmp-<pid>-<n>`, `cmp-raw-<pid>`) whose process no longer exists.
/// Only the "open by name" rows keep a name for longer than the set-up of a measurement.
pub(crate) fn remove_stale_names() {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else { return };
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let rest = file
            .strip_prefix(shmproc::OS_PREFIX.trim_start_matches('/'))
            .and_then(|r| r.strip_prefix("cmp-"))
            .or_else(|| file.strip_prefix("cmp-raw-"));
        let Some(pid) = rest
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => eprintln!("removed /dev/shm/{file}, left by an earlier run that was killed"),
                Err(e) => eprintln!("could not remove /dev/shm/{file}: {e}"),
            }
        }
    }
}

/// Removes a name once every process has it open; the mappings stay valid.
pub(crate) fn unlink(name: &str) {
    shmproc::remove(name).unwrap_or_else(|e| panic!("remove {name}: {e}"));
}

pub(crate) fn owned(fd: RawFd, what: &str) -> OwnedFd {
    assert!(fd >= 0, "{what}: {}", io::Error::last_os_error());
    // SAFETY: `fd` was just returned by a successful system call that created it, so it is
    // open and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A pipe, both ends close-on-exec: `(read end, write end)`.
pub(crate) fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    (owned(fds[0], "pipe2"), owned(fds[1], "pipe2"))
}

/// A connected pair of Unix stream sockets (close-on-exec).
pub(crate) fn socket_pair() -> (OwnedFd, OwnedFd) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    (OwnedFd::from(a), OwnedFd::from(b))
}

/// A duplicate of `fd` numbered 100 or more, so that a child's `dup2(src, 3 + i)` never
/// overwrites another source descriptor.
pub(crate) fn high(fd: &OwnedFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC only duplicates a descriptor we own; the result is checked.
    owned(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) },
        "fcntl(F_DUPFD_CLOEXEC)",
    )
}

/// A shared mapping of `len` bytes of a descriptor (a memfd or a POSIX shm object).
pub(crate) struct Region {
    pub(crate) ptr: *mut libc::c_void,
    pub(crate) len: usize,
}

impl Region {
    pub(crate) fn map(fd: &OwnedFd, len: usize) -> Region {
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint) of a descriptor we
        // own that is at least `len` bytes long (every caller sized it); the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap: {}", io::Error::last_os_error());
        Region { ptr, len }
    }

    /// The 8-byte word at byte `at`.
    pub(crate) fn word(&self, at: usize) -> &AtomicU64 {
        assert!(
            at.is_multiple_of(8) && at + 8 <= self.len,
            "word {at} outside the region"
        );
        // SAFETY: `at` is 8-aligned inside the live, page-aligned mapping of `len` bytes
        // (checked above), which lives as long as `self`; every process accesses the region's
        // words only atomically.
        unsafe { &*self.ptr.cast::<u8>().add(at).cast::<AtomicU64>() }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// One page of memory shared through a descriptor: the floors' words.
pub(crate) struct Page(Region);

pub(crate) const PAGE: usize = 4096;

impl Page {
    pub(crate) fn map(fd: &OwnedFd) -> Page {
        Page(Region::map(fd, PAGE))
    }

    pub(crate) fn word(&self) -> &AtomicU64 {
        self.0.word(0)
    }

    /// The 32-bit futex word `i` (0 or 1), each on its own cache line after `word`'s.
    pub(crate) fn futex_word(&self, i: usize) -> &AtomicU32 {
        assert!(i < 2);
        // SAFETY: offset 64 (i + 1) + 4 <= PAGE, 4-aligned, inside the live, page-aligned
        // mapping of PAGE bytes that `self` holds; every process accesses these words only
        // atomically (loads, stores, futex calls).
        unsafe { &*self.0.ptr.cast::<u8>().add(64 * (i + 1)).cast::<AtomicU32>() }
    }
}

/// `FUTEX_WAIT` (shared, not `FUTEX_PRIVATE`: the word is in a `MAP_SHARED` page of two
/// processes) while `word` holds `expected`, with no timeout: returns on a wake-up, a signal,
/// or at once if the word already changed.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAIT only reads it, and the null
    // timeout means "no timeout".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// `FUTEX_WAKE` of one sleeper on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not touch its memory.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Sleeps on `word` until it holds `want` (no spinning: the bare futex floor).
pub(crate) fn futex_wait_for(word: &AtomicU32, want: u32) {
    loop {
        let cur = word.load(Ordering::Acquire);
        if cur == want {
            return;
        }
        futex_wait(word, cur);
    }
}

/// A memfd of one page (no name anywhere in the file system).
pub(crate) fn memfd_page() -> OwnedFd {
    memfd_of(PAGE)
}

/// A memfd of `len` bytes, zero-filled (no name anywhere in the file system).
pub(crate) fn memfd_of(len: usize) -> OwnedFd {
    // SAFETY: the name is a NUL-terminated literal; the result is checked by `owned`.
    let fd = owned(
        unsafe { libc::memfd_create(c"shmproc-bench".as_ptr(), libc::MFD_CLOEXEC) },
        "memfd_create",
    );
    let len = libc::off_t::try_from(len).expect("memfd length");
    // SAFETY: resizing a descriptor we own.
    let r = unsafe { libc::ftruncate(fd.as_raw_fd(), len) };
    assert_eq!(r, 0, "ftruncate: {}", io::Error::last_os_error());
    fd
}

// ---------------------------------------------------------------------------------------------
// CPU placement (`SHMPROC_BENCH_PIN`, on by default where at least 2 CPUs are allowed): the parent
// runs on the first allowed CPU, and the k-th helper of a row (child process or thread, k = 1,
// 2, ... in the order they are started) on allowed CPU number k modulo their count. So the two
// sides of a 1P1C row or of a round trip always run on two different cores, as on an idle
// machine, instead of wherever the scheduler puts them (on a busy 2-core machine, often the same
// core, where spinning turns into a `sched_yield` ping-pong and blocking into a local wake-up).

/// The CPUs to place on, in order; empty when placement is off.
pub(crate) fn places() -> &'static [usize] {
    static PLACES: OnceLock<Vec<usize>> = OnceLock::new();
    PLACES.get_or_init(|| {
        if !env_flag("SHMPROC_BENCH_PIN").unwrap_or(true) {
            return Vec::new();
        }
        let cpus = shmproc_testkit::allowed_cpus();
        if cpus.len() >= 2 { cpus } else { Vec::new() }
    })
}

/// The CPU of helper `slot` (0: the parent), if placement is on.
pub(crate) fn cpu_for(slot: usize) -> Option<usize> {
    let places = places();
    places.get(slot % places.len().max(1)).copied()
}

/// Moves the calling thread to helper `slot`'s CPU (if placement is on).
pub(crate) fn pin_self(slot: usize) {
    if let Some(cpu) = cpu_for(slot) {
        shmproc_testkit::pin_thread(cpu);
    }
}

/// Slot of the next child process of the current row (threads use fixed slots instead).
pub(crate) static NEXT_KID_SLOT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

pub(crate) fn placement_line() -> String {
    let places = places();
    if places.is_empty() {
        "placement: off (the scheduler places every process and thread)".into()
    } else {
        format!(
            "placement: parent on CPU {}, helper k of a row on CPU list[k mod {}] of {places:?} (SHMPROC_BENCH_PIN=0 turns it off)",
            places[0],
            places.len()
        )
    }
}

/// How far apart the parent's CPU and the first helper's are: the time, in ns, of one round
/// trip of a cache line between two threads placed there (about 20 ms of ping-pong on one
/// atomic word). On a VM the host may move vCPUs between cores that share a cache (tens of
/// ns) and cores that do not (hundreds), and every cross-core row moves with it.
pub(crate) fn line_round_trip_ns() -> f64 {
    use std::sync::atomic::AtomicU64;
    let word = std::sync::Arc::new(AtomicU64::new(0));
    let rounds = 20_000u64;
    let other = std::sync::Arc::clone(&word);
    let echo = std::thread::spawn(move || {
        pin_self(1);
        for i in 0..rounds {
            while other.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.store(2 * i + 2, Ordering::Release);
        }
    });
    // Wait for the echo thread to be running, so that its start-up is not timed.
    word.store(1, Ordering::Release);
    while word.load(Ordering::Acquire) != 2 {
        std::hint::spin_loop();
    }
    let t0 = Instant::now();
    for i in 1..rounds {
        word.store(2 * i + 1, Ordering::Release);
        while word.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let dt = t0.elapsed();
    echo.join().expect("echo thread");
    dt.as_nanos() as f64 / (rounds - 1) as f64
}

/// Below this [`line_round_trip_ns`], the two CPUs share a cache (about 50 ns on a Zen 5 VM
/// against about 400 ns when they do not).
pub(crate) const NEAR_NS: f64 = 150.0;

/// The header line of [`line_round_trip_ns`], measured now.
pub(crate) fn distance_line(when: &str) -> String {
    if places().is_empty() {
        return format!("core distance {when}: not measured (placement is off)");
    }
    let ns = line_round_trip_ns();
    let what = if ns < NEAR_NS {
        "near: they share a cache"
    } else {
        "far: they do not share a cache"
    };
    format!(
        "core distance {when}: a cache line's round trip between CPU {} and CPU {} takes {ns:.0} ns ({what}; rows measured at other distances do not compare)",
        places()[0],
        cpu_for(1).unwrap_or(places()[0])
    )
}

// ---------------------------------------------------------------------------------------------
// Children, parent side

/// A re-executed copy of this binary playing a role (`shmproc-testkit`).
pub(crate) use shmproc_testkit::Child as Kid;

/// Starts a copy of this binary playing `role` with `args`, on the next helper's CPU, dying
/// with this process, with `fds` placed at 3, 4, ... (see `high`), and without the fault
/// injection settings of the environment. On drop it gets 500 ms to exit after its stdin
/// closes, then it is killed; either way it is reaped.
pub(crate) fn spawn_kid(role: &str, args: &[String], fds: &[RawFd]) -> Kid {
    shmproc_testkit::Spawn::new(role)
        .args(args)
        .env_remove("SHMPROC_FAULT")
        .env_remove("SHMPROC_FAULT_ACTION")
        .fds(fds)
        .cpu(cpu_for(NEXT_KID_SLOT.fetch_add(1, Ordering::Relaxed)))
        .die_with_parent()
        .grace(Duration::from_millis(500))
        .spawn()
}
