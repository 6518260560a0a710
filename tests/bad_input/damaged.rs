//! What `open` finds: damaged headers, participant tables and lock words, truncated,
//! foreign and non-regular files, symlinks.

use super::*;

// ---------------------------------------------------------------------------------------
// Damaged segments
// ---------------------------------------------------------------------------------------

/// The header field at byte `off`, for `type_name_len` bytes of type name.
fn header_field(off: u64, type_name_len: u64) -> &'static str {
    match off {
        0..8 => "magic",
        8..12 => "init_state",
        12..16 => "version",
        16..20 => "pointer_width",
        20..24 => "kind",
        24..28 => "header_size",
        28..32 => "participants",
        32..40 => "elem_size",
        40..44 => "elem_align",
        44..48 => "type_name_len",
        48..56 => "schema_id",
        56..64 => "count",
        64..72 => "participants_offset",
        72..80 => "body_offset",
        80..88 => "body_size",
        88..96 => "total_size",
        96..100 => "creator_pid",
        100..104 => "reserved0",
        104..112 => "type_hash",
        112..128 => "reserved",
        o if o < OFF_TYPE_NAME + type_name_len => "type_name",
        _ => "type_name (unused tail)",
    }
}

#[test]
fn header_corruption_sweep() {
    let name = Name::new("hdr");
    let opts = Options::new().init_timeout(SHORT);
    persisted_value(&name, V);
    let original = read_at(&name, 0, HEADER_SIZE);
    let type_name_len = u64::from(get_u32(&name, OFF_TYPE_NAME_LEN));
    assert_eq!(type_name_len, 3, "the header should name \"u64\"");
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut totals: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut per_field: BTreeMap<(u64, &'static str), BTreeMap<&'static str, usize>> = BTreeMap::new();
    let mut unchanged = 0;

    for off in 0..HEADER_SIZE as u64 {
        let orig = original[off as usize];
        for byte in [0x00, 0xFF, rng.byte()] {
            if byte == orig {
                unchanged += 1;
                continue; // not a corruption; the restored segment is checked below
            }
            write_at(&name, off, &[byte]);
            let r = Value::<u64>::open_with(&name, &opts);
            let field = header_field(off, type_name_len);
            let what = outcome(&r);
            let ctx = format!("byte {off} ({field}) set to {byte:#04x} (was {orig:#04x})");
            match &r {
                Ok(v) => {
                    // The body is untouched: whatever was accepted must still work.
                    match v.try_lock() {
                        Ok(g) => assert_eq!(*g, V, "{ctx}"),
                        Err(e) => panic!("{ctx}: opened, but try_lock gave {e:?}"),
                    }
                    assert_eq!(v.load().ok(), Some(V), "{ctx}");
                }
                Err(
                    OpenError::Corrupted { .. }
                    | OpenError::VersionMismatch { .. }
                    | OpenError::IncompatibleType { .. }
                    | OpenError::InitTimeout { .. }
                    | OpenError::NotFound { .. },
                ) => {}
                Err(e) => panic!("{ctx}: unexpected error {e:?}"),
            }
            match field {
                "magic" => assert_eq!(what, "Corrupted", "{ctx}"),
                "init_state" => assert!(matches!(what, "InitTimeout" | "NotFound"), "{ctx}: {what}"),
                "version" => {
                    let found = u32::from_le_bytes(read_at(&name, OFF_VERSION, 4).try_into().unwrap());
                    assert!(
                        matches!(&r, Err(OpenError::VersionMismatch { found: f, supported })
                            if *f == found && *supported == shmproc::LAYOUT_VERSION),
                        "{ctx}: {what}"
                    );
                }
                // Everything the type check and the layout depend on must be refused.
                "pointer_width"
                | "kind"
                | "header_size"
                | "participants"
                | "elem_size"
                | "elem_align"
                | "type_name_len"
                | "schema_id"
                | "count"
                | "participants_offset"
                | "body_offset"
                | "body_size"
                | "total_size"
                | "type_name" => assert_ne!(what, "Ok", "{ctx} was accepted"),
                _ => {}
            }
            *totals.entry(what).or_default() += 1;
            *per_field
                .entry((field_start(off, type_name_len), field))
                .or_default()
                .entry(what)
                .or_default() += 1;
            drop(r);
            write_at(&name, off, &[orig]);
        }
    }
    println!(
        "header corruption sweep: {} corruptions, {unchanged} no-op writes skipped",
        totals.values().sum::<usize>()
    );
    println!("  totals: {totals:?}");
    for ((start, field), m) in &per_field {
        println!("  @{start:3} {field:24} {m:?}");
    }
    // Magic, init word and version are certain to be hit, and every outcome is typed.
    for must in ["Corrupted", "InitTimeout", "VersionMismatch", "IncompatibleType"] {
        assert!(
            totals.get(must).copied().unwrap_or(0) > 0,
            "no {must} in the sweep: {totals:?}"
        );
    }

    // Restored byte for byte: opens and reads back.
    assert_eq!(read_at(&name, 0, HEADER_SIZE), original);
    let v = Value::<u64>::open(&name).unwrap();
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}

/// First byte of the field that byte `off` belongs to.
fn field_start(off: u64, type_name_len: u64) -> u64 {
    let f = header_field(off, type_name_len);
    (0..=off).find(|&o| header_field(o, type_name_len) == f).unwrap_or(off)
}

/// What a lock call gave, as a short word; an owner-died guard is repaired and released.
fn lock_outcome<G>(r: Result<G, LockError<G>>, mark: impl FnOnce(G)) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(LockError::OwnerDied(g)) => {
            mark(g);
            "OwnerDied"
        }
        Err(LockError::WouldBlock) => "WouldBlock",
        Err(LockError::Timeout) => "Timeout",
        Err(LockError::Unrecoverable) => "Unrecoverable",
        Err(e) => panic!("unknown lock error {e:?}"),
    }
}

#[test]
fn participant_table_and_lock_word_garbage() {
    let name = Name::new("ptab");
    persisted_value(&name, V);
    let p_off = get_u64(&name, OFF_PARTICIPANTS_OFFSET);
    let b_off = get_u64(&name, OFF_BODY_OFFSET);
    assert_eq!(p_off, HEADER_SIZE as u64);
    // Participant table, the 16-byte lock state, and the padding up to the data (b_off + 64).
    let len = (b_off + 64 - p_off) as usize;
    let lock_at = (b_off - p_off) as usize;
    let clean = read_at(&name, p_off, len);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut tally: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();

    for round in 0..48 {
        let mut region = clean.clone();
        match round {
            0 => region.fill(0xFF),
            1 => region[lock_at..lock_at + 16].fill(0xFF),
            2 => region[..lock_at].fill(0xFF),
            3..=15 => region[lock_at..lock_at + 16].copy_from_slice(&rng.bytes(16)),
            16..=27 => region[..lock_at].copy_from_slice(&rng.bytes(lock_at)),
            _ => region = rng.bytes(len),
        }
        write_at(&name, p_off, &region);
        let ctx = format!("round {round}");
        // The header is intact, so the open must succeed whatever the table holds: a record
        // claimed by nobody alive is reclaimed.
        let v = Value::<u64>::open_with(&name, &Options::new().init_timeout(SHORT))
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e:?}"));
        let t = lock_outcome(v.try_lock(), |mut g| g.mark_consistent());
        assert!(t != "Timeout", "{ctx}: try_lock gave Timeout");
        let l = lock_outcome(v.lock_timeout(SHORT), |mut g| g.mark_consistent());
        assert!(l != "WouldBlock", "{ctx}: lock_timeout gave WouldBlock");
        // load() either works or reports the same kind of lock error, without panicking.
        let _ = v.lock_timeout(SHORT).map(|g| *g).map_err(|e| e.without_guard());
        *tally.entry((t, l)).or_default() += 1;
        drop(v);
        write_at(&name, p_off, &clean);
    }
    println!("participant/lock garbage (try_lock, lock_timeout): {tally:?}");

    let v = Value::<u64>::open(&name).unwrap();
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}

/// The owner token of the taken participant records of `name`, by record index.
fn taken_tokens(name: &str) -> Vec<(u64, u64)> {
    let p_off = get_u64(name, OFF_PARTICIPANTS_OFFSET);
    let b_off = get_u64(name, OFF_BODY_OFFSET);
    let n = (b_off - p_off) / PARTICIPANT_SIZE;
    (0..n)
        .filter_map(|i| {
            let state = get_u64(name, p_off + i * PARTICIPANT_SIZE);
            (state & (1 << 32) != 0).then_some((i, ((state & 0x3F_FFFF) << 10) | i))
        })
        .collect()
}

#[test]
fn forged_lock_words() {
    let name = Name::new("forge");
    let a = Value::<u64>::create(&name, V).unwrap();
    let a_tok = taken_tokens(&name);
    assert_eq!(a_tok.len(), 1);
    let a_tok = a_tok[0].1;
    let b = Value::<u64>::open(&name).unwrap();
    let b_tok = taken_tokens(&name)
        .into_iter()
        .map(|(_, t)| t)
        .find(|&t| t != a_tok)
        .unwrap();
    let lock = get_u64(&name, OFF_BODY_OFFSET);
    let mark = |mut g: shmproc::ValueGuard<'_, u64>| g.mark_consistent();

    // Held by another live handle: wait, then time out.
    put_u64(&name, lock, b_tok);
    assert_eq!(lock_outcome(a.try_lock(), mark), "WouldBlock");
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "Timeout");
    // "Held" by ourselves (a forged word naming our own token): no take-over, a timeout.
    put_u64(&name, lock, a_tok);
    assert_eq!(lock_outcome(a.try_lock(), mark), "WouldBlock");
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "Timeout");
    assert_eq!(lock_outcome(b.try_lock(), mark), "WouldBlock");
    // Held by a handle that is gone: taken over with the owner-died mark.
    put_u64(&name, lock, b_tok | LOCK_WAITERS);
    drop(b);
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "OwnerDied");
    assert_eq!(a.load().ok(), Some(V));
    // An owner token naming a record past the table: nobody, so taken over.
    put_u64(&name, lock, (5 << 10) | 1000);
    assert_eq!(lock_outcome(a.try_lock(), mark), "OwnerDied");
    // Flags without an owner are ignored: the lock is free.
    put_u64(&name, lock, LOCK_WAITERS | LOCK_DIED);
    assert_eq!(lock_outcome(a.try_lock(), mark), "Ok");
    // Unrecoverable, however it got there.
    put_u64(&name, lock, LOCK_UNRECOVERABLE | a_tok);
    assert_eq!(lock_outcome(a.try_lock(), mark), "Unrecoverable");
    assert_eq!(lock_outcome(a.lock_timeout(SHORT), mark), "Unrecoverable");
    assert!(matches!(
        a.load().map_err(|e| e.without_guard()),
        Err(LockError::Unrecoverable)
    ));

    put_u64(&name, lock, 0);
    assert_eq!(a.load().ok(), Some(V));
    drop(a);
    assert_gone(&name);
}

#[test]
fn truncated_files_are_refused() {
    let probe = Name::new("trunc");
    let total = persisted_value(&probe, V);
    assert_gone(&probe);
    for len in [0, 100, 255, 256, 256 + 8, 1024, total - 1] {
        let name = Name::new("trunc");
        assert_eq!(persisted_value(&name, V), total);
        set_len(&name, len);
        let ctx = format!("truncated to {len} of {total}");
        let r = Value::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::Corrupted { .. } | OpenError::InitTimeout { .. }, "{ctx}");
        let r2 = Array::<u64>::open_with(&name, &short());
        assert_err!(
            r2,
            OpenError::Corrupted { .. } | OpenError::InitTimeout { .. } | OpenError::IncompatibleType { .. },
            "{ctx}: Array::open"
        );
        println!("{ctx}: open -> {}", outcome(&r));
        // open_or_create: a file too short to hold a header is what a creator that died
        // before sizing it leaves (the init beacon is free), so it is replaced; anything
        // longer is reported.
        match Value::<u64>::open_or_create_with(&name, 5, &short()) {
            Ok(v) => {
                assert!((len as usize) < HEADER_SIZE, "{ctx}: open_or_create accepted it");
                assert!(v.owns_name(), "{ctx}: open_or_create opened a truncated segment");
                assert_eq!(v.load().ok(), Some(5));
                assert_eq!(file_len(&name), total);
            }
            Err(OpenError::Corrupted { .. }) => assert!(len as usize >= HEADER_SIZE, "{ctx}"),
            Err(e) => panic!("{ctx}: open_or_create gave {e:?}"),
        }
        assert_gone(&name);
    }
    // Longer than needed is fine.
    let name = Name::new("trunc");
    persisted_value(&name, V);
    set_len(&name, total + 4096);
    let v = Value::<u64>::open_with(&name, &short()).unwrap();
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}

#[test]
fn garbage_file_is_refused() {
    let name = Name::new("junk");
    let total = persisted_value(&name, V) as usize;
    let real = read_at(&name, OFF_MAGIC, 16); // magic, READY init word, version
    let init = OFF_INIT_STATE as usize..OFF_INIT_STATE as usize + 4;
    assert_gone(&name);
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let mut tally: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();

    for round in 0..12 {
        let mut junk = rng.bytes(total);
        let kind = match round {
            0..=3 => "random",
            4..=7 => {
                junk[init.clone()].copy_from_slice(&real[init.clone()]); // looks published
                "random+ready"
            }
            _ => {
                junk[..16].copy_from_slice(&real); // our magic, ready, our version
                "magic+ready+version"
            }
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(shm_path(&name))
            .unwrap();
        f.write_all(&junk).unwrap();
        drop(f);
        assert_eq!(file_mode(&name), 0o600);

        let r = Value::<u64>::open_with(&name, &short());
        let ctx = format!("round {round} ({kind})");
        *tally.entry((kind, outcome(&r))).or_default() += 1;
        match kind {
            "random" => assert_err!(r, OpenError::Corrupted { .. } | OpenError::InitTimeout { .. }, "{ctx}"),
            "random+ready" => assert_err!(r, OpenError::Corrupted { what } if what.contains("magic"), "{ctx}"),
            _ => assert_err!(
                r,
                OpenError::Corrupted { .. } | OpenError::IncompatibleType { .. },
                "{ctx}"
            ),
        }
        let r = Array::<u32>::open_with(&name, &short());
        assert_err!(
            r,
            OpenError::Corrupted { .. } | OpenError::InitTimeout { .. } | OpenError::IncompatibleType { .. },
            "{ctx}: Array::open"
        );
        let r = Value::<u64>::create(&name, 1);
        assert_err!(r, OpenError::AlreadyExists { .. }, "{ctx}");
        if kind != "random" {
            // (A not-ready garbage file makes open_or_create wait for its whole give-up
            // time; that is covered once below.)
            let r = Value::<u64>::open_or_create_with(&name, 1, &short());
            assert_err!(
                r,
                OpenError::Corrupted { .. } | OpenError::IncompatibleType { .. },
                "{ctx}"
            );
        }
        assert_eq!(read_all(&name), junk, "{ctx}: the garbage file was modified");
        shmproc::remove(&name).unwrap();
        assert!(!present(&name));
    }
    println!("garbage files: {tally:?}");

    // open_or_create neither adopts nor deletes a foreign file whose init word is garbage.
    let mut junk = rng.bytes(total);
    junk[init].copy_from_slice(&0xDEAD_BEEF_u32.to_le_bytes());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(shm_path(&name))
        .unwrap();
    f.write_all(&junk).unwrap();
    drop(f);
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(r, OpenError::InitTimeout { .. });
    assert_eq!(read_all(&name), junk, "open_or_create modified a foreign file");
    assert_gone(&name);
}

#[test]
fn non_regular_files_are_refused() {
    // A FIFO under the name.
    let name = Name::new("fifo");
    let c = std::ffi::CString::new(shm_path(&name).into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Corrupted { .. } | OpenError::Io { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(r, OpenError::Corrupted { .. } | OpenError::Io { .. });
    assert!(
        std::fs::symlink_metadata(shm_path(&name))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_gone(&name);

    // A directory under the name.
    let name = Name::new("dir");
    std::fs::create_dir(shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::Corrupted { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    let r = shmproc::remove(&name);
    assert_err!(r, OpenError::Io { .. }, "remove of a directory");
    assert!(std::fs::symlink_metadata(shm_path(&name)).unwrap().is_dir());
    std::fs::remove_dir(shm_path(&name)).unwrap();
    assert_gone(&name);
}

#[test]
fn symlinks_are_refused() {
    // A symlink to an ordinary file.
    let name = Name::new("link");
    let target = std::env::temp_dir().join(format!("shmproc-bad-input-target-{}", std::process::id()));
    let content: Vec<u8> = XorShift(7).bytes(4096);
    std::fs::write(&target, &content).unwrap();
    std::os::unix::fs::symlink(&target, shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(
        r,
        OpenError::Io { .. } | OpenError::NotFound { .. } | OpenError::AlreadyExists { .. }
    );
    let r = Array::<u8>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    assert_eq!(
        std::fs::read(&target).unwrap(),
        content,
        "the symlink target was modified"
    );
    // remove() unlinks the link, not its target.
    shmproc::remove(&name).unwrap();
    assert!(!present(&name));
    assert_eq!(std::fs::read(&target).unwrap(), content);
    std::fs::remove_file(&target).unwrap();
    assert_gone(&name);

    // A symlink to a valid segment of ours: still refused, the segment untouched.
    let real = Name::new("real");
    let name = Name::new("link");
    let seg = Value::<u64>::create(&real, V).unwrap();
    let before = read_all(&real);
    std::os::unix::fs::symlink(shm_path(&real), shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    assert_eq!(read_all(&real), before);
    assert_eq!(seg.load().ok(), Some(V));
    assert_gone(&name);
    assert!(present(&real), "removing the link removed its target");
    drop(seg);
    assert_gone(&real);

    // A dangling symlink: create does not create its target.
    let name = Name::new("dangle");
    let target = std::env::temp_dir().join(format!("shmproc-bad-input-dangling-{}", std::process::id()));
    std::os::unix::fs::symlink(&target, shm_path(&name)).unwrap();
    let r = Value::<u64>::open_with(&name, &short());
    assert_err!(r, OpenError::Io { .. } | OpenError::NotFound { .. });
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. } | OpenError::Io { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(
        r,
        OpenError::Io { .. } | OpenError::NotFound { .. } | OpenError::AlreadyExists { .. }
    );
    assert!(
        std::fs::symlink_metadata(&target).is_err(),
        "create followed a dangling symlink"
    );
    assert_gone(&name);
}
