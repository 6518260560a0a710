//! Pool workers reporting through a shared queue. Python needs a `Manager` for this, since a
//! plain `Queue` cannot be passed to pool workers:
//!
//! ```python
//! with Manager() as m:
//!     q = m.Queue()
//!     with Pool(3) as pool:
//!         pool.starmap(worker, [(q, i) for i in range(10)])
//!     while not q.empty(): print(q.get())
//! ```
//!
//! Here the queue has a name: the parent creates it and passes the name, each worker opens
//! it. No manager process, and the messages go through shared memory.
//!
//! Run: `cargo run --example mp_pool_manager_queue`

use serde::{Deserialize, Serialize};
use shmproc::{MessageQueue, Pool};

#[derive(Serialize, Deserialize, Debug)]
struct Report {
    task: u32,
    square: u64,
    worker: u32,
}

fn worker((queue, i): (String, u32)) -> Result<(), String> {
    let q = MessageQueue::<Report>::open(&queue).map_err(|e| e.to_string())?;
    let report = Report {
        task: i,
        square: u64::from(i) * u64::from(i),
        worker: std::process::id(),
    };
    q.put(&report).map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let name = format!("mp-mgr-{}", std::process::id());
    let q = MessageQueue::<Report>::create(&name, 16)?;
    let pool = Pool::new(3)?;
    for r in pool.starmap(worker, (0..10).map(|i| (name.clone(), i)))? {
        r?;
    }
    pool.join();
    while let Ok(report) = q.try_get() {
        println!("{report:?}");
    }
    Ok(())
}
