//! The active segment: the one frames are appended to, and the frame ops
//! (frame headers included) written at its tail.

use std::fs::File;
use std::sync::Arc;

use super::format::{
    FrameHeader, FramePlace, SegmentId, FRAME_FLAG_COMMIT, FRAME_FLAG_SYNC, FRAME_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};
use super::hint::HintWriter;
use super::io::{self, FrameOp};
use crate::config::Durability;
use crate::store::Batch;

/// The segment being appended to.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) id: SegmentId,
    pub(super) file: Arc<File>,
    /// Where the next frame goes.
    pub(super) write_pos: u64,
    /// End of the last frame confirmed written (and, under `Batch`,
    /// durable).
    pub(super) confirmed_end: u64,
    /// End of the data covered by the last successful fdatasync: the seal
    /// point if this segment fails (under `Batch` it equals `confirmed_end`).
    pub(super) synced_end: u64,
    /// The segment's salt (part of every frame header's checksum).
    pub(super) salt: u64,
    /// No frame of this segment may be longer (its header says so).
    pub(super) frame_bytes_max: u32,
    /// Its hint file, written as frames are confirmed (`None` if it could
    /// not be made or failed: the segment is then read at open).
    pub(super) hint: Option<HintWriter>,
}

impl Active {
    /// A segment just created, its header written: empty, every offset at
    /// the end of the header.
    pub(super) fn new(
        id: SegmentId,
        file: File,
        salt: u64,
        frame_bytes_max: u32,
        hint: Option<HintWriter>,
    ) -> Self {
        let data_start = SEGMENT_HEADER_BYTES as u64;
        Self {
            id,
            file: Arc::new(file),
            write_pos: data_start,
            confirmed_end: data_start,
            synced_end: data_start,
            salt,
            frame_bytes_max,
            hint,
        }
    }

    /// Completes the hint: the segment is left behind with its trusted
    /// data ending at `sealed_end`. A hint is kept only if that is the end
    /// of everything it lists (not after a failure sealed it short).
    pub(super) fn finish_hint(&mut self, sealed_end: u64) {
        match self.hint.take() {
            Some(h) if sealed_end == self.confirmed_end => {
                h.finish(sealed_end);
            }
            Some(h) => h.abandon(),
            None => {}
        }
    }

    /// True if `batch`'s frame must go to a new segment. Rotate when the
    /// frame does not fit (a frame larger than a whole segment gets a fresh
    /// segment to itself), or is longer than the segment's header allows (a
    /// retry re-encoded from values that grew): recovery refuses such a
    /// frame. A bare sync point writes nothing and fits anywhere.
    pub(super) fn has_no_room_for(&self, batch: &Batch, segment_bytes_max: u64) -> bool {
        let frame_len = (FRAME_HEADER_BYTES + batch.bytes.len()) as u64;
        let body_len = u32::try_from(batch.bytes.len()).unwrap_or(u32::MAX);
        io::writes(batch)
            && ((self.write_pos + frame_len > segment_bytes_max
                && self.write_pos > SEGMENT_HEADER_BYTES as u64)
                || body_len > self.frame_bytes_max)
    }

    /// The store's commit marker at the tail, which is moved past it.
    pub(super) fn append_commit_marker(&mut self, durability: Durability) -> Box<FrameOp> {
        let header = self.frame_header(durability, FRAME_FLAG_COMMIT, 0);
        let op = FrameOp::commit_marker(Arc::clone(&self.file), self.write_pos, header);
        self.write_pos += op.write_len();
        op
    }

    /// `batch`'s frame at the tail (followed by an fdatasync if `sync`),
    /// which is moved past what the frame writes. `body_len`: the batch's
    /// length, which the caller has checked fits a frame.
    pub(super) fn append_frame(
        &mut self,
        durability: Durability,
        batch: Batch,
        body_len: u32,
        sync: bool,
    ) -> Box<FrameOp> {
        debug_assert_eq!(body_len as usize, batch.bytes.len());
        let flags = if sync { FRAME_FLAG_SYNC } else { 0 };
        let header = self.frame_header(durability, flags, body_len);
        let op = FrameOp::frame(Arc::clone(&self.file), self.write_pos, header, batch, sync);
        self.write_pos += op.write_len();
        op
    }

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
            Durability::Deferred => self.synced_end,
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
