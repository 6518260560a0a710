//! Crash tests of `Queue`: real processes SIGKILLed or SIGSTOPped at the ring's fault points
//! (`SHMPROC_FAULT`, see `src/fault.rs`), and the README's promises for a killed or stopped
//! peer checked from the surviving processes.
//!
//! Items are tagged `producer << 32 | seq`, so every delivered value can be traced to the one
//! put that sent it: a torn, stale or invented value, a duplicate, or a lost item shows up in
//! the delivered multiset. Timeouts here are failure bounds only; nothing waits on a sleep.

mod common;

use common::{Child, Name, child_main, say, spawn, spawn_env, wait_parent};
use shmproc::{GetError, PutError, Queue};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Bound for anything that should happen "soon" (a get after a repair, a child's reply).
const T: Duration = Duration::from_secs(10);
/// A value no producer puts: tells a consumer child to stop.
const STOP: u64 = u64::MAX;
/// The parent's producer id.
const PARENT: u64 = 0;

fn tag(producer: u64, seq: u64) -> u64 {
    (producer << 32) | seq
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine, so children
/// can timestamp events that the parent compares with its own.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one `timespec` into `ts`, a valid, exclusive local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn arg(args: &[String], i: usize) -> u64 {
    args[i]
        .parse()
        .unwrap_or_else(|e| panic!("argument {i} {:?}: {e}", args[i]))
}

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // put [name, producer, first_seq, count]: blocking puts of tagged items, each
        // confirmed by `PUT <value> <ns>` once put returned.
        "put" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let (producer, first, count) = (arg(args, 1), arg(args, 2), arg(args, 3));
            say("WAITING");
            for seq in first..first + count {
                let v = tag(producer, seq);
                match q.put(v) {
                    Ok(()) => say(format!("PUT {v} {}", mono_ns())),
                    Err(e) => say(format!("END put {v}: {e:?}")),
                }
            }
            say("DONE");
        }
        // live_put [name, producer, k, m]: k puts, `PHASE1`, waits for a line on stdin, m
        // more puts, `DONE`.
        "live_put" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let (producer, k, m) = (arg(args, 1), arg(args, 2), arg(args, 3));
            for seq in 0..k + m {
                if seq == k {
                    say("PHASE1");
                    wait_parent();
                }
                let v = tag(producer, seq);
                match q.put(v) {
                    Ok(()) => say(format!("PUT {v} {}", mono_ns())),
                    Err(e) => say(format!("END put {v}: {e:?}")),
                }
            }
            say("DONE");
        }
        // get [name, max]: up to `max` blocking gets, each reported as `GOT <value> <ns>`;
        // stops at the STOP value (`END STOP`) or an error (`END <error>`).
        "get" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            let max = arg(args, 1);
            say("WAITING");
            for _ in 0..max {
                match q.get() {
                    Ok(STOP) => {
                        say("END STOP");
                        return;
                    }
                    Ok(v) => say(format!("GOT {v} {}", mono_ns())),
                    Err(e) => {
                        say(format!("END {e:?}"));
                        return;
                    }
                }
            }
            say("DONE");
        }
        _ => panic!("unknown role {role}"),
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The next protocol line of a child (libtest's own lines, such as "running 1 test", skipped).
fn next_line(c: &mut Child) -> String {
    const KEYWORDS: [&str; 8] = [
        "PUT",
        "GOT",
        "END",
        "DONE",
        "WAITING",
        "PHASE1",
        "SHMPROC_FAULT_HIT",
        "READY",
    ];
    loop {
        let l = c.expect_line("", T);
        if KEYWORDS.iter().any(|k| l.starts_with(k)) {
            return l;
        }
    }
}

/// Waits for `<keyword> <value> <ns>` and returns value and timestamp; any other protocol
/// line (an `END` error, an early `DONE`) fails the test.
fn expect_event(c: &mut Child, keyword: &str) -> (u64, u64) {
    let l = next_line(c);
    let mut f = l.split_whitespace();
    assert_eq!(
        f.next(),
        Some(keyword),
        "child {}: expected {keyword}, got {l:?}",
        c.role
    );
    let v = f.next().and_then(|s| s.parse().ok()).expect("value");
    let t = f.next().and_then(|s| s.parse().ok()).expect("timestamp");
    (v, t)
}

/// Starts a child that pauses at fault `point` (`stop`: SIGSTOPs itself there) and waits
/// until it reports reaching it.
fn spawn_at_fault(role: &str, args: &[&str], point: &str, stop: bool) -> Child {
    let mut env = vec![("SHMPROC_FAULT", point)];
    if stop {
        env.push(("SHMPROC_FAULT_ACTION", "stop"));
    }
    let mut c = spawn_env(role, args, &env);
    loop {
        let l = next_line(&mut c);
        if let Some(p) = l.strip_prefix("SHMPROC_FAULT_HIT") {
            assert_eq!(p.trim(), point);
            return c;
        }
        assert!(l == "WAITING", "child {role} at {point}: unexpected {l:?}");
    }
}

/// The scheduler state letter (`R`, `S`, `T`, ...) of thread `tid` of process `pid`.
fn thread_state(pid: i32, tid: &str) -> Option<(String, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let state = stat[close + 1..].trim_start().chars().next()?;
    Some((comm, state))
}

/// Polls until `pid` is stopped (SIGSTOP took effect), so that a SIGCONT cannot overtake the
/// SIGSTOP the child sends itself just after printing its fault line.
fn wait_stopped(pid: i32) {
    let deadline = Instant::now() + T;
    while thread_state(pid, &pid.to_string()).map(|s| s.1) != Some('T') {
        assert!(
            Instant::now() < deadline,
            "child {pid} did not stop: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/status"))
        );
        std::thread::yield_now();
    }
}

/// Polls until the thread running the child's role (libtest's `child_entry` thread, or the
/// main thread) sleeps: after its `WAITING` line that can only be the wait inside get/put.
fn wait_sleeping(pid: i32) {
    let deadline = Instant::now() + T;
    loop {
        let mut role_thread = None;
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for e in dir.flatten() {
                let tid = e.file_name().to_string_lossy().into_owned();
                if let Some((comm, state)) = thread_state(pid, &tid)
                    && comm == "child_entry"
                {
                    role_thread = Some(state);
                }
            }
        }
        let state = role_thread.or_else(|| thread_state(pid, &pid.to_string()).map(|s| s.1));
        if state == Some('S') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "child {pid} never went to sleep (state {state:?})"
        );
        std::thread::yield_now();
    }
}

/// Waits out the time for which a handle reuses a positive liveness answer in a queue's
/// claims (1 ms, `participants::ALIVE_TTL_US`): these tests watched the hung process's slot
/// (and found it alive) just before killing it, and then expect a single `try_` call to
/// repair it.
fn let_recent_answers_expire() {
    std::thread::sleep(Duration::from_millis(2));
}

/// The queue is empty: then `capacity` try_puts all succeed (never a Full while empty), one
/// more is Full, and the items come back in order. Twice, so a full lap of every slot is used.
fn fill_and_drain(q: &Queue<u64>, producer: u64) {
    let cap = q.capacity() as u64;
    assert_eq!(q.try_get(), Err(GetError::Empty));
    assert_eq!(q.len(), 0);
    assert!(q.is_empty());
    for round in 0..2 {
        for s in 0..cap {
            let v = tag(producer, round * cap + s);
            if let Err(e) = q.try_put(v) {
                panic!("try_put {s} of {cap} into the drained queue: {e:?}");
            }
        }
        assert_eq!(q.len() as u64, cap);
        assert!(q.is_full());
        assert!(matches!(q.try_put(tag(producer, 999)), Err(PutError::Full(_))));
        for s in 0..cap {
            assert_eq!(q.try_get(), Ok(tag(producer, round * cap + s)));
        }
        assert_eq!(q.try_get(), Err(GetError::Empty));
        assert!(q.is_empty());
        assert!(!q.is_full());
    }
}

/// Moves head and tail to position `n`, so a test's first position is slot `n % cap`, lap
/// `n / cap`.
fn advance(q: &Queue<u64>, n: u64) {
    for i in 0..n {
        q.try_put(tag(PARENT, 100_000 + i)).unwrap();
        assert_eq!(q.try_get(), Ok(tag(PARENT, 100_000 + i)));
    }
}

fn micros(from_ns: u64, to_ns: u64) -> String {
    format!("{:.0} us", to_ns.saturating_sub(from_ns) as f64 / 1e3)
}

// ---------------------------------------------------------------------------------------------
// 1. A producer killed at each put fault point

/// Victim producer 1 hangs at `point` in its only put; live producer 2 puts `cap - 1` items
/// behind it, then (after the kill) `2 * cap` more; a consumer child is blocked in `get`
/// throughout. Before the kill nothing behind a claimed slot is delivered (FIFO waits for a
/// live writer). After it: every item of producer 2 arrives exactly once and in order, nothing
/// invented, the victim's item arrives iff the point says so, and the drained queue takes
/// `capacity` items.
fn producer_killed_at(point: &str, cap: usize, offset: u64) {
    let name = Name::new("pkill");
    let q = Queue::<u64>::create(&name, cap).unwrap();
    advance(&q, offset);
    let mut consumer = spawn("get", &[&name, "1000"]);
    consumer.expect_line("WAITING", T);

    let victim_item = tag(1, 0);
    let mut victim = spawn_at_fault("put", &[&name, "1", "0", "1"], point, false);

    let (k, m) = (cap as u64 - 1, 2 * cap as u64);
    let mut live = spawn("live_put", &[&name, "2", &k.to_string(), &m.to_string()]);
    for seq in 0..k {
        assert_eq!(expect_event(&mut live, "PUT").0, tag(2, seq));
    }
    live.expect_line("PHASE1", T);

    let mut got: Vec<(u64, u64)> = Vec::new();
    let mut seen = HashSet::new();
    let mut record = |v: u64, t: u64, got: &mut Vec<(u64, u64)>| {
        assert!(
            v == victim_item || (v >> 32 == 2 && (v & 0xFFFF_FFFF) < k + m),
            "{point} cap {cap}: delivered {v:#x}, which nobody put (torn or stale)"
        );
        assert!(seen.insert(v), "{point} cap {cap}: {v:#x} delivered twice");
        got.push((v, t));
    };

    let t_kill = mono_ns();
    victim.kill();
    let claimed = matches!(point, "queue.put.after_claim" | "queue.put.after_write");
    if claimed && k > 0 {
        // Items wait behind the dead writer's slot and nothing else happens: the blocked
        // consumer must find the writer dead on its own (its liveness re-check).
        let (v, t) = expect_event(&mut consumer, "GOT");
        record(v, t, &mut got);
    }
    live.send("GO");
    for seq in k..k + m {
        assert_eq!(expect_event(&mut live, "PUT").0, tag(2, seq));
    }
    live.expect_line("DONE", T);
    live.wait_ok(T);

    // Everything producer 2 put, and the victim's item if it was published, must arrive.
    let mut pending: HashSet<u64> = (0..k + m).map(|s| tag(2, s)).collect();
    if point == "queue.put.after_publish" {
        pending.insert(victim_item);
    }
    for (v, _) in &got {
        pending.remove(v);
    }
    while !pending.is_empty() {
        let (v, t) = expect_event(&mut consumer, "GOT");
        pending.remove(&v);
        record(v, t, &mut got);
    }
    // Anything still in the queue (a duplicate, a late victim item) comes before STOP.
    q.put(STOP).unwrap();
    loop {
        let l = next_line(&mut consumer);
        if l == "END STOP" {
            break;
        }
        let (v, t) = {
            let mut f = l.split_whitespace().skip(1).map(|s| s.parse::<u64>().unwrap());
            assert!(l.starts_with("GOT "), "{point} cap {cap}: consumer said {l:?}");
            (f.next().unwrap(), f.next().unwrap())
        };
        record(v, t, &mut got);
    }
    consumer.wait_ok(T);

    let victim_delivered = seen.contains(&victim_item);
    match point {
        // Never written (before_claim) or claimed but never written (after_claim): delivering
        // it would deliver a stale cell.
        "queue.put.before_claim" | "queue.put.after_claim" => {
            assert!(
                !victim_delivered,
                "{point}: an item that was never written was delivered"
            )
        }
        "queue.put.after_publish" => assert!(victim_delivered),
        _ => {}
    }
    if claimed {
        assert!(
            got.iter().all(|g| g.1 >= t_kill),
            "{point} cap {cap}: an item behind a live writer's slot was delivered before the kill"
        );
    }
    let live_order: Vec<u64> = got.iter().map(|g| g.0).filter(|v| v >> 32 == 2).collect();
    assert_eq!(
        live_order,
        (0..k + m).map(|s| tag(2, s)).collect::<Vec<_>>(),
        "FIFO of producer 2"
    );

    let resume = got.iter().find(|g| g.1 >= t_kill);
    match resume {
        Some(&(v, t)) => eprintln!(
            "[queue_crash] producer killed at {point:<24} cap {cap}: kill -> first get {:>8} (item {:#x}, {}); victim item delivered: {victim_delivered}",
            micros(t_kill, t),
            v,
            if v >> 32 == 2 && (v & 0xFFFF_FFFF) < k {
                "queued behind the victim before the kill"
            } else {
                "put after the kill"
            }
        ),
        None => eprintln!("[queue_crash] producer killed at {point} cap {cap}: nothing delivered after the kill?"),
    }

    assert_eq!(q.try_get(), Err(GetError::Empty));
    assert_eq!(q.len(), 0);
    fill_and_drain(&q, 3);
}

fn producer_killed(point: &str) {
    for (cap, offset) in [(1, 3), (2, 3), (4, 3), (8, 13)] {
        producer_killed_at(point, cap, offset);
    }
}

#[test]
fn producer_killed_before_claim() {
    producer_killed("queue.put.before_claim");
}

#[test]
fn producer_killed_after_claim() {
    producer_killed("queue.put.after_claim");
}

#[test]
fn producer_killed_after_write() {
    producer_killed("queue.put.after_write");
}

#[test]
fn producer_killed_after_publish() {
    producer_killed("queue.put.after_publish");
}

// ---------------------------------------------------------------------------------------------
// 2. A consumer killed at each get fault point

/// The parent fills the queue (`cap` items); victim consumer stops at `point` in its only get;
/// producer child 2 blocks putting one more. After the kill: the producer's put completes
/// without any other get when the victim had claimed (the dead reader's slot is freed: capacity
/// never shrinks), the remaining items come out in order, the victim's item is not delivered
/// again once it had been claimed, and the drained queue takes `capacity` items.
fn consumer_killed_at(point: &str, cap: usize, offset: u64) {
    let name = Name::new("ckill");
    let q = Queue::<u64>::create(&name, cap).unwrap();
    advance(&q, offset);
    let items: Vec<u64> = (0..cap as u64).map(|s| tag(PARENT, s)).collect();
    for &v in &items {
        q.try_put(v).unwrap();
    }
    assert!(q.is_full());

    let mut victim = spawn_at_fault("get", &[&name, "1"], point, false);
    let mut producer = spawn("put", &[&name, "2", "0", "1"]);
    producer.expect_line("WAITING", T);

    let t_kill = mono_ns();
    victim.kill();
    let claimed = point != "queue.get.before_claim";
    let mut expected: Vec<u64> = if claimed { items[1..].to_vec() } else { items.clone() };
    expected.push(tag(2, 0));
    if claimed {
        // Nobody gets anything: the victim's slot alone must make room.
        let (v, t) = expect_event(&mut producer, "PUT");
        assert_eq!(v, tag(2, 0));
        if t >= t_kill {
            eprintln!(
                "[queue_crash] consumer killed at {point:<24} cap {cap}: kill -> blocked put returns {:>8}",
                micros(t_kill, t)
            );
        } else {
            eprintln!("[queue_crash] consumer killed at {point:<24} cap {cap}: blocked put returned before the kill");
        }
    }
    for (i, &e) in expected.iter().enumerate() {
        assert_eq!(q.get_timeout(T), Ok(e), "{point} cap {cap}: item {i} after the kill");
    }
    if !claimed {
        assert_eq!(expect_event(&mut producer, "PUT").0, tag(2, 0));
    }
    producer.expect_line("DONE", T);
    producer.wait_ok(T);
    assert_eq!(q.try_get(), Err(GetError::Empty), "{point} cap {cap}: an extra item");
    fill_and_drain(&q, 3);
}

fn consumer_killed(point: &str) {
    for (cap, offset) in [(1, 3), (2, 3), (4, 3), (8, 13)] {
        consumer_killed_at(point, cap, offset);
    }
}

#[test]
fn consumer_killed_before_claim() {
    consumer_killed("queue.get.before_claim");
}

#[test]
fn consumer_killed_after_claim() {
    consumer_killed("queue.get.after_claim");
}

#[test]
fn consumer_killed_after_read() {
    consumer_killed("queue.get.after_read");
}

#[test]
fn consumer_killed_after_release() {
    consumer_killed("queue.get.after_release");
}

// ---------------------------------------------------------------------------------------------
// 3. A slow but live process never loses its item
//
// `Stop`: the child SIGSTOPs itself at the fault point and the parent SIGCONTs it (the table's
// "producer SIGSTOPped mid-put, then SIGCONT"). `Hang`: the child stays alive at the fault
// point (no SIGCONT possible) and is killed at the end; this checks the "while it is paused"
// half on its own, and recovery after the kill.

/// How a child pauses at its fault point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pause {
    Stop,
    Hang,
}

// `Stop` pauses the child with SIGSTOP at the fault point (`os::stop_self` raises it on the
// calling thread, so it stops before returning to user code); the test resumes it with SIGCONT.

/// Producer 1 pauses at `point` of its put; the parent puts items behind it up to the
/// capacity. While it is paused, gets time out (FIFO waits for a live writer: its position is
/// neither skipped nor overtaken) and the full queue stays full (its slot is not repaired).
/// `Stop`: after SIGCONT its put returns Ok and every item arrives once, its own first.
/// `Hang`: after SIGKILL the others arrive once, in order, and the queue takes `capacity`.
fn producer_paused_at(point: &str, cap: usize, pause: Pause) {
    let name = Name::new("ppause");
    let q = Queue::<u64>::create(&name, cap).unwrap();
    advance(&q, 1);
    let mut slow = spawn_at_fault("put", &[&name, "1", "0", "1"], point, pause == Pause::Stop);
    if pause == Pause::Stop {
        wait_stopped(slow.pid());
    }

    let mut behind = Vec::new();
    for s in 0..cap as u64 - 1 {
        q.try_put(tag(PARENT, s)).unwrap();
        behind.push(tag(PARENT, s));
    }
    let r = q.try_put(tag(PARENT, 99));
    assert!(
        matches!(r, Err(PutError::Full(_))),
        "{point} cap {cap}: the paused producer's slot was taken: {r:?}"
    );
    for _ in 0..3 {
        assert_eq!(
            q.get_timeout(Duration::from_millis(30)),
            Err(GetError::Timeout),
            "{point} cap {cap} {pause:?}"
        );
        assert_eq!(q.try_get(), Err(GetError::Empty), "{point} cap {cap} {pause:?}");
    }

    match pause {
        Pause::Stop => {
            slow.signal(libc::SIGCONT);
            assert_eq!(
                expect_event(&mut slow, "PUT").0,
                tag(1, 0),
                "{point}: the continued put did not return Ok"
            );
            slow.expect_line("DONE", T);
            slow.wait_ok(T);
            assert_eq!(q.get_timeout(T), Ok(tag(1, 0)), "{point} cap {cap}");
        }
        Pause::Hang => {
            slow.kill();
            // The dead writer's position is repaired by the get itself, once the get's
            // handle no longer trusts its last "alive" answer about the writer.
            let_recent_answers_expire();
            let mut got = drain(&q);
            // A written but unpublished item may be delivered or not; if it is, it comes first.
            if point == "queue.put.after_write" && got.first() == Some(&tag(1, 0)) {
                got.remove(0);
            }
            assert_eq!(got, behind, "{point} cap {cap} {pause:?}");
            behind.clear();
        }
    }
    for v in behind {
        assert_eq!(q.get_timeout(T), Ok(v), "{point} cap {cap} {pause:?}");
    }
    assert_eq!(q.try_get(), Err(GetError::Empty), "{point} cap {cap} {pause:?}");
    fill_and_drain(&q, 3);
}

/// The parent fills the queue; consumer 1 pauses at `point` holding the head item. Meanwhile
/// the parent gets the other items but never the held one, and puts still see Full (the live
/// reader's slot is not repaired). `Stop`: after SIGCONT the consumer returns the held item,
/// and nobody else ever gets it. `Hang`: after SIGKILL the held item is gone (never delivered
/// to anyone else) and the slot is free again.
fn consumer_paused_at(point: &str, cap: usize, pause: Pause) {
    let name = Name::new("cpause");
    let q = Queue::<u64>::create(&name, cap).unwrap();
    advance(&q, 2);
    let items: Vec<u64> = (0..cap as u64).map(|s| tag(PARENT, s)).collect();
    for &v in &items {
        q.try_put(v).unwrap();
    }
    let mut slow = spawn_at_fault("get", &[&name, "1"], point, pause == Pause::Stop);
    if pause == Pause::Stop {
        wait_stopped(slow.pid());
    }

    for &v in &items[1..] {
        assert_eq!(q.try_get(), Ok(v), "{point} cap {cap} {pause:?}");
    }
    assert_eq!(
        q.try_get(),
        Err(GetError::Empty),
        "{point} cap {cap}: the held item was delivered again"
    );
    let r = q.try_put(tag(PARENT, 99));
    assert!(
        matches!(r, Err(PutError::Full(_))),
        "{point} cap {cap}: the paused consumer's slot was reused: {r:?}"
    );

    match pause {
        Pause::Stop => {
            slow.signal(libc::SIGCONT);
            assert_eq!(expect_event(&mut slow, "GOT").0, items[0], "{point} cap {cap}");
            slow.expect_line("DONE", T);
            slow.wait_ok(T);
        }
        Pause::Hang => {
            slow.kill();
            let_recent_answers_expire();
        }
    }
    assert_eq!(q.try_get(), Err(GetError::Empty), "{point} cap {cap} {pause:?}");
    fill_and_drain(&q, 3);
}

#[test]
fn producer_stopped_after_claim_keeps_its_item() {
    for cap in [1, 2, 4] {
        producer_paused_at("queue.put.after_claim", cap, Pause::Stop);
    }
}

#[test]
fn producer_stopped_after_write_keeps_its_item() {
    for cap in [1, 2, 4] {
        producer_paused_at("queue.put.after_write", cap, Pause::Stop);
    }
}

#[test]
fn consumer_stopped_after_claim_keeps_its_item() {
    for cap in [1, 2, 4] {
        consumer_paused_at("queue.get.after_claim", cap, Pause::Stop);
    }
}

#[test]
fn consumer_stopped_after_read_keeps_its_item() {
    for cap in [1, 2, 4] {
        consumer_paused_at("queue.get.after_read", cap, Pause::Stop);
    }
}

#[test]
fn producer_hung_after_claim_is_waited_for_not_skipped() {
    for cap in [1, 2, 4] {
        producer_paused_at("queue.put.after_claim", cap, Pause::Hang);
    }
}

#[test]
fn producer_hung_after_write_is_waited_for_not_skipped() {
    for cap in [1, 2, 4] {
        producer_paused_at("queue.put.after_write", cap, Pause::Hang);
    }
}

#[test]
fn consumer_hung_after_claim_keeps_its_item_and_slot() {
    for cap in [1, 2, 4] {
        consumer_paused_at("queue.get.after_claim", cap, Pause::Hang);
    }
}

#[test]
fn consumer_hung_after_read_keeps_its_item_and_slot() {
    for cap in [1, 2, 4] {
        consumer_paused_at("queue.get.after_read", cap, Pause::Hang);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. A waiter killed while blocked

#[test]
fn consumer_killed_while_blocked_in_get_does_not_strand_the_other() {
    let name = Name::new("wget");
    let q = Queue::<u64>::create(&name, 2).unwrap();
    advance(&q, 1);
    let mut doomed = spawn("get", &[&name, "1"]);
    let mut other = spawn("get", &[&name, "1"]);
    for c in [&mut doomed, &mut other] {
        c.expect_line("WAITING", T);
        wait_sleeping(c.pid());
    }
    doomed.kill();
    let t_put = mono_ns();
    q.put(tag(PARENT, 7)).unwrap();
    let (v, t) = expect_event(&mut other, "GOT");
    assert_eq!(v, tag(PARENT, 7));
    eprintln!(
        "[queue_crash] blocked get, other waiter killed: put -> get {}",
        micros(t_put, t)
    );
    other.expect_line("DONE", T);
    other.wait_ok(T);
    assert_eq!(q.try_get(), Err(GetError::Empty));
    fill_and_drain(&q, 3);
}

#[test]
fn producer_killed_while_blocked_in_put_does_not_strand_the_other() {
    let name = Name::new("wput");
    let q = Queue::<u64>::create(&name, 1).unwrap();
    advance(&q, 1);
    q.try_put(tag(PARENT, 0)).unwrap();
    let mut doomed = spawn("put", &[&name, "1", "0", "1"]);
    let mut other = spawn("put", &[&name, "2", "0", "1"]);
    for c in [&mut doomed, &mut other] {
        c.expect_line("WAITING", T);
        wait_sleeping(c.pid());
    }
    doomed.kill();
    let t_get = mono_ns();
    assert_eq!(q.get_timeout(T), Ok(tag(PARENT, 0)));
    let (v, t) = expect_event(&mut other, "PUT");
    assert_eq!(v, tag(2, 0));
    eprintln!(
        "[queue_crash] blocked put, other waiter killed: get -> put returns {}",
        micros(t_get, t)
    );
    other.expect_line("DONE", T);
    other.wait_ok(T);
    assert_eq!(q.get_timeout(T), Ok(tag(2, 0)));
    assert_eq!(q.try_get(), Err(GetError::Empty), "the killed producer's item appeared");
    fill_and_drain(&q, 3);
}

// ---------------------------------------------------------------------------------------------
// 5. Many deaths in a row

/// Twenty deaths at `after_claim`, producers and consumers alternately, on one queue; after
/// each (quiescent: every child is dead) `len`, `is_empty`, `is_full` match a model of what
/// the queue holds, and puts and gets go on in FIFO order. Producers die with the queue
/// empty, so the hole they leave is at the head (`len_is_exact_with_a_dead_producer_behind_an_item`
/// covers the other
/// case); consumers die holding the head item with others behind it.
fn many_deaths(cap: usize) {
    let name = Name::new("many");
    let q = Queue::<u64>::create(&name, cap).unwrap();
    let mut model: VecDeque<u64> = VecDeque::new();
    let mut next = 0u64;
    let mut put = |q: &Queue<u64>, model: &mut VecDeque<u64>| {
        let v = tag(PARENT, next);
        next += 1;
        q.put_timeout(v, T).unwrap();
        model.push_back(v);
    };
    let check = |q: &Queue<u64>, model: &VecDeque<u64>, when: &str| {
        assert_eq!(q.len(), model.len(), "cap {cap} {when}: len");
        assert_eq!(q.is_empty(), model.is_empty(), "cap {cap} {when}: is_empty");
        assert_eq!(q.is_full(), model.len() == cap, "cap {cap} {when}: is_full");
    };
    for round in 0..20u64 {
        let when = format!("round {round}");
        if round % 2 == 0 {
            while let Some(v) = model.pop_front() {
                assert_eq!(q.get_timeout(T), Ok(v), "cap {cap} {when}");
            }
            let mut victim = spawn_at_fault(
                "put",
                &[&name, "1", &round.to_string(), "1"],
                "queue.put.after_claim",
                false,
            );
            victim.kill();
        } else {
            while model.len() < cap.min(1 + round as usize % 3) {
                put(&q, &mut model);
            }
            let mut victim = spawn_at_fault("get", &[&name, "1"], "queue.get.after_claim", false);
            victim.kill();
            model.pop_front(); // held by the dead consumer: lost
        }
        check(&q, &model, &when);
        // The queue keeps working: fill it to the brim, check, take one.
        while model.len() < cap {
            put(&q, &mut model);
        }
        check(&q, &model, &when);
        assert!(matches!(q.try_put(STOP), Err(PutError::Full(_))), "cap {cap} {when}");
        let v = model.pop_front().unwrap();
        assert_eq!(q.get_timeout(T), Ok(v), "cap {cap} {when}");
        check(&q, &model, &when);
    }
    while let Some(v) = model.pop_front() {
        assert_eq!(q.get_timeout(T), Ok(v));
    }
    check(&q, &model, "end");
    fill_and_drain(&q, 3);
}

#[test]
fn many_deaths_in_a_row_capacity_2() {
    many_deaths(2);
}

#[test]
fn many_deaths_in_a_row_capacity_4() {
    many_deaths(4);
}

/// A producer killed at `point` while an item is queued before its position: the dead position
/// is not at the head, so `len` cannot step over it yet. Quiescent, the queue holds exactly the
/// items put, which `len`/`is_full` must say ("exact when nobody is putting or getting"), before
/// and after another put (which helps `tail` over the dead position). Whether that put fits is
/// printed, not asserted: the dead position keeps its slot until a consumer passes it.
fn dead_producer_behind_an_item(point: &str, cap: usize) -> Vec<String> {
    let name = Name::new("hole");
    let q = Queue::<u64>::create(&name, cap).unwrap();
    advance(&q, 1);
    q.try_put(tag(PARENT, 0)).unwrap();
    let mut victim = spawn_at_fault("put", &[&name, "1", "0", "1"], point, false);
    victim.kill();
    let mut wrong = Vec::new();
    let mut check = |when: &str, items: usize| {
        let (len, full) = (q.len(), q.is_full());
        if (len, full) != (items, items == cap) {
            wrong.push(format!(
                "{point} cap {cap} {when}: {items} item(s) but len {len}, is_full {full}"
            ));
        }
    };
    check("after the kill", 1);
    let put = q.try_put(tag(PARENT, 1));
    eprintln!("[queue_crash] 1 item, then a producer killed at {point} (cap {cap}): try_put {put:?}");
    check("after a try_put", 1 + usize::from(put.is_ok()));
    let mut expected = vec![tag(PARENT, 0)];
    if put.is_ok() {
        expected.push(tag(PARENT, 1));
    }
    let got = drain(&q);
    assert_eq!(got, expected, "{point} cap {cap}");
    assert_eq!(q.len(), 0);
    fill_and_drain(&q, 3);
    wrong
}

/// Takes items with `try_get` until it has answered Empty 32 times in a row: a dead
/// producer's position at the head is stepped over by one `try_get` in 16 of a thread (the
/// others answer Empty, as while a live producer is still writing; see `Queue::try_get`).
fn drain(q: &Queue<u64>) -> Vec<u64> {
    let mut got = Vec::new();
    let mut empties = 0;
    while empties < 32 {
        match q.try_get() {
            Ok(v) => {
                got.push(v);
                empties = 0;
            }
            Err(GetError::Empty) => empties += 1,
            Err(e) => panic!("drain: {e}"),
        }
    }
    got
}

#[test]
fn len_is_exact_with_a_dead_producer_behind_an_item() {
    let mut wrong = Vec::new();
    for point in ["queue.put.after_claim", "queue.put.after_write"] {
        for cap in [2, 4] {
            wrong.extend(dead_producer_behind_an_item(point, cap));
        }
    }
    assert!(
        wrong.is_empty(),
        "len/is_full not exact when quiescent:\n{}",
        wrong.join("\n")
    );
}
