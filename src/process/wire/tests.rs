use super::*;
use crate::error::ProcessError;

fn double(x: u32) -> u64 {
    u64::from(x) * 2
}

#[test]
fn task_frame_round_trip() {
    let f = FnRef { tramp: 7, func: 9 };
    let mut t = TaskFrame::new(42, f);
    t.push(b"abc");
    t.push(b"");
    let frame = t.finish();
    assert_eq!(frame[0], TASK);
    let task = parse_task(&frame).unwrap();
    assert_eq!((task.id, task.f), (42, f));
    let items: Vec<_> = task.items.map(Result::unwrap).collect();
    assert_eq!(items, vec![(0, &b"abc"[..]), (0, &b""[..])]);
}

#[test]
fn truncated_frames_are_errors() {
    let mut t = TaskFrame::new(1, FnRef { tramp: 0, func: 0 });
    t.push(b"hello");
    let frame = t.finish();
    let cut = &frame[..frame.len() - 1];
    let mut items = parse_task(cut).unwrap().items;
    assert!(items.next().unwrap().is_err());
    assert!(items.next().is_none());
    assert!(parse_task(&frame[..10]).is_err());
    assert!(parse_results(&[RESULTS, 1, 2]).is_err());
}

#[test]
fn results_frame_round_trip() {
    let mut r = ResultsFrame::new(Vec::new(), 5, 3);
    r.push(ITEM_OK, b"xy");
    r.push(ITEM_FAILED, b"no");
    let frame = r.seal().to_vec();
    let p = parse_results(&frame).unwrap();
    assert_eq!((p.id, p.first, p.count), (5, 3, 2));
    let e: Vec<_> = p.entries.map(Result::unwrap).collect();
    assert_eq!(e, vec![(ITEM_OK, &b"xy"[..]), (ITEM_FAILED, &b"no"[..])]);
}

#[test]
#[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
fn trampoline_calls_the_function_in_this_process() {
    let f = FnRef::new(double).unwrap();
    let t = f.trampoline().unwrap();
    let input = postcard::to_allocvec(&21u32).unwrap();
    let mut out = Vec::new();
    // SAFETY: `f` was made by `FnRef::new` in this very process.
    unsafe { t(f.func, &input, &mut out) }.unwrap();
    assert_eq!(postcard::from_bytes::<u64>(&out).unwrap(), 42);
    // SAFETY: as above.
    match unsafe { t(f.func, &[], &mut out) } {
        Err(Failure::DecodeArgs(e)) => assert!(e.contains("as u32"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
fn offsets_outside_the_code_are_refused() {
    let good = FnRef::new(double).unwrap();
    for f in [
        FnRef {
            tramp: u64::MAX / 2,
            func: good.func,
        },
        FnRef {
            tramp: good.tramp,
            func: u64::MAX / 2,
        },
    ] {
        assert!(f.trampoline().is_err());
    }
}

#[test]
#[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
fn fingerprint_is_stable() {
    assert_eq!(Fingerprint::current(), Fingerprint::current());
    assert!(Fingerprint::current().is_ok());
}

fn halve(x: [u8; 3]) -> u16 {
    u16::from(x[0]) + u16::from(x[2]) / 2
}

#[test]
fn pod_task_frames_are_checked() {
    let f = FnRef { tramp: 7, func: 9 };
    let mut frame = Vec::new();
    pod_task_header(&mut frame, 42, f, 2, 3, 2);
    frame.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let t = parse_pod_task(&frame).unwrap();
    assert_eq!(
        (t.id, t.f, t.count, t.asize, t.rsize, t.items),
        (42, f, 2, 3, 2, &[1, 2, 3, 4, 5, 6][..])
    );
    // Bytes that are not `count` items of the item size; sizes of 0; a short header.
    assert!(parse_pod_task(&frame[..frame.len() - 1]).is_err());
    let mut longer = frame.clone();
    longer.push(0);
    assert!(parse_pod_task(&longer).is_err());
    for (count, asize, rsize) in [(0, 0, 2), (2, 3, 0), (u32::MAX, 1 << 31, 1)] {
        let mut bad = Vec::new();
        pod_task_header(&mut bad, 1, f, count, asize, rsize);
        bad.extend_from_slice(&[0; 6]);
        assert!(parse_pod_task(&bad).is_err(), "{count} {asize} {rsize}");
    }
    assert!(parse_pod_task(&frame[..TASK_POD_HEADER - 1]).is_err());
}

#[test]
#[cfg_attr(miri, ignore = "dl_iterate_phdr and /proc are not available under Miri")]
fn pod_trampoline_checks_sizes_and_lengths() {
    let f = FnRef::new_pod(halve).unwrap();
    let t = f.pod_trampoline().unwrap();
    let input = [10u8, 0, 4, 20, 0, 8];
    let mut out = [0u8; 4];
    let mut done = 0;
    // SAFETY: `f` was made by `FnRef::new_pod` in this very process.
    unsafe { t(f.func, &input, &mut out, (3, 2), &mut done) }.unwrap();
    assert_eq!(done, 2);
    assert_eq!(out, [12, 0, 24, 0]);
    let cases: [(&[u8], usize, (usize, usize)); 4] = [
        (&input[..5], 4, (3, 2)), // not a multiple of the item size
        (&input, 2, (3, 2)),      // room for the wrong number of results
        (&input, 4, (2, 2)),      // the frame's item size is not the type's
        (&input, 4, (3, 4)),      // nor its result size
    ];
    for (input, room, sizes) in cases {
        let mut out = vec![0u8; room];
        // SAFETY: as above.
        match unsafe { t(f.func, input, &mut out, sizes, &mut done) } {
            Err(Failure::DecodeArgs(_)) => {}
            other => panic!("{sizes:?} {room}: {other:?}"),
        }
    }
}

fn sealed_task(key: &JobKey, seq: u64) -> Vec<u8> {
    let mut t = TaskFrame::new(
        3,
        FnRef {
            tramp: 0x40,
            func: 0x80,
        },
    );
    t.push(b"args");
    let mut frame = t.finish();
    seal(&mut frame, key, seq);
    frame
}

fn sealed_pod_task(key: &JobKey, seq: u64) -> Vec<u8> {
    let mut frame = Vec::new();
    pod_task_header(
        &mut frame,
        4,
        FnRef {
            tramp: 0x40,
            func: 0x80,
        },
        2,
        3,
        2,
    );
    frame.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    seal(&mut frame, key, seq);
    frame
}

fn is_refused(r: Result<(), Rejected>) -> bool {
    matches!(r, Err(Rejected::Refused(_)))
}

#[test]
fn sealed_frames_pass_in_rising_order_only() {
    let key = JobKey([7; 16]);
    let mut v = Verifier::new(key);
    let (f1, f2, f5) = (sealed_task(&key, 1), sealed_pod_task(&key, 2), sealed_task(&key, 5));
    v.check(&f1).unwrap();
    v.check(&f2).unwrap();
    // A replay of an accepted frame, then a sequence number that skips ahead (allowed),
    // then one below it.
    assert!(is_refused(v.check(&f1)));
    assert!(is_refused(v.check(&f2)));
    v.check(&f5).unwrap();
    assert!(is_refused(v.check(&sealed_task(&key, 4))));
    assert!(is_refused(v.check(&f5)));
    // The MAC still holds for a frame that was parsed: its fields are the sealed ones.
    let t = parse_task(&f5).unwrap();
    assert_eq!(
        (t.id, t.f),
        (
            3,
            FnRef {
                tramp: 0x40,
                func: 0x80
            }
        )
    );
}

#[test]
fn every_header_byte_and_the_length_are_authenticated() {
    let key = JobKey(*b"0123456789abcdef");
    for (frame, header) in [
        (sealed_task(&key, 9), TASK_HEADER),
        (sealed_pod_task(&key, 9), TASK_POD_HEADER),
    ] {
        Verifier::new(key).check(&frame).unwrap();
        for at in 0..header {
            for flip in [1u8, 5, 16, 0x80] {
                let mut bad = frame.clone();
                bad[at] = bad[at].wrapping_add(flip);
                match Verifier::new(key).check(&bad) {
                    Err(_) => {}
                    Ok(()) => panic!("byte {at} + {flip} of a header passed"),
                }
            }
        }
        // Items are not covered, but the frame's length is.
        let mut args = frame.clone();
        *args.last_mut().unwrap() ^= 1;
        Verifier::new(key).check(&args).unwrap();
        let mut longer = frame.clone();
        longer.push(0);
        assert!(is_refused(Verifier::new(key).check(&longer)));
        assert!(is_refused(Verifier::new(key).check(&frame[..frame.len() - 1])));
        // Another key (a frame copied from another child's pipe).
        assert!(is_refused(Verifier::new(JobKey([0; 16])).check(&frame)));
    }
}

#[test]
fn frames_that_cannot_be_parsed_are_malformed() {
    let key = JobKey([1; 16]);
    let frame = sealed_task(&key, 1);
    for bad in [
        &[][..],
        &[EXIT][..],
        &[START, 0][..],
        &frame[..TASK_HEADER - 1],
        &[TASK][..],
    ] {
        assert!(
            matches!(Verifier::new(key).check(bad), Err(Rejected::Malformed(_))),
            "{bad:?}"
        );
    }
    // A short plain-data frame: the task header fits, the plain-data header does not.
    let mut pod = frame[..TASK_HEADER].to_vec();
    pod[0] = TASK_POD;
    assert!(matches!(Verifier::new(key).check(&pod), Err(Rejected::Malformed(_))));
}

#[test]
fn decode_result_maps_tags() {
    let ok = postcard::to_allocvec(&5u8).unwrap();
    assert_eq!(decode_result::<u8>(ITEM_OK, &ok).unwrap(), 5);
    let p = postcard::to_allocvec(&("boom".to_owned(), "a.rs:1:2".to_owned())).unwrap();
    match decode_result::<u8>(ITEM_PANICKED, &p) {
        Err(ProcessError::Panicked { message, location }) => {
            assert_eq!((message.as_str(), location.as_str()), ("boom", "a.rs:1:2"));
        }
        other => panic!("{other:?}"),
    }
}
