//! Recovery: what `Store::recover` does on opening, after the scan (see
//! [`scan`] for its rules). The newest segment is made durable
//! and trimmed to its data, and sealed there by the next segment's header.

use std::fs::OpenOptions;
use std::os::unix::io::AsRawFd;

use super::disk::{io_error_at, sync_file, trim};
use super::keydir::Rebuild;
use super::scan::{self, ScanReport, SegmentReport};
use super::trace;
use super::FileStore;
use crate::error::Error;
use crate::record::RecordRef;
use crate::store::RecoveryReport;

impl FileStore {
    /// Reads every record (handing each to `visit`), then readies the
    /// directory for writing.
    pub(super) fn recover_segments(
        &mut self,
        visit: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<RecoveryReport, Error> {
        let mut rebuild = Rebuild::default();
        let keydir = std::sync::Arc::clone(&self.keydir);
        let report = scan::scan_dir_placed(&self.dir, &mut |segment, at, r| {
            rebuild.take(&keydir, segment, at, &r);
            visit(r);
        })?;
        drop(rebuild);
        self.lock.keep();
        warn_of_torn_tails(&report);
        self.next_id = report.segments.last().map_or(1, |s| s.id.0 + 1);
        // A newest file whose header was torn held nothing: remove it.
        if let Some(last) = report.segments.last().filter(|s| s.header.is_none()) {
            self.unlink(last.id)?;
            self.sync_dir()?;
        }
        if let Some(newest) = report.segments.iter().rev().find(|s| s.header.is_some()) {
            self.pending_seal = Some((newest.id, newest.data_end));
            self.make_durable_to_its_data(newest)?;
        }
        self.segment_bytes = report
            .segments
            .iter()
            .filter(|s| s.header.is_some())
            .map(|s| (s.id, s.record_bytes))
            .collect();
        let version_floor = super::floor::read(&self.dir)?;
        self.reaper.floor_kept(version_floor);
        Ok(RecoveryReport {
            records: report.records(),
            torn_tails: report.torn_tails(),
            version_floor,
        })
    }

    /// What the scan read may be only in the page cache (a process
    /// killed before its fdatasync): make it durable before the next
    /// segment's header seals it. Preallocated zeros or a torn tail
    /// past the data are cut, never to be read again.
    fn make_durable_to_its_data(&self, newest: &SegmentReport) -> Result<(), Error> {
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
        synced.map_err(|e| io_error_at(&path, e))
    }
}

fn warn_of_torn_tails(report: &ScanReport) {
    for seg in &report.segments {
        if let Some((at, why)) = &seg.torn {
            tracing::warn!(
                "{}: torn tail cut at offset {at}: {why}",
                seg.id.file_name()
            );
        }
    }
}
