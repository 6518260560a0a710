//! `open_hostile_segment`: a segment file whose every byte comes from the fuzzer is opened as
//! one of sixteen handle types and, if the open succeeds, exercised with bounded calls.
//!
//! Input: `[kind, payload, mode, param, bytes...]`
//! - `kind % 8` and `payload % 2` pick the type: Value<u64> / Value<[u8; 3]>, Array<u32> /
//!   Array<f64>, Queue<u64> / Queue<[u8; 16]>, AtomicArray<AtomicU64> / SharedBytes,
//!   Semaphore / BoundedSemaphore, Event / Condition (waited on with a `LockGuard`),
//!   Barrier / RLock, Lock / Condition (waited on with a `ValueGuard`). A condition is used
//!   with a lock or value the target creates afresh, so only the condition's file is hostile.
//! - `mode % 4` builds the file content from `bytes`, using a real segment of that type
//!   (created once per process, 4 participant records, see `template`) so the fuzzer gets
//!   past the magic and layout checks:
//!   0. the bytes alone;
//!   1. the bytes, with their first `param * 2` bytes (at most 256) replaced by the template's
//!      header prefix;
//!   2. the whole template file, with the bytes written over it from offset `param * 8`
//!      (clipped to the file);
//!   3. the template's 256-byte header followed by the bytes.
//! - `mode & 4` opens with `open_or_create` instead of `open`, after an `open` of the same
//!   bytes: when the file says it is initialised (at least a header's 256 bytes, init state
//!   READY) and `open` refused it, `open_or_create` must refuse it too (one validation for
//!   both). A shorter file, or one that does not say READY, is abandoned (no live participant
//!   holds it), so `open_or_create` may remove it and create the name afresh; so may it a
//!   valid one whose flags give the name to its last user (nobody holds it: its users died).
//!
//! Acceptable outcomes: `Ok` or a typed error from every call. A panic, a crash (SIGBUS /
//! SIGSEGV / sanitizer report) or a call that does not return within its timeout is a bug.
//! Calls that wait without a deadline (`lock`, `load`, `store`, `to_vec`) are made only after a
//! `try_lock` found the lock free and released it, since a hostile file may legitimately say
//! that the lock is held by a live owner (the opening handle's own token, for instance). The
//! other deadline-less calls are made only where they return without waiting whatever the
//! bytes: `Event::wait` when `is_set`, `Condition::wait_while` with a false condition, a nested
//! `RLock::lock` while this thread holds it, `Barrier::wait` of a 1-party barrier just reset.
//! `Semaphore::acquire` (which waits for ever) is never called.

#![no_main]

#[macro_use]
mod common;

use common::{Cursor, timed};
use libfuzzer_sys::fuzz_target;
use shmproc::{
    AcquireError, Array, AtomicArray, Barrier, BarrierError, BoundedSemaphore, Condition, ConditionGuard, Event,
    GetError, Lock, LockError, LockResult, Options, PutError, Queue, RLock, ReleaseError, Semaphore, SemaphoreGuard,
    SharedBytes, TaskError, Value,
};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

/// The sixteen handle types, in selector order.
const TYPES: usize = 16;

fn tag(ty: usize) -> String {
    format!("h{ty}")
}

/// The bytes of a real, quiescent segment of each type (index as in `TYPES`).
fn templates() -> &'static [Vec<u8>; TYPES] {
    static T: OnceLock<[Vec<u8>; TYPES]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(template))
}

/// Creates a small segment of type `ty` (persisted), puts some state in it, drops the handle
/// and returns the file's bytes; the name is removed again.
fn template(ty: usize) -> Vec<u8> {
    let name = common::name(&format!("t{ty}"));
    common::remove_files(&[&name]);
    let opts = Options::new().participants(4).persist(true);
    match ty {
        0 => drop(Value::<u64>::create_with(&name, 0x1122_3344_5566_7788, &opts).unwrap()),
        1 => drop(Value::<[u8; 3]>::create_with(&name, [1, 2, 3], &opts).unwrap()),
        2 => drop(Array::<u32>::from_slice_with(&name, &[1, 2, 3, 4], &opts).unwrap()),
        3 => drop(Array::<f64>::from_slice_with(&name, &[0.5, -1.0, 2.0], &opts).unwrap()),
        4 => {
            let q = Queue::<u64>::create_with(&name, 4, &opts).unwrap();
            q.try_put(7).unwrap();
            q.try_put(8).unwrap();
            q.try_put(9).unwrap();
            assert_eq!(q.try_get(), Ok(7));
            q.task_done().unwrap();
        }
        5 => {
            let q = Queue::<[u8; 16]>::create_with(&name, 3, &opts).unwrap();
            q.try_put([0xAB; 16]).unwrap();
        }
        6 => {
            let a = AtomicArray::<AtomicU64>::create_with(&name, 5, &opts).unwrap();
            a[1].store(0x0102_0304, Ordering::Relaxed);
        }
        7 => {
            let b = SharedBytes::create_with(&name, 300, &opts).unwrap();
            b.write(7, b"template").unwrap();
        }
        8 => {
            let s = Semaphore::create_with(&name, 2, &opts).unwrap();
            s.try_acquire().unwrap().forget();
            s.release().unwrap();
            s.release().unwrap();
        }
        9 => {
            let s = BoundedSemaphore::create_with(&name, 3, &opts).unwrap();
            s.try_acquire().unwrap().forget();
        }
        10 => {
            let e = Event::create_with(&name, &opts).unwrap();
            e.set();
            e.clear();
            e.set();
        }
        11 | 15 => drop(Condition::create_with(&name, &opts).unwrap()),
        12 => {
            let b = Barrier::create_with(&name, 2, &opts).unwrap();
            b.abort();
            b.reset();
        }
        13 => {
            let l = RLock::create_with(&name, &opts).unwrap();
            let g = l.lock().unwrap();
            drop(l.lock().unwrap());
            drop(g);
        }
        _ => drop(Lock::create_with(&name, &opts).unwrap().lock().unwrap()),
    }
    let bytes = std::fs::read(common::shm_path(&name)).unwrap();
    shmproc::remove(&name).unwrap();
    assert!(bytes.len() >= 256, "template {ty} is {} bytes", bytes.len());
    bytes
}

fn content(ty: usize, mode: u8, param: u8, bytes: &[u8]) -> Vec<u8> {
    let t = &templates()[ty];
    match mode % 4 {
        0 => bytes.to_vec(),
        1 => {
            let k = (usize::from(param) * 2).min(256);
            let mut c = bytes.to_vec();
            if c.len() < k {
                c.resize(k, 0);
            }
            c[..k].copy_from_slice(&t[..k]);
            c
        }
        2 => {
            let mut c = t.clone();
            let off = (usize::from(param) * 8) % c.len();
            let n = bytes.len().min(c.len() - off);
            c[off..off + n].copy_from_slice(&bytes[..n]);
            c
        }
        _ => {
            let mut c = t[..256].to_vec();
            c.extend_from_slice(bytes);
            c
        }
    }
}

fn write_file(name: &str, content: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(common::shm_path(name))
        .expect("fuzz harness: cannot write the segment file");
    f.write_all(content).expect("fuzz harness: write");
}

fn opts() -> Options {
    Options::new().init_timeout(MS)
}

/// try_lock, then (only if the lock turned out free) the blocking shorthands; lock_timeout.
macro_rules! exercise_locked {
    ($h:expr, $cur:expr, $rw:expr) => {{
        let h = $h;
        let mut free = false;
        match timed("try_lock", || h.try_lock()) {
            Ok(mut g) => {
                free = !g.is_owner_died();
                $rw(&mut g, &mut $cur);
            }
            Err(LockError::OwnerDied(mut g)) => {
                assert!(g.is_owner_died());
                $rw(&mut g, &mut $cur);
                if $cur.u8() & 1 == 1 {
                    g.mark_consistent();
                    assert!(!g.is_owner_died());
                    free = true;
                }
            }
            Err(LockError::WouldBlock) | Err(LockError::Unrecoverable) => {}
            Err(e) => panic!("try_lock: unexpected {e:?}"),
        }
        match timed("lock_timeout", || h.lock_timeout(MS)) {
            Ok(mut g) => $rw(&mut g, &mut $cur),
            Err(LockError::OwnerDied(mut g)) => {
                $rw(&mut g, &mut $cur);
                g.mark_consistent();
            }
            Err(LockError::Timeout) | Err(LockError::Unrecoverable) => {}
            Err(e) => panic!("lock_timeout: unexpected {e:?}"),
        }
        free
    }};
}

fn exercise_value<T: bytemuck::Pod + PartialEq + std::fmt::Debug>(v: &Value<T>, cur: &mut Cursor<'_>) {
    let rw = |g: &mut shmproc::ValueGuard<'_, T>, cur: &mut Cursor<'_>| {
        let before: T = **g;
        trace!("guard: value {before:?}, owner died {}", g.is_owner_died());
        match cur.u8() % 3 {
            0 => {}
            1 => {
                let mut x = before;
                bytemuck::bytes_of_mut(&mut x)
                    .iter_mut()
                    .for_each(|b| *b = b.wrapping_add(1));
                **g = x;
            }
            _ => g.flush(),
        }
    };
    let free = exercise_locked!(v, *cur, rw);
    if free {
        // Nobody else writes this file: the lock is free (or unrecoverable), so these return.
        let x = match timed("load", || v.load()) {
            Ok(x) => Some(x),
            Err(LockError::Unrecoverable) => None,
            Err(e) => panic!("load after a free try_lock: {e:?}"),
        };
        if let Some(x) = x {
            timed("store", || v.store(x)).expect("store after load");
            assert_eq!(timed("load", || v.load()).expect("load"), x);
        }
    }
}

fn exercise_array<T: bytemuck::Pod + std::fmt::Debug>(a: &Array<T>, cur: &mut Cursor<'_>) {
    let len = a.len();
    assert!(len >= 1, "an opened Array has length {len}");
    let rw = |g: &mut shmproc::ArrayGuard<'_, T>, cur: &mut Cursor<'_>| {
        let i = usize::from(cur.u8()) % len;
        let x = g.get(i);
        trace!("guard: [{i}] = {x:?} of {len}, owner died {}", g.is_owner_died());
        match cur.u8() % 4 {
            0 => g.set(i, x),
            1 => {
                let s = g.to_vec();
                assert_eq!(s.len(), len);
            }
            2 => {
                g[i] = x;
                g.flush();
            }
            _ => {}
        }
    };
    let free = exercise_locked!(a, *cur, rw);
    if free {
        match timed("to_vec", || a.to_vec()) {
            Ok(v) => assert_eq!(v.len(), len),
            Err(LockError::Unrecoverable) => {}
            Err(e) => panic!("to_vec after a free try_lock: {e:?}"),
        }
    }
}

fn exercise_queue<T: bytemuck::Pod>(q: &Queue<T>, cur: &mut Cursor<'_>, item: T) {
    let cap = q.capacity();
    assert!(cap >= 1, "an opened Queue has capacity {cap}");
    for _ in 0..8 {
        let op = cur.u8() % 12;
        trace!("queue op {op}, len {}", q.len());
        match op {
            0 => match timed("try_put", || q.try_put(item)) {
                Ok(()) | Err(PutError::Full(_)) | Err(PutError::Closed(_)) | Err(PutError::Lost(_)) => {}
                Err(e) => panic!("try_put: unexpected {e:?}"),
            },
            1 => match timed("put_timeout", || q.put_timeout(item, MS)) {
                Ok(()) | Err(PutError::Timeout(_)) | Err(PutError::Closed(_)) | Err(PutError::Lost(_)) => {}
                Err(e) => panic!("put_timeout: unexpected {e:?}"),
            },
            2 => match timed("try_get", || q.try_get()) {
                Ok(_) | Err(GetError::Empty) | Err(GetError::Closed) => {}
                Err(e) => panic!("try_get: unexpected {e:?}"),
            },
            3 => match timed("get_timeout", || q.get_timeout(MS)) {
                Ok(_) | Err(GetError::Timeout) | Err(GetError::Closed) => {}
                Err(e) => panic!("get_timeout: unexpected {e:?}"),
            },
            4 => {
                let n = timed("len", || q.len());
                assert!(n <= cap, "len {n} > capacity {cap}");
            }
            5 => {
                let _ = timed("is_empty", || q.is_empty());
            }
            6 => {
                let _ = timed("is_full", || q.is_full());
            }
            7 => match timed("task_done", || q.task_done()) {
                Ok(()) | Err(TaskError::TooManyTaskDone) => {}
                Err(e) => panic!("task_done: unexpected {e:?}"),
            },
            8 => match timed("join_timeout", || q.join_timeout(MS)) {
                Ok(()) | Err(TaskError::Timeout) => {}
                Err(e) => panic!("join_timeout: unexpected {e:?}"),
            },
            9 => {
                timed("close", || q.close());
                assert!(q.is_closed());
            }
            10 => {
                let _ = q.is_closed();
            }
            _ => break,
        }
    }
}

/// Every element of an opened atomic array is an atomic whatever its bytes: any operation
/// returns.
fn exercise_atomics(a: &AtomicArray<AtomicU64>, cur: &mut Cursor<'_>) {
    let len = a.len();
    assert!(len >= 1 && a.as_slice().len() == len);
    for _ in 0..4 {
        let i = usize::from(cur.u8()) % (len + 1);
        match a.get(i) {
            Some(e) => {
                let before = e.fetch_add(u64::from(cur.u8()), Ordering::Relaxed);
                let _ = e.compare_exchange(before, 0, Ordering::SeqCst, Ordering::Relaxed);
            }
            None => assert_eq!(i, len),
        }
    }
}

/// A byte block: copies within range succeed, past the end fail with a range error.
fn exercise_bytes(b: &SharedBytes, cur: &mut Cursor<'_>) {
    let len = b.len();
    assert!(len >= 1 && b.as_atomic_bytes().len() == len && b.as_atomic_u64s().len() == len / 8);
    for _ in 0..4 {
        let off = usize::from(cur.u8()) * 4;
        let n = usize::from(cur.u8());
        let fits = off + n <= len;
        let mut buf = vec![0u8; n];
        assert_eq!(b.read(off, &mut buf).is_ok(), fits);
        assert_eq!(b.write(off, &buf).is_ok(), fits);
    }
}

/// The two semaphore types' shared methods (they have no common trait in the crate).
trait Permits {
    /// Bounded: `release` may fail with `AboveBound`, never `Overflow`.
    const BOUNDED: bool;
    fn try_acquire(&self) -> Result<SemaphoreGuard<'_>, AcquireError>;
    fn acquire_timeout(&self, t: Duration) -> Result<SemaphoreGuard<'_>, AcquireError>;
    fn release(&self) -> Result<(), ReleaseError>;
    fn available(&self) -> u32;
    fn initial(&self) -> u32;
}

macro_rules! permits {
    ($t:ty, $bounded:expr) => {
        impl Permits for $t {
            const BOUNDED: bool = $bounded;
            fn try_acquire(&self) -> Result<SemaphoreGuard<'_>, AcquireError> {
                <$t>::try_acquire(self)
            }
            fn acquire_timeout(&self, t: Duration) -> Result<SemaphoreGuard<'_>, AcquireError> {
                <$t>::acquire_timeout(self, t)
            }
            fn release(&self) -> Result<(), ReleaseError> {
                <$t>::release(self)
            }
            fn available(&self) -> u32 {
                <$t>::available(self)
            }
            fn initial(&self) -> u32 {
                <$t>::initial(self)
            }
        }
    };
}
permits!(Semaphore, false);
permits!(BoundedSemaphore, true);

/// Takes permits (kept in up to 4 guards), gives them back, forgets them, releases; every
/// call is a `try_` or 1 ms form, and guard drops (`give`) must return too.
fn exercise_semaphore<S: Permits>(s: &S, cur: &mut Cursor<'_>) {
    let initial = s.initial();
    let mut held: Vec<SemaphoreGuard<'_>> = Vec::new();
    for _ in 0..8 {
        let op = cur.u8() % 8;
        trace!("semaphore op {op}, available {}, {} guards", s.available(), held.len());
        let got = match op {
            0 => match timed("try_acquire", || s.try_acquire()) {
                Ok(g) => Some(g),
                Err(AcquireError::WouldBlock) => None,
                Err(e) => panic!("try_acquire: unexpected {e:?}"),
            },
            1 => match timed("acquire_timeout", || s.acquire_timeout(MS)) {
                Ok(g) => Some(g),
                Err(AcquireError::Timeout) => None,
                Err(e) => panic!("acquire_timeout: unexpected {e:?}"),
            },
            2 => {
                match timed("release", || s.release()) {
                    Ok(()) | Err(ReleaseError::Contended) => {}
                    Err(ReleaseError::AboveBound { bound }) => {
                        assert!(S::BOUNDED && bound == initial, "AboveBound {{ {bound} }} of {initial}")
                    }
                    Err(ReleaseError::Overflow) => assert!(!S::BOUNDED, "a bounded semaphore overflowed"),
                    Err(e) => panic!("release: unexpected {e:?}"),
                }
                None
            }
            3 => {
                if let Some(g) = held.pop() {
                    timed("guard drop", || drop(g));
                }
                None
            }
            4 => {
                if let Some(g) = held.pop() {
                    trace!("forget {g:?}");
                    timed("forget", || g.forget());
                }
                None
            }
            5 => {
                let _ = timed("available", || s.available());
                assert_eq!(s.initial(), initial);
                None
            }
            6 => {
                timed("drop all", || held.clear());
                None
            }
            _ => break,
        };
        if let Some(g) = got {
            if held.len() < 4 {
                held.push(g);
            } else {
                timed("guard drop", || drop(g));
            }
        }
    }
    timed("guard drops", || drop(held));
}

/// Every bit pattern of an event's word is valid: `set` raises the flag, `clear` lowers it,
/// whatever the rest of the word says.
fn exercise_event(e: &Event, cur: &mut Cursor<'_>) {
    for _ in 0..8 {
        let op = cur.u8() % 6;
        trace!("event op {op}, set {}", e.is_set());
        match op {
            0 => {
                timed("set", || e.set());
                assert!(e.is_set(), "not set after set");
            }
            1 => {
                timed("clear", || e.clear());
                assert!(!e.is_set(), "set after clear");
            }
            2 => {
                let up = e.is_set();
                let r = timed("wait_timeout", || e.wait_timeout(MS));
                assert!(!up || r, "wait_timeout on a set event timed out");
            }
            3 => {
                // Returns at once on a set flag (nobody else writes this file).
                if e.is_set() {
                    timed("wait", || e.wait());
                }
            }
            4 => {
                let _ = timed("wait_timeout(0)", || e.wait_timeout(Duration::ZERO));
            }
            _ => break,
        }
    }
}

/// A condition with a hostile file, used with the guard `lock` gives of a healthy lock this
/// process created: relocking never fails, and every wait has a deadline or a false
/// condition.
fn exercise_condition<G: ConditionGuard>(c: &Condition, lock: impl Fn() -> LockResult<G>, cur: &mut Cursor<'_>) {
    let mut guard = Some(lock().expect("fuzz harness: lock a fresh lock"));
    for _ in 0..8 {
        let op = cur.u8() % 8;
        trace!("condition op {op}");
        match op {
            0 => timed("notify_one", || c.notify_one()),
            1 => {
                let n = u32::from(cur.u8()) * 0x0101_0101;
                timed("notify", || c.notify(n));
            }
            2 => timed("notify_all", || c.notify_all()),
            3 => {
                let g = guard.take().unwrap();
                let (g, _) = timed("wait_timeout", || c.wait_timeout(g, MS)).expect("wait_timeout: relock");
                guard = Some(g);
            }
            4 => {
                let g = guard.take().unwrap();
                let (g, r) = timed("wait_timeout_while(true)", || c.wait_timeout_while(g, MS, |_| true))
                    .expect("wait_timeout_while: relock");
                assert!(r.timed_out(), "wait_timeout_while(true) returned without timing out");
                guard = Some(g);
            }
            5 => {
                let g = guard.take().unwrap();
                let (g, r) = timed("wait_timeout_while(false)", || c.wait_timeout_while(g, MS, |_| false))
                    .expect("wait_timeout_while: relock");
                assert!(!r.timed_out());
                guard = Some(g);
            }
            6 => {
                let g = guard.take().unwrap();
                guard = Some(timed("wait_while(false)", || c.wait_while(g, |_| false)).expect("wait_while"));
            }
            _ => break,
        }
    }
}

/// Barrier: timed waits (which break a barrier of several parties), abort, reset; after a
/// reset the barrier is whole, and a 1-party barrier passes at once.
fn exercise_barrier(b: &Barrier, cur: &mut Cursor<'_>) {
    let parties = b.parties();
    assert!(
        (1..=shmproc::MAX_PARTIES).contains(&parties),
        "an opened Barrier has {parties} parties"
    );
    for _ in 0..8 {
        let op = cur.u8() % 7;
        trace!("barrier op {op}, waiting {}, broken {}", b.n_waiting(), b.is_broken());
        match op {
            0 => match timed("wait_timeout", || b.wait_timeout(MS)) {
                Ok(r) => assert!(r.index() < parties),
                Err(BarrierError::Broken | BarrierError::Timeout) => {}
                Err(e) => panic!("wait_timeout: unexpected {e:?}"),
            },
            1 => {
                timed("abort", || b.abort());
                assert!(b.is_broken(), "not broken after abort");
            }
            2 => {
                timed("reset", || b.reset());
                assert!(!b.is_broken() && b.n_waiting() == 0, "not whole after reset");
                if parties == 1 {
                    let r = timed("wait (1 party)", || b.wait()).expect("1-party wait after reset");
                    assert!(r.is_leader() && r.index() == 0);
                }
            }
            3 => {
                let _ = (b.n_waiting(), b.is_broken());
            }
            4 => match timed("wait_timeout(0)", || b.wait_timeout(Duration::ZERO)) {
                Ok(_) | Err(BarrierError::Broken | BarrierError::Timeout) => {}
                Err(e) => panic!("wait_timeout(0): unexpected {e:?}"),
            },
            _ => break,
        }
    }
}

/// The guard of a `Lock` (nothing to read or write).
fn lock_rw(g: &mut shmproc::LockGuard<'_>, _: &mut Cursor<'_>) {
    trace!("guard: owner died {}", g.is_owner_died());
}

fn exercise_lock(l: &Lock, cur: &mut Cursor<'_>) {
    if exercise_locked!(l, *cur, lock_rw) {
        match timed("lock", || l.lock()) {
            Ok(g) => assert!(!g.is_owner_died()),
            Err(LockError::Unrecoverable) => {}
            Err(e) => panic!("lock after a free try_lock: {e:?}"),
        }
    }
}

/// An `RLock` guard: this thread locks again at once, whatever the shared word says.
fn rlock_rw(l: &RLock) -> impl Fn(&mut shmproc::RLockGuard<'_>, &mut Cursor<'_>) + '_ {
    move |g, cur| {
        trace!("guard: owner died {}", g.is_owner_died());
        match cur.u8() % 4 {
            0 => drop(timed("nested lock", || l.lock()).expect("nested lock")),
            1 => drop(timed("nested try_lock", || l.try_lock()).expect("nested try_lock")),
            2 => {
                let a = timed("nested lock_timeout", || l.lock_timeout(MS)).expect("nested lock_timeout");
                let b = l.lock().expect("nested lock");
                drop(a);
                drop(b);
            }
            _ => {}
        }
    }
}

fn exercise_rlock(l: &RLock, cur: &mut Cursor<'_>) {
    if exercise_locked!(l, *cur, rlock_rw(l)) {
        match timed("lock", || l.lock()) {
            Ok(g) => assert!(!g.is_owner_died()),
            Err(LockError::Unrecoverable) => {}
            Err(e) => panic!("lock after a free try_lock: {e:?}"),
        }
    }
}

/// Opens `name` as type `ty` (with `open`, or `open_or_create` when `or_create`) and, if that
/// succeeds, exercises the handle with `cur`; whether the open succeeded.
fn open_and_exercise(ty: usize, name: &str, or_create: bool, cur: &mut Cursor<'_>) -> bool {
    macro_rules! open {
        ($open:expr, $or_create:expr) => {
            match timed("open", || if or_create { $or_create } else { $open }) {
                Ok(h) => {
                    trace!("open (or create: {or_create}): Ok({h:?})");
                    h
                }
                Err(e) => {
                    trace!("open (or create: {or_create}): {e}");
                    common::check_open_error(&e);
                    return false;
                }
            }
        };
    }
    let o = opts();
    match ty {
        0 => exercise_value(
            &open!(
                Value::<u64>::open_with(name, &o),
                Value::<u64>::open_or_create_with(name, 3, &o)
            ),
            cur,
        ),
        1 => exercise_value(
            &open!(
                Value::<[u8; 3]>::open_with(name, &o),
                Value::<[u8; 3]>::open_or_create_with(name, [3; 3], &o)
            ),
            cur,
        ),
        2 => exercise_array(
            &open!(
                Array::<u32>::open_with(name, &o),
                Array::<u32>::open_or_create_with(name, 4, 3, &o)
            ),
            cur,
        ),
        3 => exercise_array(
            &open!(
                Array::<f64>::open_with(name, &o),
                Array::<f64>::open_or_create_with(name, 3, 0.5, &o)
            ),
            cur,
        ),
        4 => exercise_queue(
            &open!(
                Queue::<u64>::open_with(name, &o),
                Queue::<u64>::open_or_create_with(name, 4, &o)
            ),
            cur,
            42u64,
        ),
        5 => exercise_queue(
            &open!(
                Queue::<[u8; 16]>::open_with(name, &o),
                Queue::<[u8; 16]>::open_or_create_with(name, 3, &o)
            ),
            cur,
            [7u8; 16],
        ),
        6 => exercise_atomics(
            &open!(
                AtomicArray::<AtomicU64>::open_with(name, &o),
                AtomicArray::<AtomicU64>::open_or_create_with(name, 5, &o)
            ),
            cur,
        ),
        7 => exercise_bytes(
            &open!(
                SharedBytes::open_with(name, &o),
                SharedBytes::open_or_create_with(name, 300, &o)
            ),
            cur,
        ),
        8 => exercise_semaphore(
            &open!(
                Semaphore::open_with(name, &o),
                Semaphore::open_or_create_with(name, 2, &o)
            ),
            cur,
        ),
        9 => exercise_semaphore(
            &open!(
                BoundedSemaphore::open_with(name, &o),
                BoundedSemaphore::open_or_create_with(name, 3, &o)
            ),
            cur,
        ),
        10 => exercise_event(
            &open!(Event::open_with(name, &o), Event::open_or_create_with(name, &o)),
            cur,
        ),
        11 => {
            let c = open!(Condition::open_with(name, &o), Condition::open_or_create_with(name, &o));
            let lock = Lock::create(&common::name("cl")).expect("fuzz harness: create a lock");
            exercise_condition(&c, || lock.lock(), cur);
        }
        12 => exercise_barrier(
            &open!(Barrier::open_with(name, &o), Barrier::open_or_create_with(name, 2, &o)),
            cur,
        ),
        13 => exercise_rlock(
            &open!(RLock::open_with(name, &o), RLock::open_or_create_with(name, &o)),
            cur,
        ),
        14 => exercise_lock(
            &open!(Lock::open_with(name, &o), Lock::open_or_create_with(name, &o)),
            cur,
        ),
        _ => {
            let c = open!(Condition::open_with(name, &o), Condition::open_or_create_with(name, &o));
            let value = Value::<u64>::create(&common::name("cv"), 0).expect("fuzz harness: create a value");
            exercise_condition(&c, || value.lock(), cur);
        }
    }
    true
}

/// `init_state` value of a published segment (`segment/header.rs`).
const INIT_READY: u32 = 0x5245_4459;

/// Size of the segment header (`segment/header.rs`).
const HEADER_SIZE: usize = 256;

fuzz_target!(init: common::init(), |data: &[u8]| {
    let mut cur = Cursor::new(data);
    let kind = usize::from(cur.u8() % 8);
    let payload = usize::from(cur.u8() % 2);
    let ty = kind * 2 + payload;
    let mode = cur.u8();
    let param = cur.u8();
    // The last 16 bytes (if there are that many beyond the header fields) drive the
    // operations; the rest is the file.
    let body = cur.rest();
    let split = body.len().saturating_sub(16);
    let (file_bytes, ops) = body.split_at(split);
    let c = content(ty, mode, param, file_bytes);
    trace!("type {ty}, mode {}, file of {} bytes, {} op bytes", mode % 4, c.len(), ops.len());

    let name = common::name(&tag(ty));
    write_file(&name, &c);
    let mut ops = Cursor::new(ops);
    // Header flags (offset 100), bit 0: the name goes with its last user, so a handle that
    // opened it and leaves last removes it.
    let last_user_removes = c.get(100).is_some_and(|b| b & 1 != 0);
    if mode & 4 == 0 {
        open_and_exercise(ty, &name, false, &mut ops);
        // `open` never owns the name: the file must still be there (we remove it), unless
        // the header gives the name to its last user and our handle was that.
        assert!(
            common::exists(&name) || last_user_removes,
            "open removed a name it did not create"
        );
    } else {
        let opened = open_and_exercise(ty, &name, false, &mut Cursor::new(&[]));
        // The open registered (and deregistered) a participant: lay the same bytes again.
        write_file(&name, &c);
        // Published means sized to at least a header and marked READY; a shorter file is a
        // creator that died before sizing it, which `open_or_create` may remove.
        let ready = c.len() >= HEADER_SIZE && c.get(8..12) == Some(&INIT_READY.to_le_bytes()[..]);
        let ok = open_and_exercise(ty, &name, true, &mut ops);
        assert!(
            !(ready && !opened && ok),
            "open_or_create accepted a published segment that open refused"
        );
    }
    common::remove_files(&[&name]);
    assert!(!common::exists(&name));
});
