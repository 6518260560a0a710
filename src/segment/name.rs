//! Segment names: what users may pass, and the OS-level name derived from it.

use crate::error::OpenError;

/// Prefix of every OS-level name, so the crate's segments are recognisable in `/dev/shm`.
pub const OS_PREFIX: &str = "/shmproc.";

/// Longest user-visible name, in bytes. macOS allows 31 bytes for a shm name including the
/// leading `/`; with the 9-byte prefix that leaves 22, and we keep the same limit everywhere
/// so a program that works on Linux does not fail on macOS.
pub const MAX_NAME_LEN: usize = 31 - OS_PREFIX.len();

/// Checks `name` and returns the OS-level name (`/shmproc.<name>`).
///
/// Rules: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `_`, `-` and `.`, not
/// starting with `.` or `-`.
pub(crate) fn os_name(name: &str) -> Result<String, OpenError> {
    let bad = |reason| {
        Err(OpenError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 22 bytes (the portable limit for shared-memory names)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return bad("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("must not start with '.' or '-'");
    }
    Ok(format!("{OS_PREFIX}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert_eq!(os_name("counter").unwrap(), "/shmproc.counter");
        assert!(os_name("a.b-c_D9").is_ok());
        assert!(os_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            "a\0b",
            "..",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(matches!(os_name(bad), Err(OpenError::InvalidName { .. })), "{bad:?}");
        }
        assert_eq!(MAX_NAME_LEN, 22);
    }
}
