//! A full `/dev/shm` gives a typed error at creation, never a later SIGBUS (unless the segment
//! was created sparse, which this file shows too).
//!
//! Each test runs in a child of this binary that enters a private mount namespace
//! (`unshare(CLONE_NEWNS)`, mounts made private) and mounts a 4 MiB tmpfs on `/dev/shm`, so
//! it can fill `/dev/shm` without touching the machine's. The namespace, its tmpfs and
//! everything in it go when the child exits. Where the namespace or the mount is not
//! permitted (not root, a container without `CAP_SYS_ADMIN`), the test says why and passes.
//!
//! The child reports `OUTCOME PASS` or `OUTCOME SKIP <why>`; its grandchildren (a creator
//! stopped at a fault point, a process that touches a sparse queue) share its namespace.

mod common;

use common::{child_main, say, spawn, spawn_env};
use shmproc::{ByteQueue, OpenError, Options, Process, ProcessError};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// Size of the tmpfs each test mounts on `/dev/shm`.
const TMPFS_SIZE: &str = "size=4m";
/// A queue that fits in the tmpfs: 16 slots of 64 KiB, about 1.1 MiB.
const CAP: usize = 16;
const MAX: usize = 64 << 10;
/// The file that fills the tmpfs (not a segment name: no `shmproc.` prefix).
const FILLER: &str = "/dev/shm/filler";

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        "ns" => {
            if let Err(why) = private_dev_shm() {
                say(format!("OUTCOME SKIP {why}"));
                return;
            }
            match args[0].as_str() {
                "too_big" => too_big(),
                "reserve_fails" => reserve_fails(),
                "reserved_survives" => reserved_survives(),
                "sparse_sigbus" => sparse_sigbus(),
                other => panic!("unknown scenario {other}"),
            }
            say("OUTCOME PASS");
        }
        // Stopped at `segment.create.before_reserve` by its environment.
        "create" => say(format!(
            "RESULT {}",
            outcome(ByteQueue::create_with(&args[0], CAP, &opts()))
        )),
        "touch" => {
            let q = ByteQueue::open(&args[0]).unwrap();
            say("OPENED");
            fill_queue(&q);
            say("TOUCHED");
        }
        _ => {}
    });
}

/// Runs `scenario` in a child with its own 4 MiB `/dev/shm`.
fn run(scenario: &str) {
    let mut child = spawn("ns", &[scenario]);
    let outcome = child.expect_line("OUTCOME", common::LONG);
    child.wait_ok(common::LONG);
    if let Some(why) = outcome.strip_prefix("SKIP") {
        println!("skipped: no private tmpfs on /dev/shm here:{why}");
    } else {
        assert_eq!(outcome, "PASS");
    }
}

/// (a) A segment larger than the free space is refused before anything is allocated.
#[test]
fn larger_than_free_space_is_no_space() {
    run("too_big");
}

/// (a') A segment that passes the free-space check but whose pages cannot be allocated (the
/// tmpfs fills up between the check and `fallocate`) is refused too, and its file removed.
#[test]
fn reservation_that_fails_is_no_space() {
    run("reserve_fails");
}

/// (b) A segment created with its pages reserved keeps working after another program fills
/// `/dev/shm`: every page of it is touched, and nobody gets SIGBUS.
#[test]
fn reserved_segment_survives_a_full_dev_shm() {
    run("reserved_survives");
}

/// (c) The trade-off of `Options::sparse(true)`: after `/dev/shm` fills up, the first touch
/// of an unused page kills the process that touches it with SIGBUS.
#[test]
fn sparse_segment_faults_on_a_full_dev_shm() {
    run("sparse_sigbus");
}

// ---------------------------------------------------------------------------------------
// In the namespace
// ---------------------------------------------------------------------------------------

/// Gives this thread (and the processes it starts) a private mount namespace with a fresh
/// tmpfs of [`TMPFS_SIZE`] on `/dev/shm`. `Err`: why that is not possible here.
fn private_dev_shm() -> Result<(), String> {
    // SAFETY: unshare(2) takes flags only. It moves this thread, the one that runs the
    // scenario and starts the grandchildren, into a new mount namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error()));
    }
    // SAFETY: NUL-terminated string literals; no source, type or data for a propagation change.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!("mount(MS_PRIVATE): {}", std::io::Error::last_os_error()));
    }
    let size = std::ffi::CString::new(TMPFS_SIZE).unwrap();
    // SAFETY: NUL-terminated strings that outlive the call; tmpfs takes a text option string.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c"/dev/shm".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            size.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(format!("mount(tmpfs, /dev/shm): {}", std::io::Error::last_os_error()));
    }
    assert_eq!(listing(), Vec::<String>::new(), "a fresh tmpfs is empty");
    Ok(())
}

fn opts() -> Options {
    Options::new().max_message_size(MAX)
}

/// The files in `/dev/shm`, sorted.
fn listing() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes [`FILLER`] until the tmpfs is full.
fn fill_dev_shm() {
    let mut f = File::create(FILLER).unwrap();
    let chunk = vec![0x5a; 64 << 10];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling /dev/shm: {e}"),
        }
    }
    // Whatever a partial page left: one byte at a time is cheap for the last bytes.
    while let Ok(1) = f.write(&[0x5a]) {}
    assert_eq!(
        fs::write("/dev/shm/one-more", [1u8; 4096]).map_err(|e| e.kind()),
        Err(ErrorKind::StorageFull),
        "/dev/shm is full"
    );
    let _ = fs::remove_file("/dev/shm/one-more");
}

/// Puts `CAP` messages of the largest size (touching every page of every slot), then gets
/// them back.
fn fill_queue(q: &ByteQueue) {
    for i in 0..CAP {
        q.try_put(&vec![i as u8; MAX]).unwrap();
    }
    for i in 0..CAP {
        let m = q.try_get().unwrap();
        assert!(m.len() == MAX && m.iter().all(|&b| b == i as u8), "message {i}");
    }
}

fn outcome<T>(r: Result<T, OpenError>) -> String {
    match r {
        Ok(_) => "Ok".to_owned(),
        Err(OpenError::NoSpace {
            needed,
            available,
            file_system,
        }) => {
            assert!(needed > available, "{needed} > {available}");
            assert_eq!(file_system, "/dev/shm");
            "NoSpace".to_owned()
        }
        Err(e) => format!("{e:?}"),
    }
}

fn too_big() {
    let name = common::Name::new("big");
    // 64 slots of 64 KiB: over 4 MiB.
    let r = ByteQueue::create_with(&name, 4 * CAP, &opts());
    if let Err(e) = &r {
        println!("{e}");
    }
    assert_eq!(outcome(r), "NoSpace");
    assert_eq!(
        outcome(ByteQueue::open_or_create_with(&name, 4 * CAP, &opts())),
        "NoSpace"
    );
    // The same with sparse: it is refused when it cannot fit even now.
    assert_eq!(
        outcome(ByteQueue::create_with(&name, 4 * CAP, &opts().sparse(true))),
        "NoSpace"
    );
    // A child's pipe (about 8.4 MiB by default) does not fit either.
    shmproc::init();
    match Process::spawn(|x: u32| x, 1) {
        Err(ProcessError::Pipe(e)) => assert!(matches!(e, OpenError::NoSpace { .. }), "{e:?}"),
        Err(e) => panic!("expected Pipe(NoSpace), got {e:?}"),
        Ok(_) => panic!("expected Pipe(NoSpace), got a process"),
    }
    assert_eq!(listing(), Vec::<String>::new(), "nothing is left in /dev/shm");
    // A queue that fits is created.
    drop(ByteQueue::create_with(&name, CAP, &opts()).unwrap());
}

fn reserve_fails() {
    let name = common::Name::new("rsv");
    let mut creator = spawn_env(
        "create",
        &[&name],
        &[
            ("SHMPROC_FAULT", "segment.create.before_reserve"),
            ("SHMPROC_FAULT_ACTION", "stop"),
        ],
    );
    creator.expect_line("SHMPROC_FAULT_HIT", common::LONG);
    creator.wait_stopped();
    // The creator passed the free-space check and made its file; fill what is left.
    assert_eq!(listing().len(), 1, "the creator's file: {:?}", listing());
    fill_dev_shm();
    creator.signal(libc::SIGCONT);
    assert_eq!(creator.expect_line("RESULT", common::LONG), "NoSpace");
    creator.wait_ok(common::LONG);
    assert_eq!(listing(), ["filler"], "the creator's file is removed");
    fs::remove_file(FILLER).unwrap();
    // With room again, the same name can be created.
    drop(ByteQueue::create_with(&name, CAP, &opts()).unwrap());
}

/// Waits until `pid` is stopped (state `T` in `/proc/PID/stat`).
fn reserved_survives() {
    let name = common::Name::new("full");
    let q = ByteQueue::create_with(&name, CAP, &opts()).unwrap();
    fill_dev_shm();
    // Here, in the creator, and in another process that opens it.
    fill_queue(&q);
    let mut toucher = spawn("touch", &[&name]);
    toucher.expect_line("TOUCHED", common::LONG);
    toucher.wait_ok(common::LONG);
    fill_queue(&q);
    drop(q);
    fs::remove_file(FILLER).unwrap();
}

fn sparse_sigbus() {
    let name = common::Name::new("sparse");
    let q = ByteQueue::create_with(&name, CAP, &opts().sparse(true)).unwrap();
    fill_dev_shm();
    // Under a sanitizer the toucher must not catch the SIGBUS (which it would report as an
    // error): the signal is what this case checks. Appended, the flag overrides the run's.
    let no_handler = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| (var.to_owned(), format!("{v} handle_sigbus=0")))
    };
    let env: Vec<(String, String)> = ["ASAN_OPTIONS", "TSAN_OPTIONS"]
        .iter()
        .filter_map(|v| no_handler(v))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut toucher = common::spawn_env("touch", &[&name], &env);
    let deadline = Instant::now() + common::LONG;
    let status = loop {
        if let Some(st) = toucher.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the toucher did not end");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.signal(), Some(libc::SIGBUS), "the toucher ended with {status:?}");
    drop(q);
    fs::remove_file(FILLER).unwrap();
}
