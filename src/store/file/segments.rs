//! The life of a segment: created (preallocated, header durable), retired
//! when full or when a compaction begins (trimmed and sealed by the next
//! segment's header), sealed at once after a failed write or fdatasync, and
//! the directory entries that go with it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::active::Active;
use super::disk::{preallocate, sync_file, trim};
use super::format::{self, SegmentHeader, SegmentId, SEGMENT_FLAG_NO_SYNC};
use super::trace::{self, IoEvent};
use super::FileStore;
use crate::config::Durability;
use crate::error::{StoreError, StoreErrorKind};

impl FileStore {
    /// Makes the directory's entries durable (a creation, a removal).
    pub(super) fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)?.sync_all()?;
        trace::record(|| IoEvent::DirSynced {
            path: self.dir.clone(),
        });
        Ok(())
    }

    /// Removes a segment file (the caller makes it durable with `sync_dir`).
    pub(super) fn unlink(&self, id: SegmentId) -> std::io::Result<()> {
        let path = id.path(&self.dir);
        std::fs::remove_file(&path)?;
        trace::record(|| IoEvent::Unlink { path });
        Ok(())
    }

    /// Creates the next segment: preallocated, header written and durable,
    /// directory entry durable. No frame in it may be longer than
    /// `frame_bytes_max`. Its header records the pending seal.
    pub(super) fn create_segment(&mut self, frame_bytes_max: u32) -> Result<Active, StoreError> {
        let id = SegmentId(self.next_id);
        let path = id.path(&self.dir);
        let file = create_file(&path)?;
        // The id is taken once the file exists, even if the rest fails and the
        // file cannot be removed: a retry must not collide with it.
        self.next_id += 1;
        let header = SegmentHeader {
            id,
            flags: match self.durability {
                Durability::Deferred => SEGMENT_FLAG_NO_SYNC,
                Durability::Batch => 0,
            },
            sealed: self.pending_seal,
            frame_bytes_max,
            salt: format::new_salt(id),
        };
        if let Err(e) = self.write_segment_header(&file, &path, &header) {
            drop(file);
            // Durably gone, or a later segment's creation would leave it
            // behind as an older file that is not a segment.
            let _ = self.unlink(id).and_then(|()| self.sync_dir());
            return Err(e);
        }
        self.pending_seal = None;
        self.segment_bytes.insert(id, 0);
        let hint = super::hint::HintWriter::create(&self.dir, id, header.salt);
        Ok(Active::new(id, file, header.salt, frame_bytes_max, hint))
    }

    /// Preallocates the new segment `file`, writes its `header` and makes
    /// both durable, with the directory entry.
    fn write_segment_header(
        &self,
        file: &File,
        path: &Path,
        header: &SegmentHeader,
    ) -> Result<(), StoreError> {
        let fail = |kind, what: &str, e| creation_error(path, kind, what, e);
        preallocate(file, self.segment_bytes_max)
            .map_err(|e| fail(StoreErrorKind::NoSpace, "preallocate", e))?;
        let header = header.encode();
        trace::write_fd(file.as_raw_fd(), 0, &[&header]);
        file.write_all_at(&header, 0)
            .map_err(|e| fail(StoreErrorKind::Write, "header", e))?;
        sync_file(file, true).map_err(|e| fail(StoreErrorKind::Sync, "fsync", e))?;
        self.sync_dir()
            .map_err(|e| fail(StoreErrorKind::Sync, "fsync dir", e))
    }

    /// Leaves the active segment behind, trusted up to its confirmed end.
    /// Under `Durability::Deferred` its pages are forced out first, so a later
    /// `sync()` (which syncs the new segment) covers them too.
    pub(super) fn retire_active(&mut self) -> Result<(), StoreError> {
        let Some(mut active) = self.active.take() else {
            return Ok(());
        };
        if self.durability == Durability::Deferred {
            if let Err(e) = self.sync_before_retiring(&active) {
                active.finish_hint(active.synced_end);
                return Err(e);
            }
        }
        self.commit_due = false;
        self.pending_seal = Some((active.id, active.confirmed_end));
        active.finish_hint(active.confirmed_end);
        // Give back the preallocated space past the data. Not made durable:
        // if a crash loses it, the zeros are still past the seal.
        if let Err(e) = trim(&active.file, active.confirmed_end, false) {
            tracing::warn!("trimming {}: {e}", active.id.file_name());
        }
        Ok(())
    }

    /// `Durability::Deferred`: the fdatasync of the segment being retired, which
    /// completes the batches held for one; if it fails, they fail with it.
    fn sync_before_retiring(&mut self, active: &Active) -> Result<(), StoreError> {
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
        Ok(())
    }

    /// After a failed write or fdatasync: leaves the active segment behind,
    /// sealed at what an fdatasync confirmed, and starts the next at once.
    pub(super) fn seal_after_failure(&mut self) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        if let Some(h) = a.hint.take() {
            h.abandon();
        }
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
}

/// Opens a new segment file at `path` (it must not exist yet).
fn create_file(path: &Path) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| creation_error(path, StoreErrorKind::Write, "open", e))?;
    trace::opened(file.as_raw_fd(), path);
    trace::record(|| IoEvent::Create {
        path: path.to_path_buf(),
    });
    Ok(file)
}

/// The error of step `what` of creating the segment at `path`: `kind`, or
/// `NoSpace` if the disk is full.
fn creation_error(path: &Path, kind: StoreErrorKind, what: &str, e: std::io::Error) -> StoreError {
    let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
        StoreErrorKind::NoSpace
    } else {
        kind
    };
    StoreError::new(kind, format!("creating {}: {what}: {e}", path.display()))
}
