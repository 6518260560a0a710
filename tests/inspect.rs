//! Inspection and garbage collection (`shmproc::inspect`) against real processes: holders
//! SIGKILLed holding a lock, mid-put, with items in hand, or right after creating a segment;
//! and segments that are damaged, foreign or of another layout version.
//!
//! Garbage collection is checked per name (`remove_unused`), never over all of `/dev/shm`:
//! other tests of this binary run meanwhile, and their segments are theirs.

mod common;

use common::{Name, child_main, say, spawn, spawn_env, wait_parent};
use shmproc::inspect::{self, KindState, LockStatus, Status};
use shmproc::{Array, ByteQueue, Connection, Pipe, Queue, Value};
use std::io::{Seek, SeekFrom, Write};
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

/// Writes `bytes` at `offset` of the segment file `name`.
fn scribble(name: &str, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/shmproc.{name}"))
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
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
