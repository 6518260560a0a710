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
//! anchors) against its own, the task frame's MAC (below), and that both addresses lie in
//! the executable's code segments; a child that is not the same build refuses the job.
//!
//! # Frames (all integers little-endian)
//!
//! | frame | bytes |
//! |---|---|
//! | parent to child: start | `1`, then postcard [`Start`] |
//! | parent to child: task | `2`, sequence `u64`, MAC `[u8; 16]`, id `u64`, trampoline offset `u64`, function offset `u64`, count `u32`, then `count` items: length `u32`, postcard `A` |
//! | parent to child: plain-data task | `7`, sequence `u64`, MAC `[u8; 16]`, id `u64`, trampoline offset `u64`, function offset `u64`, count `u32`, item size `u32`, result size `u32`, then `count` items of raw bytes, item size each |
//! | parent to child: exit | `3` |
//! | child to parent: ready | `4`, pid `u32` |
//! | child to parent: refused | `5`, UTF-8 reason |
//! | child to parent: results | `6`, task id `u64`, first item `u32`, count `u32`, then `count` results: tag `u8` (0 ok, 1 panicked, 2 failed), length `u32`, bytes |
//! | child to parent: plain-data results | `8`, task id `u64`, first item `u32`, count `u32`, then `count` ok results of raw bytes, result size each |
//! | child to parent: task refused | `9`, UTF-8 reason |
//!
//! # Authenticated task frames
//!
//! A task frame names code to run, and the pipe it travels in is a segment that another
//! process of the same user can write until the child has connected. So the parent makes a
//! random 16-byte [`JobKey`] per child and hands it over the child's stdin (a pipe, never
//! shared memory, the command line or the environment), and every task frame carries a
//! sequence number, strictly rising per child, and a SipHash-2-4-128 MAC under that key
//! over its header (everything before the items except the MAC itself) and the frame's
//! length. The child checks both ([`Verifier`]) before it looks at an offset: a frame that
//! fails is answered with a task-refused frame and never run, and the child goes on with
//! the next one. The items (the arguments) are not covered: a peer that rewrites them makes
//! the child decode garbage (a `Decode` error for postcard items; plain-data items take any
//! bytes), never run another function.
//!
//! A plain-data task (`Pool::map_pod`) is answered with plain-data results frames, and with
//! a (tagged) results frame for an item that panicked or failed.
//!
//! An ok result holds postcard `R`; a panicked one postcard `(message, location)`; a failed
//! one a postcard [`Failure`] (arguments that do not decode, a result that does not encode
//! or is too large).

use super::sys;
use crate::codec::append;
use crate::error::ProcessError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use siphasher::sip128::{Hash128, Hasher128, SipHasher24};
use std::hash::Hasher;
use std::sync::OnceLock;

pub(crate) const START: u8 = 1;
pub(crate) const TASK: u8 = 2;
pub(crate) const EXIT: u8 = 3;
pub(crate) const READY: u8 = 4;
pub(crate) const REFUSED: u8 = 5;
pub(crate) const RESULTS: u8 = 6;
pub(crate) const TASK_POD: u8 = 7;
pub(crate) const RESULTS_POD: u8 = 8;
pub(crate) const TASK_REFUSED: u8 = 9;

pub(crate) const ITEM_OK: u8 = 0;
pub(crate) const ITEM_PANICKED: u8 = 1;
pub(crate) const ITEM_FAILED: u8 = 2;

/// Where a task frame's sequence number lies.
const SEQ_AT: usize = 1;
/// Where a task frame's MAC lies.
const MAC_AT: usize = 9;
/// Where a task frame's id lies.
const ID_AT: usize = 25;
/// Where a task frame's trampoline offset lies (the function offset follows).
const TRAMP_AT: usize = 33;
/// Where a task frame's function offset lies.
const FUNC_AT: usize = 41;
/// Where a task frame's item count lies.
const COUNT_AT: usize = 49;
/// Bytes of a task frame before its items.
pub(crate) const TASK_HEADER: usize = 1 + 8 + 16 + 8 + 8 + 8 + 4;
/// Bytes of a results frame before its results.
pub(crate) const RESULTS_HEADER: usize = 1 + 8 + 4 + 4;
/// Bytes of a plain-data task frame before its items.
pub(crate) const TASK_POD_HEADER: usize = TASK_HEADER + 4 + 4;
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

/// Runs the `fn(A) -> R` at offset `func` on every item of `input` (raw `A`s), writing the
/// raw `R`s to `out` and counting the items done in `done` as it goes (so that after a
/// panic, item `*done` is the one that panicked). `sizes` are the item and result sizes the
/// frame claims: the trampoline checks them against `A` and `R`, and the lengths of `input`
/// and `out` against them. Panics of the function propagate.
///
/// # Safety
/// As [`Trampoline`], for the `A` and `R` of a [`pod_trampoline`].
pub(crate) type PodTrampoline =
    unsafe fn(func: u64, input: &[u8], out: &mut [u8], sizes: (usize, usize), done: &mut usize) -> Result<(), Failure>;

/// Reads each `A` from `input`, calls the `fn(A) -> R` at offset `func`, writes the `R`'s
/// bytes to `out`.
///
/// # Safety
/// As [`PodTrampoline`].
unsafe fn pod_trampoline<A: bytemuck::Pod, R: bytemuck::Pod>(
    func: u64,
    input: &[u8],
    out: &mut [u8],
    sizes: (usize, usize),
    done: &mut usize,
) -> Result<(), Failure> {
    let (asize, rsize) = (size_of::<A>(), size_of::<R>());
    if sizes != (asize, rsize) {
        return Err(Failure::DecodeArgs(format!(
            "the task says items of {} bytes and results of {} bytes, but {} is {asize} bytes and {} is {rsize}",
            sizes.0,
            sizes.1,
            std::any::type_name::<A>(),
            std::any::type_name::<R>()
        )));
    }
    let n = input.len().checked_div(asize).unwrap_or(0);
    if asize == 0 || rsize == 0 || input.len() % asize != 0 || out.len() != n.wrapping_mul(rsize) {
        return Err(Failure::DecodeArgs(format!(
            "{} bytes of items as {} ({asize} bytes each), with {} bytes for results",
            input.len(),
            std::any::type_name::<A>(),
            out.len()
        )));
    }
    let ptr = (anchor as fn() -> u64 as *const ()).wrapping_byte_add(func as usize);
    // SAFETY: as in `trampoline`: the caller guarantees that `func` is the offset of a
    // `fn(A) -> R` of this executable.
    let f = unsafe { std::mem::transmute::<*const (), fn(A) -> R>(ptr) };
    for (i, (a, r)) in input.chunks_exact(asize).zip(out.chunks_exact_mut(rsize)).enumerate() {
        let result = f(bytemuck::pod_read_unaligned::<A>(a));
        r.copy_from_slice(bytemuck::bytes_of(&result));
        *done = i + 1;
    }
    Ok(())
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
        Self::check_and_make(f as usize, t as usize)
    }

    /// Names `f` for a child's plain-data tasks (its trampoline is a [`PodTrampoline`]).
    ///
    /// # Errors
    /// As [`FnRef::new`].
    pub(crate) fn new_pod<A: bytemuck::Pod, R: bytemuck::Pod>(f: fn(A) -> R) -> Result<FnRef, ProcessError> {
        let t: PodTrampoline = pod_trampoline::<A, R>;
        Self::check_and_make(f as usize, t as usize)
    }

    fn check_and_make(f: usize, t: usize) -> Result<FnRef, ProcessError> {
        for (what, addr) in [("the function", f), ("its trampoline", t)] {
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
            tramp: t.wrapping_sub(anchor_addr()) as u64,
            func: f.wrapping_sub(anchor_addr()) as u64,
        })
    }

    /// In the child: where the trampoline this names lies, if it and the function lie in the
    /// executable's code.
    fn trampoline_ptr(self) -> Result<*const (), String> {
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
        Ok(ptr)
    }

    /// In the child: the trampoline this names, if it and the function lie in the
    /// executable's code.
    pub(crate) fn trampoline(self) -> Result<Trampoline, String> {
        let ptr = self.trampoline_ptr()?;
        // SAFETY: the parent computed `tramp` from a `Trampoline` of this same executable
        // (fingerprint checked before any task; the frame's MAC, checked before its offsets
        // are read, shows the parent wrote it), so `ptr` is such a function.
        Ok(unsafe { std::mem::transmute::<*const (), Trampoline>(ptr) })
    }

    /// In the child: the plain-data trampoline this names (of a plain-data task frame), if it
    /// and the function lie in the executable's code.
    pub(crate) fn pod_trampoline(self) -> Result<PodTrampoline, String> {
        let ptr = self.trampoline_ptr()?;
        // SAFETY: the parent computed `tramp` of a plain-data task from a `PodTrampoline` of
        // this same executable (`FnRef::new_pod`; fingerprint checked before any task; the
        // frame's MAC, checked before its offsets are read, shows the parent wrote it), so
        // `ptr` is such a function.
        Ok(unsafe { std::mem::transmute::<*const (), PodTrampoline>(ptr) })
    }
}

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

/// A child's job key: the SipHash key of the MACs on its task frames. Made at random for each
/// child ([`JobKey::random`]) and known only to the child and its parent.
#[derive(Clone, Copy)]
pub(crate) struct JobKey(pub(crate) [u8; 16]);

impl JobKey {
    /// A fresh key from the kernel's CSPRNG.
    pub(crate) fn random() -> std::io::Result<JobKey> {
        let mut k = [0; 16];
        sys::random_bytes(&mut k)?;
        Ok(JobKey(k))
    }

    /// The MAC of the task frame `frame` whose header is `header` bytes long: SipHash-2-4-128
    /// over the header without the MAC field, then the frame's length.
    fn mac(&self, frame: &[u8], header: usize) -> Hash128 {
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(&frame[..MAC_AT]);
        h.write(&frame[MAC_AT + 16..header]);
        h.write(&(frame.len() as u64).to_le_bytes());
        h.finish128()
    }
}

impl std::fmt::Debug for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobKey(..)")
    }
}

/// Length of the header of a task frame of kind `kind`, or `None` for a kind that is not a
/// task.
fn task_header_len(kind: u8) -> Option<usize> {
    match kind {
        TASK => Some(TASK_HEADER),
        TASK_POD => Some(TASK_POD_HEADER),
        _ => None,
    }
}

/// Gives the complete task frame `frame` (either kind) sequence number `seq` and its MAC
/// under `key`.
///
/// # Panics
/// If `frame` is not a whole task frame (a bug of the caller).
pub(crate) fn seal(frame: &mut [u8], key: &JobKey, seq: u64) {
    let header = frame.first().and_then(|&k| task_header_len(k)).expect("a task frame");
    frame[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
    let mac = key.mac(frame, header);
    frame[MAC_AT..MAC_AT + 8].copy_from_slice(&mac.h1.to_le_bytes());
    frame[MAC_AT + 8..MAC_AT + 16].copy_from_slice(&mac.h2.to_le_bytes());
}

/// Why a child does not run a task frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Too short to hold its header, or not a task frame: the child cannot go on reading
    /// its pipe and exits.
    Malformed(String),
    /// The MAC or the sequence number is wrong: the child answers with a task-refused frame
    /// and serves the next frame.
    Refused(String),
}

/// The child's check of task frames: the MAC under its key, and a sequence number above
/// every one accepted before.
pub(crate) struct Verifier {
    key: JobKey,
    /// The sequence number of the last frame accepted (0 before the first).
    last: u64,
}

impl Verifier {
    pub(crate) fn new(key: JobKey) -> Verifier {
        Verifier { key, last: 0 }
    }

    /// Accepts `frame` if it is a task frame whose MAC is right and whose sequence number is
    /// above the last accepted. Nothing of the frame is used before this returns `Ok`.
    pub(crate) fn check(&mut self, frame: &[u8]) -> Result<(), Rejected> {
        let Some(header) = frame.first().and_then(|&k| task_header_len(k)) else {
            return Err(Rejected::Malformed("not a task frame".to_owned()));
        };
        if frame.len() < header {
            return Err(Rejected::Malformed(format!(
                "task frame of {} bytes is shorter than its {header}-byte header",
                frame.len()
            )));
        }
        let sent = Hash128 {
            h1: u64_at(frame, MAC_AT),
            h2: u64_at(frame, MAC_AT + 8),
        };
        // `Hash128`'s `==` compares in constant time.
        if self.key.mac(frame, header) != sent {
            return Err(Rejected::Refused(
                "the task frame's MAC is wrong: something other than the parent wrote it".to_owned(),
            ));
        }
        let seq = u64_at(frame, SEQ_AT);
        if seq <= self.last {
            return Err(Rejected::Refused(format!(
                "the task frame's sequence number {seq} is not above the last accepted, {}: a \
                 replayed frame",
                self.last
            )));
        }
        self.last = seq;
        Ok(())
    }
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

    fn halve(x: [u8; 3]) -> u16 {
        u16::from(x[0]) + u16::from(x[2]) / 2
    }

    #[test]
    fn pod_task_frames_are_checked() {
        let f = FnRef { tramp: 7, func: 9 };
        let mut frame = Vec::new();
        pod_task_header(&mut frame, 42, f, 2, 3, 2);
        frame.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let t = parse_pod_task(&frame).unwrap();
        assert_eq!(
            (t.id, t.f, t.count, t.asize, t.rsize, t.items),
            (42, f, 2, 3, 2, &[1, 2, 3, 4, 5, 6][..])
        );
        // Bytes that are not `count` items of the item size; sizes of 0; a short header.
        assert!(parse_pod_task(&frame[..frame.len() - 1]).is_err());
        let mut longer = frame.clone();
        longer.push(0);
        assert!(parse_pod_task(&longer).is_err());
        for (count, asize, rsize) in [(0, 0, 2), (2, 3, 0), (u32::MAX, 1 << 31, 1)] {
            let mut bad = Vec::new();
            pod_task_header(&mut bad, 1, f, count, asize, rsize);
            bad.extend_from_slice(&[0; 6]);
            assert!(parse_pod_task(&bad).is_err(), "{count} {asize} {rsize}");
        }
        assert!(parse_pod_task(&frame[..TASK_POD_HEADER - 1]).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
    fn pod_trampoline_checks_sizes_and_lengths() {
        let f = FnRef::new_pod(halve).unwrap();
        let t = f.pod_trampoline().unwrap();
        let input = [10u8, 0, 4, 20, 0, 8];
        let mut out = [0u8; 4];
        let mut done = 0;
        // SAFETY: `f` was made by `FnRef::new_pod` in this very process.
        unsafe { t(f.func, &input, &mut out, (3, 2), &mut done) }.unwrap();
        assert_eq!(done, 2);
        assert_eq!(out, [12, 0, 24, 0]);
        let cases: [(&[u8], usize, (usize, usize)); 4] = [
            (&input[..5], 4, (3, 2)), // not a multiple of the item size
            (&input, 2, (3, 2)),      // room for the wrong number of results
            (&input, 4, (2, 2)),      // the frame's item size is not the type's
            (&input, 4, (3, 4)),      // nor its result size
        ];
        for (input, room, sizes) in cases {
            let mut out = vec![0u8; room];
            // SAFETY: as above.
            match unsafe { t(f.func, input, &mut out, sizes, &mut done) } {
                Err(Failure::DecodeArgs(_)) => {}
                other => panic!("{sizes:?} {room}: {other:?}"),
            }
        }
    }

    fn sealed_task(key: &JobKey, seq: u64) -> Vec<u8> {
        let mut t = TaskFrame::new(
            3,
            FnRef {
                tramp: 0x40,
                func: 0x80,
            },
        );
        t.push(b"args");
        let mut frame = t.finish();
        seal(&mut frame, key, seq);
        frame
    }

    fn sealed_pod_task(key: &JobKey, seq: u64) -> Vec<u8> {
        let mut frame = Vec::new();
        pod_task_header(
            &mut frame,
            4,
            FnRef {
                tramp: 0x40,
                func: 0x80,
            },
            2,
            3,
            2,
        );
        frame.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        seal(&mut frame, key, seq);
        frame
    }

    fn is_refused(r: Result<(), Rejected>) -> bool {
        matches!(r, Err(Rejected::Refused(_)))
    }

    #[test]
    fn sealed_frames_pass_in_rising_order_only() {
        let key = JobKey([7; 16]);
        let mut v = Verifier::new(key);
        let (f1, f2, f5) = (sealed_task(&key, 1), sealed_pod_task(&key, 2), sealed_task(&key, 5));
        v.check(&f1).unwrap();
        v.check(&f2).unwrap();
        // A replay of an accepted frame, then a sequence number that skips ahead (allowed),
        // then one below it.
        assert!(is_refused(v.check(&f1)));
        assert!(is_refused(v.check(&f2)));
        v.check(&f5).unwrap();
        assert!(is_refused(v.check(&sealed_task(&key, 4))));
        assert!(is_refused(v.check(&f5)));
        // The MAC still holds for a frame that was parsed: its fields are the sealed ones.
        let t = parse_task(&f5).unwrap();
        assert_eq!(
            (t.id, t.f),
            (
                3,
                FnRef {
                    tramp: 0x40,
                    func: 0x80
                }
            )
        );
    }

    #[test]
    fn every_header_byte_and_the_length_are_authenticated() {
        let key = JobKey(*b"0123456789abcdef");
        for (frame, header) in [
            (sealed_task(&key, 9), TASK_HEADER),
            (sealed_pod_task(&key, 9), TASK_POD_HEADER),
        ] {
            Verifier::new(key).check(&frame).unwrap();
            for at in 0..header {
                for flip in [1u8, 5, 16, 0x80] {
                    let mut bad = frame.clone();
                    bad[at] = bad[at].wrapping_add(flip);
                    match Verifier::new(key).check(&bad) {
                        Err(_) => {}
                        Ok(()) => panic!("byte {at} + {flip} of a header passed"),
                    }
                }
            }
            // Items are not covered, but the frame's length is.
            let mut args = frame.clone();
            *args.last_mut().unwrap() ^= 1;
            Verifier::new(key).check(&args).unwrap();
            let mut longer = frame.clone();
            longer.push(0);
            assert!(is_refused(Verifier::new(key).check(&longer)));
            assert!(is_refused(Verifier::new(key).check(&frame[..frame.len() - 1])));
            // Another key (a frame copied from another child's pipe).
            assert!(is_refused(Verifier::new(JobKey([0; 16])).check(&frame)));
        }
    }

    #[test]
    fn frames_that_cannot_be_parsed_are_malformed() {
        let key = JobKey([1; 16]);
        let frame = sealed_task(&key, 1);
        for bad in [
            &[][..],
            &[EXIT][..],
            &[START, 0][..],
            &frame[..TASK_HEADER - 1],
            &[TASK][..],
        ] {
            assert!(
                matches!(Verifier::new(key).check(bad), Err(Rejected::Malformed(_))),
                "{bad:?}"
            );
        }
        // A short plain-data frame: the task header fits, the plain-data header does not.
        let mut pod = frame[..TASK_HEADER].to_vec();
        pod[0] = TASK_POD;
        assert!(matches!(Verifier::new(key).check(&pod), Err(Rejected::Malformed(_))));
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
