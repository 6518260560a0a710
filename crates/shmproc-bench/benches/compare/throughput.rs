//! Throughput rows: 1 producer and 1 consumer, 2 and 2, and the memcpy floors.

use super::*;

// ---------------------------------------------------------------------------------------------
// Throughput, 1 producer and 1 consumer. The producer is a child; the parent consumes, checks,
// and times from sending `RUN n` to taking the n-th message.

/// First calibration count for a payload: about 4 MiB, at least two laps of the ring (so the
/// warm-up faults in every page of the segment), at most 20 000 messages.
pub(crate) fn start_count(size: usize) -> u64 {
    ((4u64 << 20) / size as u64).clamp(2 * CAPACITY as u64, 20_000)
}

/// How the 1P1C `Queue` rows put and get.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum QMode {
    /// `put` / `get`, items by value.
    Block,
    /// Both sides poll (`try_put` / `try_get`, with `backoff`), as the crossbeam row does; no
    /// futex is ever touched.
    Spin,
    /// `put_ref` / `get_into`: blocking, items by reference (no copy of a large `T` besides
    /// the one into and the one out of its cell).
    Ref,
}

pub(crate) fn shm_1p1c<T: Pod>(cfg: &Cfg, how: QMode) -> Stats {
    let size = size_of::<T>();
    let name = seg_name();
    let q = Queue::<T>::create(&name, CAPACITY).expect("create queue");
    let mode = match how {
        QMode::Block => "block",
        QMode::Spin => "spin",
        QMode::Ref => "ref",
    };
    let mut kid = spawn_kid("q-prod", &[name.clone(), size.to_string(), mode.into()], &[]);
    kid.ready();
    unlink(&name);
    let mut buf = T::zeroed();
    measure(cfg, start_count(size), |n| {
        let t0 = Instant::now();
        kid.run(n);
        let mut sum = 0u64;
        for _ in 0..n {
            if how == QMode::Ref {
                q.get_into(&mut buf).expect("get_into");
                sum = sum.wrapping_add(check(&buf));
                continue;
            }
            let item = if how == QMode::Spin {
                let mut fails = 0;
                loop {
                    match q.try_get() {
                        Ok(v) => break v,
                        Err(GetError::Empty) => backoff(&mut fails),
                        Err(e) => panic!("try_get: {e}"),
                    }
                }
            } else {
                q.get().expect("get")
            };
            sum = sum.wrapping_add(check(&item));
        }
        let dt = t0.elapsed();
        kid.done();
        assert_eq!(sum, stamps_sum(n), "checksum");
        (dt, n)
    })
}

/// 1 producer process and 1 consumer (this process) through a `ByteQueue` (`put` of a
/// stamped buffer, `get_into` a reused one) or a `MessageQueue<String>` (postcard encoding,
/// one `String` allocated per message received).
/// What the consumer of a message row does with each message.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Recv {
    /// `ByteQueue::get_into` a reused buffer (the whole message copied out).
    Copy,
    /// `ByteQueue::get_with`: read the two stamp words where the message lies, as the
    /// iceoryx2 row does.
    InPlace,
    /// `MessageQueue<String>::get` (decode, allocate, validate UTF-8).
    Typed,
}

pub(crate) fn msg_1p1c(cfg: &Cfg, size: usize, recv: Recv) -> Stats {
    msg_1p1c_cap(cfg, size, recv, CAPACITY)
}

/// [`msg_1p1c`] through a queue of `capacity` slots.
pub(crate) fn msg_1p1c_cap(cfg: &Cfg, size: usize, recv: Recv, capacity: usize) -> Stats {
    enum Q {
        Bytes(ByteQueue),
        Strings(MessageQueue<String>),
    }
    let typed = recv == Recv::Typed;
    let name = seg_name();
    // Room for postcard's length prefix in the typed rows.
    let opts = Options::new().max_message_size(size + 16);
    let q = if typed {
        Q::Strings(MessageQueue::create_with(&name, capacity, &opts).expect("create queue"))
    } else {
        Q::Bytes(ByteQueue::create_with(&name, capacity, &opts).expect("create queue"))
    };
    let kind = if typed { "string" } else { "bytes" };
    let mut kid = spawn_kid("msg-prod", &[name.clone(), size.to_string(), kind.into()], &[]);
    kid.ready();
    unlink(&name);
    let mut buf = Vec::new();
    measure(cfg, start_count(size), |n| {
        let t0 = Instant::now();
        kid.run(n);
        let mut sum = 0u64;
        for _ in 0..n {
            let v = match &q {
                Q::Bytes(q) if recv == Recv::InPlace => q
                    .get_with(|m| {
                        assert_eq!(m.len(), size, "message length");
                        let (mut first, mut last) = ([0u8; 8], [0u8; 8]);
                        m.read_at(0, &mut first);
                        m.read_at(size - 8, &mut last);
                        assert_eq!(first, last, "torn message");
                        u64::from_le_bytes(first)
                    })
                    .expect("get_with"),
                Q::Bytes(q) => {
                    q.get_into(&mut buf).expect("get");
                    assert_eq!(buf.len(), size, "message length");
                    check_bytes(&buf)
                }
                Q::Strings(q) => string_stamp(&q.get().expect("get"), size),
            };
            sum = sum.wrapping_add(v);
        }
        let dt = t0.elapsed();
        kid.done();
        assert_eq!(sum, stamps_sum(n), "checksum");
        (dt, n)
    })
}

/// One failed poll of a spinning loop (crossbeam's queues, the spinning round trips, the floor):
/// a spin hint, and every 64th time a `sched_yield`, in case the peer is not running because
/// this machine has few cores or other work. Waits of a round trip on an idle machine end long
/// before the first yield.
pub(crate) fn backoff(fails: &mut u32) {
    *fails += 1;
    if (*fails).is_multiple_of(64) {
        std::thread::yield_now();
    } else {
        spin_loop();
    }
}

pub(crate) fn push_spin<T>(q: &ArrayQueue<T>, mut v: T) {
    let mut fails = 0;
    while let Err(back) = q.push(v) {
        v = back;
        backoff(&mut fails);
    }
}

pub(crate) fn pop_spin<T>(q: &ArrayQueue<T>) -> T {
    let mut fails = 0;
    loop {
        if let Some(v) = q.pop() {
            return v;
        }
        backoff(&mut fails);
    }
}

/// Thread stacks large enough for a few 64 KiB payloads by value.
pub(crate) fn big_stack() -> std::thread::Builder {
    std::thread::Builder::new().stack_size(8 << 20)
}

pub(crate) fn crossbeam_1p1c<T: Pod + Send>(cfg: &Cfg) -> Stats {
    let q = ArrayQueue::<T>::new(CAPACITY);
    measure(cfg, start_count(size_of::<T>()), |n| {
        let q = &q;
        std::thread::scope(|s| {
            let t0 = Instant::now();
            big_stack()
                .spawn_scoped(s, move || {
                    pin_self(1);
                    let mut template = T::zeroed();
                    for i in 0..n {
                        push_spin(q, stamped(&mut template, i));
                    }
                })
                .expect("spawn");
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(check(&pop_spin(q)));
            }
            let dt = t0.elapsed();
            assert_eq!(sum, stamps_sum(n), "checksum");
            (dt, n)
        })
    })
}

#[derive(Clone, Copy)]
pub(crate) enum Link {
    Pipe,
    Socket,
}

/// A pipe or a Unix stream socket; `batch` messages per `write_all` and per `read_exact`.
pub(crate) fn stream_1p1c(cfg: &Cfg, size: usize, link: Link, batch: usize) -> Stats {
    let (mine, theirs) = match link {
        Link::Pipe => pipe(),
        Link::Socket => socket_pair(),
    };
    let theirs = high(&theirs);
    let args = [size.to_string(), batch.to_string(), "0".into()];
    let mut kid = spawn_kid("stream-prod", &args, &[theirs.as_raw_fd()]);
    drop(theirs);
    let mut r = File::from(mine);
    kid.ready();
    let mut buf = vec![0u8; size * batch];
    measure(cfg, start_count(size), |n| {
        let t0 = Instant::now();
        kid.run(n);
        let (mut left, mut sum) = (n, 0u64);
        while left > 0 {
            let k = left.min(batch as u64) as usize;
            r.read_exact(&mut buf[..k * size]).expect("read");
            for m in buf[..k * size].chunks_exact(size) {
                sum = sum.wrapping_add(check_bytes(m));
            }
            left -= k as u64;
        }
        let dt = t0.elapsed();
        kid.done();
        assert_eq!(sum, stamps_sum(n), "checksum");
        (dt, n)
    })
}

/// Single-core `memcpy` of a 64 KiB buffer into another one, both hot in cache.
///
/// Both buffers come from one allocation, the destination 2048 bytes after the source modulo
/// 4096. Two separate 64 KiB `Vec`s would sit back to back on the heap, 16 bytes apart
/// modulo 4096, where `rep movsb` (glibc's `memcpy` at this size) runs 10 to 25 times slower
/// on AMD Zen 3: the row would measure that pathology, not a copy.
pub(crate) fn memcpy_hot(cfg: &Cfg) -> Stats {
    let mut buf = vec![1u8; 2 * 65536 + 4096];
    let (src, rest) = buf.split_at_mut(65536 + 2048);
    let src = &src[..65536];
    let dst = &mut rest[..65536];
    measure(cfg, 20_000, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            dst.copy_from_slice(black_box(src));
            black_box(&mut *dst);
        }
        (t0.elapsed(), n)
    })
}

/// Single-core `memcpy` of a hot 64 KiB buffer into the successive slots of a 64 MiB ring
/// (the footprint of a 1024 x 64 KiB queue): bounded by cache/memory write bandwidth.
pub(crate) fn memcpy_ring(cfg: &Cfg) -> Stats {
    let src = vec![1u8; 65536];
    let mut ring = vec![0u8; CAPACITY * 65536];
    let mut slot = 0;
    measure(cfg, 2 * CAPACITY as u64, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            let s = slot % CAPACITY;
            ring[s * 65536..(s + 1) * 65536].copy_from_slice(black_box(&src));
            slot += 1;
        }
        black_box(&mut ring);
        (t0.elapsed(), n)
    })
}

/// The least a copying queue can cost per 64 KiB message across two cores: a producer thread
/// `memcpy`s each message into the next slot of a 1024-slot ring (the footprint of the 64 KiB
/// queue rows) and sets the slot's flag; the consumer thread waits for the flag, `memcpy`s
/// the message out and clears it. No claims, no owners, no checks beyond the stamps: what is
/// left is moving 64 KiB from one core's cache to another's, twice copied.
pub(crate) fn memcpy_handover(cfg: &Cfg) -> Stats {
    const SIZE: usize = 65536;
    /// The ring's bytes, written through raw pointers under the flag protocol below.
    struct Cells(Box<[std::cell::UnsafeCell<u8>]>);
    // SAFETY: slot `i` is written only by the producer while `flags[i]` is 0 and read only by
    // the consumer while it is 1; the Release store / Acquire load of the flag order them.
    unsafe impl Sync for Cells {}
    let cells = Cells((0..CAPACITY * SIZE).map(|_| std::cell::UnsafeCell::new(0)).collect());
    let flags: Vec<AtomicU32> = (0..CAPACITY).map(|_| AtomicU32::new(0)).collect();
    let mut slot = 0usize;
    measure(cfg, 2 * CAPACITY as u64, |n| {
        let (cells, flags, first) = (&cells, &flags, slot);
        let dt = std::thread::scope(|s| {
            let t0 = Instant::now();
            s.spawn(move || {
                pin_self(1);
                let mut src = vec![0u8; SIZE];
                for i in 0..n {
                    let k = (first + i as usize) % CAPACITY;
                    let mut fails = 0;
                    while flags[k].load(Ordering::Acquire) != 0 {
                        backoff(&mut fails);
                    }
                    src[..8].copy_from_slice(&i.to_le_bytes());
                    src[SIZE - 8..].copy_from_slice(&i.to_le_bytes());
                    // SAFETY: flag 0: the consumer is done with slot k until we set it (above).
                    let dst = unsafe { std::slice::from_raw_parts_mut(cells.0[k * SIZE].get(), SIZE) };
                    dst.copy_from_slice(black_box(&src));
                    flags[k].store(1, Ordering::Release);
                }
            });
            let mut out = vec![0u8; SIZE];
            let mut sum = 0u64;
            for i in 0..n {
                let k = (first + i as usize) % CAPACITY;
                let mut fails = 0;
                while flags[k].load(Ordering::Acquire) == 0 {
                    backoff(&mut fails);
                }
                // SAFETY: flag 1: the producer is done with slot k until we clear it.
                let src = unsafe { std::slice::from_raw_parts(cells.0[k * SIZE].get().cast_const(), SIZE) };
                out.copy_from_slice(src);
                flags[k].store(0, Ordering::Release);
                sum = sum.wrapping_add(check_bytes(black_box(&out)));
            }
            assert_eq!(sum, stamps_sum(n), "checksum");
            t0.elapsed()
        });
        slot = (first + n as usize) % CAPACITY;
        (dt, n)
    })
}

// ---------------------------------------------------------------------------------------------
// Throughput, 2 producers and 2 consumers. Each producer puts n/2 stamped messages and one
// sentinel; each consumer stops at its first sentinel (so each takes exactly one) and reports
// its count and sum. Timed from the first `RUN` to the last consumer's `DONE`.

pub(crate) fn check_2p2c(replies: &[Vec<u64>], per: u64) {
    let count: u64 = replies.iter().map(|r| r[0]).sum();
    let sum = replies.iter().fold(0u64, |s, r| s.wrapping_add(r[1]));
    assert_eq!(count, 2 * per, "message count");
    assert_eq!(sum, stamps_sum(per).wrapping_mul(2), "checksum");
}

pub(crate) fn run_2p2c(cons: &mut [Kid], prods: &mut [Kid], n: u64) -> (Duration, u64) {
    let per = (n / 2).max(1);
    let t0 = Instant::now();
    for c in cons.iter_mut() {
        c.run(0);
    }
    for p in prods.iter_mut() {
        p.run(per);
    }
    let replies: Vec<Vec<u64>> = cons.iter_mut().map(Kid::done).collect();
    let dt = t0.elapsed();
    for p in prods.iter_mut() {
        p.done();
    }
    check_2p2c(&replies, per);
    (dt, 2 * per)
}

pub(crate) fn shm_2p2c<T: Pod>(cfg: &Cfg) -> Stats {
    let size = size_of::<T>();
    let name = seg_name();
    let q = Queue::<T>::create(&name, CAPACITY).expect("create queue");
    let mut cons: Vec<Kid> = (0..2)
        .map(|_| spawn_kid("q-cons", &[name.clone(), size.to_string()], &[]))
        .collect();
    let prod_args = [name.clone(), size.to_string(), "block-sentinel".into()];
    let mut prods: Vec<Kid> = (0..2).map(|_| spawn_kid("q-prod", &prod_args, &[])).collect();
    cons.iter_mut().chain(prods.iter_mut()).for_each(Kid::ready);
    unlink(&name);
    let stats = measure(cfg, start_count(size), |n| run_2p2c(&mut cons, &mut prods, n));
    assert!(q.is_empty(), "messages left behind");
    stats
}

/// One pipe shared by two writers and two readers: messages up to PIPE_BUF bytes are written
/// atomically, so each `read_exact` of one message gets one whole message.
pub(crate) fn pipe_2p2c(cfg: &Cfg, size: usize) -> Stats {
    assert!(size <= PIPE_BUF);
    let (r, w) = pipe();
    let (r, w) = (high(&r), high(&w));
    let mut cons: Vec<Kid> = (0..2)
        .map(|_| spawn_kid("stream-cons", &[size.to_string()], &[r.as_raw_fd()]))
        .collect();
    let prod_args = [size.to_string(), "1".into(), "1".into()];
    let mut prods: Vec<Kid> = (0..2)
        .map(|_| spawn_kid("stream-prod", &prod_args, &[w.as_raw_fd()]))
        .collect();
    drop((r, w));
    cons.iter_mut().chain(prods.iter_mut()).for_each(Kid::ready);
    measure(cfg, start_count(size), |n| run_2p2c(&mut cons, &mut prods, n))
}

pub(crate) fn crossbeam_2p2c<T: Pod + Send>(cfg: &Cfg) -> Stats {
    let q = ArrayQueue::<T>::new(CAPACITY);
    measure(cfg, start_count(size_of::<T>()), |n| {
        let per = (n / 2).max(1);
        let q = &q;
        let t0 = Instant::now();
        let replies: Vec<Vec<u64>> = std::thread::scope(|s| {
            let cons: Vec<_> = (1..=2)
                .map(|slot| {
                    big_stack()
                        .spawn_scoped(s, move || {
                            pin_self(slot);
                            let (mut count, mut sum) = (0u64, 0u64);
                            loop {
                                let v = check(&pop_spin(q));
                                if v == SENTINEL {
                                    return vec![count, sum];
                                }
                                count += 1;
                                sum = sum.wrapping_add(v);
                            }
                        })
                        .expect("spawn")
                })
                .collect();
            for slot in 3..=4 {
                big_stack()
                    .spawn_scoped(s, move || {
                        pin_self(slot);
                        let mut template = T::zeroed();
                        for i in 0..per {
                            push_spin(q, stamped(&mut template, i));
                        }
                        push_spin(q, stamped(&mut template, SENTINEL));
                    })
                    .expect("spawn");
            }
            cons.into_iter().map(|c| c.join().expect("consumer")).collect()
        });
        let dt = t0.elapsed();
        check_2p2c(&replies, per);
        (dt, 2 * per)
    })
}
