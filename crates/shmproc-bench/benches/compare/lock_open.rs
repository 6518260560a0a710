//! Lock rows (lock + increment + unlock) and open-by-name rows.

use super::*;

// ---------------------------------------------------------------------------------------------
// Locks: lock + increment + unlock.

pub(crate) const LOCK_START: u64 = 100_000;

pub(crate) fn value_uncontended(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let v = Value::<u64>::create(&name, 0).expect("create value");
    let mut total = 0;
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            *v.lock().expect("lock") += 1;
        }
        let dt = t0.elapsed();
        total += n;
        assert_eq!(v.load().expect("load"), total);
        (dt, n)
    })
}

/// A `Queue<u64>` put then got back by the same thread, with no other process: the
/// instructions of one put and one get, without any cache-line transfer (the figure the 1P1C
/// rows' "at four messages per line, the busier side's instructions" reasoning rests on).
pub(crate) fn queue_solo(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let q = Queue::<u64>::create(&name, CAPACITY).expect("create queue");
    unlink(&name);
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        let mut sum = 0u64;
        for i in 0..n {
            q.put(black_box(i)).expect("put");
            sum = sum.wrapping_add(q.get().expect("get"));
        }
        let dt = t0.elapsed();
        assert_eq!(sum, (0..n).fold(0u64, u64::wrapping_add), "checksum");
        (dt, n)
    })
}

/// [`queue_solo`] with crossbeam's `ArrayQueue`.
pub(crate) fn crossbeam_solo(cfg: &Cfg) -> Stats {
    let q = ArrayQueue::<u64>::new(CAPACITY);
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        let mut sum = 0u64;
        for i in 0..n {
            black_box(&q).push(black_box(i)).expect("push");
            sum = sum.wrapping_add(q.pop().expect("pop"));
        }
        let dt = t0.elapsed();
        assert_eq!(sum, (0..n).fold(0u64, u64::wrapping_add), "checksum");
        (dt, n)
    })
}

/// `fetch_add` on element 0 of a one-element `AtomicArray<AtomicU64>`, one process.
pub(crate) fn atomic_array_add(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let a = shmproc::AtomicArray::<AtomicU64>::create(&name, 1).expect("create atomic array");
    // The elements as a slice of atomics, as a program holds them; indexed on every add.
    let elems = a.as_slice();
    let mut total = 0;
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(elems)[0].fetch_add(1, Ordering::Relaxed);
        }
        let dt = t0.elapsed();
        total += n;
        assert_eq!(a[0].load(Ordering::Relaxed), total);
        (dt, n)
    })
}

/// The same `fetch_add` on a bare `AtomicU64` in a shared memfd mapping (the floor).
pub(crate) fn bare_atomic_add(cfg: &Cfg) -> Stats {
    let fd = memfd_of(4096);
    let region = Region::map(&fd, 4096);
    let word = region.word(0);
    let mut total = 0;
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(word).fetch_add(1, Ordering::Relaxed);
        }
        let dt = t0.elapsed();
        total += n;
        assert_eq!(word.load(Ordering::Relaxed), total);
        (dt, n)
    })
}

/// `shmproc::Lock` (the lock word alone) taken and released around a local increment.
pub(crate) fn lock_uncontended(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let l = shmproc::Lock::create(&name).expect("create lock");
    let mut count = 0u64;
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            let g = black_box(&l).lock().expect("lock");
            count += 1;
            drop(g);
        }
        (t0.elapsed(), n)
    })
}

/// `shmproc::RLock` taken and released (outermost guard) around a local increment: `Lock`'s
/// word plus the handle's owner and depth bookkeeping.
pub(crate) fn rlock_uncontended(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let l = shmproc::RLock::create(&name).expect("create rlock");
    let mut count = 0u64;
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            let g = black_box(&l).lock().expect("lock");
            count += 1;
            drop(g);
        }
        (t0.elapsed(), n)
    })
}

/// A permit of a `shmproc::Semaphore` of 1 taken (`acquire`) and given back (guard drop)
/// around a local increment: the semaphore as a lock, uncontended.
pub(crate) fn semaphore_uncontended(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let s = shmproc::Semaphore::create(&name, 1).expect("create semaphore");
    let mut count = 0u64;
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            let g = black_box(&s).acquire();
            count += 1;
            drop(g);
        }
        let dt = t0.elapsed();
        assert_eq!(s.available(), 1, "a permit was not given back");
        (dt, n)
    })
}

/// [`BareLock`] taken and released around a local increment: the floor of a lock word in
/// shared memory (one CAS to take, one swap to release), with no owner, no death detection.
pub(crate) fn bare_lock_uncontended(cfg: &Cfg) -> Stats {
    let fd = memfd_page();
    let page = Page::map(&fd);
    let lock = BareLock(page.futex_word(0));
    let mut count = 0u64;
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(&lock).lock();
            count += 1;
            black_box(&lock).unlock();
        }
        (t0.elapsed(), n)
    })
}

pub(crate) fn mutex_uncontended(cfg: &Cfg) -> Stats {
    let m = Mutex::new(0u64);
    measure(cfg, LOCK_START, |n| {
        let t0 = Instant::now();
        for _ in 0..n {
            *black_box(&m).lock().expect("lock") += 1;
        }
        (t0.elapsed(), n)
    })
}

pub(crate) fn value_contended(cfg: &Cfg) -> Stats {
    let name = seg_name();
    let v = Value::<u64>::create(&name, 0).expect("create value");
    let mut kids: Vec<Kid> = (0..2)
        .map(|_| spawn_kid("val-inc", std::slice::from_ref(&name), &[]))
        .collect();
    kids.iter_mut().for_each(Kid::ready);
    unlink(&name);
    let mut total = 0;
    measure(cfg, LOCK_START / 5, |n| {
        let per = (n / 2).max(1);
        let t0 = Instant::now();
        kids.iter_mut().for_each(|k| k.run(per));
        kids.iter_mut().for_each(|k| {
            k.done();
        });
        let dt = t0.elapsed();
        total += 2 * per;
        assert_eq!(v.load().expect("load"), total, "lost increments");
        (dt, 2 * per)
    })
}

pub(crate) fn mutex_contended(cfg: &Cfg) -> Stats {
    let m = Mutex::new(0u64);
    let mut total = 0;
    measure(cfg, LOCK_START / 5, |n| {
        let per = (n / 2).max(1);
        let m = &m;
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for slot in 1..=2 {
                s.spawn(move || {
                    pin_self(slot);
                    for _ in 0..per {
                        *black_box(m).lock().expect("lock") += 1;
                    }
                });
            }
        });
        let dt = t0.elapsed();
        total += 2 * per;
        assert_eq!(*m.lock().expect("lock"), total, "lost increments");
        (dt, 2 * per)
    })
}

// ---------------------------------------------------------------------------------------------
// Opening by name: create + open (a second handle, as another process would) + first access.
// Timed per iteration up to the first access; tear-down (drop, unlink) is outside the timing.

pub(crate) const OPEN_START: u64 = 200;

pub(crate) fn open_value(cfg: &Cfg) -> Stats {
    let name = seg_name();
    measure(cfg, OPEN_START, |n| {
        let mut dt = Duration::ZERO;
        for _ in 0..n {
            let t0 = Instant::now();
            let a = Value::<u64>::create(&name, 7).expect("create");
            let b = Value::<u64>::open(&name).expect("open");
            let v = b.load().expect("load");
            dt += t0.elapsed();
            assert_eq!(v, 7);
            drop((b, a));
        }
        (dt, n)
    })
}

pub(crate) fn open_queue(cfg: &Cfg) -> Stats {
    let name = seg_name();
    measure(cfg, OPEN_START, |n| {
        let mut dt = Duration::ZERO;
        for _ in 0..n {
            let t0 = Instant::now();
            let a = Queue::<u64>::create(&name, CAPACITY).expect("create");
            let b = Queue::<u64>::open(&name).expect("open");
            let r = b.try_get();
            dt += t0.elapsed();
            assert_eq!(r, Err(GetError::Empty));
            drop((b, a));
        }
        (dt, n)
    })
}

/// Unlinks a POSIX shm name when dropped.
pub(crate) struct ShmName(CString);

impl Drop for ShmName {
    fn drop(&mut self) {
        // SAFETY: a NUL-terminated name we own; failure (already gone) is harmless.
        unsafe { libc::shm_unlink(self.0.as_ptr()) };
    }
}

pub(crate) fn shm_open(name: &ShmName, flags: libc::c_int) -> OwnedFd {
    // SAFETY: a NUL-terminated name; the result is checked by `owned`.
    owned(
        unsafe { libc::shm_open(name.0.as_ptr(), flags | libc::O_RDWR | libc::O_CLOEXEC, 0o600) },
        "shm_open",
    )
}

/// The same steps with bare libc: shm_open(O_EXCL) + ftruncate + mmap + write, then
/// shm_open + mmap + read.
pub(crate) fn open_raw(cfg: &Cfg) -> Stats {
    let name = CString::new(format!("/cmp-raw-{}", std::process::id())).expect("name");
    measure(cfg, OPEN_START, |n| {
        let mut dt = Duration::ZERO;
        for _ in 0..n {
            let t0 = Instant::now();
            let guard = ShmName(name.clone());
            let fd_a = shm_open(&guard, libc::O_CREAT | libc::O_EXCL);
            // SAFETY: resizing a descriptor we own.
            let r = unsafe { libc::ftruncate(fd_a.as_raw_fd(), PAGE as libc::off_t) };
            assert_eq!(r, 0, "ftruncate: {}", io::Error::last_os_error());
            let a = Page::map(&fd_a);
            a.word().store(7, Ordering::Release);
            let fd_b = shm_open(&guard, 0);
            let b = Page::map(&fd_b);
            let v = b.word().load(Ordering::Acquire);
            dt += t0.elapsed();
            assert_eq!(v, 7);
            drop((b, fd_b, a, fd_a, guard));
        }
        (dt, n)
    })
}
