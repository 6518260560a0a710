//! Task frames as a child reads them, for the fuzz target `job_frames` (feature `fuzzing`;
//! not part of the API). It builds and seals frames as a parent does and checks them as a
//! child does, without running anything.

use super::wire::{self, FnRef, JobKey, Rejected, TaskFrame, Verifier};

/// Bytes of a task frame (kind 2) before its items.
pub const TASK_HEADER: usize = wire::TASK_HEADER;
/// Bytes of a plain-data task frame (kind 7) before its items.
pub const TASK_POD_HEADER: usize = wire::TASK_POD_HEADER;

/// The fields of an accepted task frame that say what to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame kind (2 or 7).
    pub kind: u8,
    /// The task id.
    pub id: u64,
    /// The trampoline offset.
    pub tramp: u64,
    /// The function offset.
    pub func: u64,
    /// The item count.
    pub count: u32,
}

/// Why a child does not run a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It cannot parse the frame and exits (code 76).
    Malformed(String),
    /// The MAC or sequence number is wrong: it refuses the task and serves on.
    Refused(String),
}

/// A task frame sealed under `key` with sequence number `seq`: kind 2 with `items` as its
/// postcard items, or (`pod`) kind 7 whose items are `items` cut in pieces of `size` bytes
/// (results of `size` bytes too; a remainder shorter than `size` is dropped).
#[allow(clippy::too_many_arguments)]
pub fn sealed_frame(
    key: [u8; 16],
    seq: u64,
    pod: bool,
    id: u64,
    tramp: u64,
    func: u64,
    items: &[&[u8]],
    size: u32,
) -> Vec<u8> {
    let f = FnRef { tramp, func };
    let mut frame = if pod {
        let size = size.max(1);
        let bytes: Vec<u8> = items.concat();
        let count = bytes.len() / size as usize;
        let mut frame = Vec::new();
        wire::pod_task_header(&mut frame, id, f, count as u32, size, size);
        frame.extend_from_slice(&bytes[..count * size as usize]);
        frame
    } else {
        let mut t = TaskFrame::new(id, f);
        for item in items {
            t.push(item);
        }
        t.finish()
    };
    wire::seal(&mut frame, &JobKey(key), seq);
    frame
}

/// What a child whose key is `key`, and whose last accepted sequence number is `last`, does
/// with `frame`: `Ok` with the header if it would run the task (its items all parse), or
/// why not.
pub fn check_frame(key: [u8; 16], last: u64, frame: &[u8]) -> Result<Header, Verdict> {
    let mut v = Verifier::new(JobKey(key));
    if last > 0 {
        // Accept a frame of sequence number `last`, as a child that has run it would have.
        let earlier = sealed_frame(key, last, false, 0, 0, 0, &[], 0);
        if let Err(e) = v.check(&earlier) {
            panic!("a freshly sealed frame is rejected: {e:?}");
        }
    }
    match v.check(frame) {
        Ok(()) => {}
        Err(Rejected::Malformed(e)) => return Err(Verdict::Malformed(e)),
        Err(Rejected::Refused(e)) => return Err(Verdict::Refused(e)),
    }
    if frame[0] == wire::TASK {
        let t = wire::parse_task(frame).map_err(Verdict::Malformed)?;
        let count = wire::u32_at(frame, TASK_HEADER - 4);
        for item in t.items {
            item.map_err(Verdict::Malformed)?;
        }
        Ok(Header {
            kind: wire::TASK,
            id: t.id,
            tramp: t.f.tramp,
            func: t.f.func,
            count,
        })
    } else {
        let t = wire::parse_pod_task(frame).map_err(Verdict::Malformed)?;
        Ok(Header {
            kind: wire::TASK_POD,
            id: t.id,
            tramp: t.f.tramp,
            func: t.f.func,
            count: t.count as u32,
        })
    }
}
