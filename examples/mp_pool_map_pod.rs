//! `Pool::map_pod`: `map` for plain data (numbers, `#[repr(C)]` structs of numbers), whose
//! items and results travel as raw bytes instead of being encoded one by one. Python has no
//! such thing; the nearest is
//!
//! ```python
//! with Pool() as pool:
//!     print(sum(pool.map(norm2, points)))
//! ```
//!
//! Run: `cargo run --release --example mp_pool_map_pod`

use shmproc::Pool;
use std::time::Instant;

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Point {
    x: f32,
    y: f32,
}

fn norm2(p: Point) -> f32 {
    p.x * p.x + p.y * p.y
}

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let pool = Pool::builder().build()?; // one worker per CPU
    let points: Vec<Point> = (0..1000).map(|i| Point { x: i as f32, y: 1.0 }).collect();
    let norms = pool.map_pod(norm2, &points)?;
    println!(
        "map_pod(norm2, 1000 points): first {:?}, sum {}",
        &norms[..3],
        norms.iter().sum::<f32>()
    );
    let items: Vec<u64> = (0..1_000_000).collect();
    for _ in 0..2 {
        let t = Instant::now();
        let by_map = pool.map(square, items.iter().copied())?;
        let map_ns = t.elapsed().as_nanos() as f64 / items.len() as f64;
        let t = Instant::now();
        let by_pod = pool.map_pod(square, &items)?;
        let pod_ns = t.elapsed().as_nanos() as f64 / items.len() as f64;
        assert_eq!(by_map, by_pod);
        println!("square over 1 000 000 u64: map {map_ns:.1} ns/item, map_pod {pod_ns:.1} ns/item");
    }
    pool.join();
    Ok(())
}
