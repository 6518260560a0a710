//! Python's queue tutorial pair, ported: a writer process puts 'A', 'B' and 'C' into a shared
//! queue of strings, a reader process prints them as they arrive. The parent starts both,
//! waits for the writer, then closes the queue (where Python puts a `None` sentinel): the
//! reader's `get` drains what is left, returns `RecvError::Closed`, and the reader exits.
//!
//! ```python
//! def writer(q):
//!     for item in "ABC":
//!         q.put(item)
//!
//! def reader(q):
//!     while (item := q.get()) is not None:
//!         print(item)
//! ```
//!
//! The parent owns the queue's name, so it is removed from `/dev/shm` on every way out of
//! `parent()`, also when a child fails: the children are reaped (or killed, if one has not
//! finished within `LIMIT`) before the error is returned.
//!
//! Run: `cargo run --example queue_strings`

use shmproc::{MessageQueue, RecvError};
use std::error::Error;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long the parent waits for a child before it kills it.
const LIMIT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let name = || args.get(2).map(String::as_str).ok_or("missing queue name");
    match args.get(1).map(String::as_str) {
        Some("writer") => writer(name()?),
        Some("reader") => reader(name()?),
        _ => parent(),
    }
}

fn writer(name: &str) -> Result<(), Box<dyn Error>> {
    let q = MessageQueue::<String>::open(name)?;
    for item in ["A", "B", "C"] {
        q.put(item)?; // a &str is sent as a String
        println!("writer: put {item:?}");
    }
    Ok(())
}

fn reader(name: &str) -> Result<(), Box<dyn Error>> {
    let q = MessageQueue::<String>::open(name)?;
    loop {
        match q.get() {
            Ok(item) => println!("reader: got {item:?}"),
            Err(RecvError::Closed) => {
                println!("reader: the queue is closed and drained, exiting");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("qstr-{}", std::process::id());
    // The creating handle owns the name: dropping it, on any return below, unlinks it.
    let q = MessageQueue::<String>::create(&name, 16)?;
    let exe = std::env::current_exe()?;
    let mut reader = Worker::spawn(&exe, "reader", &name)?;
    let mut writer = Worker::spawn(&exe, "writer", &name)?;
    let wrote = writer.wait(LIMIT);
    q.close(); // wake the reader even if the writer failed
    let read = reader.wait(LIMIT);
    let (wrote, read) = (wrote?, read?);
    if !wrote.success() || !read.success() {
        return Err(format!("a child failed: writer {wrote}, reader {read}").into());
    }
    println!("parent: writer and reader done, {} items left in the queue", q.len());
    Ok(())
}

/// A child process running this example in a role; killed and reaped if it is dropped
/// before [`Worker::wait`] saw it exit (the parent returned early).
struct Worker {
    role: &'static str,
    child: Option<Child>,
}

impl Worker {
    fn spawn(exe: &Path, role: &'static str, name: &str) -> std::io::Result<Worker> {
        let child = Command::new(exe).args([role, name]).spawn()?;
        Ok(Worker {
            role,
            child: Some(child),
        })
    }

    /// Waits for the child to exit, for at most `limit`; then kills it and says so.
    fn wait(&mut self, limit: Duration) -> Result<ExitStatus, Box<dyn Error>> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{} was already reaped", self.role).into());
        };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                drop(self.child.take()); // Drop kills and reaps it
                return Err(format!("{} did not finish within {limit:?}; killed it", self.role).into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
