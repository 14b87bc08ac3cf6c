//! Removing the segments a compaction replaced, on a thread of its own.
//!
//! Each removal is an unlink and a directory fsync (so that a crash never
//! leaves a segment whose seal, in a later header, is gone while the segment
//! itself remains: segments go oldest first, each removal durable before
//! the next, and recovery relies on that order to tell a segment compaction
//! removed from one that went missing). With thousands of small segments
//! that takes seconds; on the flusher thread it stalled every put and
//! `sync()` for as long (11.4 s for 2,000 segments on the machine).
//! Here the flusher only hands the ids over and goes on.
//!
//! The version floor the compaction came with is made durable (`floor.rs`)
//! before the first of its segments goes: those segments may hold the only
//! records of deleted keys.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::format::SegmentId;
use super::trace::{self, IoEvent};
use crate::version::Version;

#[derive(Debug, Default)]
struct State {
    /// Segments still to remove (oldest first).
    doomed: BTreeSet<SegmentId>,
    /// The version floor to keep before the next removal.
    floor: Version,
    /// The floor kept (durable) so far.
    floor_kept: Version,
    /// The store is dropped: stop after the current removal.
    stop: bool,
    /// A removal is running.
    busy: bool,
    /// Tests: start no removal while set.
    #[cfg(test)]
    paused: bool,
    /// The first removal that failed since the last [`Reaper::take_error`].
    error: Option<String>,
    /// A removal failed: remove nothing more until new work comes (going on
    /// with a newer segment while an older one stays would leave a seal of
    /// a missing segment with an older one present, which recovery refuses).
    stalled: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The removal thread of one store directory.
#[derive(Debug)]
pub(crate) struct Reaper {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reaper {
    /// Starts the thread for `dir`.
    pub(crate) fn start(dir: PathBuf) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wb-reaper".into())
            .spawn(move || run(&theirs, &dir))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The floor recovery found kept: no need to write it again.
    pub(crate) fn floor_kept(&self, floor: Version) {
        let mut state = self.shared.lock();
        state.floor_kept = state.floor_kept.max(floor);
        state.floor = state.floor.max(floor);
    }

    /// Schedules `ids` for removal, after `floor` is kept; never blocks on
    /// I/O.
    pub(crate) fn remove(&self, ids: impl IntoIterator<Item = SegmentId>, floor: Version) {
        let mut state = self.shared.lock();
        state.floor = state.floor.max(floor);
        state.doomed.extend(ids);
        state.stalled = false;
        drop(state);
        self.shared.wake.notify_all();
    }

    /// Waits until every scheduled removal is done (at close: the store's
    /// files are left as the compaction meant), at most `timeout`, and not
    /// at all once a removal failed or the thread is gone. What is left is
    /// superseded segments, oldest removed first: the next open reads them
    /// (their records are older than the compacted copies) and the next
    /// compaction removes them.
    pub(crate) fn drain(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        while (state.busy || !state.doomed.is_empty()) && !state.stalled {
            let alive = self.thread.as_ref().is_some_and(|t| !t.is_finished());
            let now = std::time::Instant::now();
            if !alive || deadline.is_some_and(|d| now >= d) {
                return;
            }
            // Bounded waits: the thread's end is noticed too.
            let wait = deadline.map_or(std::time::Duration::from_millis(100), |d| {
                (d - now).min(std::time::Duration::from_millis(100))
            });
            state = self
                .shared
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Tests: holds (or releases) removals not yet started.
    #[cfg(test)]
    pub(crate) fn pause(&self, paused: bool) {
        self.shared.lock().paused = paused;
        self.shared.wake.notify_all();
    }

    /// The last removal error since the previous call.
    pub(crate) fn take_error(&self) -> Option<String> {
        self.shared.lock().error.take()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Segments left over are superseded ones, oldest removed first: the
        // next open reads them (their records are older than the compacted
        // copies) and the next compaction removes them.
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, dir: &std::path::Path) {
    loop {
        let (id, floor) = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                #[cfg(test)]
                let paused = state.paused || state.stalled;
                #[cfg(not(test))]
                let paused = state.stalled;
                if let Some(id) = (!paused).then(|| state.doomed.pop_first()).flatten() {
                    state.busy = true;
                    let floor = (state.floor > state.floor_kept).then_some(state.floor);
                    break (id, floor);
                }
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = match floor {
            Some(floor) => super::floor::write(dir, floor)
                .map_err(|e| format!("keeping the version floor: {e}")),
            None => Ok(()),
        }
        .and_then(|()| {
            remove_durably(dir, id).map_err(|e| format!("removing {}: {e}", id.file_name()))
        });
        let mut state = shared.lock();
        state.busy = false;
        match result {
            Ok(()) => {
                if let Some(floor) = floor {
                    state.floor_kept = state.floor_kept.max(floor);
                }
            }
            Err(e) => {
                tracing::warn!("{e}; removing no newer segment until the next compaction");
                state.doomed.insert(id);
                state.stalled = true;
                state.error.get_or_insert(e);
            }
        }
        drop(state);
        // Both the drainer and this thread wait on `wake`.
        shared.wake.notify_all();
    }
}

/// Unlinks segment `id` and makes that durable.
fn remove_durably(dir: &std::path::Path, id: SegmentId) -> std::io::Result<()> {
    // The hint first: a hint without its segment is never read.
    super::hint::remove(&super::hint::path(dir, id));
    let path = id.path(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => trace::record(|| IoEvent::Unlink { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    File::open(dir)?.sync_all()?;
    trace::record(|| IoEvent::DirSynced {
        path: dir.to_path_buf(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    /// A removal that fails stops the removals: a newer segment must not go
    /// while an older one stays. New work retries, oldest first.
    #[test]
    fn a_failed_removal_stops_the_newer_ones() {
        let dir = tempfile::tempdir().unwrap();
        for id in 1..=3 {
            std::fs::write(SegmentId(id).path(dir.path()), b"old").unwrap();
        }
        // Segment 1 cannot be removed with remove_file: a directory is there.
        let one = SegmentId(1).path(dir.path());
        std::fs::remove_file(&one).unwrap();
        std::fs::create_dir(&one).unwrap();
        let reaper = Reaper::start(dir.path().to_path_buf()).unwrap();
        reaper.remove([SegmentId(1), SegmentId(2), SegmentId(3)], Version(7));
        reaper.drain(std::time::Duration::from_secs(10));
        assert!(reaper.take_error().is_some_and(|e| e.contains("000001.wb")));
        assert!(
            SegmentId(2).path(dir.path()).exists(),
            "2 went while 1 stayed"
        );
        assert!(SegmentId(3).path(dir.path()).exists());
        std::fs::remove_dir(&one).unwrap();
        std::fs::write(&one, b"old").unwrap();
        reaper.remove([], Version(7));
        reaper.drain(std::time::Duration::from_secs(10));
        for id in 1..=3 {
            assert!(!SegmentId(id).path(dir.path()).exists(), "{id}");
        }
        assert!(reaper.take_error().is_none());
        assert_eq!(super::super::floor::read(dir.path()).unwrap(), Version(7));
    }
}
