//! `shmproc bridge export|import`: a named `ByteQueue` carried over NATS JetStream (the
//! `shmproc-bridge` crate). Secrets come from a creds file or the environment, never from
//! the command line (where `ps` shows them) and never from a segment.

use clap::{Args, Subcommand};
use shmproc::ByteQueue;
use shmproc_bridge::{Exporter, Importer, StreamSpec};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub(crate) enum BridgeCommand {
    /// Publish the items of a local queue to a stream until the queue is closed and drained,
    /// then publish the end marker.
    Export {
        /// The local ByteQueue.
        queue: String,
        #[command(flatten)]
        nats: NatsArgs,
        /// Items taken from the queue and not yet acknowledged by the server, at most (what a
        /// killed exporter can lose).
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
    },
    /// Put the items of a stream into a local queue, acknowledging each once it is put,
    /// until an exporter's end marker (then the local queue is closed).
    Import {
        /// The local ByteQueue.
        queue: String,
        #[command(flatten)]
        nats: NatsArgs,
        /// The durable consumer: importers with the same name share the items.
        #[arg(long, default_value = "shmproc-bridge")]
        durable: String,
        /// Seconds the server waits for an acknowledgement before delivering again.
        #[arg(long, default_value_t = 30.0)]
        ack_wait: f64,
        /// Create the local queue with this capacity if it does not exist (persisted: its
        /// name stays after the import, for its consumers; `shmproc rm` removes it).
        #[arg(long)]
        create: Option<usize>,
    },
}

/// Where the stream is and how to reach it. Token, user and password are read from
/// `SHMPROC_NATS_TOKEN`, `SHMPROC_NATS_USER` and `SHMPROC_NATS_PASSWORD`.
#[derive(Args)]
pub(crate) struct NatsArgs {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// The stream's name (items travel on `<stream>.items`).
    #[arg(long)]
    stream: String,
    /// The stream's item limit (when the bridge creates it).
    #[arg(long)]
    max_messages: Option<i64>,
    /// The stream's byte limit (when the bridge creates it).
    #[arg(long)]
    max_bytes: Option<i64>,
    /// A NATS credentials file (JWT and nkey seed).
    #[arg(long)]
    creds: Option<PathBuf>,
    /// Refuse a connection without TLS.
    #[arg(long)]
    require_tls: bool,
    /// A PEM file of root certificates to trust.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// A PEM client certificate (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl NatsArgs {
    fn spec(&self) -> StreamSpec {
        let mut spec = StreamSpec::new(self.stream.as_str());
        if let Some(n) = self.max_messages {
            spec = spec.max_messages(n);
        }
        if let Some(n) = self.max_bytes {
            spec = spec.max_bytes(n);
        }
        spec
    }

    async fn connect(&self) -> super::Result<async_nats::Client> {
        let mut opts = match &self.creds {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path.clone()).await?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Ok(token) = std::env::var("SHMPROC_NATS_TOKEN") {
            opts = opts.token(token);
        }
        if let (Ok(user), Ok(password)) = (
            std::env::var("SHMPROC_NATS_USER"),
            std::env::var("SHMPROC_NATS_PASSWORD"),
        ) {
            opts = opts.user_and_password(user, password);
        }
        if self.require_tls {
            opts = opts.require_tls(true);
        }
        if let Some(ca) = &self.tls_ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(opts.name("shmproc bridge").connect(self.server.as_str()).await?)
    }
}

pub(crate) fn run(command: BridgeCommand) -> super::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        match command {
            BridgeCommand::Export { queue, nats, in_flight } => {
                let q = ByteQueue::open(&queue)?;
                let client = nats.connect().await?;
                let r = Exporter::new(client, nats.spec()).in_flight(in_flight).run(&q).await?;
                println!(
                    "exported {} items ({} already in the stream, {} publishes retried; ids {}-N)",
                    r.exported, r.duplicates, r.retries, r.run
                );
            }
            BridgeCommand::Import {
                queue,
                nats,
                durable,
                ack_wait,
                create,
            } => {
                let q = match create {
                    Some(capacity) => {
                        ByteQueue::open_or_create_with(&queue, capacity, &shmproc::Options::new().persist(true))?
                    }
                    None => ByteQueue::open(&queue)?,
                };
                let client = nats.connect().await?;
                let r = Importer::new(client, nats.spec())
                    .durable(durable)
                    .ack_wait(Duration::try_from_secs_f64(ack_wait)?)
                    .run(&q)
                    .await?;
                println!(
                    "imported {} items ({} delivered again, {} too large for the queue)",
                    r.imported, r.redelivered, r.rejected
                );
            }
        }
        Ok(())
    })
}
