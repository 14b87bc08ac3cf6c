//! Recovery: what `Store::recover` does on opening, after the scan (see
//! [`scan`] for its rules). The newest segment is made durable
//! and trimmed to its data, and sealed there by the next segment's header.

use std::fs::OpenOptions;
use std::os::unix::io::AsRawFd;

use super::disk::{io_error_at, sync_file, trim};
use super::format::SegmentId;
use super::hint;
use super::hint::{HintEntry, HintWriter};
use super::keydir::{Place, Rebuild};
use super::scan::{self, ScanReport, SegmentReport};
use super::trace;
use super::FileStore;
use crate::error::Error;
use crate::record::{encoded_len, RecordRef};
use crate::store::{RecoveryReport, Unvisited};
use crate::version::Version;

impl FileStore {
    /// Reads every record (handing each to `visit`), then readies the
    /// directory for writing.
    ///
    /// Once the cache has taken the reader (it then needs no value at
    /// open), a sealed segment with a usable hint file is not read: its
    /// entries go to the keydir and count as unvisited. Every segment that
    /// is read gets a new hint, completed at the end of the data the scan
    /// trusted (the seal its segment has or the next write gives it).
    pub(super) fn recover_segments(
        &mut self,
        visit: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<RecoveryReport, Error> {
        hint::sweep(&self.dir, &scan::list_segments(&self.dir)?);
        let rebuild = std::cell::RefCell::new(Rebuild::default());
        let keydir = std::sync::Arc::clone(&self.keydir);
        let mut unvisited = Unvisited::default();
        let mut unvisited_floor = Version(0);
        let mut hints = Rehint::new(&self.dir, !self.read_hints);
        let mut from_hint = |segment, e: &HintEntry<'_>| {
            let place = Place {
                segment,
                offset: e.offset,
                len: e.len,
                version: e.version,
            };
            rebuild
                .borrow_mut()
                .take_place(&keydir, e.kind, e.key, place);
            unvisited.records += 1;
            unvisited.longest_key = unvisited.longest_key.max(e.key.len());
            let value_len = (e.len as usize).saturating_sub(encoded_len(e.key.len(), 0));
            unvisited.longest_value = unvisited.longest_value.max(value_len);
            unvisited_floor = unvisited_floor.max(e.version);
        };
        let use_hints = self.reader.is_some() && self.read_hints;
        let scanned = scan::scan_dir_placed(
            &self.dir,
            &mut |s| {
                if let scan::Scanned::Record(at, r) = &s {
                    rebuild.borrow_mut().take(&keydir, at.segment, at.offset, r);
                    visit(*r);
                }
                hints.take(s);
            },
            use_hints.then_some(&mut from_hint as &mut scan::HintVisit<'_>),
        );
        let report = match scanned {
            Ok(report) => report,
            Err(e) => {
                hints.abandon();
                return Err(e);
            }
        };
        drop(rebuild);
        // Put in place by the first `poll` (the open has succeeded then).
        self.hints_to_install = hints.done;
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
        let kept_floor = super::floor::read(&self.dir)?;
        self.reaper.floor_kept(kept_floor);
        Ok(RecoveryReport {
            records: report.records() - unvisited.records,
            torn_tails: report.torn_tails(),
            version_floor: kept_floor.max(unvisited_floor),
            unvisited,
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

/// The hints recovery writes for the segments it reads: each one's as the
/// scan goes through its records, completed (at `NNNNNN.hint.new`) as soon
/// as the segment's scan ends, so that at most one is being written.
struct Rehint<'a> {
    dir: &'a std::path::Path,
    /// Hints are rewritten only for segments that have none (with
    /// `read_hints(false)`, the hints are not read, so not checked).
    only_missing: bool,
    /// The segment being read, and its hint (`None` once it could not be
    /// made or failed, or it needs none: not tried again for that segment).
    writing: Option<(SegmentId, Option<HintWriter>)>,
    /// Segments whose new hint is complete, waiting for the open to succeed.
    done: Vec<SegmentId>,
}

impl<'a> Rehint<'a> {
    fn new(dir: &'a std::path::Path, only_missing: bool) -> Self {
        Self {
            dir,
            only_missing,
            writing: None,
            done: Vec::new(),
        }
    }

    fn take(&mut self, s: scan::Scanned<'_>) {
        match s {
            scan::Scanned::Record(at, r) => self.note(at, &r),
            scan::Scanned::SegmentEnd(seg) => self.segment_end(seg),
        }
    }

    /// A record the scan read at `at`.
    fn note(&mut self, at: scan::Placed, r: &RecordRef<'_>) {
        let (dir, only_missing) = (self.dir, self.only_missing);
        let (_, writer) = self.writing.get_or_insert_with(|| {
            let wanted = !only_missing || !hint::path(dir, at.segment).exists();
            let w = wanted.then(|| HintWriter::create_beside(dir, at.segment, at.salt));
            (at.segment, w.flatten())
        });
        let Some(w) = writer.as_mut() else {
            return;
        };
        if !HintEntry::of(at.offset, r).is_some_and(|e| w.note(&e)) {
            if let Some(w) = writer.take() {
                w.abandon();
            }
        }
    }

    /// The scan read `seg` to its end: its hint is completed there.
    fn segment_end(&mut self, seg: &SegmentReport) {
        if let Some((id, w)) = self.writing.take() {
            debug_assert_eq!(id, seg.id);
            if w.and_then(|w| w.finish(seg.data_end)).is_some() {
                self.done.push(id);
            }
        }
    }

    /// The open failed: every new hint is removed.
    fn abandon(self) {
        if let Some((_, Some(w))) = self.writing {
            w.abandon();
        }
        for id in self.done {
            hint::remove(&hint::new_path(self.dir, id));
        }
    }
}
