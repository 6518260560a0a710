//! The conformance suite: one set of behavioural tests of the public types, run on two
//! backings.
//!
//! Each test is a function generic over [`Backend`] (`queue.rs`, `value_array.rs`);
//! `conformance_tests!` instantiates every one twice:
//! - `heap::NAME`: heap memory laid out like a segment (`shmproc::testing`, the `testing`
//!   feature: the same header, participant table and body, written and validated by the same
//!   code), with beacon bits for liveness and short sleeps for waiting. No system call, so
//!   `.ci/miri.sh` runs these under Miri.
//! - `shm::NAME`: real `/dev/shm` segments under unique names, unlinked when the creating
//!   handle drops. Ignored under Miri, which cannot run `shm_open` or `mmap`.
//!
//! "Another process" is a peer handle (`peer()`): its own participant record and beacon, on
//! `/dev/shm` its own descriptor. A death is `simulate_crash()`: no deregistration, the
//! beacon dropped; on `/dev/shm` that is closing the peer's descriptor, which releases its
//! OFD lock exactly as the kernel does when a process dies, so the crash cases run on both
//! backings. A process stopped at a fault point is `stall_after_put_claim()` /
//! `stall_after_get_claim()`. Real SIGKILL/SIGSTOP tests are in `tests/queue_crash.rs` and
//! `tests/value_array.rs`.
//!
//! Counts shrink under Miri (`cfg!(miri)`), which interprets every step.

mod queue;
mod value_array;

use bytemuck::Pod;
use queue::*;
use shmproc::testing::{heap_array, heap_queue, heap_value};
use shmproc::{Array, Queue, Value};
use std::time::Duration;
use value_array::*;

/// Where the objects under test live.
pub(crate) trait Backend {
    fn queue<T: Pod>(capacity: usize) -> Queue<T>;
    fn value<T: Pod>(initial: T) -> Value<T>;
    fn array<T: Pod>(len: usize, fill: T) -> Array<T>;
}

/// Heap memory laid out like a segment.
struct Heap;

impl Backend for Heap {
    fn queue<T: Pod>(capacity: usize) -> Queue<T> {
        heap_queue(capacity).expect("heap queue")
    }
    fn value<T: Pod>(initial: T) -> Value<T> {
        heap_value(initial).expect("heap value")
    }
    fn array<T: Pod>(len: usize, fill: T) -> Array<T> {
        heap_array(len, fill).expect("heap array")
    }
}

/// Named segments in `/dev/shm`.
struct Shm;

/// A name no other test or process uses (our pid, then a counter); anything a killed earlier
/// run of this pid left behind is removed first.
fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("cf{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let _ = shmproc::remove(&name);
    name
}

impl Backend for Shm {
    fn queue<T: Pod>(capacity: usize) -> Queue<T> {
        Queue::create(&unique_name(), capacity).expect("shm queue")
    }
    fn value<T: Pod>(initial: T) -> Value<T> {
        Value::create(&unique_name(), initial).expect("shm value")
    }
    fn array<T: Pod>(len: usize, fill: T) -> Array<T> {
        Array::create(&unique_name(), len, fill).expect("shm array")
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A wait that should end at once; the bound only keeps a failing run from hanging.
pub(crate) const LONG: Duration = Duration::from_secs(60);

/// Runs every listed test on both backings: `heap::NAME` and `shm::NAME`.
macro_rules! conformance_tests {
    ($($test:ident),* $(,)?) => {
        mod heap {
            $(
                #[test]
                fn $test() {
                    super::$test::<super::Heap>();
                }
            )*
        }
        mod shm {
            $(
                #[test]
                #[cfg_attr(miri, ignore = "Miri cannot run shm_open or mmap")]
                fn $test() {
                    super::$test::<super::Shm>();
                }
            )*
        }
    };
}

conformance_tests!(
    queue_is_fifo,
    queue_carries_items_of_odd_size_and_alignment,
    queue_carries_large_items_whole,
    queue_by_reference_puts_and_gets,
    queue_try_put_full_and_try_get_empty,
    queue_close_drains_then_reports_closed,
    queue_close_wakes_blocked_callers,
    queue_timeouts,
    queue_len_is_empty_is_full,
    queue_capacity_1_and_7_wrap_around_many_laps,
    queue_task_done_and_join,
    queue_dead_producers_position_is_skipped_and_capacity_kept,
    queue_dead_consumers_slot_is_repaired_and_capacity_kept,
    queue_put_blocked_by_a_consumer_wakes_when_it_dies,
    queue_two_producers_two_consumers_deliver_each_item_once_in_order,
    queue_threads_sharing_one_handle_deliver_each_item_once_in_order,
    dead_handles_records_are_reused,
    value_lock_load_store,
    value_try_lock_would_block_and_lock_timeout,
    value_owner_died_then_repaired,
    value_blocked_locker_sees_owner_died,
    value_declined_repair_is_unrecoverable,
    array_get_set_read_into_write_from,
    array_bounds_are_checked,
    array_owner_died_then_repaired,
);
