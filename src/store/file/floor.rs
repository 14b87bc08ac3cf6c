//! `DIR/FLOOR`: the version floor, kept once compaction starts dropping the
//! records of deleted keys.
//!
//! A compaction drops a tombstone (with every older record of its key) once
//! the key is no longer in memory. The highest version the store then holds
//! may be below that tombstone's, and a restart would let the key's next
//! version start at or below it (G2 asks for above). So before the reaper
//! removes any segment a compaction replaced, it makes the cache's version
//! floor durable here, and recovery reports it.
//!
//! Format: 20 bytes, `b"WBFLOOR\x01"`, the floor (u64 LE), crc32c of the
//! first 16 bytes (u32 LE). Written to `FLOOR.tmp`, fdatasync'ed, renamed
//! over `FLOOR`, and the directory fsync'ed: a crash leaves the old floor
//! or the new one, never a torn file.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::Error;
use crate::version::Version;

const MAGIC: &[u8; 8] = b"WBFLOOR\x01";
const NAME: &str = "FLOOR";
const TMP: &str = "FLOOR.tmp";

/// The floor kept in `dir`, or 0 if none was written yet.
pub(super) fn read(dir: &Path) -> Result<Version, Error> {
    let path = dir.join(NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Version(0)),
        Err(e) => return Err(Error::Io(e)),
    };
    decode(&bytes).ok_or_else(|| Error::Format {
        path,
        reason: "not a version floor this store wrote (20 bytes with a checksum): \
                 restore it from a backup (removing it is safe only if no key was \
                 ever deleted)"
            .into(),
    })
}

fn decode(bytes: &[u8]) -> Option<Version> {
    let bytes: &[u8; 20] = bytes.try_into().ok()?;
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    (&bytes[..8] == MAGIC && crc32c::crc32c(&bytes[..16]) == crc).then(|| {
        Version(u64::from_le_bytes(
            bytes[8..16].try_into().unwrap_or_default(),
        ))
    })
}

fn encode(floor: Version) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&floor.0.to_le_bytes());
    let crc = crc32c::crc32c(&out[..16]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Makes `floor` the kept floor, durably.
pub(super) fn write(dir: &Path, floor: Version) -> std::io::Result<()> {
    let tmp = dir.join(TMP);
    let mut file = File::create(&tmp)?;
    file.write_all(&encode(floor))?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(NAME))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    #[test]
    fn a_floor_round_trips_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Version(0), "none yet");
        write(dir.path(), Version(41)).unwrap();
        write(dir.path(), Version(42)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Version(42));
        assert!(!dir.path().join(TMP).exists());
        let mut bytes = std::fs::read(dir.path().join(NAME)).unwrap();
        bytes[9] ^= 1;
        std::fs::write(dir.path().join(NAME), &bytes).unwrap();
        assert!(
            matches!(read(dir.path()), Err(Error::Format { path, .. }) if path.ends_with("FLOOR"))
        );
    }
}
