//! Reading a store directory: the recovery scan, also used by `wb inspect`
//! and `wb verify`.
//!
//! Rules (DESIGN.md section 3, G5):
//! - every record's crc is checked;
//! - a segment that a later header *sealed* is trusted up to its sealed end:
//!   anything bad before it is corruption, anything after it is ignored (it
//!   was never confirmed durable: a failed fdatasync, a torn tail found by an
//!   earlier recovery);
//! - in the newest segment, a bad frame or record is a torn tail, and is cut
//!   off, unless a valid sync-point frame follows it: frames are written one
//!   after another, each sync point after the previous one is durable, so a
//!   durable frame after a bad one means the bad one is damage, not a crash;
//! - any other bad byte is corruption: a typed error naming segment and
//!   offset. Nothing is dropped silently.

use std::collections::HashMap;
use std::path::Path;

use super::format::{
    FrameHeader, HeaderError, SegmentHeader, SegmentId, FRAME_FLAG_COMMIT, FRAME_FLAG_SYNC,
    FRAME_HEADER_BYTES, SEGMENT_FLAG_NO_SYNC, SEGMENT_HEADER_BYTES,
};
use crate::error::Error;
use crate::record::{self, RecordRef};

/// What the scan found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment.
    pub id: SegmentId,
    /// Its header (`None` if the newest segment's header was torn).
    pub header: Option<SegmentHeader>,
    /// Size of the file.
    pub file_bytes: u64,
    /// End of the trusted data (the next write would go here).
    pub data_end: u64,
    /// Frames read.
    pub frames: u64,
    /// Records read.
    pub records: u64,
    /// Bytes of records read.
    pub record_bytes: u64,
    /// Lowest and highest record version seen.
    pub versions: Option<(u64, u64)>,
    /// Where the torn tail began and why, if this segment had one.
    pub torn: Option<(u64, String)>,
}

/// What the scan found in a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Segments in id order.
    pub segments: Vec<SegmentReport>,
}

impl ScanReport {
    /// Torn tails found (0 or 1).
    pub fn torn_tails(&self) -> u64 {
        self.segments.iter().filter(|s| s.torn.is_some()).count() as u64
    }

    /// Records read.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// Bytes of records read.
    pub fn record_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.record_bytes).sum()
    }
}

/// The first `n` bytes of a file (fewer if it is shorter).
fn read_prefix(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)?
        .take(n as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// Segment files in `dir`, in id order. Other files are ignored, except that
/// a `.wb` file whose name is not a segment number is refused.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentId>, Error> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = SegmentId::parse(name) {
            ids.push(id);
        } else if name.ends_with(".wb") {
            return Err(Error::Format {
                path: entry.path(),
                reason: "a .wb file whose name is not a segment number".into(),
            });
        }
    }
    ids.sort();
    Ok(ids)
}

/// Scans every segment of `dir` and calls `visit` for each trusted record
/// (segment order, then file order).
pub fn scan_dir(
    dir: &Path,
    visit: &mut dyn FnMut(SegmentId, RecordRef<'_>),
) -> Result<ScanReport, Error> {
    let ids = list_segments(dir)?;
    let mut report = ScanReport::default();
    // Seals come from later headers, so read all headers first (64 bytes
    // each: memory stays at one segment, whatever the store's size; only the
    // newest file is read whole here, to tell a torn creation).
    let mut files = Vec::with_capacity(ids.len());
    let mut seals: HashMap<SegmentId, u64> = HashMap::new();
    for (i, &id) in ids.iter().enumerate() {
        let path = id.path(dir);
        let newest = i + 1 == ids.len();
        let bytes = if newest {
            std::fs::read(&path)?
        } else {
            read_prefix(&path, SEGMENT_HEADER_BYTES)?
        };
        let header = match SegmentHeader::decode(&bytes) {
            Ok(h) if h.id == id => Some(h),
            Ok(h) => {
                return Err(Error::Corrupt {
                    segment: id.0,
                    offset: 16,
                    reason: format!(
                        "header names segment {} but the file is {}",
                        h.id.0,
                        id.file_name()
                    ),
                })
            }
            // A segment whose creation a crash interrupted (created,
            // maybe preallocated, header not or partly written): only the
            // newest file, with nothing after its header.
            Err(HeaderError::Truncated | HeaderError::Checksum)
                if newest && bytes.iter().skip(SEGMENT_HEADER_BYTES).all(|&b| b == 0) =>
            {
                None
            }
            Err(HeaderError::Magic) if newest && bytes.iter().all(|&b| b == 0) => None,
            Err(e @ (HeaderError::Magic | HeaderError::Version(_))) => {
                return Err(Error::Format {
                    path,
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                return Err(Error::Corrupt {
                    segment: id.0,
                    offset: 0,
                    reason: e.to_string(),
                })
            }
        };
        if let Some((sealed, end)) = header.and_then(|h| h.sealed) {
            seals.entry(sealed).or_insert(end);
        }
        files.push((id, bytes, header));
    }
    // The newest segment is the last one with a readable header (a torn
    // header can only be on the very last file, see above).
    let newest_valid = files.iter().rposition(|(_, _, h)| h.is_some());
    let last = files.len().saturating_sub(1);
    for (i, (id, prefix, header)) in files.into_iter().enumerate() {
        let newest = Some(i) == newest_valid;
        let bytes = if i == last || header.is_none() {
            prefix
        } else {
            std::fs::read(id.path(dir))?
        };
        let mut seg = SegmentReport {
            id,
            header,
            file_bytes: bytes.len() as u64,
            data_end: SEGMENT_HEADER_BYTES as u64,
            frames: 0,
            records: 0,
            record_bytes: 0,
            versions: None,
            torn: None,
        };
        if header.is_none() {
            seg.data_end = 0;
            seg.torn = Some((0, "segment header torn".into()));
            report.segments.push(seg);
            continue;
        }
        scan_segment(
            &bytes,
            seals.get(&id).copied(),
            newest,
            &mut seg,
            &mut |r| visit(id, r),
        )?;
        report.segments.push(seg);
    }
    Ok(report)
}

/// Scans one segment's frames. `sealed_end`: the trusted end recorded by a
/// later header, if any.
fn scan_segment(
    bytes: &[u8],
    sealed_end: Option<u64>,
    newest: bool,
    seg: &mut SegmentReport,
    visit: &mut dyn FnMut(RecordRef<'_>),
) -> Result<(), Error> {
    let id = seg.id.0;
    // What proves a bad frame is damage rather than a crash: a later frame
    // that was durable before anything after the bad one was written. Under
    // `Batch` every sync-point frame is (frames wait for the previous
    // fdatasync); under `None` only commit markers are (written after one
    // returned).
    let no_sync = seg
        .header
        .is_some_and(|h| h.flags & SEGMENT_FLAG_NO_SYNC != 0);
    let proof = if no_sync {
        FRAME_FLAG_COMMIT
    } else {
        FRAME_FLAG_SYNC
    };
    let limit = match sealed_end {
        Some(end) if end as usize > bytes.len() => {
            return Err(Error::Corrupt {
                segment: id,
                offset: bytes.len() as u64,
                reason: format!(
                    "sealed at {end} bytes but the file has only {}",
                    bytes.len()
                ),
            })
        }
        Some(end) => end as usize,
        None => bytes.len(),
    };
    let mut pos = SEGMENT_HEADER_BYTES;
    let bad: Option<(usize, usize, String)> = loop {
        if pos >= limit {
            break None;
        }
        let avail = &bytes[pos..limit];
        if avail.len() < FRAME_HEADER_BYTES {
            if avail.iter().all(|&b| b == 0) && sealed_end.is_none() {
                break None;
            }
            break Some((pos, pos, "truncated frame header".into()));
        }
        if avail[..FRAME_HEADER_BYTES].iter().all(|&b| b == 0) {
            // End of the written data (the rest is preallocated zeros), unless
            // a trusted end says there is more, or a valid frame follows:
            // zeros there are damage, not the end.
            if sealed_end.is_some() || proof_after(bytes, pos + 1, limit, proof) {
                break Some((pos, pos, "zeros where a frame should be".into()));
            }
            break None;
        }
        let Some(frame) = FrameHeader::decode(avail) else {
            break Some((pos, pos, "bad frame header".into()));
        };
        let body_start = pos + FRAME_HEADER_BYTES;
        let body_end = body_start + frame.len as usize;
        if body_end > limit {
            break Some((
                pos,
                limit,
                format!("frame of {} bytes runs past the data end", frame.len),
            ));
        }
        let mut failed = None;
        let (mut n, mut lo, mut hi) = (0u64, u64::MAX, 0u64);
        for item in record::iter(&bytes[body_start..body_end]) {
            match item {
                Ok(r) => {
                    n += 1;
                    lo = lo.min(r.version.0);
                    hi = hi.max(r.version.0);
                }
                Err((off, e)) => {
                    failed = Some((body_start + off, e.to_string()));
                    break;
                }
            }
        }
        if let Some((at, why)) = failed {
            break Some((pos, at, why));
        }
        // The frame is whole: visit its records.
        for r in record::iter(&bytes[body_start..body_end]).flatten() {
            visit(r);
        }
        seg.frames += 1;
        seg.records += n;
        seg.record_bytes += frame.len as u64;
        if n > 0 {
            seg.versions = Some(
                seg.versions
                    .map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))),
            );
        }
        pos = body_end;
        seg.data_end = pos as u64;
    };
    let Some((frame_start, at, why)) = bad else {
        return Ok(());
    };
    // Where a crash may leave a bad tail: the newest segment (its last frame
    // was being written), and a segment written without fdatasync (the OS
    // writes its pages back in any order after the last commit). A sealed
    // segment is trusted up to its seal, which only ever covers data an
    // fdatasync made durable.
    let crash_zone = sealed_end.is_none() && (newest || no_sync);
    // Look for a later sync point after the bad frame's declared extent when
    // its header is intact (a torn frame's own contents, user data included,
    // prove nothing), and never past the trusted limit.
    let search_from = FrameHeader::decode(&bytes[frame_start..limit])
        .map_or(frame_start + 1, |f| {
            frame_start + FRAME_HEADER_BYTES + f.len as usize
        });
    if crash_zone && !proof_after(bytes, search_from, limit, proof) {
        seg.torn = Some((frame_start as u64, why));
        return Ok(());
    }
    Err(Error::Corrupt {
        segment: id,
        offset: at as u64,
        reason: why,
    })
}

/// True if a valid frame header with `flag` starts anywhere in
/// `from .. limit`.
fn proof_after(bytes: &[u8], from: usize, limit: usize, flag: u16) -> bool {
    let bytes = &bytes[..limit.min(bytes.len())];
    let mut i = from;
    while i + FRAME_HEADER_BYTES <= bytes.len() {
        match bytes[i..].windows(4).position(|w| w == b"wbfr") {
            None => return false,
            Some(p) => {
                let at = i + p;
                if let Some(f) = FrameHeader::decode(&bytes[at..]) {
                    if f.flags & flag != 0 {
                        return true;
                    }
                }
                i = at + 1;
            }
        }
    }
    false
}
