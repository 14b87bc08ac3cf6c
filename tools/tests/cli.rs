//! `wb inspect`, `wb verify` and `wb compact` on stores written by the
//! library, and on a corrupted copy.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;

use writebehind::{Config, WriteBehind};

fn wb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wb"))
        .args(args)
        .output()
        .unwrap()
}

fn write_store(dir: &Path) {
    let config = Config {
        segment_bytes_max: 1 << 16,
        compact_segments_min: 1_000,
        ..Config::default()
    };
    let cache = WriteBehind::open(dir, config).unwrap();
    let mut w = cache.writer().unwrap();
    for round in 0..3u64 {
        for i in 0..3_000u64 {
            w.put(
                format!("key-{i}").as_bytes(),
                format!("value-{i}-{round}").as_bytes(),
            )
            .unwrap();
        }
        cache.sync().unwrap();
    }
    for i in 0..100u64 {
        w.delete(format!("key-{i}").as_bytes()).unwrap();
    }
    drop(w);
    cache.close().unwrap();
}

#[test]
fn verify_passes_a_good_store_and_names_the_offset_of_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let out = wb(&["verify", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Flip one bit inside the first record of the first segment.
    let first = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wb"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    let at = 64 + 16 + 30; // segment header, frame header, into the first record
    bytes[at] ^= 0x20;
    std::fs::write(&first, &bytes).unwrap();
    let out = wb(&["verify", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["segment"], 1);
    assert_eq!(v["offset"], 64 + 16, "the offset of the damaged record");
}

#[test]
fn inspect_and_compact_report_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let out = wb(&["inspect", "--json", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["live_keys"], 2_900);
    assert_eq!(v["deleted_keys"], 100);
    assert_eq!(v["records"], 9_100);
    assert!(v["dead_bytes"].as_u64().unwrap() > 0);
    assert!(v["segments"].as_array().unwrap().len() > 1);

    let out = wb(&["compact", "--json", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(c["segments_after"].as_u64().unwrap() < c["segments_before"].as_u64().unwrap());

    let out = wb(&["inspect", "--json", dir.path().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["live_keys"], 2_900);
    assert_eq!(v["deleted_keys"], 100, "tombstones survive compaction");
    assert_eq!(v["records"], 3_000);
    let out = wb(&["verify", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
}
