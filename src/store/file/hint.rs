//! Hint files: a sealed segment's keys, versions and record places, so
//! that opening builds the keydir without reading the segment's values
//! (the idea of Bitcask's hint files; Sheehy and Smith, "Bitcask", Basho,
//! 2010).
//!
//! `NNNNNN.hint` is written beside segment `NNNNNN.wb` by the store's
//! thread as the segment's frames are confirmed, and completed with a
//! trailer when the segment is left behind at the end of everything
//! confirmed in it (a rotation, a compaction's rotation, `close`). A
//! segment left after a failure, or sealed short of what was confirmed,
//! gets no hint.
//!
//! A hint is derived data: never fsync'ed, and trusted at open only if all
//! of this holds, else the segment is read as before (G5's rules):
//! - the magic and format are this build's;
//! - the segment id and salt are those of the segment's header (a hint
//!   left by an earlier file of the same name has another salt);
//! - the trailer's end equals the seal a later segment's header records
//!   (so the hint describes exactly the trusted data);
//! - crc32c over the whole file matches, the entries fill the space to the
//!   trailer exactly, and every entry lies inside the sealed data.
//!
//! A power cut may leave a hint torn, short or absent: each fails a check
//! above. Hints are written with blocking `pwrite`s of up to 256 KiB on the
//! store's thread (beside the engine's own writes); the file store's
//! throughput with them was the same as without, within noise. What a hint cannot do is check the records it points to: a bit
//! flipped in a hinted segment is found when the record is read (the
//! reader checks crc, key and version), by compaction, or by `wb verify`,
//! not at open.
//!
//! Layout (little-endian):
//! - header, 24 bytes: `b"WBHINT\x00\x01"`, segment id (u64), salt (u64);
//! - entries: kind (u8: 1 put, 2 delete), key length (u16), record offset
//!   (u32), record length (u32), version (u64), key bytes;
//! - trailer, 40 bytes: `b"WBHEND\x00\x01"`, entries (u64), sealed end
//!   (u64), record bytes (u64), crc32c of every byte before this field
//!   (u32), zero (u32).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::format::{SegmentId, SEGMENT_HEADER_BYTES};
use super::trace::{self, IoEvent};
use crate::record::{encoded_len, RecordRef};
use crate::version::{Kind, Version};

const MAGIC: &[u8; 8] = b"WBHINT\x00\x01";
const END_MAGIC: &[u8; 8] = b"WBHEND\x00\x01";
const HEADER_BYTES: usize = 24;
const TRAILER_BYTES: usize = 40;
/// Bytes of an entry before its key.
const ENTRY_FIXED_BYTES: usize = 19;
/// Entries are buffered up to this many bytes between writes.
const BUFFER_BYTES: usize = 256 << 10;
/// Bytes read at a time when a hint is loaded.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// The hint file's path for segment `id`.
pub(super) fn path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("{:06}.hint", id.0))
}

/// One record as a hint lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HintEntry<'a> {
    pub(super) kind: Kind,
    pub(super) version: Version,
    pub(super) key: &'a [u8],
    /// The record's offset in the segment and its encoded length.
    pub(super) offset: u32,
    pub(super) len: u32,
}

impl<'a> HintEntry<'a> {
    /// The entry of record `r` at `offset` of its segment; `None` if its
    /// place does not fit a hint (past 4 GiB: a frame larger than a whole
    /// segment), which the segment's hint must then be given up for.
    pub(super) fn of(offset: u64, r: &RecordRef<'a>) -> Option<Self> {
        let len = encoded_len(r.key.len(), r.value.len());
        let offset = u32::try_from(offset).ok()?;
        let len = u32::try_from(len).ok()?;
        offset.checked_add(len)?;
        Some(Self {
            kind: r.kind,
            version: r.version,
            key: r.key,
            offset,
            len,
        })
    }
}

/// The hint of the active segment, written as its frames are confirmed.
#[derive(Debug)]
pub(super) struct HintWriter {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Bytes already written to the file.
    written: u64,
    crc: u32,
    entries: u64,
    record_bytes: u64,
}

impl HintWriter {
    /// Starts the hint of segment `id` (salt `salt`), or `None` if its file
    /// cannot be made (the segment is then read at open, as without hints).
    pub(super) fn create(dir: &Path, id: SegmentId, salt: u64) -> Option<Self> {
        Self::create_at(path(dir, id), id, salt)
    }

    /// [`create`](Self::create) for a segment that is already there (one
    /// recovery reads): written as `NNNNNN.hint.new` ([`new_path`]), to be
    /// renamed over the hint ([`install`]) once the open has succeeded, so
    /// that an open that fails leaves the hints as they were.
    pub(super) fn create_beside(dir: &Path, id: SegmentId, salt: u64) -> Option<Self> {
        Self::create_at(new_path(dir, id), id, salt)
    }

    fn create_at(path: PathBuf, id: SegmentId, salt: u64) -> Option<Self> {
        // A hint left by an earlier segment of this number: its salt would
        // refuse it, but a new one is written in its place.
        if std::fs::remove_file(&path).is_ok() {
            trace::record(|| IoEvent::Unlink { path: path.clone() });
        }
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("{}: {e}; the segment will be read at open", path.display());
                return None;
            }
        };
        trace::opened(file.as_raw_fd(), &path);
        trace::record(|| IoEvent::Create { path: path.clone() });
        let mut buf = Vec::with_capacity(BUFFER_BYTES + 1024);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&id.0.to_le_bytes());
        buf.extend_from_slice(&salt.to_le_bytes());
        Some(Self {
            file,
            path,
            buf,
            written: 0,
            crc: 0,
            entries: 0,
            record_bytes: 0,
        })
    }

    /// A record confirmed written in the segment. Returns `false` if the
    /// hint failed (it is then abandoned).
    pub(super) fn note(&mut self, e: &HintEntry<'_>) -> bool {
        self.buf.push(match e.kind {
            Kind::Put => 1,
            Kind::Delete => 2,
        });
        self.buf
            .extend_from_slice(&(e.key.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(&e.offset.to_le_bytes());
        self.buf.extend_from_slice(&e.len.to_le_bytes());
        self.buf.extend_from_slice(&e.version.0.to_le_bytes());
        self.buf.extend_from_slice(e.key);
        self.entries += 1;
        self.record_bytes += u64::from(e.len);
        self.buf.len() < BUFFER_BYTES || self.flush().is_ok()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        trace::write_fd(self.file.as_raw_fd(), self.written, &[&self.buf]);
        self.file.write_all_at(&self.buf, self.written)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Completes the hint: the segment's trusted data ends at `sealed_end`
    /// (every noted record lies before it). Returns its path, or `None` if
    /// it failed (and was removed).
    pub(super) fn finish(mut self, sealed_end: u64) -> Option<PathBuf> {
        self.buf.extend_from_slice(END_MAGIC);
        self.buf.extend_from_slice(&self.entries.to_le_bytes());
        self.buf.extend_from_slice(&sealed_end.to_le_bytes());
        self.buf.extend_from_slice(&self.record_bytes.to_le_bytes());
        let crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.crc = 0;
        match self.flush() {
            Ok(()) => Some(self.path),
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; the segment will be read at open",
                    self.path.display()
                );
                self.abandon();
                None
            }
        }
    }

    /// Gives the hint up (the segment is read at open instead).
    pub(super) fn abandon(self) {
        drop(self.file);
        remove(&self.path);
    }
}

/// Removes what hints a crash left behind in `dir`: a hint whose segment is
/// gone (its unlink lost), and a new hint of an open that did not finish.
/// Only files named as this module names them are touched.
pub(super) fn sweep(dir: &Path, segments: &[SegmentId]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let (digits, new) = match name.strip_suffix(".hint.new") {
            Some(d) => (d, true),
            None => match name.strip_suffix(".hint") {
                Some(d) => (d, false),
                None => continue,
            },
        };
        let Some(id) = (digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
            .map(SegmentId)
        else {
            continue;
        };
        if new || !segments.contains(&id) {
            remove(&entry.path());
        }
    }
}

/// Where recovery writes segment `id`'s new hint until the open succeeds.
pub(super) fn new_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("{:06}.hint.new", id.0))
}

/// Puts a hint recovery wrote (at [`new_path`]) in place (not made durable:
/// a crash leaves the old hint, the new one, or none).
pub(super) fn install(dir: &Path, id: SegmentId) {
    let (from, to) = (new_path(dir, id), path(dir, id));
    if let Err(e) = std::fs::rename(&from, &to) {
        tracing::warn!("{}: {e}; the segment will be read at open", from.display());
        remove(&from);
    }
}

/// Removes a hint file, if there is one (not made durable: a hint that
/// comes back is refused by its checks, or describes its segment truly).
pub(super) fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {
            trace::record(|| IoEvent::Unlink {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("removing {}: {e}", path.display()),
    }
}

/// What a trusted hint says of its segment as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hinted {
    pub(super) entries: u64,
    pub(super) record_bytes: u64,
}

/// Reads the hint of segment `id` (salt `salt`, trusted data ending at
/// `sealed_end`) and, if every check passes, hands each entry to `visit`.
/// `None` when there is no usable hint.
///
/// Two passes, a chunk at a time (memory: one chunk, whatever the size of
/// the hint): the crc over the whole file first, then the entries, each
/// checked and handed over. Entries are handed over before the last one is
/// checked; one that fails a check after the crc passed is a writer's bug
/// (a crash cannot make it), and the caller then reads the segment, whose
/// records bring the same places again.
pub(super) fn load(
    dir: &Path,
    id: SegmentId,
    salt: u64,
    sealed_end: u64,
    visit: &mut dyn FnMut(&HintEntry<'_>),
) -> Option<Hinted> {
    let path = path(dir, id);
    let file = File::open(&path).ok()?;
    let checked = check(&file, id, salt, sealed_end).and_then(|(hinted, body)| {
        visit_entries(&file, body, sealed_end, hinted, visit).map(|()| hinted)
    });
    match checked {
        Ok(hinted) => Some(hinted),
        Err(why) => {
            tracing::info!("{}: not used ({why}); reading the segment", path.display());
            None
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Reads exactly `buf.len()` bytes at `offset`.
fn read_exact(file: &File, offset: u64, buf: &mut [u8]) -> Result<(), &'static str> {
    file.read_exact_at(buf, offset)
        .map_err(|_| "unreadable or short")
}

/// The checks on header, trailer and crc; returns what the trailer says
/// and where the entries lie.
fn check(
    file: &File,
    id: SegmentId,
    salt: u64,
    sealed_end: u64,
) -> Result<(Hinted, std::ops::Range<u64>), &'static str> {
    let len = file.metadata().map_err(|_| "unreadable")?.len();
    if len < (HEADER_BYTES + TRAILER_BYTES) as u64 {
        return Err("not a complete hint");
    }
    let mut header = [0u8; HEADER_BYTES];
    read_exact(file, 0, &mut header)?;
    if &header[..8] != MAGIC {
        return Err("not a complete hint");
    }
    if u64_at(&header, 8) != id.0 || u64_at(&header, 16) != salt {
        return Err("written for another segment of this name");
    }
    let t = len - TRAILER_BYTES as u64;
    let mut trailer = [0u8; TRAILER_BYTES];
    read_exact(file, t, &mut trailer)?;
    if &trailer[..8] != END_MAGIC || u32_at(&trailer, 36) != 0 {
        return Err("no trailer");
    }
    if crc_of(file, t + 32)? != u32_at(&trailer, 32) {
        return Err("checksum mismatch");
    }
    if u64_at(&trailer, 16) != sealed_end {
        return Err("describes a different end of the segment's data");
    }
    let hinted = Hinted {
        entries: u64_at(&trailer, 8),
        record_bytes: u64_at(&trailer, 24),
    };
    Ok((hinted, HEADER_BYTES as u64..t))
}

/// crc32c of the first `len` bytes of `file`.
fn crc_of(file: &File, len: u64) -> Result<u32, &'static str> {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let (mut crc, mut at) = (0u32, 0u64);
    while at < len {
        let n = (len - at).min(READ_CHUNK_BYTES as u64) as usize;
        read_exact(file, at, &mut buf[..n])?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Ok(crc)
}

/// Hands every entry in `body` of `file` to `visit`, checking each (its
/// kind, that it lies in the sealed data) and, at the end, that they fill
/// `body` exactly and add up to what the trailer says.
fn visit_entries(
    file: &File,
    body: std::ops::Range<u64>,
    sealed_end: u64,
    hinted: Hinted,
    visit: &mut dyn FnMut(&HintEntry<'_>),
) -> Result<(), &'static str> {
    let bad = "entries that do not match the trailer or the segment";
    let mut reader = std::io::BufReader::with_capacity(READ_CHUNK_BYTES, Region::new(file, body));
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut fixed = [0u8; ENTRY_FIXED_BYTES];
    let mut key = Vec::new();
    loop {
        if !read_or_end(&mut reader, &mut fixed)? {
            break;
        }
        let kind = match fixed[0] {
            1 => Kind::Put,
            2 => Kind::Delete,
            _ => return Err(bad),
        };
        key.resize(usize::from(u16::from_le_bytes([fixed[1], fixed[2]])), 0);
        std::io::Read::read_exact(&mut reader, &mut key).map_err(|_| bad)?;
        let e = HintEntry {
            kind,
            offset: u32_at(&fixed, 3),
            len: u32_at(&fixed, 7),
            version: Version(u64_at(&fixed, 11)),
            key: &key,
        };
        let end = u64::from(e.offset) + u64::from(e.len);
        if u64::from(e.offset) < SEGMENT_HEADER_BYTES as u64 || end > sealed_end {
            return Err(bad);
        }
        entries += 1;
        bytes += u64::from(e.len);
        visit(&e);
    }
    if (entries, bytes) != (hinted.entries, hinted.record_bytes) {
        return Err(bad);
    }
    Ok(())
}

/// Fills `buf` from `r`: `Ok(false)` at a clean end (nothing read), an
/// error at an end inside it.
fn read_or_end(r: &mut impl std::io::Read, buf: &mut [u8]) -> Result<bool, &'static str> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err("an entry cut short"),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err("unreadable"),
        }
    }
    Ok(true)
}

/// A byte range of a file, read with `pread` (no shared file position).
struct Region<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl<'a> Region<'a> {
    fn new(file: &'a File, range: std::ops::Range<u64>) -> Self {
        Self {
            file,
            at: range.start,
            end: range.end,
        }
    }
}

impl std::io::Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.end - self.at).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.at)?;
        self.at += got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    fn written(dir: &Path, end: u64) -> Vec<u8> {
        let mut w = HintWriter::create(dir, SegmentId(3), 77).unwrap();
        for (i, key) in [&b"alpha"[..], b"b", b""].iter().enumerate() {
            let kind = if i == 1 { Kind::Delete } else { Kind::Put };
            let e = HintEntry {
                kind,
                version: Version(10 + i as u64),
                key,
                offset: 64 + 100 * i as u32,
                len: 90,
            };
            assert!(w.note(&e));
        }
        w.finish(end);
        std::fs::read(path(dir, SegmentId(3))).unwrap()
    }

    type Seen = Vec<(Kind, u64, Vec<u8>)>;

    fn loaded(dir: &Path, salt: u64, end: u64) -> Option<(Hinted, Seen)> {
        let mut seen = Vec::new();
        let hinted = load(dir, SegmentId(3), salt, end, &mut |e| {
            seen.push((e.kind, e.version.0, e.key.to_vec()));
        })?;
        Some((hinted, seen))
    }

    #[test]
    fn a_hint_round_trips_and_every_check_refuses_what_it_should() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = written(dir.path(), 400);
        let (hinted, seen) = loaded(dir.path(), 77, 400).unwrap();
        assert_eq!(
            hinted,
            Hinted {
                entries: 3,
                record_bytes: 270
            }
        );
        assert_eq!(seen[1], (Kind::Delete, 11, b"b".to_vec()));
        assert_eq!(seen[2], (Kind::Put, 12, Vec::new()));
        assert!(loaded(dir.path(), 78, 400).is_none(), "another salt");
        assert!(loaded(dir.path(), 77, 500).is_none(), "another seal");
        let p = path(dir.path(), SegmentId(3));
        // Every flipped byte and every cut is refused.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            std::fs::write(&p, &bad).unwrap();
            assert!(loaded(dir.path(), 77, 400).is_none(), "flip at {i}");
            std::fs::write(&p, &bytes[..i]).unwrap();
            assert!(loaded(dir.path(), 77, 400).is_none(), "cut at {i}");
        }
        std::fs::remove_file(&p).unwrap();
        assert!(loaded(dir.path(), 77, 400).is_none(), "none");
    }

    #[test]
    fn entries_past_the_seal_refuse_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        written(dir.path(), 300); // the last record ends at 354
        assert!(loaded(dir.path(), 77, 300).is_none());
    }
}
