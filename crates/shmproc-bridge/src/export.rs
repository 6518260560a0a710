//! Export: items from a local queue, published to the stream with a bounded number of
//! publish acknowledgements outstanding.

use crate::{BridgeError, StreamSpec, nats};
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use shmproc::{ByteQueue, RecvError};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::{Duration, Instant};

/// An item's publish, resolving to the item and the server's answer once it comes. The
/// window holds these in a `FuturesOrdered`, so every acknowledgement's own timeout runs
/// from its publish, not from when the items before it were answered (after a server
/// restart, the lost answers of a whole window then time out together, not one after the
/// other).
type InFlight = Pin<Box<dyn Future<Output = (String, bytes::Bytes, AckResult)> + Send>>;
type AckResult = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;

/// Publishes the items of a local queue to a JetStream stream (see the crate docs for what
/// a killed exporter can lose).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let client = async_nats::connect("127.0.0.1:4222").await?;
/// let jobs = shmproc::ByteQueue::open("jobs")?;
/// let report = shmproc_bridge::Exporter::new(client, shmproc_bridge::StreamSpec::new("JOBS"))
///     .in_flight(64)
///     .run(&jobs) // until `jobs` is closed and drained
///     .await?;
/// println!("{} items exported", report.exported);
/// # Ok(()) }
/// ```
pub struct Exporter {
    js: jetstream::Context,
    spec: StreamSpec,
    in_flight: usize,
    purge_ends: bool,
}

/// What an export run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Items taken from the local queue and acknowledged by the server.
    pub exported: u64,
    /// Of those, items the server already had (a re-sent publish, dropped by its id).
    pub duplicates: u64,
    /// Publishes sent again after a refusal for the stream's limits or a lost answer.
    pub retries: u64,
    /// The prefix of this run's message ids (`<run>-<n>` for the n-th item).
    pub run: String,
}

impl Exporter {
    /// An exporter to `spec`'s stream through `client` (connected and authenticated by the
    /// caller), with 32 items in flight.
    pub fn new(client: async_nats::Client, spec: StreamSpec) -> Exporter {
        Exporter {
            js: jetstream::new(client),
            spec,
            in_flight: 32,
            purge_ends: true,
        }
    }

    /// At most `n` items (at least 1) taken from the queue and not yet acknowledged by the
    /// server: what a killed exporter can lose.
    pub fn in_flight(mut self, n: usize) -> Self {
        self.in_flight = n.max(1);
        self
    }

    /// Leaves the end markers of earlier runs in the stream. By default a run removes them
    /// when it starts, so that they do not end this run's importers at once; when several
    /// exporters feed one stream at the same time, each keeps the others' markers and the
    /// importers count them ([`Importer::exporters`](crate::Importer::exporters)).
    pub fn keep_earlier_ends(mut self) -> Self {
        self.purge_ends = false;
        self
    }

    /// Exports until `queue` is closed and drained, then publishes the end marker.
    ///
    /// Each item is marked done in the local queue (`task_done`) once the server has
    /// acknowledged it, so a local `join` returns when every item is in the stream. Items are
    /// published in queue order; one refused for the stream's limits is sent again after a
    /// pause, behind those already in flight.
    ///
    /// # Errors
    /// [`BridgeError::ForeignStream`], or [`BridgeError::Nats`] when the server refuses a
    /// publish for a reason other than its limits (the items in flight are then lost, as
    /// when the exporter is killed), or [`BridgeError::LocalRecv`] on a corrupted item.
    pub async fn run(&self, queue: &ByteQueue) -> Result<ExportReport, BridgeError> {
        let stream = self.spec.ensure(&self.js).await?;
        if self.purge_ends {
            // End markers of an earlier run would end this one's importers.
            stream
                .purge()
                .filter(self.spec.end_subject())
                .await
                .map_err(nats("remove old end markers"))?;
        }
        let subject = self.spec.items_subject();
        let mut report = ExportReport {
            exported: 0,
            duplicates: 0,
            retries: 0,
            run: run_id(),
        };
        let mut window: FuturesOrdered<InFlight> = FuturesOrdered::new();
        let mut next = 0u64;
        let mut drained = false;
        loop {
            if drained && window.is_empty() {
                break;
            }
            let take = !drained && window.len() < self.in_flight;
            tokio::select! {
                biased;
                Some((id, payload, ack)) = window.next(), if !window.is_empty() => match ack {
                    Ok(a) => {
                        report.exported += 1;
                        report.duplicates += u64::from(a.duplicate);
                        // The count balances the get this item came from.
                        let _ = queue.task_done();
                    }
                    Err(e) if retryable(&e) => {
                        report.retries += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        window.push_back(self.publish(&subject, id, payload).await?);
                    }
                    Err(e) => return Err(nats("publish an item")(e)),
                },
                got = queue.get_async(), if take => match got {
                    Ok(item) => {
                        let id = format!("{}-{next}", report.run);
                        next += 1;
                        window.push_back(self.publish(&subject, id, bytes::Bytes::from(item)).await?);
                    }
                    Err(RecvError::Closed) => drained = true,
                    Err(e) => return Err(e.into()),
                },
            }
        }
        let end = PublishMessage::build()
            .payload(bytes::Bytes::new())
            .message_id(format!("{}-end", report.run));
        self.js
            .send_publish(self.spec.end_subject(), end)
            .await
            .map_err(nats("publish the end marker"))?
            .await
            .map_err(nats("publish the end marker"))?;
        Ok(report)
    }

    /// Publishes one item; the future it returns resolves to the item and its answer.
    async fn publish(&self, subject: &str, id: String, payload: bytes::Bytes) -> Result<InFlight, BridgeError> {
        let msg = PublishMessage::build().payload(payload.clone()).message_id(id.as_str());
        let ack: PublishAckFuture = self
            .js
            .send_publish(subject.to_owned(), msg)
            .await
            .map_err(nats("publish an item"))?;
        let ack = ack.into_future();
        Ok(Box::pin(async move { (id, payload, ack.await) }))
    }

    /// Waits until no exported item is left in the stream: each has been put into some
    /// importer's local queue and acknowledged (work-queue retention removes it then).
    ///
    /// # Errors
    /// [`BridgeError::Timeout`] when items are still in the stream after `timeout`;
    /// [`BridgeError::Nats`] when the stream cannot be read.
    pub async fn wait_delivered(&self, timeout: Duration) -> Result<(), BridgeError> {
        let deadline = Instant::now() + timeout;
        let stream = self
            .js
            .get_stream(self.spec.name())
            .await
            .map_err(nats("read the stream"))?;
        loop {
            if !crate::stream::has_items(&stream, &self.spec).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BridgeError::Timeout("items still in the stream"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A publish that may succeed when sent again with the same id: the answer was lost or late
/// (the id makes a second copy a duplicate the server drops), or the stream was at its limits
/// (discard-new) and an importer will make room.
fn retryable(e: &jetstream::context::PublishError) -> bool {
    match e.kind() {
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::MaxAckPending => true,
        PublishErrorKind::Other => std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
            .is_some_and(|je| je.error_code() == ErrorCode::STREAM_STORE_FAILED),
        _ => false,
    }
}

/// A prefix for this run's message ids that no other run shares: the process, the time and
/// a per-process random key.
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}
