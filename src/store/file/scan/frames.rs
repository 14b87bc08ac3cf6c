//! Walking a segment's frames, and the search past a bad spot for a frame
//! that proves the spot was durable (see the rules in [`scan`](super)).

use super::segment_file::{SegmentFile, CHUNK_BYTES};
use crate::error::Error;
use crate::store::file::format::{FrameHeader, FRAME_HEADER_BYTES};

/// Where a walk over frames stopped.
#[derive(Debug)]
pub(super) enum Stop {
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
/// Its arguments: the body's offset in the file, and the body.
pub(super) type CheckRecords<'a> = dyn FnMut(u64, &[u8]) -> Result<(), (usize, String)> + 'a;

/// Walks whole frames of `f` from `pos` up to `limit`, calling `frame` for
/// each (its start and header) and, if `records` is given, checking every
/// record and handing it over; pauses before a frame that starts at or past
/// `pause_at`. Returns where it stopped and the end of the last whole frame.
pub(super) fn walk(
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
            if let Err((off, why)) = check(body, &buf) {
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
pub(super) fn durable_past(f: &SegmentFile, bad: u64, limit: u64) -> Result<(bool, bool), Error> {
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
