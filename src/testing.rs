//! Test-only (the `testing` feature; never enable it in production builds): a second backing
//! for the public types and the means to play "another process" and "its death" inside one
//! test process. The conformance suite (`tests/conformance/`) runs the same tests on this
//! backing and on real `/dev/shm` segments, and `.ci/miri.sh` runs its heap half under Miri.
//!
//! - [`heap_queue`], [`heap_value`], [`heap_array`]: objects in heap memory laid out exactly
//!   like a segment (the same header, participant table and body, written and validated by
//!   the same code), with liveness beacons as bits and waiting as short sleeps. No system
//!   call is made, which is what lets Miri run them.
//! - [`Handle::peer`]: a second handle on the same object, as another process would have (on
//!   `/dev/shm` opened by name, with its own descriptor and beacon).
//! - [`Handle::simulate_crash`]: ends a handle the way SIGKILL ends a process: no
//!   deregistration, no unlink, its beacon dropped (on `/dev/shm` by closing its descriptor,
//!   which releases its OFD locks exactly as the kernel does at death).
//! - [`Stall`]: a queue participant that stops for good right after its claim, as a process
//!   stopped at the `queue.put.after_claim` or `queue.get.after_claim` fault point does.
//!
//! Real SIGKILL and SIGSTOP tests are in `tests/queue_crash.rs` and `tests/value_array.rs`.

use crate::{Array, OpenError, Queue, Value};
use bytemuck::Pod;

/// A handle that can be duplicated and killed as a process's handle can.
pub trait Handle: Sized {
    /// Another handle on the same object, as another process would open it: its own
    /// participant record and beacon.
    ///
    /// # Errors
    /// As `open` for the object's type (on the heap: `TooManyParticipants` when every
    /// record is held).
    fn peer(&self) -> Result<Self, OpenError>;

    /// Ends this handle as SIGKILL would end its process: no deregistration and no unlink;
    /// its beacon is dropped, so peers find it dead.
    fn simulate_crash(self);
}

/// Single steps of a queue participant that then stops for good.
pub trait Stall {
    /// Claims the tail position for a put and stops there, as a producer stopped at the
    /// `queue.put.after_claim` fault point (then [`Handle::simulate_crash`] for a killed
    /// one). `false` if there was no room to claim.
    fn stall_after_put_claim(&self) -> bool;

    /// Claims the head item and stops holding it, as a consumer stopped at the
    /// `queue.get.after_claim` fault point. `false` if there was no item to claim.
    fn stall_after_get_claim(&self) -> bool;
}

/// A queue of `capacity` items on heap memory laid out like a segment.
///
/// # Errors
/// As [`Queue::create`], less the name and space errors.
pub fn heap_queue<T: Pod>(capacity: usize) -> Result<Queue<T>, OpenError> {
    Queue::heap(capacity)
}

/// A value on heap memory laid out like a segment.
///
/// # Errors
/// As [`Value::create`], less the name and space errors.
pub fn heap_value<T: Pod>(initial: T) -> Result<Value<T>, OpenError> {
    Value::heap(initial)
}

/// `len` copies of `fill` on heap memory laid out like a segment.
///
/// # Errors
/// As [`Array::create`], less the name and space errors.
pub fn heap_array<T: Pod>(len: usize, fill: T) -> Result<Array<T>, OpenError> {
    Array::heap(len, fill)
}
