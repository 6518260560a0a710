use shmproc::Queue;
use std::time::Instant;
fn main() {
    let name = format!("zz_solo_{}", std::process::id());
    let q = Queue::<u64>::create(&name, 1024).unwrap();
    let _ = shmproc::remove(&name);
    for round in 0..std::env::var("R").ok().and_then(|v| v.parse().ok()).unwrap_or(5) {
        let n: u64 = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000_000);
        let t0 = Instant::now();
        let mut s = 0u64;
        for i in 0..n {
            q.put(i).unwrap();
            s = s.wrapping_add(q.get().unwrap());
        }
        let dt = t0.elapsed();
        let t1 = Instant::now();
        for i in 0..n / 512 {
            for j in 0..512 {
                q.put(i + j).unwrap();
            }
            for _ in 0..512 {
                s = s.wrapping_add(q.get().unwrap());
            }
        }
        let dt2 = t1.elapsed();
        let cq = crossbeam_queue::ArrayQueue::<u64>::new(1024);
        let t2 = Instant::now();
        for i in 0..n {
            cq.push(i).unwrap();
            s = s.wrapping_add(cq.pop().unwrap());
        }
        println!("crossbeam pair {:.1} ns", t2.elapsed().as_nanos() as f64 / n as f64);
        println!(
            "round {round}: put+get pair {:.1} ns; batched 512 {:.1} ns/pair ({s})",
            dt.as_nanos() as f64 / n as f64,
            dt2.as_nanos() as f64 / (n / 512 * 512) as f64
        );
    }
}
