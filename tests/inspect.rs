//! Inspection and garbage collection (`shmproc::inspect`) against real processes: holders
//! SIGKILLed holding a lock, mid-put, with items in hand, or right after creating a segment;
//! and segments that are damaged, foreign or of another layout version.
//!
//! Garbage collection is checked per name (`remove_unused`), never over all of `/dev/shm`:
//! other tests of this binary run meanwhile, and their segments are theirs.

mod common;

use common::{Name, child_main, say, scribble, spawn, spawn_env, wait_parent};
use shmproc::inspect::{self, Kind, KindState, LockStatus, PermitReport, Status};
use shmproc::{
    Array, Barrier, BarrierError, BoundedSemaphore, ByteQueue, Condition, Connection, Event, Pipe, Queue, RLock,
    Semaphore, Value,
};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // lock [name]: holds the value's lock until killed.
        "lock" => {
            let v = Value::<u64>::open(&args[0]).unwrap();
            let _guard = v.lock().unwrap();
            say("LOCKED");
            wait_parent();
        }
        // take [name]: takes one item (no task_done) and waits to be killed.
        "take" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            q.get().unwrap();
            say("TOOK");
            wait_parent();
        }
        // put [name]: one put; run with a fault point, it stops mid-put.
        "put" => {
            let q = Queue::<u64>::open(&args[0]).unwrap();
            say("PUTTING");
            q.put(7).unwrap();
            say("PUT");
            wait_parent();
        }
        // create [value name, queue name]: creates both, then waits to be killed (the names
        // stay: their owner died).
        "create" => {
            let _v = Value::<u64>::create(&args[0], 1).unwrap();
            let q = Queue::<u64>::create(&args[1], 4).unwrap();
            q.put(1).unwrap();
            say("CREATED");
            wait_parent();
        }
        // permit [semaphore name]: takes a permit through a guard and waits to be killed.
        "permit" => {
            let s = Semaphore::open(&args[0]).unwrap();
            let _guard = s.acquire();
            say("HELD");
            wait_parent();
        }
        // party [barrier name]: becomes a party (never arrives) and waits to be killed.
        "party" => {
            let _b = Barrier::open(&args[0]).unwrap();
            say("JOINED");
            wait_parent();
        }
        // syncs [semaphore, event, barrier names]: creates them, holds a permit, then waits
        // to be killed (the names stay: their owner died).
        "syncs" => {
            let s = Semaphore::create(&args[0], 1).unwrap();
            let _guard = s.acquire();
            let e = Event::create(&args[1]).unwrap();
            e.set();
            let _b = Barrier::create(&args[2], 2).unwrap();
            say("CREATED");
            wait_parent();
        }
        other => panic!("unknown role {other}"),
    });
}

fn ready(name: &str) -> Box<inspect::Details> {
    match inspect::inspect(name).unwrap().status {
        Status::Ready(d) => d,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn every_kind_is_described_with_its_state() {
    let (v, a, q, b, p) = (
        Name::new("iv"),
        Name::new("ia"),
        Name::new("iq"),
        Name::new("ib"),
        Name::new("ip"),
    );
    let value = Value::<u32>::create(&v, 5).unwrap();
    let _array = Array::<u16>::create(&a, 10, 0).unwrap();
    let queue = Queue::<[u8; 128]>::create(&q, 16).unwrap();
    let bytes = ByteQueue::create(&b, 8).unwrap();
    let end0 = Pipe::new().capacity(4).create(&p).unwrap();
    let end1 = Connection::open(&p).unwrap();
    queue.put([1; 128]).unwrap();
    queue.put([2; 128]).unwrap();
    queue.close();
    bytes.put(b"hello").unwrap();
    end1.send_bytes(b"one").unwrap();
    let guard = value.lock().unwrap();

    let d = ready(&v);
    assert_eq!((d.type_name.as_str(), d.elem_size, d.count), ("u32", 4, 1));
    let KindState::Value { lock } = &d.state else {
        panic!("{d:?}")
    };
    let LockStatus::Held {
        pid, alive, owner_died, ..
    } = lock.state
    else {
        panic!("{lock:?}")
    };
    assert_eq!((pid, alive, owner_died), (Some(std::process::id()), true, false));
    assert!(d.participants[0].holds_lock && d.participants[0].alive);
    drop(guard);
    let KindState::Value { lock } = &ready(&v).state else {
        panic!()
    };
    assert_eq!(lock.state, LockStatus::Free);

    let d = ready(&a);
    assert!(matches!(d.state, KindState::Array { .. }));
    assert_eq!((d.type_name.as_str(), d.count), ("u16", 10));

    let d = ready(&q);
    let KindState::Queue { ring } = &d.state else {
        panic!("{d:?}")
    };
    assert_eq!(
        (ring.capacity, ring.items, ring.closed, ring.head, ring.tail),
        (16, 2, true, 0, 2)
    );

    let d = ready(&b);
    let KindState::MessageQueue { ring } = &d.state else {
        panic!("{d:?}")
    };
    assert_eq!((ring.capacity, ring.items), (8, 1));

    let d = ready(&p);
    let KindState::Pipe { one_way, ends, rings } = &d.state else {
        panic!("{d:?}")
    };
    assert!(!one_way);
    assert!(ends.iter().all(|e| e.connected && e.alive && !e.dropped));
    assert_eq!((rings[0].items, rings[1].items), (0, 1));
    assert_eq!(d.participants.len(), 2);
    drop(end1);
    let KindState::Pipe { ends, .. } = &ready(&p).state else {
        panic!()
    };
    assert!(ends[1].dropped && !ends[1].alive);

    // Every one of ours shows up in the listing.
    let all = inspect::list().unwrap();
    for n in [&v, &a, &q, &b, &p] {
        assert!(all.iter().any(|r| r.name == n.as_str()), "{} not listed", n.as_str());
    }
    assert!(matches!(
        inspect::inspect(&Name::new("none")),
        Err(shmproc::OpenError::NotFound { .. })
    ));
    drop(end0);
}

/// Polls `name`'s report until `f` finds what it waits for (another thread gets there).
fn until(name: &str, what: &str, f: impl Fn(&KindState) -> bool) {
    let deadline = std::time::Instant::now() + T;
    while !f(&ready(name).state) {
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: no {what}: {:?}",
            ready(name)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn every_synchronisation_kind_is_described_with_its_state() {
    let (s, bs, e, c, b, r, cv) = (
        Name::new("ss"),
        Name::new("sb"),
        Name::new("se"),
        Name::new("sc"),
        Name::new("sr"),
        Name::new("sl"),
        Name::new("sv"),
    );
    let sem = Semaphore::create(&s, 2).unwrap();
    let bsem = BoundedSemaphore::create(&bs, 3).unwrap();
    let event = Event::create(&e).unwrap();
    let cond = Condition::create(&c).unwrap();
    let value = Value::<u32>::create(&cv, 0).unwrap();
    let barrier = Barrier::create(&b, 3).unwrap();
    let rlock = RLock::create(&r).unwrap();

    // A semaphore with one permit held through a guard.
    let guard = sem.acquire();
    let d = ready(&s);
    assert_eq!((d.kind, d.count), (Kind::Semaphore, 2));
    let KindState::Semaphore { permits } = &d.state else {
        panic!("{d:?}")
    };
    assert_eq!(
        *permits,
        PermitReport {
            available: 1,
            initial: 2,
            held: 1,
            held_by_dead: 0
        }
    );
    assert_eq!((d.participants.len(), d.participants[0].in_hand), (1, Some(1)));
    drop(guard);
    let d = ready(&s);
    let KindState::Semaphore { permits } = &d.state else {
        panic!("{d:?}")
    };
    assert_eq!((permits.available, permits.held), (2, 0));
    assert_eq!(d.participants[0].in_hand, Some(0));

    // A bounded one with a permit taken for good: not held by anyone, not available.
    bsem.acquire().forget();
    let d = ready(&bs);
    assert_eq!(d.kind, Kind::BoundedSemaphore);
    let KindState::BoundedSemaphore { permits } = &d.state else {
        panic!("{d:?}")
    };
    assert_eq!(
        (permits.available, permits.initial, permits.held, permits.held_by_dead),
        (2, 3, 0, 0)
    );

    // An event, clear then set.
    assert_eq!(
        ready(&e).state,
        KindState::Event {
            set: false,
            waiters: false
        }
    );
    event.set();
    let d = ready(&e);
    assert_eq!(
        (d.kind, d.state),
        (
            Kind::Event,
            KindState::Event {
                set: true,
                waiters: false
            }
        )
    );

    // A condition with a waiter asleep in another thread, then none.
    assert_eq!(ready(&c).state, KindState::Condition { waiters: 0 });
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let g = value.lock().unwrap();
            let g = cond.wait_while(g, |g| **g == 0).unwrap();
            *g
        });
        until(&c, "waiter", |st| *st == KindState::Condition { waiters: 1 });
        *value.lock().unwrap() = 1;
        cond.notify_all();
        assert_eq!(waiter.join().unwrap(), 1);
    });
    let d = ready(&c);
    assert_eq!(
        (d.kind, d.state),
        (Kind::Condition, KindState::Condition { waiters: 0 })
    );

    // A barrier of 3 with one party waiting (in another thread, through its own handle),
    // then aborted.
    let d = ready(&b);
    assert_eq!((d.kind, d.count), (Kind::Barrier, 3));
    assert_eq!(
        d.state,
        KindState::Barrier {
            parties: 3,
            arrived: 0,
            generation: 0,
            broken: false,
            dead_parties: 0
        }
    );
    std::thread::scope(|scope| {
        let party = Barrier::open(&b).unwrap();
        let waiter = scope.spawn(move || party.wait_timeout(T));
        until(&b, "arrival", |st| matches!(st, KindState::Barrier { arrived: 1, .. }));
        assert_eq!(ready(&b).participants.len(), 2);
        barrier.abort();
        assert_eq!(waiter.join().unwrap(), Err(BarrierError::Broken));
    });
    let KindState::Barrier { broken, arrived, .. } = ready(&b).state else {
        panic!()
    };
    assert!(broken && arrived == 1, "aborted with one party waiting");
    barrier.reset();
    let KindState::Barrier {
        broken,
        arrived,
        generation,
        ..
    } = ready(&b).state
    else {
        panic!()
    };
    assert_eq!((broken, arrived, generation), (false, 0, 1));

    // A re-entrant lock held twice by this thread: held once by our handle.
    let outer = rlock.lock().unwrap();
    let inner = rlock.lock().unwrap();
    let d = ready(&r);
    assert_eq!(d.kind, Kind::RLock);
    let KindState::RLock { lock } = &d.state else {
        panic!("{d:?}")
    };
    assert!(matches!(
        lock.state,
        LockStatus::Held {
            alive: true,
            owner_died: false,
            ..
        }
    ));
    assert!(d.participants[0].holds_lock);
    drop((inner, outer));
    let KindState::RLock { lock } = &ready(&r).state else {
        panic!()
    };
    assert_eq!(lock.state, LockStatus::Free);

    let all = inspect::list().unwrap();
    for n in [&s, &bs, &e, &c, &b, &r] {
        assert!(all.iter().any(|x| x.name == n.as_str()), "{} not listed", n.as_str());
    }
}

#[test]
fn a_permit_holder_and_a_barrier_party_killed_are_reported_dead() {
    let (s, b) = (Name::new("ds"), Name::new("db"));
    let sem = Semaphore::create(&s, 1).unwrap();
    let barrier = Barrier::create(&b, 2).unwrap();
    let mut holder = spawn("permit", &[&s]);
    holder.expect_line("HELD", T);
    let mut party = spawn("party", &[&b]);
    party.expect_line("JOINED", T);
    let (holder_pid, party_pid) = (holder.pid() as u32, party.pid() as u32);
    let KindState::Semaphore { permits } = ready(&s).state else {
        panic!()
    };
    assert_eq!((permits.available, permits.held, permits.held_by_dead), (0, 1, 0));
    let KindState::Barrier { dead_parties, .. } = ready(&b).state else {
        panic!()
    };
    assert_eq!(dead_parties, 0);
    holder.kill();
    party.kill();

    let d = ready(&s);
    let KindState::Semaphore { permits } = &d.state else {
        panic!("{d:?}")
    };
    assert_eq!((permits.available, permits.held, permits.held_by_dead), (0, 1, 1));
    let dead = d.participants.iter().find(|p| p.pid == holder_pid).unwrap();
    assert_eq!((dead.alive, dead.in_hand), (false, Some(1)));
    let KindState::Barrier { dead_parties, .. } = ready(&b).state else {
        panic!()
    };
    assert_eq!(dead_parties, 1);
    assert!(ready(&b).participants.iter().any(|p| p.pid == party_pid && !p.alive));
    // We still hold both: not garbage.
    assert!(!inspect::remove_unused(&s, false).unwrap());
    assert!(!inspect::remove_unused(&b, false).unwrap());

    // The next taker gets the dead one's permit back; the next waiter breaks the barrier.
    let guard = sem.try_acquire().unwrap();
    let KindState::Semaphore { permits } = ready(&s).state else {
        panic!()
    };
    assert_eq!((permits.available, permits.held, permits.held_by_dead), (0, 1, 0));
    drop(guard);
    assert_eq!(barrier.wait_timeout(T), Err(BarrierError::Broken));
    let KindState::Barrier { broken, .. } = ready(&b).state else {
        panic!()
    };
    assert!(broken);
}

#[test]
fn synchronisation_segments_only_the_dead_hold_are_garbage() {
    let (s, e, b) = (Name::new("gs"), Name::new("ge"), Name::new("gb"));
    let mut creator = spawn("syncs", &[&s, &e, &b]);
    creator.expect_line("CREATED", T);
    let KindState::Semaphore { permits } = ready(&s).state else {
        panic!()
    };
    assert_eq!((permits.held, permits.held_by_dead), (1, 0));
    for n in [&s, &e, &b] {
        assert!(!inspect::remove_unused(n, false).unwrap(), "{} is in use", n.as_str());
    }
    creator.kill();
    let KindState::Semaphore { permits } = ready(&s).state else {
        panic!()
    };
    assert_eq!((permits.held, permits.held_by_dead), (1, 1));
    assert!(matches!(ready(&e).state, KindState::Event { set: true, .. }));
    for n in [&s, &e, &b] {
        let r = inspect::inspect(n).unwrap();
        assert_eq!((r.live_participants(), r.dead_participants()), (0, 1), "{r:?}");
        assert!(inspect::remove_unused(n, false).unwrap());
        assert!(matches!(inspect::inspect(n), Err(shmproc::OpenError::NotFound { .. })));
    }
}

#[test]
fn a_lock_holder_killed_is_reported_dead_and_the_segment_is_kept_while_we_live() {
    let name = Name::new("lk");
    let v = Value::<u64>::create(&name, 0).unwrap();
    let mut child = spawn("lock", &[&name]);
    child.expect_line("LOCKED", T);
    let pid = child.pid() as u32;
    child.kill();

    let d = ready(&name);
    let KindState::Value { lock } = &d.state else { panic!() };
    assert_eq!(
        lock.state,
        LockStatus::Held {
            index: 1,
            pid: Some(pid),
            alive: false,
            owner_died: false
        }
    );
    let dead: Vec<_> = d.participants.iter().filter(|p| !p.alive).collect();
    assert_eq!((dead.len(), dead[0].pid, dead[0].holds_lock), (1, pid, true));
    // We still hold it: not garbage.
    assert!(!inspect::remove_unused(&name, false).unwrap());
    // The next locker takes it over; the report shows the take-over until it is marked.
    let Err(shmproc::LockError::OwnerDied(guard)) = v.lock() else {
        panic!("the dead holder's lock was not taken over")
    };
    let KindState::Value { lock } = &ready(&name).state else {
        panic!()
    };
    assert!(matches!(
        lock.state,
        LockStatus::Held {
            owner_died: true,
            alive: true,
            ..
        }
    ));
    drop(guard);
}

#[test]
fn a_producer_killed_mid_put_leaves_an_abandoned_position_and_a_consumer_its_item_in_hand() {
    let name = Name::new("mp");
    let q = Queue::<u64>::create(&name, 8).unwrap();
    q.put(1).unwrap();
    let mut taker = spawn("take", &[&name]);
    taker.expect_line("TOOK", T);
    let mut putter = spawn_env("put", &[&name], &[("SHMPROC_FAULT", "queue.put.after_claim")]);
    putter.expect_line("SHMPROC_FAULT_HIT", T);

    let d = ready(&name);
    let KindState::Queue { ring } = &d.state else { panic!() };
    assert_eq!((ring.items, ring.writing, ring.abandoned, ring.in_hand), (0, 1, 0, 1));
    let taker_report = d.participants.iter().find(|p| p.pid == taker.pid() as u32).unwrap();
    assert_eq!(taker_report.in_hand, Some(1));

    putter.kill();
    taker.kill();
    let d = ready(&name);
    let KindState::Queue { ring } = &d.state else { panic!() };
    // The dead taker's item died with it; the dead putter's position holds nothing.
    assert_eq!((ring.items, ring.writing, ring.abandoned, ring.in_hand), (0, 0, 1, 0));
    assert_eq!(d.participants.iter().filter(|p| !p.alive).count(), 2);
    let dead_taker = d.participants.iter().find(|p| p.pid == taker.pid() as u32).unwrap();
    assert_eq!(dead_taker.in_hand, Some(1), "the item that died with it");
    // A get steps over the abandoned position: the queue keeps working.
    q.put(2).unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), 2);
}

#[test]
fn a_consumer_killed_between_claim_and_release_is_reported_holding_its_slot() {
    let name = Name::new("tk");
    let q = Queue::<u64>::create(&name, 4).unwrap();
    q.put(1).unwrap();
    let mut taker = spawn_env("take", &[&name], &[("SHMPROC_FAULT", "queue.get.after_claim")]);
    taker.expect_line("SHMPROC_FAULT_HIT", T);
    let KindState::Queue { ring } = &ready(&name).state else {
        panic!()
    };
    assert_eq!((ring.items, ring.taken_by_dead, ring.head), (0, 0, 1), "alive: mid-get");
    taker.kill();
    let KindState::Queue { ring } = &ready(&name).state else {
        panic!()
    };
    assert_eq!((ring.items, ring.taken_by_dead), (0, 1));
    // A producer reaching that slot a lap later frees it: the queue keeps its capacity.
    for v in 2..6 {
        q.put(v).unwrap();
    }
    assert_eq!(q.get().unwrap(), 2);
    let KindState::Queue { ring } = &ready(&name).state else {
        panic!()
    };
    assert_eq!(ring.taken_by_dead, 0);
}

#[test]
fn segments_only_the_dead_hold_are_garbage_and_live_ones_are_not() {
    let (v, q, live) = (Name::new("gv"), Name::new("gq"), Name::new("gl"));
    let mut creator = spawn("create", &[&v, &q]);
    creator.expect_line("CREATED", T);
    // Another process (us) uses a segment whose creator is about to die: it stays.
    let kept = Value::<u64>::create(&live, 3).unwrap();
    let mut holder = spawn("lock", &[&live]);
    holder.expect_line("LOCKED", T);
    creator.kill();
    holder.kill();

    for n in [&v, &q] {
        let r = inspect::inspect(n).unwrap();
        assert_eq!((r.live_participants(), r.dead_participants()), (0, 1), "{r:?}");
    }
    assert!(!inspect::remove_unused(&live, false).unwrap());
    assert!(inspect::remove_unused(&v, false).unwrap());
    assert!(inspect::remove_unused(&q, false).unwrap());
    assert!(matches!(inspect::inspect(&v), Err(shmproc::OpenError::NotFound { .. })));
    assert!(matches!(
        Queue::<u64>::open(&q),
        Err(shmproc::OpenError::NotFound { .. })
    ));
    // The live one still works (its dead lock holder is taken over).
    assert!(matches!(kept.lock(), Err(shmproc::LockError::OwnerDied(_))));
}

#[test]
fn an_idle_persisted_segment_is_kept_unless_idle_ones_are_asked_for() {
    let name = Name::new("id");
    let opts = shmproc::Options::new().persist(true);
    drop(Value::<u64>::create_with(&name, 1, &opts).unwrap());
    let r = inspect::inspect(&name).unwrap();
    assert_eq!((r.live_participants(), r.dead_participants()), (0, 0));
    assert!(!inspect::remove_unused(&name, false).unwrap());
    assert!(inspect::remove_unused(&name, true).unwrap());
}

#[test]
fn damaged_foreign_and_other_version_segments_are_reported_as_such() {
    let (d, f, o, e) = (Name::new("dm"), Name::new("fo"), Name::new("ov"), Name::new("em"));
    let opts = shmproc::Options::new().persist(true);
    drop(Queue::<u64>::create_with(&d, 4, &opts).unwrap());
    drop(Value::<u64>::create_with(&o, 1, &opts).unwrap());
    // The element count of a queue (offset 56) scribbled: the layout no longer adds up.
    scribble(&d, 56, &u64::MAX.to_le_bytes());
    // The layout version (offset 12).
    scribble(&o, 12, &99u32.to_le_bytes());
    std::fs::write(format!("/dev/shm/shmproc.{}", f.as_str()), vec![0xA5u8; 4096]).unwrap();
    std::fs::write(format!("/dev/shm/shmproc.{}", e.as_str()), b"").unwrap();

    assert!(matches!(inspect::inspect(&d).unwrap().status, Status::Damaged { .. }));
    assert_eq!(
        inspect::inspect(&o).unwrap().status,
        Status::OtherVersion { version: 99 }
    );
    assert_eq!(inspect::inspect(&f).unwrap().status, Status::Foreign);
    // Empty, and no creator at work: its creator died before sizing it.
    assert_eq!(inspect::inspect(&e).unwrap().status, Status::Abandoned);
    // The listing reports them and goes on.
    let all = inspect::list().unwrap();
    for n in [&d, &f, &o, &e] {
        assert!(all.iter().any(|r| r.name == n.as_str()));
    }
    // Never garbage, except the abandoned one.
    for n in [&d, &f, &o] {
        assert!(!inspect::remove_unused(n, true).unwrap());
    }
    assert!(inspect::remove_unused(&e, false).unwrap());
}
