//! N worker processes increment one shared counter under the cross-process lock.
//!
//! Run: `cargo run --example counter [workers] [increments]`
//! The parent creates the `Value<u64>`, re-runs this binary with the role `worker` N times,
//! waits for them, and prints the total. Dropping the parent's handle unlinks the segment.

use shmproc::{LockError, Value};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2], args[3].parse()?);
    }
    let workers: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let increments: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100_000);

    let name = format!("counter-{}", std::process::id());
    let counter = Value::<u64>::create(&name, 0)?;
    let exe = std::env::current_exe()?;
    let children = (0..workers)
        .map(|_| {
            Command::new(&exe)
                .args(["worker", &name, &increments.to_string()])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut c in children {
        let status = c.wait()?;
        if !status.success() {
            eprintln!("a worker failed: {status}");
        }
    }
    let total = counter.load().map_err(|e| e.without_guard())?;
    println!(
        "{workers} workers x {increments} increments = {total} (expected {})",
        workers as u64 * increments
    );
    Ok(())
}

fn worker(name: &str, increments: u64) -> Result<(), Box<dyn std::error::Error>> {
    let counter = Value::<u64>::open(name)?;
    for _ in 0..increments {
        match counter.lock() {
            Ok(mut g) => *g += 1,
            // Another worker died holding the lock. A counter has no half-written state
            // here (the guard writes back a whole u64), so it is consistent as it is.
            Err(LockError::OwnerDied(mut g)) => {
                *g += 1;
                g.mark_consistent();
            }
            Err(e) => return Err(e.without_guard().into()),
        }
    }
    Ok(())
}
