//! The active segment: the one frames are appended to, and the frame
//! headers written at its tail.

use std::fs::File;
use std::sync::Arc;

use super::format::{FrameHeader, FramePlace, SegmentId, FRAME_HEADER_BYTES};
use crate::config::Durability;

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
}

impl Active {
    /// The header of a frame written next, at `write_pos`. Its durable end
    /// is what an fdatasync is known to have covered when the frame reaches
    /// the disk: under `Batch` the frame's own start (each frame is linked
    /// behind the previous frame's fdatasync), under `None` only what a
    /// completed fdatasync confirmed, never a frame written after it.
    pub(super) fn frame_header(
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
