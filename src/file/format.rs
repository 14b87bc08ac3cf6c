//! The on-disk layout of a store directory: segment files, their header, and
//! the frames (one per write) that carry records.
//!
//! ```text
//! DIR/LOCK          flock'ed by the process that has the store open
//! DIR/000001.wb     segments, numbered from 1, never reused
//!
//! segment = header (64 bytes) | frame | frame | ... | zeros (preallocated)
//!
//! header:
//!   0   8  magic "wbseg\0\0\x01"
//!   8   4  format version (1), u32 LE
//!  12   4  flags: bit 0 = written with Durability::None
//!  16   8  segment id, u64 LE
//!  24   8  sealed segment id (0: none): an earlier segment whose trusted
//!          data ends at `sealed end` (set when a segment is left behind
//!          after recovery, a failed write or fdatasync, or rotation)
//!  32   8  sealed end, u64 LE (byte offset in that segment)
//!  40   4  frame bytes max: no frame of this segment is longer
//!  44  16  reserved, 0
//!  60   4  crc32c of bytes 0..60
//!
//! frame (one write; records back to back, see `record`):
//!   0   4  magic "wbfr"
//!   4   2  flags: bit 0 = a sync point (fdatasync followed this frame),
//!          bit 1 = a commit marker (empty; written after an fdatasync
//!          returned: what precedes it is durable)
//!   6   2  reserved, 0
//!   8   4  length of the records that follow, u32 LE
//!  12   4  crc32c of bytes 0..12
//! ```
//!
//! Frames are written strictly one after another (io_uring links each write
//! to the previous one and, under `Durability::Batch`, to an fdatasync), so
//! after a crash at most the last frame of the newest segment can be torn:
//! that is the only place recovery accepts a bad frame or record.

use std::path::{Path, PathBuf};

/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 16;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const SEGMENT_MAGIC: [u8; 8] = *b"wbseg\0\0\x01";
const FRAME_MAGIC: [u8; 4] = *b"wbfr";
/// Header flag: the segment was written with `Durability::None`.
pub const SEGMENT_FLAG_NO_SYNC: u32 = 1;
/// Frame flag: an fdatasync followed this frame (under `Durability::Batch`
/// the next frame is written only after it returned).
pub const FRAME_FLAG_SYNC: u16 = 1;
/// Frame flag (an empty frame): written after an fdatasync returned, so
/// everything before it in the segment is durable. Used under
/// `Durability::None`, where frames are written ahead of their fdatasync.
pub const FRAME_FLAG_COMMIT: u16 = 2;

/// A segment's number (file `NNNNNN.wb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl SegmentId {
    /// The segment's file name.
    pub fn file_name(self) -> String {
        format!("{:06}.wb", self.0)
    }

    /// The segment's path in `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }

    /// Parses a segment file name.
    pub fn parse(name: &str) -> Option<Self> {
        let digits = name.strip_suffix(".wb")?;
        if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|&n| n > 0).map(SegmentId)
    }
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's own id (must match its file name).
    pub id: SegmentId,
    /// `SEGMENT_FLAG_*` bits.
    pub flags: u32,
    /// An earlier segment whose trusted data ends at `sealed_end`.
    pub sealed: Option<(SegmentId, u64)>,
    /// No frame in this segment is longer than this (bytes of records).
    pub frame_bytes_max: u32,
}

/// Why a header did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("truncated header")]
    Truncated,
    /// Not a writebehind segment.
    #[error("bad magic: not a writebehind segment")]
    Magic,
    /// Written by a newer (or unknown) format version.
    #[error("unsupported format version {0} (this build reads {FORMAT_VERSION})")]
    Version(u32),
    /// The checksum does not match.
    #[error("header checksum mismatch")]
    Checksum,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.0.to_le_bytes());
        let (sid, send) = self.sealed.map_or((0, 0), |(s, e)| (s.0, e));
        b[24..32].copy_from_slice(&sid.to_le_bytes());
        b[32..40].copy_from_slice(&send.to_le_bytes());
        b[40..44].copy_from_slice(&self.frame_bytes_max.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a header. The magic is checked first so that "not a segment"
    /// and "a segment from a future format" are told apart from damage.
    pub fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < SEGMENT_HEADER_BYTES {
            return Err(HeaderError::Truncated);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Magic);
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        if crc32c::crc32c(&b[..60]) != u32_at(60) {
            return Err(HeaderError::Checksum);
        }
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let sealed_id = u64_at(24);
        Ok(Self {
            id: SegmentId(u64_at(16)),
            flags: u32_at(12),
            sealed: (sealed_id != 0).then(|| (SegmentId(sealed_id), u64_at(32))),
            frame_bytes_max: u32_at(40),
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// `FRAME_FLAG_*` bits.
    pub flags: u16,
    /// Bytes of records that follow.
    pub len: u32,
}

impl FrameHeader {
    /// Encodes the frame header.
    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut b = [0u8; FRAME_HEADER_BYTES];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4..6].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        let crc = crc32c::crc32c(&b[..12]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a frame header; `None` if it is not a valid one.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < FRAME_HEADER_BYTES || b[0..4] != FRAME_MAGIC || b[6..8] != [0, 0] {
            return None;
        }
        let crc = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        if crc32c::crc32c(&b[..12]) != crc {
            return None;
        }
        Some(Self {
            flags: u16::from_le_bytes([b[4], b[5]]),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = SegmentHeader {
            id: SegmentId(7),
            flags: SEGMENT_FLAG_NO_SYNC,
            sealed: Some((SegmentId(6), 12345)),
            frame_bytes_max: 1 << 20,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Checksum));
        let mut future = b;
        future[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&future[..60]);
        future[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&future), Err(HeaderError::Version(2)));
        assert_eq!(SegmentHeader::decode(&[b'x'; 64]), Err(HeaderError::Magic));
        assert_eq!(SegmentHeader::decode(&b[..63]), Err(HeaderError::Truncated));
    }

    #[test]
    fn frame_round_trip() {
        let f = FrameHeader {
            flags: FRAME_FLAG_SYNC,
            len: 999,
        };
        assert_eq!(FrameHeader::decode(&f.encode()), Some(f));
        assert_eq!(FrameHeader::decode(&[0; 16]), None);
    }

    #[test]
    fn names() {
        assert_eq!(SegmentId(12).file_name(), "000012.wb");
        assert_eq!(SegmentId::parse("000012.wb"), Some(SegmentId(12)));
        assert_eq!(SegmentId::parse("12.wb"), None);
        assert_eq!(SegmentId::parse("000000.wb"), None);
        assert_eq!(SegmentId::parse("LOCK"), None);
    }
}
