//! `queue_ops_vs_model`: a `Queue<u64>` driven through several handles by a sequence of
//! operations, each result checked against a model.
//!
//! Input: `[cap, handles, op...]`; capacity `1 + cap % 8`, `1 + handles % 3` extra handles
//! beside the creating one (4 participant records: every handle holds one). Each op byte is
//! `handle << 4 | opcode` (handle taken modulo the number of handles).
//!
//! The model (single process, so the queue is quiescent between calls and every answer must
//! be exact):
//! - items: a FIFO `VecDeque<u64>` of capacity `cap`; `closed`; `in_hand[h]` per handle;
//! - `try_put(v)`: `Closed(v)` if closed (checked before fullness), else `Full(v)` iff full,
//!   else `Ok` and `v` is appended. `put_timeout(v, 0 or 1 ms)`: the same with `Timeout(v)` for
//!   `Full`. Every error hands `v` back;
//! - `try_get` / `get_timeout(0 or 1 ms)`: the oldest item if any (also after close: gets
//!   drain), and `in_hand[h] += 1`; else `Closed` if closed, else `Empty` / `Timeout`;
//! - `task_done` on handle h: `TooManyTaskDone` iff `in_hand[h] == 0`, else `in_hand[h] -= 1`;
//! - `join_timeout`: `Ok` iff no item is in the queue and no live handle has `in_hand > 0`
//!   (a dropped handle's count dies with its participant record), else `Timeout`;
//! - `len`, `is_empty`, `is_full`, `capacity`, `is_closed`: exact;
//! - drop-and-reopen (with `open`, or `open_or_create` with another capacity, which must keep
//!   the existing one): the new handle starts with `in_hand == 0`; nothing else changes.
//!
//! Any divergence panics with the step, the op and both answers.

#![no_main]

#[macro_use]
mod common;

use common::{Cursor, timed};
use libfuzzer_sys::fuzz_target;
use shmproc::{GetError, Options, PutError, Queue, TaskError};
use std::collections::VecDeque;
use std::time::Duration;

fn open_opts() -> Options {
    Options::new().participants(4)
}

struct Model {
    cap: usize,
    items: VecDeque<u64>,
    closed: bool,
    in_hand: Vec<u64>,
}

impl Model {
    fn full(&self) -> bool {
        self.items.len() == self.cap
    }
    fn join_ready(&self) -> bool {
        self.items.is_empty() && self.in_hand.iter().all(|&n| n == 0)
    }
}

fn check_put(step: usize, what: &str, r: Result<(), PutError<u64>>, v: u64, m: &mut Model, timeout: bool) {
    let expect = if m.closed {
        "Closed"
    } else if m.full() {
        if timeout { "Timeout" } else { "Full" }
    } else {
        "Ok"
    };
    let got = match &r {
        Ok(()) => "Ok",
        Err(PutError::Full(_)) => "Full",
        Err(PutError::Closed(_)) => "Closed",
        Err(PutError::Timeout(_)) => "Timeout",
        Err(PutError::Lost(_)) => "Lost",
        Err(_) => "other",
    };
    assert_eq!(
        got,
        expect,
        "step {step}: {what}({v}) with {} of {} items, closed={}",
        m.items.len(),
        m.cap,
        m.closed
    );
    match r {
        Ok(()) => m.items.push_back(v),
        Err(e) => assert_eq!(e.into_inner(), v, "step {step}: {what} handed back another item"),
    }
}

fn check_get(step: usize, what: &str, r: Result<u64, GetError>, h: usize, m: &mut Model, timeout: bool) {
    match (m.items.front().copied(), r) {
        (Some(want), Ok(got)) => {
            assert_eq!(
                got, want,
                "step {step}: {what} returned {got}, model's oldest is {want}"
            );
            m.items.pop_front();
            m.in_hand[h] += 1;
        }
        (None, Err(GetError::Closed)) if m.closed => {}
        (None, Err(GetError::Empty)) if !m.closed && !timeout => {}
        (None, Err(GetError::Timeout)) if !m.closed && timeout => {}
        (want, got) => panic!(
            "step {step}: {what} on handle {h} gave {got:?}; model: oldest {want:?}, closed={}",
            m.closed
        ),
    }
}

fn observe(step: usize, q: &Queue<u64>, m: &Model) {
    let n = q.len();
    assert_eq!(n, m.items.len(), "step {step}: len");
    assert_eq!(q.is_empty(), m.items.is_empty(), "step {step}: is_empty (len {n})");
    assert_eq!(q.is_full(), m.full(), "step {step}: is_full (len {n}, cap {})", m.cap);
    assert_eq!(q.capacity(), m.cap, "step {step}: capacity");
    assert_eq!(q.is_closed(), m.closed, "step {step}: is_closed");
}

fuzz_target!(init: common::init(), |data: &[u8]| {
    let mut cur = Cursor::new(data);
    let cap = 1 + usize::from(cur.u8() % 8);
    let nh = 2 + usize::from(cur.u8() % 3);
    let name = common::name("q");
    common::remove_files(&[&name]);

    let creator = Queue::<u64>::create_with(&name, cap, &open_opts().persist(true)).expect("create");
    assert!(!creator.owns_name(), "persisted creator owns its name");
    let mut handles: Vec<Option<Queue<u64>>> = vec![Some(creator)];
    for _ in 1..nh {
        handles.push(Some(Queue::<u64>::open_with(&name, &open_opts()).expect("open extra handle")));
    }
    let mut m = Model {
        cap,
        items: VecDeque::new(),
        closed: false,
        in_hand: vec![0; nh],
    };
    let zero = Duration::ZERO;
    let ms = Duration::from_millis(1);

    let mut step = 0usize;
    while !cur.is_empty() && step < 256 {
        step += 1;
        let op = cur.u8();
        let h = usize::from(op >> 4) % nh;
        let v = ((step as u64) << 8) | h as u64;
        let code = op & 0x0F;
        trace!(
            "step {step}: handle {h} op {code}; model {:?} closed={} in_hand={:?}",
            m.items, m.closed, m.in_hand
        );
        if code == 11 {
            // Drop handle h, then open it again.
            handles[h] = None;
            m.in_hand[h] = 0;
            let q = if cur.u8() & 1 == 0 {
                Queue::<u64>::open_with(&name, &open_opts())
            } else {
                Queue::<u64>::open_or_create_with(&name, cap % 8 + 1, &open_opts())
            };
            let q = q.unwrap_or_else(|e| panic!("step {step}: reopen handle {h}: {e}"));
            assert!(!q.owns_name(), "step {step}: a reopened handle owns the name");
            handles[h] = Some(q);
            continue;
        }
        let q = handles[h].as_ref().expect("every handle is open between steps");
        match code {
            0 => check_put(step, "try_put", timed("try_put", || q.try_put(v)), v, &mut m, false),
            1 => check_put(step, "put_timeout(0)", timed("put", || q.put_timeout(v, zero)), v, &mut m, true),
            2 => check_put(step, "put_timeout(1ms)", timed("put", || q.put_timeout(v, ms)), v, &mut m, true),
            3 => check_get(step, "try_get", timed("try_get", || q.try_get()), h, &mut m, false),
            4 => check_get(step, "get_timeout(0)", timed("get", || q.get_timeout(zero)), h, &mut m, true),
            5 => check_get(step, "get_timeout(1ms)", timed("get", || q.get_timeout(ms)), h, &mut m, true),
            6 => {
                timed("close", || q.close());
                m.closed = true;
            }
            7 => {
                let r = timed("task_done", || q.task_done());
                if m.in_hand[h] == 0 {
                    assert_eq!(r, Err(TaskError::TooManyTaskDone), "step {step}: task_done on handle {h}");
                } else {
                    assert_eq!(r, Ok(()), "step {step}: task_done on handle {h} with {} in hand", m.in_hand[h]);
                    m.in_hand[h] -= 1;
                }
            }
            8 | 9 => {
                let t = if code == 8 { zero } else { ms };
                let r = timed("join_timeout", || q.join_timeout(t));
                let want = if m.join_ready() { Ok(()) } else { Err(TaskError::Timeout) };
                assert_eq!(
                    r, want,
                    "step {step}: join_timeout({t:?}) on handle {h}; model: {} items, in_hand {:?}",
                    m.items.len(),
                    m.in_hand
                );
            }
            _ => observe(step, q, &m),
        }
    }
    // Final state as the model says, seen from every handle.
    for q in handles.iter().flatten() {
        observe(usize::MAX, q, &m);
    }
    drop(handles);
    assert!(common::exists(&name), "a persisted queue's name went away");
    shmproc::remove(&name).expect("remove");
    assert!(!common::exists(&name), "remove left the file");
});
