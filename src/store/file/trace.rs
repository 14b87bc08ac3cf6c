//! A recording of the file store's I/O, for the power-cut simulation
//! (hidden cargo feature `__power_cut`; without it every hook is empty and
//! compiles away).
//!
//! Every call the store makes that changes what a disk holds is appended to
//! one process-wide list, in the order the store issued it: a file created,
//! bytes written at an offset, a file extended (fallocate) or truncated, an
//! fsync or fdatasync that *returned success* (with how far back it
//! reaches), a file unlinked, a directory fsync'ed. From that list a test can
//! build every state a power cut could leave: what a completed sync covered
//! is on disk, anything later may or may not be (sector by sector), and a
//! directory entry is durable once its directory was fsync'ed.
//!
//! Writes are recorded when they are issued (for io_uring, when the chain is
//! submitted), syncs when they return; a sync covers the events of its file
//! up to the index recorded in it, which for a linked io_uring chain is the
//! last write before it in the chain, not whatever was submitted after it.

use std::path::{Path, PathBuf};

/// One recorded operation.
#[cfg_attr(not(feature = "__power_cut"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoEvent {
    /// A new file's directory entry (durable after a [`IoEvent::DirSynced`]
    /// of its directory).
    Create {
        /// The file.
        path: PathBuf,
    },
    /// Bytes written at `offset`.
    Write {
        /// The file.
        path: PathBuf,
        /// Byte offset.
        offset: u64,
        /// What was written.
        bytes: Vec<u8>,
    },
    /// The file's size raised to at least `len` (fallocate; reads as zeros).
    Extend {
        /// The file.
        path: PathBuf,
        /// New size.
        len: u64,
    },
    /// The file's size set to `len`.
    Truncate {
        /// The file.
        path: PathBuf,
        /// New size.
        len: u64,
    },
    /// An fsync or fdatasync of `path` returned success: every earlier event
    /// of that file with an index `<= through` is durable.
    Synced {
        /// The file.
        path: PathBuf,
        /// Index of the last event it covers.
        through: usize,
    },
    /// The file's directory entry removed (durable after a
    /// [`IoEvent::DirSynced`] of its directory).
    Unlink {
        /// The file.
        path: PathBuf,
    },
    /// An fsync of the directory returned success.
    DirSynced {
        /// The directory.
        path: PathBuf,
    },
    /// A point the test marked (see [`mark`]).
    Mark(u64),
}

#[cfg(feature = "__power_cut")]
mod imp {
    use super::IoEvent;
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Mutex;

    pub(super) struct Trace {
        pub(super) events: Vec<IoEvent>,
        /// Open descriptors of segments (the engines know only the fd).
        pub(super) fds: HashMap<i32, PathBuf>,
    }

    pub(super) static TRACE: Mutex<Option<Trace>> = Mutex::new(None);

    /// Runs `f` on the trace if one is being recorded.
    pub(super) fn with<R>(f: impl FnOnce(&mut Trace) -> R) -> Option<R> {
        let mut guard = TRACE.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().map(f)
    }
}

/// Starts recording (discarding any earlier recording).
#[cfg(feature = "__power_cut")]
pub fn start() {
    let mut guard = imp::TRACE.lock().unwrap_or_else(|p| p.into_inner());
    *guard = Some(imp::Trace {
        events: Vec::new(),
        fds: std::collections::HashMap::new(),
    });
}

/// Stops recording and returns what was recorded.
#[cfg(feature = "__power_cut")]
pub fn take() -> Vec<IoEvent> {
    let mut guard = imp::TRACE.lock().unwrap_or_else(|p| p.into_inner());
    guard.take().map(|t| t.events).unwrap_or_default()
}

/// Appends a mark (a point of the workload: a `sync()` returned, say) and
/// returns its index.
#[cfg(feature = "__power_cut")]
pub fn mark(n: u64) -> usize {
    record(|| IoEvent::Mark(n))
}

/// Appends an event; returns its index (0 when not recording).
#[cfg(feature = "__power_cut")]
pub(crate) fn record(event: impl FnOnce() -> IoEvent) -> usize {
    imp::with(|t| {
        t.events.push(event());
        t.events.len() - 1
    })
    .unwrap_or(0)
}

/// Index of the last event (what a sync issued now covers).
#[cfg(feature = "__power_cut")]
pub(crate) fn last() -> usize {
    imp::with(|t| t.events.len().saturating_sub(1)).unwrap_or(0)
}

/// Remembers which segment an open descriptor is.
#[cfg(feature = "__power_cut")]
pub(crate) fn opened(fd: i32, path: &Path) {
    imp::with(|t| t.fds.insert(fd, path.to_path_buf()));
}

/// The path of a descriptor given to [`opened`].
#[cfg(feature = "__power_cut")]
pub(crate) fn fd_path(fd: i32) -> Option<PathBuf> {
    imp::with(|t| t.fds.get(&fd).cloned()).flatten()
}

#[cfg(not(feature = "__power_cut"))]
#[inline(always)]
pub(crate) fn record(_event: impl FnOnce() -> IoEvent) -> usize {
    0
}

#[cfg(not(feature = "__power_cut"))]
#[inline(always)]
pub(crate) fn last() -> usize {
    0
}

#[cfg(not(feature = "__power_cut"))]
#[inline(always)]
pub(crate) fn opened(_fd: i32, _path: &Path) {}

#[cfg(not(feature = "__power_cut"))]
#[inline(always)]
pub(crate) fn fd_path(_fd: i32) -> Option<PathBuf> {
    None
}

/// Records a write of `parts`, back to back, at `offset` of descriptor `fd`.
pub(crate) fn write_fd(fd: i32, offset: u64, parts: &[&[u8]]) -> usize {
    match fd_path(fd) {
        Some(path) => record(|| IoEvent::Write {
            path,
            offset,
            bytes: parts.concat(),
        }),
        None => 0,
    }
}

/// Records a successful sync of descriptor `fd` covering events `..= through`.
pub(crate) fn synced_fd(fd: i32, through: usize) {
    if let Some(path) = fd_path(fd) {
        record(|| IoEvent::Synced { path, through });
    }
}
