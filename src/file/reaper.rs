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

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::format::SegmentId;
use super::trace::{self, IoEvent};

#[derive(Debug, Default)]
struct State {
    /// Segments still to remove (oldest first).
    doomed: BTreeSet<SegmentId>,
    /// The store is dropped: stop after the current removal.
    stop: bool,
    /// A removal is running.
    busy: bool,
    /// Tests: start no removal while set.
    #[cfg(test)]
    paused: bool,
    /// The last removal that failed, reported by [`Reaper::take_error`].
    error: Option<String>,
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

    /// Schedules `ids` for removal; never blocks on I/O.
    pub(crate) fn remove(&self, ids: impl IntoIterator<Item = SegmentId>) {
        self.shared.lock().doomed.extend(ids);
        self.shared.wake.notify_all();
    }

    /// Waits until every scheduled removal is done (at close: the store's
    /// files are left as the compaction meant). Bounded by the number of
    /// segments scheduled.
    pub(crate) fn drain(&self) {
        let mut state = self.shared.lock();
        while (state.busy || !state.doomed.is_empty()) && !state.stop {
            state = self
                .shared
                .wake
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
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
        let id = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                #[cfg(test)]
                let paused = state.paused;
                #[cfg(not(test))]
                let paused = false;
                if let Some(id) = (!paused).then(|| state.doomed.pop_first()).flatten() {
                    state.busy = true;
                    break id;
                }
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = remove_durably(dir, id);
        let mut state = shared.lock();
        state.busy = false;
        if let Err(e) = result {
            let e = format!("removing {}: {e}", id.file_name());
            tracing::warn!("{e}");
            state.error = Some(e);
        }
        drop(state);
        // Both the drainer and this thread wait on `wake`.
        shared.wake.notify_all();
    }
}

/// Unlinks segment `id` and makes that durable.
fn remove_durably(dir: &std::path::Path, id: SegmentId) -> std::io::Result<()> {
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
