//! `hostile_peer`: legitimate operations on a `Queue<u64>`, a `Value<u64>` and an
//! `Array<u32>`, and on a `Semaphore`, an `Event`, a `Barrier` of 2, an `RLock` and a
//! `Condition` (two handles each), interleaved with writes of arbitrary bytes at arbitrary
//! offsets of their `/dev/shm` files, as a buggy or hostile peer of the same user could do.
//!
//! The crate's threat model says such a peer can make answers wrong and stall callers up to
//! their deadlines, but cannot make the library panic, hit undefined behaviour, or wait past
//! a deadline. So: every call here is a `try_*` or `*_timeout` (1 to 5 ms) variant and must
//! return within 8 s (`CALL_LIMIT`) with a value or a documented error; nothing may panic or crash. The
//! writes go through `FileExt::write_at` with offsets modulo the file length and lengths
//! clipped to it, so the file is never extended or truncated (truncation is the documented
//! SIGBUS case).
//!
//! Input: `[participants, cap, len, op...]`. Ops (first byte `% 16`):
//! 0, 1: write 1..=16 arbitrary bytes at an arbitrary offset of file `sel % 3`;
//! 2: write 8 bytes at an 8-aligned offset (control words, slot words, lock word, records);
//! 3..=8: queue operations; 9..=11: value operations; 12..=14: array operations;
//! 15: drop the second handle of one object and open it again (the open may now fail with a
//! typed error, as the header may be scribbled; the handle then stays closed until a later
//! reopen succeeds).
//! With bit 0x20 set, an op works on the synchronisation primitives instead (`& 0x0F`):
//! 0, 1: write 1..=16 arbitrary bytes into file `sel % 5` of theirs; 2: an aligned 8-byte word;
//! 3, 4: semaphore (permits held through the creator's guards across ops); 5, 6: event;
//! 7, 8: barrier; 9, 10: rlock (with a nested lock); 11, 12: condition; 13..=15: reopen one
//! second handle. The condition is used with a `Lock` whose file is never written, so that
//! relocking after a wait (which has no deadline, by design) cannot be made to wait; its own
//! file is. No call waits without a deadline unless it returns at once whatever the bytes
//! (`Event::wait` on a set flag, a nested `RLock::lock`).
//! At the end every creator handle is dropped and must unlink its name.

#![no_main]

#[macro_use]
mod common;

use common::{Cursor, timed};
use libfuzzer_sys::fuzz_target;
use shmproc::{
    AcquireError, Array, Barrier, BarrierError, Condition, Event, GetError, Lock, LockError, Options, PutError, Queue,
    RLock, ReleaseError, Semaphore, SemaphoreGuard, TaskError, Value,
};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

fn ms(cur: &mut Cursor<'_>) -> Duration {
    Duration::from_millis(1 + u64::from(cur.u8() % 5))
}

fn open_opts() -> Options {
    Options::new().init_timeout(Duration::from_millis(1))
}

struct Files {
    files: Vec<File>,
    lens: Vec<u64>,
}

impl Files {
    fn open(names: &[String]) -> Files {
        let files: Vec<File> = names
            .iter()
            .map(|n| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(common::shm_path(n))
                    .expect("fuzz harness: open segment file")
            })
            .collect();
        let lens = files.iter().map(|f| f.metadata().expect("stat").len()).collect();
        Files { files, lens }
    }

    /// Ops 0, 1 and 2: arbitrary bytes at an arbitrary offset, or an aligned word.
    fn scribble_op(&self, code: u8, cur: &mut Cursor<'_>) {
        let sel = usize::from(cur.u8()) % self.files.len();
        if code == 2 {
            let off = (u64::from(cur.u16()) * 8) % self.lens[sel];
            let word = cur.u64().to_le_bytes();
            self.scribble(sel, off - off % 8, &word);
        } else {
            let off = u64::from(cur.u16());
            let n = 1 + usize::from(cur.u8() % 16);
            let bytes = cur.bytes(n);
            self.scribble(sel, off, bytes);
        }
    }

    fn scribble(&self, sel: usize, offset: u64, bytes: &[u8]) {
        let len = self.lens[sel];
        let off = offset % len;
        let n = bytes.len().min((len - off) as usize);
        trace!("scribble file {sel} at {off}: {:02x?}", &bytes[..n]);
        self.files[sel]
            .write_at(&bytes[..n], off)
            .expect("fuzz harness: write_at");
    }
}

fn queue_op(code: u8, q: &Queue<u64>, cur: &mut Cursor<'_>) {
    let cap = q.capacity();
    let v = cur.u64();
    match code {
        3 => match timed("try_put", || q.try_put(v)) {
            Ok(()) => {}
            Err(e @ (PutError::Full(_) | PutError::Closed(_) | PutError::Lost(_))) => {
                assert_eq!(e.into_inner(), v)
            }
            Err(e) => panic!("try_put: {e:?}"),
        },
        4 => {
            let t = ms(cur);
            match timed("put_timeout", || q.put_timeout(v, t)) {
                Ok(()) => {}
                Err(e @ (PutError::Timeout(_) | PutError::Closed(_) | PutError::Lost(_))) => {
                    assert_eq!(e.into_inner(), v)
                }
                Err(e) => panic!("put_timeout: {e:?}"),
            }
        }
        5 => match timed("try_get", || q.try_get()) {
            Ok(_) | Err(GetError::Empty | GetError::Closed) => {}
            Err(e) => panic!("try_get: {e:?}"),
        },
        6 => {
            let t = ms(cur);
            match timed("get_timeout", || q.get_timeout(t)) {
                Ok(_) | Err(GetError::Timeout | GetError::Closed) => {}
                Err(e) => panic!("get_timeout: {e:?}"),
            }
        }
        7 => match v % 4 {
            0 => match timed("task_done", || q.task_done()) {
                Ok(()) | Err(TaskError::TooManyTaskDone) => {}
                Err(e) => panic!("task_done: {e:?}"),
            },
            1 => {
                let t = ms(cur);
                match timed("join_timeout", || q.join_timeout(t)) {
                    Ok(()) | Err(TaskError::Timeout) => {}
                    Err(e) => panic!("join_timeout: {e:?}"),
                }
            }
            2 => {
                if v & 0xF0 == 0 {
                    timed("close", || q.close());
                }
                let _ = q.is_closed();
            }
            _ => assert_eq!(q.capacity(), cap),
        },
        _ => {
            let n = timed("len", || q.len());
            assert!(n <= cap, "len {n} > capacity {cap}");
            let _ = timed("is_empty", || q.is_empty());
            let _ = timed("is_full", || q.is_full());
        }
    }
}

fn value_op(code: u8, v: &Value<u64>, cur: &mut Cursor<'_>) {
    let x = cur.u64();
    let r = match code {
        9 => timed("try_lock", || v.try_lock()),
        _ => {
            let t = ms(cur);
            timed("lock_timeout", || v.lock_timeout(t))
        }
    };
    let mut g = match r {
        Ok(g) => g,
        Err(LockError::OwnerDied(g)) => g,
        Err(LockError::WouldBlock) if code == 9 => return,
        Err(LockError::Timeout) if code != 9 => return,
        Err(LockError::Unrecoverable) => return,
        Err(e) => panic!("lock: unexpected {e:?}"),
    };
    let _ = *g;
    match x % 4 {
        0 => {}
        1 => *g = x,
        2 => {
            *g = x;
            g.flush();
        }
        _ => g.mark_consistent(),
    }
    timed("guard drop", || drop(g));
}

fn array_op(code: u8, a: &Array<u32>, cur: &mut Cursor<'_>) {
    let len = a.len();
    let x = cur.u32();
    let i = usize::from(cur.u8()) % len;
    let r = match code {
        12 => timed("try_lock", || a.try_lock()),
        _ => {
            let t = ms(cur);
            timed("lock_timeout", || a.lock_timeout(t))
        }
    };
    let mut g = match r {
        Ok(g) => g,
        Err(LockError::OwnerDied(g)) => g,
        Err(LockError::WouldBlock) if code == 12 => return,
        Err(LockError::Timeout) if code != 12 => return,
        Err(LockError::Unrecoverable) => return,
        Err(e) => panic!("lock: unexpected {e:?}"),
    };
    let _ = g.get(i);
    match x % 5 {
        0 => g.set(i, x),
        1 => g[i] = x,
        2 => assert_eq!(g.to_vec().len(), len),
        3 => {
            g[i] = x;
            g.flush();
        }
        _ => g.mark_consistent(),
    }
    timed("guard drop", || drop(g));
}

/// A semaphore op on `s`; permits taken through `held` (the creator's guards) stay held across
/// ops, others are given back at once.
fn semaphore_op<'a>(s: &'a Semaphore, held: Option<&mut Vec<SemaphoreGuard<'a>>>, cur: &mut Cursor<'_>) {
    let keep = |g: SemaphoreGuard<'a>, held: Option<&mut Vec<SemaphoreGuard<'a>>>| match held {
        Some(h) if h.len() < 4 => h.push(g),
        _ => timed("guard drop", || drop(g)),
    };
    match cur.u8() % 6 {
        0 => match timed("try_acquire", || s.try_acquire()) {
            Ok(g) => keep(g, held),
            Err(AcquireError::WouldBlock) => {}
            Err(e) => panic!("try_acquire: {e:?}"),
        },
        1 => {
            let t = ms(cur);
            match timed("acquire_timeout", || s.acquire_timeout(t)) {
                Ok(g) => keep(g, held),
                Err(AcquireError::Timeout) => {}
                Err(e) => panic!("acquire_timeout: {e:?}"),
            }
        }
        2 => match timed("release", || s.release()) {
            Ok(()) | Err(ReleaseError::Overflow | ReleaseError::Contended) => {}
            Err(e) => panic!("release: {e:?}"),
        },
        3 => {
            if let Some(g) = held.and_then(Vec::pop) {
                timed("guard drop", || drop(g));
            }
        }
        4 => {
            if let Some(g) = held.and_then(Vec::pop) {
                timed("forget", || g.forget());
            }
        }
        _ => {
            let _ = timed("available", || s.available());
        }
    }
}

/// Any bit pattern of an event's word is valid: `set` raises the flag and `clear` lowers it
/// whatever else the word says (nothing writes the file between a call and the check).
fn event_op(e: &Event, cur: &mut Cursor<'_>) {
    match cur.u8() % 5 {
        0 => {
            timed("set", || e.set());
            assert!(e.is_set(), "not set after set");
        }
        1 => {
            timed("clear", || e.clear());
            assert!(!e.is_set(), "set after clear");
        }
        2 => {
            let t = ms(cur);
            let up = e.is_set();
            let r = timed("wait_timeout", || e.wait_timeout(t));
            assert!(!up || r, "wait_timeout on a set event timed out");
        }
        3 => {
            if e.is_set() {
                timed("wait", || e.wait());
            }
        }
        _ => {
            let _ = timed("wait_timeout(0)", || e.wait_timeout(Duration::ZERO));
        }
    }
}

/// Timed waits (with the other handle not waiting, they break a barrier of 2), abort, reset.
fn barrier_op(b: &Barrier, cur: &mut Cursor<'_>) {
    match cur.u8() % 5 {
        0 => {
            let t = ms(cur);
            match timed("wait_timeout", || b.wait_timeout(t)) {
                Ok(r) => assert!(r.index() < b.parties()),
                Err(BarrierError::Broken | BarrierError::Timeout) => {}
                Err(e) => panic!("wait_timeout: {e:?}"),
            }
        }
        1 => {
            timed("abort", || b.abort());
            assert!(b.is_broken(), "not broken after abort");
        }
        2 => {
            timed("reset", || b.reset());
            assert!(!b.is_broken() && b.n_waiting() == 0, "not whole after reset");
        }
        3 => {
            let _ = (b.n_waiting(), b.is_broken(), b.parties());
        }
        _ => match timed("wait_timeout(0)", || b.wait_timeout(Duration::ZERO)) {
            Ok(_) | Err(BarrierError::Broken | BarrierError::Timeout) => {}
            Err(e) => panic!("wait_timeout(0): {e:?}"),
        },
    }
}

/// `try_lock` or `lock_timeout`, then a nested `lock` (at once: this thread holds it).
fn rlock_op(r: &RLock, cur: &mut Cursor<'_>) {
    let x = cur.u8();
    let res = if x & 1 == 0 {
        timed("try_lock", || r.try_lock())
    } else {
        let t = ms(cur);
        timed("lock_timeout", || r.lock_timeout(t))
    };
    let mut g = match res {
        Ok(g) | Err(LockError::OwnerDied(g)) => g,
        Err(LockError::WouldBlock) if x & 1 == 0 => return,
        Err(LockError::Timeout) if x & 1 == 1 => return,
        Err(LockError::Unrecoverable) => return,
        Err(e) => panic!("lock: unexpected {e:?}"),
    };
    let inner = timed("nested lock", || r.lock()).expect("nested lock of a held RLock");
    if x & 2 != 0 {
        g.mark_consistent();
    }
    timed("guard drop", || drop(inner));
    timed("guard drop", || drop(g));
}

/// What a wait's relock of a healthy lock must give: a clean guard.
fn relock<G>(r: shmproc::LockResult<G>) -> G {
    r.unwrap_or_else(|e| panic!("relock a healthy lock: {e:?}"))
}

/// Notifies, and waits of at most a few ms with the guard of `lock` (a healthy lock).
fn condition_op(c: &Condition, lock: &Lock, cur: &mut Cursor<'_>) {
    match cur.u8() % 6 {
        0 => timed("notify_one", || c.notify_one()),
        1 => {
            let n = u32::from(cur.u8()) * 0x0101_0101;
            timed("notify", || c.notify(n));
        }
        2 => timed("notify_all", || c.notify_all()),
        3 => {
            let t = ms(cur);
            let g = lock.lock().expect("lock a healthy lock");
            let (g, _) = relock(timed("wait_timeout", || c.wait_timeout(g, t)));
            drop(g);
        }
        4 => {
            let t = ms(cur);
            let g = lock.lock().expect("lock a healthy lock");
            let (g, r) = relock(timed("wait_timeout_while", || c.wait_timeout_while(g, t, |_| true)));
            assert!(r.timed_out());
            drop(g);
        }
        _ => {
            let g = lock.lock().expect("lock a healthy lock");
            drop(relock(timed("wait_while(false)", || c.wait_while(g, |_| false))));
        }
    }
}

/// `$slot = None`, then `$slot = $t::open_with(...)` if the open succeeds.
macro_rules! reopen {
    ($slot:expr, $t:ty, $name:expr) => {{
        $slot = None;
        match timed("open", || <$t>::open_with($name, &open_opts())) {
            Ok(h) => $slot = Some(h),
            Err(e) => common::check_open_error(&e),
        }
    }};
}

fuzz_target!(init: common::init(), |data: &[u8]| {
    let mut cur = Cursor::new(data);
    let participants = 2 + u32::from(cur.u8() % 3);
    let cap = 1 + usize::from(cur.u8() % 16);
    let alen = 1 + usize::from(cur.u8() % 8);
    let names = [common::name("pq"), common::name("pv"), common::name("pa")];
    common::remove_files(&[&names[0], &names[1], &names[2]]);
    let copts = Options::new().participants(participants);

    let q0 = Queue::<u64>::create_with(&names[0], cap, &copts).expect("create queue");
    let v0 = Value::<u64>::create_with(&names[1], 5, &copts).expect("create value");
    let a0 = Array::<u32>::create_with(&names[2], alen, 9, &copts).expect("create array");
    let mut q1 = Some(Queue::<u64>::open_with(&names[0], &open_opts()).expect("open queue"));
    let mut v1 = Some(Value::<u64>::open_with(&names[1], &open_opts()).expect("open value"));
    let mut a1 = Some(Array::<u32>::open_with(&names[2], &open_opts()).expect("open array"));
    assert_eq!(a0.len(), alen);

    let files = Files::open(&names);

    // The synchronisation primitives; `sync_names[5]` is the condition's lock, never written.
    let sync_names = ["ps", "pe", "pb", "pr", "pc", "pl"].map(common::name);
    common::remove_files(&sync_names.each_ref().map(String::as_str));
    let s0 = Semaphore::create_with(&sync_names[0], 2, &copts).expect("create semaphore");
    let e0 = Event::create_with(&sync_names[1], &copts).expect("create event");
    let b0 = Barrier::create_with(&sync_names[2], 2, &copts).expect("create barrier");
    let r0 = RLock::create_with(&sync_names[3], &copts).expect("create rlock");
    let c0 = Condition::create_with(&sync_names[4], &copts).expect("create condition");
    let lock = Lock::create_with(&sync_names[5], &copts).expect("create lock");
    let mut s1 = Some(Semaphore::open_with(&sync_names[0], &open_opts()).expect("open semaphore"));
    let mut e1 = Some(Event::open_with(&sync_names[1], &open_opts()).expect("open event"));
    let mut b1 = Some(Barrier::open_with(&sync_names[2], &open_opts()).expect("open barrier"));
    let mut r1 = Some(RLock::open_with(&sync_names[3], &open_opts()).expect("open rlock"));
    let mut c1 = Some(Condition::open_with(&sync_names[4], &open_opts()).expect("open condition"));
    let sync_files = Files::open(&sync_names[..5]);
    // Permits the creator handle holds through guards, across ops.
    let mut held: Vec<SemaphoreGuard<'_>> = Vec::new();

    let mut steps = 0;
    while !cur.is_empty() && steps < 128 {
        steps += 1;
        let op = cur.u8();
        let code = op & 0x0F;
        let second = op & 0x10 != 0;
        if op & 0x20 != 0 {
            trace!("step {steps}: sync op {code} second={second}");
            match code {
                0..=2 => sync_files.scribble_op(code, &mut cur),
                3 | 4 => match (second, &s1) {
                    (true, Some(s)) => semaphore_op(s, None, &mut cur),
                    _ => semaphore_op(&s0, Some(&mut held), &mut cur),
                },
                5 | 6 => event_op(if second { e1.as_ref().unwrap_or(&e0) } else { &e0 }, &mut cur),
                7 | 8 => barrier_op(if second { b1.as_ref().unwrap_or(&b0) } else { &b0 }, &mut cur),
                9 | 10 => rlock_op(if second { r1.as_ref().unwrap_or(&r0) } else { &r0 }, &mut cur),
                11 | 12 => condition_op(if second { c1.as_ref().unwrap_or(&c0) } else { &c0 }, &lock, &mut cur),
                _ => match cur.u8() % 5 {
                    0 => reopen!(s1, Semaphore, &sync_names[0]),
                    1 => reopen!(e1, Event, &sync_names[1]),
                    2 => reopen!(b1, Barrier, &sync_names[2]),
                    3 => reopen!(r1, RLock, &sync_names[3]),
                    _ => reopen!(c1, Condition, &sync_names[4]),
                },
            }
            continue;
        }
        trace!("step {steps}: op {code} second={second}");
        match code {
            0..=2 => {
                // The first three files only, as before the synchronisation primitives.
                files.scribble_op(code, &mut cur);
            }
            3..=8 => match (second, &q1) {
                (true, Some(q)) => queue_op(code, q, &mut cur),
                _ => queue_op(code, &q0, &mut cur),
            },
            9..=11 => match (second, &v1) {
                (true, Some(v)) => value_op(code, v, &mut cur),
                _ => value_op(code, &v0, &mut cur),
            },
            12..=14 => match (second, &a1) {
                (true, Some(a)) => array_op(code, a, &mut cur),
                _ => array_op(code, &a0, &mut cur),
            },
            _ => match cur.u8() % 3 {
                0 => {
                    q1 = None;
                    match timed("open", || Queue::<u64>::open_with(&names[0], &open_opts())) {
                        Ok(q) => q1 = Some(q),
                        Err(e) => common::check_open_error(&e),
                    }
                }
                1 => {
                    v1 = None;
                    match timed("open", || Value::<u64>::open_with(&names[1], &open_opts())) {
                        Ok(v) => v1 = Some(v),
                        Err(e) => common::check_open_error(&e),
                    }
                }
                _ => {
                    a1 = None;
                    match timed("open", || Array::<u32>::open_with(&names[2], &open_opts())) {
                        Ok(a) => a1 = Some(a),
                        Err(e) => common::check_open_error(&e),
                    }
                }
            },
        }
    }
    drop((q1, v1, a1, files));
    timed("drop", || drop((q0, v0, a0)));
    timed("guard drops", || drop(held));
    drop((s1, e1, b1, r1, c1, sync_files));
    timed("drop", || drop((s0, e0, b0, r0, c0, lock)));
    for n in names.iter().chain(&sync_names) {
        if common::exists(n) {
            common::remove_files(&[n]);
            panic!("dropping the creating handle left {n:?} in /dev/shm");
        }
    }
});
