//! What travels between a parent and its children: how a function is named across
//! processes, the build fingerprint that guards it, and the frames on a child's pipe.
//!
//! # Naming a function in another process
//!
//! A child is the same executable file as its parent (it is started from `/proc/self/exe`,
//! the very inode the parent runs), so every function lies at the same offset from the
//! start of the image. ASLR moves the whole image by one amount, so the parent sends
//! `f - anchor` (wrapping), where `anchor` is a fixed function of this crate, and the child
//! adds its own `anchor` back. The child does not call `f` directly: it calls a
//! monomorphised [`trampoline::<A, R>`](trampoline), named the same way, that decodes `A`,
//! calls `f` and encodes `R`.
//!
//! Before it calls anything, the child checks the [`Fingerprint`] the parent sent (device,
//! inode, size and modification time of the executable, and the distance between two
//! anchors) against its own, and that both addresses lie in the executable's code
//! segments; a child that is not the same build refuses the job.
//!
//! # Frames (all integers little-endian)
//!
//! | frame | bytes |
//! |---|---|
//! | parent to child: start | `1`, then postcard [`Start`] |
//! | parent to child: task | `2`, id `u64`, trampoline offset `u64`, function offset `u64`, count `u32`, then `count` items: length `u32`, postcard `A` |
//! | parent to child: exit | `3` |
//! | child to parent: ready | `4`, pid `u32` |
//! | child to parent: refused | `5`, UTF-8 reason |
//! | child to parent: results | `6`, task id `u64`, first item `u32`, count `u32`, then `count` results: tag `u8` (0 ok, 1 panicked, 2 failed), length `u32`, bytes |
//!
//! An ok result holds postcard `R`; a panicked one postcard `(message, location)`; a failed
//! one a postcard [`Failure`] (arguments that do not decode, a result that does not encode
//! or is too large).

use super::sys;
use crate::error::ProcessError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

pub(crate) const START: u8 = 1;
pub(crate) const TASK: u8 = 2;
pub(crate) const EXIT: u8 = 3;
pub(crate) const READY: u8 = 4;
pub(crate) const REFUSED: u8 = 5;
pub(crate) const RESULTS: u8 = 6;

pub(crate) const ITEM_OK: u8 = 0;
pub(crate) const ITEM_PANICKED: u8 = 1;
pub(crate) const ITEM_FAILED: u8 = 2;

/// Bytes of a task frame before its items.
pub(crate) const TASK_HEADER: usize = 1 + 8 + 8 + 8 + 4;
/// Bytes of a results frame before its results.
pub(crate) const RESULTS_HEADER: usize = 1 + 8 + 4 + 4;
/// Bytes before each item (its length).
pub(crate) const ITEM_HEADER: usize = 4;
/// Bytes before each result (tag and length).
pub(crate) const RESULT_HEADER: usize = 5;

/// Identity of the running build.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    /// `anchor_b - anchor`: changes with the code layout.
    layout: u64,
}

impl Fingerprint {
    /// This process's fingerprint (computed once).
    pub(crate) fn current() -> Result<Fingerprint, String> {
        static CURRENT: OnceLock<Result<Fingerprint, String>> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                use std::os::unix::fs::MetadataExt;
                let m = std::fs::metadata("/proc/self/exe").map_err(|e| format!("cannot stat /proc/self/exe: {e}"))?;
                Ok(Fingerprint {
                    dev: m.dev(),
                    ino: m.ino(),
                    size: m.size(),
                    mtime: m.mtime(),
                    mtime_nsec: m.mtime_nsec(),
                    layout: (anchor_b as fn() -> u64 as usize).wrapping_sub(anchor_addr()) as u64,
                })
            })
            .clone()
    }
}

/// The parent's [`Start`] frame: everything a child needs before its first task.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Start {
    pub(crate) fingerprint: Fingerprint,
    /// The parent's pid: a daemon child checks it is still its parent.
    pub(crate) parent: u32,
    pub(crate) daemon: bool,
    /// Name for the process (`ps`), if any.
    pub(crate) name: Option<String>,
    /// Run one task, then exit (a `Process`); otherwise serve tasks until told to exit.
    pub(crate) one_shot: bool,
    /// Print panics of tasks to stderr (as well as sending them to the parent).
    pub(crate) print_panics: bool,
}

#[inline(never)]
fn anchor() -> u64 {
    std::hint::black_box(0x7368_6d70_726f_6301)
}

#[inline(never)]
fn anchor_b() -> u64 {
    std::hint::black_box(0x7368_6d70_726f_6302)
}

fn anchor_addr() -> usize {
    anchor as fn() -> u64 as usize
}

/// Runs the function at `func` (an offset) on the postcard-encoded `input`, appending the
/// encoded result to `out`. Panics of the function propagate.
///
/// # Safety
/// `func` is the offset (from the anchor) of a `fn(A) -> R` of this executable, with the
/// `A` and `R` this trampoline was instantiated for: [`FnRef::trampoline`] checked the
/// offsets of a pair that [`FnRef::new`] made in a process of the same build.
pub(crate) type Trampoline = unsafe fn(func: u64, input: &[u8], out: &mut Vec<u8>) -> Result<(), Failure>;

/// Why a task item gave no value, other than a panic (sent as a failed result).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The arguments do not decode as `A`.
    DecodeArgs(String),
    /// The result does not encode.
    EncodeResult(String),
    /// The encoded result is larger than the pipe's maximum message size.
    ResultTooLarge { size: u64, max: u64 },
    /// The function offset is outside the executable's code.
    BadFunction(String),
}

impl From<Failure> for ProcessError {
    fn from(f: Failure) -> ProcessError {
        match f {
            Failure::DecodeArgs(reason) => ProcessError::Decode {
                what: "the arguments",
                reason,
            },
            Failure::EncodeResult(reason) => ProcessError::Encode {
                what: "the result",
                reason,
            },
            Failure::ResultTooLarge { size, max } => ProcessError::TooLarge {
                what: "the result",
                size: size as usize,
                max: max as usize,
            },
            Failure::BadFunction(reason) => ProcessError::Refused { reason },
        }
    }
}

/// Decodes an `A`, calls the `fn(A) -> R` at offset `func` from the anchor, encodes the `R`.
///
/// # Safety
/// As [`Trampoline`].
unsafe fn trampoline<A: DeserializeOwned, R: Serialize>(
    func: u64,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let ptr = (anchor as fn() -> u64 as *const ()).wrapping_byte_add(func as usize);
    // SAFETY: the caller guarantees that `func` is the offset of a `fn(A) -> R` of this
    // executable (the child runs the parent's executable inode, checked the build
    // fingerprint before taking any task, and `FnRef::trampoline` checked the offset), so
    // `ptr` is that function.
    let f = unsafe { std::mem::transmute::<*const (), fn(A) -> R>(ptr) };
    let args: A = postcard::from_bytes(input)
        .map_err(|e| Failure::DecodeArgs(format!("{} bytes as {}: {e}", input.len(), std::any::type_name::<A>())))?;
    let result = f(args);
    append(&result, out).map_err(|e| Failure::EncodeResult(format!("{}: {e}", std::any::type_name::<R>())))
}

/// A function as a child finds it: offsets of its trampoline and of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FnRef {
    pub(crate) tramp: u64,
    pub(crate) func: u64,
}

impl FnRef {
    /// Names `f` for a child.
    ///
    /// # Errors
    /// `UnsupportedFunction` if `f` is not in the main executable's code (a function of a
    /// shared library lies at another place in every process).
    pub(crate) fn new<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
        f: fn(A) -> R,
    ) -> Result<FnRef, ProcessError> {
        let t: Trampoline = trampoline::<A, R>;
        for (what, addr) in [("the function", f as usize), ("its trampoline", t as usize)] {
            if !sys::in_exe_code(addr) {
                return Err(ProcessError::UnsupportedFunction {
                    reason: format!(
                        "{what} (at {addr:#x}) is not in the main executable's code, so it is not \
                         at the same place in a child; call it from a function of your own"
                    ),
                });
            }
        }
        Ok(FnRef {
            tramp: (t as usize).wrapping_sub(anchor_addr()) as u64,
            func: (f as usize).wrapping_sub(anchor_addr()) as u64,
        })
    }

    /// In the child: the trampoline this names, if it and the function lie in the
    /// executable's code.
    pub(crate) fn trampoline(self) -> Result<Trampoline, String> {
        let func = (anchor as fn() -> u64 as *const ()).wrapping_byte_add(self.func as usize);
        if !sys::in_exe_code(func as usize) {
            return Err(format!(
                "function offset {:#x} is outside the executable's code",
                self.func
            ));
        }
        let ptr = (anchor as fn() -> u64 as *const ()).wrapping_byte_add(self.tramp as usize);
        if !sys::in_exe_code(ptr as usize) {
            return Err(format!(
                "trampoline offset {:#x} is outside the executable's code",
                self.tramp
            ));
        }
        // SAFETY: the parent computed `tramp` from a `Trampoline` of this same executable
        // (fingerprint checked before any task), so `ptr` is such a function.
        Ok(unsafe { std::mem::transmute::<*const (), Trampoline>(ptr) })
    }
}

/// A task frame under construction: header, then items appended one by one.
pub(crate) struct TaskFrame {
    pub(crate) buf: Vec<u8>,
    pub(crate) count: u32,
}

impl TaskFrame {
    pub(crate) fn new(id: u64, f: FnRef) -> TaskFrame {
        let mut buf = Vec::with_capacity(64);
        buf.push(TASK);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&f.tramp.to_le_bytes());
        buf.extend_from_slice(&f.func.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
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
        self.buf[25..29].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// A parsed task frame.
pub(crate) struct Task<'a> {
    pub(crate) id: u64,
    pub(crate) f: FnRef,
    pub(crate) items: Items<'a>,
}

/// Parses a task frame (after its tag byte has been checked).
pub(crate) fn parse_task(frame: &[u8]) -> Result<Task<'_>, String> {
    if frame.len() < TASK_HEADER {
        return Err(format!("task frame of {} bytes is too short", frame.len()));
    }
    let id = u64_at(frame, 1);
    let f = FnRef {
        tramp: u64_at(frame, 9),
        func: u64_at(frame, 17),
    };
    let count = u32_at(frame, 25);
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

/// Parses a results frame (after its tag byte has been checked).
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

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// A postcard output that appends to a `Vec` with `extend_from_slice` (postcard's own
/// `to_extend` copies byte strings one byte at a time).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 4 {
            // Short varints: a call to memcpy costs more than the copy.
            self.0.reserve(data.len());
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value`, postcard-encoded, to `out`; on failure `out` is left as it was.
/// Always inline: it is the encoding step of the per-item loops (a pool's chunks, a
/// worker's results), where a call costs as much as encoding a small value.
#[inline(always)]
pub(crate) fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    let len = out.len();
    // What `postcard::serialize_with_flavor` does (`Append::finalize` has nothing to do),
    // here so that it inlines into the per-item loops.
    let mut ser = postcard::Serializer { output: Append(out) };
    value.serialize(&mut ser).map_err(|e| {
        ser.output.0.truncate(len);
        e.to_string()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u64 {
        u64::from(x) * 2
    }

    #[test]
    fn task_frame_round_trip() {
        let f = FnRef { tramp: 7, func: 9 };
        let mut t = TaskFrame::new(42, f);
        t.push(b"abc");
        t.push(b"");
        let frame = t.finish();
        assert_eq!(frame[0], TASK);
        let task = parse_task(&frame).unwrap();
        assert_eq!((task.id, task.f), (42, f));
        let items: Vec<_> = task.items.map(Result::unwrap).collect();
        assert_eq!(items, vec![(0, &b"abc"[..]), (0, &b""[..])]);
    }

    #[test]
    fn truncated_frames_are_errors() {
        let mut t = TaskFrame::new(1, FnRef { tramp: 0, func: 0 });
        t.push(b"hello");
        let frame = t.finish();
        let cut = &frame[..frame.len() - 1];
        let mut items = parse_task(cut).unwrap().items;
        assert!(items.next().unwrap().is_err());
        assert!(items.next().is_none());
        assert!(parse_task(&frame[..10]).is_err());
        assert!(parse_results(&[RESULTS, 1, 2]).is_err());
    }

    #[test]
    fn results_frame_round_trip() {
        let mut r = ResultsFrame::new(Vec::new(), 5, 3);
        r.push(ITEM_OK, b"xy");
        r.push(ITEM_FAILED, b"no");
        let frame = r.seal().to_vec();
        let p = parse_results(&frame).unwrap();
        assert_eq!((p.id, p.first, p.count), (5, 3, 2));
        let e: Vec<_> = p.entries.map(Result::unwrap).collect();
        assert_eq!(e, vec![(ITEM_OK, &b"xy"[..]), (ITEM_FAILED, &b"no"[..])]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
    fn trampoline_calls_the_function_in_this_process() {
        let f = FnRef::new(double).unwrap();
        let t = f.trampoline().unwrap();
        let input = postcard::to_allocvec(&21u32).unwrap();
        let mut out = Vec::new();
        // SAFETY: `f` was made by `FnRef::new` in this very process.
        unsafe { t(f.func, &input, &mut out) }.unwrap();
        assert_eq!(postcard::from_bytes::<u64>(&out).unwrap(), 42);
        // SAFETY: as above.
        match unsafe { t(f.func, &[], &mut out) } {
            Err(Failure::DecodeArgs(e)) => assert!(e.contains("as u32"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
    fn offsets_outside_the_code_are_refused() {
        let good = FnRef::new(double).unwrap();
        for f in [
            FnRef {
                tramp: u64::MAX / 2,
                func: good.func,
            },
            FnRef {
                tramp: good.tramp,
                func: u64::MAX / 2,
            },
        ] {
            assert!(f.trampoline().is_err());
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
    fn fingerprint_is_stable() {
        assert_eq!(Fingerprint::current(), Fingerprint::current());
        assert!(Fingerprint::current().is_ok());
    }

    #[test]
    fn decode_result_maps_tags() {
        let ok = postcard::to_allocvec(&5u8).unwrap();
        assert_eq!(decode_result::<u8>(ITEM_OK, &ok).unwrap(), 5);
        let p = postcard::to_allocvec(&("boom".to_owned(), "a.rs:1:2".to_owned())).unwrap();
        match decode_result::<u8>(ITEM_PANICKED, &p) {
            Err(ProcessError::Panicked { message, location }) => {
                assert_eq!((message.as_str(), location.as_str()), ("boom", "a.rs:1:2"));
            }
            other => panic!("{other:?}"),
        }
    }
}
