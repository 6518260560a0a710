//! Who may write or own a segment: modes, the umask, other users' segments.

use super::*;

// ---------------------------------------------------------------------------------------
// Permissions and ownership
// ---------------------------------------------------------------------------------------

#[test]
fn group_or_other_writable_segments_are_refused() {
    let name = Name::new("perm");
    persisted_value(&name, V);
    for mode in [0o620, 0o602, 0o622, 0o660, 0o666, 0o677] {
        std::fs::set_permissions(shm_path(&name), std::fs::Permissions::from_mode(mode)).unwrap();
        let r = Value::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::InsecurePermissions { mode: m } if m == mode, "{mode:o}");
        let r = Array::<u64>::open_with(&name, &short());
        assert_err!(r, OpenError::InsecurePermissions { .. }, "{mode:o}");
        let r = Value::<u64>::open_or_create_with(&name, 1, &short());
        assert_err!(r, OpenError::InsecurePermissions { .. }, "{mode:o}");
        let v = Value::<u64>::open_with(&name, &short().allow_shared_write(true))
            .unwrap_or_else(|e| panic!("{mode:o} with allow_shared_write: {e:?}"));
        assert_eq!(v.load().ok(), Some(V));
        // Asking for a shared-write mode allows opening such segments too.
        let r = Value::<u64>::open_with(&name, &short().mode(0o660));
        assert!(r.is_ok(), "{mode:o} with mode(0o660): {:?}", r.map(drop));
    }
    // Readable by group and others, writable only by the owner: fine.
    let owner_only: &[u32] = if is_root() {
        &[0o644, 0o604, 0o640, 0o600, 0o400, 0o000]
    } else {
        &[0o644, 0o604, 0o640, 0o600]
    };
    for &mode in owner_only {
        std::fs::set_permissions(shm_path(&name), std::fs::Permissions::from_mode(mode)).unwrap();
        let r = Value::<u64>::open_with(&name, &short());
        assert!(r.is_ok(), "{mode:o}: {:?}", r.map(drop));
    }
    assert_gone(&name);
}

#[test]
fn create_mode_is_exact_and_ignores_the_umask() {
    // (create mode, resulting file mode): the child runs under umask 0o077.
    for (mode, want) in [
        (0o640, 0o640),
        (0o666, 0o666),
        (0o604, 0o604),
        (0o4640, 0o640),
        (0o400, 0o400),
    ] {
        let name = Name::new("mode");
        let mut child = spawn("create_mode", &[name.as_str(), &format!("{mode:o}")]);
        let line = child.expect_line("READY", common::LONG);
        child.wait_ok(common::LONG);
        assert!(line.ends_with("-> 77"), "the child's umask was not 0o077: {line}");
        assert_eq!(file_mode(&name), want, "Options::mode({mode:o}) under umask 0o077");
        let r = Value::<u64>::open_with(&name, &short());
        if want & 0o022 != 0 {
            assert_err!(r, OpenError::InsecurePermissions { mode: m } if m == want, "mode {mode:o}");
        } else {
            assert_eq!(r.unwrap().load().ok(), Some(1));
        }
        assert_gone(&name);
    }
    // In-process, the default mode is 0o600 whatever the umask (here the inherited one).
    let name = Name::new("mode");
    let v = Value::<u64>::create(&name, 1).unwrap();
    assert_eq!(file_mode(&name), 0o600);
    drop(v);
    assert_gone(&name);
}

#[test]
fn another_users_segment_is_untrusted() {
    if !is_root() {
        eprintln!("note: another_users_segment_is_untrusted needs root (to become nobody); skipped");
        return;
    }
    let name = Name::new("nobody");
    let mut child = spawn("nobody_create", &[name.as_str()]);
    let line = child.expect_line("READY", common::LONG);
    child.wait_ok(common::LONG);
    if let Some(why) = line.strip_prefix("skip") {
        eprintln!("note: cannot become nobody here ({}); skipped", why.trim());
        assert_gone(&name);
        return;
    }
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600));
    let before = read_all(&name);

    let r = Value::<u64>::open(&name);
    assert_err!(
        r,
        OpenError::UntrustedOwner {
            owner: NOBODY,
            expected: 0
        }
    );
    // The owner is checked before anything else (type, permissions).
    let r = Array::<u32>::open_with(&name, &short().allow_shared_write(true));
    assert_err!(
        r,
        OpenError::UntrustedOwner {
            owner: NOBODY,
            expected: 0
        }
    );
    let r = Value::<u64>::create(&name, 1);
    assert_err!(r, OpenError::AlreadyExists { .. });
    let r = Value::<u64>::open_or_create_with(&name, 1, &short());
    assert_err!(
        r,
        OpenError::UntrustedOwner {
            owner: NOBODY,
            expected: 0
        }
    );
    assert_eq!(
        read_all(&name),
        before,
        "a refused open modified another user's segment"
    );

    shmproc::remove(&name).unwrap();
    assert_gone(&name);
}

#[test]
fn root_segment_opened_by_nobody() {
    if !is_root() {
        eprintln!("note: root_segment_opened_by_nobody needs root (to become nobody); skipped");
        return;
    }
    // Writable by everyone (so nobody can open it read-write): the owner check refuses it.
    let name = Name::new("rootseg");
    let v = Value::<u64>::create_with(&name, V, &Options::new().mode(0o666)).unwrap();
    let mut child = spawn("nobody_open", &[name.as_str()]);
    let line = child.expect_line("RESULT", common::LONG);
    child.wait_ok(common::LONG);
    if !line.starts_with("skip") {
        assert_eq!(line, format!("UntrustedOwner 0 {NOBODY}"));
    }
    drop(v);
    assert_gone(&name);

    // Owner-only: nobody cannot even open the file.
    let name = Name::new("rootseg");
    let v = Value::<u64>::create(&name, V).unwrap();
    let mut child = spawn("nobody_open", &[name.as_str()]);
    let line = child.expect_line("RESULT", common::LONG);
    child.wait_ok(common::LONG);
    if !line.starts_with("skip") {
        assert!(line.starts_with("Io "), "{line}");
    }
    assert_eq!(v.load().ok(), Some(V));
    drop(v);
    assert_gone(&name);
}
