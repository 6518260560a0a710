//! Named points where crash tests can stop a process between two steps of an algorithm.
//!
//! With the `fault-injection` feature, [`point`] calls the hook that `set_hook` installed
//! (`shmproc` installs one that pauses or kills the process when the point's name matches the
//! `SHMPROC_FAULT` environment variable). Without the feature, or under loom, [`point`] is
//! empty and compiles to nothing.

#[cfg(all(feature = "fault-injection", not(loom)))]
static HOOK: std::sync::OnceLock<fn(&'static str)> = std::sync::OnceLock::new();

/// Installs the function [`point`] calls; the first installation wins, later ones are
/// ignored (every caller installs the same hook).
#[cfg(all(feature = "fault-injection", not(loom)))]
pub fn set_hook(hook: fn(&'static str)) {
    let _ = HOOK.set(hook);
}

/// A named point where a crash test may stop the process.
#[inline(always)]
pub fn point(_name: &'static str) {
    #[cfg(all(feature = "fault-injection", not(loom)))]
    if let Some(hook) = HOOK.get() {
        hook(_name);
    }
}
