//! The record format: how one update is encoded in a batch, and (from the file
//! store on) on disk.
//!
//! ```text
//! offset  size  field
//!      0     4  crc32c (Castagnoli) of bytes 4 .. end of record, little-endian
//!      4     1  kind: 1 = put, 2 = delete
//!      5     1  reserved, 0
//!      6     2  key length k, u16 LE, >= 1
//!      8     4  value length v, u32 LE (0 for a delete)
//!     12     8  version, u64 LE, >= 1
//!     20     k  key bytes
//!   20+k     v  value bytes
//! ```
//!
//! A batch is records back to back. The checksum covers everything after it,
//! so a torn or flipped byte anywhere in a record (lengths included) fails the
//! check; a length that points past the buffer is reported as truncation.

use crate::version::{Kind, Version};

/// Bytes before the key.
pub const HEADER_BYTES: usize = 20;
/// Longest key the format can hold.
pub const KEY_BYTES_LIMIT: usize = u16::MAX as usize;
/// Longest value the format accepts (256 MiB; the field could hold more).
pub const VALUE_BYTES_LIMIT: usize = 1 << 28;

/// A decoded record borrowing from its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Put or delete.
    pub kind: Kind,
    /// The update's version.
    pub version: Version,
    /// The key.
    pub key: &'a [u8],
    /// The value (empty for a delete).
    pub value: &'a [u8],
}

/// Why bytes did not decode as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends inside the record (header or body).
    #[error("truncated record: need {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the record claims to need.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The checksum does not match the contents.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// crc in the record.
        stored: u32,
        /// crc of the bytes.
        computed: u32,
    },
    /// A header field is out of range (kind, reserved byte, lengths, version).
    #[error("malformed header: {0}")]
    Header(&'static str),
}

/// Encoded size of a record with this key and value length.
pub const fn encoded_len(key_len: usize, value_len: usize) -> usize {
    HEADER_BYTES + key_len + value_len
}

/// Appends one record to `out`, its value written by `write_value`, which
/// appends the value and returns the record's kind and version. The header
/// is completed after the value is in place, so the flusher copies a value
/// once, straight out of the index (whose reader learns the version only
/// with the value).
///
/// # Panics
/// If the key is empty or too long, the value too long, the version 0, or a
/// delete with a value: callers validate first, so any of these is a bug.
pub fn encode_with(
    out: &mut Vec<u8>,
    key: &[u8],
    write_value: impl FnOnce(&mut Vec<u8>) -> (Kind, Version),
) {
    assert!(
        !key.is_empty() && key.len() <= KEY_BYTES_LIMIT,
        "bad key length {}",
        key.len()
    );
    let start = out.len();
    out.resize(start + HEADER_BYTES, 0);
    out.extend_from_slice(key);
    let value_start = out.len();
    let (kind, version) = write_value(out);
    let value_len = out.len() - value_start;
    assert!(
        value_len <= VALUE_BYTES_LIMIT,
        "bad value length {value_len}"
    );
    assert!(version.0 >= 1, "version 0 is never written");
    assert!(kind == Kind::Put || value_len == 0, "a delete has no value");
    let header = &mut out[start..start + HEADER_BYTES];
    header[4] = kind as u8;
    header[6..8].copy_from_slice(&(key.len() as u16).to_le_bytes());
    header[8..12].copy_from_slice(&(value_len as u32).to_le_bytes());
    header[12..20].copy_from_slice(&version.0.to_le_bytes());
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one record with a value slice to `out` (tests, and the tools'
/// baselines through `__internals`).
#[cfg_attr(not(feature = "__internals"), allow(dead_code))]
pub fn encode(out: &mut Vec<u8>, kind: Kind, version: Version, key: &[u8], value: &[u8]) {
    encode_with(out, key, |o| {
        o.extend_from_slice(value);
        (kind, version)
    });
}

/// Decodes the record at the start of `buf`; returns it and its encoded length.
pub fn decode(buf: &[u8]) -> Result<(RecordRef<'_>, usize), DecodeError> {
    if buf.len() < HEADER_BYTES {
        return Err(DecodeError::Truncated {
            needed: HEADER_BYTES,
            available: buf.len(),
        });
    }
    let u16_at = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let stored = u32_at(0);
    let key_len = usize::from(u16_at(6));
    let value_len = u32_at(8) as usize;
    // Lengths are checked against the buffer before the crc so a garbage
    // length cannot make us read out of bounds; the crc then vouches for them.
    let len = encoded_len(key_len, value_len.min(VALUE_BYTES_LIMIT + 1));
    if value_len > VALUE_BYTES_LIMIT {
        // Check the crc over what we have, so a flipped length bit in an
        // otherwise whole record is reported as a checksum error when possible.
        return Err(DecodeError::Header("value length over the limit"));
    }
    if buf.len() < len {
        return Err(DecodeError::Truncated {
            needed: len,
            available: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[4..len]);
    if computed != stored {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let kind = match buf[4] {
        1 => Kind::Put,
        2 => Kind::Delete,
        _ => return Err(DecodeError::Header("unknown kind")),
    };
    if buf[5] != 0 {
        return Err(DecodeError::Header("reserved byte is not zero"));
    }
    if key_len == 0 {
        return Err(DecodeError::Header("empty key"));
    }
    if kind == Kind::Delete && value_len != 0 {
        return Err(DecodeError::Header("delete with a value"));
    }
    let version = Version(u64::from_le_bytes(
        buf[12..20]
            .try_into()
            .map_err(|_| DecodeError::Header("version"))?,
    ));
    if version.0 == 0 {
        return Err(DecodeError::Header("version 0"));
    }
    let key = &buf[HEADER_BYTES..HEADER_BYTES + key_len];
    let value = &buf[HEADER_BYTES + key_len..len];
    Ok((
        RecordRef {
            kind,
            version,
            key,
            value,
        },
        len,
    ))
}

/// Iterates over the records of a buffer of back-to-back records, stopping at
/// the first that does not decode (yielded as `Err` with its offset).
pub fn iter(buf: &[u8]) -> impl Iterator<Item = Result<RecordRef<'_>, (usize, DecodeError)>> {
    let mut offset = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || offset >= buf.len() {
            return None;
        }
        match decode(&buf[offset..]) {
            Ok((record, len)) => {
                offset += len;
                Some(Ok(record))
            }
            Err(e) => {
                failed = true;
                Some(Err((offset, e)))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(&mut buf, Kind::Put, Version(7), b"key", b"value");
        encode(&mut buf, Kind::Delete, Version(9), b"k2", b"");
        let records: Vec<_> = iter(&buf).collect::<Result<_, _>>().expect("decodes");
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            RecordRef {
                kind: Kind::Put,
                version: Version(7),
                key: b"key",
                value: b"value"
            }
        );
        assert_eq!(
            records[1],
            RecordRef {
                kind: Kind::Delete,
                version: Version(9),
                key: b"k2",
                value: b""
            }
        );
    }

    #[test]
    fn every_truncation_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, Kind::Put, Version(1), b"abc", &[5u8; 40]);
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Err(DecodeError::Truncated { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, Kind::Put, Version(3), b"abc", b"0123456789");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut copy = buf.clone();
                copy[byte] ^= 1 << bit;
                assert!(
                    decode(&copy).is_err(),
                    "flip at byte {byte} bit {bit} went unnoticed"
                );
            }
        }
    }
}
