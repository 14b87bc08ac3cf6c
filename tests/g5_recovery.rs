//! G5 and G9 at the edges of recovery: what a store directory may hold after
//! a crash or a careless hand, and what opening it must do. Files the store
//! did not write are refused and left untouched; a missing middle segment is
//! an error; opening reads what was written, not the preallocated space; and
//! closes and restarts leave no preallocated space behind.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use std::time::Duration;

use writebehind::inspect;
use writebehind::testing::{FaultPlan, Faulty};
use writebehind::{Config, Error, FileOptions, FileStore, StoreErrorKind, WriteBehind};

/// A cache of `config` over a file store in `dir` with segments of 1 << 20 bytes.
fn open(dir: impl AsRef<std::path::Path>, config: Config) -> Result<WriteBehind, Error> {
    let file = FileOptions::for_cache(&config).segment_bytes_max(1 << 20);
    WriteBehind::open_with(dir, &file, config)
}

fn config() -> Config {
    Config::default().keys_max(1 << 14).dirty_keys_max(1 << 12)
}

/// Names and contents of every file in `dir`.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Writes `n` keys in `syncs` rounds, one segment each (the store rotates
/// at every reopen), and closes.
fn store_with_segments(dir: &Path, rounds: u64) {
    for round in 0..rounds {
        let wb = open(dir, config()).unwrap();
        let mut w = wb.writer().unwrap();
        for i in 0..10u64 {
            w.put(format!("k{i}").as_bytes(), format!("{round}").as_bytes())
                .unwrap();
        }
        drop(w);
        wb.close().unwrap();
    }
}

/// A short file named like a segment is deleted only if it is a segment
/// creation the store was interrupted in (zeros, or a prefix of its own
/// header); anything else is a `Format` error, and the directory is left
/// exactly as it was, without a new LOCK file.
#[test]
fn a_foreign_file_named_like_a_segment_is_refused_and_left_alone() {
    let foreign: [&[u8]; 4] = [
        b"hello",
        b"wbseg\0\0\x01\x01\0\0\0",
        &[0xff; 40],
        &[b'x'; 100],
    ];
    for contents in foreign {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("000001.wb"), contents).unwrap();
        let before = snapshot(dir.path());
        match open(dir.path(), config()) {
            Err(Error::Format { path, reason }) => {
                assert!(path.ends_with("000001.wb"), "{path:?}");
                assert!(reason.contains("not a writebehind segment"), "{reason}");
            }
            other => panic!("{contents:?}: expected a format error, got {other:?}"),
        }
        assert_eq!(
            snapshot(dir.path()),
            before,
            "{contents:?}: the directory changed"
        );
    }
}

/// A store directory whose LOCK file exists already keeps it when refused.
#[test]
fn a_refused_store_keeps_its_own_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path(), 1);
    std::fs::write(dir.path().join("000009.wb"), b"not ours").unwrap();
    let before = snapshot(dir.path());
    assert!(matches!(
        open(dir.path(), config()),
        Err(Error::Format { .. })
    ));
    assert_eq!(snapshot(dir.path()), before);
}

/// A path that is a regular file is refused with its name.
#[test]
fn opening_a_regular_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store");
    std::fs::write(&file, b"x").unwrap();
    let err = open(&file, config()).unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("not a store directory"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// A segment deleted by hand while an older one remains is detected: the
/// next segment's header seals it. Segments missing from the start (what
/// compaction leaves) are fine.
#[test]
fn a_missing_middle_segment_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path(), 4);
    let ids = inspect::list_segments(dir.path()).unwrap();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let middle = ids[2].path(dir.path());
    let saved = std::fs::read(&middle).unwrap();
    std::fs::remove_file(&middle).unwrap();
    match open(dir.path(), config()) {
        Err(Error::Corrupt {
            segment, reason, ..
        }) => {
            assert_eq!(segment, ids[2].0);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected the missing segment to be named, got {other:?}"),
    }
    std::fs::write(&middle, saved).unwrap();
    std::fs::remove_file(ids[0].path(dir.path())).unwrap();
    std::fs::remove_file(ids[1].path(dir.path())).unwrap();
    let wb = open(dir.path(), config()).unwrap();
    assert_eq!(wb.get(b"k3").expect("read").as_deref(), Some(&b"3"[..]));
}

/// Opening reads the data, not the preallocated space: a crash leaves the
/// newest segment preallocated (here 64 GiB, sparse); recovery stops at the
/// end of the data and reads at most one largest frame past it, then trims
/// the segment so that the next open does not even do that.
#[test]
fn recovery_reads_the_data_not_the_preallocated_space() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path(), 1);
    let seg = inspect::list_segments(dir.path()).unwrap()[0].path(dir.path());
    let data = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let report = inspect::scan_dir(dir.path(), &mut |_, _| {}).unwrap();
    let s = &report.segments[0];
    assert_eq!(s.data_end, data);
    // One largest frame past the data, plus the header and chunk overlaps.
    let window = config().batch_bytes_max as u64 + 4096;
    assert!(s.bytes_read <= data + window, "read {} bytes", s.bytes_read);
    let wb = open(dir.path(), config()).unwrap();
    assert_eq!(wb.get(b"k9").expect("read").as_deref(), Some(&b"0"[..]));
    drop(wb);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        data,
        "trimmed at open"
    );
}

/// Restarts do not pile up preallocated segments: `close()` trims the
/// active segment, so ten open-write-close runs of ten keys take a few
/// kilobytes, not ten preallocated segments.
#[test]
fn closing_trims_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path(), 10);
    let (mut apparent, mut blocks) = (0, 0);
    for id in inspect::list_segments(dir.path()).unwrap() {
        let m = std::fs::metadata(id.path(dir.path())).unwrap();
        apparent += m.len();
        blocks += m.blocks() * 512;
    }
    assert!(apparent < 64 << 10, "{apparent} bytes in segments");
    assert!(blocks < 1 << 20, "{blocks} bytes allocated");
}

/// Restarts each leave a short segment behind; once there are
/// `compact_segments_min` of them and compacting would halve their number,
/// the store compacts them even with no dead data.
#[test]
fn short_segments_left_by_restarts_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..10u64 {
        // New keys every run: nothing is dead, only short.
        let wb = open(dir.path(), config()).unwrap();
        let mut w = wb.writer().unwrap();
        w.put(format!("r{round}").as_bytes(), b"v").unwrap();
        drop(w);
        wb.close().unwrap();
    }
    let wb = open(dir.path(), config()).unwrap();
    let mut segments = u64::MAX;
    // Bounded wait for the flusher's periodic check (every 10 ms).
    for _ in 0..500 {
        segments = wb.stats().segments;
        if wb.stats().compactions > 0 && segments <= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(segments <= 3, "{segments} segments after 10 restarts");
    assert_eq!(wb.get(b"r5").expect("read").as_deref(), Some(&b"v"[..]));
    wb.close().unwrap();
    assert!(inspect::list_segments(dir.path()).unwrap().len() <= 3);
}

/// The records of a torn frame never reach the cache, not even those before
/// the damage: the cache would show a version no segment keeps once the
/// tail is cut, and compaction would then skip (and remove) the older copy
/// that a completed `sync()` made durable. (Found by review.)
#[test]
fn a_torn_frame_gives_none_of_its_records_to_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [(&b"k"[..], &b"v1"[..]), (b"k", b"v2")] {
        let wb = open(dir.path(), config()).unwrap();
        let mut w = wb.writer().unwrap();
        w.put(key, value).unwrap();
        if value == b"v2" {
            w.put(b"z", &[b'z'; 600]).unwrap();
        }
        drop(w);
        wb.close().unwrap();
    }
    // The power cut came while the frame [k = v2, z] was being written: its
    // last sector never reached the disk.
    let seg2 = inspect::list_segments(dir.path()).unwrap()[1].path(dir.path());
    let mut bytes = std::fs::read(&seg2).unwrap();
    let len = u32::from_le_bytes(bytes[64 + 8..64 + 12].try_into().unwrap()) as usize;
    let end = 64 + 24 + len;
    bytes[end - 100..end].fill(0);
    std::fs::write(&seg2, &bytes).unwrap();
    {
        let wb = open(dir.path(), config()).unwrap();
        assert_eq!(wb.stats().torn_tails, 1);
        assert_eq!(wb.get(b"k").expect("read").as_deref(), Some(&b"v1"[..]));
        wb.compact().unwrap();
        wb.close().unwrap();
    }
    let wb = open(dir.path(), config()).unwrap();
    assert_eq!(wb.get(b"k").expect("read").as_deref(), Some(&b"v1"[..]));
}

/// A batch retried from memory can be re-encoded larger than
/// `batch_bytes_max` (values grew during the backoff); it goes to a segment
/// whose header allows a frame that long, so recovery reads it and every
/// frame after it. (Found by review: the frame, and all later ones, were cut
/// as a torn tail.)
#[test]
fn a_retry_that_grew_past_batch_bytes_max_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let config = config()
        .value_bytes_max(1000)
        .batch_bytes_max(4096)
        .retry_backoff_min(Duration::from_millis(300))
        .retry_backoff_max(Duration::from_secs(1));
    {
        let plan = FaultPlan::new();
        let store = FileStore::open(
            dir.path(),
            &FileOptions::for_cache(&config).segment_bytes_max(1 << 20),
        )
        .unwrap();
        let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config.clone()).unwrap();
        let mut w = wb.writer().unwrap();
        plan.fail_next(1, StoreErrorKind::Write);
        for i in 0..100u32 {
            w.put(format!("k{i:03}").as_bytes(), b"x").unwrap();
        }
        // The first batch fails; the values grow while it waits to retry.
        for _ in 0..5_000 {
            if wb.stats().store_errors > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(wb.stats().store_errors > 0);
        for i in 0..100u32 {
            w.put(format!("k{i:03}").as_bytes(), &[b'y'; 1000]).unwrap();
        }
        wb.sync().unwrap();
        w.put(b"after", b"durable").unwrap();
        wb.sync().unwrap();
        drop(w);
        wb.close().unwrap();
    }
    let wb = open(dir.path(), config).unwrap();
    assert_eq!(wb.stats().torn_tails, 0);
    assert_eq!(
        wb.get(b"after").expect("read").as_deref(),
        Some(&b"durable"[..])
    );
    for i in 0..100u32 {
        assert_eq!(
            wb.get(format!("k{i:03}").as_bytes())
                .expect("read")
                .as_deref(),
            Some(&[b'y'; 1000][..])
        );
    }
}
