//! Globals are not shared between processes: each child changes its own copy. Python's
//!
//! ```python
//! counter = 0
//! def increment(): global counter; counter += 1; print(counter)
//! ... three processes ...
//! print(counter)   # still 0 in the parent
//! ```
//!
//! followed by what does share: a `Value` in shared memory, opened by name.
//!
//! Run: `cargo run --example mp_globals`

use shmproc::{Process, Value};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn increment_global(_: ()) -> u64 {
    let now = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
    println!("child {}: my COUNTER is {now}", std::process::id());
    now
}

fn increment_shared(name: String) -> Result<u64, String> {
    let v = Value::<u64>::open(&name).map_err(|e| e.to_string())?;
    let mut g = v.lock().map_err(|e| e.to_string())?;
    *g += 1;
    Ok(*g)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let mut children = (0..3)
        .map(|_| Process::spawn(increment_global, ()))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &mut children {
        c.join()?;
    }
    println!("parent: COUNTER is still {}", COUNTER.load(Ordering::SeqCst));

    let name = format!("mp-globals-{}", std::process::id());
    let shared = Value::<u64>::create(&name, 0)?;
    let mut children = (0..3)
        .map(|_| Process::spawn(increment_shared, name.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &mut children {
        c.join()??;
    }
    println!(
        "parent: the shared Value is {}",
        shared.load().map_err(|e| e.without_guard())?
    );
    Ok(())
}
