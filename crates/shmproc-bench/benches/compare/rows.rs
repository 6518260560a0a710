//! Row names, the list of rows in the order they run, and the targets the table is checked
//! against.

use super::*;

// Row names, shared by the rows, the references and the targets.
pub(crate) const G_1P1C: &str = "queue 1P1C";
pub(crate) const G_2P2C: &str = "queue 2P2C";
pub(crate) const G_RT: &str = "round trip";
pub(crate) const G_SOLO: &str = "put+get, 1 thread";
pub(crate) const G_ATOMIC: &str = "fetch_add, 1 process";
pub(crate) const G_LOCK1: &str = "lock+incr+unlock, 1 user";
pub(crate) const G_LOCK2: &str = "lock+incr+unlock, 2 users";
pub(crate) const G_WAKE: &str = "wake-up, 2 processes";
pub(crate) const G_OPEN: &str = "open by name";

pub(crate) const SHM_Q: &str = "shmproc Queue (put/get)";
pub(crate) const SHM_Q_SPIN: &str = "shmproc Queue (spinning try_put/try_get)";
pub(crate) const SHM_Q_REF: &str = "shmproc Queue (put_ref/get_into)";
pub(crate) const BYTEQ: &str = "shmproc ByteQueue (put/get_into)";
pub(crate) const BYTEQ_IN_PLACE: &str = "shmproc ByteQueue (put/get_with, read in place)";
pub(crate) const BYTEQ_SMALL: &str = "shmproc ByteQueue, capacity 16: a 1 MiB ring (put/get_into)";
/// The capacity of the `BYTEQ_SMALL` row: 16 x 64 KiB fits in this machine's L2, where the
/// other rows' 1024 x 64 KiB (64 MiB) does not.
pub(crate) const SMALL_CAPACITY: usize = 16;
pub(crate) const MSGQ_STRING: &str = "shmproc MessageQueue<String>";
/// Message sizes of the `ByteQueue` and `MessageQueue<String>` rows.
pub(crate) const MSG_SIZES: [usize; 3] = [64, 1024, 65536];
pub(crate) const CROSSBEAM: &str = "crossbeam ArrayQueue (2 threads)";
pub(crate) const CROSSBEAM4: &str = "crossbeam ArrayQueue (4 threads)";
pub(crate) const PIPE: &str = "unix pipe";
pub(crate) const PIPE_SHARED: &str = "unix pipe (shared by all 4)";
pub(crate) const SOCK1: &str = "unix socket, 1 msg/write";
pub(crate) const SOCK64: &str = "unix socket, 64 msgs/write";
pub(crate) const MEMCPY_HOT: &str = "memcpy 64 KiB, hot buffers (1 core)";
pub(crate) const MEMCPY_RING: &str = "memcpy 64 KiB into a 64 MiB ring (1 core)";
pub(crate) const MEMCPY_HANDOVER: &str = "memcpy in + memcpy out, 2 threads, 1024 slots (copy floor)";
pub(crate) const RT_SPIN: &str = "shmproc Queue, spinning (try_put/try_get)";
pub(crate) const RT_BLOCK: &str = "shmproc Queue, blocking (put/get)";
pub(crate) const RT_FLOOR: &str = "shared atomic word (floor)";
pub(crate) const RT_FUTEX: &str = "bare futex wait/wake (blocking floor)";
pub(crate) const RT_CROSSBEAM: &str = "crossbeam ArrayQueue, 2 threads, spinning";
pub(crate) const RT_BARE: &str = "two bare SPSC rings, 2 processes (ring floor)";
pub(crate) const BARE_CB16: &str = "bare ring, crossbeam's algorithm, 16-B slots (2 processes)";
pub(crate) const BARE_CB64: &str = "bare ring, crossbeam's algorithm, 64-B slots (2 processes)";
pub(crate) const RT_PIPE: &str = "unix pipe (2 pipes)";
pub(crate) const RT_SOCK: &str = "unix socket";
pub(crate) const ATOMIC_ARRAY: &str = "shmproc AtomicArray<AtomicU64>";
pub(crate) const ATOMIC_BARE: &str = "bare AtomicU64 in a shared memfd mapping";
pub(crate) const SOLO_Q: &str = "shmproc Queue<u64> (put, then get)";
pub(crate) const SOLO_CB: &str = "crossbeam ArrayQueue<u64> (push, then pop)";
pub(crate) const VALUE1: &str = "shmproc Value<u64>, 1 process";
pub(crate) const LOCK1: &str = "shmproc Lock (no data), 1 process";
pub(crate) const MUTEX1: &str = "std Mutex<u64>, 1 thread";
pub(crate) const RLOCK1: &str = "shmproc RLock (no data), 1 process";
pub(crate) const SEM1: &str = "shmproc Semaphore(1): acquire, guard drop, 1 process";
pub(crate) const BARE_LOCK1: &str = "bare futex lock (CAS) in a shared memfd mapping (floor)";
pub(crate) const WAKE_EVENT: &str = "shmproc Event x2 (set, wait, clear)";
pub(crate) const WAKE_BARRIER: &str = "shmproc Barrier of 2 (one wait each per op)";
pub(crate) const VALUE2: &str = "shmproc Value<u64>, 2 processes";
pub(crate) const MUTEX2: &str = "std Mutex<u64>, 2 threads";
pub(crate) const OPEN_VALUE: &str = "shmproc Value<u64>: create+open+load";
pub(crate) const OPEN_QUEUE: &str = "shmproc Queue<u64> cap 1024: create+open+try_get";
pub(crate) const OPEN_RAW: &str = "libc shm_open+ftruncate+mmap: create+open+read";

pub(crate) fn run_all(b: &mut Bench) {
    for size in PAYLOADS {
        with_payload!(size, T => {
            b.row((G_1P1C, SHM_Q, size), Per::Msg, None, |c| shm_1p1c::<T>(c, QMode::Block));
            b.row((G_1P1C, SHM_Q_SPIN, size), Per::Msg, Some(SHM_Q), |c| shm_1p1c::<T>(c, QMode::Spin));
            if size >= 1024 {
                b.row((G_1P1C, SHM_Q_REF, size), Per::Msg, Some(SHM_Q), |c| shm_1p1c::<T>(c, QMode::Ref));
            }
            b.row((G_1P1C, CROSSBEAM, size), Per::Msg, Some(SHM_Q), crossbeam_1p1c::<T>);
        });
        b.row((G_1P1C, PIPE, size), Per::Msg, Some(SHM_Q), |c| {
            stream_1p1c(c, size, Link::Pipe, 1)
        });
        b.row((G_1P1C, SOCK1, size), Per::Msg, Some(SHM_Q), |c| {
            stream_1p1c(c, size, Link::Socket, 1)
        });
        b.row((G_1P1C, SOCK64, size), Per::Msg, Some(SHM_Q), |c| {
            stream_1p1c(c, size, Link::Socket, BATCH)
        });
    }
    for size in MSG_SIZES {
        b.row((G_1P1C, BYTEQ, size), Per::Msg, None, |c| msg_1p1c(c, size, Recv::Copy));
        b.row((G_1P1C, BYTEQ_IN_PLACE, size), Per::Msg, None, |c| {
            msg_1p1c(c, size, Recv::InPlace)
        });
        b.row((G_1P1C, MSGQ_STRING, size), Per::Msg, None, |c| {
            msg_1p1c(c, size, Recv::Typed)
        });
    }
    b.row((G_1P1C, BYTEQ_SMALL, 65536), Per::Msg, Some(BYTEQ), |c| {
        msg_1p1c_cap(c, 65536, Recv::Copy, SMALL_CAPACITY)
    });
    b.row((G_1P1C, MEMCPY_HOT, 65536), Per::Copy, Some(SHM_Q), memcpy_hot);
    b.row((G_1P1C, MEMCPY_RING, 65536), Per::Copy, Some(SHM_Q), memcpy_ring);
    b.row((G_1P1C, MEMCPY_HANDOVER, 65536), Per::Msg, Some(SHM_Q), memcpy_handover);
    b.row((G_1P1C, BARE_CB16, 8), Per::Msg, Some(SHM_Q), |c| bare_1p1c(c, 16));
    b.row((G_1P1C, BARE_CB64, 8), Per::Msg, Some(SHM_Q), |c| bare_1p1c(c, 64));

    for size in PAYLOADS {
        with_payload!(size, T => {
            b.row((G_2P2C, SHM_Q, size), Per::Msg, None, shm_2p2c::<T>);
            b.row((G_2P2C, CROSSBEAM4, size), Per::Msg, Some(SHM_Q), crossbeam_2p2c::<T>);
        });
        if size <= PIPE_BUF {
            b.row((G_2P2C, PIPE_SHARED, size), Per::Msg, Some(SHM_Q), |c| {
                pipe_2p2c(c, size)
            });
        }
    }

    b.row((G_RT, RT_SPIN, 8), Per::RoundTrip, None, |c| lat_shm(c, true));
    b.row((G_RT, RT_BLOCK, 8), Per::RoundTrip, None, |c| lat_shm(c, false));
    b.row((G_RT, RT_FLOOR, 8), Per::RoundTrip, Some(RT_SPIN), lat_atomic);
    b.row((G_RT, RT_FUTEX, 8), Per::RoundTrip, Some(RT_BLOCK), lat_futex);
    b.row((G_RT, RT_CROSSBEAM, 8), Per::RoundTrip, Some(RT_SPIN), lat_crossbeam);
    b.row((G_RT, RT_BARE, 8), Per::RoundTrip, Some(RT_SPIN), lat_bare);
    b.row((G_RT, RT_PIPE, 8), Per::RoundTrip, Some(RT_BLOCK), |c| {
        lat_stream(c, Link::Pipe)
    });
    b.row((G_RT, RT_SOCK, 8), Per::RoundTrip, Some(RT_BLOCK), |c| {
        lat_stream(c, Link::Socket)
    });

    b.row((G_SOLO, SOLO_Q, 8), Per::Op, None, queue_solo);
    b.row((G_SOLO, SOLO_CB, 8), Per::Op, Some(SOLO_Q), crossbeam_solo);

    b.row((G_ATOMIC, ATOMIC_ARRAY, 8), Per::Op, None, atomic_array_add);
    b.row((G_ATOMIC, ATOMIC_BARE, 8), Per::Op, Some(ATOMIC_ARRAY), bare_atomic_add);

    b.row((G_LOCK1, VALUE1, 8), Per::Op, None, value_uncontended);
    b.row((G_LOCK1, LOCK1, 8), Per::Op, Some(VALUE1), lock_uncontended);
    b.row((G_LOCK1, RLOCK1, 8), Per::Op, Some(LOCK1), rlock_uncontended);
    b.row((G_LOCK1, SEM1, 8), Per::Op, Some(LOCK1), semaphore_uncontended);
    b.row((G_LOCK1, MUTEX1, 8), Per::Op, Some(VALUE1), mutex_uncontended);
    b.row((G_LOCK1, BARE_LOCK1, 8), Per::Op, Some(LOCK1), bare_lock_uncontended);
    b.row((G_LOCK2, VALUE2, 8), Per::Op, None, value_contended);
    b.row((G_LOCK2, MUTEX2, 8), Per::Op, Some(VALUE2), mutex_contended);

    b.row((G_WAKE, WAKE_EVENT, 0), Per::RoundTrip, None, lat_event);
    b.row((G_WAKE, WAKE_BARRIER, 0), Per::Op, None, lat_barrier);
    b.row((G_WAKE, RT_FUTEX, 0), Per::RoundTrip, Some(WAKE_EVENT), lat_futex);

    b.row((G_OPEN, OPEN_VALUE, 0), Per::Open, None, open_value);
    b.row((G_OPEN, OPEN_QUEUE, 0), Per::Open, None, open_queue);
    b.row((G_OPEN, OPEN_RAW, 0), Per::Open, Some(OPEN_VALUE), open_raw);
}

/// The targets, judged on this run's numbers.
pub(crate) fn print_targets(b: &Bench) {
    let ns = |g: &str, c: &str, p: usize| b.find(g, c, p).map(|r| r.stats.median);
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let mut judge = |what: &str, met: bool, detail: String| {
        lines.push(format!("  [{}] {what}: {detail}", if met { "met" } else { "MISSED" }));
    };
    // A target compares two rows; if the host moved the vCPUs between them (one measured on
    // cores that share a cache, the other on cores that do not), the comparison says nothing.
    let near = |g: &str, c: &str, p: usize| b.find(g, c, p).and_then(|r| r.distance_ns).map(|d| d < NEAR_NS);
    let placement = |a: (&str, &str, usize), z: (&str, &str, usize)| match (near(a.0, a.1, a.2), near(z.0, z.1, z.2)) {
        (Some(x), Some(y)) if x != y => " [NOT COMPARABLE: the cores moved between these rows]",
        (Some(true), Some(true)) => " (cores near)",
        (Some(false), Some(false)) => " (cores far)",
        _ => "",
    };
    if let (Some(shm), Some(cb)) = (ns(G_1P1C, SHM_Q, 8), ns(G_1P1C, CROSSBEAM, 8)) {
        judge(
            "Queue<u64> 1P1C (processes) >= crossbeam ArrayQueue (threads)",
            shm <= cb,
            format!(
                "{} vs {} msgs/s = {}{}",
                fmt_rate(1e9 / shm),
                fmt_rate(1e9 / cb),
                fmt_ratio(cb / shm),
                placement((G_1P1C, SHM_Q, 8), (G_1P1C, CROSSBEAM, 8))
            ),
        );
    }
    if let (Some(shm), Some(bare)) = (ns(G_1P1C, SHM_Q, 8), ns(G_1P1C, BARE_CB16, 8)) {
        judge(
            "Queue<u64> 1P1C within 1.3x the bare crossbeam-algorithm ring (both across processes)",
            shm <= 1.3 * bare,
            format!(
                "{} vs {} per msg = {}{}",
                fmt_ns(shm),
                fmt_ns(bare),
                fmt_ratio(shm / bare),
                placement((G_1P1C, SHM_Q, 8), (G_1P1C, BARE_CB16, 8))
            ),
        );
    }
    if let (Some(shm), Some(sock)) = (ns(G_1P1C, SHM_Q, 8), ns(G_1P1C, SOCK1, 8)) {
        judge(
            "Queue<u64> 1P1C >= 20x unix socket, 1 msg/write",
            sock / shm >= 20.0,
            format!(
                "{} vs {} msgs/s = {}",
                fmt_rate(1e9 / shm),
                fmt_rate(1e9 / sock),
                fmt_ratio(sock / shm)
            ),
        );
    }
    if let (Some(spin), Some(floor)) = (ns(G_RT, RT_SPIN, 8), ns(G_RT, RT_FLOOR, 8)) {
        judge(
            "spinning round trip <= 1.5x shared-atomic floor",
            spin <= 1.5 * floor,
            format!(
                "{} vs {} = {}{}",
                fmt_ns(spin),
                fmt_ns(floor),
                fmt_ratio(spin / floor),
                placement((G_RT, RT_SPIN, 8), (G_RT, RT_FLOOR, 8))
            ),
        );
    }
    if let (Some(block), Some(floor)) = (ns(G_RT, RT_BLOCK, 8), ns(G_RT, RT_FUTEX, 8)) {
        judge(
            "blocking round trip <= 1.2x bare futex wait/wake round trip",
            block <= 1.2 * floor,
            format!("{} vs {} = {}", fmt_ns(block), fmt_ns(floor), fmt_ratio(block / floor)),
        );
    }
    // Half a hot memcpy at 64 KiB, for `Queue` both ways of passing an item (by value, and by
    // reference: no copy besides the ones into and out of its cell) and for `ByteQueue` both
    // ways of receiving (copied out, and read where it lies with `get_with`, the zero-copy
    // receive issue 7 asks for, as the iceoryx2 row reads).
    for (what, case) in [
        ("Queue 64 KiB messages (put/get)", SHM_Q),
        ("Queue 64 KiB messages (put_ref/get_into)", SHM_Q_REF),
        ("ByteQueue 64 KiB messages (get_into)", BYTEQ),
        ("ByteQueue 64 KiB messages (read in place)", BYTEQ_IN_PLACE),
    ] {
        if let (Some(shm), Some(mc)) = (ns(G_1P1C, case, 65536), ns(G_1P1C, MEMCPY_HOT, 65536)) {
            judge(
                &format!("{what} >= 1/2 single-core memcpy bandwidth"),
                shm <= 2.0 * mc,
                format!(
                    "{:.0} vs {:.0} MB/s = {}",
                    65536e3 / shm,
                    65536e3 / mc,
                    fmt_ratio(mc / shm)
                ),
            );
        }
    }
    for size in MSG_SIZES {
        if let (Some(bq), Some(sock)) = (ns(G_1P1C, BYTEQ, size), ns(G_1P1C, SOCK1, size)) {
            judge(
                &format!("ByteQueue {size} B messages >= 10x unix socket, 1 msg/write"),
                sock / bq >= 10.0,
                format!(
                    "{} vs {} msgs/s = {}",
                    fmt_rate(1e9 / bq),
                    fmt_rate(1e9 / sock),
                    fmt_ratio(sock / bq)
                ),
            );
        }
    }
    if let (Some(hot), Some(floor)) = (ns(G_1P1C, MEMCPY_HOT, 65536), ns(G_1P1C, MEMCPY_HANDOVER, 65536)) {
        // Context for the 64 KiB targets, not a target: how close any copying queue can
        // get to them on this machine.
        notes.push(format!(
            "  (context) the copy floor, memcpy in + out across 2 cores, reaches {:.0} MB/s = {} of hot memcpy; \
             Queue {}, ByteQueue {} of that floor",
            65536e3 / floor,
            fmt_ratio(hot / floor),
            ns(G_1P1C, SHM_Q, 65536).map_or("-".into(), |q| fmt_ratio(floor / q)),
            ns(G_1P1C, BYTEQ, 65536).map_or("-".into(), |q| fmt_ratio(floor / q)),
        ));
    }
    if let (Some(cb16), Some(cb64)) = (ns(G_1P1C, BARE_CB16, 8), ns(G_1P1C, BARE_CB64, 8)) {
        // Context for the crossbeam target: the same algorithm across processes, with its own
        // slot layout and with shmproc's one slot per cache line.
        notes.push(format!(
            "  (context) crossbeam's algorithm between 2 processes: {} msgs/s with its 16-B slots, \
             {} with 64-B slots; Queue<u64> put/get {}",
            fmt_rate(1e9 / cb16),
            fmt_rate(1e9 / cb64),
            ns(G_1P1C, SHM_Q, 8).map_or("-".into(), |q| fmt_rate(1e9 / q)),
        ));
    }
    if let (Some(rings), Some(floor)) = (ns(G_RT, RT_BARE, 8), ns(G_RT, RT_FLOOR, 8)) {
        // Context for the spinning round-trip target: two rings at their simplest.
        notes.push(format!(
            "  (context) the ring floor, a round trip through two bare SPSC rings, takes {} = {} of the \
             shared-atomic floor; the spinning Queue round trip is {} of the ring floor",
            fmt_ns(rings),
            fmt_ratio(rings / floor),
            ns(G_RT, RT_SPIN, 8).map_or("-".into(), |q| fmt_ratio(q / rings)),
        ));
    }
    if let (Some(v), Some(m)) = (ns(G_LOCK1, VALUE1, 8), ns(G_LOCK1, MUTEX1, 8)) {
        judge(
            "Value<u64> lock+incr+unlock uncontended <= 1.5x std Mutex",
            v <= 1.5 * m,
            format!("{} vs {} = {}", fmt_ns(v), fmt_ns(m), fmt_ratio(v / m)),
        );
    }
    if let Some(mutex) = ns(G_LOCK1, MUTEX1, 8) {
        // Context for the primitives beside `Value`: each uncontended take + release against
        // std's Mutex and the bare futex lock (the least a lock in shared memory costs).
        let bare = ns(G_LOCK1, BARE_LOCK1, 8);
        let each: Vec<String> = [("Lock", LOCK1), ("RLock", RLOCK1), ("Semaphore(1)", SEM1)]
            .into_iter()
            .filter_map(|(what, case)| {
                let t = ns(G_LOCK1, case, 8)?;
                Some(format!(
                    "{what} {} ({} std Mutex's time, {} the bare futex lock's)",
                    fmt_ns(t),
                    fmt_ratio(t / mutex),
                    bare.map_or("-".into(), |b| fmt_ratio(t / b)),
                ))
            })
            .collect();
        if !each.is_empty() {
            notes.push(format!("  (context) uncontended take+release: {}", each.join("; ")));
        }
    }
    if let Some(floor) = ns(G_WAKE, RT_FUTEX, 0) {
        // Context for the wake-up rows: a round trip of two events and a barrier round (one
        // wake-up per op where a round trip has two) against the bare futex round trip.
        let each: Vec<String> = [("Event round trip", WAKE_EVENT), ("Barrier(2) op", WAKE_BARRIER)]
            .into_iter()
            .filter_map(|(what, case)| {
                let t = ns(G_WAKE, case, 0)?;
                // A barrier op that never sleeps is a few hundred times below the floor.
                let r = t / floor;
                let r = if r < 0.1 { format!("{r:.4}x") } else { fmt_ratio(r) };
                Some(format!("{what} {} ({r} its time)", fmt_ns(t)))
            })
            .collect();
        if !each.is_empty() {
            notes.push(format!(
                "  (context) the bare futex round trip takes {}: {}",
                fmt_ns(floor),
                each.join("; ")
            ));
        }
    }
    if !lines.is_empty() || !notes.is_empty() {
        println!();
        println!("targets (from this run):");
        for l in lines.iter().chain(&notes) {
            println!("{l}");
        }
    }
}
