//! File and filesystem helpers of the store: fsync and fdatasync of a
//! segment, trimming, preallocation, free space, errors naming a path.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::format::SegmentId;
use super::trace::{self, IoEvent};
use crate::error::Error;

/// True if the filesystem of `dir` has room for another copy of every
/// record stored (what a whole-set compaction may write) and a segment; if
/// that cannot be told, false (compact in steps, which needs the least).
pub(super) fn room_for_a_copy(
    dir: &Path,
    segment_bytes: &std::collections::BTreeMap<SegmentId, u64>,
    segment_bytes_max: u64,
) -> bool {
    let stored: u64 = segment_bytes.values().sum();
    free_bytes(dir).is_some_and(|free| free >= stored.saturating_add(2 * segment_bytes_max))
}

/// Bytes free for an unprivileged writer on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes the struct it is given; zeroed is a valid
    // value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and
    // `st` is a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// An I/O error that names the path it happened on (the kind is kept).
pub(crate) fn io_error_at(path: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

#[cfg(test)]
thread_local! {
    /// Tests: fsyncs and fdatasyncs of segments done by this thread.
    pub(super) static SYNCS_ON_THIS_THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// fsync (`all`) or fdatasync of a segment, recorded in the I/O trace when
/// it returns success.
pub(super) fn sync_file(file: &File, all: bool) -> std::io::Result<()> {
    #[cfg(test)]
    SYNCS_ON_THIS_THREAD.with(|n| n.set(n.get() + 1));
    let through = trace::last();
    if all {
        file.sync_all()?;
    } else {
        file.sync_data()?;
    }
    trace::synced_fd(file.as_raw_fd(), through);
    Ok(())
}

/// Cuts `file` to `len` bytes (the end of its data); `durable`: fsync the
/// new size.
pub(super) fn trim(file: &File, len: u64, durable: bool) -> std::io::Result<()> {
    // The path first: `record` holds the trace's lock while it runs.
    let path = trace::fd_path(file.as_raw_fd()).unwrap_or_default();
    trace::record(|| IoEvent::Truncate { path, len });
    file.set_len(len)?;
    if durable {
        sync_file(file, true)?;
    }
    Ok(())
}

/// Reserves `len` bytes for `file` (size included), so appends inside it need
/// no metadata update at fdatasync.
pub(super) fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    // The path first: `record` holds the trace's lock while it runs.
    let path = trace::fd_path(file.as_raw_fd()).unwrap_or_default();
    trace::record(|| IoEvent::Extend { path, len });
    #[cfg(target_os = "linux")]
    {
        // SAFETY: fallocate on a descriptor we own; no memory involved.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    file.set_len(len)
}
