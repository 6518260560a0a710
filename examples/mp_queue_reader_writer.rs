//! A writer process and a reader process talking through a queue. Python's
//!
//! ```python
//! q = Queue()
//! writer = Process(target=write, args=(q,)); reader = Process(target=read, args=(q,))
//! # the writer ends with q.put(None); the reader stops at None
//! ```
//!
//! The queue is named: each process opens it. Instead of a sentinel, the writer closes the
//! queue: the reader gets what was sent, then `RecvError::Closed`.
//!
//! Run: `cargo run --example mp_queue_reader_writer`

use shmproc::{MessageQueue, Process, RecvError};

fn write(name: String) -> Result<usize, String> {
    let q = MessageQueue::<String>::open(&name).map_err(|e| e.to_string())?;
    let messages = ["hello", "from", "the", "writer", "process"];
    for m in messages {
        q.put(m).map_err(|e| e.to_string())?;
        println!("writer put {m:?}");
    }
    q.close();
    Ok(messages.len())
}

fn read(name: String) -> Result<Vec<String>, String> {
    let q = MessageQueue::<String>::open(&name).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    loop {
        match q.get() {
            Ok(m) => {
                println!("reader got {m:?}");
                got.push(m);
            }
            Err(RecvError::Closed) => return Ok(got),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let name = format!("mp-rw-{}", std::process::id());
    let _queue = MessageQueue::<String>::create(&name, 8)?; // owns the name
    let mut reader = Process::spawn(read, name.clone())?;
    let mut writer = Process::spawn(write, name)?;
    let sent = writer.join()??;
    let got = reader.join()??;
    println!(
        "writer sent {sent} messages; reader got {}: {}",
        got.len(),
        got.join(" ")
    );
    Ok(())
}
