//! Cross-process test harness: the test binary re-runs itself with a role
//! (`shmproc-testkit`).
//!
//! A parent test calls [`spawn`]`(role, args)`: the child is this same test binary, asked to
//! run only the `child_entry` test, with `SHMPROC_ROLE` naming what to do. Each test file
//! defines `#[test] fn child_entry()` that calls [`child_main`] with its role table. Children
//! report with lines on stdout (`READY`, `RESULT ...`), are killed and reaped on drop, and
//! segment names are unique per test and removed by [`Name`]'s drop.
#![allow(dead_code, unused_imports)]

pub use shmproc_testkit::{Child, LONG, child_main, role, say, scribble, wait_parent};

/// A segment name unique to this process and call, removed from the system on drop.
pub struct Name(pub String);

impl Name {
    pub fn new(tag: &str) -> Name {
        let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(6).collect();
        Name(shmproc_testkit::unique_name("t", &tag))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmproc::remove(&self.0);
    }
}

/// Starts this test binary as a child running `role` with `args` (in `SHMPROC_ARGS`,
/// separated by spaces), plus extra environment variables.
pub fn spawn_env(role: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut spawn = shmproc_testkit::Spawn::new(role)
        .args(args)
        .libtest_entry("child_entry");
    for (k, v) in env {
        spawn = spawn.env(*k, *v);
    }
    spawn.spawn()
}

pub fn spawn(role: &str, args: &[&str]) -> Child {
    spawn_env(role, args, &[])
}
