//! The embedded file store, on both I/O backends: durability across reopen,
//! torn tails, corruption, the directory lock, fdatasync failure (G5, G8, G9).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;
use common::crc32c_of;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use writebehind::__internals::format::{
    FrameHeader, SegmentHeader, SegmentId, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use writebehind::inspect;
use writebehind::{
    Config, Durability, Error, FileOptions, FileStore, IoBackend, Version, WriteBehind,
};

const BACKENDS: [(IoBackend, &str); 2] = [
    (IoBackend::IoUring, "io_uring"),
    (IoBackend::Pwrite, "pwrite"),
];

fn config() -> Config {
    Config::default()
        .writers_max(4)
        .keys_max(1 << 21)
        .dirty_keys_max(1 << 16)
        .batch_ops_max(4096)
        .batch_bytes_max(1 << 20)
        .value_bytes_max(4096)
}

/// The file store's options for a cache of `config`, on `backend`, with
/// segments of `segment_bytes`.
fn file(config: &Config, backend: IoBackend, segment_bytes: u64) -> FileOptions {
    FileOptions::for_cache(config)
        .io_backend(backend)
        .segment_bytes_max(segment_bytes)
}

/// A cache of `config` over a file store in `dir` on `backend`, with 16 MiB
/// segments.
fn open(dir: &Path, config: Config, backend: IoBackend) -> Result<WriteBehind, Error> {
    open_segments(dir, config, backend, 16 << 20)
}

/// [`open`] with segments of `segment_bytes`.
fn open_segments(
    dir: &Path,
    config: Config,
    backend: IoBackend,
    segment_bytes: u64,
) -> Result<WriteBehind, Error> {
    WriteBehind::open_with(dir, &file(&config, backend, segment_bytes), config)
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:010}").into_bytes()
}

fn value(i: u64, round: u64) -> Vec<u8> {
    format!("value-{i}-{round}").into_bytes()
}

/// Frame boundaries (start, end) of a segment file's data.
fn frames(path: &Path) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut out = Vec::new();
    while pos + FRAME_HEADER_BYTES <= bytes.len() {
        let Some(f) = FrameHeader::decode(&bytes[pos..], header.frame_at(pos as u64)) else {
            break;
        };
        let end = pos + FRAME_HEADER_BYTES + f.len as usize;
        out.push((pos as u64, end as u64));
        pos = end;
    }
    out
}

fn newest_segment(dir: &Path) -> PathBuf {
    inspect::list_segments(dir)
        .unwrap()
        .last()
        .unwrap()
        .path(dir)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_million_keys_survive_close_and_reopen_and_versions_continue() {
    for (backend, name) in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        const N: u64 = 1_000_000;
        {
            let wb = open(dir.path(), config(), backend).unwrap();
            assert_eq!(wb.stats().backend, name);
            let mut w = wb.writer().unwrap();
            for i in 0..N {
                w.put(&key(i), &value(i, 0)).unwrap();
            }
            drop(w);
            wb.close().unwrap();
        }
        assert!(
            inspect::list_segments(dir.path()).unwrap().len() > 1,
            "{name}: 16 MiB segments must rotate"
        );
        let wb = open(dir.path(), config(), backend).unwrap();
        assert_eq!(wb.stats().keys, 0, "{name}: opening loads no value");
        for i in 0..N {
            let v = wb
                .get(&key(i))
                .expect("read")
                .unwrap_or_else(|| panic!("{name}: key {i} lost"));
            assert_eq!(&v[..], &value(i, 0)[..]);
            assert_eq!(v.version(), Version(1));
        }
        let mut w = wb.writer().unwrap();
        assert_eq!(
            w.put(&key(5), b"again").unwrap(),
            Version(2),
            "{name}: versions continue"
        );
        assert_eq!(w.add(b"counter", 3).unwrap(), 3);
        drop(w);
        wb.close().unwrap();
        let wb = open(dir.path(), config(), backend).unwrap();
        assert_eq!(
            wb.get(&key(5)).expect("read").unwrap().version(),
            Version(2)
        );
        assert_eq!(
            wb.get(b"counter").expect("read").unwrap().as_counter(),
            Some(3)
        );
    }
}

/// Writes `n` unique keys in small batches and closes; returns the dir.
fn small_batches_store(backend: IoBackend, n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = config().batch_ops_max(50);
    let wb = open(dir.path(), config, backend).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..n {
        w.put(&key(i), &value(i, 0)).unwrap();
        if i % 50 == 49 {
            wb.sync().unwrap(); // one frame per 50 keys
        }
    }
    drop(w);
    wb.close().unwrap();
    dir
}

/// Keys present in the frames wholly before `cut`.
fn keys_before(path: &Path, cut: u64) -> HashMap<Vec<u8>, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = HashMap::new();
    for (start, end) in frames(path) {
        if end > cut {
            break;
        }
        let body = &bytes[start as usize + FRAME_HEADER_BYTES..end as usize];
        for r in writebehind::__internals::record::iter(body) {
            let r = r.unwrap();
            out.insert(r.key.to_vec(), r.value.to_vec());
        }
    }
    out
}

#[test]
fn a_torn_tail_is_cut_at_every_offset_and_the_prefix_survives() {
    for (backend, name) in BACKENDS {
        let src = small_batches_store(backend, 1_000);
        let seg = newest_segment(src.path());
        let fr = frames(&seg);
        assert!(
            fr.len() >= 10,
            "{name}: expected many frames, got {}",
            fr.len()
        );
        let (tail_start, tail_end) = (fr[fr.len() - 3].0, fr[fr.len() - 1].1);
        let all = keys_before(&seg, tail_end);
        let mut cuts: Vec<u64> = (tail_start..tail_end).step_by(97).collect();
        cuts.extend(
            fr[fr.len() - 3..]
                .iter()
                .flat_map(|&(s, e)| [s + 1, s + 16, s + 17, e - 1]),
        );
        for cut in cuts {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(src.path(), copy.path());
            let path = newest_segment(copy.path());
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let wb = open(copy.path(), config(), backend)
                .unwrap_or_else(|e| panic!("{name}: cut at {cut}: {e}"));
            let expected = keys_before(&seg, cut);
            let at_boundary =
                fr.iter().any(|&(_, e)| e == cut) || fr.iter().any(|&(s, _)| s == cut);
            assert_eq!(
                wb.stats().torn_tails,
                u64::from(!at_boundary),
                "{name}: cut at {cut}"
            );
            for (k, v) in &all {
                match expected.get(k) {
                    Some(v2) => {
                        assert_eq!(
                            wb.get(k).expect("read").as_deref(),
                            Some(&v2[..]),
                            "{name}: cut {cut}"
                        )
                    }
                    None => assert!(
                        wb.get(k).expect("read").is_none(),
                        "{name}: cut {cut}: {k:?} from a torn frame"
                    ),
                }
                let _ = v;
            }
            // Writing after the cut seals the torn segment: the next open
            // sees no torn tail and the same data plus the new key.
            let mut w = wb.writer().unwrap();
            w.put(b"after", b"cut").unwrap();
            drop(w);
            wb.close().unwrap();
            let wb = open(copy.path(), config(), backend).unwrap();
            assert_eq!(
                wb.stats().torn_tails,
                0,
                "{name}: cut {cut}: sealed after reopen"
            );
            assert_eq!(
                wb.get(b"after").expect("read").as_deref(),
                Some(&b"cut"[..])
            );
            for (k, v) in &expected {
                assert_eq!(
                    wb.get(k).expect("read").as_deref(),
                    Some(&v[..]),
                    "{name}: cut {cut}"
                );
            }
        }
    }
}

#[test]
fn a_flipped_bit_in_an_older_record_is_an_error_naming_segment_and_offset() {
    for (backend, name) in BACKENDS {
        let src = small_batches_store(backend, 1_000);
        let seg_path = newest_segment(src.path());
        let seg_id = SegmentId::parse(seg_path.file_name().unwrap().to_str().unwrap()).unwrap();
        let (start, _) = frames(&seg_path)[2];
        let record_at = start + FRAME_HEADER_BYTES as u64;
        let mut bytes = std::fs::read(&seg_path).unwrap();
        bytes[record_at as usize + 25] ^= 0x10; // inside the first record's key
        std::fs::write(&seg_path, &bytes).unwrap();
        match open(src.path(), config(), backend) {
            Err(Error::Corrupt {
                segment, offset, ..
            }) => {
                assert_eq!((segment, offset), (seg_id.0, record_at), "{name}");
            }
            other => panic!("{name}: expected a corruption error, got {other:?}"),
        }
        // The report also comes from the scan alone (what `wb verify` uses).
        assert!(matches!(
            inspect::scan_dir(src.path(), &mut |_, _| {}),
            Err(Error::Corrupt { .. })
        ));
    }
}

#[test]
fn a_locked_directory_refuses_a_second_open() {
    let dir = tempfile::tempdir().unwrap();
    let wb = open(dir.path(), config(), IoBackend::Auto).unwrap();
    assert!(matches!(
        open(dir.path(), config(), IoBackend::Auto),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        FileStore::open(dir.path(), &file(&config(), IoBackend::Auto, 16 << 20)),
        Err(Error::Locked { .. })
    ));
    // Another process sees the lock too (flock(1) from util-linux, if present).
    let lock = dir.path().join("LOCK");
    let other = std::process::Command::new("flock")
        .arg("-n")
        .arg(&lock)
        .arg("true")
        .status();
    if let Ok(status) = other {
        assert!(!status.success(), "another process took the lock");
    }
    wb.close().unwrap();
    let wb = open(dir.path(), config(), IoBackend::Auto).unwrap();
    wb.close().unwrap();
}

#[test]
fn a_failed_fdatasync_seals_the_segment_and_nothing_acknowledged_is_lost() {
    for (backend, name) in BACKENDS {
        // No automatic compaction: the sealed segments must stay visible.
        let config = || config().compact_segments_min(1_000);
        let dir = tempfile::tempdir().unwrap();
        let mut acked: HashMap<Vec<u8>, (Version, Vec<u8>)> = HashMap::new();
        {
            let store = FileStore::open(dir.path(), &file(&config(), backend, 16 << 20)).unwrap();
            let syncs = store.sync_faults();
            let wb = WriteBehind::with_store(store, config()).unwrap();
            let mut w = wb.writer().unwrap();
            for round in 0..4u64 {
                if round == 1 {
                    syncs.fail_next(3);
                }
                for i in 0..5_000u64 {
                    let v = value(i, round);
                    let version = w.put(&key(i), &v).unwrap();
                    acked.insert(key(i), (version, v));
                }
                wb.sync().unwrap();
            }
            let stats = wb.stats();
            assert_eq!(syncs.injected(), 3, "{name}");
            assert!(stats.store_errors >= 1, "{name}: {stats:?}");
            drop(w);
            wb.close().unwrap();
        }
        assert!(
            inspect::list_segments(dir.path()).unwrap().len() >= 2,
            "{name}: the failed segment was sealed"
        );
        let wb = open(dir.path(), config(), backend).unwrap();
        for (k, (version, v)) in &acked {
            let got = wb
                .get(k)
                .expect("read")
                .unwrap_or_else(|| panic!("{name}: {k:?} lost"));
            assert_eq!((got.version(), &got[..]), (*version, &v[..]), "{name}");
        }
    }
}

#[test]
fn durability_none_still_makes_sync_durable() {
    for (backend, name) in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let config = config().durability(Durability::Deferred);
        let wb = open_segments(dir.path(), config.clone(), backend, 1 << 16).unwrap();
        let mut w = wb.writer().unwrap();
        for i in 0..10_000u64 {
            w.put(&key(i), &value(i, 1)).unwrap();
        }
        wb.sync().unwrap();
        drop(w);
        wb.close().unwrap();
        let wb = open_segments(dir.path(), config, backend, 1 << 16).unwrap();
        for i in 0..10_000u64 {
            assert_eq!(
                wb.get(&key(i)).expect("read").as_deref(),
                Some(&value(i, 1)[..]),
                "{name}"
            );
        }
    }
}

/// Under `Durability::Deferred` batches are only reported durable once an
/// fdatasync covers them; when one fails, the segment is sealed and the
/// batches it would have covered are rewritten from memory (G8).
#[test]
fn durability_none_survives_a_failed_fdatasync() {
    for (backend, name) in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let config = config()
            .durability(Durability::Deferred)
            .compact_segments_min(1_000);
        let mut acked = HashMap::new();
        {
            let store = FileStore::open(dir.path(), &file(&config, backend, 16 << 20)).unwrap();
            let syncs = store.sync_faults();
            let wb = WriteBehind::with_store(store, config.clone()).unwrap();
            let mut w = wb.writer().unwrap();
            for round in 0..3u64 {
                if round == 1 {
                    syncs.fail_next(2);
                }
                for i in 0..3_000u64 {
                    let v = value(i, round);
                    acked.insert(key(i), (w.put(&key(i), &v).unwrap(), v));
                }
                wb.sync().unwrap();
            }
            assert_eq!(syncs.injected(), 2, "{name}");
            assert!(wb.stats().store_errors >= 1, "{name}");
            drop(w);
            wb.close().unwrap();
        }
        let wb = open(dir.path(), config, backend).unwrap();
        for (k, (version, v)) in &acked {
            let got = wb
                .get(k)
                .expect("read")
                .unwrap_or_else(|| panic!("{name}: {k:?} lost"));
            assert_eq!((got.version(), &got[..]), (*version, &v[..]), "{name}");
        }
        assert_eq!(wb.stats().torn_tails, 0, "{name}");
    }
}

#[test]
fn deleted_keys_stay_deleted_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wb = open(dir.path(), config(), IoBackend::Auto).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..100 {
        w.put(&key(i), b"x").unwrap();
    }
    for i in 0..50 {
        assert!(w.delete(&key(i)).unwrap());
    }
    drop(w);
    wb.close().unwrap();
    let wb = open(dir.path(), config(), IoBackend::Auto).unwrap();
    for i in 0..100 {
        assert_eq!(wb.get(&key(i)).expect("read").is_some(), i >= 50);
    }
    // The tombstone takes no memory after reopen (G12), and the key's next
    // version is above it (G2): the new put wins over it after a reopen.
    assert_eq!(wb.version(&key(3)).expect("read"), None);
    let mut w = wb.writer().unwrap();
    let again = w.put(&key(3), b"again").unwrap();
    assert!(again > Version(2), "{again:?}");
    drop(w);
    wb.close().unwrap();
    let wb = open(dir.path(), config(), IoBackend::Auto).unwrap();
    assert_eq!(
        wb.get(&key(3)).expect("read").as_deref(),
        Some(&b"again"[..])
    );
    assert!(wb.get(&key(4)).expect("read").is_none());
}

/// A crash while creating a segment leaves an empty or zero-filled (or
/// half-headed) newest file: recovery drops it and carries on.
#[test]
fn a_segment_whose_creation_was_interrupted_is_dropped() {
    let src = small_batches_store(IoBackend::Auto, 300);
    let next = inspect::list_segments(src.path())
        .unwrap()
        .last()
        .unwrap()
        .0
        + 1;
    let header_start = {
        let h = writebehind::__internals::format::SegmentHeader {
            id: SegmentId(next),
            flags: 0,
            sealed: None,
            frame_bytes_max: 1 << 20,
            salt: 1,
        };
        h.encode()[..8].to_vec()
    };
    for contents in [Vec::new(), vec![0u8; 1 << 16], header_start] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(src.path(), copy.path());
        std::fs::write(SegmentId(next).path(copy.path()), &contents).unwrap();
        let wb = open(copy.path(), config(), IoBackend::Auto)
            .unwrap_or_else(|e| panic!("{} bytes: {e}", contents.len()));
        let readable = |wb: &writebehind::WriteBehind| {
            (0..301)
                .filter(|&i| wb.get(&key(i)).expect("read").is_some())
                .count()
        };
        assert_eq!(readable(&wb), 300);
        let mut w = wb.writer().unwrap();
        w.put(b"new", b"segment").unwrap();
        drop(w);
        wb.close().unwrap();
        let wb = open(copy.path(), config(), IoBackend::Auto).unwrap();
        assert_eq!(readable(&wb), 300);
        assert!(wb.get(b"new").expect("read").is_some());
        assert_eq!(wb.stats().torn_tails, 0);
    }
}

#[test]
fn files_that_are_not_segments_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("000001.wb"), vec![7u8; 200]).unwrap();
    assert!(matches!(
        open(dir.path(), config(), IoBackend::Auto),
        Err(Error::Format { .. })
    ));
    assert_eq!(
        std::fs::read(dir.path().join("000001.wb")).unwrap(),
        vec![7u8; 200],
        "nothing changed on disk"
    );
    std::fs::write(dir.path().join("junk.wb"), b"x").unwrap();
    assert!(matches!(
        open(dir.path(), config(), IoBackend::Auto),
        Err(Error::Format { .. })
    ));
}

#[test]
fn compaction_keeps_the_live_set_and_deletes_stay_deleted() {
    for (backend, name) in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let config = config().compact_segments_min(1_000);
        let wb = open_segments(dir.path(), config.clone(), backend, 1 << 16).unwrap();
        let mut w = wb.writer().unwrap();
        for round in 0..5u64 {
            for i in 0..2_000u64 {
                w.put(&key(i), &value(i, round)).unwrap();
            }
            wb.sync().unwrap();
        }
        for i in 0..500u64 {
            assert!(w.delete(&key(i)).unwrap());
        }
        wb.sync().unwrap();
        let before = wb.stats();
        assert!(before.segments > 4, "{name}: {before:?}");
        wb.compact().unwrap();
        let after = wb.stats();
        assert_eq!(after.compactions, 1, "{name}");
        assert!(
            after.segments < before.segments,
            "{name}: {} -> {} segments",
            before.segments,
            after.segments
        );
        assert!(
            after.stored_bytes < before.stored_bytes / 2,
            "{name}: {} -> {} bytes",
            before.stored_bytes,
            after.stored_bytes
        );
        // More writes after the compaction, then reopen.
        for i in 1_000..1_100u64 {
            w.put(&key(i), b"late").unwrap();
        }
        drop(w);
        wb.close().unwrap();
        let wb = open_segments(dir.path(), config, backend, 1 << 16).unwrap();
        for i in 0..2_000u64 {
            let got = wb.get(&key(i)).expect("read");
            if i < 500 {
                assert!(got.is_none(), "{name}: deleted key {i} came back");
                assert_eq!(
                    wb.version(&key(i)).expect("read"),
                    None,
                    "{name}: a durable tombstone takes no memory"
                );
            } else if (1_000..1_100).contains(&i) {
                assert_eq!(got.as_deref(), Some(&b"late"[..]), "{name}");
            } else {
                assert_eq!(got.as_deref(), Some(&value(i, 4)[..]), "{name}: key {i}");
            }
        }
    }
}

#[test]
fn compaction_runs_by_itself_while_a_writer_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let config = config().compact_segments_min(3).compact_dead_ratio(0.5);
    let wb = std::sync::Arc::new(
        open_segments(dir.path(), config.clone(), IoBackend::Auto, 1 << 16).unwrap(),
    );
    let writer = {
        let wb = std::sync::Arc::clone(&wb);
        std::thread::spawn(move || {
            let mut w = wb.writer().unwrap();
            let mut last = HashMap::new();
            for round in 0..60u64 {
                for i in 0..300u64 {
                    w.put(&key(i), &value(i, round)).unwrap();
                    last.insert(key(i), value(i, round));
                }
                wb.sync().unwrap();
            }
            last
        })
    };
    let last = writer.join().unwrap();
    // The trigger is checked in the background: wait for it (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while wb.stats().compactions == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let stats = wb.stats();
    assert!(stats.compactions >= 1, "{stats:?}");
    let wb = std::sync::Arc::into_inner(wb).unwrap();
    wb.close().unwrap();
    let wb = open_segments(dir.path(), config, IoBackend::Auto, 1 << 16).unwrap();
    for (k, v) in &last {
        assert_eq!(wb.get(k).expect("read").as_deref(), Some(&v[..]));
    }
}

/// A compaction finishes while a writer keeps a slow store saturated (it
/// used to wait for every regular batch: a cut is due at each completion),
/// with one batch in flight or several; and nothing is lost.
#[test]
fn compaction_is_not_starved_by_a_saturated_store() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    for in_flight in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let config = config()
            .batches_in_flight_max(in_flight)
            .batch_ops_max(1_024)
            .compact_segments_min(1_000);
        // 200 batches/s of at most 1,024 records: a writer cycling 50,000
        // keys keeps it busy, and the compaction needs ~50 batches.
        let store = writebehind::testing::Throttled::new(
            FileStore::open(dir.path(), &file(&config, IoBackend::Auto, 1 << 20)).unwrap(),
            200,
        );
        let wb = Arc::new(WriteBehind::with_store(store, config.clone()).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (wb, stop) = (Arc::clone(&wb), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut w = wb.writer().unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    w.put(&key(i % 50_000), &value(i, 0)).unwrap();
                    i += 1;
                    if i % 1_000 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let (tx, rx) = std::sync::mpsc::channel();
        let compactor = {
            let wb = Arc::clone(&wb);
            std::thread::spawn(move || tx.send(wb.compact().is_ok()))
        };
        let started = Instant::now();
        let done = rx.recv_timeout(Duration::from_secs(10));
        let writer_was_running = !writer.is_finished();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        compactor.join().unwrap().ok();
        assert_eq!(
            done,
            Ok(true),
            "in_flight {in_flight}: compact() did not finish in {:?} under load",
            started.elapsed()
        );
        assert!(writer_was_running);
        assert_eq!(wb.stats().compactions, 1);
        let expected: Vec<_> = (0..50_000u64)
            .map(|i| wb.get(&key(i)).expect("read").map(|v| v.to_vec()))
            .collect();
        Arc::into_inner(wb).unwrap().close().unwrap();
        let wb = open_segments(dir.path(), config, IoBackend::Auto, 1 << 20).unwrap();
        for (i, v) in expected.iter().enumerate() {
            assert_eq!(
                wb.get(&key(i as u64))
                    .expect("read")
                    .map(|v| v.to_vec())
                    .as_ref(),
                v.as_ref()
            );
        }
    }
}

/// Zeros where a frame header should be, with durable frames after them, are
/// damage (every later frame was acknowledged durable), not the end of data.
#[test]
fn zeros_in_the_middle_of_a_segment_are_an_error_not_an_end() {
    let src = small_batches_store(IoBackend::Auto, 1_000);
    let seg = newest_segment(src.path());
    let (start, _) = frames(&seg)[3];
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[start as usize..start as usize + FRAME_HEADER_BYTES].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    match open(src.path(), config(), IoBackend::Auto) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, start),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

/// A torn last frame whose *value* holds bytes that look like frame headers
/// (a genuine header copied from this very segment, and one of format 1) is
/// still a torn tail: a header is valid only at the offset it was written
/// for, so nothing inside a value can pose as a later durable frame. Both
/// the torn frame (cut short) and the one whose header sector was lost
/// (zeros) open.
#[test]
fn user_data_that_looks_like_a_frame_does_not_turn_a_torn_tail_into_an_error() {
    for lose_header in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (seg, value) = {
            let wb = open(dir.path(), config(), IoBackend::Auto).unwrap();
            let mut w = wb.writer().unwrap();
            w.put(b"first", b"v").unwrap();
            wb.sync().unwrap();
            let seg = newest_segment(dir.path());
            let (start, _) = frames(&seg)[0];
            let bytes = std::fs::read(&seg).unwrap();
            let genuine = &bytes[start as usize..start as usize + FRAME_HEADER_BYTES];
            let mut v1 = b"wbfr\x01\0\0\0\x04\0\0\0".to_vec();
            let crc = crc32c_of(&v1);
            v1.extend_from_slice(&crc.to_le_bytes());
            let mut value = vec![1u8; 40];
            for _ in 0..20 {
                value.extend_from_slice(genuine);
                value.extend_from_slice(&v1);
            }
            w.put(b"last", &value).unwrap();
            drop(w);
            wb.close().unwrap();
            (seg, value)
        };
        let (start, end) = *frames(&seg).last().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        assert!(bytes.windows(value.len()).any(|w| w == value));
        if lose_header {
            bytes[start as usize..start as usize + FRAME_HEADER_BYTES].fill(0);
        } else {
            bytes.truncate(end as usize - 3);
        }
        std::fs::write(&seg, &bytes).unwrap();
        let wb = open(dir.path(), config(), IoBackend::Auto)
            .unwrap_or_else(|e| panic!("header lost: {lose_header}: {e}"));
        assert_eq!(wb.stats().torn_tails, u64::from(!lose_header));
        assert_eq!(wb.get(b"first").expect("read").as_deref(), Some(&b"v"[..]));
        assert!(wb.get(b"last").expect("read").is_none());
    }
}

/// Under `Durability::Deferred` frames may reach the disk out of order, so only a
/// commit marker (written after an fdatasync returned) proves that a bad
/// frame before it is damage: a flipped bit there is still an error.
#[test]
fn durability_none_still_reports_damage_before_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let config = config().durability(Durability::Deferred).batch_ops_max(50);
    {
        let wb = open(dir.path(), config.clone(), IoBackend::Auto).unwrap();
        let mut w = wb.writer().unwrap();
        for i in 0..1_000u64 {
            w.put(&key(i), &value(i, 0)).unwrap();
            if i % 50 == 49 {
                wb.sync().unwrap();
            }
        }
        drop(w);
        wb.close().unwrap();
    }
    let seg = newest_segment(dir.path());
    let fr = frames(&seg);
    let data = fr
        .iter()
        .find(|&&(s, e)| e - s > FRAME_HEADER_BYTES as u64)
        .copied()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[data.0 as usize + FRAME_HEADER_BYTES + 25] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    assert!(matches!(
        open(dir.path(), config, IoBackend::Auto),
        Err(Error::Corrupt { .. })
    ));
}

/// `stats()` is whole from the moment `open` returns: the segments and
/// stored bytes of a reopened store, not zeros until the flusher's first
/// pass (they raced it before).
#[test]
fn stats_count_the_stored_segments_as_soon_as_open_returns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wb = open_segments(dir.path(), config(), IoBackend::Auto, 64 << 10).unwrap();
        let mut w = wb.writer().unwrap();
        for i in 0..3_000u64 {
            w.put(format!("k{i}").as_bytes(), &[7u8; 100]).unwrap();
            if i % 200 == 199 {
                wb.sync().unwrap();
            }
        }
        drop(w);
        wb.close().unwrap();
    }
    for _ in 0..20 {
        let segments = inspect::list_segments(dir.path()).unwrap().len() as u64;
        let wb = open_segments(dir.path(), config(), IoBackend::Auto, 64 << 10).unwrap();
        let stats = wb.stats();
        assert!(segments > 3, "{segments}");
        assert_eq!(stats.segments, segments, "{stats:?}");
        assert!(stats.stored_bytes > 300_000, "{stats:?}");
        wb.close().unwrap();
    }
}
