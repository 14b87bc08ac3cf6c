//! The file store's compaction: segments are the units it replaces whole.
//!
//! A compaction rotates to a new segment, so everything it replaces is in
//! segments left behind. It goes in steps (each segment's keys read back,
//! the live ones rewritten, the segment removed) only when the disk could not
//! hold a second copy of what is stored; otherwise the flusher rewrites the
//! whole live set from memory and every old segment goes at once.

use super::disk::room_for_a_copy;
use super::scan;
use super::{FileStore, SegmentId};
use crate::error::{StoreError, StoreErrorKind};
use crate::store::{Compaction, CompactionRead, StoredKey, StoredSize, UnitId};
use crate::version::Version;

impl Compaction for FileStore {
    fn stored(&self) -> StoredSize {
        StoredSize {
            units: self.segment_bytes.len(),
            bytes: self.segment_bytes.values().sum(),
            unit_bytes_max: self.segment_bytes_max,
            live_bytes: Some(self.keydir.live_bytes()),
        }
    }

    fn begin(&mut self, resident_is_complete: bool) -> Result<UnitId, StoreError> {
        // Everything up to the active segment is replaced; new frames go to a
        // new segment (rotated when no chain is in flight, so no frame of
        // the old one is left unconfirmed).
        self.rotate_requested = true;
        self.compaction_read = None;
        self.compaction_in_steps = (!resident_is_complete).then_some(true);
        self.pump();
        Ok(UnitId(self.next_id - 1))
    }

    fn read(
        &mut self,
        cutoff: UnitId,
        budget_bytes: usize,
        out: &mut Vec<StoredKey>,
    ) -> Result<CompactionRead, StoreError> {
        // Steps read every old segment back from disk; rewriting the whole
        // live set from memory reads nothing, but needs room for a second
        // copy of it. Measured with `wb bench` (file store, zipf, 100K keys):
        // steps on 64 MiB segments took flusher time enough to fill the
        // rings (63-157 ring-full events per 3 s run against 6-20, puts
        // 2.0-4.1 M/s against 3.0-3.8 M/s). So: steps only when the disk
        // could not hold a copy of everything stored plus a segment.
        let in_steps = *self.compaction_in_steps.get_or_insert_with(|| {
            !room_for_a_copy(&self.dir, &self.segment_bytes, self.segment_bytes_max)
        });
        if !in_steps {
            return Ok(CompactionRead::Everything);
        }
        let active = self.active.as_ref().map(|a| a.id);
        let oldest = self
            .segment_bytes
            .keys()
            .copied()
            .find(|id| id.0 <= cutoff.0);
        let (id, from) = match (self.compaction_read, oldest) {
            (Some(at), _) => at,
            (None, None) => return Ok(CompactionRead::Done),
            // Not yet left behind (a chain was in flight): next time.
            (None, Some(id)) if Some(id) == active || self.rotate_requested => {
                return Ok(CompactionRead::Partial)
            }
            (None, Some(id)) => (id, 0),
        };
        let next = scan::segment_keys(&self.dir, id, from, budget_bytes, out).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("reading {} to compact it: {e}", id.file_name()),
            )
        })?;
        self.compaction_read = next.map(|at| (id, at));
        Ok(match next {
            Some(_) => CompactionRead::Partial,
            None => CompactionRead::Whole(UnitId(id.0)),
        })
    }

    fn finish(&mut self, upto: UnitId, floor: Version) -> Result<(), StoreError> {
        let active = self.active.as_ref().map(|a| a.id);
        let doomed: Vec<SegmentId> = self
            .segment_bytes
            .keys()
            .copied()
            .filter(|&id| id.0 <= upto.0 && Some(id) != active)
            .collect();
        for id in &doomed {
            self.segment_bytes.remove(id);
        }
        if let Some(reader) = &self.reader {
            reader.forget(&doomed);
        }
        // The removals (oldest first, each durable before the next, the
        // floor durable before the first) run on the reaper's thread; a
        // failure of an earlier one is reported here.
        self.reaper.remove(doomed, floor);
        match self.reaper.take_error() {
            Some(e) => Err(StoreError::new(StoreErrorKind::Write, e)),
            None => Ok(()),
        }
    }
}
