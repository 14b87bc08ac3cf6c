//! Reading a store directory: the recovery scan, also used by `wb inspect`
//! and `wb verify`.
//!
//! Rules (G5):
//! - every record's crc is checked;
//! - a segment that a later header *sealed* is trusted up to its sealed end:
//!   anything bad before it is corruption, anything after it is ignored (it
//!   was never confirmed durable: a failed fdatasync, a torn tail found by an
//!   earlier recovery);
//! - in the newest segment (and in one written under `Durability::Deferred`), a
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

mod frames;
mod segment_file;

use std::collections::HashMap;
use std::path::Path;

use frames::{durable_past, walk, Stop};
use segment_file::{open_segment, SegmentFile};

use super::format::{SegmentHeader, SegmentId, SEGMENT_FLAG_NO_SYNC, SEGMENT_HEADER_BYTES};
use super::hint::{self, HintEntry};
use crate::error::Error;
use crate::record::{self, RecordRef};
use crate::store::StoredKey;

/// What the scan found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Its keys came from its hint file: `frames` is 0 and no record of
    /// it was read.
    pub hinted: bool,
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
    let mut each = |s: Scanned<'_>| {
        if let Scanned::Record(at, r) = s {
            visit(at.segment, r);
        }
    };
    scan_dir_placed(dir, &mut each, None)
}

/// What the scan hands over as it reads.
pub(in crate::store::file) enum Scanned<'a> {
    /// A trusted record, and where it is.
    Record(Placed, RecordRef<'a>),
    /// A segment read to the end of its trusted data (every one that was
    /// read, not one taken from its hint).
    SegmentEnd(&'a SegmentReport),
}

/// What takes the entries of the hint files the scan uses.
pub(in crate::store::file) type HintVisit<'h> = dyn FnMut(SegmentId, &HintEntry<'_>) + 'h;

/// Where the scan found a record: its segment (with the salt of the
/// segment's header) and its offset there.
#[derive(Debug, Clone, Copy)]
pub(in crate::store::file) struct Placed {
    pub(in crate::store::file) segment: SegmentId,
    pub(in crate::store::file) salt: u64,
    pub(in crate::store::file) offset: u64,
}

/// [`scan_dir`], handing over each record's offset in its segment too.
/// With `hinted`, a sealed segment whose hint file passes its checks is
/// not read: each of the hint's entries goes to `hinted` instead.
pub(in crate::store::file) fn scan_dir_placed(
    dir: &Path,
    visit: &mut dyn FnMut(Scanned<'_>),
    mut hinted: Option<&mut HintVisit<'_>>,
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
            hinted: false,
        };
        let sealed = seals.get(&f.id).copied();
        if f.header.is_none() {
            seg.data_end = 0;
            seg.torn = Some((0, "segment creation interrupted".into()));
        } else if !from_hint(dir, f, sealed, &mut seg, hinted.as_deref_mut())? {
            let newest = Some(i) == newest_valid;
            let salt = f.header.map_or(0, |h| h.salt);
            let mut placed = |offset: u64, r: RecordRef<'_>| {
                let at = Placed {
                    segment: f.id,
                    salt,
                    offset,
                };
                visit(Scanned::Record(at, r));
            };
            scan_segment(f, sealed, newest, &mut seg, &mut placed)?;
            seg.bytes_read = f.bytes_read.get();
            visit(Scanned::SegmentEnd(&seg));
        }
        seg.bytes_read = f.bytes_read.get();
        report.segments.push(seg);
    }
    Ok(report)
}

/// Takes a sealed segment's records from its hint file if there is a
/// usable one (see `hint`), handing each entry to `hinted`. False if the
/// segment must be read.
fn from_hint(
    dir: &Path,
    f: &SegmentFile,
    sealed_end: Option<u64>,
    seg: &mut SegmentReport,
    hinted: Option<&mut HintVisit<'_>>,
) -> Result<bool, Error> {
    let (Some(hinted), Some(end), Some(header)) = (hinted, sealed_end, f.header) else {
        return Ok(false);
    };
    if end > f.len {
        return Ok(false); // the scan reports it
    }
    let mut versions: Option<(u64, u64)> = None;
    let loaded = hint::load(dir, f.id, header.salt, end, &mut |e| {
        let v = e.version.0;
        versions = Some(versions.map_or((v, v), |(a, b)| (a.min(v), b.max(v))));
        hinted(f.id, e);
    });
    let Some(h) = loaded else {
        return Ok(false);
    };
    seg.records = h.entries;
    seg.record_bytes = h.record_bytes;
    seg.versions = versions;
    seg.data_end = end;
    seg.hinted = true;
    Ok(true)
}

/// How a segment's walk ended, before the crash zone is considered.
#[derive(Debug)]
enum Ending {
    /// At the end of its data.
    Clean,
    /// Frames after a gap of zeros at this offset, none of them proof that
    /// the gap was durable: never made durable, a torn tail.
    AfterGap(u64),
    /// A bad spot: (start of the bad frame, offset of the damage, why).
    Bad(u64, u64, String),
}

/// Scans one segment's frames. `sealed_end`: the trusted end recorded by a
/// later header, if any.
fn scan_segment(
    f: &SegmentFile,
    sealed_end: Option<u64>,
    newest: bool,
    seg: &mut SegmentReport,
    visit: &mut dyn FnMut(u64, RecordRef<'_>),
) -> Result<(), Error> {
    if let Some(end) = sealed_end.filter(|&end| end > f.len) {
        return Err(Error::Corrupt {
            segment: f.id.0,
            offset: f.len,
            reason: format!("sealed at {end} bytes but the file has only {}", f.len),
        });
    }
    let limit = sealed_end.unwrap_or(f.len);
    let (stop, end) = read_frames(f, limit, seg, visit)?;
    seg.data_end = end;
    let (bad, at, why) = match ending(f, stop, end, sealed_end, limit)? {
        Ending::Clean => return Ok(()),
        Ending::AfterGap(p) => {
            seg.torn = Some((p, "frames after a gap were never made durable".into()));
            return Ok(());
        }
        Ending::Bad(bad, at, why) => (bad, at, why),
    };
    // Where a crash may leave a bad tail: the newest segment (its last
    // frames were being written), and a segment written without fdatasync.
    // A sealed segment is trusted up to its seal, which only ever covers
    // data an fdatasync made durable.
    let no_sync = f
        .header
        .is_some_and(|h| h.flags & SEGMENT_FLAG_NO_SYNC != 0);
    let crash_zone = sealed_end.is_none() && (newest || no_sync);
    if crash_zone && !durable_past(f, bad, limit)?.0 {
        seg.torn = Some((bad, why));
        return Ok(());
    }
    Err(Error::Corrupt {
        segment: f.id.0,
        offset: at,
        reason: why,
    })
}

/// Walks the frames of `f` up to `limit`, counting them in `seg` and
/// handing every record of each whole frame to `visit`. Returns where the
/// walk stopped and the end of the last whole frame.
fn read_frames(
    f: &SegmentFile,
    limit: u64,
    seg: &mut SegmentReport,
    visit: &mut dyn FnMut(u64, RecordRef<'_>),
) -> Result<(Stop, u64), Error> {
    let (mut frames, mut bytes) = (0u64, 0u64);
    let mut check = |at: u64, body: &[u8]| take_records(at, body, seg, visit);
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
    Ok((stop, end))
}

/// Checks every record of a frame's `body` (at offset `at` of the file),
/// then counts each in `seg` and hands it to `visit` with its offset;
/// `Err` names the offset in the body and what is wrong.
fn take_records(
    at: u64,
    body: &[u8],
    seg: &mut SegmentReport,
    visit: &mut dyn FnMut(u64, RecordRef<'_>),
) -> Result<(), (usize, String)> {
    // The whole frame first: the records of a frame that turns out torn
    // must never reach the caller (it would hold versions no segment
    // keeps once the tail is cut).
    if let Some(Err((off, e))) = record::iter(body).find(|r| r.is_err()) {
        return Err((off, e.to_string()));
    }
    let mut offset = at;
    for r in record::iter(body).flatten() {
        let here = offset;
        offset += record::encoded_len(r.key.len(), r.value.len()) as u64;
        seg.records += 1;
        seg.versions = Some(seg.versions.map_or((r.version.0, r.version.0), |(a, b)| {
            (a.min(r.version.0), b.max(r.version.0))
        }));
        visit(here, r);
    }
    Ok(())
}

/// What the walk's `stop` at `end` means: zeros short of a seal, or zeros
/// in an unsealed segment that a later frame proves durable, are bad spots.
fn ending(
    f: &SegmentFile,
    stop: Stop,
    end: u64,
    sealed_end: Option<u64>,
    limit: u64,
) -> Result<Ending, Error> {
    let zeros = || "zeros where a frame should be".to_string();
    Ok(match stop {
        Stop::End if sealed_end.is_some_and(|s| end < s) => Ending::Bad(end, end, zeros()),
        Stop::End | Stop::Paused => Ending::Clean,
        Stop::Zeros(p) if sealed_end.is_none() => match durable_past(f, p, limit)? {
            (true, _) => Ending::Bad(p, p, zeros()),
            (false, true) => Ending::AfterGap(p),
            (false, false) => Ending::Clean,
        },
        Stop::Zeros(p) => Ending::Bad(p, p, zeros()),
        Stop::Bad(start, at, why) => Ending::Bad(start, at, why),
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
    let mut keys = |_: u64, body: &[u8]| -> Result<(), (usize, String)> {
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
