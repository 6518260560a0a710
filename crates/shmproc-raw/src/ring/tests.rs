use super::heap::{HeapRing, RECORDS, claim_word};
use super::slot::{GARBLED, SKIP, TAKEN, empty, full, next_lap, taken};
use super::*;
use crate::claims::NONE;
use crate::doubles::{Oracle, Yield};
use crate::primitive::AtomicU32;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

const SC: Ordering = Ordering::SeqCst;

fn who(index: u32, dead: &AtomicU64) -> Oracle<'_> {
    Oracle {
        me: Owner::new(index, 1),
        dead,
    }
}

fn kill(dead: &AtomicU64, index: u32) {
    dead.fetch_or(1 << index, SC);
}

fn word(ring: &Ring<'_, impl Payload>, p: u64) -> SlotWord {
    SlotWord::decode(ring.slot(ring.locate(p).0).load(SC))
}

/// Puts the ring's empty state at position `p0` (head = tail = p0), as if it had run there.
fn start_at(mem: &HeapRing<u64>, p0: u64) {
    let ring = mem.ring();
    for i in 0..ring.cap {
        let (index, lap) = ring.locate(p0.wrapping_add(i));
        ring.slot(index).store(empty(lap), SC);
    }
    mem.control.head.0.store(p0, SC);
    mem.control.tail.0.store(p0, SC);
}

fn no_participants(_: &mut dyn FnMut(Owner, u64) -> bool) {}

/// Runs `laps` laps of fill-then-drain plus a half-full phase, checking FIFO, Full, Empty.
fn exercise(mem: &HeapRing<u64>, laps: u64) {
    let dead = AtomicU64::new(0);
    let me = who(1, &dead);
    let mine = mem.mine(me.me);
    let ring = mem.ring();
    let cap = ring.capacity() as u64;
    let mut next = 0;
    for _ in 0..laps {
        for i in 0..cap {
            assert_eq!(ring.len(&me), i as usize);
            assert_eq!(ring.try_put(next + i, mine, &me, &Yield), Ok(()));
        }
        assert!(ring.is_full(&me));
        assert_eq!(ring.try_put(99, mine, &me, &Yield), Err(PutFail::Full));
        for i in 0..cap {
            assert_eq!(ring.try_get(mine, &me, &Yield), Ok(next + i));
        }
        assert!(ring.is_empty(&me));
        assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetFail::Empty));
        next += cap;
        // Offset head within the lap: one in, one out.
        assert_eq!(ring.try_put(next, mine, &me, &Yield), Ok(()));
        assert_eq!(ring.try_get(mine, &me, &Yield), Ok(next));
        next += 1;
    }
    assert_eq!(mine.taken.load(SC), (laps * (cap + 1)));
    assert_eq!(mine.claim.load(SC), NONE, "every call clears its claim");
}

#[test]
fn prefetch_hints_follow_the_other_index_and_only_128_byte_cells_prefetch() {
    let dead = AtomicU64::new(0);
    let me = who(1, &dead);
    // Cells somewhere in memory (a prefetch never faults, but let them be real).
    let cells = vec![0u8; 64 * Ahead::STRIDE];
    for (stride, prefetches) in [(64, false), (Ahead::STRIDE, true), (256, false)] {
        let mem = HeapRing::<u64>::new(64);
        let mine = mem.mine(me.me);
        let ring = mem.ring().with_ahead(Ahead {
            base: cells.as_ptr().addr(),
            stride,
            word_inside: false,
        });
        assert_eq!(ring.raw.ahead.is_some(), prefetches, "stride {stride}");
        for i in 0..200u64 {
            assert_eq!(ring.try_put(i, mine, &me, &Yield), Ok(()));
            assert_eq!(ring.try_get(mine, &me, &Yield), Ok(i));
            // Hints never run ahead of the index they copy.
            assert!(!after(mine.seen_head.load(SC), mem.control.head.0.load(SC)));
            assert!(!after(mine.seen_tail.load(SC), mem.control.tail.0.load(SC)));
        }
        // Read afresh while the guard held the prefetch back (the consumer at once: it
        // starts with no hint; the producer once the ring wrapped), and not at all
        // without an `Ahead`.
        let (seen_head, seen_tail) = (mine.seen_head.load(SC), mine.seen_tail.load(SC));
        assert_eq!(seen_head != 0 && seen_tail != 0, prefetches, "{seen_head} {seen_tail}");
    }
}

#[test]
fn slot_words_round_trip_and_laps_compare_modulo_2_29() {
    assert_eq!(
        SlotWord::decode(full(LAP_MASK)),
        SlotWord {
            phase: FULL,
            lap: LAP_MASK
        }
    );
    assert_eq!(SlotWord::decode(0), SlotWord { phase: EMPTY, lap: 0 });
    assert_eq!(SlotWord::decode(taken(3)), SlotWord { phase: TAKEN, lap: 3 });
    for garbage in [1, 5, 6, 7, 1 << 32 | FULL as u64] {
        assert_eq!(SlotWord::decode(garbage).phase, GARBLED, "{garbage:#x}");
    }
    assert_eq!(next_lap(LAP_MASK), 0);
    assert_eq!(relate(5, 5), Lap::Same);
    assert_eq!(relate(4, 5), Lap::Previous);
    assert_eq!(relate(LAP_MASK, 0), Lap::Previous);
    assert_eq!(relate(0, LAP_MASK), Lap::Later);
    assert_eq!(relate(7, 5), Lap::Later);
    assert_eq!(relate(3, 5), Lap::Stale);
    assert!(after(1, 0) && !after(0, 0) && !after(0, 1) && after(0, u64::MAX));
}

#[test]
fn zeroed_control_and_slots_are_the_initial_state() {
    let mem = HeapRing::<u64>::new(3);
    let ring = mem.ring();
    assert_eq!(mem.control.tail.0.load(SC), 0);
    assert!(!ring.is_closed());
    assert!(ring.is_empty(&who(1, &AtomicU64::new(0))));
    assert!(Ring::new(&mem.control, &mem.slots[..0], &mem.records, &mem.payload).is_none());
    let short = super::heap::HeapPayload::<u64>::new(2);
    assert!(Ring::new(&mem.control, &mem.slots, &mem.records, &short).is_none());
}

#[test]
fn fifo_full_and_empty_for_capacities_1_2_7() {
    for cap in [1, 2, 7] {
        exercise(&HeapRing::new(cap), 4);
    }
}

#[test]
fn many_laps() {
    exercise(&HeapRing::new(3), if cfg!(miri) { 20 } else { 2_000 });
}

/// A strided ring (slot words interleaved with the caller's cells, as `Queue` lays out
/// small items) behaves like a packed one and never touches the words in between.
#[test]
fn strided_slots_skip_the_words_between() {
    for (cap, stride) in [(1usize, 2usize), (3, 2), (7, 4), (4, 8)] {
        let control = RingControl::new();
        let records: Box<[ClaimRecord]> = (0..RECORDS).map(|_| ClaimRecord::new()).collect();
        let slots: Box<[Slot]> = (0..cap * stride).map(|_| Slot::new()).collect();
        for (i, s) in slots.iter().enumerate() {
            if i % stride != 0 {
                s.word.store(0xdead_beef_0000_0000 | i as u64, SC);
            }
        }
        let payload = super::heap::HeapPayload::<u64>::new(cap);
        assert!(Ring::new_strided(&control, &slots[..stride - 1], stride, &records, &payload).is_none());
        assert!(Ring::new_strided(&control, &slots, 0, &records, &payload).is_none());
        let ring = Ring::new_strided(&control, &slots, stride, &records, &payload).unwrap();
        assert_eq!(ring.capacity(), cap);
        let dead = AtomicU64::new(0);
        let me = who(1, &dead);
        let mine = claim_word(&control, &records, me.me);
        let mut next = 0;
        for _ in 0..5 {
            for i in 0..cap as u64 {
                assert_eq!(ring.try_put(next + i, mine, &me, &Yield), Ok(()));
            }
            assert_eq!(ring.try_put(0, mine, &me, &Yield), Err(PutFail::Full));
            assert_eq!(ring.len(&me), cap);
            for i in 0..cap as u64 {
                assert_eq!(ring.try_get(mine, &me, &Yield), Ok(next + i));
            }
            assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetFail::Empty));
            next += cap as u64;
        }
        for (i, s) in slots.iter().enumerate() {
            if i % stride != 0 {
                assert_eq!(s.word.load(SC), 0xdead_beef_0000_0000 | i as u64);
            }
        }
    }
}

#[test]
fn laps_wrap_around_modulo_2_29() {
    let mem = HeapRing::new(3);
    start_at(&mem, 3 * u64::from(LAP_MASK) - 4);
    exercise(&mem, 6);
}

#[test]
fn positions_wrap_around_u64_for_power_of_two_capacities() {
    let mem = HeapRing::new(4);
    start_at(&mem, u64::MAX - 9);
    exercise(&mem, 6);
}

#[test]
fn close_fails_puts_and_lets_gets_drain() {
    let mem = HeapRing::<u64>::new(4);
    let dead = AtomicU64::new(0);
    let me = who(1, &dead);
    let mine = mem.mine(me.me);
    let ring = mem.ring();
    ring.try_put(1, mine, &me, &Yield).unwrap();
    ring.close(&Yield);
    assert!(ring.is_closed());
    assert_eq!(ring.try_put(2, mine, &me, &Yield), Err(PutFail::Closed));
    assert_eq!(ring.try_get(mine, &me, &Yield), Ok(1));
    assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetFail::Closed));
    assert_eq!(ring.get(None, mine, &me, &Yield), Err(GetFail::Closed));
    assert_eq!(ring.len(&me), 0);
}

/// Model `pcc`/`pret`: a put that sees close after its claim stores SKIP; a get steps over
/// it and the position is not counted.
#[test]
fn a_put_that_sees_close_after_its_claim_retires_its_position() {
    let mem = HeapRing::<u64>::new(2);
    let dead = AtomicU64::new(0);
    let me = who(1, &dead);
    let mine = mem.mine(me.me);
    let ring = mem.ring();
    let claim = ring
        .claim_put(mine, &me, &Yield, &mut false, Round::Patient)
        .ok()
        .unwrap();
    ring.close(&Yield);
    assert_eq!(ring.finish_put(&claim, &mut |_| {}, mine, &Yield), Err(PutFail::Closed));
    assert_eq!(word(&ring, 0).phase, SKIP);
    assert_eq!(mine.claim.load(SC), NONE);
    assert_eq!(ring.len(&me), 0);
    assert_eq!(ring.try_get(mine, &me, &Yield), Err(GetFail::Closed));
    assert_eq!(mem.control.head.0.load(SC), 1, "the get stepped over it");
    assert_eq!(mine.taken.load(SC), 0);
}

#[test]
fn a_writer_that_unwinds_retires_its_position_and_the_ring_goes_on() {
    let mem = HeapRing::<u64>::new(2);
    let dead = AtomicU64::new(0);
    let me = who(1, &dead);
    let mine = mem.mine(me.me);
    let ring = mem.ring();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = ring.put_with(Block::No, &mut |_| panic!("writer"), mine, &me, &Yield);
    }));
    assert!(r.is_err());
    assert_eq!(mine.claim.load(SC), NONE);
    ring.try_put(5, mine, &me, &Yield).unwrap();
    assert_eq!(ring.len(&me), 1);
    assert_eq!(ring.try_get(mine, &me, &Yield), Ok(5));
}

#[test]
fn task_done_and_join_account_for_every_item() {
    let mem = HeapRing::new(2);
    let dead = AtomicU64::new(0);
    let (p, c) = (who(1, &dead), who(2, &dead));
    let (mp, mc) = (mem.mine(p.me), mem.mine(c.me));
    let done = AtomicU64::new(0);
    let ring = mem.ring();
    let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
        visit(c.me, done.load(SC));
    };
    assert!(ring.join_ready(&p, &participants));
    ring.try_put(1, mp, &p, &Yield).unwrap();
    assert!(!ring.join_ready(&p, &participants), "an item in the ring");
    assert_eq!(ring.try_get(mc, &c, &Yield), Ok(1));
    assert!(!ring.join_ready(&p, &participants), "an item in hand");
    ring.task_done(&done, c.me, &Yield).unwrap();
    assert!(ring.join_ready(&p, &participants));
    assert_eq!(ring.task_done(&done, c.me, &Yield), Err(TaskDoneError));
    assert_eq!(done.load(SC), 1, "a refused task_done leaves no trace");
    // A claimed, unpublished position counts while its writer lives.
    assert!(ring.claim_put_and_stop(mp, &p, &Yield));
    assert!(!ring.join_ready(&c, &participants));
    assert_eq!(ring.len(&c), 1);
    kill(&dead, 1);
    assert!(ring.join_ready(&c, &participants), "work of the dead is not waited for");
    assert_eq!(ring.len(&c), 0);
    // In hand by a dead consumer: not waited for either.
    assert_eq!(ring.join(Some(Instant::now()), &c, &participants, &Yield), Ok(()));
}

/// Model `ct`..`cr4`: a writer that died after its claim leaves a free slot below `tail`
/// and no live `Put(t)`: a get steps over the position, and the ring keeps its capacity.
#[test]
fn a_dead_producers_position_is_stepped_over_and_capacity_kept() {
    for cap in [1usize, 3] {
        let mem = HeapRing::new(cap);
        let dead = AtomicU64::new(0);
        let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
        let (mp, mq, mc) = (mem.mine(p.me), mem.mine(q.me), mem.mine(c.me));

        let ring = mem.ring();
        assert!(ring.claim_put_and_stop(mp, &p, &Yield));
        // While it lives, the get waits for it (FIFO): busy, which callers report as empty.
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Busy));
        kill(&dead, 1);
        for k in 0..cap as u64 - 1 {
            ring.try_put(10 + k, mq, &q, &Yield).unwrap();
        }
        for k in 0..cap as u64 - 1 {
            assert_eq!(ring.try_get(mc, &c, &Yield), Ok(10 + k));
        }
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Empty));
        for k in 0..cap as u64 {
            ring.try_put(20 + k, mq, &q, &Yield).unwrap();
        }
        assert_eq!(ring.try_put(0, mq, &q, &Yield), Err(PutFail::Full));
        for k in 0..cap as u64 {
            assert_eq!(ring.try_get(mc, &c, &Yield), Ok(20 + k));
        }
    }
}

/// `try_get` looks past a free head slot on every call: while the writer that claimed the
/// head position lives but stays mid-copy (stopped here), it answers Busy (Empty to the
/// queue's caller) after its bounded wait, keeping that position and the item behind it; once the writer is dead,
/// the next call steps over its position and takes the item behind it.
#[test]
fn try_get_outwaits_a_live_writer_and_steps_over_a_dead_one_at_once() {
    let mem = HeapRing::new(4);
    let dead = AtomicU64::new(0);
    let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
    let (mp, mq, mc) = (mem.mine(p.me), mem.mine(q.me), mem.mine(c.me));
    let ring = mem.ring();
    assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Empty));
    ring.try_put(7, mq, &q, &Yield).unwrap();
    assert_eq!(ring.try_get(mc, &c, &Yield), Ok(7));
    // Position 1 claimed by a producer that stops there; position 2 holds an item.
    assert!(ring.claim_put_and_stop(mp, &p, &Yield));
    ring.try_put(8, mq, &q, &Yield).unwrap();
    assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Busy), "the writer lives");
    assert_eq!(ring.len(&c), 2);
    kill(&dead, 1);
    assert_eq!(ring.try_get(mc, &c, &Yield), Ok(8), "the first call steps over");
    assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Empty));
}

/// Model `pf`..`pr`: a get that died after its claim leaves its slot FULL of the previous
/// lap with `head` past it and no live `Get(h)`: the next put frees it (one item lost).
#[test]
fn a_dead_consumers_slot_is_freed_by_the_next_put() {
    let mem = HeapRing::new(2);
    let dead = AtomicU64::new(0);
    let (p, c, d) = (who(1, &dead), who(2, &dead), who(3, &dead));
    let (mp, mc, md) = (mem.mine(p.me), mem.mine(c.me), mem.mine(d.me));

    let ring = mem.ring();
    ring.try_put(1, mp, &p, &Yield).unwrap();
    ring.try_put(2, mp, &p, &Yield).unwrap();
    assert!(ring.claim_get_and_stop(mc, &c, &Yield));
    assert_eq!(ring.try_get(md, &d, &Yield), Ok(2));
    // Position 0's reader lives: its slot is not free yet.
    assert_eq!(ring.try_put(3, mp, &p, &Yield), Err(PutFail::Full));
    kill(&dead, 2);
    ring.try_put(3, mp, &p, &Yield).unwrap();
    ring.try_put(4, mp, &p, &Yield).unwrap();
    assert_eq!(ring.try_get(md, &d, &Yield), Ok(3));
    assert_eq!(ring.try_get(md, &d, &Yield), Ok(4));
    assert_eq!(ring.len(&d), 0);
}

/// `census` (inspection) tells items, live writers, dead writers' positions and dead readers'
/// slots apart, with loads only.
#[test]
fn census_counts_what_each_claimed_position_holds() {
    let mem = HeapRing::new(4);
    let dead = AtomicU64::new(0);
    let (p, q, c, d) = (who(1, &dead), who(2, &dead), who(3, &dead), who(4, &dead));
    let (mp, mq, mc, md) = (mem.mine(p.me), mem.mine(q.me), mem.mine(c.me), mem.mine(d.me));
    let ring = mem.ring();
    ring.try_put(1, mp, &p, &Yield).unwrap();
    ring.try_put(2, mp, &p, &Yield).unwrap();
    assert!(ring.claim_get_and_stop(mc, &c, &Yield)); // takes 1, stops before its release
    assert!(ring.claim_put_and_stop(mq, &q, &Yield)); // claims position 2, stops unwritten
    let census = |ring: &Ring<'_, _>| {
        let c = ring.census(&d);
        (
            c.head,
            c.tail,
            c.items,
            c.writing,
            c.abandoned,
            c.taken_by_dead,
            c.closed,
        )
    };
    assert_eq!(census(&ring), (1, 3, 1, 1, 0, 0, false));
    kill(&dead, 2);
    kill(&dead, 3);
    assert_eq!(census(&ring), (1, 3, 1, 0, 1, 1, false));
    assert_eq!(ring.taken_by(c.me), 1);
    // A put a lap later frees the dead reader's slot; the dead writer's position stays
    // abandoned until a get reaches it, and then it is stepped over.
    assert_eq!(ring.try_get(md, &d, &Yield), Ok(2));
    for v in 3..6 {
        ring.try_put(v, mp, &p, &Yield).unwrap();
    }
    ring.close(&Yield);
    assert_eq!(census(&ring), (2, 6, 3, 0, 1, 0, true));
    assert_eq!(ring.try_get(md, &d, &Yield), Ok(3));
    assert_eq!(census(&ring), (4, 6, 2, 0, 0, 0, true));
}

/// A [`Wait`] whose first `pause` (the first yield of a patient call waiting for a peer
/// mid-copy) runs `then`: that peer finishing its copy while the call waits.
struct FinishOnPause<'f> {
    then: std::cell::Cell<Option<Box<dyn FnOnce() + 'f>>>,
}

impl Wait for FinishOnPause<'_> {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        Yield.wait(word, expected, deadline);
    }
    fn wake_all(&self, _word: &AtomicU32) {}
    fn pause(&self, _round: u32, _deadline: Option<Instant>) {
        if let Some(then) = self.then.take() {
            then();
        }
    }
}

/// `try_get` waits for a live writer mid-copy at the head: when it publishes during the
/// wait, the call takes its item (not Empty), and the item behind it comes next. The same
/// for `try_put` and a live reader copying out of the slot it needs.
#[test]
#[cfg_attr(miri, ignore = "Miri's clock runs out the 20 µs bound before the first yield")]
fn try_calls_wait_for_a_peer_that_finishes_its_copy_meanwhile() {
    let mem = HeapRing::new(2);
    let dead = AtomicU64::new(0);
    let (p, q, c) = (who(1, &dead), who(2, &dead), who(3, &dead));
    let (mp, mq, mc) = (mem.mine(p.me), mem.mine(q.me), mem.mine(c.me));
    let ring = mem.ring();
    let claim = ring.claim_put(mp, &p, &Yield, &mut false, Round::Patient).ok().unwrap();
    ring.try_put(8, mq, &q, &Yield).unwrap();
    let publish = FinishOnPause {
        then: std::cell::Cell::new(Some(Box::new(|| {
            // SAFETY: `i < capacity`, and we hold the claim of the position whose cell it is.
            let write = &mut |i| unsafe { mem.payload.write(i, &7) };
            assert_eq!(ring.finish_put(&claim, write, mp, &Yield), Ok(()));
        }))),
    };
    assert_eq!(ring.try_get(mc, &c, &publish), Ok(7));
    assert_eq!(ring.try_get(mc, &c, &Yield), Ok(8));

    // Full ring; a reader stays mid-copy of position 2 (slot 0, the next put's slot).
    ring.try_put(9, mq, &q, &Yield).unwrap();
    ring.try_put(10, mq, &q, &Yield).unwrap();
    let mut budget = ATTEMPTS;
    let taken = ring
        .claim_get(mc, &c, &Yield, &mut budget, Round::Patient)
        .ok()
        .unwrap();
    let release = FinishOnPause {
        then: std::cell::Cell::new(Some(Box::new(|| {
            // SAFETY: `i < capacity`, and we hold the claim of the position whose cell it is.
            let got = ring.finish_get(&taken, &mut |i| unsafe { mem.payload.read(i) }, mc, &Yield);
            assert_eq!(got, 9);
        }))),
    };
    assert_eq!(ring.try_put(11, mq, &q, &release), Ok(()));
    assert_eq!(ring.try_get(mc, &c, &Yield), Ok(10));
    assert_eq!(ring.try_get(mc, &c, &Yield), Ok(11));
}

/// A live writer that takes its time is waited for: its position is never stepped over.
#[test]
fn a_slow_live_writer_is_waited_for_and_its_publish_never_lost() {
    let mem = HeapRing::new(2);
    let dead = AtomicU64::new(0);
    let (p, c) = (who(1, &dead), who(2, &dead));
    let (mp, mc) = (mem.mine(p.me), mem.mine(c.me));

    let ring = mem.ring();
    let claim = ring.claim_put(mp, &p, &Yield, &mut false, Round::Patient).ok().unwrap();
    for _ in 0..3 {
        assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Busy));
    }
    assert_eq!(
        // SAFETY: `i < capacity`, and we hold the claim of the position whose cell it is.
        ring.finish_put(&claim, &mut |i| unsafe { mem.payload.write(i, &7) }, mp, &Yield),
        Ok(())
    );
    assert_eq!(ring.try_get(mc, &c, &Yield), Ok(7));
}

/// A writer declared dead (a misjudged liveness) whose position was stepped over gets
/// `Lost` back; the item is not delivered.
#[test]
fn a_stepped_over_put_is_handed_back_as_lost() {
    let mem = HeapRing::<u64>::new(2);
    let dead = AtomicU64::new(0);
    let (p, c) = (who(1, &dead), who(2, &dead));
    let (mp, mc) = (mem.mine(p.me), mem.mine(c.me));

    let ring = mem.ring();
    let claim = ring.claim_put(mp, &p, &Yield, &mut false, Round::Patient).ok().unwrap();
    kill(&dead, 1);
    assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Empty));
    assert_eq!(mem.control.head.0.load(SC), 1, "stepped over");
    dead.store(0, SC);
    assert_eq!(ring.finish_put(&claim, &mut |_| {}, mp, &Yield), Err(PutFail::Lost));
    assert_eq!(ring.try_get(mc, &c, &Yield), Err(GetFail::Empty));
}

/// Payload storage made of atomics, so that tests with deliberately broken protocols
/// (scribbled words) race on nothing but atomics.
struct AtomicPayload(Box<[AtomicU64]>);

// SAFETY: bounds-checked (a panic, never out of bounds), and every access is atomic.
unsafe impl Payload for AtomicPayload {
    type Item = u64;
    fn len(&self) -> usize {
        self.0.len()
    }
    unsafe fn write(&self, index: usize, item: &u64) {
        self.0[index].store(*item, Ordering::Relaxed);
    }
    unsafe fn read(&self, index: usize) -> u64 {
        self.0[index].load(Ordering::Relaxed)
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A word near the ring's live range or anything at all.
    fn word(&mut self, cap: u64) -> u64 {
        match self.next() % 3 {
            0 => self.next(),
            1 => self.next() % (4 * cap + 8),
            _ => SlotWord::encode((self.next() % 8) as u32, (self.next() % 4) as u32),
        }
    }
}

fn scribble(rng: &mut XorShift, control: &RingControl, slots: &[Slot], records: &[ClaimRecord], cap: u64) {
    for w in [&control.tail.0, &control.head.0] {
        if rng.next() % 2 == 0 {
            w.store(rng.word(cap), SC);
        }
    }
    if rng.next() % 4 == 0 {
        control.closed.0.store(rng.next() as u32 % 3, SC);
    }
    if rng.next() % 4 == 0 {
        control.records_used.0.store(rng.next() as u32, SC);
    }
    for ec in [&control.not_empty.0, &control.not_full.0, &control.tasks.0] {
        ec.sleepers.store(rng.next() as u32 % 3, SC);
    }
    for s in slots {
        if rng.next() % 2 == 0 {
            s.word.store(rng.word(cap), SC);
        }
    }
    for r in records {
        if rng.next() % 4 == 0 {
            r.claim.store(rng.word(cap), SC);
            r.taken.store(rng.next() % 4, SC);
        }
        if rng.next() % 8 == 0 {
            r.bind(Owner((rng.next() % 8) as u32));
        }
    }
}

#[test]
fn garbage_words_never_panic_and_calls_return() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let dead = AtomicU64::new(0);
    let rounds = if cfg!(miri) { 30 } else { 3_000 };
    for round in 0..rounds {
        let cap = [1usize, 2, 3, 8][round % 4];
        let control = RingControl::new();
        let slots: Box<[Slot]> = (0..cap).map(|_| Slot::new()).collect();
        let records: Box<[ClaimRecord]> = (0..4).map(|_| ClaimRecord::new()).collect();
        let payload = AtomicPayload((0..cap).map(|_| AtomicU64::new(0)).collect());
        let ring = Ring::new(&control, &slots, &records, &payload).unwrap();
        dead.store(rng.next() & 0b1110, SC);
        let me = who(1 + round as u32 % 3, &dead);
        let mine = ClaimRecord::new();
        let in_hand = AtomicU64::new(rng.next() % 3);
        let soon = Some(Instant::now() + Duration::from_micros(200));
        for _ in 0..4 {
            scribble(&mut rng, &control, &slots, &records, cap as u64);
            let _ = ring.try_put(round as u64, &mine, &me, &Yield);
            let _ = ring.try_get(&mine, &me, &Yield);
            assert!(ring.len(&me) <= cap);
            let _ = ring.is_full(&me);
            let _ = ring.join_ready(&me, &no_participants);
            let _ = ring.task_done(&in_hand, me.me, &Yield);
            let _ = ring.put(1, soon, &mine, &me, &Yield);
            let _ = ring.get(soon, &mine, &me, &Yield);
            let _ = ring.join(soon, &me, &no_participants, &Yield);
            let _ = ring.wait_readable(soon, &me, &Yield);
        }
    }
}

#[test]
fn a_peer_scribbling_while_threads_work_causes_no_ub_and_no_hang() {
    let cap = 4;
    let control = RingControl::new();
    let slots: Box<[Slot]> = (0..cap).map(|_| Slot::new()).collect();
    let records: Box<[ClaimRecord]> = (0..4).map(|_| ClaimRecord::new()).collect();
    let payload = AtomicPayload((0..cap).map(|_| AtomicU64::new(0)).collect());
    let ring = Ring::new(&control, &slots, &records, &payload).unwrap();
    let dead = AtomicU64::new(0);
    let ops = if cfg!(miri) { 30 } else { 3_000 };
    std::thread::scope(|s| {
        for i in 0..2u32 {
            let (ring, dead, control, records) = (&ring, &dead, &control, &records);
            s.spawn(move || {
                let me = who(i + 1, dead);
                let mine = claim_word(control, records, me.me);

                for n in 0..ops {
                    let soon = Some(Instant::now() + Duration::from_micros(100));
                    let _ = ring.put(n, soon, mine, &me, &Yield);
                    let _ = ring.get(soon, mine, &me, &Yield);
                    let _ = ring.len(&me);
                }
            });
        }
        let mut rng = XorShift(42);
        for _ in 0..ops / 10 {
            scribble(&mut rng, &control, &slots, &records, cap as u64);
            std::thread::yield_now();
        }
    });
}

/// Futex-like waiting: sleeps while the word holds `expected`, up to a long slice, and
/// counts slices that ran out without a change, which here means a lost wake-up.
struct Park {
    lock: Mutex<()>,
    cv: Condvar,
    slice: Duration,
    lost: std::sync::atomic::AtomicUsize,
}

impl Wait for Park {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        let slice_end = Instant::now() + self.slice;
        let end = deadline.map_or(slice_end, |d| d.min(slice_end));
        let mut guard = self.lock.lock().unwrap();
        while word.load(SC) == expected {
            let now = Instant::now();
            if now >= end {
                if end == slice_end {
                    self.lost.fetch_add(1, SC);
                }
                return;
            }
            guard = self.cv.wait_timeout(guard, end - now).unwrap().0;
        }
    }
    fn wake_all(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap();
        self.cv.notify_all();
    }
}

#[test]
fn two_producers_two_consumers_deliver_every_item_once_in_order() {
    const PRODUCERS: u64 = 2;
    const CONSUMERS: usize = 2;
    let per_producer: u64 = if cfg!(miri) { 200 } else { 10_000 };
    let mem = HeapRing::<u64>::new(4);
    let ring = mem.ring();
    let dead = AtomicU64::new(0);
    let park = Park {
        lock: Mutex::new(()),
        cv: Condvar::new(),
        slice: Duration::from_secs(20),
        lost: std::sync::atomic::AtomicUsize::new(0),
    };
    let hands: Vec<AtomicU64> = (0..CONSUMERS).map(|_| AtomicU64::new(0)).collect();
    let deadline = || Some(Instant::now() + Duration::from_secs(120));
    let received: Vec<Vec<u64>> = std::thread::scope(|s| {
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|c| {
                let (ring, dead, park, hand, mem) = (&ring, &dead, &park, &hands[c], &mem);
                s.spawn(move || {
                    let me = who(10 + c as u32, dead);
                    let mine = mem.mine(me.me);
                    let mut got = Vec::new();
                    loop {
                        match ring.get(deadline(), mine, &me, park) {
                            Ok(v) => {
                                got.push(v);
                                ring.task_done(hand, me.me, park).unwrap();
                            }
                            Err(GetFail::Closed) => return got,
                            Err(e) => panic!("consumer {c}: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (ring, dead, park, mem) = (&ring, &dead, &park, &mem);
                s.spawn(move || {
                    let me = who(1 + p as u32, dead);
                    let mine = mem.mine(me.me);
                    for k in 0..per_producer {
                        ring.put((p << 32) | k, deadline(), mine, &me, park).unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let participants = |visit: &mut dyn FnMut(Owner, u64) -> bool| {
            for (c, hand) in hands.iter().enumerate() {
                if !visit(Owner::new(10 + c as u32, 1), hand.load(SC)) {
                    break;
                }
            }
        };
        ring.join(deadline(), &who(0, &dead), &participants, &park).unwrap();
        assert_eq!(ring.len(&who(0, &dead)), 0);
        ring.close(&park);
        consumers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = received.iter().flatten().copied().collect();
    for got in &received {
        for p in 0..PRODUCERS {
            let mine: Vec<u64> = got.iter().copied().filter(|v| v >> 32 == p).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {p}'s items out of order"
            );
        }
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..PRODUCERS)
        .flat_map(|p| (0..per_producer).map(move |k| (p << 32) | k))
        .collect();
    assert_eq!(all, expected, "every item exactly once");
    assert_eq!(park.lost.load(SC), 0, "a sleeper slept a whole slice: lost wake-up");
}

/// A [`Wait`] whose first `wait` (a blocking call going to sleep) runs `then` and returns.
struct FinishOnWait<'f> {
    then: std::cell::Cell<Option<Box<dyn FnOnce() + 'f>>>,
}

impl Wait for FinishOnWait<'_> {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
        match self.then.take() {
            Some(then) => then(),
            None => Yield.wait(word, expected, deadline),
        }
    }
    fn wake_all(&self, _word: &AtomicU32) {}
    fn pause(&self, _round: u32, _deadline: Option<Instant>) {}
}

/// In its quick rounds a put that finds the ring full looks at its own slot again only once
/// there is room for a batch (`room_for_batch`); a blocking put still takes a single freed
/// slot, found by a thorough round or by the attempt before it sleeps.
#[test]
fn a_blocked_put_waits_for_room_for_a_batch_yet_takes_a_single_freed_slot() {
    let mem = HeapRing::<u64>::new(64);
    let ring = mem.ring();
    let dead = AtomicU64::new(0);
    let (p, c) = (who(1, &dead), who(2, &dead));
    let (mp, mc) = (mem.mine(p.me), mem.mine(c.me));
    for v in 0..64 {
        ring.try_put(v, mp, &p, &Yield).unwrap();
    }
    // A quarter of 64: the slot of position 64 + 16 frees when the get of position 16 ends.
    for v in 0..=16 {
        assert!(!ring.room_for_batch(64), "{v} gets: no room for a batch");
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(v));
    }
    assert!(ring.room_for_batch(64));
    for v in 64..81 {
        ring.try_put(v, mp, &p, &Yield).unwrap();
    }
    assert!(ring.is_full(&c));
    // The blocking put spins, finds no room, and goes to sleep: the sleep frees one slot.
    let free_one = FinishOnWait {
        then: std::cell::Cell::new(Some(Box::new(|| {
            assert_eq!(ring.try_get(mc, &c, &Yield), Ok(17));
        }))),
    };
    let deadline = Some(Instant::now() + Duration::from_secs(10));
    assert_eq!(
        ring.put(81, deadline, mp, &p, &free_one),
        Ok(()),
        "one freed slot is taken"
    );
    assert!(free_one.then.take().is_none(), "the put slept once");
    for v in 18..82 {
        assert_eq!(ring.try_get(mc, &c, &Yield), Ok(v));
    }
    // Below a capacity of 4 there is no batch to wait for.
    let small = HeapRing::<u64>::new(3);
    for v in 0..3 {
        small.ring().try_put(v, small.mine(p.me), &p, &Yield).unwrap();
    }
    assert!(small.ring().room_for_batch(3));
}
