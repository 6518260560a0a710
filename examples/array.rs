//! Worker processes fill disjoint slices of a shared `Array<f64>`; the parent summarises.
//!
//! Run: `cargo run --example array [workers] [len]`

use shmproc::Array;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let a = Array::<f64>::open(&args[2])?;
        let (start, end): (usize, usize) = (args[3].parse()?, args[4].parse()?);
        // One lock for the whole slice: write it element by element, straight to shared memory.
        let mut g = a.lock().map_err(|e| e.without_guard())?;
        for i in start..end {
            g.set(i, (i as f64).sqrt());
        }
        return Ok(());
    }
    let workers: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let len: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);

    let name = format!("array-{}", std::process::id());
    let a = Array::<f64>::create(&name, len, f64::NAN)?;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for w in 0..workers {
        let (s, e) = (w * len / workers, (w + 1) * len / workers);
        children.push(
            Command::new(&exe)
                .args(["worker", &name, &s.to_string(), &e.to_string()])
                .spawn()?,
        );
    }
    for mut c in children {
        c.wait()?;
    }
    let v = a.to_vec().map_err(|e| e.without_guard())?;
    let filled = v.iter().filter(|x| !x.is_nan()).count();
    let sum: f64 = v.iter().filter(|x| !x.is_nan()).sum();
    let exact = v.iter().enumerate().all(|(i, x)| *x == (i as f64).sqrt());
    println!("{workers} workers filled {filled}/{len} elements; sum of sqrt(i) = {sum:.3}; all correct: {exact}");
    Ok(())
}
