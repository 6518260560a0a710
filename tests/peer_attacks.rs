//! A peer that can write a segment (a buggy or hostile process of the same user) attacks the
//! header, the lock word and a child's pipe while this process uses the public API, and
//! every public `_timeout` call meets `Duration::MAX` and `Duration::ZERO`.
//!
//! What must hold (the README's threat model): a typed error or a bounded wait, never a
//! panic, a signal, a split name or a wait past the deadline. The peer is a real second
//! process (a child of this test binary that maps the segment file) or, where the attack is
//! on a child's pipe, a thread of another process with its own mapping.

mod common;

use common::{Name, child_main, say, spawn, spawn_env};
use shmproc::{
    Array, ByteQueue, Connection, LockError, MessageQueue, OpenError, Options, Pipe, Pool, Process, Queue, RecvError,
    Value,
};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

shmproc::test_support!();

// Header field offsets (`segment/header.rs`, `Header`).
const INIT_STATE: u64 = 8;
const COUNT: u64 = 56;
const BODY_OFFSET: u64 = 72;
const BODY_SIZE: u64 = 80;
const TOTAL_SIZE: u64 = 88;
const INIT_READY: u32 = 0x5245_4459;
/// The participant table starts right after the 256-byte header; records are 32 bytes.
const PARTICIPANTS: u64 = 256;
const PARTICIPANT_SIZE: u64 = 32;
/// `state` bit of a taken participant record.
const TAKEN: u64 = 1 << 32;
/// How much later than its deadline a call may return here: one wait slice and a
/// descheduled test thread on a loaded 2-core machine, with a wide margin.
const SLACK: Duration = Duration::from_secs(2);

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        "poke" => {
            let (width, value) = (args[2].parse::<u32>().unwrap(), parse_u64(&args[3]));
            with_mapping(&args[0], |base, len| {
                let off = args[1].parse::<usize>().unwrap();
                assert!(off + width as usize / 8 <= len);
                // SAFETY: `off` is inside the mapping and aligned for the width (header fields).
                unsafe {
                    match width {
                        32 => AtomicU32::from_ptr(base.add(off).cast()).store(value as u32, Ordering::SeqCst),
                        _ => AtomicU64::from_ptr(base.add(off).cast()).store(value, Ordering::SeqCst),
                    }
                }
            });
            say("DONE");
        }
        "flip" => with_mapping(&args[0], |base, len| {
            let off = args[1].parse::<usize>().unwrap();
            let owner = parse_u64(&args[2]);
            assert!(off + 8 <= len);
            // SAFETY: an 8-aligned word inside the mapping (the lock word).
            let word = unsafe { AtomicU64::from_ptr(base.add(off).cast()) };
            say("READY");
            // Until the parent kills us: the same owner, with the waiters bit and stray high
            // bits that change with every store, so that no compare-exchange of a value read
            // a moment before succeeds.
            for i in 0u64.. {
                word.store(owner | (i & 1) << 32 | (i & 0x1FFF_FFFF) << 35, Ordering::Relaxed);
            }
        }),
        "hold_queue" => {
            let q = Queue::<u64>::create(&args[0], 4).unwrap();
            say("READY");
            while let Some(line) = common::wait_parent() {
                if let Some(v) = line.strip_prefix("put ") {
                    q.put(v.parse().unwrap()).unwrap();
                    say("PUT");
                }
            }
        }
        "join_flood" => join_flood(),
        other => panic!("unknown role {other}"),
    });
}

fn parse_u64(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmproc.{name}")
}

/// Maps the whole segment file `name` read-write and shared, as a peer would.
fn with_mapping(name: &str, f: impl FnOnce(*mut u8, usize)) {
    let file = OpenOptions::new().read(true).write(true).open(shm_path(name)).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: a fresh shared mapping of an open regular file of `len` bytes.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    f(base.cast(), len);
    // SAFETY: unmapping the mapping made above.
    unsafe { libc::munmap(base, len) };
}

fn read_u64(name: &str, off: u64) -> u64 {
    let file = std::fs::File::open(shm_path(name)).unwrap();
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

fn inode(name: &str) -> u64 {
    std::fs::metadata(shm_path(name)).unwrap().ino()
}

/// Has a child process write `value` (`width` 32 or 64 bits) at `off` of `name`'s mapping.
fn poke(name: &str, off: u64, width: u32, value: u64) {
    let mut c = spawn(
        "poke",
        &[name, &off.to_string(), &width.to_string(), &value.to_string()],
    );
    c.expect_line("DONE", common::LONG);
    c.wait_ok(common::LONG);
}

fn is_corrupted<T>(r: &Result<T, OpenError>) -> bool {
    matches!(r, Err(OpenError::Corrupted { .. }))
}

/// Rewrites the header of `name` to say `count` elements, with body and total sizes made
/// consistent with a body of `body` bytes.
fn forge_count(name: &str, count: u64, body: u64) {
    let body_offset = read_u64(name, BODY_OFFSET);
    poke(name, COUNT, 64, count);
    poke(name, BODY_SIZE, 64, body);
    poke(name, TOTAL_SIZE, 64, body_offset + body);
}

#[test]
fn open_or_create_refuses_what_open_refuses() {
    // A Value of 0 elements: its body would be the lock line (64 bytes) alone.
    let n = Name::new("v0");
    let v = Value::<u64>::create(&n, 5).unwrap();
    forge_count(&n, 0, 64);
    let opened = Value::<u64>::open(&n);
    let either = Value::<u64>::open_or_create(&n, 7);
    assert!(is_corrupted(&opened), "open: {:?}", opened.err());
    assert!(is_corrupted(&either), "open_or_create: {:?}", either.err());
    // The handle that validated the header before the peer wrote it keeps working.
    assert_eq!(v.load().map_err(|e| e.without_guard()).unwrap(), 5);

    // A Value of 2 elements (the file is too short for it, too).
    let n = Name::new("v2");
    let _v = Value::<u64>::create(&n, 5).unwrap();
    forge_count(&n, 2, 64 + 16);
    assert!(is_corrupted(&Value::<u64>::open(&n)));
    assert!(is_corrupted(&Value::<u64>::open_or_create(&n, 7)));

    let n = Name::new("a0");
    let a = Array::<u32>::create(&n, 3, 9).unwrap();
    forge_count(&n, 0, 64);
    assert!(is_corrupted(&Array::<u32>::open(&n)));
    assert!(is_corrupted(&Array::<u32>::open_or_create(&n, 3, 1)));
    assert_eq!(a.lock().map_err(|e| e.without_guard()).unwrap()[2], 9);

    let n = Name::new("q0");
    let _q = Queue::<u64>::create(&n, 4).unwrap();
    poke(&n, COUNT, 64, 0);
    assert!(is_corrupted(&Queue::<u64>::open(&n)));
    assert!(is_corrupted(&Queue::<u64>::open_or_create(&n, 4)));

    let n = Name::new("b0");
    let _b = ByteQueue::create(&n, 4).unwrap();
    poke(&n, COUNT, 64, 0);
    assert!(is_corrupted(&ByteQueue::open(&n)));
    assert!(is_corrupted(&ByteQueue::open_or_create(&n, 4)));
}

#[test]
fn open_or_create_never_unlinks_a_live_segment() {
    let n = Name::new("live");
    let mut holder = spawn("hold_queue", &[&n]);
    holder.expect_line("READY", common::LONG);
    let before = inode(&n);
    // The peer (this process) makes the published queue look never initialised.
    let file = OpenOptions::new().write(true).open(shm_path(&n)).unwrap();
    file.write_all_at(&0u32.to_le_bytes(), INIT_STATE).unwrap();

    let opts = Options::new().init_timeout(Duration::from_millis(20));
    let r = Queue::<u64>::open_or_create_with(&n, 4, &opts);
    assert!(is_corrupted(&r), "open_or_create: {:?}", r.err());
    assert_eq!(inode(&n), before, "the live segment's name was taken from it");

    // No split brain: once the word is back, an opener shares the creator's memory.
    file.write_all_at(&INIT_READY.to_le_bytes(), INIT_STATE).unwrap();
    let q = Queue::<u64>::open(&n).unwrap();
    holder.send("put 42");
    holder.expect_line("PUT", common::LONG);
    assert_eq!(q.get_timeout(common::LONG), Ok(42));
    drop(q);
    holder.close_stdin();
    holder.wait_ok(common::LONG);
}

#[test]
fn lock_timeout_is_bounded_while_a_peer_flips_the_lock_word() {
    let n = Name::new("flip");
    let v = Value::<u64>::create(&n, 1).unwrap();
    // The peer forges a taken participant record 5 (its beacon is free, so its owner is
    // dead, which a locker learns only with a system call) and keeps rewriting the lock word
    // with that owner and ever-changing flag bits: every take-over CAS of ours fails.
    let record = PARTICIPANTS + 5 * PARTICIPANT_SIZE;
    poke(&n, record, 64, TAKEN | 7);
    let token = (7u64 << 10) | 5;
    let lock_word = read_u64(&n, BODY_OFFSET);
    let mut flipper = spawn("flip", &[&n, &lock_word.to_string(), &token.to_string()]);
    flipper.expect_line("READY", common::LONG);
    let timeouts = [0, 1, 5, 30, 200].map(Duration::from_millis);
    for timeout in timeouts.into_iter().cycle().take(20) {
        let t0 = Instant::now();
        let r = v.lock_timeout(timeout);
        let took = t0.elapsed();
        assert!(took <= timeout + SLACK, "lock_timeout({timeout:?}) took {took:?}");
        // Whatever it got (a timeout, or the lock taken over from the forged owner), it is
        // a value, not a hang.
        if let Err(e) = &r {
            assert!(
                matches!(
                    e,
                    LockError::Timeout | LockError::OwnerDied(_) | LockError::Unrecoverable
                ),
                "{e:?}"
            );
        }
        drop(r);
    }
    let t0 = Instant::now();
    drop(v.try_lock());
    assert!(t0.elapsed() <= SLACK);
    flipper.kill();
}

/// In a role process started with `SHMPROC_FAULT=process.child.before_connect`: spawns a
/// `Process` whose child stops before connecting to its pipe, connects to the pipe in its
/// place from a thread (a peer with its own mapping), floods it with frames that settle
/// nothing, and reports how long `join_timeout` took.
fn join_flood() {
    shmproc::init();
    let mut p = Process::builder().daemon(true).spawn(square, 3u64).unwrap();
    let prefix = format!("shmproc.p{}x", std::process::id());
    let pipe = loop {
        let found = std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|f| f.starts_with(&prefix));
        if let Some(f) = found {
            break f["shmproc.".len()..].to_owned();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let conn = Arc::new(loop {
        match Connection::open(&pipe) {
            Ok(c) => break c,
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    });
    // Three senders keep the ring full, so that the waiter always finds another frame.
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..3)
        .map(|_| {
            let (stop, conn) = (stop.clone(), conn.clone());
            std::thread::spawn(move || {
                // A "ready" frame (kind 4, a pid) again and again: postcard writes a byte
                // array as its bytes.
                let ready = [4u8, 1, 0, 0, 0];
                while !stop.load(Ordering::Relaxed) {
                    let _ = conn.send_timeout(&ready, Duration::from_millis(10));
                }
            })
        })
        .collect();
    let timeout = Duration::from_millis(300);
    let t0 = Instant::now();
    let r = p.join_timeout(timeout);
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.join().unwrap();
    }
    let what = match r {
        Err(shmproc::ProcessError::Timeout) => "timeout".to_owned(),
        other => format!("{other:?}").replace(' ', "_"),
    };
    say(format!("RESULT {what} {}", took.as_millis()));
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn join_timeout_is_bounded_while_a_peer_floods_the_pipe() {
    let mut c = spawn_env("join_flood", &[], &[("SHMPROC_FAULT", "process.child.before_connect")]);
    let line = c.expect_line("RESULT", common::LONG);
    c.wait_ok(common::LONG);
    let mut parts = line.split_whitespace();
    let (what, ms) = (parts.next().unwrap(), parts.next().unwrap().parse::<u64>().unwrap());
    assert_eq!(what, "timeout", "{line}");
    assert!(
        Duration::from_millis(ms) <= Duration::from_millis(300) + SLACK,
        "join_timeout(300 ms) took {ms} ms"
    );
}

/// `Duration::MAX` means "no deadline" and `Duration::ZERO` "one attempt" in every public
/// `_timeout` call; neither panics.
#[test]
fn huge_and_zero_timeouts_everywhere() {
    let (max, zero) = (Duration::MAX, Duration::ZERO);

    let n = Name::new("tq");
    let q = Queue::<u64>::create(&n, 2).unwrap();
    assert_eq!(q.get_timeout(zero), Err(shmproc::GetError::Timeout));
    q.put_timeout(1, max).unwrap();
    q.put_ref_timeout(&2, max).unwrap();
    assert!(matches!(q.put_timeout(3, zero), Err(shmproc::PutError::Timeout(3))));
    assert_eq!(q.get_timeout(max), Ok(1));
    let mut out = 0;
    q.get_into_timeout(&mut out, max).unwrap();
    assert_eq!(out, 2);
    q.task_done().unwrap();
    q.task_done().unwrap();
    q.join_timeout(max).unwrap();
    q.join_timeout(zero).unwrap();

    let n = Name::new("tv");
    let v = Value::<u64>::create(&n, 4).unwrap();
    drop(v.lock_timeout(max).map_err(|e| e.without_guard()).unwrap());
    drop(v.lock_timeout(zero).map_err(|e| e.without_guard()).unwrap());
    let n = Name::new("ta");
    let a = Array::<u64>::create(&n, 2, 4).unwrap();
    drop(a.lock_timeout(max).map_err(|e| e.without_guard()).unwrap());
    drop(a.lock_timeout(zero).map_err(|e| e.without_guard()).unwrap());

    let n = Name::new("tb");
    let b = ByteQueue::create(&n, 2).unwrap();
    assert_eq!(b.get_timeout(zero), Err(RecvError::Timeout));
    b.put_timeout(b"x", max).unwrap();
    assert_eq!(b.get_timeout(max).unwrap(), b"x");
    b.put_timeout(b"y", max).unwrap();
    let mut buf = Vec::new();
    b.get_into_timeout(&mut buf, max).unwrap();
    b.task_done().unwrap();
    b.task_done().unwrap();
    b.join_timeout(max).unwrap();

    let n = Name::new("tm");
    let m = MessageQueue::<String>::create(&n, 2).unwrap();
    m.put_timeout("s", max).unwrap();
    assert_eq!(m.get_timeout(max).unwrap(), "s");
    assert_eq!(m.get_timeout(zero), Err(RecvError::Timeout));
    m.task_done().unwrap();
    m.join_timeout(max).unwrap();

    let n = Name::new("tp");
    let end0 = Pipe::new().create(&n).unwrap();
    let end1 = Connection::open(&n).unwrap();
    end0.send_timeout(&7u32, max).unwrap();
    assert!(end1.poll(max));
    assert_eq!(end1.recv_timeout::<u32>(max).unwrap(), 7);
    assert_eq!(end1.recv_timeout::<u32>(zero), Err(RecvError::Timeout));
    end1.send_timeout("z", max).unwrap();
    end0.recv_bytes_into_timeout(&mut buf, max).unwrap();
    assert!(!end0.poll(zero));

    // A segment option too: an init timeout of `Duration::MAX` waits without a deadline.
    let opts = Options::new().init_timeout(max);
    assert!(matches!(
        Queue::<u64>::open_with(&n, &opts),
        Err(OpenError::IncompatibleType { .. })
    ));
    let tq = Name::new("ti");
    let q2 = Queue::<u64>::open_or_create_with(&tq, 2, &opts).unwrap();
    let q3 = Queue::<u64>::open_with(&tq, &opts).unwrap();
    drop((q2, q3));

    shmproc::init();
    let mut p = Process::spawn(square, 5u64).unwrap();
    assert_eq!(p.join_timeout(max).unwrap(), 25);
    let pool = Pool::new(1).unwrap();
    let r = pool.apply_async(square, 6u64);
    assert!(r.wait_timeout(max));
    assert_eq!(r.get_timeout(max).unwrap(), 36);
    assert_eq!(r.get_timeout(zero).unwrap(), 36);
}
