//! Round-trip rows: shmproc queues against pipes, sockets, crossbeam, a shared atomic word and a
//! bare futex; and the wake-up rows: shmproc's `Event` and `Barrier` against the bare futex.

use super::*;

// ---------------------------------------------------------------------------------------------
// Round trips: the parent sends i, the child sends it back, K times; ns per round trip.

pub(crate) const LAT_START: u64 = 2_000;

pub(crate) fn lat_shm(cfg: &Cfg, spin: bool) -> Stats {
    let (na, nb) = (seg_name(), seg_name());
    let qa = Queue::<u64>::create(&na, CAPACITY).expect("create queue");
    let qb = Queue::<u64>::create(&nb, CAPACITY).expect("create queue");
    let mode = if spin { "spin" } else { "block" };
    let mut kid = spawn_kid("lat-q", &[na.clone(), nb.clone(), mode.into()], &[]);
    kid.ready();
    unlink(&na);
    unlink(&nb);
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        for i in 0..n {
            let back = if spin {
                qa.try_put(i).expect("try_put");
                let mut fails = 0;
                loop {
                    match qb.try_get() {
                        Ok(v) => break v,
                        Err(GetError::Empty) => backoff(&mut fails),
                        Err(e) => panic!("try_get: {e}"),
                    }
                }
            } else {
                qa.put(i).expect("put");
                qb.get().expect("get")
            };
            assert_eq!(back, i);
        }
        let dt = t0.elapsed();
        kid.done();
        (dt, n)
    })
}

/// Two crossbeam queues between two threads of this process, both sides spinning: what the
/// same round trip costs through an in-process queue.
pub(crate) fn lat_crossbeam(cfg: &Cfg) -> Stats {
    let (qa, qb) = (ArrayQueue::<u64>::new(CAPACITY), ArrayQueue::<u64>::new(CAPACITY));
    measure(cfg, LAT_START, |n| {
        let (qa, qb) = (&qa, &qb);
        std::thread::scope(|s| {
            s.spawn(move || {
                pin_self(1);
                for _ in 0..n {
                    push_spin(qb, pop_spin(qa));
                }
            });
            let t0 = Instant::now();
            for i in 0..n {
                push_spin(qa, i);
                assert_eq!(pop_spin(qb), i);
            }
            (t0.elapsed(), n)
        })
    })
}

/// The floor: one atomic word in a shared page, odd values from the parent, even ones back.
pub(crate) fn lat_atomic(cfg: &Cfg) -> Stats {
    let fd = memfd_page();
    let page = Page::map(&fd);
    let fd = high(&fd);
    let mut kid = spawn_kid("lat-atomic", &[], &[fd.as_raw_fd()]);
    drop(fd);
    kid.ready();
    let w = page.word();
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        for _ in 0..n {
            let v = w.load(Ordering::Acquire);
            w.store(v + 1, Ordering::Release);
            let mut fails = 0;
            while w.load(Ordering::Acquire) != v + 2 {
                backoff(&mut fails);
            }
        }
        let dt = t0.elapsed();
        kid.done();
        (dt, n)
    })
}

/// The blocking floor: two futex words in a shared memfd page and no queue. The parent bumps
/// `ping` and wakes the child, which sleeps on `ping` (`FUTEX_WAIT`, no spinning), copies it
/// to `pong` and wakes the parent, which sleeps on `pong` meanwhile. Each hop is one store,
/// one `FUTEX_WAKE` and one `FUTEX_WAIT`: what a blocking round trip costs at the least.
pub(crate) fn lat_futex(cfg: &Cfg) -> Stats {
    let fd = memfd_page();
    let page = Page::map(&fd);
    let fd = high(&fd);
    let mut kid = spawn_kid("lat-futex", &[], &[fd.as_raw_fd()]);
    drop(fd);
    kid.ready();
    let (ping, pong) = (page.futex_word(0), page.futex_word(1));
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        for _ in 0..n {
            let v = ping.load(Ordering::Relaxed).wrapping_add(1);
            ping.store(v, Ordering::Release);
            futex_wake(ping);
            futex_wait_for(pong, v);
        }
        let dt = t0.elapsed();
        kid.done();
        (dt, n)
    })
}

/// Two `shmproc::Event`s as a ping-pong: the parent sets `ping` and waits on `pong`, the child
/// waits on `ping`, clears it and sets `pong`, and the parent clears `pong`. Each hop is one
/// `set` (a CAS and, with a sleeper, a `FUTEX_WAKE`) and one `wait` (a `FUTEX_WAIT`, no
/// spinning): the blocking round trip of the bare futex row, through the public type.
pub(crate) fn lat_event(cfg: &Cfg) -> Stats {
    let (na, nb) = (seg_name(), seg_name());
    let ping = shmproc::Event::create(&na).expect("create event");
    let pong = shmproc::Event::create(&nb).expect("create event");
    let mut kid = spawn_kid("lat-event", &[na.clone(), nb.clone()], &[]);
    kid.ready();
    unlink(&na);
    unlink(&nb);
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        for _ in 0..n {
            ping.set();
            pong.wait();
            pong.clear();
        }
        let dt = t0.elapsed();
        kid.done();
        assert!(!ping.is_set() && !pong.is_set(), "events left set");
        (dt, n)
    })
}

/// A `shmproc::Barrier` of 2 parties, the parent and a child, each calling `wait` once per
/// op: an op ends when both arrived, so each op is one wake-up (the last to arrive wakes the
/// other), where a round trip has two.
pub(crate) fn lat_barrier(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let barrier = shmproc::Barrier::create(&name, 2).expect("create barrier");
    let mut kid = spawn_kid("lat-barrier", std::slice::from_ref(&name), &[]);
    kid.ready();
    unlink(&name);
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        let mut leaders = 0u64;
        for _ in 0..n {
            leaders += u64::from(barrier.wait().expect("barrier wait").is_leader());
        }
        let dt = t0.elapsed();
        let theirs = kid.done();
        assert_eq!(leaders + theirs.first().copied().unwrap_or(0), n, "one leader per op");
        (dt, n)
    })
}

pub(crate) fn lat_stream(cfg: &Cfg, link: Link) -> Stats {
    // (parent reads, parent writes, child reads, child writes)
    let (pr, pw, cr, cw) = match link {
        Link::Pipe => {
            let (down_r, down_w) = pipe();
            let (up_r, up_w) = pipe();
            (up_r, down_w, down_r, up_w)
        }
        Link::Socket => {
            let (a, b) = socket_pair();
            (a.try_clone().expect("dup"), a, b.try_clone().expect("dup"), b)
        }
    };
    let (cr, cw) = (high(&cr), high(&cw));
    let mut kid = spawn_kid("lat-stream", &[], &[cr.as_raw_fd(), cw.as_raw_fd()]);
    drop((cr, cw));
    let (mut r, mut w) = (File::from(pr), File::from(pw));
    kid.ready();
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let mut buf = [0u8; 8];
        let t0 = Instant::now();
        for i in 0..n {
            w.write_all(&i.to_le_bytes()).expect("write");
            r.read_exact(&mut buf).expect("read");
            assert_eq!(u64::from_le_bytes(buf), i);
        }
        let dt = t0.elapsed();
        kid.done();
        (dt, n)
    })
}
