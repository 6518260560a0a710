//! One producer process and two consumer processes share a `Queue<u64>`; the producer
//! closes the queue when it is done, and the consumers drain it and stop.
//!
//! Run: `cargo run --example producer_consumer`

use shmproc::{GetError, Queue};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("producer") => {
            let q = Queue::<u64>::open(&args[2])?;
            for i in 1..=20 {
                q.put(i)?;
            }
            q.close(); // replaces Python's "put a None sentinel per consumer"
            Ok(())
        }
        Some("consumer") => {
            let q = Queue::<u64>::open(&args[2])?;
            let mut got = Vec::new();
            loop {
                match q.get() {
                    Ok(v) => got.push(v),
                    Err(GetError::Closed) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            println!("consumer {} got {} items: {:?}", args[3], got.len(), got);
            Ok(())
        }
        _ => {
            let name = format!("pc-{}", std::process::id());
            let q = Queue::<u64>::create(&name, 8)?; // the parent owns (and finally removes) it
            let exe = std::env::current_exe()?;
            let consumers = (0..2)
                .map(|i| Command::new(&exe).args(["consumer", &name, &i.to_string()]).spawn())
                .collect::<Result<Vec<_>, _>>()?;
            let mut producer = Command::new(&exe).args(["producer", &name]).spawn()?;
            producer.wait()?;
            for mut c in consumers {
                c.wait()?;
            }
            println!("queue closed: {}, left in it: {}", q.is_closed(), q.len());
            Ok(())
        }
    }
}
