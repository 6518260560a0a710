//! `Value<u64>` lock + increment + unlock, uncontended, against `std::sync::Mutex` in-process
//! measured in the same run. `cargo bench -p shmproc-bench --bench lock`.

use criterion::{Criterion, criterion_group, criterion_main};
use shmproc::Value;
use std::hint::black_box;
use std::sync::Mutex;

fn lock_uncontended(c: &mut Criterion) {
    let name = format!("bench-lock-{}", std::process::id());
    let v = Value::<u64>::create(&name, 0).expect("create");
    let m = Mutex::new(0u64);
    println!("cpu: {}", shmproc_testkit::cpu_model());
    let mut g = c.benchmark_group("lock+incr+unlock, uncontended");
    g.bench_function("shmproc::Value<u64>", |b| {
        b.iter(|| {
            let mut guard = v.lock().expect("lock");
            *guard += 1;
            black_box(&*guard);
        })
    });
    g.bench_function("std::sync::Mutex<u64>", |b| {
        b.iter(|| {
            let mut guard = m.lock().expect("lock");
            *guard += 1;
            black_box(&*guard);
        })
    });
    g.finish();
}

criterion_group!(benches, lock_uncontended);
criterion_main!(benches);
