//! Carries a named [`ByteQueue`](shmproc::ByteQueue) between machines over NATS JetStream.
//!
//! An [`Exporter`] takes items from a local queue and publishes them to a JetStream stream;
//! an [`Importer`] on another machine (or several, sharing one durable consumer) fetches them
//! and puts each into a local queue there. The bridge speaks no protocol of its own: the
//! stream keeps each item until one importer acknowledges it (work-queue retention), message
//! ids let the server drop a re-published item, and the stream's limits push back on the
//! exporter. A [`MessageQueue`](shmproc::MessageQueue) is bridged through its
//! [`as_bytes`](shmproc::MessageQueue::as_bytes): its items travel as their encoded bytes.
//!
//! # The stream
//!
//! [`StreamSpec`] names the stream and its limits. The bridge creates it with work-queue
//! retention, file storage, discard-new limits and a duplicate window, carrying items on the
//! subject `<stream>.items` and end-of-stream markers on `<stream>.end`. A stream of that name
//! that exists with other settings is refused ([`BridgeError::ForeignStream`]), never used.
//!
//! # Delivery guarantees
//!
//! - **Export.** An item leaves the local queue when the exporter takes it; the local
//!   `task_done` for it follows the server's publish acknowledgement. An exporter killed at
//!   any moment loses at most the items it had taken and not yet had acknowledged: at most
//!   [`Exporter::in_flight`] of them. Each item carries a message id unique to the exporter's
//!   run and the item's place in it, so a publish that is retried (or re-sent by the client
//!   after a reconnect) within the stream's duplicate window is stored once.
//! - **Import.** An importer acknowledges an item only after the local put succeeded. An
//!   importer killed at any moment loses nothing: an item it had fetched and not acknowledged
//!   is delivered again (to it once restarted, or to another importer) after the consumer's
//!   ack wait. So an item is delivered twice exactly when its importer put it into the local
//!   queue and died before its acknowledgement reached the server. While the local queue is
//!   full the importer fetches nothing more, and tells the server the item in hand is still
//!   being worked on, so a slow consumer does not make the server deliver it again.
//! - **Server.** With file storage, a server stopped and started again keeps every item it
//!   had acknowledged, and the bridge goes on by itself: answers lost in the restart are
//!   re-published under the same id, and fetching resumes once the server is back (within
//!   [`Importer::patience`]). A server *killed* (SIGKILL, power loss) keeps its last writes only
//!   if it syncs each one (`sync_interval: always` in its JetStream settings; by default it
//!   syncs every two minutes): that durability is the server's setting, not the bridge's.
//!
//! # End of stream
//!
//! When the exported queue is closed and drained, the exporter publishes an end marker. An
//! importer that fetches it closes its local queue once no item is left in the stream (all
//! acknowledged by some importer), and hands the marker on to the other importers. A stream
//! fed by several exporters at once needs the markers of all of them
//! ([`Importer::exporters`], with [`Exporter::keep_earlier_ends`] on each exporter). An
//! exporter's [`wait_delivered`](Exporter::wait_delivered) waits for the same condition:
//! every item exported has been put into some importer's local queue. What `task_done` means
//! on the far side is local to that machine: its own `join` waits for its own consumers.
//!
//! # Failures of the server or the network
//!
//! A request that fails ends [`Exporter::run`] or [`Importer::run`] with
//! [`BridgeError::Nats`]; what was acknowledged is safe in the stream, and a bridge started
//! again goes on from there (the tool's `shmproc bridge` exits with status 1, for a
//! supervisor to restart it). Publishes whose answer is lost or late are sent again with the
//! same message id, which the server stores once.
//!
//! # Example and benchmark
//!
//! `cargo run -p shmproc-bridge --example distributed_map`: one host submits tasks, two
//! worker hosts import them for their local worker processes and send the results back over
//! a second stream. `cargo bench -p shmproc-bridge --bench bridge`: the bridge against
//! `async-nats` alone (`benches/README.md`).
//!
//! # Security
//!
//! The bridge is handed a connected [`async_nats::Client`]: credentials, nkeys and TLS are
//! configured with [`async_nats::ConnectOptions`] by the caller and never reach a segment.

mod export;
mod import;
mod stream;

pub use export::{ExportReport, Exporter};
pub use import::{ImportReport, Importer};
pub use stream::StreamSpec;

/// Why a bridge stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// A stream of this name exists with other settings: the bridge does not use it.
    #[error("stream {stream} exists with other settings: {}", differences.join("; "))]
    ForeignStream {
        /// The stream's name.
        stream: String,
        /// Each setting that differs: "name: want W, found F".
        differences: Vec<String>,
    },
    /// A NATS or JetStream request failed.
    #[error("{what}: {source}")]
    Nats {
        /// What the bridge was doing.
        what: &'static str,
        /// What the client or server said.
        #[source]
        source: async_nats::Error,
    },
    /// The local queue refused an item (closed by someone else, say).
    #[error("the local queue refused an item: {0}")]
    LocalSend(#[from] shmproc::SendError),
    /// The local queue could not be read.
    #[error("the local queue could not be read: {0}")]
    LocalRecv(#[from] shmproc::RecvError),
    /// Waiting for the far side took longer than the caller allowed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

/// Wraps a client error with what the bridge was doing.
pub(crate) fn nats<E: std::error::Error + Send + Sync + 'static>(what: &'static str) -> impl FnOnce(E) -> BridgeError {
    move |e| BridgeError::Nats {
        what,
        source: Box::new(e),
    }
}

/// Wraps a boxed client error (`async_nats::Error`) with what the bridge was doing.
pub(crate) fn nats_box(what: &'static str) -> impl FnOnce(async_nats::Error) -> BridgeError {
    move |source| BridgeError::Nats { what, source }
}
