//! Arguments and keyword arguments, `is_alive` and `terminate`: Python's
//!
//! ```python
//! def worker(num, name="Worker", delay=2.0): ...
//! p = Process(target=worker, args=(1,), kwargs={"name": "Custom"})
//! p.start(); time.sleep(0.5)
//! if p.is_alive(): p.terminate()
//! p.join(); print(p.exitcode)   # -15
//! ```
//!
//! Keyword arguments become a struct with defaults.
//!
//! Run: `cargo run --example mp_arguments`

use serde::{Deserialize, Serialize};
use shmproc::Process;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct WorkerArgs {
    num: u32,
    name: String,
    delay_ms: u64,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        WorkerArgs {
            num: 0,
            name: "Worker".to_owned(),
            delay_ms: 2000,
        }
    }
}

fn worker(args: WorkerArgs) -> String {
    println!("{} {} starting", args.name, args.num);
    std::thread::sleep(Duration::from_millis(args.delay_ms));
    println!("{} {} done", args.name, args.num);
    format!("{} {} finished", args.name, args.num)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let quick = WorkerArgs {
        num: 1,
        delay_ms: 100,
        ..WorkerArgs::default()
    };
    let slow = WorkerArgs {
        num: 2,
        name: "Custom".to_owned(),
        ..WorkerArgs::default()
    };
    let mut p1 = Process::builder().name("quick").spawn(worker, quick)?;
    let mut p2 = Process::builder().name("slow").spawn(worker, slow)?;
    std::thread::sleep(Duration::from_millis(500));
    for p in [&mut p1, &mut p2] {
        let name = p.name().unwrap_or("?").to_owned();
        if p.is_alive() {
            println!("{name} (pid {}) is still alive after 0.5 s: terminating it", p.pid());
            p.terminate()?;
        }
        match p.join() {
            Ok(result) => println!("{name} returned {result:?}"),
            Err(e) => println!("{name}: {e}"),
        }
        // Python's exitcode: the code, or minus the signal.
        let status = p.exit_status().expect("joined");
        let exitcode = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
        println!("{name} exitcode {exitcode}");
    }
    Ok(())
}
