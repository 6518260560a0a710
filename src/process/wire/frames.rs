//! Building and parsing the frames: task frames (both kinds), their items, results frames
//! and the results in them.

use super::*;
use crate::codec::append;
use crate::error::ProcessError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A task frame under construction: header, then items appended one by one.
pub(crate) struct TaskFrame {
    pub(crate) buf: Vec<u8>,
    pub(crate) count: u32,
}

impl TaskFrame {
    /// Starts a task frame with sequence number and MAC left 0 ([`seal`] fills them in).
    pub(crate) fn new(id: u64, f: FnRef) -> TaskFrame {
        let mut buf = Vec::with_capacity(96);
        task_header(&mut buf, TASK, id, f, 0);
        TaskFrame { buf, count: 0 }
    }

    /// Appends one encoded item.
    pub(crate) fn push(&mut self, item: &[u8]) {
        self.buf.extend_from_slice(&(item.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(item);
        self.count += 1;
    }

    /// Starts an item to be encoded straight into `buf`: returns where it starts.
    pub(crate) fn begin_item(&mut self) -> usize {
        let mark = self.buf.len();
        self.buf.extend_from_slice(&[0; ITEM_HEADER]);
        mark
    }

    /// Size of the item begun at `mark` so far.
    pub(crate) fn item_size(&self, mark: usize) -> usize {
        self.buf.len() - mark - ITEM_HEADER
    }

    /// Completes the item begun at `mark`.
    pub(crate) fn end_item(&mut self, mark: usize) {
        let len = self.item_size(mark) as u32;
        self.buf[mark..mark + ITEM_HEADER].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
    }

    /// Removes the item begun at `mark` and returns its encoded bytes.
    pub(crate) fn take_item(&mut self, mark: usize) -> Vec<u8> {
        let item = self.buf.split_off(mark + ITEM_HEADER);
        self.buf.truncate(mark);
        item
    }

    /// The frame with its item count filled in.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf[COUNT_AT..COUNT_AT + 4].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// A parsed task frame.
pub(crate) struct Task<'a> {
    pub(crate) id: u64,
    pub(crate) f: FnRef,
    pub(crate) items: Items<'a>,
}

/// Parses a task frame (after its tag byte has been checked, and its MAC by a
/// [`Verifier`] before its offsets are used).
pub(crate) fn parse_task(frame: &[u8]) -> Result<Task<'_>, String> {
    if frame.len() < TASK_HEADER {
        return Err(format!("task frame of {} bytes is too short", frame.len()));
    }
    let id = u64_at(frame, ID_AT);
    let f = fn_ref_at(frame);
    let count = u32_at(frame, COUNT_AT);
    Ok(Task {
        id,
        f,
        items: Items {
            rest: &frame[TASK_HEADER..],
            left: count,
            tagged: false,
        },
    })
}

/// Iterates over the items of a task frame or the results of a results frame: `(tag,
/// bytes)`, with tag 0 for items. Stops at the first malformed entry (`Err`).
pub(crate) struct Items<'a> {
    rest: &'a [u8],
    left: u32,
    tagged: bool,
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<(u8, &'a [u8]), String>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let head = if self.tagged { RESULT_HEADER } else { ITEM_HEADER };
        if self.rest.len() < head {
            self.left = 0;
            return Some(Err("frame ends inside an entry header".to_owned()));
        }
        let (tag, len) = if self.tagged {
            (self.rest[0], u32_at(self.rest, 1) as usize)
        } else {
            (ITEM_OK, u32_at(self.rest, 0) as usize)
        };
        let body = &self.rest[head..];
        if body.len() < len {
            self.left = 0;
            return Some(Err(format!("entry of {len} bytes overruns the frame")));
        }
        self.rest = &body[len..];
        Some(Ok((tag, &body[..len])))
    }
}

/// Appends the header common to both kinds of task frame, sequence number and MAC 0.
fn task_header(buf: &mut Vec<u8>, kind: u8, id: u64, f: FnRef, count: u32) {
    buf.push(kind);
    buf.extend_from_slice(&[0; 8 + 16]);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&f.tramp.to_le_bytes());
    buf.extend_from_slice(&f.func.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
}

fn fn_ref_at(frame: &[u8]) -> FnRef {
    FnRef {
        tramp: u64_at(frame, TRAMP_AT),
        func: u64_at(frame, FUNC_AT),
    }
}

/// Starts a plain-data task frame in `buf` (cleared first): its header, for `count` items of
/// `asize` bytes with results of `rsize` bytes, sequence number and MAC 0 ([`seal`] fills
/// them in); the caller appends the items' bytes.
pub(crate) fn pod_task_header(buf: &mut Vec<u8>, id: u64, f: FnRef, count: u32, asize: u32, rsize: u32) {
    buf.clear();
    task_header(buf, TASK_POD, id, f, count);
    buf.extend_from_slice(&asize.to_le_bytes());
    buf.extend_from_slice(&rsize.to_le_bytes());
}

/// A parsed plain-data task frame.
pub(crate) struct PodTask<'a> {
    pub(crate) id: u64,
    pub(crate) f: FnRef,
    pub(crate) count: usize,
    pub(crate) asize: usize,
    pub(crate) rsize: usize,
    /// `count` items of `asize` bytes.
    pub(crate) items: &'a [u8],
}

/// Parses a plain-data task frame (after its tag byte has been checked): sizes of at least
/// one byte, and exactly `count` items of the item size after the header.
pub(crate) fn parse_pod_task(frame: &[u8]) -> Result<PodTask<'_>, String> {
    if frame.len() < TASK_POD_HEADER {
        return Err(format!("plain-data task frame of {} bytes is too short", frame.len()));
    }
    let count = u32_at(frame, COUNT_AT) as usize;
    let asize = u32_at(frame, TASK_HEADER) as usize;
    let rsize = u32_at(frame, TASK_HEADER + 4) as usize;
    let items = &frame[TASK_POD_HEADER..];
    if asize == 0 || rsize == 0 {
        return Err(format!(
            "plain-data task of items of {asize} bytes and results of {rsize}"
        ));
    }
    if count.checked_mul(asize) != Some(items.len()) {
        return Err(format!(
            "plain-data task of {count} items of {asize} bytes has {} bytes of items",
            items.len()
        ));
    }
    Ok(PodTask {
        id: u64_at(frame, ID_AT),
        f: fn_ref_at(frame),
        count,
        asize,
        rsize,
        items,
    })
}

/// A results frame under construction.
pub(crate) struct ResultsFrame {
    pub(crate) buf: Vec<u8>,
    pub(crate) count: u32,
}

impl ResultsFrame {
    /// Starts a frame of results for task `id` from item `first` on, reusing `buf`.
    pub(crate) fn new(mut buf: Vec<u8>, id: u64, first: u32) -> ResultsFrame {
        buf.clear();
        buf.push(RESULTS);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&first.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        ResultsFrame { buf, count: 0 }
    }

    /// Starts a frame of plain-data results (ok results only, raw bytes, `count` of them
    /// once sealed) for task `id` from item `first` on, reusing `buf`.
    pub(crate) fn new_pod(buf: Vec<u8>, id: u64, first: u32) -> ResultsFrame {
        let mut r = ResultsFrame::new(buf, id, first);
        r.buf[0] = RESULTS_POD;
        r
    }

    pub(crate) fn first(&self) -> u32 {
        u32_at(&self.buf, 9)
    }

    pub(crate) fn push(&mut self, tag: u8, bytes: &[u8]) {
        self.buf.push(tag);
        self.buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(bytes);
        self.count += 1;
    }

    pub(crate) fn seal(&mut self) -> &[u8] {
        let count = self.count.to_le_bytes();
        self.buf[13..17].copy_from_slice(&count);
        &self.buf
    }
}

/// A parsed results frame.
pub(crate) struct Results<'a> {
    pub(crate) id: u64,
    pub(crate) first: u32,
    pub(crate) count: u32,
    pub(crate) entries: Items<'a>,
}

/// Parses a results frame's header (after its tag byte has been checked). For a plain-data
/// results frame, `entries` means nothing.
pub(crate) fn parse_results(frame: &[u8]) -> Result<Results<'_>, String> {
    if frame.len() < RESULTS_HEADER {
        return Err(format!("results frame of {} bytes is too short", frame.len()));
    }
    let count = u32_at(frame, 13);
    Ok(Results {
        id: u64_at(frame, 1),
        first: u32_at(frame, 9),
        count,
        entries: Items {
            rest: &frame[RESULTS_HEADER..],
            left: count,
            tagged: true,
        },
    })
}

/// Turns one result entry into `R`, or the error it stands for.
pub(crate) fn decode_result<R: DeserializeOwned>(tag: u8, bytes: &[u8]) -> Result<R, ProcessError> {
    match tag {
        ITEM_OK => postcard::from_bytes(bytes).map_err(|e| ProcessError::Decode {
            what: "the result",
            reason: format!("{} bytes as {}: {e}", bytes.len(), std::any::type_name::<R>()),
        }),
        ITEM_PANICKED => {
            let (message, location) = postcard::from_bytes::<(String, String)>(bytes)
                .unwrap_or_else(|_| ("(undecodable panic message)".to_owned(), "unknown location".to_owned()));
            Err(ProcessError::Panicked { message, location })
        }
        _ => Err(match postcard::from_bytes::<Failure>(bytes) {
            Ok(f) => f.into(),
            Err(e) => ProcessError::Ipc {
                reason: format!("undecodable failure report from the child: {e}"),
            },
        }),
    }
}

/// Encodes `value` into `buf` (cleared first).
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    what: &'static str,
) -> Result<(), ProcessError> {
    buf.clear();
    append(value, buf).map_err(|reason| ProcessError::Encode { what, reason })
}
