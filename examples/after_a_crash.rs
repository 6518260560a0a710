//! What a crash leaves behind, seen and cleaned with `shmproc::inspect` (the library side of
//! the `shmproc` command-line tool).
//!
//! The parent creates a job queue and puts three jobs. A worker process takes one job, creates
//! a `Value` of its own and locks it, and is SIGKILLed. The parent then lists what the
//! segments say (the worker's job is in hand of a dead process, its value's lock is held by
//! a dead process, its segment has no live participant left), removes the segments only the
//! dead held, and keeps the queue it still uses.
//!
//! Run: `cargo run --example after_a_crash`. With `--leave`, the parent leaves everything in
//! place (its queue made persistent) so that you can try the tool on it:
//! `cargo run -p shmproc-cli -- ls`, `... -- show <name>`, `... -- gc`.

use shmproc::inspect::{self, KindState, LockStatus, Status};
use shmproc::{Options, Queue, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let jobs = Queue::<u64>::open(&args[2])?;
        let job = jobs.get()?; // taken, never marked task_done
        let state = Value::<u64>::create(&args[3], job)?;
        let _held = state.lock().map_err(|e| e.without_guard())?;
        println!("ready");
        std::thread::sleep(std::time::Duration::from_secs(3600)); // until killed
        return Ok(());
    }
    let leave = args.iter().any(|a| a == "--leave");
    let (jobs_name, state_name) = (
        format!("jobs-{}", std::process::id()),
        format!("state-{}", std::process::id()),
    );
    let jobs = Queue::<u64>::create_with(&jobs_name, 8, &Options::new().persist(leave))?;
    for job in [10, 20, 30] {
        jobs.put(job)?;
    }
    let mut worker = Command::new(std::env::current_exe()?)
        .args(["worker", &jobs_name, &state_name])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(worker.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    worker.kill()?; // SIGKILL: no destructor runs in the worker
    worker.wait()?;

    for name in [&jobs_name, &state_name] {
        let report = inspect::inspect(name)?;
        let Status::Ready(d) = &report.status else {
            println!("{name}: {:?}", report.status);
            continue;
        };
        let what = match &d.state {
            KindState::Queue { ring } => format!(
                "queue of {}: {}/{} items, {} in hand of live processes",
                d.type_name, ring.items, ring.capacity, ring.in_hand
            ),
            KindState::Value { lock } => match &lock.state {
                LockStatus::Held { pid, alive: false, .. } => {
                    format!("value of {}: lock held by DEAD pid {}", d.type_name, pid.unwrap_or(0))
                }
                other => format!("value of {}: lock {other:?}", d.type_name),
            },
            other => format!("{other:?}"),
        };
        println!(
            "{name}: {what}; {} live, {} dead participant(s); garbage: {}",
            report.live_participants(),
            report.dead_participants(),
            report.is_garbage(false)
        );
    }
    if leave {
        println!("left in place: try `cargo run -p shmproc-cli -- ls`");
        std::mem::forget(jobs); // keep our participant record taken, as a crash would
        return Ok(());
    }
    // What `shmproc gc` does, for these two names: the worker's value goes, our queue stays.
    for name in [&jobs_name, &state_name] {
        println!("gc {name}: removed = {}", inspect::remove_unused(name, false)?);
    }
    assert_eq!(jobs.get()?, 20, "the queue we still hold keeps working");
    Ok(())
}
