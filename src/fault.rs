//! Fault points for crash tests (feature `fault-injection`, test builds only).
//!
//! A process started with `SHMPROC_FAULT=<point name>` prints `SHMPROC_FAULT_HIT <name>` on
//! stdout when it reaches that point, then either waits there to be killed
//! (`SHMPROC_FAULT_ACTION` unset or `hang`) or stops itself with SIGSTOP
//! (`SHMPROC_FAULT_ACTION=stop`) and carries on when continued with SIGCONT.
//! Without the feature every point compiles to nothing.

#[cfg(feature = "fault-injection")]
pub(crate) fn hit(name: &'static str) {
    use std::io::Write;
    use std::sync::OnceLock;
    static CONF: OnceLock<(Option<String>, bool)> = OnceLock::new();
    let (point, stop) = CONF.get_or_init(|| {
        (
            std::env::var("SHMPROC_FAULT").ok(),
            std::env::var("SHMPROC_FAULT_ACTION").as_deref() == Ok("stop"),
        )
    });
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
