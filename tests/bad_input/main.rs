//! Bad input: malformed names, wrong payload types, impossible sizes, damaged headers,
//! truncated or foreign files, unsafe permissions, other users' segments, symlinks and other
//! non-regular files. Every case must give the exact typed error (or a typed lock error):
//! never a panic, a SIGBUS, a hang or a huge allocation. Every test removes what it made and
//! checks that nothing is left in /dev/shm.

#[path = "../common/mod.rs"]
mod common;

use common::{Name, child_main, say, spawn};
use shmproc::{Array, LockError, OpenError, Options, Value};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

/// Init timeout for opens that are expected to wait for a creator that never finishes.
const SHORT: Duration = Duration::from_millis(50);
/// The payload of the segments under test: every byte distinct.
const V: u64 = 0x1122_3344_5566_7788;
/// uid and gid of `nobody`.
const NOBODY: u32 = 65534;
/// Largest segment the crate creates or opens (1 TiB, `MAX_SEGMENT_SIZE` in header.rs).
const TIB: usize = 1 << 40;

// Header field offsets (see `Header` in src/segment/header.rs).
const HEADER_SIZE: usize = 256;
const OFF_MAGIC: u64 = 0;
const OFF_INIT_STATE: u64 = 8;
const OFF_VERSION: u64 = 12;
const OFF_ELEM_SIZE: u64 = 32;
const OFF_ELEM_ALIGN: u64 = 40;
const OFF_TYPE_NAME_LEN: u64 = 44;
const OFF_COUNT: u64 = 56;
const OFF_PARTICIPANTS_OFFSET: u64 = 64;
const OFF_BODY_OFFSET: u64 = 72;
const OFF_BODY_SIZE: u64 = 80;
const OFF_TOTAL_SIZE: u64 = 88;
const OFF_TYPE_NAME: u64 = 128;
/// Size of one participant record.
const PARTICIPANT_SIZE: u64 = 32;

// Lock word bits (crates/shmproc-raw/src/lock.rs).
const LOCK_WAITERS: u64 = 1 << 32;
const LOCK_DIED: u64 = 1 << 33;
const LOCK_UNRECOVERABLE: u64 = 1 << 34;

/// A payload whose alignment (8192) exceeds the supported maximum (4096, the page size).
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(8192))]
struct OverAligned([[u8; 4096]; 2]);

/// A 2 TiB payload type (never constructed: only its size and name are used).
type Huge = [[[[u8; 4096]; 4096]; 4096]; 32];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Where the segment `name` lives.
fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{}{name}", shmproc::OS_PREFIX))
}

/// Whether anything (file, symlink, directory, FIFO) exists at the segment's path.
fn present(name: &str) -> bool {
    std::fs::symlink_metadata(shm_path(name)).is_ok()
}

/// Removes `name` and asserts that nothing is left in /dev/shm under it.
fn assert_gone(name: &str) {
    let _ = shmproc::remove(name);
    assert!(!present(name), "{} was left behind", shm_path(name).display());
}

fn short() -> Options {
    Options::new().init_timeout(SHORT)
}

/// Creates a persistent `Value<u64>` holding `v`, drops the handle, returns the file size.
fn persisted_value(name: &str, v: u64) -> u64 {
    drop(Value::<u64>::create_with(name, v, &Options::new().persist(true)).expect("create"));
    file_len(name)
}

fn file_len(name: &str) -> u64 {
    std::fs::metadata(shm_path(name)).expect("stat segment file").len()
}

fn file_mode(name: &str) -> u32 {
    std::fs::metadata(shm_path(name)).expect("stat segment file").mode() & 0o7777
}

fn read_at(name: &str, off: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(shm_path(name)).expect("open segment file");
    f.seek(SeekFrom::Start(off)).expect("seek");
    let mut b = vec![0; len];
    f.read_exact(&mut b).expect("read");
    b
}

fn read_all(name: &str) -> Vec<u8> {
    std::fs::read(shm_path(name)).expect("read segment file")
}

fn write_at(name: &str, off: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .expect("open segment file");
    f.seek(SeekFrom::Start(off)).expect("seek");
    f.write_all(bytes).expect("write");
}

fn get_u32(name: &str, off: u64) -> u32 {
    u32::from_le_bytes(read_at(name, off, 4).try_into().unwrap())
}

fn get_u64(name: &str, off: u64) -> u64 {
    u64::from_le_bytes(read_at(name, off, 8).try_into().unwrap())
}

fn put_u32(name: &str, off: u64, v: u32) {
    write_at(name, off, &v.to_le_bytes());
}

fn put_u64(name: &str, off: u64, v: u64) {
    write_at(name, off, &v.to_le_bytes());
}

fn set_len(name: &str, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .expect("open segment file")
        .set_len(len)
        .expect("set_len");
}

/// Asserts that a `Result<_, OpenError>` is `Err(pattern)`; otherwise panics saying what it
/// was, after the optional context (a format string and its arguments).
macro_rules! assert_err {
    ($r:expr, $pat:pat if $guard:expr $(, $($ctx:tt)+)?) => {
        match $r {
            Err($pat) if $guard => {}
            other => {
                let ctx: String = String::new() $(+ &format!($($ctx)+) + ": ")?;
                panic!("{ctx}expected Err({} if {}), got {:?}", stringify!($pat), stringify!($guard), other.map(drop))
            }
        }
    };
    ($r:expr, $pat:pat $(, $($ctx:tt)+)?) => {
        match $r {
            Err($pat) => {}
            other => {
                let ctx: String = String::new() $(+ &format!($($ctx)+) + ": ")?;
                panic!("{ctx}expected Err({}), got {:?}", stringify!($pat), other.map(drop))
            }
        }
    };
}

/// The variant of an open error, as a short word.
fn variant(e: &OpenError) -> &'static str {
    match e {
        OpenError::AlreadyExists { .. } => "AlreadyExists",
        OpenError::NotFound { .. } => "NotFound",
        OpenError::InvalidName { .. } => "InvalidName",
        OpenError::IncompatibleType { .. } => "IncompatibleType",
        OpenError::VersionMismatch { .. } => "VersionMismatch",
        OpenError::Corrupted { .. } => "Corrupted",
        OpenError::UntrustedOwner { .. } => "UntrustedOwner",
        OpenError::InsecurePermissions { .. } => "InsecurePermissions",
        OpenError::InitTimeout { .. } => "InitTimeout",
        OpenError::InvalidSize { .. } => "InvalidSize",
        OpenError::TooManyParticipants { .. } => "TooManyParticipants",
        OpenError::Io { .. } => "Io",
        _ => "other",
    }
}

fn outcome<T>(r: &Result<T, OpenError>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(e) => variant(e),
    }
}

/// A tiny xorshift64 generator: reproducible garbage without a `rand` dependency.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn byte(&mut self) -> u8 {
        (self.next_u64() >> 32) as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// Drops every privilege to `nobody` (supplementary groups, gid, then uid).
fn drop_to_nobody() -> Result<(), String> {
    // SAFETY: setgroups(2) with a count of 0 reads nothing through the null pointer.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: setgid(2) takes a plain integer and touches no memory of ours.
    if unsafe { libc::setgid(NOBODY) } != 0 {
        return Err(format!("setgid: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: setuid(2) takes a plain integer and touches no memory of ours.
    if unsafe { libc::setuid(NOBODY) } != 0 {
        return Err(format!("setuid: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != NOBODY {
        return Err(format!("euid is {euid} after setuid"));
    }
    Ok(())
}

/// Ends a child that changed its credentials while libtest's main thread waits on it: its
/// report is flushed, so it leaves with `_exit(0)` and runs no exit handlers, whose behaviour
/// in a process that is no longer the user who started it is not what this file tests.
fn leave_without_exit_handlers() -> ! {
    use std::io::Write;
    std::io::stdout().flush().ok();
    // SAFETY: _exit(2) ends the process at once; nothing of this process is used afterwards.
    unsafe { libc::_exit(0) }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // Creates a persistent segment with `Options::mode(args[1])` under umask 0o077.
        "create_mode" => {
            let mode = u32::from_str_radix(&args[1], 8).expect("octal mode");
            // SAFETY: umask(2) only sets this child process's file-creation mask; the child
            // runs this role alone and exits.
            let old = unsafe { libc::umask(0o077) };
            // SAFETY: as above; reading the mask back by setting it again.
            let now = unsafe { libc::umask(0o077) };
            let v = Value::<u64>::create_with(&args[0], 1, &Options::new().persist(true).mode(mode)).expect("create");
            drop(v);
            say(format!("READY umask {old:o} -> {now:o}"));
        }
        // Becomes `nobody`, then creates a persistent 0600 segment.
        "nobody_create" => {
            match drop_to_nobody() {
                Err(e) => say(format!("READY skip {e}")),
                Ok(()) => {
                    let v = Value::<u64>::create_with(&args[0], V, &Options::new().persist(true).mode(0o600))
                        .expect("create as nobody");
                    drop(v);
                    say("READY ok");
                }
            }
            leave_without_exit_handlers();
        }
        // Becomes `nobody`, then tries to open a segment and reports what happened.
        "nobody_open" => {
            match drop_to_nobody() {
                Err(e) => say(format!("RESULT skip {e}")),
                Ok(()) => match Value::<u64>::open_with(&args[0], &short()) {
                    Ok(_) => say("RESULT Ok"),
                    Err(OpenError::UntrustedOwner { owner, expected }) => {
                        say(format!("RESULT UntrustedOwner {owner} {expected}"))
                    }
                    Err(e) => say(format!("RESULT {} {e}", variant(&e))),
                },
            }
            leave_without_exit_handlers();
        }
        // Creates an `Array<()>` of `usize::MAX` zero-sized elements and reports the outcome.
        "zst_array" => {
            let r = Array::<()>::create(&args[0], usize::MAX, ());
            say(format!("RESULT {} {:?}", outcome(&r), r.as_ref().map(|a| a.len()).ok()));
        }
        other => panic!("unknown role {other:?}"),
    });
}

// The tests, by theme. Declared after `assert_err!` so that they can use it; each takes the
// helpers above with `use super::*`.
mod damaged;
mod names_types_sizes;
mod permissions;
