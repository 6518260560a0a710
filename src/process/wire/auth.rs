//! Authenticated task frames: the per-child `JobKey`, `seal` (the parent's side) and the
//! child's `Verifier` (MAC and rising sequence numbers).

use super::*;
use crate::process::sys;
use siphasher::sip128::{Hash128, Hasher128, SipHasher24};
use std::hash::Hasher;

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
