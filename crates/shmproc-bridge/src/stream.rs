//! The JetStream stream a bridge carries a queue on: its settings, and creating it or
//! refusing one that exists with other settings.

use crate::{BridgeError, nats};
use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use std::time::Duration;

/// A bridge's stream: its name and limits (builder style).
///
/// ```
/// use std::time::Duration;
/// let spec = shmproc_bridge::StreamSpec::new("JOBS")
///     .max_messages(10_000)
///     .max_bytes(64 << 20)
///     .duplicate_window(Duration::from_secs(60));
/// assert_eq!(spec.items_subject(), "JOBS.items");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    name: String,
    max_messages: i64,
    max_bytes: i64,
    duplicate_window: Duration,
    replicas: usize,
}

impl StreamSpec {
    /// A stream named `name` (letters, digits, `-` and `_`: NATS refuses `.`, `*`, `>` and
    /// spaces) with the default limits: a million items, 1 GiB, a two-minute duplicate
    /// window, one replica.
    pub fn new(name: impl Into<String>) -> StreamSpec {
        StreamSpec {
            name: name.into(),
            max_messages: 1_000_000,
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
        }
    }

    /// At most this many items wait in the stream; an exporter's publish beyond it is
    /// refused by the server (discard-new) and retried, which is the bridge's back-pressure.
    pub fn max_messages(mut self, n: i64) -> Self {
        self.max_messages = n;
        self
    }

    /// At most this many bytes wait in the stream (as [`max_messages`](Self::max_messages)).
    pub fn max_bytes(mut self, n: i64) -> Self {
        self.max_bytes = n;
        self
    }

    /// How long the server remembers message ids to drop re-published items.
    pub fn duplicate_window(mut self, d: Duration) -> Self {
        self.duplicate_window = d;
        self
    }

    /// Replicas of the stream (a clustered server); 1 on a single server.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subject items travel on: `<stream>.items`.
    pub fn items_subject(&self) -> String {
        format!("{}.items", self.name)
    }

    /// The subject end-of-stream markers travel on: `<stream>.end`.
    pub fn end_subject(&self) -> String {
        format!("{}.end", self.name)
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![self.items_subject(), self.end_subject()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_messages: self.max_messages,
            max_bytes: self.max_bytes,
            discard: DiscardPolicy::New,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// The settings of `found` that differ from this spec's, as "name: want W, found F".
    fn differences(&self, found: &stream::Config) -> Vec<String> {
        let want = self.config();
        let mut out = Vec::new();
        macro_rules! compare {
            ($($field:ident),*) => {$(
                if want.$field != found.$field {
                    out.push(format!(
                        "{}: want {:?}, found {:?}",
                        stringify!($field),
                        want.$field,
                        found.$field
                    ));
                }
            )*};
        }
        compare!(
            subjects,
            retention,
            storage,
            max_messages,
            max_bytes,
            discard,
            duplicate_window,
            num_replicas
        );
        out
    }

    /// Creates the stream, or finds it with exactly these settings.
    ///
    /// # Errors
    /// [`BridgeError::ForeignStream`] when it exists with other settings;
    /// [`BridgeError::Nats`] when the server cannot be asked or refuses the settings.
    pub(crate) async fn ensure(&self, js: &jetstream::Context) -> Result<stream::Stream, BridgeError> {
        match js.create_stream(self.config()).await {
            Ok(s) => Ok(s),
            Err(e) => match e.kind() {
                CreateStreamErrorKind::JetStream(je) if je.error_code() == ErrorCode::STREAM_NAME_EXIST => {
                    let mut s = js.get_stream(&self.name).await.map_err(nats("read the stream"))?;
                    let info = s.info().await.map_err(nats("read the stream's settings"))?;
                    Err(BridgeError::ForeignStream {
                        stream: self.name.clone(),
                        differences: self.differences(&info.config),
                    })
                }
                _ => Err(nats("create the stream")(e)),
            },
        }
    }
}

/// Whether any item is left in the stream (published and not yet acknowledged by an
/// importer: work-queue retention removes an item when it is acknowledged).
pub(crate) async fn has_items(stream: &stream::Stream, spec: &StreamSpec) -> Result<bool, BridgeError> {
    match stream.get_last_raw_message_by_subject(&spec.items_subject()).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
        Err(e) => Err(nats("read the stream")(e)),
    }
}
