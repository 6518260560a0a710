//! Getting results back from a pool: `apply_async(...).get()` and `map(f, range(1, 11))`,
//! plus `imap` and `imap_unordered`. Python's
//!
//! ```python
//! with Pool() as pool:
//!     print(pool.apply_async(square, (10,)).get())
//!     print(pool.map(square, range(1, 11)))
//! ```
//!
//! Run: `cargo run --example mp_pool_results`

use shmproc::Pool;

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let pool = Pool::builder().build()?; // one worker per CPU
    println!(
        "apply_async(square, 10).get() = {}",
        pool.apply_async(square, 10).get()?
    );
    println!("map(square, 1..=10) = {:?}", pool.map(square, 1..=10)?);
    let imap: Vec<u64> = pool.imap(square, 1..=10).collect::<Result<_, _>>()?;
    println!("imap(square, 1..=10) = {imap:?}");
    let mut unordered: Vec<u64> = pool.imap_unordered(square, 1..=10).collect::<Result<_, _>>()?;
    unordered.sort_unstable();
    println!("imap_unordered(square, 1..=10), sorted = {unordered:?}");
    pool.join();
    Ok(())
}
