//! Async waiting (feature `tokio`) across processes against what a tokio program would use
//! instead, in one run.
//!
//! `cargo bench -p shmproc-bench --bench async` prints, for a tokio runtime on each side
//! (current-thread by default, `SHMPROC_BENCH_RT=multi` for a multi-thread one of 2 workers):
//! - round trip, 8 B: ping-pong between two processes over two `Queue<u64>` with
//!   `get_async`/`put_async`, the other process async too or a plain blocking thread; the
//!   workaround without async waiting (blocking `get`/`put` in `spawn_blocking`, per call);
//!   blocking on both sides (no tokio); tokio `mpsc` between two tasks of one process (the
//!   ceiling); tokio `UnixStream` between two processes, 8-byte messages;
//! - throughput: a producer process putting `u64` items with blocking `put`, a tokio
//!   consumer taking them with `get_async` (or `spawn_blocking(get)` per item, or a plain
//!   blocking `get`); tokio `mpsc` from a blocking thread (`blocking_send`) to a task of the
//!   same process (the ceiling); tokio `UnixStream` from a producer process writing each
//!   8-byte item with its own `write_all`, read through a 64 KiB buffer.
//!
//! The other side of the two-process rows is this binary again, its role in
//! `SHMPROC_ASYNC_BENCH_ROLE`. Each row runs `SHMPROC_BENCH_RUNS` (5) timed runs of about
//! `SHMPROC_BENCH_TARGET_MS` (200) and prints median (min-max) per round trip or per item;
//! every message is checked (echoes, counts, sums). The timed loops run in spawned tasks
//! (see `round_trips`). No CPU pinning: the scheduler places both sides. Without `--bench` (`cargo test --benches`) it is a smoke test of a few
//! seconds: every row once, briefly.

use shmproc::Queue;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

type Res<T> = Result<T, Box<dyn Error>>;
type Shared = Arc<Queue<u64>>;

const ROLE: &str = "SHMPROC_ASYNC_BENCH_ROLE";
/// The last message of a queue round trip: the echoing side passes it back and exits.
const STOP: u64 = u64::MAX;
/// Capacity of every queue and channel.
const CAP: usize = 1024;
/// The longest any single receive in a check may take (a hung row fails instead of hanging).
const LIMIT: Duration = Duration::from_secs(20);

fn multi() -> bool {
    std::env::var("SHMPROC_BENCH_RT").is_ok_and(|v| v == "multi")
}

fn runtime() -> Runtime {
    let mut b = if multi() {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().expect("tokio runtime")
}

// ---------------------------------------------------------------------------------------
// The child side.

fn child(role: &str) -> Res<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or("missing argument");
    match role {
        // echo_* [q1] [q2]: takes from q1, puts the same value into q2, until STOP.
        "echo_async" => {
            let (a, b) = (Queue::<u64>::open(arg(0)?)?, Queue::<u64>::open(arg(1)?)?);
            println!("READY");
            runtime().block_on(async {
                loop {
                    let x = a.get_async().await.expect("get_async");
                    b.put_async(x).await.expect("put_async");
                    if x == STOP {
                        break;
                    }
                }
            });
        }
        "echo_spawn_blocking" => {
            let a = Arc::new(Queue::<u64>::open(arg(0)?)?);
            let b = Arc::new(Queue::<u64>::open(arg(1)?)?);
            println!("READY");
            runtime().block_on(async {
                loop {
                    let a2 = a.clone();
                    let x = tokio::task::spawn_blocking(move || a2.get())
                        .await
                        .unwrap()
                        .expect("get");
                    let b2 = b.clone();
                    tokio::task::spawn_blocking(move || b2.put(x))
                        .await
                        .unwrap()
                        .expect("put");
                    if x == STOP {
                        break;
                    }
                }
            });
        }
        "echo_blocking" => {
            let (a, b) = (Queue::<u64>::open(arg(0)?)?, Queue::<u64>::open(arg(1)?)?);
            println!("READY");
            loop {
                let x = a.get()?;
                b.put(x)?;
                if x == STOP {
                    break;
                }
            }
        }
        // echo_unix [abstract name]: echoes 8-byte messages until the socket closes.
        "echo_unix" => {
            let s = connect(arg(0)?)?;
            println!("READY");
            runtime().block_on(async {
                let s = tokio::net::UnixStream::from_std(s).expect("register");
                let mut m = [0u8; 8];
                while read_exact(&s, &mut m).await.is_ok() {
                    write_all(&s, &m).await.expect("write");
                }
            });
        }
        // produce_queue [q]: per `RUN n` line on stdin, puts 0..n with blocking puts.
        "produce_queue" => {
            let q = Queue::<u64>::open(arg(0)?)?;
            serve_runs(|n| {
                for i in 0..n {
                    q.put(i)?;
                }
                Ok(())
            })?;
        }
        // produce_unix [abstract name]: per `RUN n`, writes 0..n, one write_all per item.
        "produce_unix" => {
            let mut s = connect(arg(0)?)?;
            s.set_nonblocking(false)?;
            serve_runs(|n| {
                for i in 0..n {
                    s.write_all(&i.to_le_bytes())?;
                }
                Ok(())
            })?;
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

/// Says READY, then runs `run(n)` per `RUN n` line on stdin, answering DONE, until EOF.
fn serve_runs(mut run: impl FnMut(u64) -> Res<()>) -> Res<()> {
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let n: u64 = line.strip_prefix("RUN ").ok_or("expected RUN n")?.trim().parse()?;
        run(n)?;
        println!("DONE");
    }
    Ok(())
}

fn connect(name: &str) -> Res<UnixStream> {
    let s = UnixStream::connect_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Tokio's `AsyncReadExt::read_exact` (feature `io-util`, which this crate does not build),
/// as tokio does it: await readiness, read without blocking.
async fn read_exact(s: &tokio::net::UnixStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match s.try_read(&mut buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => s.readable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `AsyncWriteExt::write_all`, as [`read_exact`].
async fn write_all(s: &tokio::net::UnixStream, buf: &[u8]) -> std::io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match s.try_write(&buf[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A `BufReader` of 64 KiB over a tokio stream, reading `u64`s (little-endian).
struct Buffered {
    s: tokio::net::UnixStream,
    buf: Vec<u8>,
    at: usize,
    end: usize,
}

impl Buffered {
    async fn read_u64(&mut self) -> std::io::Result<u64> {
        while self.end - self.at < 8 {
            self.buf.copy_within(self.at..self.end, 0);
            self.end -= self.at;
            self.at = 0;
            match self.s.try_read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.s.readable().await?,
                Err(e) => return Err(e),
            }
        }
        let v = u64::from_le_bytes(self.buf[self.at..self.at + 8].try_into().expect("8 bytes"));
        self.at += 8;
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------
// The parent side.

/// A child process: killed and reaped when dropped if it has not exited.
struct Kid {
    child: Child,
    out: BufReader<ChildStdout>,
    inp: Option<ChildStdin>,
}

impl Kid {
    fn spawn(role: &str, args: &[&str]) -> Res<Kid> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE, role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let inp = child.stdin.take();
        let mut kid = Kid { child, out, inp };
        kid.expect("READY")?;
        Ok(kid)
    }

    fn expect(&mut self, what: &str) -> Res<()> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        if line.trim() != what {
            return Err(format!("child said {line:?}, expected {what}").into());
        }
        Ok(())
    }

    fn run(&mut self, n: u64) -> Res<()> {
        let inp = self.inp.as_mut().ok_or("stdin closed")?;
        writeln!(inp, "RUN {n}")?;
        inp.flush()?;
        Ok(())
    }

    /// Closes its stdin and waits for it to exit successfully.
    fn finish(mut self) -> Res<()> {
        self.inp = None;
        let st = self.child.wait()?;
        if !st.success() {
            return Err(format!("child exited with {st}").into());
        }
        Ok(())
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Cfg {
    smoke: bool,
    runs: usize,
    target: Duration,
}

/// Median, min, max of seconds per operation.
#[derive(Clone, Copy)]
struct Stats {
    med: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    Stats {
        med: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn name(what: &str) -> String {
    format!("ab-{}-{what}", std::process::id())
}

/// Round trips for `target`, from message `next`: `trip(i)` sends `i` and returns the echo,
/// which is checked. Returns the trips done, their time and the next message.
async fn timed(target: Duration, mut next: u64, mut trip: impl AsyncFnMut(u64) -> u64) -> (u64, Duration, u64) {
    let t = Instant::now();
    let mut k = 0u64;
    loop {
        for _ in 0..8 {
            let got = trip(next).await;
            assert_eq!(got, next, "echo");
            next += 1;
        }
        k += 8;
        if t.elapsed() >= target {
            return (k, t.elapsed(), next);
        }
    }
}

/// A round-trip row: `run(target, next)` is a [`timed`] loop. It runs as a spawned task, as
/// a service's work does: a future awaited by `block_on` itself pays for each wake-up an
/// eventfd write to unpark the runtime (tokio 1.x), which tasks woken by tasks do not.
fn round_trips<F>(cfg: &Cfg, rt: &Runtime, mut run: impl FnMut(Duration, u64) -> F) -> Res<Stats>
where
    F: Future<Output = (u64, Duration, u64)> + Send + 'static,
{
    let mut next = 0u64;
    let mut per = Vec::new();
    for _ in 0..cfg.runs {
        let (k, dt, n) = rt.block_on(rt.spawn(run(cfg.target, next)))?;
        next = n;
        per.push(dt.as_secs_f64() / k as f64);
    }
    Ok(stats(per))
}

/// A throughput row: `run(n)` moves `n` items and returns their sum. Calibrates `n` to
/// fill `cfg.target` (smoke: 2 000 items, once).
fn throughput(cfg: &Cfg, mut run: impl FnMut(u64) -> Res<u64>) -> Res<Stats> {
    let mut timed = |n: u64| -> Res<f64> {
        let t = Instant::now();
        let sum = run(n)?;
        let dt = t.elapsed().as_secs_f64();
        if sum != n * (n - 1) / 2 {
            return Err(format!("sum {sum} for {n} items").into());
        }
        Ok(dt)
    };
    if cfg.smoke {
        let n = 2_000;
        return Ok(stats(vec![timed(n)? / n as f64]));
    }
    let mut n = 2_000u64;
    let per_item = loop {
        let dt = timed(n)?;
        if dt >= 0.02 || n >= 100_000_000 {
            break dt / n as f64;
        }
        n *= 10;
    };
    let n = ((cfg.target.as_secs_f64() / per_item) as u64).clamp(2_000, 100_000_000);
    let per = (0..cfg.runs)
        .map(|_| timed(n).map(|dt| dt / n as f64))
        .collect::<Res<Vec<_>>>()?;
    Ok(stats(per))
}

/// A listener on a fresh abstract address (nothing on disk), and its name.
fn listen(what: &str) -> Res<(UnixListener, String)> {
    let n = format!("shmproc-bench-async-{}-{what}", std::process::id());
    let l = UnixListener::bind_addr(&SocketAddr::from_abstract_name(n.as_bytes())?)?;
    Ok((l, n))
}

/// Two queues for a round trip, a child echoing with `role`; names removed once it opened them.
fn queue_pair(role: &str, what: &str) -> Res<(Shared, Shared, Kid)> {
    let (n1, n2) = (name(&format!("{what}-1")), name(&format!("{what}-2")));
    let q1 = Arc::new(Queue::<u64>::create(&n1, CAP)?);
    let q2 = Arc::new(Queue::<u64>::create(&n2, CAP)?);
    let kid = Kid::spawn(role, &[&n1, &n2])?;
    shmproc::remove(&n1)?;
    shmproc::remove(&n2)?;
    Ok((q1, q2, kid))
}

/// Ends a queue round-trip row: STOP, its echo, the child's exit.
fn stop(q1: &Queue<u64>, q2: &Queue<u64>, kid: Kid) -> Res<()> {
    q1.put(STOP)?;
    if q2.get_timeout(LIMIT)? != STOP {
        return Err("no STOP echo".into());
    }
    kid.finish()
}

struct Row {
    label: &'static str,
    s: Stats,
}

fn main() -> Res<()> {
    if let Ok(role) = std::env::var(ROLE) {
        return child(&role);
    }
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // a test runner asking for the list of benchmarks
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) this is a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let cfg = if smoke {
        Cfg {
            smoke,
            runs: 1,
            target: Duration::from_millis(5),
        }
    } else {
        Cfg {
            smoke,
            runs: env("SHMPROC_BENCH_RUNS", 5).max(1) as usize,
            target: Duration::from_millis(env("SHMPROC_BENCH_TARGET_MS", 200)),
        }
    };
    // A hung row ends the run (the children die with us: PR_SET_PDEATHSIG).
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(300));
        eprintln!("async bench: watchdog: no end after 300 s");
        std::process::exit(2);
    });
    let rt = runtime();
    let progress = |l: &str| eprintln!("async bench: {l}");

    // Round trips.
    let mut trips: Vec<Row> = Vec::new();
    const RT_ASYNC: &str = "shmproc Queue x2, get_async/put_async <-> the same (both tokio)";
    progress(RT_ASYNC);
    let (q1, q2, kid) = queue_pair("echo_async", "aa")?;
    let s = round_trips(&cfg, &rt, |target, next| {
        let (q1, q2) = (q1.clone(), q2.clone());
        timed(target, next, async move |i| {
            q1.put_async(i).await.expect("put_async");
            q2.get_async().await.expect("get_async")
        })
    })?;
    stop(&q1, &q2, kid)?;
    trips.push(Row { label: RT_ASYNC, s });

    const RT_ASYNC_BLOCKING: &str = "shmproc Queue x2, get_async/put_async <-> blocking get/put thread";
    progress(RT_ASYNC_BLOCKING);
    let (q1, q2, kid) = queue_pair("echo_blocking", "ab")?;
    let s = round_trips(&cfg, &rt, |target, next| {
        let (q1, q2) = (q1.clone(), q2.clone());
        timed(target, next, async move |i| {
            q1.put_async(i).await.expect("put_async");
            q2.get_async().await.expect("get_async")
        })
    })?;
    stop(&q1, &q2, kid)?;
    trips.push(Row {
        label: RT_ASYNC_BLOCKING,
        s,
    });

    const RT_SB: &str = "shmproc Queue x2, spawn_blocking(get/put) per call <-> the same";
    progress(RT_SB);
    let (q1, q2, kid) = queue_pair("echo_spawn_blocking", "ss")?;
    let s = round_trips(&cfg, &rt, |target, next| {
        let (q1, q2) = (q1.clone(), q2.clone());
        timed(target, next, async move |i| {
            let (a, b) = (q1.clone(), q2.clone());
            tokio::task::spawn_blocking(move || a.put(i))
                .await
                .unwrap()
                .expect("put");
            tokio::task::spawn_blocking(move || b.get())
                .await
                .unwrap()
                .expect("get")
        })
    })?;
    stop(&q1, &q2, kid)?;
    trips.push(Row { label: RT_SB, s });

    const RT_SB_BLOCKING: &str = "shmproc Queue x2, spawn_blocking(get/put) per call <-> blocking thread";
    progress(RT_SB_BLOCKING);
    let (q1, q2, kid) = queue_pair("echo_blocking", "sb")?;
    let s = round_trips(&cfg, &rt, |target, next| {
        let (q1, q2) = (q1.clone(), q2.clone());
        timed(target, next, async move |i| {
            let (a, b) = (q1.clone(), q2.clone());
            tokio::task::spawn_blocking(move || a.put(i))
                .await
                .unwrap()
                .expect("put");
            tokio::task::spawn_blocking(move || b.get())
                .await
                .unwrap()
                .expect("get")
        })
    })?;
    stop(&q1, &q2, kid)?;
    trips.push(Row {
        label: RT_SB_BLOCKING,
        s,
    });

    const RT_BLOCKING: &str = "shmproc Queue x2, blocking <-> blocking (no tokio; reference)";
    progress(RT_BLOCKING);
    let (q1, q2, kid) = queue_pair("echo_blocking", "bb")?;
    // The same loop; its future never returns Pending (the task blocks its thread).
    let s = round_trips(&cfg, &rt, |target, next| {
        let (q1, q2) = (q1.clone(), q2.clone());
        timed(target, next, async move |i| {
            q1.put(i).expect("put");
            q2.get().expect("get")
        })
    })?;
    stop(&q1, &q2, kid)?;
    trips.push(Row { label: RT_BLOCKING, s });

    const RT_MPSC: &str = "tokio mpsc x2 (cap 1), two tasks of one process (ceiling)";
    progress(RT_MPSC);
    let s = round_trips(&cfg, &rt, |target, next| {
        let (tx1, mut rx1) = tokio::sync::mpsc::channel::<u64>(1);
        let (tx2, mut rx2) = tokio::sync::mpsc::channel::<u64>(1);
        async move {
            let echo = tokio::spawn(async move {
                while let Some(x) = rx1.recv().await {
                    if tx2.send(x).await.is_err() {
                        break;
                    }
                }
            });
            // `tx1` goes with the closure at the end of the loop, which ends `echo`.
            let r = timed(target, next, async move |i| {
                tx1.send(i).await.expect("send");
                rx2.recv().await.expect("recv")
            })
            .await;
            echo.await.expect("echo task");
            r
        }
    })?;
    trips.push(Row { label: RT_MPSC, s });

    const RT_UNIX: &str = "tokio UnixStream, 8-byte messages, two processes (both tokio)";
    progress(RT_UNIX);
    let (l, n) = listen("rt")?;
    let kid = Kid::spawn("echo_unix", &[&n])?;
    let (sock, _) = l.accept()?;
    sock.set_nonblocking(true)?;
    let sock = Arc::new(rt.block_on(async { tokio::net::UnixStream::from_std(sock) })?);
    let s = round_trips(&cfg, &rt, |target, next| {
        let sock = sock.clone();
        timed(target, next, async move |i| {
            write_all(&sock, &i.to_le_bytes()).await.expect("write");
            let mut m = [0u8; 8];
            read_exact(&sock, &mut m).await.expect("read");
            u64::from_le_bytes(m)
        })
    })?;
    drop(sock);
    kid.finish()?;
    trips.push(Row { label: RT_UNIX, s });

    // Throughput.
    let mut flows: Vec<Row> = Vec::new();
    const TP_ASYNC: &str = "shmproc Queue: blocking put (process) -> get_async (tokio)";
    progress(TP_ASYNC);
    let qn = name("tp");
    let q = Arc::new(Queue::<u64>::create(&qn, CAP)?);
    let mut kid = Kid::spawn("produce_queue", &[&qn])?;
    shmproc::remove(&qn)?;
    let s = throughput(&cfg, |n| {
        kid.run(n)?;
        let q = q.clone();
        let sum = rt.block_on(rt.spawn(async move {
            let mut sum = 0u64;
            for _ in 0..n {
                sum += q.get_async().await.expect("get_async");
            }
            sum
        }))?;
        kid.expect("DONE")?;
        Ok(sum)
    })?;
    flows.push(Row { label: TP_ASYNC, s });

    const TP_SB: &str = "shmproc Queue: blocking put (process) -> spawn_blocking(get) per item";
    progress(TP_SB);
    let s = throughput(&cfg, |n| {
        kid.run(n)?;
        let q = q.clone();
        let sum = rt.block_on(rt.spawn(async move {
            let mut sum = 0u64;
            for _ in 0..n {
                let q = q.clone();
                sum += tokio::task::spawn_blocking(move || q.get())
                    .await
                    .unwrap()
                    .expect("get");
            }
            sum
        }))?;
        kid.expect("DONE")?;
        Ok(sum)
    })?;
    flows.push(Row { label: TP_SB, s });

    const TP_BLOCKING: &str = "shmproc Queue: blocking put (process) -> blocking get (no tokio)";
    progress(TP_BLOCKING);
    let s = throughput(&cfg, |n| {
        kid.run(n)?;
        let mut sum = 0u64;
        for _ in 0..n {
            sum += q.get()?;
        }
        kid.expect("DONE")?;
        Ok(sum)
    })?;
    kid.finish()?;
    drop(q);
    flows.push(Row { label: TP_BLOCKING, s });

    const TP_MPSC: &str = "tokio mpsc (cap 1024): blocking_send (thread) -> recv (task), one process";
    progress(TP_MPSC);
    let s = throughput(&cfg, |n| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAP);
        let producer = std::thread::spawn(move || {
            for i in 0..n {
                tx.blocking_send(i).expect("send");
            }
        });
        let sum = rt.block_on(rt.spawn(async move {
            let mut sum = 0u64;
            for _ in 0..n {
                sum += rx.recv().await.expect("recv");
            }
            sum
        }))?;
        producer.join().map_err(|_| "producer panicked")?;
        Ok(sum)
    })?;
    flows.push(Row { label: TP_MPSC, s });

    const TP_UNIX: &str = "tokio UnixStream: write_all per 8 B item (process) -> 64 KiB buffered reads (tokio)";
    progress(TP_UNIX);
    let (l, n) = listen("tp")?;
    let mut kid = Kid::spawn("produce_unix", &[&n])?;
    let (sock, _) = l.accept()?;
    sock.set_nonblocking(true)?;
    let mut rd = Some(rt.block_on(async {
        tokio::net::UnixStream::from_std(sock).map(|s| Buffered {
            s,
            buf: vec![0; 64 << 10],
            at: 0,
            end: 0,
        })
    })?);
    let s = throughput(&cfg, |n| {
        kid.run(n)?;
        let mut r = rd.take().ok_or("reader lost")?;
        let (sum, r) = rt.block_on(rt.spawn(async move {
            let mut sum = 0u64;
            for _ in 0..n {
                sum += r.read_u64().await.expect("read");
            }
            (sum, r)
        }))?;
        rd = Some(r);
        kid.expect("DONE")?;
        Ok(sum)
    })?;
    drop(rd);
    kid.finish()?;
    flows.push(Row { label: TP_UNIX, s });

    // The table.
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let flavour = if multi() {
        "multi-thread (2 workers)"
    } else {
        "current-thread"
    };
    println!(
        "async waiting across processes: tokio {flavour} runtime on each tokio side; {cpu}, {cpus} CPUs, \
         load {load}; median (min-max) of {} run(s){}",
        cfg.runs,
        if smoke { " (SMOKE TEST: not figures)" } else { "" }
    );
    let fmt = |s: f64| {
        if s >= 1e-6 {
            format!("{:.1} us", s * 1e6)
        } else {
            format!("{:.0} ns", s * 1e9)
        }
    };
    println!("\nround trip, 8 B{:>75} {:>26} {:>10}", "per round trip", "", "x async");
    for r in &trips {
        println!(
            "  {:<84} {:>9} ({} - {}) {:>9.2}x",
            r.label,
            fmt(r.s.med),
            fmt(r.s.min),
            fmt(r.s.max),
            r.s.med / trips[0].s.med
        );
    }
    println!(
        "\nthroughput, u64 items{:>69} {:>14} {:>21}",
        "per item", "items/s", "x async"
    );
    for r in &flows {
        println!(
            "  {:<84} {:>9} ({} - {}) {:>11.2e} {:>9.2}x",
            r.label,
            fmt(r.s.med),
            fmt(r.s.min),
            fmt(r.s.max),
            1.0 / r.s.med,
            r.s.med / flows[0].s.med
        );
    }
    println!("\n(x async: this row's median time / the first row's of its group; above 1, async is faster)");
    Ok(())
}
