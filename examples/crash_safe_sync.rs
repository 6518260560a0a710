//! Coordinating worker processes with a `Barrier`, a `Semaphore` and an `Event`, and what
//! happens when one of them is SIGKILLed.
//!
//! The parent starts three workers. All four meet at a start-line barrier; then the workers
//! share two "slots" (a semaphore of 2 permits) for their jobs, and one worker is killed while
//! it holds a slot. In Python the slot would be gone for good and the pool would run on one
//! slot (or hang on none); here the next worker that finds no slot free takes the dead one's
//! permit back. Finally the workers wait at the barrier again while one of them is killed
//! before it arrives: the others get `BarrierError::Broken` at once instead of waiting for
//! ever, and the parent resets the barrier. An `Event` tells the workers to stop.
//!
//! Run: `cargo run --example crash_safe_sync`.

use shmproc::{Barrier, BarrierError, Event, Semaphore};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const WORKERS: usize = 3;

fn worker(names: &[String], id: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (start, slots, stop) = (
        Barrier::open(&names[0])?,
        Semaphore::open(&names[1])?,
        Event::open(&names[2])?,
    );
    start.wait()?;
    let mut jobs = 0;
    while !stop.is_set() {
        let _slot = slots.acquire(); // given back on drop, or when this process dies
        if jobs == 0 {
            println!("holding {id}"); // the parent may kill us here, slot in hand
        }
        std::thread::sleep(Duration::from_millis(2)); // the job
        jobs += 1;
    }
    println!("stopped {id} after {jobs} jobs");
    // The second round: a party is killed before it arrives.
    match start.wait_timeout(Duration::from_secs(60)) {
        Err(BarrierError::Broken) => println!("worker {id}: barrier broken, a party died"),
        other => println!("worker {id}: {other:?}"),
    }
    Ok(())
}

fn spawn(names: &[String], id: usize) -> Result<(Child, BufReader<ChildStdout>), Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("worker")
        .args(names)
        .arg(id.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    Ok((child, out))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2..5], &args[5]);
    }
    let tag = std::process::id();
    let names: Vec<String> = ["start", "slots", "stop"]
        .iter()
        .map(|n| format!("sync-{n}-{tag}"))
        .collect();
    let start = Barrier::create(&names[0], WORKERS as u32 + 1)?;
    let slots = Semaphore::create(&names[1], 2)?;
    let stop = Event::create(&names[2])?;
    let mut kids = (0..WORKERS).map(|i| spawn(&names, i)).collect::<Result<Vec<_>, _>>()?;
    start.wait()?;
    println!("all {} parties passed the start line", start.parties());

    // Kill worker 0 while it holds a slot.
    let mut line = String::new();
    while !line.starts_with("holding 0") {
        line.clear();
        kids[0].1.read_line(&mut line)?;
    }
    kids[0].0.kill()?;
    kids[0].0.wait()?;
    println!(
        "killed worker 0 holding a slot; {} of 2 slots free now",
        slots.available()
    );
    std::thread::sleep(Duration::from_millis(50)); // the others go on with their jobs
    stop.set();
    // Once the workers have stopped, both slots can be had: the dead worker's came back.
    let t0 = Instant::now();
    let (a, b) = (slots.acquire(), slots.acquire());
    println!(
        "the parent took both slots in {:?}: the dead worker's came back",
        t0.elapsed()
    );
    drop((a, b));

    // Round two: worker 0 is dead and never arrives; the others are told at once.
    let t0 = Instant::now();
    match start.wait_timeout(Duration::from_secs(60)) {
        Err(BarrierError::Broken) => println!("parent: barrier broken after {:?} (not a hang)", t0.elapsed()),
        other => println!("parent: {other:?}"),
    }
    for (child, out) in kids.iter_mut().skip(1) {
        for line in out.lines() {
            println!("  {}", line?);
        }
        child.wait()?;
    }
    start.reset(); // forgets the dead party; a replacement could take its place
    println!(
        "after reset: broken = {}, waiting = {}",
        start.is_broken(),
        start.n_waiting()
    );
    Ok(())
}
