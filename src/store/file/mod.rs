//! `FileStore`: the embedded, log-structured, checksummed store.
//!
//! A directory of numbered segment files (layout in [`mod@format`]); each batch
//! is one frame appended at the active segment's tail; segments are
//! preallocated (so fdatasync need not update metadata) and rotated at
//! `FileOptions::segment_bytes_max`. Frames go to the disk through an `io`
//! engine, io_uring or pwrite, strictly in order: a chain of up to
//! `batches_in_flight_max` frames is in flight at a time, each write linked
//! to its fdatasync under `Durability::Batch`.
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
//! [`scan`] reads every segment, frame by frame: see its rules. The newest
//! segment is made durable (and trimmed past its data) before the first
//! write after opening starts a new segment whose header seals it at the end
//! of its intact data, so a torn tail, once cut, stays cut.
//!
//! # Compaction (G12)
//!
//! In steps, oldest segment first: the flusher reads a segment's keys and
//! versions through [`Store::read_for_compaction`], rewrites those still
//! live, and once that is durable hands the segment to `reaper`, a thread
//! that removes it (each unlink made durable before the next, so removed
//! segments are always the oldest ones, which `scan` relies on).

mod compaction;
pub(crate) mod format;
mod io;
mod lock;
mod options;
mod reaper;
pub(crate) mod scan;
mod sync_faults;
#[cfg(test)]
mod tests;
#[cfg(feature = "__power_cut")]
#[doc(hidden)]
pub(crate) mod trace;
#[cfg(not(feature = "__power_cut"))]
mod trace;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use format::{
    FrameHeader, FramePlace, SegmentHeader, SegmentId, FRAME_FLAG_COMMIT, FRAME_FLAG_SYNC,
    FRAME_HEADER_BYTES, SEGMENT_FLAG_NO_SYNC, SEGMENT_HEADER_BYTES,
};
use io::{Chain, Engine, FrameOp};
use lock::DirLock;
use reaper::Reaper;
use trace::IoEvent;

use crate::config::{Durability, IoBackend};
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::record::RecordRef;
pub use options::FileOptions;
pub use sync_faults::SyncFaults;

use crate::store::{Batch, Compaction, Completion, RecoveryReport, Store, StoreInfo};

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    id: SegmentId,
    file: Arc<File>,
    /// Where the next frame goes.
    write_pos: u64,
    /// End of the last frame confirmed written (and, under `Batch`,
    /// durable).
    confirmed_end: u64,
    /// End of the data covered by the last successful fdatasync: the seal
    /// point if this segment fails (under `Batch` it equals `confirmed_end`).
    synced_end: u64,
    /// The segment's salt (part of every frame header's checksum).
    salt: u64,
    /// No frame of this segment may be longer (its header says so).
    frame_bytes_max: u32,
}

impl Active {
    /// The header of a frame written next, at `write_pos`. Its durable end
    /// is what an fdatasync is known to have covered when the frame reaches
    /// the disk: under `Batch` the frame's own start (each frame is linked
    /// behind the previous frame's fdatasync), under `None` only what a
    /// completed fdatasync confirmed, never a frame written after it.
    fn frame_header(
        &self,
        durability: Durability,
        flags: u16,
        len: u32,
    ) -> [u8; FRAME_HEADER_BYTES] {
        let durable_end = match durability {
            Durability::Batch => self.write_pos,
            Durability::None => self.synced_end,
        };
        FrameHeader {
            flags,
            len,
            durable_end,
        }
        .encode(FramePlace {
            salt: self.salt,
            offset: self.write_pos,
        })
    }
}

/// The embedded file store. Open it with [`FileStore::open`], or let
/// [`WriteBehind::open`](crate::WriteBehind::open) do it.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    engine: Box<dyn Engine>,
    /// Removes the segments compactions replaced, off the flusher thread.
    reaper: Reaper,
    durability: Durability,
    segment_bytes_max: u64,
    frame_bytes_max: u32,
    active: Option<Active>,
    /// Id the next segment gets.
    next_id: u64,
    /// A seal to record in the next segment's header.
    pending_seal: Option<(SegmentId, u64)>,
    /// Submitted, not yet in a chain.
    queue: VecDeque<Batch>,
    /// Batches in the chain in flight.
    in_chain: usize,
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
    /// `Durability::None`: batches written since the last good fdatasync,
    /// held back until one covers them (or fails with them).
    unsynced: Vec<Completion>,
    /// `Durability::None`: an fdatasync succeeded; write a commit marker at
    /// the head of the next chain.
    commit_due: bool,
    /// How long `close` waits for the reaper's removals.
    close_wait: Duration,
    /// Declared last, so dropped last: the directory stays locked until the
    /// engine's writes and the reaper's removals have stopped.
    lock: DirLock,
}

impl FileStore {
    /// Opens (creating if needed) the store directory `dir` and takes its
    /// lock. Records are read by [`Store::recover`], which
    /// `WriteBehind::with_store` calls.
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

    fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)?.sync_all()?;
        trace::record(|| IoEvent::DirSynced {
            path: self.dir.clone(),
        });
        Ok(())
    }

    /// Removes a segment file (the caller makes it durable with `sync_dir`).
    fn unlink(&self, id: SegmentId) -> std::io::Result<()> {
        let path = id.path(&self.dir);
        std::fs::remove_file(&path)?;
        trace::record(|| IoEvent::Unlink { path });
        Ok(())
    }

    /// Creates the next segment: preallocated, header written and durable,
    /// directory entry durable. No frame in it may be longer than
    /// `frame_bytes_max`.
    fn create_segment(&mut self, frame_bytes_max: u32) -> Result<Active, StoreError> {
        let id = SegmentId(self.next_id);
        let path = id.path(&self.dir);
        let fail = |kind, what: &str, e: std::io::Error| {
            let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
                StoreErrorKind::NoSpace
            } else {
                kind
            };
            StoreError::new(kind, format!("creating {}: {what}: {e}", path.display()))
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| fail(StoreErrorKind::Write, "open", e))?;
        trace::opened(file.as_raw_fd(), &path);
        trace::record(|| IoEvent::Create { path: path.clone() });
        // The id is taken once the file exists, even if the rest fails and the
        // file cannot be removed: a retry must not collide with it.
        self.next_id += 1;
        let salt = format::new_salt(id);
        let result = (|| {
            preallocate(&file, self.segment_bytes_max)
                .map_err(|e| fail(StoreErrorKind::NoSpace, "preallocate", e))?;
            let header = SegmentHeader {
                id,
                flags: if self.durability == Durability::None {
                    SEGMENT_FLAG_NO_SYNC
                } else {
                    0
                },
                sealed: self.pending_seal,
                frame_bytes_max,
                salt,
            };
            use std::os::unix::fs::FileExt;
            let header = header.encode();
            trace::write_fd(file.as_raw_fd(), 0, &[&header]);
            file.write_all_at(&header, 0)
                .map_err(|e| fail(StoreErrorKind::Write, "header", e))?;
            sync_file(&file, true).map_err(|e| fail(StoreErrorKind::Sync, "fsync", e))?;
            self.sync_dir()
                .map_err(|e| fail(StoreErrorKind::Sync, "fsync dir", e))
        })();
        if let Err(e) = result {
            drop(file);
            // Durably gone, or a later segment's creation would leave it
            // behind as an older file that is not a segment.
            let _ = self.unlink(id).and_then(|()| self.sync_dir());
            return Err(e);
        }
        self.pending_seal = None;
        self.segment_bytes.insert(id, 0);
        Ok(Active {
            id,
            file: Arc::new(file),
            write_pos: SEGMENT_HEADER_BYTES as u64,
            confirmed_end: SEGMENT_HEADER_BYTES as u64,
            synced_end: SEGMENT_HEADER_BYTES as u64,
            salt,
            frame_bytes_max,
        })
    }

    /// Leaves the active segment behind, trusted up to its confirmed end.
    /// Under `Durability::None` its pages are forced out first, so a later
    /// `sync()` (which syncs the new segment) covers them too.
    fn retire_active(&mut self) -> Result<(), StoreError> {
        let Some(active) = self.active.take() else {
            return Ok(());
        };
        if self.durability == Durability::None {
            if let Err(e) = sync_file(&active.file, false) {
                // Trust only what an earlier fdatasync covered.
                self.pending_seal = Some((active.id, active.synced_end));
                let e = StoreError::new(
                    StoreErrorKind::Sync,
                    format!("fdatasync of {} at rotation: {e}", active.id.file_name()),
                );
                self.fail_unsynced(&e);
                return Err(e);
            }
            self.done.append(&mut self.unsynced);
        }
        self.commit_due = false;
        self.pending_seal = Some((active.id, active.confirmed_end));
        // Give back the preallocated space past the data. Not made durable:
        // if a crash loses it, the zeros are still past the seal.
        if let Err(e) = trim(&active.file, active.confirmed_end, false) {
            tracing::warn!("trimming {}: {e}", active.id.file_name());
        }
        Ok(())
    }

    /// Starts the next chain if none is in flight.
    fn pump(&mut self) {
        if self.in_chain > 0 {
            return;
        }
        if self.rotate_requested {
            // A compaction began: leave the active segment now, so that it
            // can be compacted too, with nothing of it in flight.
            self.rotate_requested = false;
            if let Err(e) = self.retire_active() {
                self.fail_queue(&e);
                return;
            }
        }
        if self.queue.is_empty() {
            // Nothing to write, but batches wait for an fdatasync: do one.
            if let (Some(a), false) = (self.active.as_ref(), self.unsynced.is_empty()) {
                let op = FrameOp::sync_only(Arc::clone(&a.file), a.write_pos);
                self.in_chain = 1;
                self.engine.submit(vec![op]);
            }
            return;
        }
        let mut chain: Chain = Vec::new();
        while chain.len() < CHAIN_FRAMES_MAX {
            let Some(batch) = self.queue.front() else {
                break;
            };
            let frame_len = (FRAME_HEADER_BYTES + batch.bytes.len()) as u64;
            let write = io::writes(batch);
            // Rotate when the frame does not fit (a frame larger than a
            // whole segment gets a fresh segment to itself), or is longer
            // than the segment's header allows (a retry re-encoded from
            // values that grew): recovery refuses such a frame.
            let body_len = u32::try_from(batch.bytes.len()).unwrap_or(u32::MAX);
            let full = self.active.as_ref().is_some_and(|a| {
                write
                    && ((a.write_pos + frame_len > self.segment_bytes_max
                        && a.write_pos > SEGMENT_HEADER_BYTES as u64)
                        || body_len > a.frame_bytes_max)
            });
            if full {
                if !chain.is_empty() {
                    break; // finish this segment's chain first
                }
                if let Err(e) = self.retire_active() {
                    self.fail_queue(&e);
                    return;
                }
            }
            if self.active.is_none() {
                match self.create_segment(self.frame_bytes_max.max(body_len)) {
                    Ok(a) => self.active = Some(a),
                    Err(e) => {
                        tracing::warn!("{e}");
                        self.fail_queue(&e);
                        return;
                    }
                }
            }
            let Some(batch) = self.queue.pop_front() else {
                break;
            };
            if u32::try_from(batch.bytes.len()).is_err() {
                // A frame's length is a u32. Only a retry re-encoded from
                // grown values can get here; fail it loudly rather than
                // truncate (it stays un-durable and visible in stats).
                let e = StoreError::new(
                    StoreErrorKind::Other,
                    format!(
                        "batch {} of {} bytes exceeds a frame's 4 GiB limit",
                        batch.seq.0,
                        batch.bytes.len()
                    ),
                );
                self.done.push(Completion {
                    batch,
                    result: Err(e),
                });
                continue;
            }
            let Some(active) = self.active.as_mut() else {
                break;
            };
            if chain.is_empty() && self.commit_due {
                // The last fdatasync succeeded: record on disk how far it
                // reached, before anything newer (recovery's proof that a bad
                // frame before that point is damage, see `scan`).
                self.commit_due = false;
                let header = active.frame_header(self.durability, FRAME_FLAG_COMMIT, 0);
                let op = FrameOp::commit_marker(Arc::clone(&active.file), active.write_pos, header);
                active.write_pos += FRAME_HEADER_BYTES as u64;
                chain.push(op);
            }
            // Under `Durability::None` a batch completes only when an
            // fdatasync covers it: one comes when a batch asks for it (the
            // cache asks before its in-flight batches would all be waiting)
            // or when nothing is queued.
            let sync = self.durability == Durability::Batch || batch.sync;
            let flags = if sync { FRAME_FLAG_SYNC } else { 0 };
            let header = active.frame_header(self.durability, flags, batch.bytes.len() as u32);
            let mut op = FrameOp::frame(
                Arc::clone(&active.file),
                active.write_pos,
                header,
                batch,
                sync,
            );
            if sync && self.sync_faults.take_one() {
                op.fail_sync = true;
            }
            if write {
                active.write_pos += frame_len;
            }
            chain.push(op);
        }
        if !chain.is_empty() {
            self.in_chain = chain.len();
            self.engine.submit(chain);
        }
    }

    /// Fails every queued batch with `e` (the flusher retries them).
    fn fail_queue(&mut self, e: &StoreError) {
        for batch in self.queue.drain(..) {
            self.done.push(Completion {
                batch,
                result: Err(e.clone()),
            });
        }
    }

    /// Takes a finished chain: completions in order; the first failure seals
    /// the segment.
    fn finish_chain(&mut self, chain: Chain) {
        self.in_chain = 0;
        let none = self.durability == Durability::None;
        let mut failure: Option<StoreError> = None;
        for op in chain {
            let end = op.offset + op.write_len();
            let FrameOp {
                result,
                batch,
                write,
                sync,
                internal,
                ..
            } = *op;
            let result = match (failure.as_ref(), result) {
                (Some(first), _) => Err(StoreError::new(
                    first.kind,
                    format!("not attempted after an earlier failure: {}", first.message),
                )),
                (None, Ok(())) => {
                    if let Some(a) = self.active.as_mut() {
                        if write {
                            a.confirmed_end = end;
                            *self.segment_bytes.entry(a.id).or_insert(0) +=
                                batch.bytes.len() as u64;
                        }
                        if sync {
                            a.synced_end = a.confirmed_end;
                        }
                    }
                    if none && sync {
                        // Everything written before this fdatasync is durable
                        // now; a commit marker will say so on disk.
                        self.done.append(&mut self.unsynced);
                        self.commit_due = true;
                    }
                    Ok(())
                }
                (None, Err(e)) => {
                    failure = Some(e.clone());
                    Err(e)
                }
            };
            if internal {
                continue;
            }
            if none && !sync && result.is_ok() {
                // Written, not yet durable: completed only by a later
                // fdatasync (or failed with it).
                self.unsynced.push(Completion { batch, result });
            } else {
                self.done.push(Completion { batch, result });
            }
        }
        if let Some(e) = failure {
            tracing::warn!("segment write failed, sealing it: {e}");
            self.fail_unsynced(&e);
            if let Some(a) = self.active.take() {
                // Never touch this file again: seal at what an fdatasync
                // confirmed, in a new segment's header at once (a restart
                // before it exists would read the failed frames from the
                // page cache and trust them); if that fails too, the next
                // write tries again.
                self.pending_seal = Some((a.id, a.synced_end));
                match self.create_segment(self.frame_bytes_max) {
                    Ok(next) => self.active = Some(next),
                    Err(e) => tracing::warn!("sealing {} after a failure: {e}", a.id.file_name()),
                }
            }
            self.commit_due = false;
        }
    }

    /// Fails the batches written since the last good fdatasync (under
    /// `Durability::None`): their pages may be gone, so the flusher must
    /// rewrite them from memory.
    fn fail_unsynced(&mut self, cause: &StoreError) {
        for mut c in self.unsynced.drain(..) {
            c.result = Err(StoreError::new(
                cause.kind,
                format!(
                    "written but never confirmed durable before: {}",
                    cause.message
                ),
            ));
            self.done.push(c);
        }
    }
}

/// Most frames submitted to the engine as one chain (sizes the io_uring
/// queue); a longer queue is written in several chains, one after another.
/// The cache keeps `Config::batches_in_flight_max` batches in flight, 4 by
/// default, so a chain is rarely longer than that.
const CHAIN_FRAMES_MAX: usize = 64;

/// The engine `backend` asks for.
fn new_engine(backend: IoBackend) -> Result<Box<dyn Engine>, Error> {
    let chain_max = CHAIN_FRAMES_MAX;
    let engine: Box<dyn Engine> = match backend {
        IoBackend::Pwrite => Box::new(io::Pwrite::new()?),
        #[cfg(target_os = "linux")]
        IoBackend::IoUring => Box::new(io::Uring::new(chain_max)?),
        #[cfg(target_os = "linux")]
        IoBackend::Auto => match io::Uring::new(chain_max) {
            Ok(u) => Box::new(u),
            Err(e) => {
                tracing::info!("io_uring unavailable ({e}); using pwrite");
                Box::new(io::Pwrite::new()?)
            }
        },
        #[cfg(not(target_os = "linux"))]
        IoBackend::IoUring => {
            return Err(Error::Config("io_uring is only available on Linux".into()))
        }
        #[cfg(not(target_os = "linux"))]
        IoBackend::Auto => Box::new(io::Pwrite::new()?),
    };
    Ok(engine)
}

/// True if the filesystem of `dir` has room for another copy of every
/// record stored (what a whole-set compaction may write) and a segment; if
/// that cannot be told, false (compact in steps, which needs the least).
fn room_for_a_copy(
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
    static SYNCS_ON_THIS_THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// fsync (`all`) or fdatasync of a segment, recorded in the I/O trace when
/// it returns success.
fn sync_file(file: &File, all: bool) -> std::io::Result<()> {
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
fn trim(file: &File, len: u64, durable: bool) -> std::io::Result<()> {
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
fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
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

impl Store for FileStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(self.engine.name())
    }

    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        let report = scan::scan_dir(&self.dir, &mut |_, r| visit(r))?;
        self.lock.keep();
        for seg in &report.segments {
            if let Some((at, why)) = &seg.torn {
                tracing::warn!(
                    "{}: torn tail cut at offset {at}: {why}",
                    seg.id.file_name()
                );
            }
        }
        self.next_id = report.segments.last().map_or(1, |s| s.id.0 + 1);
        // A newest file whose header was torn held nothing: remove it.
        if let Some(last) = report.segments.last().filter(|s| s.header.is_none()) {
            self.unlink(last.id)?;
            self.sync_dir()?;
        }
        if let Some(newest) = report.segments.iter().rev().find(|s| s.header.is_some()) {
            self.pending_seal = Some((newest.id, newest.data_end));
            // What the scan read may be only in the page cache (a process
            // killed before its fdatasync): make it durable before the next
            // segment's header seals it. Preallocated zeros or a torn tail
            // past the data are cut, never to be read again.
            let path = newest.id.path(&self.dir);
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_error_at(&path, e))?;
            trace::opened(file.as_raw_fd(), &path);
            let synced = if newest.file_bytes > newest.data_end {
                trim(&file, newest.data_end, true)
            } else {
                sync_file(&file, false)
            };
            synced.map_err(|e| io_error_at(&path, e))?;
        }
        self.segment_bytes = report
            .segments
            .iter()
            .filter(|s| s.header.is_some())
            .map(|s| (s.id, s.record_bytes))
            .collect();
        Ok(RecoveryReport {
            records: report.records(),
            torn_tails: report.torn_tails(),
        })
    }

    fn submit(&mut self, batch: Batch) {
        self.queue.push_back(batch);
        self.pump();
    }

    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
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

    fn close(&mut self) -> Result<(), StoreError> {
        self.reaper.drain(self.close_wait);
        if let Some(e) = self.reaper.take_error() {
            tracing::warn!("compaction left segments behind: {e}");
        }
        // The flusher closes only once every batch has completed.
        if let Some(a) = &self.active {
            if self.durability == Durability::None {
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
        }
        Ok(())
    }
}
