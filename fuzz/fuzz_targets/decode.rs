//! Arbitrary bytes through every decoder: records, frame headers, segment
//! headers. Decoding may fail; it must not panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writebehind::__internals::format::{FrameHeader, FramePlace, SegmentHeader};

fuzz_target!(|data: &[u8]| {
    for r in writebehind::__internals::record::iter(data) {
        if let Ok(r) = r {
            assert!(!r.key.is_empty());
        }
    }
    let _ = FrameHeader::decode(data, FramePlace { salt: 0, offset: 64 });
    let _ = SegmentHeader::decode(data);
});
