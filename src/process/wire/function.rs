//! Naming a function across processes: the build `Fingerprint` and the start frame, the
//! anchors that offsets count from, the trampolines a child calls, and `FnRef`.

use crate::codec::append;
use crate::error::ProcessError;
use crate::process::sys;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

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
