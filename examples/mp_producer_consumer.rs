//! Producer and consumer processes with a sentinel. Python's
//!
//! ```python
//! def producer(q):
//!     for i in range(10): q.put(i)
//!     q.put(None)
//! def consumer(q):
//!     while (item := q.get()) is not None: print(item)
//! ```
//!
//! The sentinel is `None` of an `Option`. (`q.close()` does the same job without one: see
//! `mp_queue_reader_writer`.)
//!
//! Run: `cargo run --example mp_producer_consumer`

use shmproc::{MessageQueue, Process};
use std::time::Duration;

fn producer(name: String) -> Result<(), String> {
    let q = MessageQueue::<Option<u32>>::open(&name).map_err(|e| e.to_string())?;
    for i in 0..10u32 {
        std::thread::sleep(Duration::from_millis(10));
        q.put(&Some(i)).map_err(|e| e.to_string())?;
        println!("produced {i}");
    }
    q.put(&None::<u32>).map_err(|e| e.to_string())
}

fn consumer(name: String) -> Result<u32, String> {
    let q = MessageQueue::<Option<u32>>::open(&name).map_err(|e| e.to_string())?;
    let mut sum = 0;
    while let Some(item) = q.get().map_err(|e| e.to_string())? {
        println!("consumed {item}");
        sum += item;
    }
    Ok(sum)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let name = format!("mp-pc-{}", std::process::id());
    let _q = MessageQueue::<Option<u32>>::create(&name, 4)?;
    let mut c = Process::spawn(consumer, name.clone())?;
    let mut p = Process::spawn(producer, name)?;
    p.join()??;
    println!("consumer's sum: {}", c.join()??);
    Ok(())
}
