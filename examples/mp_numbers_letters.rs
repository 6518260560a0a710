//! Python's first `multiprocessing` program: two processes, one printing numbers and one
//! printing letters, started and joined.
//!
//! ```python
//! p1 = Process(target=print_numbers); p2 = Process(target=print_letters)
//! p1.start(); p2.start(); p1.join(); p2.join()
//! ```
//!
//! Run: `cargo run --example mp_numbers_letters`

use shmproc::Process;
use std::time::Duration;

fn print_numbers(_: ()) {
    for i in 1..=5 {
        std::thread::sleep(Duration::from_millis(30));
        println!("number {i} (process {})", std::process::id());
    }
}

fn print_letters(_: ()) {
    for c in ['a', 'b', 'c', 'd', 'e'] {
        std::thread::sleep(Duration::from_millis(30));
        println!("letter {c} (process {})", std::process::id());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init(); // first: in a child this runs the child's function and exits
    let mut numbers = Process::spawn(print_numbers, ())?;
    let mut letters = Process::spawn(print_letters, ())?;
    numbers.join()?;
    letters.join()?;
    println!("both done (parent {})", std::process::id());
    Ok(())
}
