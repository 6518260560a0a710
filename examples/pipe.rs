//! Python's `multiprocessing.Pipe` between two processes: the parent creates a duplex pipe
//! and starts a child with the pipe's name on its command line. They exchange typed messages
//! (a serde struct and enum, encoded with postcard) and raw bytes (`send_bytes` /
//! `recv_bytes`) in both directions; the parent uses `poll` to look for messages. The child
//! sends a last message and exits; the parent still receives that message, and then `recv`
//! returns `RecvError::Disconnected`, as Python's `recv` raises `EOFError`.
//!
//! Run: `cargo run --example pipe`

use serde::{Deserialize, Serialize};
use shmproc::{Connection, Pipe, RecvError, SendError};
use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

/// How long the parent waits for any one message before giving up (the child failed).
const LIMIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug)]
struct Job {
    id: u32,
    words: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Reply {
    Counted { id: u32, letters: usize },
    Bye,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("child"), Some(name)) => child(name),
        _ => parent(),
    }
}

/// The child's end: answers two jobs, echoes one raw message reversed, says goodbye, exits.
fn child(name: &str) -> Result<(), Box<dyn Error>> {
    let conn = Connection::open(name)?;
    for _ in 0..2 {
        let job: Job = conn.recv()?;
        let letters = job.words.iter().map(|w| w.chars().count()).sum();
        println!("child: got {job:?}, {letters} letters");
        conn.send(&Reply::Counted { id: job.id, letters })?;
    }
    let mut raw = conn.recv_bytes()?;
    println!("child: got {} raw bytes {raw:02x?}", raw.len());
    raw.reverse();
    conn.send_bytes(&raw)?;
    conn.send(&Reply::Bye)?;
    println!("child: exiting (dropping its end)");
    Ok(())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("pipe-{}", std::process::id());
    // The creating end owns the name: dropping it, on any return below, unlinks it.
    let conn = Pipe::new().capacity(8).create(&name)?;
    let exe = std::env::current_exe()?;
    let mut kid = Kid(Some(Command::new(exe).args(["child", &name]).spawn()?));

    println!(
        "parent: poll(0) before anything was sent: {}",
        conn.poll(Duration::ZERO)
    );
    conn.send(&Job {
        id: 1,
        words: vec!["hello".into(), "pipe".into()],
    })?;
    conn.send(&Job {
        id: 2,
        words: vec!["shared".into(), "memory".into(), "é".into()],
    })?;
    conn.send_bytes(&[0x00, 0x01, 0x02, 0xff])?;

    // `poll(t)` waits up to `t` for a message (or for the child to go away).
    println!("parent: poll(10 s) says a message is waiting: {}", conn.poll(LIMIT));
    for _ in 0..2 {
        let reply: Reply = conn.recv_timeout(LIMIT)?;
        println!("parent: got {reply:?}");
    }
    let mut raw = Vec::new();
    conn.recv_bytes_into_timeout(&mut raw, LIMIT)?;
    println!("parent: got raw bytes {raw:02x?}");

    // Let the child exit first: its last message stays in the pipe after it is gone.
    let status = kid.wait()?;
    println!(
        "parent: child exited with {status}; poll(0): {}",
        conn.poll(Duration::ZERO)
    );
    let last: Reply = conn.recv_timeout(LIMIT)?;
    println!("parent: drained {last:?} after the child exited");
    match conn.recv::<Reply>() {
        Err(RecvError::Disconnected) => println!("parent: recv -> Disconnected (the child's end is gone)"),
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    match conn.send_bytes(b"anyone?") {
        Err(SendError::Disconnected) => println!("parent: send_bytes -> Disconnected"),
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    if !status.success() || last != Reply::Bye {
        return Err(format!("the child failed ({status}) or said {last:?}").into());
    }
    Ok(())
}

/// The child process: killed and reaped if the parent returns early (a receive timed out).
struct Kid(Option<Child>);

impl Kid {
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.0.take() {
            Some(mut c) => c.wait(),
            None => Err(std::io::Error::other("child already reaped")),
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
