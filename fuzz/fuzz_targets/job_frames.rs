//! `job_frames`: task frames as a hostile peer that writes a child's job pipe could leave
//! them, checked as the child checks them (`shmproc::process::fuzzing`, feature `fuzzing`).
//! Nothing is run: the target checks which frames a child would accept.
//!
//! Input: `[key: 16 bytes, mode, last: u64, ...]`; `last >> 2` is the sequence number the
//! child accepted last (0: none yet).
//! - `mode % 4 == 0`: the rest is the frame, as it is.
//! - otherwise a frame is built and sealed from `[pod, size, id: u64, tramp: u64, func: u64,
//!   delta, n, n items: (len, bytes)..., k, k mutations: (offset: u16, xor)..., cut: u16]`
//!   (`pod & 1`: a plain-data frame of `size`-byte items; `n % 8` items of `len % 32`
//!   bytes; `k % 8` mutations, each XORing a byte at `offset` modulo the frame length; a
//!   non-zero `cut` truncates the frame to `cut - 1` bytes), with a sequence number of:
//!   - mode 1: `last + 1 + delta` (new), then mutated and cut;
//!   - mode 2: at most `last` (a replay), unmutated;
//!   - mode 3: `last + 1 + delta`, unmutated, but checked under another key (a frame
//!     copied from another child's pipe).
//!
//! What must hold: no panic; a frame whose header or length differ from what the parent
//! sealed is never accepted; an accepted frame's header is the sealed one; an untouched new
//! frame is never refused; a replay or a frame under another key is always refused.

#![no_main]

#[macro_use]
mod common;

use common::Cursor;
use libfuzzer_sys::fuzz_target;
use shmproc::process::fuzzing::{Header, TASK_HEADER, TASK_POD_HEADER, Verdict, check_frame, sealed_frame};

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let mut key = [0u8; 16];
    key.copy_from_slice(&{
        let mut k = c.bytes(16).to_vec();
        k.resize(16, 0);
        k
    });
    let mode = c.u8() % 4;
    let last = c.u64() >> 2;
    if mode == 0 {
        let r = check_frame(key, last, c.rest());
        trace!("raw frame, last {last}: {r:?}");
        return;
    }
    let pod = c.u8() & 1 == 1;
    let size = u32::from(c.u8() % 16);
    let (id, tramp, func) = (c.u64(), c.u64(), c.u64());
    let delta = u64::from(c.u8());
    let items: Vec<&[u8]> = (0..c.u8() % 8)
        .map(|_| {
            let len = usize::from(c.u8() % 32);
            c.bytes(len)
        })
        .collect();
    let sealed_seq = match mode {
        2 => last.saturating_sub(delta),
        _ => last + 1 + delta,
    };
    let original = sealed_frame(key, sealed_seq, pod, id, tramp, func, &items, size);
    let header = if pod { TASK_POD_HEADER } else { TASK_HEADER };
    let sealed_header = Header {
        kind: original[0],
        id,
        tramp,
        func,
        count: u32::from_le_bytes(original[header - if pod { 12 } else { 4 }..][..4].try_into().unwrap()),
    };
    match mode {
        1 => {
            let mut frame = original.clone();
            for _ in 0..c.u8() % 8 {
                let (at, xor) = (usize::from(c.u16()) % frame.len(), c.u8());
                frame[at] ^= xor;
            }
            let cut = usize::from(c.u16());
            if cut > 0 {
                frame.truncate(cut - 1);
            }
            let touched = frame.len() != original.len() || frame[..header] != original[..header];
            let r = check_frame(key, last, &frame);
            trace!("sequence {sealed_seq}, last {last}, touched {touched}: {r:?}");
            match r {
                Ok(h) => {
                    assert!(!touched, "a frame with a rewritten header or length was accepted");
                    assert_eq!(h, sealed_header, "an accepted frame's header is not the sealed one");
                }
                Err(Verdict::Refused(e)) => assert!(touched, "an untouched new frame was refused: {e}"),
                Err(Verdict::Malformed(_)) => {}
            }
        }
        2 => match check_frame(key, last, &original) {
            Err(Verdict::Refused(_)) => {}
            other => panic!("a replay (sequence {sealed_seq}, last {last}) gave {other:?}"),
        },
        _ => {
            let mut other_key = key;
            other_key[usize::from(delta as u8 % 16)] ^= 1 << (delta % 8);
            match check_frame(other_key, last, &original) {
                Err(Verdict::Refused(_)) => {}
                other => panic!("a frame sealed under another key gave {other:?}"),
            }
        }
    }
});
