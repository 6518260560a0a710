//! Every system call of the crate: shared-memory objects, futexes, OFD-lock beacons.
//!
//! One file per platform, chosen with `cfg`. Linux is the platform we build and test on;
//! other Unix systems need a port of this module (macOS: no OFD locks and no futex, so
//! pid + start time for liveness and `os_sync_wait_on_address` or a polling wait).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shmproc supports Linux only for now: its `os` layer (futexes, OFD-lock liveness beacons, \
     /dev/shm) has not been ported to this target. See src/os/mod.rs."
);
