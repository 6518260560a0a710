//! Bad input: malformed names, wrong payload types, impossible sizes, damaged headers,
//! truncated or foreign files, unsafe permissions, other users' segments, symlinks and other
//! non-regular files. Every case must give the exact typed error (or a typed lock error):
//! never a panic, a SIGBUS, a hang or a huge allocation. Every test removes what it made and
//! checks that nothing is left in /dev/shm.

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

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

#[test]
fn open_of_missing_name_is_not_found() {
    let name = Name::new("miss");
    assert!(!present(&name));
    let r = Value::<u64>::open(&name);
    assert_err!(r, OpenError::NotFound { name: n } if n == name.as_str());
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::NotFound { .. });
    let r = Array::<u64>::open(&name);
    assert_err!(r, OpenError::NotFound { .. });
    let r = shmproc::remove(&name);
    assert_err!(r, OpenError::NotFound { .. });
    // A removed segment is not found either.
    drop(Value::<u64>::create_with(&name, V, &Options::new().persist(true)).unwrap());
    shmproc::remove(&name).unwrap();
    let r = Value::<u64>::open(&name);
    assert_err!(r, OpenError::NotFound { .. });
    assert_gone(&name);
}

#[test]
fn duplicate_create_is_already_exists_and_leaves_the_first_untouched() {
    let name = Name::new("dup");
    let first = Value::<u64>::create(&name, V).unwrap();
    let before = read_all(&name);

    let r = Value::<u64>::create(&name, 99);
    assert_err!(r, OpenError::AlreadyExists { name: n } if n == name.as_str());
    let r = Value::<u64>::create_with(&name, 99, &Options::new().persist(true).mode(0o644));
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Value::<u32>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Array::<u64>::create(&name, 1000, 5);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Array::<u8>::from_slice(&name, &[1, 2, 3]);
    assert_err!(r, OpenError::AlreadyExists { .. });

    // Nothing was adopted, resized, re-initialised or unlinked.
    assert!(present(&name));
    assert_eq!(read_all(&name), before, "a failed create modified the existing segment");
    assert_eq!(file_mode(&name), 0o600);
    assert_eq!(first.load().map_err(|e| e.without_guard()).unwrap(), V);
    assert!(first.owns_name());
    let other = Value::<u64>::open(&name).unwrap();
    assert_eq!(other.load().map_err(|e| e.without_guard()).unwrap(), V);
    // open_or_create opens it and does not overwrite it with its initial value.
    let third = Value::<u64>::open_or_create(&name, 42).unwrap();
    assert!(!third.owns_name());
    assert_eq!(third.load().map_err(|e| e.without_guard()).unwrap(), V);
    drop((other, third));

    drop(first); // the creator unlinks its name
    assert!(!present(&name));
    assert_gone(&name);
}

#[test]
fn invalid_names_are_refused_everywhere() {
    let too_long = "x".repeat(shmproc::MAX_NAME_LEN + 1);
    assert_eq!(too_long.len(), 23);
    let bad: &[&str] = &[
        "",
        &too_long,
        "a/b",
        "/abs",
        "..",
        ".",
        "a b",
        " lead",
        "trail ",
        "caf\u{e9}",
        "\u{1F600}",
        ".hidden",
        "-dash",
        "a\0b",
        "a\nb",
        "star*",
        "back\\slash",
    ];
    for &n in bad {
        let check = |what: &str, r: Result<(), OpenError>| {
            assert_err!(r, OpenError::InvalidName { name, reason } if name == n && !reason.is_empty(), "{what}({n:?})");
        };
        check("Value::create", Value::<u64>::create(n, 1).map(drop));
        check(
            "Value::create_with",
            Value::<u64>::create_with(n, 1, &Options::new().persist(true)).map(drop),
        );
        check("Value::open", Value::<u64>::open(n).map(drop));
        check("Value::open_or_create", Value::<u64>::open_or_create(n, 1).map(drop));
        check("Array::create", Array::<u64>::create(n, 4, 1).map(drop));
        check("Array::from_slice", Array::<u64>::from_slice(n, &[1, 2]).map(drop));
        check("Array::open", Array::<u64>::open(n).map(drop));
        check("Array::open_or_create", Array::<u64>::open_or_create(n, 4, 1).map(drop));
        check("remove", shmproc::remove(n));
    }
    // Nothing was created by any of them (e.g. "/dev/shm/shmproc." for the empty name).
    assert!(!present(""));
    assert!(!present(&too_long));

    // The longest valid name (22 bytes) works.
    let base = Name::new("l");
    let longest = Name(format!("{:x<22}", base.as_str()));
    assert_eq!(longest.len(), shmproc::MAX_NAME_LEN);
    let v = Value::<u64>::create(&longest, V).unwrap();
    assert!(present(&longest));
    drop(v);
    assert_gone(&longest);
    assert_gone(&base);
}

// ---------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------

/// Asserts `r` is `IncompatibleType` whose `expected` and `found` contain the given texts.
#[track_caller]
fn assert_incompatible<T>(r: Result<T, OpenError>, expected_has: &str, found_has: &str) {
    match r {
        Err(OpenError::IncompatibleType { expected, found }) => {
            assert!(
                expected.contains(expected_has),
                "expected = {expected:?}, wanted it to name {expected_has:?}"
            );
            assert!(
                found.contains(found_has),
                "found = {found:?}, wanted it to name {found_has:?}"
            );
            assert_ne!(expected, found);
        }
        Err(e) => panic!("expected IncompatibleType, got {e:?}"),
        Ok(_) => panic!("expected IncompatibleType, got Ok"),
    }
}

#[test]
fn wrong_payload_type_is_incompatible() {
    let name = Name::new("type");
    let v = Value::<u64>::create(&name, V).unwrap();
    let before = read_all(&name);

    assert_incompatible(
        Value::<u32>::open(&name),
        "Value<u32> (4 bytes, align 4)",
        "Value<u64> (8 bytes, align 8)",
    );
    // Same size, other alignment.
    assert_incompatible(
        Value::<[u8; 8]>::open(&name),
        "Value<[u8; 8]> (8 bytes, align 1)",
        "Value<u64>",
    );
    // Same size and alignment, other type.
    assert_incompatible(
        Value::<i64>::open(&name),
        "Value<i64> (8 bytes, align 8)",
        "Value<u64> (8 bytes, align 8)",
    );
    assert_incompatible(Value::<f64>::open(&name), "Value<f64>", "Value<u64>");
    assert_incompatible(Value::<[u32; 2]>::open(&name), "Value<[u32; 2]>", "Value<u64>");
    // Another kind of object.
    assert_incompatible(Array::<u64>::open(&name), "Array<u64>", "Value<u64>");
    // open_or_create on a segment of another type fails the same way, and does not replace it.
    assert_incompatible(Value::<u32>::open_or_create(&name, 3), "Value<u32>", "Value<u64>");
    assert_incompatible(Array::<u64>::open_or_create(&name, 4, 3), "Array<u64>", "Value<u64>");
    // A payload type bigger than the maximum segment is just another type.
    assert_incompatible(
        Value::<Huge>::open(&name),
        "Value<[[[[u8; 4096]; 4096]; 4096]; 32]>",
        "Value<u64>",
    );

    assert_eq!(read_all(&name), before, "a refused open modified the segment");
    assert_eq!(
        Value::<u64>::open(&name)
            .unwrap()
            .load()
            .map_err(|e| e.without_guard())
            .unwrap(),
        V
    );
    drop(v);
    assert_gone(&name);

    // And an Array opened as a Value (or as an Array of another type).
    let name = Name::new("type");
    let a = Array::<u64>::from_slice(&name, &[1, 2, 3]).unwrap();
    assert_incompatible(Value::<u64>::open(&name), "Value<u64>", "Array<u64>");
    assert_incompatible(Array::<u32>::open(&name), "Array<u32>", "Array<u64>");
    assert_incompatible(Array::<i64>::open(&name), "Array<i64>", "Array<u64>");
    assert_incompatible(Value::<u64>::open_or_create(&name, 1), "Value<u64>", "Array<u64>");
    assert_eq!(
        Array::<u64>::open(&name)
            .unwrap()
            .to_vec()
            .map_err(|e| e.without_guard())
            .unwrap(),
        [1, 2, 3]
    );
    drop(a);
    assert_gone(&name);
}

#[test]
fn schema_id_replaces_the_type_name() {
    const SCHEMA: u64 = 0x5C4E_4D41;
    let name = Name::new("schema");
    let with_schema = Options::new().schema_id(SCHEMA);
    let v = Value::<u64>::create_with(&name, V, &with_schema).unwrap();

    // Same schema id, another Rust type of the same size and alignment: opens, same bits.
    let as_i64 = Value::<i64>::open_with(&name, &with_schema).expect("same schema id, same size/align");
    assert_eq!(as_i64.load().map_err(|e| e.without_guard()).unwrap(), V as i64);
    let as_f64 = Value::<f64>::open_with(&name, &with_schema).expect("same schema id, same size/align");
    assert_eq!(as_f64.load().map_err(|e| e.without_guard()).unwrap().to_bits(), V);
    drop((as_i64, as_f64));

    // Same schema id, but another size or alignment: still refused.
    assert_incompatible(
        Value::<u32>::open_with(&name, &with_schema),
        "Value<u32> (4 bytes, align 4)",
        "schema",
    );
    assert_incompatible(Value::<[u8; 8]>::open_with(&name, &with_schema), "align 1", "align 8");
    // Same schema id, other kind.
    assert_incompatible(Array::<u64>::open_with(&name, &with_schema), "Array<u64>", "Value<u64>");
    // Another schema id, even with the very same Rust type.
    assert_incompatible(
        Value::<u64>::open_with(&name, &Options::new().schema_id(SCHEMA + 1)),
        &format!("schema {:#x}", SCHEMA + 1),
        &format!("schema {SCHEMA:#x}"),
    );
    // A schema id on one side only.
    assert_incompatible(
        Value::<u64>::open(&name),
        "Value<u64> (8 bytes, align 8)",
        &format!("schema {SCHEMA:#x}"),
    );
    drop(v);
    assert_gone(&name);

    let name = Name::new("schema");
    let v = Value::<u64>::create(&name, V).unwrap();
    assert_incompatible(
        Value::<u64>::open_with(&name, &with_schema),
        &format!("schema {SCHEMA:#x}"),
        "Value<u64>",
    );
    assert_incompatible(Value::<i64>::open_with(&name, &with_schema), "Value<i64>", "Value<u64>");
    drop(v);
    assert_gone(&name);

    // Arrays too.
    let name = Name::new("schema");
    let a = Array::<u32>::from_slice_with(&name, &[1.5f32.to_bits(), 2.5f32.to_bits()], &with_schema).unwrap();
    let f = Array::<f32>::open_with(&name, &with_schema).unwrap();
    assert_eq!(f.to_vec().map_err(|e| e.without_guard()).unwrap(), [1.5, 2.5]);
    assert_incompatible(
        Array::<f32>::open_with(&name, &Options::new().schema_id(7)),
        "schema 0x7",
        "schema",
    );
    drop((a, f));
    assert_gone(&name);
}

// ---------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------

#[test]
fn impossible_sizes_are_invalid_size() {
    let name = Name::new("size");
    #[track_caller]
    fn invalid<T>(what: &str, r: Result<T, OpenError>) {
        match r {
            Err(OpenError::InvalidSize { what: w }) => assert!(!w.is_empty()),
            Err(e) => panic!("{what}: expected InvalidSize, got {e:?}"),
            Ok(_) => panic!("{what}: expected InvalidSize, got Ok"),
        }
    }
    invalid("Array len 0", Array::<u64>::create(&name, 0, 0));
    invalid("Array::from_slice empty", Array::<u64>::from_slice(&name, &[]));
    invalid("Array::open_or_create len 0", Array::<u64>::open_or_create(&name, 0, 0));
    invalid("Array len usize::MAX/4", Array::<u64>::create(&name, usize::MAX / 4, 0));
    invalid("Array len usize::MAX", Array::<u64>::create(&name, usize::MAX, 0));
    invalid("Array len usize::MAX (u8)", Array::<u8>::create(&name, usize::MAX, 0));
    invalid("Array len 1 TiB/8 + 1", Array::<u64>::create(&name, TIB / 8 + 1, 0));
    invalid("Array len 1 TiB/8 (+ header)", Array::<u64>::create(&name, TIB / 8, 0));
    invalid("Array<u8> len 1 TiB", Array::<u8>::create(&name, TIB, 0));
    invalid(
        "Array::open_or_create 1 TiB/8 + 1",
        Array::<u64>::open_or_create(&name, TIB / 8 + 1, 0),
    );
    invalid(
        "Array<[u8; 4096]> 1 TiB",
        Array::<[u8; 4096]>::create(&name, TIB / 4096, [0; 4096]),
    );
    invalid(
        "Array<[u8; 4096]> overflow",
        Array::<[u8; 4096]>::create(&name, usize::MAX / 1000, [0; 4096]),
    );
    invalid(
        "Array<[u64; 512]> overflow",
        Array::<[u64; 512]>::create(&name, usize::MAX / 4096 + 1, [0; 512]),
    );
    // Alignment above the page size.
    let big = OverAligned([[7; 4096]; 2]);
    invalid("Value align 8192", Value::<OverAligned>::create(&name, big));
    invalid(
        "Value::open_or_create align 8192",
        Value::<OverAligned>::open_or_create(&name, big),
    );
    invalid("Array align 8192", Array::<OverAligned>::create(&name, 1, big));
    // Participant table sizes.
    for n in [0, 1025, 5000, u32::MAX] {
        let o = Options::new().participants(n);
        invalid("participants (Value)", Value::<u64>::create_with(&name, 1, &o));
        invalid(
            "participants (Value::open_or_create)",
            Value::<u64>::open_or_create_with(&name, 1, &o),
        );
        invalid("participants (Array)", Array::<u64>::create_with(&name, 4, 1, &o));
    }
    // None of them created anything.
    assert!(!present(&name));

    // The boundaries that are valid.
    let one = Value::<u64>::create_with(&name, V, &Options::new().participants(1)).unwrap();
    assert_eq!(one.load().ok(), Some(V));
    // The creator holds the only record.
    let r = Value::<u64>::open(&name);
    assert_err!(r, OpenError::TooManyParticipants { max: 1 });
    drop(one);
    assert!(!present(&name));
    let v = Value::<u64>::create_with(&name, V, &Options::new().participants(1024)).unwrap();
    assert_eq!(Value::<u64>::open(&name).unwrap().load().ok(), Some(V));
    drop(v);
    assert!(!present(&name));
    let page = Value::<[u8; 4096]>::create(&name, [3; 4096]).unwrap();
    assert_eq!(page.load().map_err(|e| e.without_guard()).unwrap(), [3; 4096]);
    drop(page);
    assert_gone(&name);
}

/// An array of zero-sized elements takes no space, so no size check stops a length of
/// `usize::MAX`; creating it must still end (with `InvalidSize`, or at once), not run a
/// 2^64-iteration initialisation loop. Run in a child so that a hang cannot hang the suite.
#[test]
fn zero_sized_elements_with_a_huge_length() {
    let name = Name::new("zst");
    let mut child = spawn("zst_array", &[name.as_str()]);
    let line = child.expect_line("RESULT", Duration::from_secs(10));
    child.wait_ok(common::LONG);
    assert!(line.starts_with("InvalidSize") || line.starts_with("Ok"), "{line}");
    assert_gone(&name);
}

/// The type check compares type names, but only the first 128 bytes of them are stored: two
/// different payload types of the same size and alignment whose names share a 128-byte
/// prefix (long module paths, long generic arguments) are taken for the same type.
#[test]
fn long_type_names_are_told_apart() {
    use a_module_whose_name_is_long_enough_to_push_the_end_of_every_type_name_declared_in_it_well_past_the_128_byte_type_name_limit::{
        Celsius, Meters,
    };
    let (c, m) = (std::any::type_name::<Celsius>(), std::any::type_name::<Meters>());
    assert!(c.len() > 128 && m.len() > 128 && c[..128] == m[..128], "{c} / {m}");
    let name = Name::new("tname");
    let v = Value::<Celsius>::create(&name, Celsius(21.5)).unwrap();
    assert_incompatible(Value::<Meters>::open(&name), "Meters", "Celsius");
    drop(v);
    assert_gone(&name);
}

/// `init_timeout(Duration::ZERO)` is a valid option: an opener that finds the object too short
/// gives up waiting at once. That must not let `open_or_create` unlink a *live* creator's
/// object in the instant between its `O_CREAT` and taking its init beacon, which would leave
/// two handles that each created "the" segment under one name. Threads stand in for
/// processes (each handle has its own open file description, so OFD locks behave the same).
/// Probabilistic: before the fix, about one iteration in a thousand or two hit the window.
#[test]
fn zero_init_timeout_never_splits_a_name() {
    const THREADS: usize = 8;
    let opts = Options::new().init_timeout(Duration::ZERO);
    for iteration in 0..3_000 {
        let name = Name::new("split");
        let barrier = std::sync::Barrier::new(THREADS);
        let creators = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (name, barrier, opts) = (name.as_str(), &barrier, &opts);
                    s.spawn(move || {
                        barrier.wait();
                        let r = Value::<u64>::open_or_create_with(name, t as u64, opts);
                        // A zero init timeout may give up on a slow creator; nothing in
                        // this test writes a header, so it is never Corrupted.
                        if let Err(e) = &r {
                            assert!(matches!(e, OpenError::InitTimeout { .. }), "iteration {iteration}: {e}");
                        }
                        let owns = r.as_ref().map(|v| v.owns_name()).unwrap_or(false);
                        barrier.wait(); // every handle is still alive when ownership is counted
                        owns
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).filter(|&o| o).count()
        });
        assert!(
            creators <= 1,
            "iteration {iteration}: {creators} handles each created the segment"
        );
        assert_gone(&name);
    }
}

mod a_module_whose_name_is_long_enough_to_push_the_end_of_every_type_name_declared_in_it_well_past_the_128_byte_type_name_limit {
    /// A temperature.
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    pub struct Celsius(pub f64);
    /// A length: same size and alignment as `Celsius`, another type.
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    pub struct Meters(pub f64);
}

/// Byte offset of the header's hash of the full type name.
const OFF_TYPE_HASH: u64 = 104;

/// FNV-1a, as the header stores it for the full type name.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Headers whose type and layout fields agree with each other but describe sizes that are
/// out of range: the open refuses them with `Corrupted` before mapping or allocating anything.
#[test]
fn crafted_headers_with_impossible_sizes_are_corrupted() {
    // A `Value<Huge>` (2 TiB payload): the type matches, the layout exceeds 1 TiB.
    let name = Name::new("craft");
    persisted_value(&name, V);
    let huge_name = std::any::type_name::<Huge>();
    assert_eq!(std::mem::size_of::<Huge>(), 1 << 41);
    put_u64(&name, OFF_ELEM_SIZE, 1 << 41);
    put_u32(&name, OFF_ELEM_ALIGN, 1);
    put_u32(&name, OFF_TYPE_NAME_LEN, huge_name.len() as u32);
    write_at(&name, OFF_TYPE_NAME, huge_name.as_bytes());
    put_u64(&name, OFF_TYPE_HASH, fnv1a(huge_name));
    let r = Value::<Huge>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. });
    assert_gone(&name);

    // An `Array<u64>` whose count overflows the body size.
    let name = Name::new("craft");
    drop(Array::<u64>::create_with(&name, 4, 1, &Options::new().persist(true)).unwrap());
    for count in [u64::MAX, u64::MAX / 8 + 1, 1 << 37, 5] {
        put_u64(&name, OFF_COUNT, count);
        let r = Array::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::Corrupted { .. }, "count {count}");
    }

    // An `Array<u64>` of length 0 with a self-consistent layout.
    let body_offset = get_u64(&name, OFF_BODY_OFFSET);
    put_u64(&name, OFF_COUNT, 0);
    put_u64(&name, OFF_BODY_SIZE, 64);
    put_u64(&name, OFF_TOTAL_SIZE, body_offset + 64);
    let r = Array::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. });
    assert_gone(&name);

    // A `Value<u64>` segment claiming two elements, with a consistent layout and file size.
    let name = Name::new("craft");
    persisted_value(&name, V);
    let body_offset = get_u64(&name, OFF_BODY_OFFSET);
    let body_size = get_u64(&name, OFF_BODY_SIZE);
    put_u64(&name, OFF_COUNT, 2);
    put_u64(&name, OFF_BODY_SIZE, body_size + 8);
    put_u64(&name, OFF_TOTAL_SIZE, body_offset + body_size + 8);
    set_len(&name, body_offset + body_size + 8);
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. });
    assert_gone(&name);
}

// ---------------------------------------------------------------------------------------
// Damaged segments
// ---------------------------------------------------------------------------------------

/// The header field at byte `off`, for `type_name_len` bytes of type name.
fn header_field(off: u64, type_name_len: u64) -> &'static str {
    match off {
        0..8 => "magic",
        8..12 => "init_state",
        12..16 => "version",
        16..20 => "pointer_width",
        20..24 => "kind",
        24..28 => "header_size",
        28..32 => "participants",
        32..40 => "elem_size",
        40..44 => "elem_align",
        44..48 => "type_name_len",
        48..56 => "schema_id",
        56..64 => "count",
        64..72 => "participants_offset",
        72..80 => "body_offset",
        80..88 => "body_size",
        88..96 => "total_size",
        96..100 => "creator_pid",
        100..104 => "reserved0",
        104..112 => "type_hash",
        112..128 => "reserved",
        o if o < OFF_TYPE_NAME + type_name_len => "type_name",
        _ => "type_name (unused tail)",
    }
}

#[test]
fn header_corruption_sweep() {
    let name = Name::new("hdr");
    let opts = Options::new().init_timeout(SHORT);
    persisted_value(&name, V);
    let original = read_at(&name, 0, HEADER_SIZE);
    let type_name_len = u64::from(get_u32(&name, OFF_TYPE_NAME_LEN));
    assert_eq!(type_name_len, 3, "the header should name \"u64\"");
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut totals: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut per_field: BTreeMap<(u64, &'static str), BTreeMap<&'static str, usize>> = BTreeMap::new();
    let mut unchanged = 0;

    for off in 0..HEADER_SIZE as u64 {
        let orig = original[off as usize];
        for byte in [0x00, 0xFF, rng.byte()] {
            if byte == orig {
                unchanged += 1;
                continue; // not a corruption; the restored segment is checked below
            }
            write_at(&name, off, &[byte]);
            let r = Value::<u64>::open_with(&name, &opts);
            let field = header_field(off, type_name_len);
            let what = outcome(&r);
            let ctx = format!("byte {off} ({field}) set to {byte:#04x} (was {orig:#04x})");
            match &r {
                Ok(v) => {
                    // The body is untouched: whatever was accepted must still work.
                    match v.try_lock() {
                        Ok(g) => assert_eq!(*g, V, "{ctx}"),
                        Err(e) => panic!("{ctx}: opened, but try_lock gave {e:?}"),
                    }
                    assert_eq!(v.load().ok(), Some(V), "{ctx}");
                }
                Err(
                    OpenError::Corrupted { .. }
                    | OpenError::VersionMismatch { .. }
                    | OpenError::IncompatibleType { .. }
                    | OpenError::InitTimeout { .. }
                    | OpenError::NotFound { .. },
                ) => {}
                Err(e) => panic!("{ctx}: unexpected error {e:?}"),
            }
            match field {
                "magic" => assert_eq!(what, "Corrupted", "{ctx}"),
                "init_state" => assert!(matches!(what, "InitTimeout" | "NotFound"), "{ctx}: {what}"),
                "version" => {
                    let found = u32::from_le_bytes(read_at(&name, OFF_VERSION, 4).try_into().unwrap());
                    assert!(
                        matches!(&r, Err(OpenError::VersionMismatch { found: f, supported })
                            if *f == found && *supported == shmproc::LAYOUT_VERSION),
                        "{ctx}: {what}"
                    );
                }
                // Everything the type check and the layout depend on must be refused.
                "pointer_width"
                | "kind"
                | "header_size"
                | "participants"
                | "elem_size"
                | "elem_align"
                | "type_name_len"
                | "schema_id"
                | "count"
                | "participants_offset"
                | "body_offset"
                | "body_size"
                | "total_size"
                | "type_name" => assert_ne!(what, "Ok", "{ctx} was accepted"),
                _ => {}
            }
            *totals.entry(what).or_default() += 1;
            *per_field
                .entry((field_start(off, type_name_len), field))
                .or_default()
                .entry(what)
                .or_default() += 1;
            drop(r);
            write_at(&name, off, &[orig]);
        }
    }
    println!(
        "header corruption sweep: {} corruptions, {unchanged} no-op writes skipped",
        totals.values().sum::<usize>()
    );
    println!("  totals: {totals:?}");
    for ((start, field), m) in &per_field {
        println!("  @{start:3} {field:24} {m:?}");
    }
    // Magic, init word and version are certain to be hit, and every outcome is typed.
    for must in ["Corrupted", "InitTimeout", "VersionMismatch", "IncompatibleType"] {
        assert!(
            totals.get(must).copied().unwrap_or(0) > 0,
            "no {must} in the sweep: {totals:?}"
        );
    }

    // Restored byte for byte: opens and reads back.
    assert_eq!(read_at(&name, 0, HEADER_SIZE), original);
    let v = Value::<u64>::open(&name).unwrap();
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}

/// First byte of the field that byte `off` belongs to.
fn field_start(off: u64, type_name_len: u64) -> u64 {
    let f = header_field(off, type_name_len);
    (0..=off).find(|&o| header_field(o, type_name_len) == f).unwrap_or(off)
}

/// What a lock call gave, as a short word; an owner-died guard is repaired and released.
fn lock_outcome<G>(r: Result<G, LockError<G>>, mark: impl FnOnce(G)) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(LockError::OwnerDied(g)) => {
            mark(g);
            "OwnerDied"
        }
        Err(LockError::WouldBlock) => "WouldBlock",
        Err(LockError::Timeout) => "Timeout",
        Err(LockError::Unrecoverable) => "Unrecoverable",
        Err(e) => panic!("unknown lock error {e:?}"),
    }
}

#[test]
fn participant_table_and_lock_word_garbage() {
    let name = Name::new("ptab");
    persisted_value(&name, V);
    let p_off = get_u64(&name, OFF_PARTICIPANTS_OFFSET);
    let b_off = get_u64(&name, OFF_BODY_OFFSET);
    assert_eq!(p_off, HEADER_SIZE as u64);
    // Participant table, the 16-byte lock state, and the padding up to the data (b_off + 64).
    let len = (b_off + 64 - p_off) as usize;
    let lock_at = (b_off - p_off) as usize;
    let clean = read_at(&name, p_off, len);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut tally: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();

    for round in 0..48 {
        let mut region = clean.clone();
        match round {
            0 => region.fill(0xFF),
            1 => region[lock_at..lock_at + 16].fill(0xFF),
            2 => region[..lock_at].fill(0xFF),
            3..=15 => region[lock_at..lock_at + 16].copy_from_slice(&rng.bytes(16)),
            16..=27 => region[..lock_at].copy_from_slice(&rng.bytes(lock_at)),
            _ => region = rng.bytes(len),
        }
        write_at(&name, p_off, &region);
        let ctx = format!("round {round}");
        // The header is intact, so the open must succeed whatever the table holds: a record
        // claimed by nobody alive is reclaimed.
        let v = Value::<u64>::open_with(&name, &Options::new().init_timeout(SHORT))
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e:?}"));
        let t = lock_outcome(v.try_lock(), |mut g| g.mark_consistent());
        assert!(t != "Timeout", "{ctx}: try_lock gave Timeout");
        let l = lock_outcome(v.lock_timeout(SHORT), |mut g| g.mark_consistent());
        assert!(l != "WouldBlock", "{ctx}: lock_timeout gave WouldBlock");
        // load() either works or reports the same kind of lock error, without panicking.
        let _ = v.lock_timeout(SHORT).map(|g| *g).map_err(|e| e.without_guard());
        *tally.entry((t, l)).or_default() += 1;
        drop(v);
        write_at(&name, p_off, &clean);
    }
    println!("participant/lock garbage (try_lock, lock_timeout): {tally:?}");

    let v = Value::<u64>::open(&name).unwrap();
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}

/// The owner token of the taken participant records of `name`, by record index.
fn taken_tokens(name: &str) -> Vec<(u64, u64)> {
    let p_off = get_u64(name, OFF_PARTICIPANTS_OFFSET);
    let b_off = get_u64(name, OFF_BODY_OFFSET);
    let n = (b_off - p_off) / PARTICIPANT_SIZE;
    (0..n)
        .filter_map(|i| {
            let state = get_u64(name, p_off + i * PARTICIPANT_SIZE);
            (state & (1 << 32) != 0).then_some((i, ((state & 0x3F_FFFF) << 10) | i))
        })
        .collect()
}

#[test]
fn forged_lock_words() {
    let name = Name::new("forge");
    let a = Value::<u64>::create(&name, V).unwrap();
    let a_tok = taken_tokens(&name);
    assert_eq!(a_tok.len(), 1);
    let a_tok = a_tok[0].1;
    let b = Value::<u64>::open(&name).unwrap();
    let b_tok = taken_tokens(&name)
        .into_iter()
        .map(|(_, t)| t)
        .find(|&t| t != a_tok)
        .unwrap();
    let lock = get_u64(&name, OFF_BODY_OFFSET);
    let mark = |mut g: shmproc::ValueGuard<'_, u64>| g.mark_consistent();

    // Held by another live handle: wait, then time out.
    put_u64(&name, lock, b_tok);
    assert_eq!(lock_outcome(a.try_lock(), mark), "WouldBlock");
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "Timeout");
    // "Held" by ourselves (a forged word naming our own token): no take-over, a timeout.
    put_u64(&name, lock, a_tok);
    assert_eq!(lock_outcome(a.try_lock(), mark), "WouldBlock");
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "Timeout");
    assert_eq!(lock_outcome(b.try_lock(), mark), "WouldBlock");
    // Held by a handle that is gone: taken over with the owner-died mark.
    put_u64(&name, lock, b_tok | LOCK_WAITERS);
    drop(b);
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "OwnerDied");
    assert_eq!(a.load().ok(), Some(V));
    // An owner token naming a record past the table: nobody, so taken over.
    put_u64(&name, lock, (5 << 10) | 1000);
    assert_eq!(lock_outcome(a.try_lock(), mark), "OwnerDied");
    // Flags without an owner are ignored: the lock is free.
    put_u64(&name, lock, LOCK_WAITERS | LOCK_DIED);
    assert_eq!(lock_outcome(a.try_lock(), mark), "Ok");
    // Unrecoverable, however it got there.
    put_u64(&name, lock, LOCK_UNRECOVERABLE | a_tok);
    assert_eq!(lock_outcome(a.try_lock(), mark), "Unrecoverable");
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "Unrecoverable");
    assert!(matches!(
        a.load().map_err(|e| e.without_guard()),
        Err(LockError::Unrecoverable)
    ));

    put_u64(&name, lock, 0);
    assert_eq!(a.load().ok(), Some(V));
    drop(a);
    assert_gone(&name);
}

#[test]
fn truncated_files_are_refused() {
    let probe = Name::new("trunc");
    let total = persisted_value(&probe, V);
    assert_gone(&probe);
    for len in [0, 100, 255, 256, 256 + 8, 1024, total - 1] {
        let name = Name::new("trunc");
        assert_eq!(persisted_value(&name, V), total);
        set_len(&name, len);
        let ctx = format!("truncated to {len} of {total}");
        let r = Value::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::Corrupted { .. } | OpenError::InitTimeout { .. }, "{ctx}");
        let r2 = Array::<u64>::open_with(&name, &short());
        assert_err!(
            r2,
            OpenError::Corrupted { .. } | OpenError::InitTimeout { .. } | OpenError::IncompatibleType { .. },
            "{ctx}: Array::open"
        );
        println!("{ctx}: open -> {}", outcome(&r));
        // open_or_create: a file too short to hold a header is what a creator that died
        // before sizing it leaves (the init beacon is free), so it is replaced; anything
        // longer is reported.
        match Value::<u64>::open_or_create_with(&name, 5, &short()) {
            Ok(v) => {
                assert!((len as usize) < HEADER_SIZE, "{ctx}: open_or_create accepted it");
                assert!(v.owns_name(), "{ctx}: open_or_create opened a truncated segment");
                assert_eq!(v.load().ok(), Some(5));
                assert_eq!(file_len(&name), total);
            }
            Err(OpenError::Corrupted { .. }) => assert!(len as usize >= HEADER_SIZE, "{ctx}"),
            Err(e) => panic!("{ctx}: open_or_create gave {e:?}"),
        }
        assert_gone(&name);
    }
    // Longer than needed is fine.
    let name = Name::new("trunc");
    persisted_value(&name, V);
    set_len(&name, total + 4096);
    let v = Value::<u64>::open_with(&name, &short()).unwrap();
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}

#[test]
fn garbage_file_is_refused() {
    let name = Name::new("junk");
    let total = persisted_value(&name, V) as usize;
    let real = read_at(&name, OFF_MAGIC, 16); // magic, READY init word, version
    let init = OFF_INIT_STATE as usize..OFF_INIT_STATE as usize + 4;
    assert_gone(&name);
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let mut tally: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();

    for round in 0..12 {
        let mut junk = rng.bytes(total);
        let kind = match round {
            0..=3 => "random",
            4..=7 => {
                junk[init.clone()].copy_from_slice(&real[init.clone()]); // looks published
                "random+ready"
            }
            _ => {
                junk[..16].copy_from_slice(&real); // our magic, ready, our version
                "magic+ready+version"
            }
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(shm_path(&name))
            .unwrap();
        f.write_all(&junk).unwrap();
        drop(f);
        assert_eq!(file_mode(&name), 0o600);

        let r = Value::<u64>::open_with(&name, &short());
        let ctx = format!("round {round} ({kind})");
        *tally.entry((kind, outcome(&r))).or_default() += 1;
        match kind {
            "random" => assert_err!(r, OpenError::Corrupted { .. } | OpenError::InitTimeout { .. }, "{ctx}"),
            "random+ready" => assert_err!(r, OpenError::Corrupted { what } if what.contains("magic"), "{ctx}"),
            _ => assert_err!(
                r,
                OpenError::Corrupted { .. } | OpenError::IncompatibleType { .. },
                "{ctx}"
            ),
        }
        let r = Array::<u32>::open_with(&name, &short());
        assert_err!(
            r,
            OpenError::Corrupted { .. } | OpenError::InitTimeout { .. } | OpenError::IncompatibleType { .. },
            "{ctx}: Array::open"
        );
        let r = Value::<u64>::create(&name, 1);
        assert_err!(r, OpenError::AlreadyExists { .. }, "{ctx}");
        if kind != "random" {
            // (A not-ready garbage file makes open_or_create wait for its whole give-up
            // time; that is covered once below.)
            let r = Value::<u64>::open_or_create_with(&name, 1, &short());
            assert_err!(
                r,
                OpenError::Corrupted { .. } | OpenError::IncompatibleType { .. },
                "{ctx}"
            );
        }
        assert_eq!(read_all(&name), junk, "{ctx}: the garbage file was modified");
        shmproc::remove(&name).unwrap();
        assert!(!present(&name));
    }
    println!("garbage files: {tally:?}");

    // open_or_create neither adopts nor deletes a foreign file whose init word is garbage.
    let mut junk = rng.bytes(total);
    junk[init].copy_from_slice(&0xDEAD_BEEF_u32.to_le_bytes());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(shm_path(&name))
        .unwrap();
    f.write_all(&junk).unwrap();
    drop(f);
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(r, OpenError::InitTimeout { .. });
    assert_eq!(read_all(&name), junk, "open_or_create modified a foreign file");
    assert_gone(&name);
}

#[test]
fn non_regular_files_are_refused() {
    // A FIFO under the name.
    let name = Name::new("fifo");
    let c = std::ffi::CString::new(shm_path(&name).into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. } | OpenError::Io { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(r, OpenError::Corrupted { .. } | OpenError::Io { .. });
    assert!(
        std::fs::symlink_metadata(shm_path(&name))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_gone(&name);

    // A directory under the name.
    let name = Name::new("dir");
    std::fs::create_dir(shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::Corrupted { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    let r = shmproc::remove(&name);
    assert_err!(r, OpenError::Io { .. }, "remove of a directory");
    assert!(std::fs::symlink_metadata(shm_path(&name)).unwrap().is_dir());
    std::fs::remove_dir(shm_path(&name)).unwrap();
    assert_gone(&name);
}

#[test]
fn symlinks_are_refused() {
    // A symlink to an ordinary file.
    let name = Name::new("link");
    let target = std::env::temp_dir().join(format!("shmproc-bad-input-target-{}", std::process::id()));
    let content: Vec<u8> = XorShift(7).bytes(4096);
    std::fs::write(&target, &content).unwrap();
    std::os::unix::fs::symlink(&target, shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(
        r,
        OpenError::Io { .. } | OpenError::NotFound { .. } | OpenError::AlreadyExists { .. }
    );
    let r = Array::<u8>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    assert_eq!(
        std::fs::read(&target).unwrap(),
        content,
        "the symlink target was modified"
    );
    // remove() unlinks the link, not its target.
    shmproc::remove(&name).unwrap();
    assert!(!present(&name));
    assert_eq!(std::fs::read(&target).unwrap(), content);
    std::fs::remove_file(&target).unwrap();
    assert_gone(&name);

    // A symlink to a valid segment of ours: still refused, the segment untouched.
    let real = Name::new("real");
    let name = Name::new("link");
    let seg = Value::<u64>::create(&real, V).unwrap();
    let before = read_all(&real);
    std::os::unix::fs::symlink(shm_path(&real), shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    assert_eq!(read_all(&real), before);
    assert_eq!(seg.load().ok(), Some(V));
    assert_gone(&name);
    assert!(present(&real), "removing the link removed its target");
    drop(seg);
    assert_gone(&real);

    // A dangling symlink: create does not create its target.
    let name = Name::new("dangle");
    let target = std::env::temp_dir().join(format!("shmproc-bad-input-dangling-{}", std::process::id()));
    std::os::unix::fs::symlink(&target, shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(
        r,
        OpenError::Io { .. } | OpenError::NotFound { .. } | OpenError::AlreadyExists { .. }
    );
    assert!(
        std::fs::symlink_metadata(&target).is_err(),
        "create followed a dangling symlink"
    );
    assert_gone(&name);
}

// ---------------------------------------------------------------------------------------
// Permissions and ownership
// ---------------------------------------------------------------------------------------

#[test]
fn group_or_other_writable_segments_are_refused() {
    let name = Name::new("perm");
    persisted_value(&name, V);
    for mode in [0o620, 0o602, 0o622, 0o660, 0o666, 0o677] {
        std::fs::set_permissions(shm_path(&name), std::fs::Permissions::from_mode(mode)).unwrap();
        let r = Value::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::InsecurePermissions { mode: m } if m == mode, "{mode:o}");
        let r = Array::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::InsecurePermissions { .. }, "{mode:o}");
        let r = Value::<u64>::open_or_create_with(&name, 1, &short());
        assert_err!(r, OpenError::InsecurePermissions { .. }, "{mode:o}");
        let v = Value::<u64>::open_with(&name, &short().allow_shared_write(true))
            .unwrap_or_else(|e| panic!("{mode:o} with allow_shared_write: {e:?}"));
        assert_eq!(v.load().ok(), Some(V));
        // Asking for a shared-write mode allows opening such segments too.
        let r = Value::<u64>::open_with(&name, &short().mode(0o660));
        assert!(r.is_ok(), "{mode:o} with mode(0o660): {:?}", r.map(drop));
    }
    // Readable by group and others, writable only by the owner: fine.
    let owner_only: &[u32] = if is_root() {
        &[0o644, 0o604, 0o640, 0o600, 0o400, 0o000]
    } else {
        &[0o644, 0o604, 0o640, 0o600]
    };
    for &mode in owner_only {
        std::fs::set_permissions(shm_path(&name), std::fs::Permissions::from_mode(mode)).unwrap();
        let r = Value::<u64>::open_with(&name, &short());
        assert!(r.is_ok(), "{mode:o}: {:?}", r.map(drop));
    }
    assert_gone(&name);
}

#[test]
fn create_mode_is_exact_and_ignores_the_umask() {
    // (create mode, resulting file mode): the child runs under umask 0o077.
    for (mode, want) in [
        (0o640, 0o640),
        (0o666, 0o666),
        (0o604, 0o604),
        (0o4640, 0o640),
        (0o400, 0o400),
    ] {
        let name = Name::new("mode");
        let mut child = spawn("create_mode", &[name.as_str(), &format!("{mode:o}")]);
        let line = child.expect_line("READY", common::LONG);
        child.wait_ok(common::LONG);
        assert!(line.ends_with("-> 77"), "the child's umask was not 0o077: {line}");
        assert_eq!(file_mode(&name), want, "Options::mode({mode:o}) under umask 0o077");
        let r = Value::<u64>::open_with(&name, &short());
        if want & 0o022 != 0 {
            assert_err!(r, OpenError::InsecurePermissions { mode: m } if m == want, "mode {mode:o}");
        } else {
            assert_eq!(r.unwrap().load().ok(), Some(1));
        }
        assert_gone(&name);
    }
    // In-process, the default mode is 0o600 whatever the umask (here the inherited one).
    let name = Name::new("mode");
    let v = Value::<u64>::create(&name, 1).unwrap();
    assert_eq!(file_mode(&name), 0o600);
    drop(v);
    assert_gone(&name);
}

#[test]
fn another_users_segment_is_untrusted() {
    if !is_root() {
        eprintln!("note: another_users_segment_is_untrusted needs root (to become nobody); skipped");
        return;
    }
    let name = Name::new("nobody");
    let mut child = spawn("nobody_create", &[name.as_str()]);
    let line = child.expect_line("READY", common::LONG);
    child.wait_ok(common::LONG);
    if let Some(why) = line.strip_prefix("skip") {
        eprintln!("note: cannot become nobody here ({}); skipped", why.trim());
        assert_gone(&name);
        return;
    }
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600));
    let before = read_all(&name);

    let r = Value::<u64>::open(&name);
    assert_err!(
        r,
        OpenError::UntrustedOwner {
            owner: NOBODY,
            expected: 0
        }
    );
    // The owner is checked before anything else (type, permissions).
    let r = Array::<u32>::open_with(&name, &short().allow_shared_write(true));
    assert_err!(
        r,
        OpenError::UntrustedOwner {
            owner: NOBODY,
            expected: 0
        }
    );
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(
        r,
        OpenError::UntrustedOwner {
            owner: NOBODY,
            expected: 0
        }
    );
    assert_eq!(
        read_all(&name),
        before,
        "a refused open modified another user's segment"
    );

    shmproc::remove(&name).unwrap();
    assert_gone(&name);
}

#[test]
fn root_segment_opened_by_nobody() {
    if !is_root() {
        eprintln!("note: root_segment_opened_by_nobody needs root (to become nobody); skipped");
        return;
    }
    // Writable by everyone (so nobody can open it read-write): the owner check refuses it.
    let name = Name::new("rootseg");
    let v = Value::<u64>::create_with(&name, V, &Options::new().mode(0o666)).unwrap();
    let mut child = spawn("nobody_open", &[name.as_str()]);
    let line = child.expect_line("RESULT", common::LONG);
    child.wait_ok(common::LONG);
    if !line.starts_with("skip") {
        assert_eq!(line, format!("UntrustedOwner 0 {NOBODY}"));
    }
    drop(v);
    assert_gone(&name);

    // Owner-only: nobody cannot even open the file.
    let name = Name::new("rootseg");
    let v = Value::<u64>::create(&name, V).unwrap();
    let mut child = spawn("nobody_open", &[name.as_str()]);
    let line = child.expect_line("RESULT", common::LONG);
    child.wait_ok(common::LONG);
    if !line.starts_with("skip") {
        assert!(line.starts_with("Io "), "{line}");
    }
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}
