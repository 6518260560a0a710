//! Import: a durable pull consumer whose items go into a local queue, each acknowledged only
//! once the local put succeeded, fetching no more than the local queue has room for.

use crate::stream::has_items;
use crate::{BridgeError, StreamSpec, nats, nats_box};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use shmproc::{ByteQueue, SendError};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long one pull request stays open on the server when no item comes.
const FETCH_EXPIRES: Duration = Duration::from_millis(500);
/// How much longer than [`FETCH_EXPIRES`] a fetch may go without an answer (an item, or the
/// server's end of the request) before it counts as failed.
const STALL_MARGIN: Duration = Duration::from_secs(2);
/// The pause before fetching again after a failed fetch.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Puts the items of a JetStream stream into a local queue (see the crate docs for the
/// delivery guarantees). Several importers, on one machine or many, may share one durable
/// consumer: each item goes to one of them.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let client = async_nats::connect("127.0.0.1:4222").await?;
/// let jobs = shmproc::ByteQueue::open_or_create("jobs", 256)?;
/// let report = shmproc_bridge::Importer::new(client, shmproc_bridge::StreamSpec::new("JOBS"))
///     .durable("workers")
///     .run(&jobs) // until the exporter's end marker; `jobs` is closed then
///     .await?;
/// println!("{} items imported", report.imported);
/// # Ok(()) }
/// ```
pub struct Importer {
    client: async_nats::Client,
    js: jetstream::Context,
    spec: StreamSpec,
    durable: String,
    ack_wait: Duration,
    batch: usize,
    exporters: usize,
    patience: Duration,
}

/// What an import run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Items put into the local queue and acknowledged.
    pub imported: u64,
    /// Of those, items the server had delivered before (to an importer that died, or whose
    /// acknowledgement was lost): possibly already put by that importer.
    pub redelivered: u64,
    /// Items larger than the local queue's maximum message size: terminated on the server
    /// (never delivered again) and not put.
    pub rejected: u64,
}

impl Importer {
    /// An importer from `spec`'s stream through `client`, on the durable consumer
    /// `"shmproc-bridge"`, with a 30-second ack wait and batches of at most 64.
    pub fn new(client: async_nats::Client, spec: StreamSpec) -> Importer {
        Importer {
            js: jetstream::new(client.clone()),
            client,
            spec,
            durable: "shmproc-bridge".to_owned(),
            ack_wait: Duration::from_secs(30),
            batch: 64,
            exporters: 1,
            patience: Duration::from_secs(30),
        }
    }

    /// The durable consumer's name: importers with the same name share the items.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.durable = name.into();
        self
    }

    /// How long the server waits for an acknowledgement before delivering an item again
    /// (to this importer or another). It is also how long an item in hand of a killed
    /// importer waits. Set when the consumer is created; an existing consumer keeps its own.
    pub fn ack_wait(mut self, d: Duration) -> Self {
        self.ack_wait = d;
        self
    }

    /// At most `n` items (at least 1) fetched at once, and never more than the local queue
    /// has room for.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long fetching may keep failing (a server restarting, a connection being
    /// re-established) before [`run`](Self::run) gives up with the last error; default 30 s.
    /// Items acknowledged before the outage are safe in any case.
    pub fn patience(mut self, d: Duration) -> Self {
        self.patience = d;
        self
    }

    /// How many exporters feed the stream (default 1): the import ends once the end markers
    /// of that many export runs have arrived (and no item is left). Those exporters must
    /// not remove each other's markers: see [`Exporter::keep_earlier_ends`](crate::Exporter::keep_earlier_ends).
    pub fn exporters(mut self, n: usize) -> Self {
        self.exporters = n.max(1);
        self
    }

    /// Imports until the end marker of an exporter arrives and no item is left in the
    /// stream, then closes `queue` and returns. Dropping the future stops the import; items
    /// fetched and not acknowledged are delivered again after the ack wait.
    ///
    /// # Errors
    /// [`BridgeError::ForeignStream`]; [`BridgeError::Nats`] when the server cannot be
    /// reached or refuses; [`BridgeError::LocalSend`] when the local queue was closed by
    /// someone else (the item in hand is handed back to the server first).
    pub async fn run(&self, queue: &ByteQueue) -> Result<ImportReport, BridgeError> {
        let stream = self.spec.ensure(&self.js).await?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &self.durable,
                pull::Config {
                    durable_name: Some(self.durable.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats("create the durable consumer"))?;
        let end_subject = self.spec.end_subject();
        let mut report = ImportReport::default();
        // The export runs whose end markers arrived (each marker's message id).
        let mut ended: HashSet<String> = HashSet::new();
        // Since when fetching has failed without a success in between (the server restarting,
        // the connection being re-established).
        let mut failing_since: Option<Instant> = None;
        'fetch: loop {
            // Back-pressure: ask for no more than fits now.
            let room = queue.capacity().saturating_sub(queue.len()).clamp(1, self.batch);
            let mut batch = match consumer
                .batch()
                .max_messages(room)
                .expires(FETCH_EXPIRES)
                .messages()
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    outage(&mut failing_since, self.patience, Box::new(e))?;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue 'fetch;
                }
            };
            loop {
                // A bound of our own: a pull request the server forgot (it restarted) would
                // otherwise leave this waiting for an answer that never comes.
                let m = match tokio::time::timeout(FETCH_EXPIRES + STALL_MARGIN, batch.next()).await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(_) => {
                        outage(&mut failing_since, self.patience, "no answer to a fetch".into())?;
                        continue 'fetch;
                    }
                };
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        outage(&mut failing_since, self.patience, e)?;
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue 'fetch;
                    }
                };
                failing_since = None;
                if m.subject.as_str() == end_subject {
                    let id = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                        .map_or_else(
                            || format!("{:?}", m.info().map(|i| i.stream_sequence).ok()),
                            |v| v.to_string(),
                        );
                    ended.insert(id);
                    if ended.len() < self.exporters || has_items(&stream, &self.spec).await? {
                        // Other exporters are still at work, or items are still in hand of
                        // importers (this one's batch, or one that died and whose items come
                        // back): the end is not yet.
                        m.ack_with(AckKind::Nak(Some(Duration::from_millis(100))))
                            .await
                            .map_err(nats_box("hand back the end marker"))?;
                        continue;
                    }
                    queue.close();
                    // Handed on to the other importers, who close theirs: after this
                    // importer's open pull request has expired, so that the server does not
                    // deliver it to that request again, where nobody reads any more.
                    drop(batch);
                    m.ack_with(AckKind::Nak(Some(FETCH_EXPIRES + Duration::from_millis(200))))
                        .await
                        .map_err(nats_box("hand on the end marker"))?;
                    self.client.flush().await.map_err(nats("flush"))?;
                    return Ok(report);
                }
                if m.info().is_ok_and(|i| i.delivered > 1) {
                    report.redelivered += 1;
                }
                if self.put(queue, &m).await? {
                    m.ack().await.map_err(nats_box("acknowledge an item"))?;
                    report.imported += 1;
                } else {
                    report.rejected += 1;
                }
            }
        }
    }

    /// Puts `m` into `queue`, telling the server the item is in progress while the queue
    /// stays full. `false`: the item can never fit, and was terminated on the server.
    async fn put(&self, queue: &ByteQueue, m: &jetstream::Message) -> Result<bool, BridgeError> {
        let every = (self.ack_wait / 3).max(Duration::from_millis(10));
        loop {
            match queue.put_timeout_async(&m.payload, every).await {
                Ok(()) => return Ok(true),
                Err(SendError::Timeout) => m
                    .ack_with(AckKind::Progress)
                    .await
                    .map_err(nats_box("extend the ack wait"))?,
                Err(SendError::TooLarge { .. }) => {
                    m.ack_with(AckKind::Term)
                        .await
                        .map_err(nats_box("terminate an item too large"))?;
                    return Ok(false);
                }
                Err(e) => {
                    // Back to the server at once, for another importer.
                    let _ = m.ack_with(AckKind::Nak(None)).await;
                    return Err(e.into());
                }
            }
        }
    }
}

/// A failed fetch: `Ok` (try again) while fetching has been failing for no longer than
/// `patience`, the error after that.
fn outage(failing_since: &mut Option<Instant>, patience: Duration, e: async_nats::Error) -> Result<(), BridgeError> {
    let since = *failing_since.get_or_insert_with(Instant::now);
    if since.elapsed() > patience {
        return Err(nats_box("fetch items")(e));
    }
    Ok(())
}
