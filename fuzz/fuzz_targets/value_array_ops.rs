//! `value_array_ops`: lock / try_lock / lock_timeout / load / store / to_vec / guard reads and
//! writes / flush / mark_consistent / guard drop / "die while holding" / drop-and-reopen on
//! 2-3 handles of one `Value<[u64; 2]>` and 2-3 handles of one `Array<u32>`, every result
//! checked against a model.
//!
//! Input: `[value handles, array handles, array len, initial bytes (16 + 4), op...]`. Each op
//! is one byte `object << 7 | handle << 5 | opcode` plus the operands it reads.
//!
//! Model, per object: the data in shared memory (`shared`) and a lock state:
//! - `Free`: every lock call on any handle returns a clean guard holding `shared`;
//! - `Held { h, died }`: handle `h` holds the one guard (a guard works on a local copy:
//!   `ValueGuard` reads the value when locked and writes it back on drop only if changed
//!   through `DerefMut`, or at `flush`; `ArrayGuard::set` writes at once, indexing through
//!   `DerefMut` works on a snapshot written back at `flush`/drop). Another handle's
//!   `try_lock` is `WouldBlock` and `lock_timeout(0 or 1 ms)` is `Timeout`;
//! - `DeadOwner`: the holder "died" (`mem::forget` of its guard, then its handle dropped, which
//!   frees its participant record so its owner token is dead): the next locker, whichever
//!   call it uses, gets `LockError::OwnerDied(guard)` with the data as last written to shared
//!   memory and `is_owner_died()`; `load`/`store`/`to_vec` return the same error (and `store`
//!   does not write);
//! - `Unrecoverable`: an owner-died guard was dropped without `mark_consistent`; every lock
//!   call fails `Unrecoverable`, for good. `mark_consistent` (which flushes first) makes the
//!   guard a normal one and its drop frees the lock.
//!
//! Only one guard per object exists at a time (a held guard must be dropped or forgotten
//! before its handle is dropped; guards borrow the handle vectors for one "session", and
//! dropping or reopening a handle ends the session). `ArrayGuard`s with a snapshot are never
//! forgotten (the snapshot `Vec` would leak and LeakSanitizer would report it): "die" is then
//! skipped.

#![no_main]

#[macro_use]
mod common;

use common::{Cursor, timed};
use libfuzzer_sys::fuzz_target;
use shmproc::{Array, ArrayGuard, LockError, Options, Value, ValueGuard};
use std::time::Duration;

type V = [u64; 2];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LockM {
    Free,
    Held { h: usize, died: bool },
    DeadOwner,
    Unrecoverable,
}

struct ValM {
    shared: V,
    lock: LockM,
    local: V,
    dirty: bool,
}

struct ArrM {
    shared: Vec<u32>,
    lock: LockM,
    snap: Option<Vec<u32>>,
    dirty: bool,
}

impl ArrM {
    fn snapshot(&mut self) -> &mut Vec<u32> {
        let shared = &self.shared;
        self.snap.get_or_insert_with(|| shared.clone())
    }
    fn flush(&mut self) {
        if self.dirty
            && let Some(s) = &self.snap
        {
            self.shared = s.clone();
        }
        self.dirty = false;
    }
}

struct Models {
    v: ValM,
    a: ArrM,
    step: usize,
}

#[derive(Clone, Copy, Debug)]
enum Obj {
    Value,
    Array,
}

/// Something that needs the handle vectors mutably, so it ends a session.
enum Structural {
    /// Drop handle `h` (its guard was forgotten: the holder "died").
    Die(Obj, usize),
    /// Drop handle `h` if open, then open it again.
    Reopen(Obj, usize),
}

#[derive(Clone, Copy, Debug)]
enum Call {
    Try,
    Timeout(Duration),
    Blocking,
}

/// What a lock call by a handle that does not hold the guard must return.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Clean,
    OwnerDied,
    WouldBlock,
    Timeout,
    Unrecoverable,
}

fn expect(lock: LockM, call: Call) -> Expect {
    match lock {
        LockM::Free => Expect::Clean,
        LockM::Held { .. } => match call {
            Call::Try => Expect::WouldBlock,
            Call::Timeout(_) => Expect::Timeout,
            Call::Blocking => unreachable!("fuzz harness: a blocking lock call while held"),
        },
        LockM::DeadOwner => Expect::OwnerDied,
        LockM::Unrecoverable => Expect::Unrecoverable,
    }
}

fn got<T, G>(r: &Result<T, LockError<G>>) -> Expect {
    match r {
        Ok(_) => Expect::Clean,
        Err(LockError::OwnerDied(_)) => Expect::OwnerDied,
        Err(LockError::WouldBlock) => Expect::WouldBlock,
        Err(LockError::Timeout) => Expect::Timeout,
        Err(LockError::Unrecoverable) => Expect::Unrecoverable,
        Err(_) => panic!("unknown LockError variant"),
    }
}

/// Drops a held value guard, updating the model.
fn release_v(g: &mut Option<ValueGuard<'_, V>>, m: &mut Models) {
    if let Some(g) = g.take() {
        let LockM::Held { died, .. } = m.v.lock else {
            panic!("fuzz harness: value guard without Held model state")
        };
        timed("value guard drop", || drop(g));
        if m.v.dirty {
            m.v.shared = m.v.local;
        }
        m.v.dirty = false;
        m.v.lock = if died { LockM::Unrecoverable } else { LockM::Free };
    }
}

/// Drops a held array guard, updating the model.
fn release_a(g: &mut Option<ArrayGuard<'_, u32>>, m: &mut Models) {
    if let Some(g) = g.take() {
        let LockM::Held { died, .. } = m.a.lock else {
            panic!("fuzz harness: array guard without Held model state")
        };
        timed("array guard drop", || drop(g));
        m.a.flush();
        m.a.snap = None;
        m.a.lock = if died { LockM::Unrecoverable } else { LockM::Free };
    }
}

fn value_lock<'a>(
    vh: &'a [Option<Value<V>>],
    h: usize,
    code: u8,
    vg: &mut Option<ValueGuard<'a, V>>,
    m: &mut Models,
    cur: &mut Cursor<'_>,
) {
    let Some(v) = &vh[h] else { return };
    let step = m.step;
    let held_by_other = matches!(m.v.lock, LockM::Held { h: j, .. } if j != h);
    if matches!(m.v.lock, LockM::Held { h: j, .. } if j == h) {
        return; // one guard per handle: no lock call on the holder
    }
    // Blocking calls wait for a live holder forever: with a holder, use try_lock instead.
    let code = if held_by_other && code >= 3 { 0 } else { code };
    if code == 4 || code == 5 {
        // load / store: lock, read or write, unlock, unless the lock errs.
        let x: V = if code == 5 { [cur.u64(), cur.u64()] } else { [0; 2] };
        let want = expect(m.v.lock, Call::Blocking);
        let r = if code == 4 {
            timed("load", || v.load()).map(Some)
        } else {
            timed("store", || v.store(x)).map(|()| None)
        };
        assert_eq!(
            got(&r),
            want,
            "step {step}: {} on handle {h}, model {:?}",
            if code == 4 { "load" } else { "store" },
            m.v.lock
        );
        match r {
            Ok(Some(y)) => assert_eq!(y, m.v.shared, "step {step}: load"),
            Ok(None) => m.v.shared = x,
            Err(LockError::OwnerDied(g)) => {
                assert!(g.is_owner_died(), "step {step}: owner-died guard says it is not");
                assert_eq!(*g, m.v.shared, "step {step}: owner-died guard data");
                m.v.lock = LockM::Held { h, died: true };
                m.v.local = m.v.shared;
                m.v.dirty = false;
                *vg = Some(g);
            }
            Err(_) => {}
        }
        return;
    }
    let call = match code {
        0 => Call::Try,
        1 | 2 => Call::Timeout(if code == 1 {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        }),
        _ => Call::Blocking,
    };
    let want = expect(m.v.lock, call);
    let r = match call {
        Call::Try => timed("try_lock", || v.try_lock()),
        Call::Timeout(t) => timed("lock_timeout", || v.lock_timeout(t)),
        Call::Blocking => timed("lock", || v.lock()),
    };
    assert_eq!(
        got(&r),
        want,
        "step {step}: value {call:?} on handle {h}, model {:?}",
        m.v.lock
    );
    let (g, died) = match r {
        Ok(g) => (g, false),
        Err(LockError::OwnerDied(g)) => (g, true),
        Err(_) => return,
    };
    assert_eq!(g.is_owner_died(), died, "step {step}: is_owner_died");
    assert_eq!(*g, m.v.shared, "step {step}: a new guard's data");
    m.v.lock = LockM::Held { h, died };
    m.v.local = m.v.shared;
    m.v.dirty = false;
    *vg = Some(g);
}

fn array_lock<'a>(
    ah: &'a [Option<Array<u32>>],
    h: usize,
    code: u8,
    ag: &mut Option<ArrayGuard<'a, u32>>,
    m: &mut Models,
) {
    let Some(a) = &ah[h] else { return };
    let step = m.step;
    let held_by_other = matches!(m.a.lock, LockM::Held { h: j, .. } if j != h);
    if matches!(m.a.lock, LockM::Held { h: j, .. } if j == h) {
        return;
    }
    let code = if held_by_other && code >= 3 { 0 } else { code };
    if code == 4 {
        let want = expect(m.a.lock, Call::Blocking);
        let r = timed("to_vec", || a.to_vec());
        assert_eq!(got(&r), want, "step {step}: to_vec on handle {h}, model {:?}", m.a.lock);
        match r {
            Ok(v) => assert_eq!(v, m.a.shared, "step {step}: to_vec"),
            Err(LockError::OwnerDied(g)) => {
                assert!(g.is_owner_died(), "step {step}: owner-died guard says it is not");
                m.a.lock = LockM::Held { h, died: true };
                m.a.snap = None;
                m.a.dirty = false;
                *ag = Some(g);
            }
            Err(_) => {}
        }
        return;
    }
    let call = match code {
        0 => Call::Try,
        1 => Call::Timeout(Duration::ZERO),
        2 => Call::Timeout(Duration::from_millis(1)),
        _ => Call::Blocking,
    };
    let want = expect(m.a.lock, call);
    let r = match call {
        Call::Try => timed("try_lock", || a.try_lock()),
        Call::Timeout(t) => timed("lock_timeout", || a.lock_timeout(t)),
        Call::Blocking => timed("lock", || a.lock()),
    };
    assert_eq!(
        got(&r),
        want,
        "step {step}: array {call:?} on handle {h}, model {:?}",
        m.a.lock
    );
    let (g, died) = match r {
        Ok(g) => (g, false),
        Err(LockError::OwnerDied(g)) => (g, true),
        Err(_) => return,
    };
    assert_eq!(g.is_owner_died(), died, "step {step}: is_owner_died");
    // (`g.len()` would go through `Deref` and take a snapshot; ask the handle instead.)
    assert_eq!(a.len(), m.a.shared.len(), "step {step}: array len");
    m.a.lock = LockM::Held { h, died };
    m.a.snap = None;
    m.a.dirty = false;
    *ag = Some(g);
}

/// Runs ops while guards may be held; returns when the input ends (None) or an op needs to
/// drop or open a handle. Every guard is released (or forgotten, for "die") before returning.
fn session(
    vh: &[Option<Value<V>>],
    ah: &[Option<Array<u32>>],
    m: &mut Models,
    cur: &mut Cursor<'_>,
) -> Option<Structural> {
    let mut vg: Option<ValueGuard<'_, V>> = None;
    let mut ag: Option<ArrayGuard<'_, u32>> = None;
    let out = loop {
        if cur.is_empty() || m.step >= 256 {
            break None;
        }
        m.step += 1;
        let step = m.step;
        let op = cur.u8();
        let is_array = op & 0x80 != 0;
        let code = op & 0x1F;
        trace!(
            "step {step}: {} op {code} (handle bits {}); value {:?} {:?}, array {:?} {:?} snap {:?}",
            if is_array { "array" } else { "value" },
            (op >> 5) & 3,
            m.v.lock,
            m.v.shared,
            m.a.lock,
            m.a.shared,
            m.a.snap
        );
        if !is_array {
            let h = usize::from((op >> 5) & 3) % vh.len();
            match code % 15 {
                c @ 0..=5 => value_lock(vh, h, c, &mut vg, m, cur),
                14 => break Some(Structural::Reopen(Obj::Value, h)),
                c => {
                    let Some(g) = vg.as_mut() else { continue };
                    let LockM::Held { h: holder, died } = m.v.lock else {
                        panic!("fuzz harness: value guard without Held model state")
                    };
                    match c {
                        6 => assert_eq!(**g, m.v.local, "step {step}: value guard read"),
                        7 => {
                            let x = [cur.u64(), cur.u64()];
                            **g = x;
                            m.v.local = x;
                            m.v.dirty = true;
                        }
                        8 => {
                            g[0] = g[0].wrapping_add(1);
                            m.v.local[0] = m.v.local[0].wrapping_add(1);
                            m.v.dirty = true;
                        }
                        9 => {
                            g.flush();
                            m.v.shared = m.v.local;
                            m.v.dirty = false;
                        }
                        10 => {
                            g.mark_consistent();
                            if died {
                                m.v.shared = m.v.local;
                                m.v.dirty = false;
                                m.v.lock = LockM::Held { h: holder, died: false };
                            }
                            assert!(!g.is_owner_died(), "step {step}: owner died after mark_consistent");
                        }
                        11 => release_v(&mut vg, m),
                        12 => {
                            // Die while holding: no write-back, no unlock; then the handle goes.
                            std::mem::forget(vg.take());
                            m.v.lock = LockM::DeadOwner;
                            m.v.dirty = false;
                            break Some(Structural::Die(Obj::Value, holder));
                        }
                        _ => assert_eq!(g.is_owner_died(), died, "step {step}: is_owner_died"),
                    }
                }
            }
        } else {
            let h = usize::from((op >> 5) & 3) % ah.len();
            match code % 18 {
                c @ 0..=4 => array_lock(ah, h, c, &mut ag, m),
                17 => break Some(Structural::Reopen(Obj::Array, h)),
                c => {
                    let Some(g) = ag.as_mut() else { continue };
                    let LockM::Held { h: holder, died } = m.a.lock else {
                        panic!("fuzz harness: array guard without Held model state")
                    };
                    let len = m.a.shared.len();
                    let i = usize::from(cur.u8()) % len;
                    match c {
                        5 => {
                            let want = m.a.snap.as_ref().unwrap_or(&m.a.shared)[i];
                            assert_eq!(g.get(i), want, "step {step}: get({i})");
                        }
                        6 => {
                            let x = cur.u32();
                            g.set(i, x);
                            m.a.shared[i] = x;
                            if let Some(s) = &mut m.a.snap {
                                s[i] = x;
                            }
                        }
                        7 => {
                            let want = m.a.snapshot()[i];
                            assert_eq!(g[i], want, "step {step}: g[{i}]");
                        }
                        8 => {
                            let x = cur.u32();
                            g[i] = x;
                            m.a.snapshot()[i] = x;
                            m.a.dirty = true;
                        }
                        9 => {
                            let want = m.a.snapshot().clone();
                            assert_eq!(g.to_vec(), want, "step {step}: guard to_vec");
                        }
                        10 => {
                            let mut out = vec![0u32; len - i];
                            g.read_into(i, &mut out);
                            let src = m.a.snap.as_ref().unwrap_or(&m.a.shared);
                            assert_eq!(&out[..], &src[i..], "step {step}: read_into({i})");
                        }
                        11 => {
                            let n = usize::from(cur.u8()) % (len - i + 1);
                            let data: Vec<u32> = (0..n).map(|k| cur.u32() ^ k as u32).collect();
                            g.write_from(i, &data);
                            m.a.shared[i..i + n].copy_from_slice(&data);
                            if let Some(s) = &mut m.a.snap {
                                s[i..i + n].copy_from_slice(&data);
                            }
                        }
                        12 => {
                            g.flush();
                            m.a.flush();
                        }
                        13 => {
                            g.mark_consistent();
                            if died {
                                m.a.flush();
                                m.a.lock = LockM::Held { h: holder, died: false };
                            }
                            assert!(!g.is_owner_died(), "step {step}: owner died after mark_consistent");
                        }
                        14 => release_a(&mut ag, m),
                        15 => {
                            if m.a.snap.is_some() {
                                continue; // forgetting it would leak the snapshot Vec
                            }
                            std::mem::forget(ag.take());
                            m.a.lock = LockM::DeadOwner;
                            m.a.dirty = false;
                            break Some(Structural::Die(Obj::Array, holder));
                        }
                        _ => {
                            assert_eq!(g.is_owner_died(), died, "step {step}: is_owner_died");
                            // Slice length through `Deref`, which takes the snapshot.
                            assert_eq!(g.len(), len, "step {step}: guard len");
                            m.a.snapshot();
                        }
                    }
                }
            }
        }
    };
    release_v(&mut vg, m);
    release_a(&mut ag, m);
    out
}

fuzz_target!(init: common::init(), |data: &[u8]| {
    let mut cur = Cursor::new(data);
    let nv = 2 + usize::from(cur.u8() % 2);
    let na = 2 + usize::from(cur.u8() % 2);
    let alen = 1 + usize::from(cur.u8() % 8);
    let v_init: V = [cur.u64(), cur.u64()];
    let a_fill = cur.u32();
    let (vname, aname) = (common::name("v"), common::name("a"));
    common::remove_files(&[&vname, &aname]);
    let opts = Options::new().participants(3);

    let mut vh: Vec<Option<Value<V>>> =
        vec![Some(Value::create_with(&vname, v_init, &opts.clone().persist(true)).expect("create value"))];
    let mut ah: Vec<Option<Array<u32>>> =
        vec![Some(Array::create_with(&aname, alen, a_fill, &opts.clone().persist(true)).expect("create array"))];
    for _ in 1..nv {
        vh.push(Some(Value::open_with(&vname, &opts).expect("open value")));
    }
    for _ in 1..na {
        ah.push(Some(Array::open_with(&aname, &opts).expect("open array")));
    }
    let mut m = Models {
        v: ValM {
            shared: v_init,
            lock: LockM::Free,
            local: v_init,
            dirty: false,
        },
        a: ArrM {
            shared: vec![a_fill; alen],
            lock: LockM::Free,
            snap: None,
            dirty: false,
        },
        step: 0,
    };

    while let Some(s) = session(&vh, &ah, &mut m, &mut cur) {
        let step = m.step;
        match s {
            Structural::Die(Obj::Value, h) => vh[h] = None,
            Structural::Die(Obj::Array, h) => ah[h] = None,
            Structural::Reopen(Obj::Value, h) => {
                vh[h] = None;
                let v = Value::open_with(&vname, &opts).unwrap_or_else(|e| panic!("step {step}: reopen value: {e}"));
                vh[h] = Some(v);
            }
            Structural::Reopen(Obj::Array, h) => {
                ah[h] = None;
                let a = Array::open_with(&aname, &opts).unwrap_or_else(|e| panic!("step {step}: reopen array: {e}"));
                assert_eq!(a.len(), alen, "step {step}: reopened array length");
                ah[h] = Some(a);
            }
        }
    }
    drop(vh);
    drop(ah);
    for n in [&vname, &aname] {
        assert!(common::exists(n), "a persisted segment's name went away");
        shmproc::remove(n).expect("remove");
        assert!(!common::exists(n), "remove left the file");
    }
});
