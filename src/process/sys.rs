//! The few system calls `process` and `pool` need beyond the public types: the parent-death
//! signal, the process name, signals to our own children and where the executable's code is
//! mapped. Linux only, like the rest of the crate (`src/os`).

use std::io;
use std::ops::Range;
use std::sync::OnceLock;

/// This process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// The parent's process id.
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid(2) takes no arguments and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// In a freshly forked child, before `exec`: asks the kernel to SIGKILL this process when
/// the thread that forked it exits, and fails if the parent `parent` is already gone (it
/// may have died before the request took effect). Only async-signal-safe calls.
pub(crate) fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG takes a signal number and no pointers.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if parent_pid() != parent {
        // The parent exited before the request took effect. (No allocation here: this runs
        // between fork and exec.)
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Sets the name of the calling thread, which for the main thread is the process name that
/// `ps` and `top` show (at most 15 bytes are kept).
pub(crate) fn set_process_name(name: &str) {
    let mut buf = [0u8; 16];
    let bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    buf[..bytes.len()].copy_from_slice(&bytes);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the
    // pointer; `buf` is 16 bytes and its last byte is 0.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Sends `signal` to the process `pid`. The caller guarantees that `pid` is a child of this
/// process that has not been reaped yet, so the id cannot have been reused.
pub(crate) fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers.
    let r = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Address ranges of the main executable's executable (`PF_X`) `PT_LOAD` segments, as
/// mapped in this process.
fn exe_code() -> &'static [Range<usize>] {
    static CODE: OnceLock<Vec<Range<usize>>> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut ranges: Vec<Range<usize>> = Vec::new();
        // SAFETY: the callback only reads the `dl_phdr_info` it is given, for the duration
        // of the call, and writes through `data`, which is `&mut ranges` cast to a pointer.
        unsafe { libc::dl_iterate_phdr(Some(collect_first), (&raw mut ranges).cast()) };
        ranges
    })
}

/// `dl_iterate_phdr` callback: records the first object's (the main program's) executable
/// segments and stops.
unsafe extern "C" fn collect_first(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `&mut Vec` passed by `exe_code`, alive for the whole iteration.
    let ranges = unsafe { &mut *data.cast::<Vec<Range<usize>>>() };
    // SAFETY: the loader passes a valid `dl_phdr_info` for the duration of the callback.
    let info = unsafe { &*info };
    let count = usize::from(info.dlpi_phnum);
    if info.dlpi_phdr.is_null() || count == 0 {
        return 1;
    }
    // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of the object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, count) };
    for h in headers {
        if h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0 {
            let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
            ranges.push(start..start.wrapping_add(h.p_memsz as usize));
        }
    }
    // The first object is the main program; stop after it.
    1
}

/// Whether `addr` lies in the main executable's code.
pub(crate) fn in_exe_code(addr: usize) -> bool {
    exe_code().iter().any(|r| r.contains(&addr))
}
