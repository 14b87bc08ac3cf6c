//! `wb inspect`, `wb verify` and `wb compact` on stores written by the
//! library, and on a corrupted copy.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;

use writebehind::__internals::format::FRAME_HEADER_BYTES;
use writebehind::{Config, Error, FileOptions, WriteBehind};

/// A cache of `config` over a file store in `dir` with segments of
/// `segment_bytes`.
fn open(dir: &Path, config: Config, segment_bytes: u64) -> Result<WriteBehind, Error> {
    let file = FileOptions::for_cache(&config).segment_bytes_max(segment_bytes);
    WriteBehind::open_with(dir, &file, config)
}

fn wb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wb"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `wb args...`, which must succeed, and parses what it printed as one
/// JSON object.
fn wb_json(args: &[&str]) -> serde_json::Value {
    let out = wb(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write_store(dir: &Path) {
    let config = Config::default().compact_segments_min(1_000);
    let cache = open(dir, config, 1 << 16).unwrap();
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
    let at = 64 + FRAME_HEADER_BYTES + 30; // segment header, frame header, into the first record
    bytes[at] ^= 0x20;
    std::fs::write(&first, &bytes).unwrap();
    let out = wb(&["verify", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], "corrupt");
    assert_eq!(v["segment"], 1);
    assert_eq!(
        v["offset"],
        64 + FRAME_HEADER_BYTES,
        "the offset of the damaged record"
    );
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
    // A full compaction leaves no older record of a deleted key, so its
    // tombstone goes too (G12).
    assert_eq!(v["deleted_keys"], 0, "tombstones are dropped by compaction");
    assert_eq!(v["records"], 2_900);
    let out = wb(&["verify", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
}

/// A short `wb bench`: 0.3 s of load over 20,000 keys.
const QUICK_BENCH: [&str; 6] = ["bench", "--quick", "--seconds", "0.3", "--keys", "20000"];

/// `wb bench --quick --json` prints one JSON object with the fields the
/// issue names, and verifies every acknowledged write after reopening.
#[test]
fn bench_json_has_the_promised_fields_and_verifies() {
    let v = wb_json(&[&QUICK_BENCH[..], &["--json"]].concat());
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
    let v = wb_json(&[
        "bench",
        "--scenario",
        "game",
        "--quick",
        "--seconds",
        "0.5",
        "--no-baselines",
        "--json",
    ]);
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

/// Runs `wb args...` and returns (exit code, stdout + stderr).
fn wb_text(args: &[&str]) -> (Option<i32>, String) {
    let out = wb(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A missing path, a regular file and a directory without a store are
/// refused by every command with exit 2 and a message naming the path, and
/// nothing is created.
#[test]
fn commands_refuse_a_path_that_is_not_a_store_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("typo");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a store").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"hello").unwrap();
    for command in ["compact", "inspect", "verify"] {
        for (path, says) in [
            (&missing, "no such directory"),
            (&file, "is a file, not a directory"),
            (&empty, "not a store"),
        ] {
            let (code, text) = wb_text(&[command, path.to_str().unwrap()]);
            assert_eq!(code, Some(2), "wb {command} {}: {text}", path.display());
            assert!(text.contains(path.to_str().unwrap()), "{text}");
            assert!(text.contains(says), "wb {command}: {text}");
            assert!(!text.contains("CORRUPT"), "{text}");
        }
        assert!(
            !missing.exists(),
            "wb {command} created {}",
            missing.display()
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"not a store");
        assert_eq!(listing(&empty), ["notes.txt"], "wb {command}");
    }
}

/// A segment written by a newer format version is "cannot check" (exit 2),
/// not corruption, and the message names the file and both versions.
#[test]
fn verify_says_a_newer_format_cannot_be_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = [0u8; 64];
    header[0..8].copy_from_slice(b"wbseg\0\0\x01");
    header[8..12].copy_from_slice(&99u32.to_le_bytes());
    let crc = crc32c::crc32c(&header[..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    let segment = dir.path().join("000001.wb");
    std::fs::write(&segment, header).unwrap();

    let (code, text) = wb_text(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("newer format (version 99)"), "{text}");
    assert!(text.contains(segment.to_str().unwrap()), "{text}");
    assert!(!text.contains("CORRUPT"), "{text}");

    let out = wb(&["verify", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "cannot_check");
    assert!(v["error"].as_str().unwrap().contains("000001.wb"), "{v}");
}

/// A segment the user may not read is "cannot check" (exit 2), naming the
/// file. Root reads any file whatever its mode, so as root the check runs as
/// the user `nobody` (uid 65534), for whom the mode does apply.
#[test]
fn verify_says_an_unreadable_segment_cannot_be_checked() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let segment = dir.path().join("000001.wb");
    assert!(segment.exists());
    std::fs::set_permissions(&segment, std::fs::Permissions::from_mode(0o000)).unwrap();
    // nobody must reach the directory and the binary (the temp dir is 0700).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wb"));
    command.args(["verify", "--json", dir.path().to_str().unwrap()]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        command.uid(65534).gid(65534);
    }
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(0) && text.contains("\"status\": \"ok\"") {
        panic!("a segment nobody may read was verified: {text}");
    }
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "cannot_check");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains(segment.to_str().unwrap()), "{error}");
    assert!(error.contains("permission denied"), "{error}");
}

/// `wb verify` while another handle writes and compacts the same directory
/// (segments listed, then deleted before they are read) never reports
/// corruption: it retries, or says the store changed (exit 2).
#[test]
fn verify_racing_compaction_never_says_corrupt() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const RUNS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().compact_segments_min(1_000);
    let cache = open(dir.path(), config, 1 << 18).unwrap();
    let mut w = cache.writer().unwrap();
    let mut put_all = |keys: u64, round: u64| {
        for i in 0..keys {
            let value = format!("value-{i}-{round}-{:0>160}", 0);
            w.put(format!("key-{i}").as_bytes(), value.as_bytes())
                .unwrap();
        }
        cache.sync().unwrap();
    };
    put_all(20_000, 0); // about 4 MB: a scan takes a while
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let churn = s.spawn(|| {
            // A few keys between compactions: most of the time goes to
            // rewriting and deleting segments.
            let mut round = 1u64;
            while !stop.load(Ordering::Relaxed) {
                put_all(100, round);
                cache.compact().unwrap();
                round += 1;
            }
            round
        });
        let path = dir.path().to_str().unwrap();
        let mut failures = Vec::new();
        for _ in 0..RUNS {
            let (code, text) = wb_text(&["verify", path]);
            if code == Some(1) || text.contains("CORRUPT") {
                failures.push(text);
            } else {
                assert!(matches!(code, Some(0 | 2)), "{code:?}: {text}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        let rounds = churn.join().unwrap();
        assert!(rounds > 1, "the compactions did not run");
        assert!(
            failures.is_empty(),
            "{} of {RUNS} runs: {failures:?}",
            failures.len()
        );
    });
    drop(w);
    cache.close().unwrap();
}

/// `wb inspect DIR | head -1`: the reader goes away after one line; the
/// command stops quietly instead of panicking on the broken pipe.
#[test]
fn inspect_exits_quietly_when_stdout_is_closed() {
    use std::io::BufRead;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let dir = tempfile::tempdir().unwrap();
    // About one segment per sync: 60 segments, a listing of over 6 KB.
    let config = Config::default().compact_segments_min(100_000);
    let cache = open(dir.path(), config, 4096).unwrap();
    let mut w = cache.writer().unwrap();
    for i in 0..1_200u64 {
        w.put(format!("key-{i}").as_bytes(), &[7u8; 200]).unwrap();
        if i % 20 == 19 {
            cache.sync().unwrap();
        }
    }
    drop(w);
    cache.close().unwrap();

    // A pipe of one page (4 KiB), smaller than the listing, so the command
    // is still writing when the reader leaves.
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two open descriptors that nothing else owns.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own; a failure only leaves 64 KiB.
    let size = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert_eq!(size, 4096);
    // The Command (and with it our copy of the write end) is dropped here.
    let child = Command::new(env!("CARGO_BIN_EXE_wb"))
        .args(["inspect", dir.path().to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(std::fs::File::from(reader));
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("60 segments"), "{first}");
    drop(reader);
    assert_quiet_exit(child);
}

/// Waits for `child`, whose stdout was closed by its reader: it must end
/// with status 0 and not have panicked.
fn assert_quiet_exit(child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// `wb bench --quick | head`: the reader has gone by the time the table is
/// printed; the command ends with status 0 instead of panicking on the
/// broken pipe.
#[test]
fn bench_exits_quietly_when_stdout_is_closed() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wb"))
        .args(QUICK_BENCH)
        .arg("--no-baselines")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader closes at once, long before the run prints anything.
    drop(child.stdout.take());
    assert_quiet_exit(child);
}

/// The exit codes of `wb verify` are in its help and in `wb --help`.
#[test]
fn help_documents_the_exit_codes_of_verify() {
    for args in [&["verify", "--help"][..], &["--help"][..]] {
        let (code, text) = wb_text(args);
        assert_eq!(code, Some(0), "{text}");
        for needle in ["0 ok", "1 corrupt", "2 cannot check"] {
            assert!(
                text.contains(needle),
                "wb {args:?}: no {needle:?} in {text}"
            );
        }
    }
}
