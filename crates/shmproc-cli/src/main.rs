//! `shmproc`: see and clean the shared-memory segments of the `shmproc` crate.
//!
//! ```text
//! shmproc ls                 every segment: kind, type, state (fill, lock, permits...), participants, size, age
//! shmproc show NAME          everything about one segment
//! shmproc watch NAME         a queue's fill level and rates (other kinds: their state), refreshed
//! shmproc gc [--dry-run]     remove segments that only dead processes held
//! shmproc rm NAME...         remove segments by name
//! shmproc bridge export|import QUEUE --stream S [--server URL]
//!                            carry a ByteQueue between machines over NATS JetStream
//! ```
//!
//! Every command takes `--json` and then prints the library's report types
//! (`shmproc::inspect`) as JSON, one document per command (`watch`: one per line).
//!
//! Exit codes: 0 success; 1 an error (a segment not found, not removable, `/dev/shm`
//! unreadable); 2 bad usage; 3 nothing to do (`gc` found no garbage).

mod bridge;
mod render;

use clap::{Parser, Subcommand};
use shmproc::inspect::{self, KindState, Status};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "shmproc",
    version,
    about = "See and clean shmproc's shared-memory segments, and bridge queues between machines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every segment (a table, or JSON with --json).
    Ls {
        /// Print JSON: an array of segment reports.
        #[arg(long)]
        json: bool,
    },
    /// Show everything about one segment.
    Show {
        /// The segment's name (as handles use it, without `/dev/shm/shmproc.`).
        name: String,
        /// Print JSON: one segment report.
        #[arg(long)]
        json: bool,
    },
    /// Refresh a queue's fill level and put/get rates (other kinds: their state line).
    Watch {
        /// The segment's name.
        name: String,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
        /// Print one JSON report per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove segments that only dead processes held, and those whose creator died
    /// initialising them. Never removes one that a live process holds.
    Gc {
        /// Only these segments (default: every segment in /dev/shm).
        names: Vec<String>,
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove segments nobody holds that nobody died in (left on purpose with
        /// `Options::persist`, for example).
        #[arg(long)]
        idle: bool,
        /// Print JSON: `{"removed": [...], "failed": [[name, error], ...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Carry a named ByteQueue between machines over NATS JetStream.
    Bridge {
        #[command(subcommand)]
        direction: Box<bridge::BridgeCommand>,
    },
    /// Remove segments by name, whoever holds them (handles that have them open keep working).
    Rm {
        /// The segments' names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Print JSON: `{"removed": [...], "failed": [[name, error], ...]}`.
        #[arg(long)]
        json: bool,
    },
}

/// Exit code: nothing to do.
const NOTHING: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shmproc: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Ls { json } => {
            let reports = inspect::list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", render::table(&reports, now()));
            }
        }
        Command::Show { name, json } => {
            let report = inspect::inspect(&name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render::show(&report, now()));
            }
        }
        Command::Watch {
            name,
            interval,
            count,
            json,
        } => watch(&name, interval, count, json)?,
        Command::Gc {
            names,
            dry_run,
            idle,
            json,
        } => {
            let done = if names.is_empty() {
                inspect::collect_garbage(dry_run, idle)?
            } else {
                gc_names(&names, dry_run, idle)
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for name in &done.removed {
                    println!("{verb} {name}");
                }
                for (name, why) in &done.failed {
                    eprintln!("could not remove {name}: {why}");
                }
                if done.removed.is_empty() && done.failed.is_empty() {
                    println!("nothing to remove");
                }
            }
            if !done.failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            if done.removed.is_empty() {
                return Ok(ExitCode::from(NOTHING));
            }
        }
        Command::Bridge { direction } => bridge::run(*direction)?,
        Command::Rm { names, json } => {
            let mut done = inspect::Collected::default();
            for name in names {
                match shmproc::remove(&name) {
                    Ok(()) => done.removed.push(name),
                    Err(e) => done.failed.push((name, e.to_string())),
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                for (name, why) in &done.failed {
                    eprintln!("could not remove {name}: {why}");
                }
            }
            if !done.failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gc NAME...`: the named segments only.
fn gc_names(names: &[String], dry_run: bool, idle: bool) -> inspect::Collected {
    let mut done = inspect::Collected::default();
    for name in names {
        let outcome = if dry_run {
            inspect::inspect(name).map(|r| r.is_garbage(idle))
        } else {
            inspect::remove_unused(name, idle)
        };
        match outcome {
            Ok(true) => done.removed.push(name.clone()),
            Ok(false) => {}
            Err(e) => done.failed.push((name.clone(), e.to_string())),
        }
    }
    done
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Prints the queue's fill level and the put and get rates since the last refresh (a pipe:
/// its ring from end 0 to end 1; a kind without a ring: its state).
fn watch(name: &str, interval: f64, count: Option<u64>, json: bool) -> Result<()> {
    let interval = Duration::try_from_secs_f64(interval.max(0.01))?;
    let mut last: Option<(Instant, u64, u64)> = None;
    let mut n = 0u64;
    loop {
        let report = inspect::inspect(name)?;
        let at = Instant::now();
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            let Status::Ready(d) = &report.status else {
                return Err(format!("{name} is not readable now (see `shmproc show {name}`)").into());
            };
            let ring = match &d.state {
                KindState::Queue { ring } | KindState::MessageQueue { ring } => Some(ring),
                KindState::Pipe { rings, .. } => Some(&rings[0]),
                _ => None,
            };
            if let Some(ring) = ring {
                let (puts, gets) = match last {
                    Some((t, tail, head)) => {
                        let s = at.duration_since(t).as_secs_f64().max(1e-9);
                        (
                            ring.tail.wrapping_sub(tail) as f64 / s,
                            ring.head.wrapping_sub(head) as f64 / s,
                        )
                    }
                    None => (0.0, 0.0),
                };
                println!(
                    "{name}: {}/{} items ({:.0}%), {} being written, {} abandoned, {} in hand; puts {}/s, gets {}/s{}",
                    ring.items,
                    ring.capacity,
                    100.0 * ring.items as f64 / ring.capacity.max(1) as f64,
                    ring.writing,
                    ring.abandoned,
                    ring.in_hand,
                    render::rate(puts),
                    render::rate(gets),
                    if ring.closed { ", closed" } else { "" },
                );
                last = Some((at, ring.tail, ring.head));
            } else {
                // No ring (a lock, a semaphore, an event...): its state, as `ls` shows it.
                println!("{name}: {} {}", render::kind_name(d), render::state(d));
            }
        }
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}
