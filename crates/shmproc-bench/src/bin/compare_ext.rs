//! shmproc's comparison bench, extended to other IPC crates: iceoryx2 publish-subscribe and
//! ipc-channel. Built only with the `ext` feature, so that the default build never compiles
//! these dependencies.
//!
//! `crates/shmproc-bench/run-ext.sh` is the one command: it runs this binary (which measures
//! the rows below and writes them as CSV in the format of the `compare` bench), then the
//! `compare` bench with `--extra-csv`, which measures shmproc's rows and prints one table with
//! both, with each row here compared with the shmproc row of the same group and payload.
//! Run alone, this binary prints its own rows in the same columns.
//!
//! Like `compare`, every row uses two real processes: this binary re-executes itself
//! (`current_exe()`, `shmproc-testkit`) with a role. The child opens what the parent created,
//! prints `READY`, then does one run per `RUN n` line on its stdin and answers `DONE` on its
//! stdout; it dies with the parent (`PR_SET_PDEATHSIG`) and exits when its stdin closes.
//! Messages carry their index in their first and last 8 bytes; the consumer checks both and
//! the parent checks the sum, as in `compare`.

use iceoryx2::prelude::*;
use ipc_channel::ipc::{self as ipcc, IpcOneShotServer, IpcReceiver, IpcSender};
use shmproc_testkit::{Child as Kid, ChildResult, Spawn, serve};
use std::hint::spin_loop;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Queue capacity / subscriber buffer, as `compare`'s queues.
const CAPACITY: usize = 1024;
/// Payload sizes of the 1P1C rows.
const PAYLOADS: [usize; 4] = [8, 64, 1024, 65536];
/// ipc-channel's rows (the issue asks for these three).
const IPC_PAYLOADS: [usize; 3] = [64, 1024, 65536];

// Row names. The groups and the shmproc cases must be spelled as in the `compare` bench: the
// merged table finds the row a row here is compared with by these names.
const G_1P1C: &str = "queue 1P1C";
const G_RT: &str = "round trip";
const SHM_Q: &str = "shmproc Queue (put/get)";
const SHM_RT_SPIN: &str = "shmproc Queue, spinning (try_put/try_get)";
const SHM_RT_BLOCK: &str = "shmproc Queue, blocking (put/get)";
const IOX_1P1C: &str = "iceoryx2 pub/sub (loan, copy in, read in place)";
const IPC_1P1C: &str = "ipc-channel IpcSender<Vec<u8>> (serde)";
const IOX_RT: &str = "iceoryx2 pub/sub, spinning (receive polled)";
const IPC_RT: &str = "ipc-channel IpcSender<u64>, blocking recv";

/// The CSV columns of the `compare` bench (`benches/compare/report.rs`).
const CSV_HEADER: &str = "group,case,payload_bytes,per,median_ns,min_ns,max_ns,msgs_per_s,mb_per_s,compared_with,shmproc_over_this,ops_per_run,runs";

// ---------------------------------------------------------------------------------------------
// Messages

fn stamp_bytes(b: &mut [u8], i: u64) {
    let n = b.len();
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[n - 8..].copy_from_slice(&i.to_le_bytes());
}

fn check_bytes(b: &[u8]) -> u64 {
    let word = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let (first, last) = (word(&b[..8]), word(&b[b.len() - 8..]));
    assert_eq!(first, last, "torn message");
    first
}

fn stamps_sum(n: u64) -> u64 {
    (u128::from(n) * u128::from(n.saturating_sub(1)) / 2) as u64
}

/// One failed poll: a spin hint, and a `sched_yield` every 64th time (as in `compare`).
fn backoff(fails: &mut u32) {
    *fails += 1;
    if (*fails).is_multiple_of(64) {
        std::thread::yield_now();
    } else {
        spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and measurement (the same settings and method as `compare`)

struct Cfg {
    runs: usize,
    quick: bool,
    target: Duration,
    /// Where to write the rows (CSV in `compare`'s format), for `compare --extra-csv`.
    rows: Option<PathBuf>,
    filters: Vec<String>,
}

fn env_flag(name: &str) -> Option<bool> {
    let v = std::env::var(name).ok()?;
    Some(!matches!(v.trim(), "" | "0" | "false" | "no"))
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

impl Cfg {
    fn parse(args: &[String]) -> Cfg {
        let mut rows = std::env::var_os("SHMPROC_BENCH_EXT_ROWS")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let mut filters = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--rows" => rows = Some(PathBuf::from(it.next().expect("--rows needs a path"))),
                s if s.starts_with("--rows=") => rows = Some(PathBuf::from(&s["--rows=".len()..])),
                // `compare`'s options (run.sh passes the same arguments to both): skip the value.
                "--csv" | "--svg" | "--extra-csv" => {
                    it.next();
                }
                s if s.starts_with('-') => {}
                s => filters.push(s.to_owned()),
            }
        }
        let quick = env_flag("SHMPROC_BENCH_QUICK").unwrap_or(false);
        let runs = if quick {
            1
        } else {
            env_num("SHMPROC_BENCH_RUNS").unwrap_or(5).max(1) as usize
        };
        Cfg {
            runs,
            quick,
            target: Duration::from_millis(env_num("SHMPROC_BENCH_TARGET_MS").unwrap_or(200).max(1)),
            rows,
            filters,
        }
    }

    fn selected(&self, label: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| label.contains(f.as_str()))
    }
}

#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    count: u64,
}

const MAX_COUNT: u64 = 1 << 32;

/// As `compare`'s `measure`: calibrate from `start` until a run takes a tenth of the target,
/// then `cfg.runs` runs of the count that fills it; quick mode: one run of `start / 20`.
fn measure(cfg: &Cfg, start: u64, mut once: impl FnMut(u64) -> (Duration, u64)) -> Stats {
    let n = if cfg.quick {
        (start / 20).max(4)
    } else {
        let mut n = start.max(1);
        loop {
            let (d, ops) = timed(&mut once, n);
            if d >= cfg.target / 10 || n >= MAX_COUNT {
                let per_op = d.as_secs_f64() / ops.max(1) as f64;
                break ((cfg.target.as_secs_f64() / per_op.max(1e-12)) as u64).clamp(16, MAX_COUNT);
            }
            n = n.saturating_mul(10).min(MAX_COUNT);
        }
    };
    let mut per_op = Vec::with_capacity(cfg.runs);
    let mut count = 0;
    for _ in 0..cfg.runs {
        let (d, ops) = timed(&mut once, n);
        per_op.push(d.as_nanos() as f64 / ops.max(1) as f64);
        count = ops;
    }
    per_op.sort_by(f64::total_cmp);
    let mid = per_op.len() / 2;
    let median = if per_op.len() % 2 == 1 {
        per_op[mid]
    } else {
        (per_op[mid - 1] + per_op[mid]) / 2.0
    };
    Stats {
        median,
        min: per_op[0],
        max: per_op[per_op.len() - 1],
        count,
    }
}

/// First calibration count, as in `compare`: about 4 MiB, 2048 to 20 000 messages.
fn start_count(size: usize) -> u64 {
    ((4u64 << 20) / size as u64).clamp(2 * CAPACITY as u64, 20_000)
}

const LAT_START: u64 = 2_000;

/// Milliseconds since `epoch()` after which the watchdog aborts the run (0: disarmed).
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
const HANG: Duration = Duration::from_secs(120);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn timed(once: &mut impl FnMut(u64) -> (Duration, u64), n: u64) -> (Duration, u64) {
    DEADLINE_MS.store((epoch().elapsed() + HANG).as_millis() as u64, Ordering::Relaxed);
    let r = once(n);
    DEADLINE_MS.store(0, Ordering::Relaxed);
    r
}

/// Ends the run if one measurement hangs (a child that died, a lost message): children die
/// with us (`PR_SET_PDEATHSIG`).
fn start_watchdog() {
    epoch();
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let d = DEADLINE_MS.load(Ordering::Relaxed);
            if d != 0 && epoch().elapsed().as_millis() as u64 > d {
                eprintln!("compare_ext: a measurement hung for {HANG:?}; aborting");
                remove_own_domain();
                std::process::exit(2);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// CPU placement, as in `compare` (`SHMPROC_BENCH_PIN`): the parent on the first allowed CPU, the
// child of a row on the second, so the two sides run on different cores.

fn places() -> &'static [usize] {
    static PLACES: OnceLock<Vec<usize>> = OnceLock::new();
    PLACES.get_or_init(|| {
        if !env_flag("SHMPROC_BENCH_PIN").unwrap_or(true) {
            return Vec::new();
        }
        let cpus = shmproc_testkit::allowed_cpus();
        if cpus.len() >= 2 { cpus } else { Vec::new() }
    })
}

fn cpu_for(slot: usize) -> Option<usize> {
    let places = places();
    places.get(slot % places.len().max(1)).copied()
}

fn pin_self(slot: usize) {
    if let Some(cpu) = cpu_for(slot) {
        shmproc_testkit::pin_thread(cpu);
    }
}

// ---------------------------------------------------------------------------------------------
// Children

/// A re-executed copy of this binary playing `role` (`shmproc-testkit`), on the second CPU,
/// dying with this process. On drop, EOF on its stdin makes it drop its ports and node
/// (iceoryx2 removes its files then) and exit; one that does not within 2 s is killed; either
/// way it is reaped.
fn spawn_kid(role: &str, args: &[String]) -> Kid {
    Spawn::new(role)
        .args(args)
        .cpu(cpu_for(1))
        .die_with_parent()
        .grace(Duration::from_secs(2))
        .spawn()
}

fn child_main(role: &str, args: &[String]) -> ChildResult {
    let arg = |i: usize| -> &str { args.get(i).map_or("", String::as_str) };
    match role {
        // service-name size
        "iox-prod" => child_iox_prod(arg(0), arg(1).parse()?),
        // service-a2b service-b2a
        "iox-echo" => child_iox_echo(arg(0), arg(1)),
        // server-name size
        "ipc-prod" => child_ipc_prod(arg(0), arg(1).parse()?),
        // server-name
        "ipc-echo" => child_ipc_echo(arg(0)),
        _ => Err(format!("unknown role {role:?}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// iceoryx2: publish-subscribe over `[u8]` slices (1P1C) and `u64` (round trip), `ipc` services.
// The parent creates the services and the subscriber before the child exists, so nothing is
// sent before someone listens (history 0). The subscriber buffer holds CAPACITY samples, the
// service does not overflow (safe overflow off) and the publisher retries until delivered: a
// full buffer makes the producer wait, as a full `Queue` does, and no message is lost.

/// Start of the names of this bench's iceoryx2 files in /dev/shm (then the parent's pid).
const IOX_PREFIX: &str = "iox2_shmproc_bench_";
/// Start of the root directory of this bench's iceoryx2 domain (then the parent's pid).
const IOX_ROOT: &str = "/tmp/shmproc-bench-ext-";

/// The pid of the run's parent process, which names its iceoryx2 domain.
static DOMAIN_PID: OnceLock<u32> = OnceLock::new();

fn domain_pid() -> u32 {
    *DOMAIN_PID.get().expect("domain pid set in main")
}

/// This run's own iceoryx2 domain: its own file prefix in /dev/shm and its own root directory,
/// both named after the parent's pid. iceoryx2 keeps a global management segment in /dev/shm
/// by design; a private domain lets the run remove it, and everything else iceoryx2 made,
/// without touching another iceoryx2 user's files.
fn iox_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let pid = domain_pid();
        let mut c = Config::default();
        c.global.prefix = FileName::new(format!("{IOX_PREFIX}{pid}_").as_bytes()).expect("prefix");
        c.global
            .set_root_path(&Path::new(format!("{IOX_ROOT}{pid}/").as_bytes()).expect("root path"));
        c
    })
}

fn iox_node() -> Node<ipc::Service> {
    NodeBuilder::new()
        .config(iox_config())
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

/// A service name unique to this run.
fn iox_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmproc-bench-ext/{}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn service_name(s: &str) -> ServiceName {
    ServiceName::new(s).expect("service name")
}

fn iox_1p1c(cfg: &Cfg, size: usize) -> Stats {
    let node = iox_node();
    let name = iox_name();
    let service = node
        .service_builder(&service_name(&name))
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(CAPACITY)
        .subscriber_max_borrowed_samples(1)
        .enable_safe_overflow(false)
        .create()
        .expect("create iceoryx2 service");
    let sub = service
        .subscriber_builder()
        .buffer_size(CAPACITY)
        .create()
        .expect("iceoryx2 subscriber");
    let mut kid = spawn_kid("iox-prod", &[name, size.to_string()]);
    kid.ready();
    measure(cfg, start_count(size), |n| {
        let t0 = Instant::now();
        kid.run(n);
        let (mut got, mut sum, mut fails) = (0, 0u64, 0);
        let mut progress = Instant::now();
        while got < n {
            match sub.receive().expect("receive") {
                Some(sample) => {
                    assert_eq!(sample.payload().len(), size);
                    sum = sum.wrapping_add(check_bytes(sample.payload()));
                    got += 1;
                    fails = 0;
                }
                None => {
                    if fails == 0 {
                        progress = Instant::now();
                    }
                    backoff(&mut fails);
                    // With a small subscriber buffer, messages sent under backpressure went
                    // missing (iceoryx2 0.10); say so instead of waiting for the watchdog.
                    if fails.is_multiple_of(4096) && progress.elapsed() > Duration::from_secs(5) {
                        panic!("iceoryx2 delivered {got} of {n} messages, then none for 5 s");
                    }
                }
            }
        }
        let dt = t0.elapsed();
        kid.done();
        assert_eq!(sum, stamps_sum(n), "checksum");
        (dt, n)
    })
}

fn child_iox_prod(name: &str, size: usize) -> ChildResult {
    let node = iox_node();
    let service = node
        .service_builder(&service_name(name))
        .publish_subscribe::<[u8]>()
        .open()?;
    let publisher = service
        .publisher_builder()
        .initial_max_slice_len(size)
        .max_loaned_samples(1)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    let mut template = vec![0u8; size];
    serve(|n| {
        for i in 0..n {
            stamp_bytes(&mut template, i);
            let mut fails = 0;
            let sample = loop {
                // Every sample may be in the subscriber's buffer for a moment: retry.
                match publisher.loan_slice_uninit(size) {
                    Ok(s) => break s,
                    Err(_) => backoff(&mut fails),
                }
            };
            sample.write_from_slice(&template).send().expect("send");
        }
        String::new()
    })
}

fn iox_rt(cfg: &Cfg) -> Stats {
    let node = iox_node();
    let (a2b, b2a) = (iox_name(), iox_name());
    let make = |name: &str| {
        node.service_builder(&service_name(name))
            .publish_subscribe::<u64>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .enable_safe_overflow(false)
            .create()
            .expect("create iceoryx2 service")
    };
    let (s_a2b, s_b2a) = (make(&a2b), make(&b2a));
    let publisher = s_a2b.publisher_builder().create().expect("publisher");
    let sub = s_b2a.subscriber_builder().create().expect("subscriber");
    let mut kid = spawn_kid("iox-echo", &[a2b, b2a]);
    kid.ready();
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        for i in 0..n {
            publisher.send_copy(i).expect("send");
            let mut fails = 0;
            let back = loop {
                match sub.receive().expect("receive") {
                    Some(s) => break *s.payload(),
                    None => backoff(&mut fails),
                }
            };
            assert_eq!(back, i);
        }
        let dt = t0.elapsed();
        kid.done();
        (dt, n)
    })
}

fn child_iox_echo(a2b: &str, b2a: &str) -> ChildResult {
    let node = iox_node();
    let s_a2b = node
        .service_builder(&service_name(a2b))
        .publish_subscribe::<u64>()
        .open()?;
    let s_b2a = node
        .service_builder(&service_name(b2a))
        .publish_subscribe::<u64>()
        .open()?;
    let sub = s_a2b.subscriber_builder().create()?;
    let publisher = s_b2a.publisher_builder().create()?;
    serve(|n| {
        for _ in 0..n {
            let mut fails = 0;
            let v = loop {
                match sub.receive().expect("receive") {
                    Some(s) => break *s.payload(),
                    None => backoff(&mut fails),
                }
            };
            publisher.send_copy(v).expect("send");
        }
        String::new()
    })
}

/// The pid in a name that starts with `prefix` and goes on with `<pid>` and `_` or `/`.
fn pid_after(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split(['_', '/']).next()?.parse().ok()
}

/// Removes the iceoryx2 files of runs that were killed (their parent pid is gone): the
/// /dev/shm entries and the root directory of their private domains.
fn remove_stale_domains() {
    let dead = |pid: u32| !std::path::Path::new(&format!("/proc/{pid}")).exists();
    for name in dev_shm() {
        if pid_after(&name, IOX_PREFIX).is_some_and(dead) {
            match std::fs::remove_file(format!("/dev/shm/{name}")) {
                Ok(()) => eprintln!("removed /dev/shm/{name}, left by an earlier run that was killed"),
                Err(e) => eprintln!("could not remove /dev/shm/{name}: {e}"),
            }
        }
    }
    let (dir, stem) = IOX_ROOT.rsplit_once('/').expect("absolute path");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if pid_after(&name, stem).is_some_and(dead) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Once every node of this run's domain is gone: removes what iceoryx2 keeps after its last
/// node (the global management segment) and the domain's root directory. Returns the
/// /dev/shm names that should not have been there (a node that did not clean up).
fn remove_own_domain() -> Vec<String> {
    let prefix = format!("{IOX_PREFIX}{}_", domain_pid());
    let mut unexpected = Vec::new();
    for name in dev_shm().into_iter().filter(|n| n.starts_with(&prefix)) {
        if !name.ends_with(".global_mgmt") {
            unexpected.push(name.clone());
        }
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    }
    let _ = std::fs::remove_dir_all(format!("{IOX_ROOT}{}", domain_pid()));
    unexpected
}

// ---------------------------------------------------------------------------------------------
// ipc-channel: typed channels over Unix sockets, messages serialised with serde (bincode). The
// parent makes a one-shot server; the child connects to it by name. 1P1C: the child sends
// `Vec<u8>` messages on that connection. Round trip: the child sends over it a pair (sender to
// the child, receiver from the child) of channels it made.

fn ipc_1p1c(cfg: &Cfg, size: usize) -> Stats {
    let (server, name) = IpcOneShotServer::<Vec<u8>>::new().expect("one-shot server");
    let mut kid = spawn_kid("ipc-prod", &[name, size.to_string()]);
    let (rx, hello) = server.accept().expect("accept");
    assert!(hello.is_empty());
    kid.ready();
    measure(cfg, start_count(size), |n| {
        let t0 = Instant::now();
        kid.run(n);
        let mut sum = 0u64;
        for _ in 0..n {
            let m = rx.recv().expect("recv");
            assert_eq!(m.len(), size);
            sum = sum.wrapping_add(check_bytes(&m));
        }
        let dt = t0.elapsed();
        kid.done();
        assert_eq!(sum, stamps_sum(n), "checksum");
        (dt, n)
    })
}

fn child_ipc_prod(name: &str, size: usize) -> ChildResult {
    let tx = IpcSender::<Vec<u8>>::connect(name.to_owned())?;
    tx.send(Vec::new())?;
    let mut template = vec![0u8; size];
    serve(|n| {
        for i in 0..n {
            stamp_bytes(&mut template, i);
            // `send` takes the message by value, as an application hands it over.
            tx.send(template.clone()).expect("send");
        }
        String::new()
    })
}

type EchoPair = (IpcSender<u64>, IpcReceiver<u64>);

fn ipc_rt(cfg: &Cfg) -> Stats {
    let (server, name) = IpcOneShotServer::<EchoPair>::new().expect("one-shot server");
    let mut kid = spawn_kid("ipc-echo", &[name]);
    let (_, (down, up)) = server.accept().expect("accept");
    kid.ready();
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        for i in 0..n {
            down.send(i).expect("send");
            assert_eq!(up.recv().expect("recv"), i);
        }
        let dt = t0.elapsed();
        kid.done();
        (dt, n)
    })
}

fn child_ipc_echo(name: &str) -> ChildResult {
    let tx = IpcSender::<EchoPair>::connect(name.to_owned())?;
    let (down_tx, down_rx) = ipcc::channel::<u64>()?;
    let (up_tx, up_rx) = ipcc::channel::<u64>()?;
    tx.send((down_tx, up_rx))?;
    serve(|n| {
        for _ in 0..n {
            up_tx.send(down_rx.recv().expect("recv")).expect("send");
        }
        String::new()
    })
}

// ---------------------------------------------------------------------------------------------
// The rows

#[derive(Clone, Copy, PartialEq)]
enum Per {
    Msg,
    RoundTrip,
}

impl Per {
    fn label(self) -> &'static str {
        match self {
            Per::Msg => "msg",
            Per::RoundTrip => "round trip",
        }
    }
}

struct Row {
    group: &'static str,
    case: &'static str,
    payload: usize,
    per: Per,
    vs: &'static str,
    stats: Stats,
}

struct Bench {
    cfg: Cfg,
    rows: Vec<Row>,
}

impl Bench {
    fn row(
        &mut self,
        (group, case, payload): (&'static str, &'static str, usize),
        per: Per,
        vs: &'static str,
        f: impl FnOnce(&Cfg) -> Stats,
    ) {
        let label = format!("{group} | {case} | {}", fmt_payload(payload));
        if !self.cfg.selected(&label) {
            return;
        }
        eprint!("  {label} ... ");
        let stats = f(&self.cfg);
        eprintln!("{} per {} ({} per run)", fmt_ns(stats.median), per.label(), stats.count);
        self.rows.push(Row {
            group,
            case,
            payload,
            per,
            vs,
            stats,
        });
    }
}

fn run_all(b: &mut Bench) {
    for size in PAYLOADS {
        b.row((G_1P1C, IOX_1P1C, size), Per::Msg, SHM_Q, |c| iox_1p1c(c, size));
    }
    for size in IPC_PAYLOADS {
        b.row((G_1P1C, IPC_1P1C, size), Per::Msg, SHM_Q, |c| ipc_1p1c(c, size));
    }
    b.row((G_RT, IOX_RT, 8), Per::RoundTrip, SHM_RT_SPIN, iox_rt);
    b.row((G_RT, IPC_RT, 8), Per::RoundTrip, SHM_RT_BLOCK, ipc_rt);
}

fn fmt_payload(p: usize) -> String {
    if p >= 1024 && p.is_multiple_of(1024) {
        format!("{} KiB", p / 1024)
    } else {
        format!("{p} B")
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e9 {
        format!("{:.2} G", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The rows in `compare`'s CSV format; the ratio column stays empty (the shmproc rows are
/// measured by `compare`, which fills it in when it merges these rows).
fn write_csv(b: &Bench, path: &PathBuf) -> io::Result<()> {
    let mut out = format!("{CSV_HEADER}\n");
    for r in &b.rows {
        let rate = 1e9 / r.stats.median;
        let transfer = r.per == Per::Msg;
        let fields = [
            csv_field(r.group),
            csv_field(r.case),
            r.payload.to_string(),
            r.per.label().into(),
            format!("{:.2}", r.stats.median),
            format!("{:.2}", r.stats.min),
            format!("{:.2}", r.stats.max),
            if transfer { format!("{rate:.0}") } else { String::new() },
            if transfer {
                format!("{:.1}", rate * r.payload as f64 / 1e6)
            } else {
                String::new()
            },
            csv_field(r.vs),
            String::new(),
            r.stats.count.to_string(),
            b.cfg.runs.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    std::fs::write(path, out)
}

/// The rows in `compare`'s table columns (without the ratio, which needs shmproc's rows).
fn print_table(b: &Bench) {
    let header = [
        "group",
        "case",
        "payload",
        "per",
        "median",
        "min",
        "max",
        "msgs/s",
        "MB/s",
        "compared with",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in &b.rows {
        let rate = 1e9 / r.stats.median;
        let transfer = r.per == Per::Msg;
        lines.push(vec![
            r.group.into(),
            r.case.into(),
            fmt_payload(r.payload),
            r.per.label().into(),
            fmt_ns(r.stats.median),
            fmt_ns(r.stats.min),
            fmt_ns(r.stats.max),
            if transfer { fmt_rate(rate) } else { String::new() },
            if transfer {
                format!("{:.0}", rate * r.payload as f64 / 1e6)
            } else {
                String::new()
            },
            r.vs.into(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if (4..9).contains(&c) {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
        if i == 0 {
            println!(
                "{}",
                widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
            );
        }
    }
}

/// Names in /dev/shm now.
fn dev_shm() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn main() {
    set_log_level(LogLevel::Error);
    if let Some((role, args)) = shmproc_testkit::role() {
        // SAFETY: getppid has no preconditions; the parent outlives us (PR_SET_PDEATHSIG).
        let _ = DOMAIN_PID.set(unsafe { libc::getppid() } as u32);
        if let Err(e) = child_main(&role, &args) {
            eprintln!("compare_ext child {role}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = DOMAIN_PID.set(std::process::id());
    let cfg = Cfg::parse(&args);
    remove_stale_domains();
    pin_self(0);
    start_watchdog();
    let mode = if cfg.quick { "quick (smoke test)" } else { "full" };
    eprintln!(
        "shmproc compare_ext (iceoryx2, ipc-channel): {mode}, {} run(s) per row",
        cfg.runs
    );
    let mut b = Bench { cfg, rows: Vec::new() };
    // A failed row unwinds through its ports and nodes; then remove the domain's files.
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_all(&mut b))) {
        remove_own_domain();
        std::panic::resume_unwind(panic);
    }
    println!();
    println!("shmproc compare_ext ({mode}): iceoryx2 0.10 and ipc-channel 0.23, two processes per row");
    println!();
    print_table(&b);
    if let Some(path) = &b.cfg.rows {
        match write_csv(&b, path) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    let left = remove_own_domain();
    if !left.is_empty() {
        eprintln!("compare_ext: iceoryx2 left these in /dev/shm (now removed): {left:?}");
        std::process::exit(1);
    }
}
