//! `JoinableQueue` with a daemon consumer. Python's
//!
//! ```python
//! def consumer(q):
//!     while True:
//!         item = q.get(); print(item); q.task_done()
//! q = JoinableQueue()
//! Process(target=consumer, args=(q,), daemon=True).start()
//! for i in range(10): q.put(i)
//! q.join()   # every item processed; the daemon dies with the parent
//! ```
//!
//! Run: `cargo run --example mp_joinable_queue`

use shmproc::{Process, Queue};
use std::time::Duration;

fn consumer(name: String) -> Result<(), String> {
    let q = Queue::<u64>::open(&name).map_err(|e| e.to_string())?;
    loop {
        let item = q.get().map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(10));
        println!("consumer {} processed {item}", std::process::id());
        q.task_done().map_err(|e| e.to_string())?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let name = format!("mp-jq-{}", std::process::id());
    let q = Queue::<u64>::create(&name, 16)?;
    // Never returns: as a daemon it is killed when its handle is dropped or the parent dies.
    let _consumer = Process::builder().daemon(true).spawn(consumer, name)?;
    for i in 0..10 {
        q.put(i)?;
    }
    q.join()?;
    println!("join() returned: all 10 items were processed");
    Ok(())
}
