//! Bare rings and a bare lock in a shared memfd: the floors a ring design and a lock can be
//! compared with.

use super::*;

// ---------------------------------------------------------------------------------------------
// Bare rings: two lock-free ring algorithms in a shared memfd between two processes, with none
// of shmproc's crash handling, so that the table shows in the same run what a ring costs across
// processes before any of it: the algorithm of crossbeam's `ArrayQueue` (its claims are CASes
// on `head` and `tail`, its slot words only loaded and stored), with its own 16-byte slots
// (four per cache line) and with shmproc's 64-byte ones; and the simplest ring there is, one
// producer and one consumer that only load and store slot words (no read-modify-write at all),
// whose round trip is the floor of any design that passes a message through two rings.

/// Bytes before a bare ring's slots: `head` and `tail`, each on its own cache line.
pub(crate) const BARE_HEADER: usize = 128;

/// Bytes of one bare ring of CAPACITY slots of `stride` bytes.
pub(crate) fn bare_ring_bytes(stride: usize) -> usize {
    BARE_HEADER + CAPACITY * stride
}

/// Ring `k` of a region of rings of `stride`-byte slots: `head`, `tail`, then each slot's
/// stamp word and value word. All zero is not a valid start: [`BareRing::init`] sets the
/// stamps.
#[derive(Clone, Copy)]
pub(crate) struct BareRing<'a> {
    pub(crate) region: &'a Region,
    pub(crate) base: usize,
    pub(crate) stride: usize,
}

impl<'a> BareRing<'a> {
    pub(crate) fn new(region: &'a Region, k: usize, stride: usize) -> BareRing<'a> {
        assert!(stride >= 16 && stride.is_multiple_of(8));
        BareRing {
            region,
            base: k * bare_ring_bytes(stride),
            stride,
        }
    }
    pub(crate) fn head(&self) -> &AtomicU64 {
        self.region.word(self.base)
    }
    pub(crate) fn tail(&self) -> &AtomicU64 {
        self.region.word(self.base + 64)
    }
    pub(crate) fn stamp(&self, i: usize) -> &AtomicU64 {
        self.region.word(self.base + BARE_HEADER + i * self.stride)
    }
    pub(crate) fn value(&self, i: usize) -> &AtomicU64 {
        self.region.word(self.base + BARE_HEADER + i * self.stride + 8)
    }
    /// Stamp `i` in slot `i` (free for position `i`), both indices 0: the start of both
    /// algorithms. Run before the other process opens the region.
    pub(crate) fn init(&self) {
        for i in 0..CAPACITY {
            self.stamp(i).store(i as u64, Ordering::Relaxed);
        }
        self.head().store(0, Ordering::Relaxed);
        self.tail().store(0, Ordering::Relaxed);
    }

    /// crossbeam's `one_lap`: the smallest power of two above the capacity.
    pub(crate) fn one_lap() -> u64 {
        (CAPACITY as u64 + 1).next_power_of_two()
    }

    /// crossbeam's position arithmetic: the slot index of position `pos` (lap in the high
    /// bits, index in the low ones) and the position after it (the next lap's index 0 after
    /// the last slot).
    pub(crate) fn locate(pos: u64) -> (usize, u64) {
        let one_lap = Self::one_lap();
        let index = (pos & (one_lap - 1)) as usize;
        let next = if index + 1 < CAPACITY {
            pos + 1
        } else {
            (pos & !(one_lap - 1)).wrapping_add(one_lap)
        };
        (index, next)
    }

    /// `ArrayQueue::push` (crossbeam-queue 0.3), spinning: claim position `tail` by CAS once
    /// its slot's stamp says it is free, then store the value and the stamp `tail + 1`.
    pub(crate) fn cb_push(&self, v: u64) {
        let mut fails = 0;
        let mut tail = self.tail().load(Ordering::Relaxed);
        loop {
            let (index, next) = Self::locate(tail);
            let stamp = self.stamp(index).load(Ordering::Acquire);
            if tail == stamp {
                match self
                    .tail()
                    .compare_exchange_weak(tail, next, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        self.value(index).store(v, Ordering::Relaxed);
                        self.stamp(index).store(tail + 1, Ordering::Release);
                        return;
                    }
                    Err(t) => tail = t,
                }
            } else {
                // Full (the slot still holds the previous lap's value) or a push in progress.
                backoff(&mut fails);
                tail = self.tail().load(Ordering::Relaxed);
            }
        }
    }

    /// `ArrayQueue::pop`, spinning: claim position `head` by CAS once its slot's stamp says
    /// it is full, then load the value and store the stamp of the next lap.
    pub(crate) fn cb_pop(&self) -> u64 {
        let mut fails = 0;
        let mut head = self.head().load(Ordering::Relaxed);
        loop {
            let (index, next) = Self::locate(head);
            let stamp = self.stamp(index).load(Ordering::Acquire);
            if head + 1 == stamp {
                match self
                    .head()
                    .compare_exchange_weak(head, next, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        let v = self.value(index).load(Ordering::Relaxed);
                        self.stamp(index)
                            .store(head.wrapping_add(Self::one_lap()), Ordering::Release);
                        return v;
                    }
                    Err(h) => head = h,
                }
            } else {
                // Empty, or a pop in progress.
                backoff(&mut fails);
                head = self.head().load(Ordering::Relaxed);
            }
        }
    }

    /// Single producer: position `*at` is free when its slot's stamp is `*at`; store the value,
    /// then the stamp `*at + 1`. No read-modify-write, and no shared index.
    pub(crate) fn spsc_push(&self, at: &mut u64, v: u64) {
        let i = (*at % CAPACITY as u64) as usize;
        let mut fails = 0;
        while self.stamp(i).load(Ordering::Acquire) != *at {
            backoff(&mut fails);
        }
        self.value(i).store(v, Ordering::Relaxed);
        self.stamp(i).store(*at + 1, Ordering::Release);
        *at += 1;
    }

    /// Single consumer: position `*at` is full when its stamp is `*at + 1`; load the value,
    /// then free the slot for position `*at + CAPACITY`.
    pub(crate) fn spsc_pop(&self, at: &mut u64) -> u64 {
        let i = (*at % CAPACITY as u64) as usize;
        let mut fails = 0;
        while self.stamp(i).load(Ordering::Acquire) != *at + 1 {
            backoff(&mut fails);
        }
        let v = self.value(i).load(Ordering::Relaxed);
        self.stamp(i).store(*at + CAPACITY as u64, Ordering::Release);
        *at += 1;
        v
    }
}

/// 1P1C `u64` through crossbeam's algorithm in a bare ring of `stride`-byte slots: a child
/// process pushes, the parent pops.
pub(crate) fn bare_1p1c(cfg: &Cfg, stride: usize) -> Stats {
    let len = bare_ring_bytes(stride);
    let fd = memfd_of(len);
    let region = Region::map(&fd, len);
    let ring = BareRing::new(&region, 0, stride);
    ring.init();
    let fd = high(&fd);
    let mut kid = spawn_kid("bare-prod", &[stride.to_string()], &[fd.as_raw_fd()]);
    drop(fd);
    kid.ready();
    measure(cfg, start_count(8), |n| {
        kid.run(n);
        let t0 = Instant::now();
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(ring.cb_pop());
        }
        let dt = t0.elapsed();
        kid.done();
        assert_eq!(sum, stamps_sum(n), "checksum");
        (dt, n)
    })
}

pub(crate) fn child_bare_prod(stride: usize) -> ChildResult {
    let len = bare_ring_bytes(stride);
    let region = Region::map(&inherited(3), len);
    let ring = BareRing::new(&region, 0, stride);
    serve(|n| {
        for i in 0..n {
            ring.cb_push(i);
        }
        String::new()
    })
}

/// The round trip of the spinning rows through two single-producer single-consumer bare
/// rings of 64-byte slots: what passing a message through two rings costs at the least.
pub(crate) fn lat_bare(cfg: &Cfg) -> Stats {
    let len = 2 * bare_ring_bytes(64);
    let fd = memfd_of(len);
    let region = Region::map(&fd, len);
    let (ping, pong) = (BareRing::new(&region, 0, 64), BareRing::new(&region, 1, 64));
    ping.init();
    pong.init();
    let fd = high(&fd);
    let mut kid = spawn_kid("lat-bare", &[], &[fd.as_raw_fd()]);
    drop(fd);
    kid.ready();
    // Ring positions carry over from one run to the next, as the child's do.
    let (mut put_at, mut get_at) = (0, 0);
    measure(cfg, LAT_START, |n| {
        kid.run(n);
        let t0 = Instant::now();
        for i in 0..n {
            ping.spsc_push(&mut put_at, i);
            assert_eq!(pong.spsc_pop(&mut get_at), i);
        }
        let dt = t0.elapsed();
        kid.done();
        (dt, n)
    })
}

pub(crate) fn child_lat_bare() -> ChildResult {
    let len = 2 * bare_ring_bytes(64);
    let region = Region::map(&inherited(3), len);
    let (ping, pong) = (BareRing::new(&region, 0, 64), BareRing::new(&region, 1, 64));
    let (mut get_at, mut put_at) = (0, 0);
    serve(|n| {
        for _ in 0..n {
            let v = ping.spsc_pop(&mut get_at);
            pong.spsc_push(&mut put_at, v);
        }
        String::new()
    })
}

// ---------------------------------------------------------------------------------------------
// A bare lock: the futex mutex of Drepper's "Futexes Are Tricky" (2011, "mutex3") on a 32-bit
// word in a shared mapping. 0 free, 1 held, 2 held with possible sleepers. Taking a free lock
// is one CAS, releasing an uncontended one one atomic decrement, with none of shmproc's owner
// token or death detection: the floor of the uncontended lock rows.

pub(crate) struct BareLock<'a>(pub(crate) &'a AtomicU32);

impl BareLock<'_> {
    pub(crate) fn lock(&self) {
        let w = self.0;
        let mut c = match w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return,
            Err(c) => c,
        };
        // Contended: mark the word "sleepers" and sleep until a release finds it free.
        if c != 2 {
            c = w.swap(2, Ordering::Acquire);
        }
        while c != 0 {
            futex_wait(w, 2);
            c = w.swap(2, Ordering::Acquire);
        }
    }

    pub(crate) fn unlock(&self) {
        if self.0.fetch_sub(1, Ordering::Release) != 1 {
            self.0.store(0, Ordering::Release);
            futex_wake(self.0);
        }
    }
}
