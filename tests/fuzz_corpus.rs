//! Replays the fuzz corpora (tests/corpus/, built by `cargo fuzz` with the
//! targets in fuzz/fuzz_targets/) as a normal test: every input must decode
//! or fail cleanly, never panic. The bodies mirror the fuzz targets.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use writebehind::__internals::format::{FrameHeader, FramePlace, SegmentHeader, SegmentId};
use writebehind::inspect;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn the_decode_corpus_replays_cleanly() {
    let corpus = inputs("decode");
    assert!(corpus.len() >= 10, "the corpus is missing");
    for data in &corpus {
        for r in writebehind::__internals::record::iter(data).flatten() {
            assert!(!r.key.is_empty());
        }
        let _ = FrameHeader::decode(
            data,
            FramePlace {
                salt: 0,
                offset: 64,
            },
        );
        let _ = SegmentHeader::decode(data);
    }
}

#[test]
fn the_recover_corpus_replays_cleanly() {
    let corpus = inputs("recover");
    assert!(corpus.len() >= 10, "the corpus is missing");
    for data in &corpus {
        let dir = tempfile::tempdir().unwrap();
        let mut rest = &data[..];
        for id in 1..=3u64 {
            if rest.len() < 2 {
                break;
            }
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            std::fs::write(SegmentId(id).path(dir.path()), &rest[2..2 + len]).unwrap();
            rest = &rest[2 + len..];
        }
        let _ = inspect::scan_dir(dir.path(), &mut |_, r| assert!(!r.key.is_empty()));
    }
}
