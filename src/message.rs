//! Message queues: byte strings ([`ByteQueue`]) and serde values ([`MessageQueue<T>`]) of any
//! length up to a maximum chosen at creation, on the same crash-tolerant ring as
//! [`Queue<T>`](crate::Queue).
//!
//! # Fixed-size slots, not a variable-length ring
//!
//! Every slot reserves room for the largest message: the segment needs about
//! `capacity x (max_message_size + 16)` bytes (each cell rounded up to 64), whatever the
//! messages' real sizes. A variable-length ring (a byte ring with wrap-around records) would
//! need only as much memory as the messages in flight, but its records cannot reuse the slot
//! protocol: a dead writer's half-reserved record, its skipping and its repair would need a
//! new protocol and a new model (`models/intent_model.py` checks the slot protocol).
//! Fixed slots keep every guarantee of `Queue<T>` (exactly once, per-producer order, a
//! killed process costs at most its own message, `close`, `join`) for free. By default the
//! whole segment is allocated at creation (see [`Options::sparse`](crate::Options::sparse)), so creation fails with
//! [`OpenError::NoSpace`](crate::OpenError::NoSpace) rather than a later first touch of a slot with `SIGBUS` when
//! `/dev/shm` is full. A queue created with `sparse(true)` allocates only the pages that
//! messages touch (tmpfs allocates on first touch: a 64 KiB slot that only ever carries
//! 100-byte messages costs one 4 KiB page), at the price of that `SIGBUS` should `/dev/shm`
//! fill up later.
//!
//! | choice | memory | large messages | crash tolerance |
//! |---|---|---|---|
//! | fixed slots (this) | `capacity x max`, allocated at creation (or on first touch with `sparse`) | any size up to [`MAX_MESSAGE_SIZE`] (1 GiB) | the ring's, model-checked |
//! | variable-length ring | bytes in flight | up to the ring size | a new protocol to design and check |
//!
//! # Layout of one message ring (offsets from its start, which is 128-aligned)
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 640 | `RingControl` (tail, head, closed, three eventcounts, the records' high mark) |
//! | 640 | 128 x 4 x participants | claim records (`raw/claims.rs`) |
//! | `cells` (128-aligned) | `stride` x capacity | cell `i`: slot word `i` (as in `Queue<T>`), a `u64` length, then up to `max` bytes; `stride = align_up(16 + max, 64)` |
//!
//! A consumer never trusts the length word: one larger than the maximum drops that message
//! with [`RecvError::Corrupted`](crate::RecvError::Corrupted), and bytes are copied out with atomic loads into the
//! caller's buffer, so a hostile peer can garble a message but not make us read outside the
//! cell, panic or race.
mod byte_queue;
mod message_queue;
mod ring;
mod stream;

pub use byte_queue::ByteQueue;
pub use message_queue::MessageQueue;
pub(crate) use message_queue::{decode, encode, with_scratch};
pub(crate) use ring::{MsgRing, RingLayout, RingParts, check_sizes};
pub use stream::{MessageReader, MessageWriter};

use crate::raw::deadline_after;
use crate::raw::ring::Block;
use std::time::Duration;

/// Largest `max_message_size` a message queue or pipe may have (1 GiB).
pub const MAX_MESSAGE_SIZE: usize = 1 << 30;

fn until(timeout: Duration) -> Block {
    Block::Until(deadline_after(timeout))
}

/// [`join_ring`](crate::queue::join_ring) in async form (feature `tokio`): waits on `seg`'s
/// doorbell, announced on the ring's `tasks` eventcount, which `task_done`, retiring puts and
/// `close` wake; the wait loop's 10 ms re-checks cover work that died with its participant.
/// Nothing is taken, so dropping the future loses nothing.
#[cfg(feature = "tokio")]
pub(crate) async fn join_ring_async(
    seg: &crate::segment::Segment,
    ring: &crate::raw::ring::RawRing<'_>,
    deadline: Option<std::time::Instant>,
) -> Result<(), crate::error::TaskError> {
    use crate::primitive::Ordering;
    let table = seg.participant_table();
    let participants = |visit: &mut dyn FnMut(crate::raw::Owner, u64) -> bool| {
        for (i, rec) in table.iter().enumerate() {
            if let Some(owner) = rec.occupant(i as u32)
                // Acquire, as in `join_ring`: a `task_done` seen here comes with its get.
                && !visit(owner, rec.tasks_done.load(Ordering::Acquire))
            {
                return;
            }
        }
    };
    seg.wait_async(
        deadline,
        || ring.join_ready(seg, &participants).then_some(()),
        || ring.announce_join(),
        |()| ring.depart_join(),
    )
    .await
    .ok_or(crate::error::TaskError::Timeout)
}
