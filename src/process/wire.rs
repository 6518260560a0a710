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
//! monomorphised `trampoline::<A, R>` (in [`function`]), named the same way, that decodes `A`,
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

mod auth;
mod frames;
mod function;
#[cfg(test)]
mod tests;

pub(crate) use auth::{JobKey, Rejected, Verifier, seal};
pub(crate) use frames::{
    ResultsFrame, TaskFrame, decode_result, encode_into, parse_pod_task, parse_results, parse_task, pod_task_header,
};
pub(crate) use function::{Failure, Fingerprint, FnRef, Start};

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
