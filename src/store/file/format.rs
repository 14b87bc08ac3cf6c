//! The on-disk layout of a store directory: segment files, their header, and
//! the frames (one per write) that carry records.
//!
//! ```text
//! DIR/LOCK          flock'ed by the process that has the store open
//! DIR/FLOOR         the version floor (`floor.rs`)
//! DIR/000001.wb     segments, numbered from 1, never reused
//!
//! segment = header (64 bytes) | frame | frame | ... | zeros (preallocated,
//!           trimmed when the segment is left behind or the store closes)
//!
//! header:
//!   0   8  magic "wbseg\0\0\x01"
//!   8   4  format version (2), u32 LE
//!  12   4  flags: bit 0 = written with Durability::Deferred
//!  16   8  segment id, u64 LE
//!  24   8  sealed segment id (0: none): an earlier segment whose trusted
//!          data ends at `sealed end` (set when a segment is left behind
//!          after recovery, a failed write or fdatasync, or rotation)
//!  32   8  sealed end, u64 LE (byte offset in that segment)
//!  40   4  frame bytes max: no frame of this segment is longer
//!  44   8  salt: random, chosen when the segment is created
//!  52   8  reserved, 0
//!  60   4  crc32c of bytes 0..60
//!
//! frame (one write; records back to back, see `record`):
//!   0   4  magic "wbfr"
//!   4   2  flags: bit 0 = a sync point (fdatasync followed this frame),
//!          bit 1 = a commit marker (empty; written after an fdatasync
//!          returned, to record how far it reached)
//!   6   2  reserved, 0
//!   8   4  length of the records that follow, u32 LE
//!  12   8  durable end, u64 LE: every byte of the segment before this
//!          offset was covered by a completed fdatasync when this frame was
//!          written (never more than the frame's own offset)
//!  20   4  crc32c of (salt, frame offset, bytes 0..20)
//! ```
//!
//! Frames are written strictly one after another (io_uring links each write
//! to the previous one and, under `Durability::Batch`, to an fdatasync), so
//! after a crash only frames after the last completed fdatasync can be torn.
//! A frame header's checksum covers the segment's salt and the frame's own
//! offset, so a header is valid only where the store wrote it: bytes of a
//! header inside a value (or copied from anywhere, this store included)
//! never decode as a frame at the place they sit. That is what lets
//! recovery tell a torn tail from damage (see `scan`).

use std::path::{Path, PathBuf};

/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 24;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 2;
const SEGMENT_MAGIC: [u8; 8] = *b"wbseg\0\0\x01";
const FRAME_MAGIC: [u8; 4] = *b"wbfr";
/// Header flag: the segment was written with `Durability::Deferred`.
pub const SEGMENT_FLAG_NO_SYNC: u32 = 1;
/// Frame flag: an fdatasync followed this frame (under `Durability::Batch`
/// the next frame is written only after it returned).
pub const FRAME_FLAG_SYNC: u16 = 1;
/// Frame flag (an empty frame): written after an fdatasync returned, to
/// record in its durable end how far that fdatasync reached. Used under
/// `Durability::Deferred`, where frames are written ahead of their fdatasync.
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
    /// Random, chosen at creation; part of every frame header's checksum.
    pub salt: u64,
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
        b[44..52].copy_from_slice(&self.salt.to_le_bytes());
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
            salt: u64_at(44),
        })
    }

    /// Where a frame at `offset` of this segment is checked.
    pub fn frame_at(&self, offset: u64) -> FramePlace {
        FramePlace {
            salt: self.salt,
            offset,
        }
    }
}

/// A fresh salt for a new segment: not cryptographic, only different per
/// segment and per store (std's per-process random hash keys, the clock and
/// the segment id).
pub fn new_salt(id: SegmentId) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(id.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

/// The place a frame header belongs to: its segment's salt and its offset.
/// A header encoded for one place does not decode at any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePlace {
    /// The segment's salt.
    pub salt: u64,
    /// The frame's byte offset in the segment.
    pub offset: u64,
}

impl FramePlace {
    fn crc(&self, fields: &[u8]) -> u32 {
        let mut place = [0u8; 16];
        place[..8].copy_from_slice(&self.salt.to_le_bytes());
        place[8..].copy_from_slice(&self.offset.to_le_bytes());
        crc32c::crc32c_append(crc32c::crc32c(&place), fields)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// `FRAME_FLAG_*` bits.
    pub flags: u16,
    /// Bytes of records that follow.
    pub len: u32,
    /// Every byte of the segment before this offset was durable when the
    /// frame was written.
    pub durable_end: u64,
}

impl FrameHeader {
    /// Encodes the frame header for the frame at `place`.
    pub fn encode(&self, place: FramePlace) -> [u8; FRAME_HEADER_BYTES] {
        debug_assert!(
            self.durable_end <= place.offset,
            "durability beyond the frame"
        );
        let mut b = [0u8; FRAME_HEADER_BYTES];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4..6].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..20].copy_from_slice(&self.durable_end.to_le_bytes());
        let crc = place.crc(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the frame header at `place`; `None` if it is not one the
    /// store wrote there (bad magic, checksum, or a durable end past the
    /// frame itself).
    pub fn decode(b: &[u8], place: FramePlace) -> Option<Self> {
        if b.len() < FRAME_HEADER_BYTES || b[0..4] != FRAME_MAGIC || b[6..8] != [0, 0] {
            return None;
        }
        let crc = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
        if place.crc(&b[..20]) != crc {
            return None;
        }
        let mut end = [0u8; 8];
        end.copy_from_slice(&b[12..20]);
        let durable_end = u64::from_le_bytes(end);
        (durable_end <= place.offset).then(|| Self {
            flags: u16::from_le_bytes([b[4], b[5]]),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            durable_end,
        })
    }

    /// True if `b` starts with the frame magic (a candidate worth decoding).
    pub fn has_magic(b: &[u8]) -> bool {
        b.len() >= 4 && b[0..4] == FRAME_MAGIC
    }
}

/// True if `b` could be the start of a segment header being written when a
/// crash came: zeros, or a prefix of this format's header (magic, then this
/// version) that is shorter than a whole header.
pub fn is_interrupted_header(b: &[u8]) -> bool {
    if b.iter().all(|&x| x == 0) {
        return true;
    }
    if b.len() >= SEGMENT_HEADER_BYTES {
        return false;
    }
    let magic = b.len().min(8);
    let version = FORMAT_VERSION.to_le_bytes();
    b[..magic] == SEGMENT_MAGIC[..magic]
        && (b.len() <= 8 || b[8..b.len().min(12)] == version[..b.len().min(12) - 8])
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
            salt: 0x5eed,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Checksum));
        let mut future = b;
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32c::crc32c(&future[..60]);
        future[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&future), Err(HeaderError::Version(3)));
        assert_eq!(SegmentHeader::decode(&[b'x'; 64]), Err(HeaderError::Magic));
        assert_eq!(SegmentHeader::decode(&b[..63]), Err(HeaderError::Truncated));
    }

    #[test]
    fn frame_round_trip_only_at_its_place() {
        let f = FrameHeader {
            flags: FRAME_FLAG_SYNC,
            len: 999,
            durable_end: 64,
        };
        let here = FramePlace {
            salt: 7,
            offset: 1000,
        };
        let b = f.encode(here);
        assert_eq!(FrameHeader::decode(&b, here), Some(f));
        let elsewhere = FramePlace {
            offset: 1001,
            ..here
        };
        let other_segment = FramePlace { salt: 8, ..here };
        assert_eq!(FrameHeader::decode(&b, elsewhere), None);
        assert_eq!(FrameHeader::decode(&b, other_segment), None);
        assert_eq!(FrameHeader::decode(&[0; FRAME_HEADER_BYTES], here), None);
    }

    #[test]
    fn a_frame_cannot_claim_durability_past_itself() {
        let f = FrameHeader {
            flags: 0,
            len: 1,
            durable_end: 2000,
        };
        let place = FramePlace {
            salt: 1,
            offset: 2000,
        };
        let mut b = f.encode(place);
        assert!(FrameHeader::decode(&b, place).is_some());
        b[12..20].copy_from_slice(&2001u64.to_le_bytes());
        let crc = place.crc(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(FrameHeader::decode(&b, place), None);
    }

    #[test]
    fn interrupted_headers_are_zeros_or_a_prefix_of_ours() {
        let h = SegmentHeader {
            id: SegmentId(3),
            flags: 0,
            sealed: None,
            frame_bytes_max: 1,
            salt: 9,
        }
        .encode();
        assert!(is_interrupted_header(&[]));
        assert!(is_interrupted_header(&[0; 4096]));
        for n in 1..SEGMENT_HEADER_BYTES {
            assert!(is_interrupted_header(&h[..n]), "{n}");
        }
        assert!(!is_interrupted_header(&h), "a whole header is not a prefix");
        assert!(!is_interrupted_header(b"hello"));
        assert!(
            !is_interrupted_header(b"wbseg\0\0\x01\x01\0\0\0"),
            "format 1"
        );
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
