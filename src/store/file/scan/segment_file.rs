//! A segment file opened for the scan: its header read (or found to be
//! one a crash interrupted), and every read counted.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::Error;
use crate::store::file::format::{
    is_interrupted_header, HeaderError, SegmentHeader, SegmentId, SEGMENT_HEADER_BYTES,
};

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
pub(super) const CHUNK_BYTES: usize = 1 << 20;

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

/// A segment file opened for the scan.
pub(super) struct SegmentFile {
    pub(super) id: SegmentId,
    pub(super) file: File,
    pub(super) len: u64,
    /// `None`: the newest file, whose creation a crash interrupted.
    pub(super) header: Option<SegmentHeader>,
    /// Bytes read so far.
    pub(super) bytes_read: std::cell::Cell<u64>,
}

impl SegmentFile {
    /// [`read_at`], counted.
    pub(super) fn read(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
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
pub(super) fn open_segment(dir: &Path, id: SegmentId, newest: bool) -> Result<SegmentFile, Error> {
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
