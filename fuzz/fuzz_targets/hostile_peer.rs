//! `hostile_peer`: legitimate operations on a `Queue<u64>`, a `Value<u64>` and an
//! `Array<u32>` (two handles each), interleaved with writes of arbitrary bytes at arbitrary
//! offsets of their `/dev/shm` files, as a buggy or hostile peer of the same user could do.
//!
//! The crate's threat model says such a peer can make answers wrong and stall callers up to
//! their deadlines, but cannot make the library panic, hit undefined behaviour, or wait past
//! a deadline. So: every call here is a `try_*` or `*_timeout` (1 to 5 ms) variant and must
//! return within 2 s with a value or a documented error; nothing may panic or crash. The
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
//! At the end every creator handle is dropped and must unlink its name.

#![no_main]

#[macro_use]
mod common;

use common::{Cursor, timed};
use libfuzzer_sys::fuzz_target;
use shmproc::{Array, GetError, LockError, Options, PutError, Queue, TaskError, Value};
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
    files: [File; 3],
    lens: [u64; 3],
}

impl Files {
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

    let open_rw = |n: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(common::shm_path(n))
            .expect("fuzz harness: open segment file")
    };
    let files = [open_rw(&names[0]), open_rw(&names[1]), open_rw(&names[2])];
    let lens = std::array::from_fn(|i| files[i].metadata().expect("stat").len());
    let files = Files { files, lens };

    let mut steps = 0;
    while !cur.is_empty() && steps < 128 {
        steps += 1;
        let op = cur.u8();
        let code = op & 0x0F;
        let second = op & 0x10 != 0;
        trace!("step {steps}: op {code} second={second}");
        match code {
            0 | 1 => {
                let sel = usize::from(cur.u8() % 3);
                let off = u64::from(cur.u16());
                let n = 1 + usize::from(cur.u8() % 16);
                let bytes = cur.bytes(n);
                files.scribble(sel, off, bytes);
            }
            2 => {
                let sel = usize::from(cur.u8() % 3);
                let off = (u64::from(cur.u16()) * 8) % files.lens[sel];
                let word = cur.u64().to_le_bytes();
                files.scribble(sel, off - off % 8, &word);
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
    for n in &names {
        if common::exists(n) {
            common::remove_files(&[n]);
            panic!("dropping the creating handle left {n:?} in /dev/shm");
        }
    }
});
