//! A pool of 3 workers running 10 tasks with `apply_async`, timed. Python's
//!
//! ```python
//! with Pool(3) as pool:
//!     start = time.time()
//!     results = [pool.apply_async(work, (i,)) for i in range(10)]
//!     print([r.get() for r in results], time.time() - start)
//! ```
//!
//! Each task sleeps 100 ms: 10 tasks on 3 workers take 4 rounds, about 0.4 s.
//!
//! Run: `cargo run --example mp_pool_apply_async`

use shmproc::Pool;
use std::time::{Duration, Instant};

fn work(i: u64) -> (u64, u32) {
    std::thread::sleep(Duration::from_millis(100));
    (i * i, std::process::id())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let pool = Pool::new(3)?;
    let start = Instant::now();
    let handles: Vec<_> = (0..10).map(|i| pool.apply_async(work, i)).collect();
    for (i, h) in handles.iter().enumerate() {
        let (square, pid) = h.get()?;
        println!("task {i}: {square} (worker {pid})");
    }
    println!(
        "10 tasks of 100 ms on 3 workers took {:.2} s",
        start.elapsed().as_secs_f64()
    );
    pool.join();
    Ok(())
}
