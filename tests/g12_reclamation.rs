//! G12: a deleted key's memory is freed once its tombstone is durable, a
//! later put of the key starts above the tombstone's version (G2), and a
//! service whose keys keep changing runs on in a bounded index.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::small_config;
use writebehind::testing::{FaultPlan, Faulty};
use writebehind::{Backpressure, Config, Error, FileOptions, MemStore, Version, WriteBehind};

fn session(i: u64) -> Vec<u8> {
    format!("session:{i:09}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    format!("player-{i}-state-{:024}", i * 7).into_bytes()
}

/// 200,000 sessions, 500 open at a time, through an index of 2,000 keys:
/// before G12 the 2,001st session was refused with `IndexFull`. Afterwards
/// the open sessions read back after a reopen, ended ones are gone, and a
/// compaction leaves the store holding about the open sessions only.
#[test]
fn g12_sessions_that_end_free_their_keys_and_the_cache_runs_on() {
    const SESSIONS: u64 = 200_000;
    const OPEN: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    // No automatic compaction: the first reopen must meet every record.
    let config = small_config()
        .keys_max(2_000)
        .dirty_keys_max(1_000)
        .compact_segments_min(1 << 30);
    let file = FileOptions::for_cache(&config).segment_bytes_max(1 << 20);
    let wb = WriteBehind::open_with(dir.path(), &file, config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..SESSIONS {
        w.put(&session(i), &value(i)).unwrap();
        assert_eq!(
            wb.get(&session(i)).expect("read").as_deref(),
            Some(&value(i)[..])
        );
        if i >= OPEN {
            assert!(
                w.delete(&session(i - OPEN)).unwrap(),
                "session {}",
                i - OPEN
            );
        }
    }
    drop(w);
    let stats = wb.stats();
    assert!(stats.keys <= 2_000, "{stats:?}");
    assert!(
        stats.keys_reclaimed >= SESSIONS - OPEN - 2_000,
        "{} reclaimed",
        stats.keys_reclaimed
    );
    wb.close().unwrap();

    // Reopen before any compaction: the store still holds the records of
    // every ended session, tombstones included; none of them takes an entry.
    let check = |wb: &WriteBehind| {
        for i in SESSIONS - OPEN..SESSIONS {
            assert_eq!(
                wb.get(&session(i)).expect("read").as_deref(),
                Some(&value(i)[..]),
                "{i}"
            );
        }
        for i in (0..SESSIONS - OPEN).step_by(997) {
            assert!(
                wb.get(&session(i)).expect("read").is_none(),
                "ended session {i} came back"
            );
        }
        let keys = wb.stats().keys as u64;
        assert!(
            keys <= OPEN,
            "{keys}: reading a deleted key makes nothing resident"
        );
    };
    let wb = WriteBehind::open_with(dir.path(), &file, config.clone()).unwrap();
    check(&wb);
    wb.compact().unwrap();
    let stored = wb.stats().stored_bytes;
    // Live records are about 70 bytes each; everything else is dead and
    // compacted away (the tombstones too: nothing older remains).
    assert!(
        stored < 200 * 1024,
        "{stored} bytes stored for {OPEN} sessions"
    );
    wb.close().unwrap();
    let wb = WriteBehind::open_with(dir.path(), &file, config).unwrap();
    check(&wb);
    wb.close().unwrap();
}

/// A put after the key's delete was made durable and its entry freed gets
/// a version above the tombstone's, and wins over it in the store and
/// after a reopen.
#[test]
fn g12_a_put_after_a_reclaimed_delete_wins_over_the_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let wb = WriteBehind::open(dir.path(), config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    for v in [&b"a"[..], b"b", b"c"] {
        w.put(b"k", v).unwrap();
    }
    assert!(w.delete(b"k").unwrap());
    let tombstone = w.last_version();
    wb.sync().unwrap();
    let stats = wb.stats();
    assert_eq!((stats.keys, stats.keys_reclaimed), (0, 1), "{stats:?}");
    assert_eq!(wb.version(b"k").expect("read"), None);
    assert!(
        !w.delete(b"k").unwrap(),
        "deleting a freed key changes nothing"
    );
    let again = w.put(b"k", b"again").unwrap();
    assert!(again > tombstone, "{again:?} <= {tombstone:?}");
    drop(w);
    wb.close().unwrap();
    let wb = WriteBehind::open(dir.path(), config).unwrap();
    let got = wb.get(b"k").expect("read").unwrap();
    assert_eq!((got.version(), &got[..]), (again, &b"again"[..]));
    wb.close().unwrap();
}

/// The same at a store that is not a log: the store's record takes the new
/// version (a version guard at the store would refuse an older one).
#[test]
fn g12_a_reclaimed_key_comes_back_above_its_tombstone_in_the_store() {
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(store, Config::default()).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..10u64 {
        w.put(b"k", &i.to_le_bytes()).unwrap();
    }
    w.delete(b"k").unwrap();
    let tombstone = w.last_version();
    wb.sync().unwrap();
    assert_eq!(wb.stats().keys_reclaimed, 1);
    let again = w.put(b"k", b"new").unwrap();
    assert!(again > tombstone);
    drop(w);
    wb.close().unwrap();
    let d = data.lock().unwrap();
    assert_eq!(
        d.records.get(&b"k"[..]),
        Some(&(again, Some(b"new".to_vec())))
    );
    assert_eq!(d.version_regressions, 0);
}

/// An index full of deleted keys: under `Block` a new key waits for their
/// tombstones to become durable (which frees them); under `Fail` it is
/// refused at once. Every batch takes 300 ms to complete here, so nothing
/// is freed during the few microseconds the test takes to fill the index.
#[test]
fn g12_a_full_index_of_deleted_keys_waits_under_block_and_refuses_under_fail() {
    for backpressure in [Backpressure::Fail, Backpressure::Block] {
        let config = Config::default()
            .keys_max(4)
            .dirty_keys_max(4)
            .backpressure(backpressure);
        let plan = FaultPlan::new();
        plan.delay(Duration::from_millis(300));
        let store = Faulty::new(MemStore::new(), plan);
        let wb = WriteBehind::with_store(store, config).unwrap();
        let mut w = wb.writer().unwrap();
        for k in 0..4u8 {
            w.put(&[k], b"v").unwrap();
            w.delete(&[k]).unwrap();
        }
        let fifth = w.put(b"five", b"v");
        match backpressure {
            Backpressure::Fail => assert!(
                matches!(fifth, Err(Error::IndexFull { max: 4 })),
                "{fifth:?}"
            ),
            Backpressure::Block => {
                assert!(fifth.is_ok(), "{fifth:?}");
                assert_eq!(wb.stats().keys_reclaimed, 4);
                assert!(fifth.unwrap() > Version(2));
            }
        }
        drop(w);
        wb.close().unwrap();
    }
}

/// G2 across a compaction that dropped the only records of deleted keys:
/// their tombstones (version 6) go, the live keys' records (version 5)
/// stay, and after a reopen a deleted key's next version is still above 6
/// (the store kept the version floor).
#[test]
fn g12_versions_stay_above_the_tombstones_compaction_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let wb = WriteBehind::open(dir.path(), Config::default()).unwrap();
    let mut w = wb.writer().unwrap();
    for round in 0..5u8 {
        for i in 0..100u64 {
            w.put(&session(i), &[round]).unwrap();
        }
    }
    for i in 0..50u64 {
        w.delete(&session(i)).unwrap();
    }
    assert_eq!(w.last_version(), Version(6));
    wb.sync().unwrap();
    assert_eq!(wb.stats().keys_reclaimed, 50);
    wb.compact().unwrap();
    drop(w);
    wb.close().unwrap();
    let wb = WriteBehind::open(dir.path(), Config::default()).unwrap();
    assert!(wb.get(&session(3)).expect("read").is_none());
    let mut w = wb.writer().unwrap();
    let again = w.put(&session(3), b"again").unwrap();
    assert!(
        again > Version(6),
        "{again:?}: at or below the dropped tombstone"
    );
    drop(w);
    wb.close().unwrap();
}

/// Reuse under real threads: two writers churn through 50,000 keys with at
/// most 256 resident (so entries are freed and reused, and table shards
/// grow and shrink, all the time), while two readers look up keys at
/// random. Every value names its key: a reader must never get another
/// key's value, and a key a writer has just put reads back at that value
/// or newer on its own thread (G3).
#[test]
fn g12_readers_never_see_another_keys_value_while_entries_are_reused() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const KEYS: u64 = 50_000;
    let config = small_config().keys_max(256).dirty_keys_max(128);
    let wb = Arc::new(WriteBehind::with_store(MemStore::new(), config).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let (wb, stop) = (Arc::clone(&wb), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = x % KEYS;
                    if let Some(v) = wb.get(&session(i)).expect("read") {
                        assert_eq!(&v[..session(i).len()], &session(i)[..], "key {i}");
                        seen += 1;
                    }
                }
                seen
            })
        })
        .collect();
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let wb = Arc::clone(&wb);
            std::thread::spawn(move || {
                let mut w = wb.writer().unwrap();
                for i in (t..KEYS).step_by(2) {
                    let mut v = session(i);
                    v.extend_from_slice(&i.to_le_bytes());
                    let version = w.put(&session(i), &v).unwrap();
                    let got = wb.get(&session(i)).expect("read").expect("read your write");
                    assert!(got.version() >= version && got[..] == v[..], "key {i}");
                    if i >= 100 {
                        w.delete(&session(i - 100)).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let seen: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let stats = wb.stats();
    assert!(stats.keys_reclaimed > 40_000, "{stats:?}");
    assert!(seen > 0, "the readers never found a key");
    Arc::into_inner(wb).unwrap().close().unwrap();
}
