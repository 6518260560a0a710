//! The `JoinableQueue` pattern: the parent puts tasks, worker processes take them and call
//! `task_done()`, and the parent's `join()` returns once every task has been processed.
//!
//! Run: `cargo run --example joinable`

use shmproc::{GetError, Queue, Value};
use std::process::Command;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let tasks = Queue::<u64>::open(&args[2])?;
        let processed = Value::<u64>::open(&args[3])?;
        loop {
            match tasks.get() {
                Ok(ms) => {
                    std::thread::sleep(Duration::from_millis(ms)); // "work"
                    *processed.lock().map_err(|e| e.without_guard())? += 1;
                    tasks.task_done()?;
                }
                Err(GetError::Closed) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let id = std::process::id();
    let (tname, pname) = (format!("jq-{id}"), format!("jq-done-{id}"));
    let tasks = Queue::<u64>::create(&tname, 16)?;
    let processed = Value::<u64>::create(&pname, 0)?;
    let exe = std::env::current_exe()?;
    let workers = (0..3)
        .map(|_| Command::new(&exe).args(["worker", &tname, &pname]).spawn())
        .collect::<Result<Vec<_>, _>>()?;
    for i in 0..30 {
        tasks.put(1 + i % 5)?;
    }
    tasks.join()?; // waits for the last task_done(), in whichever process it happens
    println!(
        "join() returned: {} of 30 tasks processed",
        processed.load().map_err(|e| e.without_guard())?
    );
    tasks.close(); // lets the workers finish
    for mut w in workers {
        w.wait()?;
    }
    Ok(())
}
