//! What `create` and `open` are asked for: names, payload types and sizes.

use super::*;

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

#[test]
fn open_of_missing_name_is_not_found() {
    let name = Name::new("miss");
    assert!(!present(&name));
    let r = Value::<u64>::open(&name);
    assert_err!(r, OpenError::NotFound { name: n } if n == name.as_str());
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::NotFound { .. });
    let r = Array::<u64>::open(&name);
    assert_err!(r, OpenError::NotFound { .. });
    let r = shmproc::remove(&name);
    assert_err!(r, OpenError::NotFound { .. });
    // A removed segment is not found either.
    drop(Value::<u64>::create_with(&name, V, &Options::new().persist(true)).unwrap());
    shmproc::remove(&name).unwrap();
    let r = Value::<u64>::open(&name);
    assert_err!(r, OpenError::NotFound { .. });
    assert_gone(&name);
}

#[test]
fn duplicate_create_is_already_exists_and_leaves_the_first_untouched() {
    let name = Name::new("dup");
    let first = Value::<u64>::create(&name, V).unwrap();
    let before = read_all(&name);

    let r = Value::<u64>::create(&name, 99);
    assert_err!(r, OpenError::AlreadyExists { name: n } if n == name.as_str());
    let r = Value::<u64>::create_with(&name, 99, &Options::new().persist(true).mode(0o644));
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Value::<u32>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Array::<u64>::create(&name, 1000, 5);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Array::<u8>::from_slice(&name, &[1, 2, 3]);
    assert_err!(r, OpenError::AlreadyExists { .. });

    // Nothing was adopted, resized, re-initialised or unlinked.
    assert!(present(&name));
    assert_eq!(read_all(&name), before, "a failed create modified the existing segment");
    assert_eq!(file_mode(&name), 0o600);
    assert_eq!(first.load().map_err(|e| e.without_guard()).unwrap(), V);
    assert!(first.owns_name());
    let other = Value::<u64>::open(&name).unwrap();
    assert_eq!(other.load().map_err(|e| e.without_guard()).unwrap(), V);
    // open_or_create opens it and does not overwrite it with its initial value.
    let third = Value::<u64>::open_or_create(&name, 42).unwrap();
    assert!(!third.owns_name());
    assert_eq!(third.load().map_err(|e| e.without_guard()).unwrap(), V);
    drop((other, third));

    drop(first); // the creator unlinks its name
    assert!(!present(&name));
    assert_gone(&name);
}

#[test]
fn invalid_names_are_refused_everywhere() {
    let too_long = "x".repeat(shmproc::MAX_NAME_LEN + 1);
    assert_eq!(too_long.len(), 23);
    let bad: &[&str] = &[
        "",
        &too_long,
        "a/b",
        "/abs",
        "..",
        ".",
        "a b",
        " lead",
        "trail ",
        "caf\u{e9}",
        "\u{1F600}",
        ".hidden",
        "-dash",
        "a\0b",
        "a\nb",
        "star*",
        "back\\slash",
    ];
    for &n in bad {
        let check = |what: &str, r: Result<(), OpenError>| {
            assert_err!(r, OpenError::InvalidName { name, reason } if name == n && !reason.is_empty(), "{what}({n:?})");
        };
        check("Value::create", Value::<u64>::create(n, 1).map(drop));
        check(
            "Value::create_with",
            Value::<u64>::create_with(n, 1, &Options::new().persist(true)).map(drop),
        );
        check("Value::open", Value::<u64>::open(n).map(drop));
        check("Value::open_or_create", Value::<u64>::open_or_create(n, 1).map(drop));
        check("Array::create", Array::<u64>::create(n, 4, 1).map(drop));
        check("Array::from_slice", Array::<u64>::from_slice(n, &[1, 2]).map(drop));
        check("Array::open", Array::<u64>::open(n).map(drop));
        check("Array::open_or_create", Array::<u64>::open_or_create(n, 4, 1).map(drop));
        check("remove", shmproc::remove(n));
    }
    // Nothing was created by any of them (e.g. "/dev/shm/shmproc." for the empty name).
    assert!(!present(""));
    assert!(!present(&too_long));

    // The longest valid name (22 bytes) works.
    let base = Name::new("l");
    let longest = Name(format!("{:x<22}", base.as_str()));
    assert_eq!(longest.len(), shmproc::MAX_NAME_LEN);
    let v = Value::<u64>::create(&longest, V).unwrap();
    assert!(present(&longest));
    drop(v);
    assert_gone(&longest);
    assert_gone(&base);
}

// ---------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------

/// Asserts `r` is `IncompatibleType` whose `expected` and `found` contain the given texts.
#[track_caller]
fn assert_incompatible<T>(r: Result<T, OpenError>, expected_has: &str, found_has: &str) {
    match r {
        Err(OpenError::IncompatibleType { expected, found }) => {
            assert!(
                expected.contains(expected_has),
                "expected = {expected:?}, wanted it to name {expected_has:?}"
            );
            assert!(
                found.contains(found_has),
                "found = {found:?}, wanted it to name {found_has:?}"
            );
            assert_ne!(expected, found);
        }
        Err(e) => panic!("expected IncompatibleType, got {e:?}"),
        Ok(_) => panic!("expected IncompatibleType, got Ok"),
    }
}

#[test]
fn wrong_payload_type_is_incompatible() {
    let name = Name::new("type");
    let v = Value::<u64>::create(&name, V).unwrap();
    let before = read_all(&name);

    assert_incompatible(
        Value::<u32>::open(&name),
        "Value<u32> (4 bytes, align 4)",
        "Value<u64> (8 bytes, align 8)",
    );
    // Same size, other alignment.
    assert_incompatible(
        Value::<[u8; 8]>::open(&name),
        "Value<[u8; 8]> (8 bytes, align 1)",
        "Value<u64>",
    );
    // Same size and alignment, other type.
    assert_incompatible(
        Value::<i64>::open(&name),
        "Value<i64> (8 bytes, align 8)",
        "Value<u64> (8 bytes, align 8)",
    );
    assert_incompatible(Value::<f64>::open(&name), "Value<f64>", "Value<u64>");
    assert_incompatible(Value::<[u32; 2]>::open(&name), "Value<[u32; 2]>", "Value<u64>");
    // Another kind of object.
    assert_incompatible(Array::<u64>::open(&name), "Array<u64>", "Value<u64>");
    // open_or_create on a segment of another type fails the same way, and does not replace it.
    assert_incompatible(Value::<u32>::open_or_create(&name, 3), "Value<u32>", "Value<u64>");
    assert_incompatible(Array::<u64>::open_or_create(&name, 4, 3), "Array<u64>", "Value<u64>");
    // A payload type bigger than the maximum segment is just another type.
    assert_incompatible(
        Value::<Huge>::open(&name),
        "Value<[[[[u8; 4096]; 4096]; 4096]; 32]>",
        "Value<u64>",
    );

    assert_eq!(read_all(&name), before, "a refused open modified the segment");
    assert_eq!(
        Value::<u64>::open(&name)
            .unwrap()
            .load()
            .map_err(|e| e.without_guard())
            .unwrap(),
        V
    );
    drop(v);
    assert_gone(&name);

    // And an Array opened as a Value (or as an Array of another type).
    let name = Name::new("type");
    let a = Array::<u64>::from_slice(&name, &[1, 2, 3]).unwrap();
    assert_incompatible(Value::<u64>::open(&name), "Value<u64>", "Array<u64>");
    assert_incompatible(Array::<u32>::open(&name), "Array<u32>", "Array<u64>");
    assert_incompatible(Array::<i64>::open(&name), "Array<i64>", "Array<u64>");
    assert_incompatible(Value::<u64>::open_or_create(&name, 1), "Value<u64>", "Array<u64>");
    assert_eq!(
        Array::<u64>::open(&name)
            .unwrap()
            .to_vec()
            .map_err(|e| e.without_guard())
            .unwrap(),
        [1, 2, 3]
    );
    drop(a);
    assert_gone(&name);
}

#[test]
fn schema_id_replaces_the_type_name() {
    const SCHEMA: u64 = 0x5C4E_4D41;
    let name = Name::new("schema");
    let with_schema = Options::new().schema_id(SCHEMA);
    let v = Value::<u64>::create_with(&name, V, &with_schema).unwrap();

    // Same schema id, another Rust type of the same size and alignment: opens, same bits.
    let as_i64 = Value::<i64>::open_with(&name, &with_schema).expect("same schema id, same size/align");
    assert_eq!(as_i64.load().map_err(|e| e.without_guard()).unwrap(), V as i64);
    let as_f64 = Value::<f64>::open_with(&name, &with_schema).expect("same schema id, same size/align");
    assert_eq!(as_f64.load().map_err(|e| e.without_guard()).unwrap().to_bits(), V);
    drop((as_i64, as_f64));

    // Same schema id, but another size or alignment: still refused.
    assert_incompatible(
        Value::<u32>::open_with(&name, &with_schema),
        "Value<u32> (4 bytes, align 4)",
        "schema",
    );
    assert_incompatible(Value::<[u8; 8]>::open_with(&name, &with_schema), "align 1", "align 8");
    // Same schema id, other kind.
    assert_incompatible(Array::<u64>::open_with(&name, &with_schema), "Array<u64>", "Value<u64>");
    // Another schema id, even with the very same Rust type.
    assert_incompatible(
        Value::<u64>::open_with(&name, &Options::new().schema_id(SCHEMA + 1)),
        &format!("schema {:#x}", SCHEMA + 1),
        &format!("schema {SCHEMA:#x}"),
    );
    // A schema id on one side only.
    assert_incompatible(
        Value::<u64>::open(&name),
        "Value<u64> (8 bytes, align 8)",
        &format!("schema {SCHEMA:#x}"),
    );
    drop(v);
    assert_gone(&name);

    let name = Name::new("schema");
    let v = Value::<u64>::create(&name, V).unwrap();
    assert_incompatible(
        Value::<u64>::open_with(&name, &with_schema),
        &format!("schema {SCHEMA:#x}"),
        "Value<u64>",
    );
    assert_incompatible(Value::<i64>::open_with(&name, &with_schema), "Value<i64>", "Value<u64>");
    drop(v);
    assert_gone(&name);

    // Arrays too.
    let name = Name::new("schema");
    let a = Array::<u32>::from_slice_with(&name, &[1.5f32.to_bits(), 2.5f32.to_bits()], &with_schema).unwrap();
    let f = Array::<f32>::open_with(&name, &with_schema).unwrap();
    assert_eq!(f.to_vec().map_err(|e| e.without_guard()).unwrap(), [1.5, 2.5]);
    assert_incompatible(
        Array::<f32>::open_with(&name, &Options::new().schema_id(7)),
        "schema 0x7",
        "schema",
    );
    drop((a, f));
    assert_gone(&name);
}

// ---------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------

#[test]
fn impossible_sizes_are_invalid_size() {
    let name = Name::new("size");
    #[track_caller]
    fn invalid<T>(what: &str, r: Result<T, OpenError>) {
        match r {
            Err(OpenError::InvalidSize { what: w }) => assert!(!w.is_empty()),
            Err(e) => panic!("{what}: expected InvalidSize, got {e:?}"),
            Ok(_) => panic!("{what}: expected InvalidSize, got Ok"),
        }
    }
    invalid("Array len 0", Array::<u64>::create(&name, 0, 0));
    invalid("Array::from_slice empty", Array::<u64>::from_slice(&name, &[]));
    invalid("Array::open_or_create len 0", Array::<u64>::open_or_create(&name, 0, 0));
    invalid("Array len usize::MAX/4", Array::<u64>::create(&name, usize::MAX / 4, 0));
    invalid("Array len usize::MAX", Array::<u64>::create(&name, usize::MAX, 0));
    invalid("Array len usize::MAX (u8)", Array::<u8>::create(&name, usize::MAX, 0));
    invalid("Array len 1 TiB/8 + 1", Array::<u64>::create(&name, TIB / 8 + 1, 0));
    invalid("Array len 1 TiB/8 (+ header)", Array::<u64>::create(&name, TIB / 8, 0));
    invalid("Array<u8> len 1 TiB", Array::<u8>::create(&name, TIB, 0));
    invalid(
        "Array::open_or_create 1 TiB/8 + 1",
        Array::<u64>::open_or_create(&name, TIB / 8 + 1, 0),
    );
    invalid(
        "Array<[u8; 4096]> 1 TiB",
        Array::<[u8; 4096]>::create(&name, TIB / 4096, [0; 4096]),
    );
    invalid(
        "Array<[u8; 4096]> overflow",
        Array::<[u8; 4096]>::create(&name, usize::MAX / 1000, [0; 4096]),
    );
    invalid(
        "Array<[u64; 512]> overflow",
        Array::<[u64; 512]>::create(&name, usize::MAX / 4096 + 1, [0; 512]),
    );
    // Alignment above the page size.
    let big = OverAligned([[7; 4096]; 2]);
    invalid("Value align 8192", Value::<OverAligned>::create(&name, big));
    invalid(
        "Value::open_or_create align 8192",
        Value::<OverAligned>::open_or_create(&name, big),
    );
    invalid("Array align 8192", Array::<OverAligned>::create(&name, 1, big));
    // Participant table sizes.
    for n in [0, 1025, 5000, u32::MAX] {
        let o = Options::new().participants(n);
        invalid("participants (Value)", Value::<u64>::create_with(&name, 1, &o));
        invalid(
            "participants (Value::open_or_create)",
            Value::<u64>::open_or_create_with(&name, 1, &o),
        );
        invalid("participants (Array)", Array::<u64>::create_with(&name, 4, 1, &o));
    }
    // None of them created anything.
    assert!(!present(&name));

    // The boundaries that are valid.
    let one = Value::<u64>::create_with(&name, V, &Options::new().participants(1)).unwrap();
    assert_eq!(one.load().ok(), Some(V));
    // The creator holds the only record.
    let r = Value::<u64>::open(&name);
    assert_err!(r, OpenError::TooManyParticipants { max: 1 });
    drop(one);
    assert!(!present(&name));
    let v = Value::<u64>::create_with(&name, V, &Options::new().participants(1024)).unwrap();
    assert_eq!(Value::<u64>::open(&name).unwrap().load().ok(), Some(V));
    drop(v);
    assert!(!present(&name));
    let page = Value::<[u8; 4096]>::create(&name, [3; 4096]).unwrap();
    assert_eq!(page.load().map_err(|e| e.without_guard()).unwrap(), [3; 4096]);
    drop(page);
    assert_gone(&name);
}

/// An array of zero-sized elements takes no space, so no size check stops a length of
/// `usize::MAX`; creating it must still end (with `InvalidSize`, or at once), not run a
/// 2^64-iteration initialisation loop. Run in a child so that a hang cannot hang the suite.
#[test]
fn zero_sized_elements_with_a_huge_length() {
    let name = Name::new("zst");
    let mut child = spawn("zst_array", &[name.as_str()]);
    let line = child.expect_line("RESULT", Duration::from_secs(10));
    child.wait_ok(common::LONG);
    assert!(line.starts_with("InvalidSize") || line.starts_with("Ok"), "{line}");
    assert_gone(&name);
}

/// The type check compares type names, but only the first 128 bytes of them are stored: two
/// different payload types of the same size and alignment whose names share a 128-byte
/// prefix (long module paths, long generic arguments) are taken for the same type.
#[test]
fn long_type_names_are_told_apart() {
    use a_module_whose_name_is_long_enough_to_push_the_end_of_every_type_name_declared_in_it_well_past_the_128_byte_type_name_limit::{
        Celsius, Meters,
    };
    let (c, m) = (std::any::type_name::<Celsius>(), std::any::type_name::<Meters>());
    assert!(c.len() > 128 && m.len() > 128 && c[..128] == m[..128], "{c} / {m}");
    let name = Name::new("tname");
    let v = Value::<Celsius>::create(&name, Celsius(21.5)).unwrap();
    assert_incompatible(Value::<Meters>::open(&name), "Meters", "Celsius");
    drop(v);
    assert_gone(&name);
}

/// `init_timeout(Duration::ZERO)` is a valid option: an opener that finds the object too short
/// gives up waiting at once. That must not let `open_or_create` unlink a *live* creator's
/// object in the instant between its `O_CREAT` and taking its init beacon, which would leave
/// two handles that each created "the" segment under one name. Threads stand in for
/// processes (each handle has its own open file description, so OFD locks behave the same).
/// Probabilistic: before the fix, about one iteration in a thousand or two hit the window.
#[test]
fn zero_init_timeout_never_splits_a_name() {
    const THREADS: usize = 8;
    let opts = Options::new().init_timeout(Duration::ZERO);
    for iteration in 0..3_000 {
        let name = Name::new("split");
        let barrier = std::sync::Barrier::new(THREADS);
        let creators = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (name, barrier, opts) = (name.as_str(), &barrier, &opts);
                    s.spawn(move || {
                        barrier.wait();
                        let r = Value::<u64>::open_or_create_with(name, t as u64, opts);
                        // A zero init timeout may give up on a slow creator; nothing in
                        // this test writes a header, so it is never Corrupted.
                        if let Err(e) = &r {
                            assert!(matches!(e, OpenError::InitTimeout { .. }), "iteration {iteration}: {e}");
                        }
                        let owns = r.as_ref().map(|v| v.owns_name()).unwrap_or(false);
                        barrier.wait(); // every handle is still alive when ownership is counted
                        owns
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).filter(|&o| o).count()
        });
        assert!(
            creators <= 1,
            "iteration {iteration}: {creators} handles each created the segment"
        );
        assert_gone(&name);
    }
}

mod a_module_whose_name_is_long_enough_to_push_the_end_of_every_type_name_declared_in_it_well_past_the_128_byte_type_name_limit {
    /// A temperature.
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    pub struct Celsius(pub f64);
    /// A length: same size and alignment as `Celsius`, another type.
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    pub struct Meters(pub f64);
}

/// Byte offset of the header's hash of the full type name.
const OFF_TYPE_HASH: u64 = 104;

/// FNV-1a, as the header stores it for the full type name.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Headers whose type and layout fields agree with each other but describe sizes that are
/// out of range: the open refuses them with `Corrupted` before mapping or allocating anything.
#[test]
fn crafted_headers_with_impossible_sizes_are_corrupted() {
    // A `Value<Huge>` (2 TiB payload): the type matches, the layout exceeds 1 TiB.
    let name = Name::new("craft");
    persisted_value(&name, V);
    let huge_name = std::any::type_name::<Huge>();
    assert_eq!(std::mem::size_of::<Huge>(), 1 << 41);
    put_u64(&name, OFF_ELEM_SIZE, 1 << 41);
    put_u32(&name, OFF_ELEM_ALIGN, 1);
    put_u32(&name, OFF_TYPE_NAME_LEN, huge_name.len() as u32);
    write_at(&name, OFF_TYPE_NAME, huge_name.as_bytes());
    put_u64(&name, OFF_TYPE_HASH, fnv1a(huge_name));
    let r = Value::<Huge>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. });
    assert_gone(&name);

    // An `Array<u64>` whose count overflows the body size.
    let name = Name::new("craft");
    drop(Array::<u64>::create_with(&name, 4, 1, &Options::new().persist(true)).unwrap());
    for count in [u64::MAX, u64::MAX / 8 + 1, 1 << 37, 5] {
        put_u64(&name, OFF_COUNT, count);
        let r = Array::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::Corrupted { .. }, "count {count}");
    }

    // An `Array<u64>` of length 0 with a self-consistent layout.
    let body_offset = get_u64(&name, OFF_BODY_OFFSET);
    put_u64(&name, OFF_COUNT, 0);
    put_u64(&name, OFF_BODY_SIZE, 64);
    put_u64(&name, OFF_TOTAL_SIZE, body_offset + 64);
    let r = Array::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. });
    assert_gone(&name);

    // A `Value<u64>` segment claiming two elements, with a consistent layout and file size.
    let name = Name::new("craft");
    persisted_value(&name, V);
    let body_offset = get_u64(&name, OFF_BODY_OFFSET);
    let body_size = get_u64(&name, OFF_BODY_SIZE);
    put_u64(&name, OFF_COUNT, 2);
    put_u64(&name, OFF_BODY_SIZE, body_size + 8);
    put_u64(&name, OFF_TOTAL_SIZE, body_offset + body_size + 8);
    set_len(&name, body_offset + body_size + 8);
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. });
    assert_gone(&name);
}
