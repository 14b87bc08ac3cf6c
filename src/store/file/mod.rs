//! `FileStore`: the embedded, log-structured, checksummed store.
//!
//! A directory of numbered segment files (layout in [`mod@format`]); each batch
//! is one frame appended at the active segment's tail; segments are
//! preallocated (so fdatasync need not update metadata) and rotated at
//! `FileOptions::segment_bytes_max`. Frames go to the disk through an `io`
//! engine, io_uring or pwrite, strictly in order: one chain of frames (the
//! batches queued, at most `CHAIN_FRAMES_MAX`) is in flight at a time, each
//! write linked to its fdatasync under `Durability::Batch`.
//!
//! # Failures (G8)
//!
//! A failed write or fdatasync fails its batch and every later batch of the
//! same chain; the flusher retries them from memory after a backoff. The
//! segment is never written again (after a failed fdatasync the kernel may
//! have dropped the dirty pages, and a later fdatasync could falsely
//! succeed): it is sealed at the end of the last frame confirmed durable,
//! and the next segment's header records that end, so recovery trusts
//! nothing after it. ENOSPC when creating a segment fails the batches the
//! same way, and the store resumes when space returns.
//!
//! # Recovery (G5)
//!
//! [`scan`] reads every segment, frame by frame: see its rules; a cache
//! that reads keys on demand takes a sealed segment's keys from its `hint`
//! file instead, when the hint passes its checks. The newest
//! segment is made durable (and trimmed past its data) before the first
//! write after opening starts a new segment whose header seals it at the end
//! of its intact data, so a torn tail, once cut, stays cut.
//!
//! # Compaction (G12)
//!
//! A compaction rotates to a new segment and replaces the segments left
//! behind (see `compaction`). When the disk could not hold a second copy of
//! what is stored it goes in steps, oldest segment first: the flusher reads
//! a segment's keys and versions through [`Compaction::read`] and rewrites
//! those still live; otherwise the flusher rewrites the whole live set from
//! memory. Once the rewrite is durable the old segments go to `reaper`, a
//! thread that removes them (each unlink made durable before the next, so
//! removed segments are always the oldest ones, which `scan` relies on).
//!
//! # Where things are
//!
//! - `format`: the on-disk layout; `scan`: reading it back (recovery,
//!   `wb inspect`, `wb verify`, compaction's reads).
//! - `pump`: queued batches into a chain of frame ops; `active`: the
//!   segment frames are appended to and the ops written at its tail; `io`:
//!   the engines that run a chain.
//! - `finish`: a finished chain's completions, `Durability::Deferred`'s held
//!   batches and commit markers, and what a failure does.
//! - `segments`: creating, retiring and sealing segments; `recovery`: what
//!   opening does around the scan; `hint`: the hint files; `keydir` and
//!   `reader`: reading one key; `compaction` and `reaper`: replacing old
//!   segments and removing them.
//! - `disk`: fsync, trim, preallocation and free space; `lock`: the
//!   directory's lock; `trace`: the I/O trace of the power-cut simulation.

mod active;
mod compaction;
mod disk;
mod finish;
mod floor;
pub(crate) mod format;
mod hint;
mod io;
mod keydir;
mod lock;
mod options;
mod pump;
mod reader;
mod reaper;
mod recovery;
pub(crate) mod scan;
mod segments;
mod sync_faults;
#[cfg(test)]
mod tests;
#[cfg(feature = "__power_cut")]
#[doc(hidden)]
pub(crate) mod trace;
#[cfg(not(feature = "__power_cut"))]
mod trace;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use active::Active;
use disk::{sync_file, trim};
use format::SegmentId;
use io::{new_engine, Engine};
use lock::DirLock;
use reaper::Reaper;

use crate::config::Durability;
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::record::RecordRef;
pub(crate) use disk::io_error_at;
pub use options::FileOptions;
pub use sync_faults::SyncFaults;

use crate::store::{Batch, Compaction, Completion, RecoveryReport, Store, StoreInfo};

/// The embedded file store. Open it with [`FileStore::open`], or let
/// [`WriteBehind::open`](crate::WriteBehind::open) do it.
#[derive(Debug)]
pub struct FileStore {
    /// The store directory (segments and `LOCK`).
    dir: PathBuf,
    /// Runs the chains of frame ops, one at a time.
    engine: Box<dyn Engine>,
    /// Removes the segments compactions replaced, off the flusher thread.
    reaper: Reaper,
    durability: Durability,
    /// Each segment is preallocated to this size and rotated before a frame
    /// would pass it.
    segment_bytes_max: u64,
    /// Longest frame body a new segment allows (a retry that grew past it
    /// gets a segment allowing its own length).
    frame_bytes_max: u32,
    /// The segment appended to; `None` before the first write after opening
    /// and after a failure whose new segment could not be created.
    active: Option<Active>,
    /// Id the next segment gets.
    next_id: u64,
    /// A seal to record in the next segment's header: the segment and the
    /// end of its trusted data.
    pending_seal: Option<(SegmentId, u64)>,
    /// Submitted, not yet in a chain.
    queue: VecDeque<Batch>,
    /// Batches in the chain in flight.
    in_chain: usize,
    /// Completions not yet handed to the flusher by `poll`.
    done: Vec<Completion>,
    /// Record bytes per segment on disk (for compaction decisions).
    segment_bytes: std::collections::BTreeMap<SegmentId, u64>,
    /// Rotate before the next chain (a compaction began).
    rotate_requested: bool,
    /// Compaction's read position: the segment and the offset to go on at.
    compaction_read: Option<(SegmentId, u64)>,
    /// The compaction in progress goes in steps (decided at its first read).
    compaction_in_steps: Option<bool>,
    /// Fault injection: fdatasyncs to report as failed.
    sync_faults: SyncFaults,
    /// `Durability::Deferred`: batches written since the last good fdatasync,
    /// held back until one covers them (or fails with them).
    unsynced: Vec<Completion>,
    /// `Durability::Deferred`: an fdatasync succeeded; write a commit marker at
    /// the head of the next chain.
    commit_due: bool,
    /// How long `close` waits for the reaper's removals.
    close_wait: Duration,
    /// Recovery may take sealed segments' keys from their hint files.
    read_hints: bool,
    /// Hints recovery wrote, put in place by the first `poll` (an open
    /// that fails leaves the old ones; see `Drop`).
    hints_to_install: Vec<SegmentId>,
    /// Where each key's newest put is (for reads of single keys).
    keydir: std::sync::Arc<keydir::KeyDir>,
    /// The reader handed to the cache, if asked for.
    reader: Option<std::sync::Arc<reader::FileReader>>,
    /// Declared last, so dropped last: the directory stays locked until the
    /// engine's writes and the reaper's removals have stopped.
    lock: DirLock,
}

impl FileStore {
    /// Opens (creating if needed) the store directory `dir` and takes its
    /// lock. Records are read by [`Store::recover`], which
    /// `WriteBehind::with_store` calls.
    ///
    /// # Errors
    /// [`Error::Config`] if `options` do not validate (nothing is
    /// created), [`Error::Locked`] if another handle holds the directory,
    /// [`Error::Io`] if it cannot be created or opened.
    pub fn open(dir: impl AsRef<Path>, options: &FileOptions) -> Result<Self, Error> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if dir.exists() && !dir.is_dir() {
            let e = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file is there, not a store directory: give a directory path",
            );
            return Err(io_error_at(&dir, e));
        }
        std::fs::create_dir_all(&dir).map_err(|e| io_error_at(&dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let engine = new_engine(options.io_backend)?;
        Self::with_engine(dir, lock, engine, options)
    }

    fn with_engine(
        dir: PathBuf,
        lock: DirLock,
        engine: Box<dyn Engine>,
        options: &FileOptions,
    ) -> Result<Self, Error> {
        let reaper = Reaper::start(dir.clone())?;
        Ok(Self {
            dir,
            lock,
            engine,
            reaper,
            durability: options.durability,
            segment_bytes_max: options.segment_bytes_max,
            frame_bytes_max: u32::try_from(options.frame_bytes_max).unwrap_or(u32::MAX),
            active: None,
            next_id: 1,
            pending_seal: None,
            queue: VecDeque::new(),
            in_chain: 0,
            done: Vec::new(),
            segment_bytes: std::collections::BTreeMap::new(),
            rotate_requested: false,
            compaction_read: None,
            compaction_in_steps: None,
            sync_faults: SyncFaults::default(),
            unsynced: Vec::new(),
            commit_due: false,
            close_wait: options.close_wait,
            read_hints: options.read_hints,
            hints_to_install: Vec::new(),
            keydir: std::sync::Arc::new(keydir::KeyDir::new()),
            reader: None,
        })
    }

    /// Fault injection for tests: a handle that makes this store's next
    /// fdatasyncs report failure (see [`SyncFaults`]).
    pub fn sync_faults(&self) -> SyncFaults {
        self.sync_faults.clone()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Puts the hints recovery wrote in place: the cache opened.
    fn install_hints(&mut self) {
        for id in std::mem::take(&mut self.hints_to_install) {
            hint::install(&self.dir, id);
        }
    }
}

impl Drop for FileStore {
    /// A store dropped before any `poll` (an open that failed after
    /// recovery) removes the hints recovery wrote, leaving the old ones.
    fn drop(&mut self) {
        for &id in &self.hints_to_install {
            hint::remove(&hint::new_path(&self.dir, id));
        }
    }
}

impl Store for FileStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(self.engine.name())
    }

    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        self.recover_segments(visit)
    }

    fn submit(&mut self, batch: Batch) {
        self.queue.push_back(batch);
        self.pump();
    }

    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
        self.install_hints();
        self.pump();
        if self.in_chain > 0 {
            let timeout = if self.done.is_empty() {
                timeout
            } else {
                Duration::ZERO
            };
            if let Some(chain) = self.engine.wait(timeout) {
                self.finish_chain(chain);
                self.pump();
            }
        }
        out.append(&mut self.done);
    }

    fn in_flight(&self) -> usize {
        self.queue.len() + self.in_chain + self.done.len() + self.unsynced.len()
    }

    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        Some(self)
    }

    fn reader(&mut self) -> Option<std::sync::Arc<dyn crate::store::StoreReader>> {
        let keydir = std::sync::Arc::clone(&self.keydir);
        let reader = self.reader.get_or_insert_with(|| {
            std::sync::Arc::new(reader::FileReader::new(self.dir.clone(), keydir))
        });
        Some(std::sync::Arc::clone(reader) as _)
    }

    fn close(&mut self) -> Result<(), StoreError> {
        self.install_hints();
        self.reaper.drain(self.close_wait);
        if let Some(e) = self.reaper.take_error() {
            tracing::warn!("compaction left segments behind: {e}");
        }
        // The flusher closes only once every batch has completed.
        if let Some(a) = self.active.as_mut() {
            if self.durability == Durability::Deferred {
                sync_file(&a.file, false).map_err(|e| {
                    StoreError::new(StoreErrorKind::Sync, format!("fdatasync at close: {e}"))
                })?;
            }
            // Restarts must not pile up preallocated segments.
            trim(&a.file, a.confirmed_end, true).map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Sync,
                    format!("trimming {} at close: {e}", a.id.file_name()),
                )
            })?;
            // The next open seals this segment at its data's end, which is
            // what it confirmed: the hint will match it.
            a.finish_hint(a.confirmed_end);
        }
        Ok(())
    }
}
