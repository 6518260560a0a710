//! A tokio service that consumes a queue filled by a synchronous worker process and answers
//! over a `Pipe` (feature `tokio`).
//!
//! The main process runs a multi-thread tokio runtime (2 threads). It creates a job queue
//! (`Queue<u64>`, 16 slots) and a pipe, and starts a worker process (this binary again, with
//! the role `worker`), plain synchronous code: it puts 200 jobs with blocking `put`s (it waits
//! whenever the 16 slots are full), closes the queue, and then receives the 200 answers on its
//! end of the pipe with blocking `recv`s and checks them. On the tokio side, 8 tasks take jobs
//! with `get_async` (no thread per waiting task: they sleep on the queue handle's doorbell)
//! until the queue is closed and drained, compute something trivial (the number of Collatz
//! steps of the job) and send `(job, steps)` back over the pipe.
//!
//! The tasks call the blocking `Connection::send` directly: the pipe has room for every
//! answer (its capacity is the number of jobs), so a send never waits for the reader and
//! returns in microseconds. Where it could wait (a pipe smaller than the answers in flight),
//! send through `tokio::task::spawn_blocking` instead, or a task would hold a runtime thread.
//!
//! Each `get_async` runs under `tokio::time::timeout`, so a worker that dies before closing
//! the queue ends the service with an error instead of a hang (`get_async` is cancel safe: a
//! timed-out wait took nothing). Both names are owned by the main process and removed when
//! its handles drop: nothing is left in `/dev/shm`.
//!
//! Run: `cargo run --features tokio --example tokio_service`

use shmproc::{Connection, GetError, Options, Pipe, Queue};
use std::error::Error;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

const JOBS: u64 = 200;
const TASKS: usize = 8;
/// How long anything waits for the other process before giving up (it failed).
const LIMIT: Duration = Duration::from_secs(20);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("worker"), Some(jobs), Some(pipe)) => worker(jobs, pipe),
        _ => service(),
    }
}

/// The trivial computation: Collatz steps from `n` down to 1.
fn steps(mut n: u64) -> u32 {
    let mut s = 0;
    while n > 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        s += 1;
    }
    s
}

/// The synchronous worker: no runtime, only blocking calls.
fn worker(jobs_name: &str, pipe_name: &str) -> Result<(), Box<dyn Error>> {
    let jobs = Queue::<u64>::open(jobs_name)?;
    let answers = Connection::open(pipe_name)?;
    for job in 1..=JOBS {
        jobs.put(job)?; // waits while the 16 slots are full
    }
    jobs.close(); // the service's tasks drain the queue, then their get_async says Closed
    let mut seen = vec![false; JOBS as usize + 1];
    for _ in 0..JOBS {
        let (job, s): (u64, u32) = answers.recv_timeout(LIMIT)?;
        if job == 0 || job > JOBS || seen[job as usize] || s != steps(job) {
            return Err(format!("worker: wrong or repeated answer ({job}, {s})").into());
        }
        seen[job as usize] = true;
    }
    println!("worker: put {JOBS} jobs with blocking puts, got {JOBS} correct answers with blocking recvs");
    Ok(())
}

fn service() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    let (jobs_name, pipe_name) = (format!("tokio-jobs-{pid}"), format!("tokio-answers-{pid}"));
    // The creating handles own the names: dropping them, on any return below, removes them.
    let jobs = Arc::new(Queue::<u64>::create(&jobs_name, 16)?);
    let pipe = Pipe::new()
        .capacity(JOBS as usize)
        .options(Options::new().max_message_size(64));
    let answers = Arc::new(pipe.create(&pipe_name)?);
    let mut kid = Kid(Some(
        Command::new(std::env::current_exe()?)
            .args(["worker", &jobs_name, &pipe_name])
            .spawn()?,
    ));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let per_task: Vec<(usize, u64)> = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (jobs, answers) = (jobs.clone(), answers.clone());
                tokio::spawn(async move {
                    let (mut done, mut total) = (0usize, 0u64);
                    loop {
                        let job = match tokio::time::timeout(LIMIT, jobs.get_async()).await {
                            Ok(Ok(job)) => job,
                            Ok(Err(GetError::Closed)) => break, // closed and drained
                            Ok(Err(e)) => return Err(format!("get_async: {e}")),
                            Err(_) => return Err("no job and no close for 20 s: the worker died?".to_owned()),
                        };
                        let s = steps(job);
                        // Never waits: the pipe has room for every answer (see above).
                        answers.send(&(job, s)).map_err(|e| format!("send: {e}"))?;
                        done += 1;
                        total += u64::from(s);
                    }
                    Ok((done, total))
                })
            })
            .collect();
        let mut per_task = Vec::new();
        for t in tasks {
            per_task.push(t.await.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>(per_task)
    })?;

    let status = kid.wait()?;
    if !status.success() {
        return Err(format!("the worker failed: {status}").into());
    }
    let done: usize = per_task.iter().map(|(d, _)| d).sum();
    let total: u64 = per_task.iter().map(|(_, t)| t).sum();
    println!(
        "service: {TASKS} tasks on 2 runtime threads took {done} jobs with get_async (per task: {:?}) \
         and answered each over the pipe; {total} Collatz steps in all",
        per_task.iter().map(|(d, _)| d).collect::<Vec<_>>()
    );
    if done as u64 != JOBS {
        return Err(format!("took {done} jobs, expected {JOBS}").into());
    }
    Ok(())
}

/// The worker process: killed and reaped if the service returns early.
struct Kid(Option<Child>);

impl Kid {
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.0.take() {
            Some(mut c) => c.wait(),
            None => Err(std::io::Error::other("worker already reaped")),
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
