//! Lock-free shared memory between real processes: `AtomicArray` (counters and flag maps
//! updated by several processes at once) and `SharedBytes` (a raw block copied in and out,
//! or used as atomics).

mod common;

use common::{Name, child_main, say, spawn};
use shmproc::inspect::{KindState, Status};
use shmproc::{AtomicArray, OpenError, RangeError, SharedBytes};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const ADDS: u64 = 20_000;

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // add [name, bit]: ADDS fetch_adds on element 0, sets bit `bit` of element 1.
        "add" => {
            let a = AtomicArray::<AtomicU64>::open(&args[0]).unwrap();
            let bit: u32 = args[1].parse().unwrap();
            for _ in 0..ADDS {
                a[0].fetch_add(1, Ordering::Relaxed);
            }
            a[1].fetch_or(1 << bit, Ordering::Relaxed);
            say("DONE");
        }
        // bytes [name, k]: writes its marker at offset 64 * k and sets coverage byte 1000 + k.
        "bytes" => {
            let b = SharedBytes::open(&args[0]).unwrap();
            let k: usize = args[1].parse().unwrap();
            b.write(64 * k, format!("child {k}").as_bytes()).unwrap();
            b.as_atomic_bytes()[1000 + k].fetch_or(1, Ordering::Relaxed);
            say("DONE");
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn processes_add_to_one_atomic_array_without_a_lock() {
    let name = Name::new("aa");
    let a = AtomicArray::<AtomicU64>::create(&name, 4).unwrap();
    assert_eq!((a.len(), a.is_empty()), (4, false));
    let mut kids: Vec<_> = (0..3).map(|k| spawn("add", &[&name, &k.to_string()])).collect();
    for k in &mut kids {
        k.expect_line("DONE", T);
    }
    assert_eq!(a[0].load(Ordering::SeqCst), 3 * ADDS);
    assert_eq!(a.get(1).unwrap().load(Ordering::SeqCst), 0b111);
    assert!(a.get(4).is_none());
    assert_eq!(a.as_slice()[2].load(Ordering::SeqCst), 0, "a fresh array is zero");
}

#[test]
fn an_atomic_array_is_opened_with_its_own_type_and_length() {
    let name = Name::new("at");
    let _a = AtomicArray::<AtomicU32>::create(&name, 10).unwrap();
    assert!(matches!(
        AtomicArray::<AtomicU64>::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert!(matches!(
        SharedBytes::open(&name),
        Err(OpenError::IncompatibleType { .. })
    ));
    assert_eq!(AtomicArray::<AtomicU32>::open_or_create(&name, 99).unwrap().len(), 10);
    assert!(matches!(
        AtomicArray::<AtomicU8>::create(&Name::new("az"), 0),
        Err(OpenError::InvalidSize { .. })
    ));
    let r = shmproc::inspect::inspect(&name).unwrap();
    let Status::Ready(d) = r.status else { panic!() };
    assert_eq!(d.state, KindState::AtomicArray { len: 10 });
    // A fixed name, whatever the compiler calls the type (`Atomic<u32>` on newer ones).
    assert_eq!(d.type_name, "AtomicU32");
}

#[test]
fn processes_share_a_raw_byte_block() {
    let name = Name::new("sb");
    let b = SharedBytes::create(&name, 4096).unwrap();
    let mut kids: Vec<_> = (0..2).map(|k| spawn("bytes", &[&name, &k.to_string()])).collect();
    for k in &mut kids {
        k.expect_line("DONE", T);
    }
    for k in 0..2 {
        assert_eq!(b.read_to_vec(64 * k, 7).unwrap(), format!("child {k}").into_bytes());
        assert_eq!(b.as_atomic_bytes()[1000 + k].load(Ordering::SeqCst), 1);
    }
    assert_eq!(b.as_atomic_u64s().len(), 512);
    // Out of range: a typed error naming the range, and nothing written or read.
    assert_eq!(
        b.write(4090, b"1234567"),
        Err(RangeError {
            offset: 4090,
            len: 7,
            size: 4096
        })
    );
    let mut buf = [9u8; 4];
    assert!(b.read(usize::MAX, &mut buf).is_err());
    assert_eq!(buf, [9; 4]);
    assert_eq!(SharedBytes::open(&name).unwrap().len(), 4096);
    let r = shmproc::inspect::inspect(&name).unwrap();
    let Status::Ready(d) = r.status else { panic!() };
    assert_eq!(d.state, KindState::Bytes { size: 4096 });
}
