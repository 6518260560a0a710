//! Fault points for crash tests (feature `fault-injection`, test builds only).
//!
//! A process started with `SHMPROC_FAULT=<point name>` prints `SHMPROC_FAULT_HIT <name>` on
//! stdout when it reaches that point, then either waits there to be killed
//! (`SHMPROC_FAULT_ACTION` unset or `hang`) or stops itself with SIGSTOP
//! (`SHMPROC_FAULT_ACTION=stop`) and carries on when continued with SIGCONT.
//! Without the feature every point compiles to nothing.

/// 0: not read yet, 1: no fault point configured, 2: one is. The common case costs one
/// relaxed load, so test and bench builds (which have the feature on through the self
/// dev-dependency) keep the fast paths fast.
#[cfg(feature = "fault-injection")]
static STATE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[cfg(feature = "fault-injection")]
#[inline]
pub(crate) fn hit(name: &'static str) {
    use std::sync::atomic::Ordering;
    if STATE.load(Ordering::Relaxed) == 1 {
        return;
    }
    hit_slow(name, &STATE);
}

/// Whether this process was started with a fault point (`SHMPROC_FAULT`): code that must be
/// split for a fault point to stop it half-way (a message's copy) does so only then.
#[cfg(feature = "fault-injection")]
#[inline]
pub(crate) fn armed() -> bool {
    use std::sync::atomic::Ordering;
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => std::env::var_os("SHMPROC_FAULT").is_some(),
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn armed() -> bool {
    false
}

#[cfg(feature = "fault-injection")]
#[cold]
#[inline(never)]
fn hit_slow(name: &'static str, state: &std::sync::atomic::AtomicU8) {
    use std::io::Write;
    use std::sync::OnceLock;
    use std::sync::atomic::Ordering;
    static CONF: OnceLock<(Option<String>, bool)> = OnceLock::new();
    let (point, stop) = CONF.get_or_init(|| {
        (
            std::env::var("SHMPROC_FAULT").ok(),
            std::env::var("SHMPROC_FAULT_ACTION").as_deref() == Ok("stop"),
        )
    });
    if point.is_none() {
        state.store(1, Ordering::Relaxed);
        return;
    }
    state.store(2, Ordering::Relaxed);
    if point.as_deref() != Some(name) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "SHMPROC_FAULT_HIT {name}");
    let _ = out.flush();
    drop(out);
    if *stop {
        crate::os::stop_self();
    } else {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn hit(_name: &'static str) {}

/// Routes the fault points of the algorithms in `shmproc-raw` (the ring's
/// `queue.put.after_claim` and the like) to [`hit`], in a process started with a fault point
/// (`SHMPROC_FAULT`) only: elsewhere each point stays one load of an empty hook, not an
/// indirect call (tests, benches and examples build with the feature on). Every segment
/// handle calls it when it is made, before any ring in it is used.
#[inline(always)]
pub(crate) fn install() {
    #[cfg(feature = "fault-injection")]
    if armed() {
        crate::raw::fault::set_hook(hit);
    }
}
