//! Recovery over arbitrary directory contents: the input is split into up
//! to three segment files (a 2-byte length before each); scanning them may
//! report corruption or a format error, but must not panic, and a scan that
//! succeeds yields only records that decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writebehind::__internals::format::SegmentId;
use writebehind::inspect;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let mut rest = data;
    for id in 1..=3u64 {
        if rest.len() < 2 {
            break;
        }
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let _ = std::fs::write(SegmentId(id).path(dir.path()), &rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    let _ = inspect::scan_dir(dir.path(), &mut |_, r| assert!(!r.key.is_empty()));
});
