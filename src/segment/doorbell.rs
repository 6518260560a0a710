//! A handle's async doorbell (feature `tokio`): how a task waits for a segment's wake-ups
//! without a thread. The design and its model: ARCHITECTURE.md, "Async waiting: a doorbell
//! per handle"; `models/doorbell_model.py`.
//!
//! The doorbell is a non-blocking datagram socket in the abstract namespace, registered with
//! the tokio reactor of the first async wait. A waker never touches it but through
//! `os::ring_doorbell` (one non-blocking send). An async wait is: attempt; `arm` (record and
//! header counts); announce itself as a sleeper in the primitive's protocol; attempt again;
//! await a ring or the re-check slice; depart and disarm (also when the future is dropped).

use super::Segment;
use crate::os;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// How long an async waiter waits for a ring before it attempts again anyway: as a blocking
/// waiter's futex slice, this bounds what a waker killed between its change and its ring
/// (or a doorbell a peer scribbled over) can cost.
const SLICE: Duration = Duration::from_millis(10);

/// A bound doorbell, shared by every task that waits through this handle.
///
/// One datagram wakes the handle, not one task: the task that drains the socket bumps
/// `epoch` and wakes the others (`drained`), and a task whose snapshot of `epoch`, taken
/// when it armed, is stale does not wait at all. Without that, a task that armed before a
/// ring but reached the socket after another task drained it would sleep through the ring
/// that was meant for it too (`models/doorbell_model.py`, `wake_at_arrival`).
pub(crate) struct Doorbell {
    sock: tokio::net::UnixDatagram,
    nonce: u32,
    /// Drains so far.
    epoch: AtomicU64,
    /// Woken at every drain.
    drained: tokio::sync::Notify,
}

impl Doorbell {
    /// Binds a doorbell with a fresh random nonce (must run inside a tokio runtime).
    fn bind() -> io::Result<Doorbell> {
        let mut last = io::Error::from(io::ErrorKind::AddrInUse);
        for _ in 0..8 {
            let mut b = [0u8; 4];
            os::random_bytes(&mut b)?;
            let nonce = u32::from_ne_bytes(b) | 1;
            match os::bind_doorbell(nonce) {
                Ok(std_sock) => {
                    let sock = tokio::net::UnixDatagram::from_std(std_sock)?;
                    return Ok(Doorbell {
                        sock,
                        nonce,
                        epoch: AtomicU64::new(0),
                        drained: tokio::sync::Notify::new(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The drain count, snapshot by a task when it arms (before it announces itself).
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Waits, at most until `until`, for a ring (then drains the socket and wakes the other
    /// waiting tasks) or for another task's drain since `since`.
    async fn ring_or(&self, since: u64, until: Instant) {
        let mut sleep = std::pin::pin!(tokio::time::sleep_until(until.into()));
        loop {
            let mut notified = std::pin::pin!(self.drained.notified());
            notified.as_mut().enable();
            if self.epoch() != since {
                return;
            }
            let readable = std::future::poll_fn(|cx| {
                if notified.as_mut().poll(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                self.sock.poll_recv_ready(cx).map(|r| r.is_ok())
            })
            .await;
            if !readable {
                return;
            }
            let mut buf = [0u8; 16];
            let mut any = false;
            while self.sock.try_recv(&mut buf).is_ok() {
                any = true;
            }
            if any {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.drained.notify_waiters();
                return;
            }
            // Readiness without a datagram (another task drained first): wait again.
        }
    }
}

/// Disarms (and runs the primitive's `depart`) when dropped: at the end of a wait episode
/// and when the future is dropped mid-wait (cancellation leaves no registration behind).
struct Armed<'a, D: FnMut()> {
    seg: &'a Segment,
    depart: Option<D>,
}

impl<D: FnMut()> Drop for Armed<'_, D> {
    fn drop(&mut self) {
        if let Some(mut d) = self.depart.take() {
            d();
        }
        self.seg.disarm();
    }
}

impl Segment {
    fn doorbell(&self) -> Option<&Doorbell> {
        self.doorbell.get_or_init(Doorbell::bind).as_ref().ok()
    }

    /// Waits in async form until `attempt` succeeds or `deadline` passes (`None`).
    ///
    /// `announce` makes this waiter a sleeper in the primitive's own protocol (so that its
    /// wakers call one of `Wait`'s wakes) and returns what `depart` needs to undo it. Each
    /// round: attempt; arm; announce; attempt again (a change made before the announce is
    /// seen here, one made after it rings the doorbell); await a ring or a slice; depart and
    /// disarm. Without a doorbell (no socket could be bound) it polls every slice.
    ///
    /// Cancel safety: dropping the future at its await point departs and disarms; whether
    /// a result is lost depends on `attempt` only (the callers' attempts hand over what they
    /// took in the same call that takes it).
    pub(crate) async fn wait_async<R, T>(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Option<R>,
        announce: impl Fn() -> T,
        depart: impl Fn(T),
    ) -> Option<R>
    where
        T: Copy,
    {
        loop {
            if let Some(r) = attempt() {
                return Some(r);
            }
            if crate::raw::expired(deadline) {
                return None;
            }
            let slice_end = Instant::now() + SLICE;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let Some(bell) = self.doorbell() else {
                tokio::time::sleep_until(until.into()).await;
                continue;
            };
            // The drain count before the arm: a drain after it may have carried our ring.
            let since = bell.epoch();
            self.arm(bell.nonce);
            let token = announce();
            let _armed = Armed {
                seg: self,
                depart: Some(|| depart_once(&depart, &token)),
            };
            if let Some(r) = attempt() {
                return Some(r);
            }
            bell.ring_or(since, until).await;
        }
    }
}

fn depart_once<T>(depart: &impl Fn(T), token: &T)
where
    T: Copy,
{
    depart(*token);
}
