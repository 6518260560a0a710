//! `message_slots`: arbitrary bytes in the message cells (length words and message bytes) and
//! anywhere else in the segments of a `ByteQueue`, a `MessageQueue<Rec>` and a `Pipe`, written
//! through a second mapping of their `/dev/shm` files, interleaved with sends and receives.
//!
//! Every call must return `Ok` or a documented error (`TooLarge`, `Full`, `Timeout`, `Closed`,
//! `Empty`, `Corrupted`, `Decode`, `Disconnected`) within its deadline; a panic, a crash (an
//! out-of-bounds read shows up as an ASan report or SIGSEGV) or a call that does not return is
//! a finding. On top of that, the target keeps a model of each of the four rings (byte queue,
//! typed queue, pipe end 0 -> 1, pipe end 1 -> 0):
//!
//! - the target recomputes the ring layout (`RingLayout` in `src/message/ring.rs`, the two end
//!   words and two rings of `src/pipe.rs`, the body offset read from the header) and checks it
//!   against the header's body size;
//! - as long as no write hit a ring's control block or slot words, the ring is *exact*: each
//!   message sent is in cell `position % capacity`, and a write that overlaps a queued
//!   message's length word or its bytes *taints* that message. Every answer is then checked:
//!   an untainted message arrives intact, in order (a typed receive gives exactly what
//!   postcard makes of its bytes, `Decode` included); a tainted one may come back as anything
//!   of at most `max_message_size` bytes, `Corrupted` (length word over the maximum) or
//!   `Decode`, and in every case it is consumed, so the message after it is delivered;
//!   `Empty`/`Timeout`/`Closed`/`Full` and `len` are exact; `poll(ZERO)` is exact;
//! - a write into a ring's control block or slot words makes that ring inexact: from then
//!   on only the "documented error, bounded time, no panic" checks (and `len <= capacity`,
//!   received messages of at most the maximum, `Corrupted` only for lengths over it) apply;
//! - a write into a pipe segment's header, participant records or end words may make an end
//!   look gone: `Disconnected` is then also accepted where a live peer would not give it
//!   (but never from a receive while an exact ring still holds a message);
//! - a write into a queue segment's header or participant records changes nothing the model
//!   checks: handles copied and validated the header when they opened it, and with one
//!   thread no slot is ever claimed between two calls, so no liveness answer is asked for.
//!
//! Input: `[cap, max, preamble, op...]`: capacity `1 + cap % 4`, `max_message_size` from
//! `MAXES`, and `preamble % (capacity + 1)` messages sent on each ring before the ops. Each op
//! byte is `variant << 6 | ring << 4 | code` (ring 0: byte queue, 1: typed queue, 2: pipe
//! 0 -> 1, 3: pipe 1 -> 0; the file is the ring's segment):
//! - 0, 13: write 1..=16 input bytes into a cell: `[cell, offset in cell, n, bytes...]`;
//! - 1, 14: write a length word (a cell's bytes 8..16, after its slot word): `[cell, how, ...]`,
//!   the value a raw `u64`, a small length, or
//!   just over the maximum, or near `u64::MAX`;
//! - 2: write 1..=16 bytes anywhere in the file: `[u16 offset, n, bytes...]`;
//! - 3: write an 8-aligned `u64` anywhere in the file: `[u16 word index, u64]`;
//! - 4: write a `u64` into the ring's control block, records or a cell's slot word (the ring
//!   turns inexact);
//! - 5, 6, 15: send (variant 0..=3). Byte queue: `try_put` / `put_timeout` / `try_put_with` /
//!   `put`; typed queue: `try_put` / `put_timeout` / `put` / raw bytes through
//!   `as_bytes().try_put`; pipe: a `Rec` for even variants (`send`, or `send_timeout`), raw
//!   bytes for odd ones (`send_bytes`). Calls without a deadline are made only where they
//!   cannot block (the model has room, or the peer was dropped), else a `try_*` / `*_timeout`
//!   call or nothing;
//! - 7, 8, 9: receive (variant 0..=3). Byte queue: `try_get` / `get_timeout` / `get` /
//!   `try_get_into` a reused buffer, or `try_get_with` reading in place (or `get_into_timeout`
//!   for `get`); typed queue: `try_get` /
//!   `get_timeout` / `get` / raw bytes through `as_bytes().try_get`; pipe: `recv` /
//!   `recv_bytes` (or `recv_timeout`) / `try_recv` / `recv_bytes_into_timeout`. Again calls
//!   without a deadline only where the model says they return at once;
//! - 10: `len`/`is_empty`/`is_full`, or `poll(Duration::ZERO)` and `peer_gone` on the pipe;
//! - 11: `[b]`, if `b % 4 == 0`: `close` the queue, or drop pipe end 1;
//! - 12: `task_done` / `join_timeout` on a queue.
//!
//! The three names are `fz<pid>_m{b,t,p}`, created afresh for every input and removed at its
//! end (by the creating handles' drop; the target checks).

#![no_main]

#[macro_use]
mod common;

use common::{Cursor, timed};
use libfuzzer_sys::fuzz_target;
use memmap2::MmapMut;
use serde::{Deserialize, Serialize};
use shmproc::{ByteQueue, Connection, MessageQueue, Options, Pipe, RecvError, SendError, TaskError};
use std::collections::VecDeque;
use std::time::Duration;

/// The typed payload: a string, a vector and an enum with a struct variant, so that postcard's
/// length prefixes and enum tags are all in play when cells are scribbled.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Tag {
    Plain,
    Num(u32),
    Named { id: i64, label: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Rec {
    text: String,
    nums: Vec<u32>,
    tag: Tag,
}

/// Maximum message sizes to choose from: 0, tiny, exactly a cell (16 + 48 = 64: slot word,
/// length word, bytes), one over (two cache lines per cell), larger.
const MAXES: [usize; 12] = [0, 3, 8, 16, 24, 40, 48, 49, 64, 100, 120, 248];

const BYTES: usize = 0;
const TYPED: usize = 1;
/// Pipe ring 0: sent by end 0, received by end 1.
const P01: usize = 2;
/// Pipe ring 1: sent by end 1, received by end 0.
const P10: usize = 3;

/// Header field offsets (`src/segment/header.rs`).
const HDR_BODY_OFFSET: usize = 72;
const HDR_BODY_SIZE: usize = 80;
/// `RingControl` is 640 bytes, then `4 * participants` claim records of 128 bytes (this target
/// opens with 4 participants), then the cells, each its slot word, its length word and the
/// message bytes (`src/message.rs`); the control block and the cells start at multiples of
/// 128.
const CONTROL_SIZE: u64 = 640;
const RECORDS_SIZE: u64 = 4 * 4 * 128;
/// Two end words on their own cache lines before the pipe's first ring (`src/pipe.rs`).
const PIPE_ENDS: u64 = 128;

fn align64(x: u64) -> u64 {
    (x + 63) & !63
}

fn align128(x: u64) -> u64 {
    (x + 127) & !127
}

/// One ring's place in its file, in file offsets.
#[derive(Clone, Copy, Debug)]
struct Layout {
    control: u64,
    cells: u64,
    stride: u64,
    cap: u64,
    /// First byte after the ring, relative to the body (for chaining the pipe's rings).
    end_in_body: u64,
}

impl Layout {
    /// `RingLayout::new(base, cap, max)` of `src/message/ring.rs`, shifted by the body offset.
    fn new(body: u64, base: u64, cap: u64, max: u64) -> Layout {
        let control = align128(base);
        let cells = align128(control + CONTROL_SIZE + RECORDS_SIZE);
        let stride = align64(max + 16);
        Layout {
            control: body + control,
            cells: body + cells,
            stride,
            cap,
            end_in_body: cells + cap * stride,
        }
    }

    fn cell(&self, index: u64) -> u64 {
        self.cells + index * self.stride
    }
}

struct Msg {
    bytes: Vec<u8>,
    index: u64,
    tainted: bool,
}

struct Ring {
    file: usize,
    lay: Layout,
    msgs: VecDeque<Msg>,
    /// Positions sent so far (the next message goes to cell `tail % cap`).
    tail: u64,
    exact: bool,
    closed: bool,
}

impl Ring {
    fn full(&self) -> bool {
        self.msgs.len() as u64 == self.lay.cap
    }
}

/// How a call waits: not at all, up to a short timeout, or without a deadline (made only when
/// the model says it returns at once).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wait {
    Try,
    Timeout,
    Block,
}

/// What a receive gave back.
#[derive(Debug)]
enum Got {
    Bytes(Vec<u8>),
    Rec(Rec),
}

fn short(cur: &mut Cursor<'_>) -> Duration {
    Duration::from_millis(u64::from(cur.u8() % 3))
}

/// What the crate's typed receive makes of `bytes` (`message::decode`: postcard, nothing left).
fn decode(bytes: &[u8]) -> Option<Rec> {
    match postcard::take_from_bytes::<Rec>(bytes) {
        Ok((v, [])) => Some(v),
        _ => None,
    }
}

fn payload_bytes(cur: &mut Cursor<'_>, max: usize) -> Vec<u8> {
    let len = usize::from(cur.u8()) % (max + 3);
    let from_input = cur.u8();
    if from_input & 1 == 1 {
        let mut v = cur.bytes(len).to_vec();
        v.resize(len, 0);
        v
    } else {
        (0..len).map(|i| from_input ^ (i as u8).wrapping_mul(37)).collect()
    }
}

fn payload_rec(cur: &mut Cursor<'_>) -> Rec {
    let a = cur.u8();
    let b = cur.u8();
    let text: String = (0..usize::from(a % 24))
        .map(|i| char::from(b'a' + (i as u8).wrapping_add(b) % 26))
        .collect();
    let nums = (0..u32::from(b % 5)).map(|i| u32::from(a) << (i * 7)).collect();
    let tag = match a % 3 {
        0 => Tag::Plain,
        1 => Tag::Num(u32::from(b) * 1_000_003),
        _ => Tag::Named {
            id: -i64::from(b),
            label: "é".repeat(usize::from(b % 4)),
        },
    };
    Rec { text, nums, tag }
}

struct Harness {
    step: usize,
    max: usize,
    bq: ByteQueue,
    mq: MessageQueue<Rec>,
    p0: Connection,
    p1: Option<Connection>,
    maps: [MmapMut; 3],
    /// Body offset of each file.
    bodies: [u64; 3],
    rings: [Ring; 4],
    /// A write hit the pipe segment's header, participant records or end words.
    pipe_meta_hit: bool,
}

impl Harness {
    fn scribble(&mut self, file: usize, offset: u64, bytes: &[u8]) {
        let len = self.maps[file].len() as u64;
        let off = offset % len;
        let n = bytes.len().min((len - off) as usize);
        if n == 0 {
            return;
        }
        trace!(
            "step {}: scribble file {file} at {off}: {:02x?}",
            self.step,
            &bytes[..n]
        );
        self.maps[file][off as usize..off as usize + n].copy_from_slice(&bytes[..n]);
        let (start, end) = (off, off + n as u64);
        let overlaps = |a: u64, b: u64| start < b && a < end;
        if file == 2 && overlaps(0, self.bodies[2] + PIPE_ENDS) {
            self.pipe_meta_hit = true;
        }
        for r in self.rings.iter_mut().filter(|r| r.file == file) {
            let slot_hit = (0..r.lay.cap).any(|i| overlaps(r.lay.cell(i), r.lay.cell(i) + 8));
            if overlaps(r.lay.control, r.lay.cells) || slot_hit {
                if r.exact {
                    trace!("  ring control/slots hit: model now inexact");
                }
                r.exact = false;
                r.msgs.clear();
            }
            for m in r.msgs.iter_mut() {
                let c = r.lay.cell(m.index);
                if overlaps(c + 8, c + 16 + m.bytes.len() as u64) {
                    m.tainted = true;
                }
            }
        }
    }

    /// Whether the ring's sender sees its peer as dropped (only the pipe's end 1 is dropped).
    fn peer_dropped(&self, ring: usize) -> bool {
        ring >= P01 && self.p1.is_none()
    }

    /// End 1 was dropped, and no write hit this ring's control block (its `closed` word) or
    /// the pipe's end words and participant records (which say that end 1 is gone): a
    /// blocking call on the ring then returns at once.
    fn dropped_clean(&self, ring: usize) -> bool {
        self.p1.is_none() && !self.pipe_meta_hit && self.rings[ring].exact
    }

    fn check_send(&mut self, ring: usize, how: Wait, bytes: &[u8], res: Result<(), SendError>) {
        let step = self.step;
        let max = self.max;
        let len = bytes.len();
        let pipe = ring >= P01;
        trace!("step {step}: send {len} bytes on ring {ring} ({how:?}): {res:?}");
        if let Err(SendError::TooLarge { size, max: m }) = &res {
            assert_eq!((*size, *m), (len, max), "step {step}: TooLarge fields");
        }
        if len > max {
            let disc_ok = pipe && (self.peer_dropped(ring) || self.pipe_meta_hit);
            assert!(
                matches!(res, Err(SendError::TooLarge { .. })) || (disc_ok && res == Err(SendError::Disconnected)),
                "step {step}: a {len}-byte message over the maximum {max} gave {res:?}"
            );
            return;
        }
        if pipe && self.pipe_meta_hit && res == Err(SendError::Disconnected) {
            return;
        }
        let dropped = self.peer_dropped(ring);
        let r = &mut self.rings[ring];
        if !r.exact {
            match res {
                Ok(()) | Err(SendError::Full | SendError::Timeout | SendError::Closed) if !pipe => {}
                Ok(()) | Err(SendError::Timeout | SendError::Disconnected) if pipe => {}
                other => panic!("step {step}: send on an inexact ring {ring} ({how:?}): {other:?}"),
            }
            return;
        }
        let expect = if dropped {
            Err(SendError::Disconnected)
        } else if r.closed {
            Err(SendError::Closed)
        } else if r.full() {
            Err(if how == Wait::Try {
                SendError::Full
            } else {
                SendError::Timeout
            })
        } else {
            Ok(())
        };
        assert_eq!(res, expect, "step {step}: send on ring {ring} ({how:?})");
        if res.is_ok() {
            r.msgs.push_back(Msg {
                bytes: bytes.to_vec(),
                index: r.tail % r.lay.cap,
                tainted: false,
            });
            r.tail += 1;
        }
    }

    fn send(&mut self, ring: usize, variant: u8, cur: &mut Cursor<'_>) {
        let typed = match ring {
            TYPED => variant != 3,
            BYTES => false,
            _ => variant & 1 == 0,
        };
        let (bytes, rec) = if typed {
            let rec = payload_rec(cur);
            (postcard::to_stdvec(&rec).expect("encode Rec"), Some(rec))
        } else {
            (payload_bytes(cur, self.max), None)
        };
        let exact_room = {
            let r = &self.rings[ring];
            r.exact && !r.full() && !r.closed
        };
        let t = short(cur);
        let (how, res) = match ring {
            BYTES => match variant {
                0 => (Wait::Try, timed("try_put", || self.bq.try_put(&bytes))),
                1 => (Wait::Timeout, timed("put_timeout", || self.bq.put_timeout(&bytes, t))),
                2 => (
                    Wait::Try,
                    timed("try_put_with", || {
                        self.bq.try_put_with(bytes.len(), |w| {
                            let (a, b) = bytes.split_at(bytes.len() / 2);
                            w.write_at(a.len(), b);
                            w.write_at(0, a);
                        })
                    }),
                ),
                _ if exact_room => (Wait::Block, timed("put", || self.bq.put(&bytes))),
                _ => (Wait::Try, timed("try_put", || self.bq.try_put(&bytes))),
            },
            TYPED => {
                let rec = rec.as_ref();
                match (variant, rec) {
                    (0, Some(rec)) => (Wait::Try, timed("try_put", || self.mq.try_put(rec))),
                    (1, Some(rec)) => (Wait::Timeout, timed("put_timeout", || self.mq.put_timeout(rec, t))),
                    (2, Some(rec)) if exact_room => (Wait::Block, timed("put", || self.mq.put(rec))),
                    (_, Some(rec)) => (Wait::Try, timed("try_put", || self.mq.try_put(rec))),
                    (_, None) => (
                        Wait::Try,
                        timed("as_bytes.try_put", || self.mq.as_bytes().try_put(&bytes)),
                    ),
                }
            }
            _ => {
                let conn = if ring == P01 {
                    &self.p0
                } else {
                    match &self.p1 {
                        Some(c) => c,
                        None => return,
                    }
                };
                // Blocking sends only where the model says there is room, or where the peer
                // was dropped and nothing was scribbled that could hide it (then they fail at
                // once).
                let blocking_ok = exact_room || (ring == P01 && self.dropped_clean(ring));
                match rec.as_ref() {
                    Some(rec) if blocking_ok && variant == 0 => (Wait::Block, timed("send", || conn.send(rec))),
                    Some(rec) => (Wait::Timeout, timed("send_timeout", || conn.send_timeout(rec, t))),
                    None if blocking_ok => (Wait::Block, timed("send_bytes", || conn.send_bytes(&bytes))),
                    // There is no `send_bytes_timeout`: raw bytes go only where that cannot
                    // block.
                    None => return,
                }
            }
        };
        self.check_send(ring, how, &bytes, res);
    }

    fn check_recv(&mut self, ring: usize, how: Wait, typed: bool, res: Result<Got, RecvError>) {
        let step = self.step;
        let max = self.max;
        let pipe = ring >= P01;
        trace!("step {step}: recv on ring {ring} ({how:?}, typed {typed}): {res:?}");
        match &res {
            Ok(Got::Bytes(b)) => assert!(b.len() <= max, "step {step}: got {} bytes, max {max}", b.len()),
            Err(RecvError::Corrupted { len, max: m }) => {
                assert!(*len > max as u64 && *m == max, "step {step}: {res:?} with max {max}")
            }
            Err(RecvError::Decode { len, .. }) => {
                assert!(typed && *len <= max, "step {step}: {res:?}")
            }
            _ => {}
        }
        let dropped = self.p1.is_none();
        let meta = self.pipe_meta_hit;
        let r = &mut self.rings[ring];
        if !r.exact {
            match res {
                Ok(_) | Err(RecvError::Corrupted { .. } | RecvError::Decode { .. }) => {}
                Err(RecvError::Empty) if how == Wait::Try => {}
                Err(RecvError::Timeout) if how == Wait::Timeout => {}
                Err(RecvError::Closed) if !pipe => {}
                Err(RecvError::Disconnected) if pipe => {}
                other => panic!("step {step}: recv on an inexact ring {ring} ({how:?}): {other:?}"),
            }
            return;
        }
        let Some(m) = r.msgs.pop_front() else {
            let ok = match &res {
                Err(RecvError::Disconnected) => pipe && (dropped || meta || r.closed),
                Err(RecvError::Closed) => !pipe && r.closed,
                Err(RecvError::Empty) => how == Wait::Try && !r.closed && !(pipe && dropped),
                Err(RecvError::Timeout) => how == Wait::Timeout && !r.closed && !(pipe && dropped),
                _ => false,
            };
            assert!(
                ok,
                "step {step}: recv on empty ring {ring} ({how:?}, closed {}, dropped {dropped}): {res:?}",
                r.closed
            );
            return;
        };
        if m.tainted {
            match res {
                Ok(_) | Err(RecvError::Corrupted { .. } | RecvError::Decode { .. }) => {}
                other => panic!("step {step}: recv of a tainted message on ring {ring}: {other:?}"),
            }
            return;
        }
        match (res, typed) {
            (Ok(Got::Bytes(b)), false) => assert!(
                b == m.bytes,
                "step {step}: ring {ring} delivered {b:02x?}, sent {:02x?}",
                m.bytes
            ),
            (Ok(Got::Rec(v)), true) => assert_eq!(Some(v), decode(&m.bytes), "step {step}: ring {ring}"),
            (Err(RecvError::Decode { len, .. }), true) => {
                assert!(
                    decode(&m.bytes).is_none() && len == m.bytes.len(),
                    "step {step}: ring {ring}: Decode of {len} bytes for {:02x?}",
                    m.bytes
                )
            }
            (other, _) => panic!(
                "step {step}: ring {ring} ({how:?}) gave {other:?} for the intact message {:02x?}",
                m.bytes
            ),
        }
    }

    fn recv(&mut self, ring: usize, variant: u8, cur: &mut Cursor<'_>) {
        let has = {
            let r = &self.rings[ring];
            r.exact && !r.msgs.is_empty()
        };
        let t = short(cur);
        let mut buf = vec![0xEE; usize::from(cur.u8() % 4) * 40];
        let bytes = |r: Result<Vec<u8>, RecvError>| r.map(Got::Bytes);
        let rec = |r: Result<Rec, RecvError>| r.map(Got::Rec);
        let (how, typed, res) = match ring {
            BYTES => match variant {
                0 => (Wait::Try, false, bytes(timed("try_get", || self.bq.try_get()))),
                1 => (
                    Wait::Timeout,
                    false,
                    bytes(timed("get_timeout", || self.bq.get_timeout(t))),
                ),
                2 if has => (Wait::Block, false, bytes(timed("get", || self.bq.get()))),
                2 => {
                    let r = timed("get_into_timeout", || self.bq.get_into_timeout(&mut buf, t));
                    (Wait::Timeout, false, bytes(r.map(|()| buf)))
                }
                // The reused buffer's size picks `try_get_with` (reading in place) a
                // quarter of the time, without taking another input byte.
                _ if buf.len() == 120 => {
                    let r = timed("try_get_with", || {
                        self.bq.try_get_with(|m| {
                            let mut v = Vec::new();
                            m.append_to(&mut v);
                            v
                        })
                    });
                    (Wait::Try, false, bytes(r))
                }
                _ => {
                    let r = timed("try_get_into", || self.bq.try_get_into(&mut buf));
                    (Wait::Try, false, bytes(r.map(|()| buf)))
                }
            },
            TYPED => match variant {
                0 => (Wait::Try, true, rec(timed("try_get", || self.mq.try_get()))),
                1 => (
                    Wait::Timeout,
                    true,
                    rec(timed("get_timeout", || self.mq.get_timeout(t))),
                ),
                2 if has => (Wait::Block, true, rec(timed("get", || self.mq.get()))),
                2 => (
                    Wait::Timeout,
                    true,
                    rec(timed("get_timeout", || self.mq.get_timeout(t))),
                ),
                _ => (
                    Wait::Try,
                    false,
                    bytes(timed("as_bytes.try_get", || self.mq.as_bytes().try_get())),
                ),
            },
            _ => {
                let conn = if ring == P10 {
                    &self.p0
                } else {
                    match &self.p1 {
                        Some(c) => c,
                        None => return,
                    }
                };
                // A blocking receive returns at once when a message is there, or when the peer
                // is gone and the ring drained.
                let blocking_ok = has || (ring == P10 && self.dropped_clean(ring));
                match variant {
                    0 if blocking_ok => (Wait::Block, true, rec(timed("recv", || conn.recv::<Rec>()))),
                    1 if blocking_ok => (Wait::Block, false, bytes(timed("recv_bytes", || conn.recv_bytes()))),
                    0 | 1 => (
                        Wait::Timeout,
                        true,
                        rec(timed("recv_timeout", || conn.recv_timeout::<Rec>(t))),
                    ),
                    2 => (Wait::Try, true, rec(timed("try_recv", || conn.try_recv::<Rec>()))),
                    _ => {
                        let r = timed("recv_bytes_into_timeout", || conn.recv_bytes_into_timeout(&mut buf, t));
                        (Wait::Timeout, false, bytes(r.map(|()| buf)))
                    }
                }
            }
        };
        // A `Block` call on a dropped peer's empty ring behaves like `Try` / `Timeout`: it
        // returns `Disconnected`, which the checks accept in both.
        self.check_recv(ring, how, typed, res);
    }

    fn observe(&mut self, ring: usize) {
        let step = self.step;
        let r = &self.rings[ring];
        let cap = r.lay.cap as usize;
        let (len, empty, full) = match ring {
            BYTES => (
                timed("len", || self.bq.len()),
                timed("is_empty", || self.bq.is_empty()),
                timed("is_full", || self.bq.is_full()),
            ),
            TYPED => (
                timed("len", || self.mq.len()),
                timed("is_empty", || self.mq.is_empty()),
                timed("is_full", || self.mq.is_full()),
            ),
            _ => {
                let conn = if ring == P10 { Some(&self.p0) } else { self.p1.as_ref() };
                let Some(conn) = conn else { return };
                let ready = timed("poll", || conn.poll(Duration::ZERO));
                let gone = conn.peer_gone();
                trace!("step {step}: ring {ring} poll {ready}, peer_gone {gone}");
                if !self.pipe_meta_hit {
                    assert_eq!(gone, ring == P10 && self.p1.is_none(), "step {step}: peer_gone");
                    if r.exact {
                        assert_eq!(ready, !r.msgs.is_empty() || r.closed || gone, "step {step}: poll(ZERO)");
                    }
                } else if r.exact && !r.msgs.is_empty() {
                    assert!(ready, "step {step}: poll(ZERO) with a message waiting");
                }
                return;
            }
        };
        trace!("step {step}: ring {ring} len {len}, empty {empty}, full {full}");
        assert!(len <= cap, "step {step}: len {len} > capacity {cap}");
        if r.exact {
            let n = r.msgs.len();
            assert_eq!(
                (len, empty, full),
                (n, n == 0, n == cap),
                "step {step}: len/is_empty/is_full"
            );
        }
    }

    fn close(&mut self, ring: usize) {
        trace!("step {}: close ring {ring}", self.step);
        match ring {
            BYTES => self.bq.close(),
            TYPED => self.mq.close(),
            _ => {
                if self.p1.take().is_some() {
                    // Dropping an end closes both rings.
                    self.rings[P01].closed = true;
                    self.rings[P10].closed = true;
                }
                return;
            }
        }
        self.rings[ring].closed = true;
        assert!(match ring {
            BYTES => self.bq.is_closed(),
            _ => self.mq.is_closed(),
        });
    }

    fn tasks(&mut self, ring: usize, cur: &mut Cursor<'_>) {
        let q = match ring {
            BYTES => &self.bq,
            TYPED => self.mq.as_bytes(),
            _ => return,
        };
        let t = short(cur);
        match timed("task_done", || q.task_done()) {
            Ok(()) | Err(TaskError::TooManyTaskDone) => {}
            Err(e) => panic!("step {}: task_done: {e:?}", self.step),
        }
        match timed("join_timeout", || q.join_timeout(t)) {
            Ok(()) | Err(TaskError::Timeout) => {}
            Err(e) => panic!("step {}: join_timeout: {e:?}", self.step),
        }
    }

    fn op(&mut self, op: u8, cur: &mut Cursor<'_>) {
        let code = op & 0x0F;
        let ring = usize::from((op >> 4) & 3);
        let variant = op >> 6;
        let file = self.rings[ring].file;
        let lay = self.rings[ring].lay;
        match code {
            0 | 13 => {
                let cell = u64::from(cur.u8()) % lay.cap;
                let within = u64::from(cur.u8()) % lay.stride;
                let n = 1 + usize::from(cur.u8() % 16);
                let bytes = cur.bytes(n).to_vec();
                self.scribble(file, lay.cell(cell) + within, &bytes);
            }
            1 | 14 => {
                let cell = u64::from(cur.u8()) % lay.cap;
                let max = self.max as u64;
                let word = match cur.u8() % 4 {
                    0 => cur.u64(),
                    1 => u64::from(cur.u8()) % (max + 1),
                    2 => max + 1 + u64::from(cur.u8()),
                    _ => u64::MAX - u64::from(cur.u8()),
                };
                self.scribble(file, lay.cell(cell) + 8, &word.to_le_bytes());
            }
            2 => {
                let off = u64::from(cur.u16());
                let n = 1 + usize::from(cur.u8() % 16);
                let bytes = cur.bytes(n).to_vec();
                self.scribble(file, off, &bytes);
            }
            3 => {
                let len = self.maps[file].len() as u64;
                let off = (u64::from(cur.u16()) * 8) % len;
                let word = cur.u64();
                self.scribble(file, off - off % 8, &word.to_le_bytes());
            }
            4 => {
                let span = lay.cells - lay.control;
                let pick = u64::from(cur.u16());
                let off = if pick & 1 == 0 {
                    lay.control + (pick / 2 * 8) % span
                } else {
                    lay.cell(pick / 2 % lay.cap)
                };
                let word = cur.u64();
                self.scribble(file, off, &word.to_le_bytes());
            }
            5 | 6 | 15 => self.send(ring, variant, cur),
            7..=9 => self.recv(ring, variant, cur),
            10 => self.observe(ring),
            11 => {
                if cur.u8() & 3 == 0 {
                    self.close(ring);
                }
            }
            _ => self.tasks(ring, cur),
        }
    }
}

fn map(name: &str) -> MmapMut {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(common::shm_path(name))
        .expect("fuzz harness: open segment file");
    // SAFETY: the file is a shared-memory segment that this process created; the crate
    // accesses it only atomically and never truncates it, and this target writes it only
    // between the crate's calls (one thread), which is what a scribbling peer does.
    unsafe { MmapMut::map_mut(&f) }.expect("fuzz harness: mmap segment file")
}

fn read_u64(m: &MmapMut, at: usize) -> u64 {
    u64::from_le_bytes(m[at..at + 8].try_into().expect("8 bytes"))
}

fuzz_target!(init: common::init(), |data: &[u8]| {
    let mut cur = Cursor::new(data);
    let cap = 1 + usize::from(cur.u8() % 4);
    let max = MAXES[usize::from(cur.u8()) % MAXES.len()];
    let preamble = usize::from(cur.u8()) % (cap + 1);
    let names = [common::name("mb"), common::name("mt"), common::name("mp")];
    common::remove_files(&[&names[0], &names[1], &names[2]]);
    let opts = Options::new().participants(4).max_message_size(max);

    let bq = ByteQueue::create_with(&names[0], cap, &opts).expect("create byte queue");
    let mq = MessageQueue::<Rec>::create_with(&names[1], cap, &opts).expect("create message queue");
    let p0 = Pipe::new()
        .capacity(cap)
        .options(opts.clone())
        .create(&names[2])
        .expect("create pipe");
    let p1 = Connection::open(&names[2]).expect("open pipe end 1");
    let maps = [map(&names[0]), map(&names[1]), map(&names[2])];
    let bodies: [u64; 3] = std::array::from_fn(|i| read_u64(&maps[i], HDR_BODY_OFFSET));

    let (c, m) = (cap as u64, max as u64);
    let lays = [
        Layout::new(bodies[0], 0, c, m),
        Layout::new(bodies[1], 0, c, m),
        Layout::new(bodies[2], PIPE_ENDS, c, m),
    ];
    let p10 = Layout::new(bodies[2], lays[2].end_in_body, c, m);
    // The layout this target assumes must be the crate's.
    for (i, end) in [lays[0].end_in_body, lays[1].end_in_body, p10.end_in_body].into_iter().enumerate() {
        assert_eq!(read_u64(&maps[i], HDR_BODY_SIZE), end, "fuzz harness: body size of file {i}");
        assert!(bodies[i] + end <= maps[i].len() as u64, "fuzz harness: file {i} too short");
    }
    let ring = |file: usize, lay: Layout| Ring {
        file,
        lay,
        msgs: VecDeque::new(),
        tail: 0,
        exact: true,
        closed: false,
    };
    let mut h = Harness {
        step: 0,
        max,
        bq,
        mq,
        p0,
        p1: Some(p1),
        maps,
        bodies,
        rings: [ring(0, lays[0]), ring(1, lays[1]), ring(2, lays[2]), ring(2, p10)],
        pipe_meta_hit: false,
    };

    // A few legitimate messages on every ring first, so that the first writes land on them.
    for i in 0..preamble {
        for (r, variant) in [(BYTES, 0u8), (TYPED, 0), (P01, 0), (P10, 1)] {
            let seed = [(i as u8).wrapping_mul(29) | 1, 7 + i as u8, 0x5A, 3];
            h.send(r, variant, &mut Cursor::new(&seed));
        }
    }
    while !cur.is_empty() && h.step < 200 {
        h.step += 1;
        let op = cur.u8();
        h.op(op, &mut cur);
    }

    let Harness { bq, mq, p0, p1, maps, .. } = h;
    drop((maps, p1));
    timed("drop", || drop((bq, mq, p0)));
    for n in &names {
        if common::exists(n) {
            common::remove_files(&[n]);
            panic!("dropping the creating handle left {n:?} in /dev/shm");
        }
    }
});
