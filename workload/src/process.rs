//! What a bench asks about its own process: its memory, and which core
//! a thread runs on.

/// Peak resident set size of this process, bytes: the kernel's `VmHWM` in
/// `/proc/self/status` (0 where there is none).
///
/// Read from `/proc` rather than `getrusage`: `ru_maxrss` can count the
/// image the process replaced at `exec` (the forking `cargo` or shell), and
/// rustix, the crate this one makes its system calls through, does not wrap
/// it.
pub fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM:")
}

/// Resident set size of this process now, bytes: `VmRSS` (0 where there is
/// none).
pub fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib * 1024
}

/// Pins the calling thread to `core`, if the machine has it (a failure
/// leaves the thread where the scheduler puts it).
///
/// Not via `core_affinity::get_core_ids()`: that lists the *calling
/// thread's* allowed cores, which a thread spawned by a pinned thread
/// inherits, so it would offer only the parent's core.
pub fn pin_current_thread(core: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
}
