use super::heap::HeapRing;
use super::*;
use crate::doubles::Oracle;
use crate::primitive::AtomicU32;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

const SC: Ordering = Ordering::SeqCst;

/// Futex semantics with no re-check slice: `wait` blocks (under a lock, so no wake can slip
/// between its check and its sleep) until a `wake_all` finds the word changed. A lost
/// wake-up leaves a thread blocked for good, which loom reports as a deadlock.
struct Futex {
    lock: Mutex<()>,
    cv: Condvar,
}

impl Wait for Futex {
    fn wait(&self, word: &AtomicU32, expected: u32, _deadline: Option<Instant>) {
        let mut guard = self.lock.lock().unwrap();
        while word.load(SC) == expected {
            guard = self.cv.wait(guard).unwrap();
        }
    }
    fn wake_all(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap();
        self.cv.notify_all();
    }
}

struct World {
    mem: HeapRing<u64>,
    dead: AtomicU64,
    hands: [AtomicU64; 3],
    flag: AtomicU32,
    futex: Futex,
}

fn world(capacity: usize) -> Arc<World> {
    let w = Arc::new(World {
        mem: HeapRing::new(capacity),
        dead: AtomicU64::new(0),
        hands: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        flag: AtomicU32::new(0),
        futex: Futex {
            lock: Mutex::new(()),
            cv: Condvar::new(),
        },
    });
    for i in 1..=3 {
        w.mem.records[i as usize - 1].bind(Owner::new(i, 1));
    }
    w.mem.control.records_used.0.store(3, SC);
    w
}

impl World {
    fn who(&self, index: u32) -> Oracle<'_> {
        Oracle {
            me: Owner::new(index, 1),
            dead: &self.dead,
        }
    }

    /// Participant `index`'s (1 to 3) claim record, record `index - 1` (bound before the
    /// threads start, so that scans read three records: each load is a branch for loom).
    fn mine(&self, index: u32) -> &ClaimRecord {
        &self.mem.records[index as usize - 1]
    }
}

/// Explores `f` with at most `bound` preemptions per execution (a few minutes in all on 2
/// cores, see `.ci/loom.sh`); `LOOM_MAX_PREEMPTIONS`, read by `Builder::new`, overrides it
/// for a deeper run.
fn check(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(f);
}

#[test]
fn two_producers_one_consumer() {
    check(3, || {
        let w = world(1);
        let producers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let w = w.clone();
                thread::spawn(move || {
                    w.mem
                        .ring()
                        .put(v, None, w.mine(v as u32), &w.who(v as u32), &w.futex)
                        .unwrap()
                })
            })
            .collect();
        let ring = w.mem.ring();
        let me = w.who(3);
        let a = ring.get(None, w.mine(3), &me, &w.futex).unwrap();
        let b = ring.get(None, w.mine(3), &me, &w.futex).unwrap();
        assert_eq!(a + b, 3);
        assert_ne!(a, b);
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(ring.len(&me), 0);
    });
}

#[test]
fn one_producer_two_consumers() {
    check(3, || {
        let w = world(1);
        let consumers: Vec<_> = (0..2)
            .map(|c| {
                let w = w.clone();
                thread::spawn(move || {
                    let me = w.who(2 + c);
                    w.mem.ring().get(None, w.mine(2 + c), &me, &w.futex).unwrap()
                })
            })
            .collect();
        let ring = w.mem.ring();
        let me = w.who(1);
        ring.put(1, None, w.mine(1), &me, &w.futex).unwrap();
        ring.put(2, None, w.mine(1), &me, &w.futex).unwrap();
        let got: Vec<u64> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        assert!(got == [1, 2] || got == [2, 1], "{got:?}");
        assert_eq!(ring.len(&me), 0);
    });
}

/// The producer is reported dead while it is in fact still running (liveness misjudged,
/// as only a peer scribbling on the participant table can cause): a get may step over
/// its position while it writes, and the publish is a guarded store. What must hold even
/// then: no panic, no data race on the payload cell (loom checks every access), every
/// call returns, and nothing but the one item is ever delivered, at most once.
#[test]
fn publish_races_step_over() {
    check(3, || {
        let w = world(1);
        w.dead.store(1 << 1, SC);
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.mem.ring().try_put(7, w.mine(1), &w.who(1), &w.futex))
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let (ring, me) = (w.mem.ring(), w.who(2));
                [
                    ring.try_get(w.mine(2), &me, &w.futex),
                    ring.try_get(w.mine(2), &me, &w.futex),
                ]
            })
        };
        let put = producer.join().unwrap();
        let mut delivered: Vec<u64> = consumer.join().unwrap().into_iter().filter_map(Result::ok).collect();
        let (ring, me) = (w.mem.ring(), w.who(3));
        delivered.extend(ring.try_get(w.mine(3), &me, &w.futex).ok());
        assert!(matches!(put, Ok(()) | Err(PutFail::Lost)), "{put:?}");
        assert!(delivered.iter().all(|&x| x == 7), "{delivered:?}");
        assert!(delivered.len() <= 1, "{delivered:?}");
        if put.is_err() {
            assert_eq!(delivered, [], "a Lost item is not delivered");
        }
        let _ = ring.try_put(8, w.mine(3), &me, &w.futex);
        let _ = ring.try_get(w.mine(3), &me, &w.futex);
    });
}

/// A put that returns Ok is delivered; one that fails Closed is not; the consumer's
/// Closed comes only after the delivered item, and len() ends at 0.
#[test]
fn close_races_put() {
    check(3, || {
        let w = world(1);
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.mem.ring().put(1, None, w.mine(1), &w.who(1), &w.futex))
        };
        let closer = {
            let w = w.clone();
            thread::spawn(move || w.mem.ring().close(&w.futex))
        };
        let (ring, me) = (w.mem.ring(), w.who(2));
        let first = ring.get(None, w.mine(2), &me, &w.futex);
        let put = producer.join().unwrap();
        closer.join().unwrap();
        match put {
            Ok(()) => {
                assert_eq!(first, Ok(1));
                assert_eq!(ring.get(None, w.mine(2), &me, &w.futex), Err(GetFail::Closed));
            }
            Err(PutFail::Closed) => assert_eq!(first, Err(GetFail::Closed)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(ring.len(&me), 0);
    });
}

/// join returns only after the consumer's task_done, which follows its processing, and
/// the joiner is woken by it.
#[test]
fn task_done_wakes_join() {
    check(3, || {
        let w = world(1);
        let (ring, me) = (w.mem.ring(), w.who(1));
        ring.put(5, None, w.mine(1), &me, &w.futex).unwrap();
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.mem.ring();
                assert_eq!(ring.get(None, w.mine(2), &w.who(2), &w.futex), Ok(5));
                w.flag.store(1, Ordering::Relaxed); // "processed"
                ring.task_done(&w.hands[0], Owner::new(2, 1), &w.futex).unwrap();
            })
        };
        let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
            visit(Owner::new(2, 1), w.hands[0].load(SC));
        };
        ring.join(None, &me, &participants, &w.futex).unwrap();
        assert_eq!(
            w.flag.load(Ordering::Relaxed),
            1,
            "join returned before the work was done"
        );
        consumer.join().unwrap();
        assert_eq!(
            ring.task_done(&w.hands[0], Owner::new(2, 1), &w.futex),
            Err(TaskDoneError)
        );
    });
}
