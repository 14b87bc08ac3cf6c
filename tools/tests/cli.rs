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

/// `wb bench --quick --json` prints one JSON object with the fields the
/// issue names, and verifies every acknowledged write after reopening.
#[test]
fn bench_json_has_the_promised_fields_and_verifies() {
    let out = wb(&[
        "bench",
        "--quick",
        "--seconds",
        "0.3",
        "--keys",
        "20000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "put_ops_per_s",
        "persisted_records_per_s",
        "persisted_bytes_per_s",
        "disk_seq_bytes_per_s",
        "coalescing_ratio",
        "writers",
        "backend",
    ] {
        assert!(!v[field].is_null(), "missing {field}");
    }
    for p in ["p50", "p99", "p999", "p9999", "max"] {
        assert!(
            v["put_latency_ns"][p].as_u64().is_some(),
            "missing put_latency_ns.{p}"
        );
    }
    assert!(
        v["baselines"]["write_through"]["ops_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        v["baselines"]["mutex_channel"]["ops_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(v["ratios"]["vs_write_through"].as_f64().is_some());
    assert!(v["ratios"]["vs_mutex_channel"].as_f64().is_some());
    assert_eq!(v["verified"], true);
}

/// The game scenario runs open-loop on the throttled file store and verifies.
#[test]
fn game_scenario_runs_and_verifies() {
    let out = wb(&[
        "bench",
        "--scenario",
        "game",
        "--quick",
        "--seconds",
        "0.5",
        "--no-baselines",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "open-loop");
    assert_eq!(v["verified"], true);
    assert!(v["dirty_keys_max_seen"].as_u64().unwrap() <= 10_000);
}

/// A PostgreSQL store in a build without the feature, or a table name that
/// could not be used safely, is a clear error before anything runs.
#[test]
fn bench_refuses_postgres_clearly_when_it_cannot_run_it() {
    let out = wb(&[
        "bench",
        "--quick",
        "--no-baselines",
        "--store",
        "postgresql://nobody@localhost/none?host=/nonexistent-wb",
        "--pg-table",
        "Bad-Name",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "postgres") {
        assert!(err.contains("postgres.table"), "{err}");
    } else {
        assert!(err.contains("--features postgres"), "{err}");
    }
    let out = wb(&["bench", "--store", "postgres:/typo"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("postgres://..."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
