//! The queue's conformance tests: FIFO order, sizes, full and empty, close, timeouts,
//! `task_done`/`join`, dead producers and consumers, threads.

use crate::{Backend, LONG, ms};
use shmproc::testing::{Handle, Stall};
use shmproc::{GetError, PutError, TaskError};
use std::time::Duration;

pub(crate) fn queue_is_fifo<B: Backend>() {
    let q = B::queue::<u64>(7);
    assert_eq!(q.capacity(), 7);
    let peer = q.peer().unwrap();
    assert_eq!(peer.capacity(), 7);
    for i in 0..7 {
        q.put(i).unwrap();
    }
    for i in 0..7 {
        assert_eq!(peer.get(), Ok(i));
    }
}

pub(crate) fn queue_carries_items_of_odd_size_and_alignment<B: Backend>() {
    let q = B::queue::<[u16; 3]>(3);
    let bytes = B::queue::<u8>(2);
    for round in 0..5u16 {
        q.put([round, round + 1, u16::MAX - round]).unwrap();
        bytes.put(round as u8).unwrap();
        assert_eq!(q.get(), Ok([round, round + 1, u16::MAX - round]));
        assert_eq!(bytes.get(), Ok(round as u8));
    }
}

/// Items of 1 KiB: copied in and out in one piece (`rep movsb` on x86-64 outside Miri),
/// straight into the returned value, and handed back whole when the queue is full.
pub(crate) fn queue_carries_large_items_whole<B: Backend>() {
    type Big = [u64; 128];
    let item = |k: u64| -> Big { core::array::from_fn(|i| (i as u64).wrapping_mul(0x9E37_79B9) ^ k) };
    let q = B::queue::<Big>(2);
    for k in 0..3 {
        q.put(item(k)).unwrap();
        q.try_put(item(k + 100)).unwrap();
        assert_eq!(q.try_put(item(k + 200)), Err(PutError::Full(item(k + 200))));
        assert_eq!(q.get(), Ok(item(k)));
        assert_eq!(q.try_get(), Ok(item(k + 100)));
        assert_eq!(q.try_get(), Err(GetError::Empty));
    }
}

/// The by-reference calls: the same items, states and errors as by value, with `()` in the
/// put errors (the caller kept the item).
pub(crate) fn queue_by_reference_puts_and_gets<B: Backend>() {
    type Big = [u64; 128];
    let item = |k: u64| -> Big { core::array::from_fn(|i| (i as u64).wrapping_mul(0x9E37_79B9) ^ k) };
    let q = B::queue::<Big>(2);
    let mut out: Big = [0; 128];
    assert_eq!(q.try_get_into(&mut out), Err(GetError::Empty));
    assert_eq!(q.get_into_timeout(&mut out, ms(5)), Err(GetError::Timeout));
    for k in 0..3 {
        q.put_ref(&item(k)).unwrap();
        q.try_put_ref(&item(k + 100)).unwrap();
        assert_eq!(q.try_put_ref(&item(k + 200)), Err(PutError::Full(())));
        assert_eq!(q.put_ref_timeout(&item(k + 300), ms(5)), Err(PutError::Timeout(())));
        q.get_into(&mut out).unwrap();
        assert_eq!(out, item(k));
        q.try_get_into(&mut out).unwrap();
        assert_eq!(out, item(k + 100));
    }
    // Mixed with the by-value calls, in order.
    q.put(item(7)).unwrap();
    q.put_ref(&item(8)).unwrap();
    q.get_into_timeout(&mut out, LONG).unwrap();
    assert_eq!(out, item(7));
    assert_eq!(q.get(), Ok(item(8)));
    q.put_ref(&item(9)).unwrap();
    q.close();
    assert_eq!(q.put_ref(&item(10)), Err(PutError::Closed(())));
    q.get_into(&mut out).unwrap();
    assert_eq!(out, item(9), "a closed queue still drains");
    assert_eq!(q.get_into(&mut out), Err(GetError::Closed));
}

pub(crate) fn queue_try_put_full_and_try_get_empty<B: Backend>() {
    let q = B::queue::<u64>(2);
    assert_eq!(q.try_get(), Err(GetError::Empty));
    q.try_put(1).unwrap();
    q.try_put(2).unwrap();
    assert_eq!(q.try_put(3), Err(PutError::Full(3)), "Full hands the item back");
    assert_eq!(q.try_get(), Ok(1));
    q.try_put(3).unwrap();
    assert_eq!(q.try_get(), Ok(2));
    assert_eq!(q.try_get(), Ok(3));
    assert_eq!(q.try_get(), Err(GetError::Empty));
}

pub(crate) fn queue_close_drains_then_reports_closed<B: Backend>() {
    let q = B::queue::<u64>(4);
    let peer = q.peer().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(!peer.is_closed());
    peer.close();
    assert!(q.is_closed(), "close is seen through every handle");
    assert_eq!(q.put(3), Err(PutError::Closed(3)), "a put after close returns the item");
    assert_eq!(q.try_put(4), Err(PutError::Closed(4)));
    assert_eq!(q.put_timeout(5, ms(10)), Err(PutError::Closed(5)));
    assert_eq!(q.len(), 2);
    assert_eq!(q.get(), Ok(1), "consumers drain what is left");
    assert_eq!(peer.try_get(), Ok(2));
    assert_eq!(q.get(), Err(GetError::Closed));
    assert_eq!(q.try_get(), Err(GetError::Closed));
    assert_eq!(peer.get_timeout(ms(10)), Err(GetError::Closed));
    assert!(q.is_empty());
    q.close(); // closing twice is harmless
    assert!(q.is_closed());
}

pub(crate) fn queue_close_wakes_blocked_callers<B: Backend>() {
    let empty = B::queue::<u64>(1);
    let full = B::queue::<u64>(1);
    full.put(1).unwrap();
    let (consumer, producer) = (empty.peer().unwrap(), full.peer().unwrap());
    std::thread::scope(|s| {
        let get = s.spawn(move || consumer.get_timeout(LONG));
        let put = s.spawn(move || producer.put_timeout(2, LONG));
        empty.close();
        full.close();
        assert_eq!(get.join().unwrap(), Err(GetError::Closed));
        assert_eq!(put.join().unwrap(), Err(PutError::Closed(2)));
    });
    assert_eq!(full.get(), Ok(1));
}

pub(crate) fn queue_timeouts<B: Backend>() {
    let q = B::queue::<u64>(1);
    assert_eq!(q.get_timeout(ms(20)), Err(GetError::Timeout));
    q.put_timeout(1, ms(20)).unwrap();
    assert_eq!(
        q.put_timeout(2, ms(20)),
        Err(PutError::Timeout(2)),
        "Timeout hands the item back"
    );
    assert_eq!(q.join_timeout(ms(20)), Err(TaskError::Timeout), "an item is queued");
    assert_eq!(q.get_timeout(ms(20)), Ok(1));
    assert_eq!(q.join_timeout(ms(20)), Err(TaskError::Timeout), "an item is in hand");
    q.task_done().unwrap();
    assert_eq!(q.join_timeout(ms(20)), Ok(()));
    assert_eq!(q.put_timeout(3, Duration::ZERO), Ok(()), "room now: no waiting needed");
    assert_eq!(q.get_timeout(Duration::ZERO), Ok(3));
}

pub(crate) fn queue_len_is_empty_is_full<B: Backend>() {
    let q = B::queue::<u64>(3);
    let peer = q.peer().unwrap();
    assert_eq!((q.len(), q.is_empty(), q.is_full()), (0, true, false));
    q.put(1).unwrap();
    assert_eq!((q.len(), q.is_empty(), q.is_full()), (1, false, false));
    q.put(2).unwrap();
    q.put(3).unwrap();
    assert_eq!((q.len(), q.is_empty(), q.is_full()), (3, false, true));
    assert_eq!(
        (peer.len(), peer.is_full()),
        (3, true),
        "every handle sees the same queue"
    );
    assert_eq!(peer.get(), Ok(1));
    assert_eq!((q.len(), q.is_empty(), q.is_full()), (2, false, false));
    q.get().unwrap();
    q.get().unwrap();
    assert_eq!((q.len(), q.is_empty(), q.is_full()), (0, true, false));
}

pub(crate) fn queue_capacity_1_and_7_wrap_around_many_laps<B: Backend>() {
    let rounds: u64 = if cfg!(miri) { 12 } else { 500 };
    for cap in [1u64, 7] {
        let q = B::queue::<u64>(cap as usize);
        let (mut next_in, mut next_out) = (0u64, 0u64);
        for round in 0..rounds {
            // Fill completely, check Full, then drain: the ring turns one whole lap.
            for _ in 0..cap {
                q.try_put(next_in).unwrap();
                next_in += 1;
            }
            assert_eq!(q.try_put(u64::MAX), Err(PutError::Full(u64::MAX)));
            assert!(q.is_full());
            assert_eq!(q.len(), cap as usize);
            for _ in 0..cap {
                assert_eq!(q.try_get(), Ok(next_out));
                next_out += 1;
            }
            assert_eq!(q.try_get(), Err(GetError::Empty));
            // Then a partial lap of varying length, so head and tail meet at every slot.
            let k = round % cap + 1;
            for _ in 0..k {
                q.put(next_in).unwrap();
                next_in += 1;
            }
            assert_eq!(q.len(), k as usize);
            for _ in 0..k {
                assert_eq!(q.get(), Ok(next_out));
                next_out += 1;
            }
            assert!(q.is_empty());
        }
        assert!(next_in / cap >= rounds, "at least `rounds` laps");
    }
}

pub(crate) fn queue_task_done_and_join<B: Backend>() {
    let q = B::queue::<u64>(4);
    let worker = q.peer().unwrap();
    assert_eq!(q.join(), Ok(()), "nothing put, nothing to wait for");
    assert_eq!(q.task_done(), Err(TaskError::TooManyTaskDone));
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.put(3).unwrap();
    assert_eq!(q.join_timeout(ms(10)), Err(TaskError::Timeout));
    assert_eq!(worker.get(), Ok(1));
    assert_eq!(worker.get(), Ok(2));
    assert_eq!(
        q.task_done(),
        Err(TaskError::TooManyTaskDone),
        "task_done is per handle"
    );
    worker.task_done().unwrap();
    assert_eq!(
        q.join_timeout(ms(10)),
        Err(TaskError::Timeout),
        "one in hand, one queued"
    );
    worker.task_done().unwrap();
    assert_eq!(worker.task_done(), Err(TaskError::TooManyTaskDone));
    // A consumer that dies with an item in hand: that work died with it.
    let doomed = q.peer().unwrap();
    assert_eq!(doomed.get(), Ok(3));
    assert_eq!(q.join_timeout(ms(10)), Err(TaskError::Timeout));
    doomed.simulate_crash();
    assert_eq!(q.join_timeout(LONG), Ok(()));
    // join wakes up when the last task is done elsewhere.
    q.put(4).unwrap();
    std::thread::scope(|s| {
        let joiner = s.spawn(|| q.join_timeout(LONG));
        assert_eq!(worker.get(), Ok(4));
        worker.task_done().unwrap();
        assert_eq!(joiner.join().unwrap(), Ok(()));
    });
}

pub(crate) fn queue_dead_producers_position_is_skipped_and_capacity_kept<B: Backend>() {
    let q = B::queue::<u64>(3);
    let consumer = q.peer().unwrap();
    q.put(1).unwrap();
    let producer = q.peer().unwrap();
    assert!(producer.stall_after_put_claim());
    q.put(2).unwrap();
    assert_eq!(consumer.get(), Ok(1));
    assert_eq!(
        consumer.try_get(),
        Err(GetError::Empty),
        "FIFO waits behind a live producer's claimed position"
    );
    assert_eq!(q.len(), 2, "a live producer's claim counts as an item");
    producer.simulate_crash();
    assert_eq!(q.len(), 1, "a dead producer's position holds nothing");
    assert_eq!(
        consumer.get(),
        Ok(2),
        "consumers step over the dead producer's position"
    );
    assert_eq!(consumer.try_get(), Err(GetError::Empty));
    assert!(q.is_empty());
    // Capacity is kept: exactly 3 items fit, in order, for several laps.
    for lap in 0..3u64 {
        for i in 0..3 {
            q.try_put(10 * lap + i).unwrap();
        }
        assert_eq!(q.try_put(99), Err(PutError::Full(99)));
        for i in 0..3 {
            assert_eq!(consumer.try_get(), Ok(10 * lap + i));
        }
    }
    for _ in 0..11 {
        consumer.task_done().unwrap();
    }
    assert_eq!(q.join_timeout(LONG), Ok(()));
    // A producer that dies at the tail of an otherwise empty queue.
    let producer = q.peer().unwrap();
    assert!(producer.stall_after_put_claim());
    producer.simulate_crash();
    assert_eq!(
        q.join_timeout(LONG),
        Ok(()),
        "a dead producer's claim is no work to wait for"
    );
    assert_eq!(consumer.try_get(), Err(GetError::Empty));
    assert_eq!(consumer.get_timeout(ms(10)), Err(GetError::Timeout));
    for i in 0..3 {
        q.try_put(i).unwrap();
    }
    assert_eq!(q.try_put(99), Err(PutError::Full(99)));
    for i in 0..3 {
        assert_eq!(consumer.get(), Ok(i));
    }
}

pub(crate) fn queue_dead_consumers_slot_is_repaired_and_capacity_kept<B: Backend>() {
    let q = B::queue::<u64>(2);
    q.put(1).unwrap();
    q.put(2).unwrap();
    let consumer = q.peer().unwrap();
    assert!(consumer.stall_after_get_claim(), "takes item 1 and stops");
    assert_eq!(q.get(), Ok(2));
    q.task_done().unwrap();
    assert_eq!(
        q.try_put(3),
        Err(PutError::Full(3)),
        "a live consumer still holds its slot (the next lap's first)"
    );
    assert_eq!(
        q.join_timeout(ms(10)),
        Err(TaskError::Timeout),
        "the live consumer's item is in hand"
    );
    consumer.simulate_crash();
    assert_eq!(q.join_timeout(LONG), Ok(()), "its item died with it");
    // Its slot is repaired on the next lap: the full capacity is back.
    q.try_put(3).unwrap();
    q.try_put(4).unwrap();
    assert_eq!(q.try_put(5), Err(PutError::Full(5)));
    assert!(q.is_full());
    assert_eq!(q.get(), Ok(3));
    assert_eq!(q.get(), Ok(4));
    assert!(q.is_empty());
}

pub(crate) fn queue_put_blocked_by_a_consumer_wakes_when_it_dies<B: Backend>() {
    let q = B::queue::<u64>(1);
    q.put(1).unwrap();
    let consumer = q.peer().unwrap();
    assert!(consumer.stall_after_get_claim());
    let producer = q.peer().unwrap();
    std::thread::scope(|s| {
        // Blocks (the one slot is held by a live consumer) until the consumer dies; the
        // timeout only bounds a failing run.
        let put = s.spawn(move || producer.put_timeout(2, LONG));
        consumer.simulate_crash();
        assert_eq!(put.join().unwrap(), Ok(()));
    });
    assert_eq!(q.get(), Ok(2));
}

pub(crate) fn queue_two_producers_two_consumers_deliver_each_item_once_in_order<B: Backend>() {
    const PRODUCERS: u64 = 2;
    let per_producer: u64 = if cfg!(miri) { 25 } else { 5_000 };
    let q = B::queue::<u64>(4);
    let producers: Vec<_> = (0..PRODUCERS).map(|_| q.peer().unwrap()).collect();
    let consumers: Vec<_> = (0..2).map(|_| q.peer().unwrap()).collect();
    let taken: Vec<Vec<u64>> = std::thread::scope(|s| {
        let puts: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(id, p)| {
                s.spawn(move || {
                    for n in 0..per_producer {
                        p.put(((id as u64) << 32) | n).unwrap();
                    }
                })
            })
            .collect();
        let gets: Vec<_> = consumers
            .into_iter()
            .map(|c| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match c.get() {
                            Ok(v) => {
                                got.push(v);
                                c.task_done().unwrap();
                            }
                            Err(GetError::Closed) => return got,
                            Err(e) => panic!("get: {e}"),
                        }
                    }
                })
            })
            .collect();
        for p in puts {
            p.join().unwrap();
        }
        assert_eq!(q.join_timeout(LONG), Ok(()), "every item taken and marked done");
        q.close();
        gets.into_iter().map(|g| g.join().unwrap()).collect()
    });
    // Each consumer sees each producer's items in the order they were put...
    for got in &taken {
        for id in 0..PRODUCERS {
            let mine: Vec<u64> = got.iter().filter(|v| *v >> 32 == id).map(|v| v & 0xffff_ffff).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "producer {id} out of order");
        }
    }
    // ...and every item arrives exactly once.
    let mut all: Vec<u64> = taken.concat();
    all.sort_unstable();
    let want: Vec<u64> = (0..PRODUCERS)
        .flat_map(|id| (0..per_producer).map(move |n| (id << 32) | n))
        .collect();
    assert_eq!(all, want);
    assert!(q.is_empty());
}

/// `Queue` is `Sync`: threads that share one handle each claim through a record of their
/// own (`raw::claims`), so none overwrites another's announced claim. Short-lived threads
/// give their records back to the handle, so a stream of them does not use up the table.
pub(crate) fn queue_threads_sharing_one_handle_deliver_each_item_once_in_order<B: Backend>() {
    const THREADS: u64 = 3;
    let per_thread: u64 = if cfg!(miri) { 20 } else { 3_000 };
    let q = B::queue::<u64>(2);
    let taken: Vec<Vec<u64>> = std::thread::scope(|s| {
        let q = &q;
        let puts: Vec<_> = (0..THREADS)
            .map(|id| {
                s.spawn(move || {
                    for n in 0..per_thread {
                        q.put((id << 32) | n).unwrap();
                    }
                })
            })
            .collect();
        let gets: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(v) = q.get() {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for p in puts {
            p.join().unwrap();
        }
        q.close();
        gets.into_iter().map(|g| g.join().unwrap()).collect()
    });
    for got in &taken {
        for id in 0..THREADS {
            let mine: Vec<u64> = got.iter().filter(|v| *v >> 32 == id).map(|v| v & 0xffff_ffff).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {id} out of order");
        }
    }
    let mut all: Vec<u64> = taken.concat();
    all.sort_unstable();
    let want: Vec<u64> = (0..THREADS)
        .flat_map(|id| (0..per_thread).map(move |n| (id << 32) | n))
        .collect();
    assert_eq!(all, want);
    let q = B::queue::<u64>(1);
    for i in 0..if cfg!(miri) { 5 } else { 300 } {
        std::thread::scope(|s| {
            s.spawn(|| q.put(i).unwrap());
        });
        assert_eq!(q.try_get(), Ok(i));
    }
}

/// A dead handle's participant record is taken by the next handle: more handles than the
/// table has records can come and die.
pub(crate) fn dead_handles_records_are_reused<B: Backend>() {
    let q = B::queue::<u64>(2);
    let v = B::value::<u64>(0);
    for i in 0..70 {
        let p = q.peer().unwrap();
        p.put(i).unwrap();
        p.simulate_crash();
        assert_eq!(q.get(), Ok(i));
        let w = v.peer().unwrap();
        w.store(i).unwrap();
        w.simulate_crash();
    }
    assert_eq!(v.load().unwrap(), 69);
}
