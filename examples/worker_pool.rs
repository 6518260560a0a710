//! Like Python's `Pool.map(f, range(1, 11))`: the parent starts N worker processes that take
//! numbers from a task queue and put `(index, square)` on a result queue; the parent prints
//! the results in order.
//!
//! Run: `cargo run --example worker_pool [workers]`

use shmproc::{GetError, Queue};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let tasks = Queue::<[u64; 2]>::open(&args[2])?;
        let results = Queue::<[u64; 2]>::open(&args[3])?;
        loop {
            match tasks.get() {
                Ok([index, x]) => results.put([index, x * x])?,
                Err(GetError::Closed) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let workers: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let id = std::process::id();
    let (tname, rname) = (format!("pool-t-{id}"), format!("pool-r-{id}"));
    let tasks = Queue::<[u64; 2]>::create(&tname, 64)?;
    let results = Queue::<[u64; 2]>::create(&rname, 64)?;
    let exe = std::env::current_exe()?;
    let children = (0..workers)
        .map(|_| Command::new(&exe).args(["worker", &tname, &rname]).spawn())
        .collect::<Result<Vec<_>, _>>()?;
    let inputs: Vec<u64> = (1..=10).collect();
    for (i, x) in inputs.iter().enumerate() {
        tasks.put([i as u64, *x])?;
    }
    tasks.close(); // workers stop once the tasks are drained
    let mut out = vec![0u64; inputs.len()];
    for _ in 0..inputs.len() {
        let [i, sq] = results.get()?;
        out[i as usize] = sq;
    }
    for mut c in children {
        c.wait()?;
    }
    println!("{out:?}");
    Ok(())
}
