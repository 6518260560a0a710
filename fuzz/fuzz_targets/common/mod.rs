//! Helpers shared by the fuzz targets: per-process segment names, clean-up of `/dev/shm`,
//! an input cursor, and a watchdog for "every call returns within its timeout".

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `SHMPROC_FUZZ_TRACE` is set: then the targets print every step to stderr (use it
/// when replaying one input: `SHMPROC_FUZZ_TRACE=1 cargo +nightly fuzz run TARGET FILE`).
pub fn tracing() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("SHMPROC_FUZZ_TRACE").is_some())
}

/// `eprintln!` when [`tracing`].
macro_rules! trace {
    ($($t:tt)*) => {
        if $crate::common::tracing() {
            eprintln!($($t)*);
        }
    };
}

/// Longest a single bounded call may take before the target reports a hang. The calls
/// themselves use timeouts of at most a few milliseconds; this leaves room for a loaded
/// machine while still catching a deadline that is not honoured. It was 2 s until a CI run
/// on a 2-core machine shared with other builds saw a 1 ms `put_timeout` return after
/// 2.37 s (the input replays in 16 ms): a scheduling stall, not a hang. A hang never
/// returns, so a generous limit loses nothing (libFuzzer's `-timeout=10` backs it up).
pub const CALL_LIMIT: Duration = Duration::from_secs(8);

/// Prefix of every name this process uses: `fz<pid>_`. The `_` keeps pid 12 from matching
/// pid 123's names when cleaning up by prefix.
pub fn prefix() -> String {
    format!("fz{}_", std::process::id())
}

/// A segment name unique to this process: `fz<pid>_<tag>` (at most 22 bytes).
pub fn name(tag: &str) -> String {
    let n = format!("{}{tag}", prefix());
    assert!(n.len() <= shmproc::MAX_NAME_LEN, "fuzz harness: name {n:?} too long");
    n
}

/// Where the OS keeps the segment `name` on Linux.
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{}{name}", shmproc::OS_PREFIX))
}

/// Whether a segment file exists under `name`.
pub fn exists(name: &str) -> bool {
    shm_path(name).exists()
}

/// Removes the segment files of `names`, ignoring "not found".
pub fn remove_files(names: &[&str]) {
    for n in names {
        let _ = std::fs::remove_file(shm_path(n));
    }
}

/// Removes every `/dev/shm/shmproc.fz<pid>_*` file of this process.
pub fn remove_all_mine() {
    let mine = format!("{}{}", &shmproc::OS_PREFIX[1..], prefix());
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&mine) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Makes a panic (a finding) remove this process's segment files before libFuzzer's own
/// hook aborts, so a crash does not leave files in `/dev/shm`. Also removes leftovers of an
/// earlier run of this pid. Call from the target's `init`.
pub fn init() {
    remove_all_mine();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        remove_all_mine();
        previous(info);
    }));
}

/// Runs `f`, asserting it returned within [`CALL_LIMIT`].
#[track_caller]
pub fn timed<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    assert!(
        took < CALL_LIMIT,
        "{what} took {took:?} (limit {CALL_LIMIT:?}): a bounded call hung"
    );
    r
}

/// Reads the fuzz input front to back; past the end every read gives zeros.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// An open of a file whose bytes a fuzzer (or a hostile peer) chose may fail only with
/// errors the file's content can cause. Anything else (`AlreadyExists`, `InvalidName`,
/// `UntrustedOwner`, `InsecurePermissions`, `InvalidSize`) is a bug in the crate or the
/// harness. `Io` covers a header that asks for an impossibly large mapping (mmap fails);
/// `NotFound` an abandoned-init state; `NoSpace` an `open_or_create` that removes an
/// abandoned file and creates the name afresh while `/dev/shm` is full.
pub fn check_open_error(e: &shmproc::OpenError) {
    use shmproc::OpenError;
    match e {
        OpenError::Corrupted { .. }
        | OpenError::IncompatibleType { .. }
        | OpenError::VersionMismatch { .. }
        | OpenError::InitTimeout { .. }
        | OpenError::TooManyParticipants { .. }
        | OpenError::Io { .. }
        | OpenError::NotFound { .. }
        | OpenError::NoSpace { .. } => {}
        other => panic!("unexpected open error for a hostile segment: {other:?}"),
    }
}
