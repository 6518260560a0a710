//! Removing segments that only dead processes held.

use super::probe::status_of;
use super::{SegmentReport, Status};
use crate::error::OpenError;
use crate::os;
use crate::segment::name::{self, OS_PREFIX};
use crate::segment::open::{anyone_home, hold_every_beacon, unlink_if_same};
use serde::Serialize;
use std::os::fd::AsFd;

/// What [`collect_garbage`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// Segments removed (or, in a dry run, that would be), by name.
    pub removed: Vec<String>,
    /// Segments that are garbage but could not be removed, with why.
    pub failed: Vec<(String, String)>,
}

impl SegmentReport {
    /// Whether [`collect_garbage`] removes this segment: its creator died before publishing
    /// it, or it is published, no live process holds it, and some participant left it by
    /// dying (its record still taken). With `idle`, also published segments that nobody
    /// holds and nobody died in (left on purpose with `Options::persist`, or by a process
    /// that had closed its handles before it crashed).
    ///
    /// Damaged and foreign segments and those of another layout version are never garbage
    /// here: remove them by name ([`crate::remove`]) after a look.
    pub fn is_garbage(&self, idle: bool) -> bool {
        garbage(self, idle)
    }
}

fn garbage(report: &SegmentReport, idle: bool) -> bool {
    match &report.status {
        Status::Abandoned => true,
        Status::Ready(d) => {
            let alive = d.participants.iter().any(|p| p.alive);
            !alive && (idle || !d.participants.is_empty())
        }
        _ => false,
    }
}

/// Removes every segment of this crate that only dead processes held (see
/// [`SegmentReport::is_garbage`] for exactly which; `idle` adds the ones nobody holds).
/// With `dry_run`, changes nothing and lists what it would remove.
///
/// Never removes a segment that a live process holds: each removal first takes every
/// beacon of the segment (the bytes live handles and initialising creators hold), re-reads
/// it while holding them, and checks that the name still names the object it read. A
/// process that opens the segment while that happens (a few microseconds) cannot register
/// and gets an error from its `open`; a process that opens it after the removal finds no
/// name.
///
/// # Errors
/// `Io` when `/dev/shm` cannot be listed. Segments that could not be removed are in
/// [`Collected::failed`].
pub fn collect_garbage(dry_run: bool, idle: bool) -> Result<Collected, OpenError> {
    let mut out = Collected::default();
    for report in super::list()? {
        if !report.is_garbage(idle) {
            continue;
        }
        if dry_run {
            out.removed.push(report.name);
            continue;
        }
        match remove_if(&report.os_name, idle) {
            Ok(true) => out.removed.push(report.name),
            Ok(false) => {} // picked up by somebody meanwhile
            Err(e) => out.failed.push((report.name, e.to_string())),
        }
    }
    Ok(out)
}

/// Removes the segment `name` if it is garbage ([`SegmentReport::is_garbage`], with `idle`);
/// `Ok(false)` when it is not (in use, or not ours to judge).
///
/// # Errors
/// `InvalidName`, `NotFound`, `Io` (for example: no write permission on it).
pub fn remove_unused(name: &str, idle: bool) -> Result<bool, OpenError> {
    let os_name = name::os_name(name)?;
    remove_if(&os_name, idle).map_err(|e| crate::segment::open::map_missing(e, name, "gc"))
}

fn remove_if(os_name: &str, idle: bool) -> std::io::Result<bool> {
    let fd = os::shm_open_existing(os_name)?;
    if anyone_home(fd.as_fd()) {
        return Ok(false);
    }
    // Hold every beacon while deciding (closing `fd` drops them, after the unlink): no
    // creator can be initialising and no handle can register until we are done
    // (`models/leave_model.py`, the collector).
    if !hold_every_beacon(fd.as_fd()) {
        return Ok(false);
    }
    let info = os::fstat(fd.as_fd())?;
    let report = SegmentReport {
        name: os_name.strip_prefix(OS_PREFIX).unwrap_or(os_name).to_owned(),
        os_name: os_name.to_owned(),
        size_bytes: info.size,
        owner_uid: info.uid,
        mode: info.mode,
        changed_unix: info.changed,
        status: status_of(fd.as_fd(), info.size, info.is_regular),
    };
    Ok(report.is_garbage(idle) && unlink_if_same(os_name, info.inode))
}
