//! Reading a store directory: the recovery scan, also used by `wb inspect`
//! and `wb verify`.
//!
//! Rules (G5):
//! - every record's crc is checked;
//! - a segment that a later header *sealed* is trusted up to its sealed end:
//!   anything bad before it is corruption, anything after it is ignored (it
//!   was never confirmed durable: a failed fdatasync, a torn tail found by an
//!   earlier recovery);
//! - in the newest segment (and in one written under `Durability::None`), a
//!   bad frame or record at offset P is a torn tail, and is cut off, unless
//!   the segment holds a frame, written by the store at its place, whose
//!   *durable end* lies past P: that frame was written after an fdatasync
//!   covering P had returned, so the bad bytes at P are damage, not a crash.
//!   Zeros where a frame header should be are the end of the data, unless
//!   such a frame follows. A frame header is valid only at the offset it was
//!   written for (see `format`), so bytes inside values can never pose as
//!   one; the search for such a frame after P covers one largest frame
//!   (`frame_bytes_max`) and goes on from every frame it finds, so it reads
//!   what was written and never the preallocated zeros beyond;
//! - a segment that a later header seals but that is missing, while an older
//!   one is present, was not removed by compaction (which removes the oldest
//!   first): an error naming it;
//! - any other bad byte is corruption: a typed error naming segment and
//!   offset. Nothing is dropped silently.
//!
//! Memory: one frame at a time (at most `frame_bytes_max` bytes), whatever
//! the size of a segment; a segment is read up to the end of its data.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{
    is_interrupted_header, FrameHeader, HeaderError, SegmentHeader, SegmentId, FRAME_HEADER_BYTES,
    SEGMENT_FLAG_NO_SYNC, SEGMENT_HEADER_BYTES,
};
use crate::error::Error;
use crate::record::{self, RecordRef};
use crate::store::StoredKey;

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
    /// Bytes the scan read from this segment's file.
    pub bytes_read: u64,
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

/// Reads `len` bytes at `offset` into `buf` (fewer at the end of the file).
fn read_at(file: &File, offset: u64, len: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.resize(len, 0);
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(())
}

/// Bytes read per step when a range is only searched or checked for zeros.
const CHUNK_BYTES: usize = 1 << 20;

/// True if `file` holds only zeros in `from .. to`.
fn zeros_in(file: &File, from: u64, to: u64) -> std::io::Result<bool> {
    let mut buf = Vec::new();
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(CHUNK_BYTES as u64) as usize;
        read_at(file, pos, n, &mut buf)?;
        if buf.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if buf.len() < n {
            break;
        }
        pos += n as u64;
    }
    Ok(true)
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

/// A segment file opened for the scan.
struct SegmentFile {
    id: SegmentId,
    file: File,
    len: u64,
    /// `None`: the newest file, whose creation a crash interrupted.
    header: Option<SegmentHeader>,
    /// Bytes read so far.
    bytes_read: std::cell::Cell<u64>,
}

impl SegmentFile {
    /// [`read_at`], counted.
    fn read(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        read_at(&self.file, offset, len, buf)?;
        self.bytes_read
            .set(self.bytes_read.get() + buf.len() as u64);
        Ok(())
    }
}

/// Opens segment `id` and reads its header. `newest`: the last file, the
/// only one whose creation a crash can have interrupted (zeros, or a prefix
/// of our header); anything else that is not our header is refused, and no
/// file is ever taken for ours without that evidence.
fn open_segment(dir: &Path, id: SegmentId, newest: bool) -> Result<SegmentFile, Error> {
    let path = id.path(dir);
    let file = File::open(&path)?;
    let len = file.metadata()?.len();
    let mut prefix = Vec::new();
    read_at(&file, 0, SEGMENT_HEADER_BYTES, &mut prefix)?;
    let decoded = SegmentHeader::decode(&prefix);
    let header = match decoded {
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
        Err(_)
            if newest
                && is_interrupted_header(&prefix)
                && zeros_in(&file, prefix.len() as u64, len)? =>
        {
            None
        }
        Err(HeaderError::Checksum) => {
            return Err(Error::Corrupt {
                segment: id.0,
                offset: 0,
                reason: HeaderError::Checksum.to_string(),
            })
        }
        Err(e) => {
            let reason = match e {
                HeaderError::Truncated => format!(
                    "{len} bytes: shorter than a segment header and not one this store was creating; not a writebehind segment"
                ),
                e => e.to_string(),
            };
            return Err(Error::Format { path, reason });
        }
    };
    Ok(SegmentFile {
        id,
        file,
        len,
        header,
        bytes_read: std::cell::Cell::new(prefix.len() as u64),
    })
}

/// A seal names a segment that is gone while an older one is still here:
/// compaction removes the oldest first, so something else removed it.
fn check_sealed_present(files: &[SegmentFile]) -> Result<(), Error> {
    let present: std::collections::BTreeSet<SegmentId> = files.iter().map(|f| f.id).collect();
    for f in files {
        let Some((sealed, end)) = f.header.and_then(|h| h.sealed) else {
            continue;
        };
        let older = present.range(..sealed).next_back();
        if let (false, Some(older)) = (present.contains(&sealed), older) {
            return Err(Error::Corrupt {
                segment: sealed.0,
                offset: 0,
                reason: format!(
                    "segment {} is missing: {} seals it at {end} bytes and the older {} is still here \
                     (a segment removed by hand, or lost in a copy or restore)",
                    sealed.file_name(),
                    f.id.file_name(),
                    older.file_name()
                ),
            });
        }
    }
    Ok(())
}

/// Scans every segment of `dir` and calls `visit` for each trusted record
/// (segment order, then file order).
pub fn scan_dir(
    dir: &Path,
    visit: &mut dyn FnMut(SegmentId, RecordRef<'_>),
) -> Result<ScanReport, Error> {
    let ids = list_segments(dir)?;
    let files = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| open_segment(dir, id, i + 1 == ids.len()))
        .collect::<Result<Vec<_>, Error>>()?;
    check_sealed_present(&files)?;
    let mut seals: HashMap<SegmentId, u64> = HashMap::new();
    for (sealed, end) in files.iter().filter_map(|f| f.header.and_then(|h| h.sealed)) {
        seals.entry(sealed).or_insert(end);
    }
    // The newest segment is the last one with a readable header (a torn
    // header can only be on the very last file, see above).
    let newest_valid = files.iter().rposition(|f| f.header.is_some());
    let mut report = ScanReport::default();
    for (i, f) in files.iter().enumerate() {
        let mut seg = SegmentReport {
            id: f.id,
            header: f.header,
            file_bytes: f.len,
            data_end: SEGMENT_HEADER_BYTES as u64,
            frames: 0,
            records: 0,
            record_bytes: 0,
            versions: None,
            torn: None,
            bytes_read: 0,
        };
        if f.header.is_none() {
            seg.data_end = 0;
            seg.torn = Some((0, "segment creation interrupted".into()));
        } else {
            let sealed = seals.get(&f.id).copied();
            let newest = Some(i) == newest_valid;
            scan_segment(f, sealed, newest, &mut seg, &mut |r| visit(f.id, r))?;
        }
        seg.bytes_read = f.bytes_read.get();
        report.segments.push(seg);
    }
    Ok(report)
}

/// Where a walk over frames stopped.
#[derive(Debug)]
enum Stop {
    /// At the trusted limit, or at trailing zeros too short for a header.
    End,
    /// Zeros where a frame header should be.
    Zeros(u64),
    /// A frame that is not whole: (frame start, offset of the damage, why).
    Bad(u64, u64, String),
    /// At `pause_at` (see [`walk`]), with more to read.
    Paused,
}

/// Checks and hands over the records of one frame's body; `Err` names the
/// offset in the body and what is wrong.
type CheckRecords<'a> = dyn FnMut(&[u8]) -> Result<(), (usize, String)> + 'a;

/// Walks whole frames of `f` from `pos` up to `limit`, calling `frame` for
/// each (its start and header) and, if `records` is given, checking every
/// record and handing it over; pauses before a frame that starts at or past
/// `pause_at`. Returns where it stopped and the end of the last whole frame.
fn walk(
    f: &SegmentFile,
    mut pos: u64,
    limit: u64,
    pause_at: u64,
    mut records: Option<&mut CheckRecords<'_>>,
    frame: &mut dyn FnMut(u64, FrameHeader),
) -> Result<(Stop, u64), Error> {
    let Some(header) = f.header else {
        return Ok((Stop::End, pos));
    };
    let mut buf = Vec::new();
    loop {
        if pos >= limit {
            return Ok((Stop::End, pos));
        }
        if pos >= pause_at {
            return Ok((Stop::Paused, pos));
        }
        let want = (limit - pos).min(FRAME_HEADER_BYTES as u64) as usize;
        f.read(pos, want, &mut buf)?;
        if buf.iter().all(|&b| b == 0) {
            let stop = if buf.len() < FRAME_HEADER_BYTES && pos + (buf.len() as u64) >= limit {
                Stop::End
            } else {
                Stop::Zeros(pos)
            };
            return Ok((stop, pos));
        }
        if buf.len() < FRAME_HEADER_BYTES {
            return Ok((Stop::Bad(pos, pos, "truncated frame header".into()), pos));
        }
        let Some(h) = FrameHeader::decode(&buf, header.frame_at(pos)) else {
            return Ok((Stop::Bad(pos, pos, "bad frame header".into()), pos));
        };
        let body = pos + FRAME_HEADER_BYTES as u64;
        let end = body + u64::from(h.len);
        if h.len > header.frame_bytes_max || end > limit {
            let why = format!("frame of {} bytes runs past the data end", h.len);
            return Ok((Stop::Bad(pos, limit.min(end), why), pos));
        }
        if let Some(check) = records.as_mut() {
            f.read(body, h.len as usize, &mut buf)?;
            if let Err((off, why)) = check(&buf) {
                return Ok((Stop::Bad(pos, body + off as u64, why), pos));
            }
        }
        frame(pos, h);
        pos = end;
    }
}

/// The first frame the store wrote at its place in `from ..= last`, if any
/// (the range is searched in chunks; only bytes with the frame magic are
/// decoded).
fn find_frame(f: &SegmentFile, from: u64, last: u64) -> Result<Option<u64>, Error> {
    let Some(header) = f.header else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    let mut start = from;
    while start <= last && start < f.len {
        let n = ((last - start + 1) as usize).min(CHUNK_BYTES) + FRAME_HEADER_BYTES - 1;
        f.read(start, n, &mut buf)?;
        let span = buf.len().saturating_sub(FRAME_HEADER_BYTES - 1);
        for i in (0..span.min((last - start + 1) as usize)).filter(|&i| buf[i] == b'w') {
            let at = start + i as u64;
            if FrameHeader::has_magic(&buf[i..])
                && FrameHeader::decode(&buf[i..], header.frame_at(at)).is_some()
            {
                return Ok(Some(at));
            }
        }
        if buf.len() < n {
            break;
        }
        start += CHUNK_BYTES as u64;
    }
    Ok(None)
}

/// Looks past a bad spot at `bad` for a frame that says `bad` was durable
/// (its durable end lies past it). Returns that and whether any frame the
/// store wrote was found after `bad` at all.
fn durable_past(f: &SegmentFile, bad: u64, limit: u64) -> Result<(bool, bool), Error> {
    let frame_max = f.header.map_or(0, |h| u64::from(h.frame_bytes_max));
    let mut from = bad + 1;
    let mut found_any = false;
    // Every hop moves past a frame or a bad spot, so this ends; the bound
    // is the number of bytes in the segment.
    for _ in 0..=limit {
        // The next frame after a bad one starts within one largest frame.
        let last = (from + FRAME_HEADER_BYTES as u64 + frame_max).min(limit.saturating_sub(1));
        let Some(at) = find_frame(f, from, last)? else {
            return Ok((false, found_any));
        };
        found_any = true;
        let mut proof = false;
        let (stop, end) = walk(f, at, limit, u64::MAX, None, &mut |_, h| {
            proof |= h.durable_end > bad;
        })?;
        if proof {
            return Ok((true, true));
        }
        from = match stop {
            Stop::End | Stop::Paused => return Ok((false, true)),
            Stop::Zeros(p) | Stop::Bad(p, _, _) => p.max(end) + 1,
        };
    }
    Ok((false, found_any))
}

/// Scans one segment's frames. `sealed_end`: the trusted end recorded by a
/// later header, if any.
fn scan_segment(
    f: &SegmentFile,
    sealed_end: Option<u64>,
    newest: bool,
    seg: &mut SegmentReport,
    visit: &mut dyn FnMut(RecordRef<'_>),
) -> Result<(), Error> {
    let id = f.id.0;
    let no_sync = f
        .header
        .is_some_and(|h| h.flags & SEGMENT_FLAG_NO_SYNC != 0);
    if let Some(end) = sealed_end.filter(|&end| end > f.len) {
        return Err(Error::Corrupt {
            segment: id,
            offset: f.len,
            reason: format!("sealed at {end} bytes but the file has only {}", f.len),
        });
    }
    let limit = sealed_end.unwrap_or(f.len);
    let mut check = |body: &[u8]| -> Result<(), (usize, String)> {
        // The whole frame first: the records of a frame that turns out torn
        // must never reach the caller (it would hold versions no segment
        // keeps once the tail is cut).
        if let Some(Err((off, e))) = record::iter(body).find(|r| r.is_err()) {
            return Err((off, e.to_string()));
        }
        for r in record::iter(body).flatten() {
            seg.records += 1;
            seg.versions = Some(seg.versions.map_or((r.version.0, r.version.0), |(a, b)| {
                (a.min(r.version.0), b.max(r.version.0))
            }));
            visit(r);
        }
        Ok(())
    };
    let (mut frames, mut bytes) = (0u64, 0u64);
    let (stop, end) = walk(
        f,
        SEGMENT_HEADER_BYTES as u64,
        limit,
        u64::MAX,
        Some(&mut check),
        &mut |_, h| {
            frames += 1;
            bytes += u64::from(h.len);
        },
    )?;
    seg.frames = frames;
    seg.record_bytes = bytes;
    seg.data_end = end;
    let (bad, at, why) = match stop {
        Stop::End if sealed_end.is_some_and(|s| end < s) => {
            (end, end, "zeros where a frame should be".to_string())
        }
        Stop::End | Stop::Paused => return Ok(()),
        Stop::Zeros(p) if sealed_end.is_none() => {
            let (proof, after) = durable_past(f, p, limit)?;
            if !proof {
                if after {
                    seg.torn = Some((p, "frames after a gap were never made durable".into()));
                }
                return Ok(());
            }
            (p, p, "zeros where a frame should be".to_string())
        }
        Stop::Zeros(p) => (p, p, "zeros where a frame should be".to_string()),
        Stop::Bad(start, at, why) => (start, at, why),
    };
    // Where a crash may leave a bad tail: the newest segment (its last
    // frames were being written), and a segment written without fdatasync.
    // A sealed segment is trusted up to its seal, which only ever covers
    // data an fdatasync made durable.
    let crash_zone = sealed_end.is_none() && (newest || no_sync);
    if crash_zone && !durable_past(f, bad, limit)?.0 {
        seg.torn = Some((bad, why));
        return Ok(());
    }
    Err(Error::Corrupt {
        segment: id,
        offset: at,
        reason: why,
    })
}

/// Compaction's read of one segment: from `from` (0: the start), appends
/// the key and version of every record of whole frames until about
/// `budget_bytes` were read. Returns where to go on, or `None` once the
/// segment's data has been read to its end. The segment was checked when
/// the store opened or wrote it; reading stops at the first frame that is
/// not whole (a sealed tail: records never confirmed, whose keys could only
/// add rewrites).
pub(crate) fn segment_keys(
    dir: &Path,
    id: SegmentId,
    from: u64,
    budget_bytes: usize,
    out: &mut Vec<StoredKey>,
) -> Result<Option<u64>, Error> {
    let f = open_segment(dir, id, false)?;
    let from = from.max(SEGMENT_HEADER_BYTES as u64);
    let pause_at = from.saturating_add(budget_bytes as u64);
    let mut keys = |body: &[u8]| -> Result<(), (usize, String)> {
        for item in record::iter(body) {
            let r = item.map_err(|(off, e)| (off, e.to_string()))?;
            out.push(StoredKey {
                key: r.key.to_vec(),
                version: r.version,
            });
        }
        Ok(())
    };
    let (stop, end) = walk(&f, from, f.len, pause_at, Some(&mut keys), &mut |_, _| {})?;
    Ok(matches!(stop, Stop::Paused).then_some(end))
}
