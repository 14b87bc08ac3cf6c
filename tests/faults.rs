//! Faults around the file store: a store that stalls for seconds, files from
//! a future format version, an unreadable directory (G6, G8, G9).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;
use common::crc32c_of;
use std::time::{Duration, Instant};

use writebehind::__internals::format::{SegmentHeader, SegmentId};
use writebehind::testing::{FaultPlan, Faulty, Throttled};
use writebehind::{
    Batch, Compaction, CompactionRead, Completion, Config, Error, FileOptions, FileStore, MemStore,
    RecordRef, RecoveryReport, Store, StoreError, StoreErrorKind, StoreInfo, StoredKey, StoredSize,
    UnitId, Version, WriteBehind,
};

/// The store stalls for 1.5 s: writers keep going (into the rings and the
/// dirty set), stats show the durable lag growing, and once the stall ends
/// sync() returns with everything durable.
#[test]
fn a_store_that_stalls_for_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().dirty_keys_max(1 << 16);
    let plan = FaultPlan::new();
    let store = FileStore::open(dir.path(), &FileOptions::for_cache(&config)).unwrap();
    let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    let persisted_before = wb.stats().persisted_records;
    plan.stall_for(Duration::from_millis(1500));
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(1000) {
        w.put(format!("k{}", n % 10_000).as_bytes(), &n.to_le_bytes())
            .unwrap();
        n += 1;
        if n % 1000 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // While stalled: writes were acknowledged, nothing became durable, and
    // the stats say so.
    let stalled = wb.stats();
    assert_eq!(stalled.persisted_records, persisted_before, "{stalled:?}");
    assert!(stalled.acked_ops >= n);
    assert!(
        stalled.batches_in_flight > 0 && stalled.durable_lag > Duration::ZERO,
        "{stalled:?}"
    );
    wb.sync_timeout(Duration::from_secs(20)).unwrap();
    assert!(wb.stats().persisted_records > persisted_before);
    drop(w);
    wb.close().unwrap();
    let wb = WriteBehind::open(dir.path(), config).unwrap();
    for i in 0..10_000.min(n) {
        let key = format!("k{i}");
        assert!(wb.get(key.as_bytes()).unwrap().is_some(), "{key} lost");
    }
}

/// A segment written by a future format version is refused by name, and
/// nothing on disk changes.
#[test]
fn a_segment_from_a_future_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = SegmentHeader {
        id: SegmentId(1),
        flags: 0,
        sealed: None,
        frame_bytes_max: 1 << 20,
        salt: 1,
    }
    .encode();
    header[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32c_of(&header[..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    let path = SegmentId(1).path(dir.path());
    std::fs::write(&path, header).unwrap();
    match WriteBehind::open(dir.path(), Config::default()) {
        Err(Error::Format { reason, .. }) => assert!(reason.contains("version 3"), "{reason}"),
        other => panic!("expected a format error, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        header,
        "nothing changed on disk"
    );
}

/// An unreadable store directory is an I/O error at open, not a panic.
#[test]
fn an_unreadable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        WriteBehind::open(&file, Config::default()),
        Err(Error::Io(_))
    ));
}

/// Fault injection reaches a file store behind other decorators: the
/// handle comes from the file store itself (a `Throttled` in between used to
/// drop `fail_next_syncs` silently when it went through the decorators).
#[test]
fn g8_injected_fdatasync_failures_pass_through_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let plan = FaultPlan::new();
    let file = FileStore::open(dir.path(), &FileOptions::for_cache(&config)).unwrap();
    let syncs = file.sync_faults();
    let store = Throttled::new(file, 1_000);
    let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config).unwrap();
    let mut w = wb.writer().unwrap();
    syncs.fail_next(1);
    w.put(b"k", b"v").unwrap();
    wb.sync().unwrap();
    assert_eq!(
        syncs.injected(),
        1,
        "the injected failure never reached the file store"
    );
    assert!(wb.stats().store_errors >= 1);
    drop(w);
    wb.close().unwrap();
}

/// A store whose compaction fails (here: it cannot begin) makes
/// `compact()` fail with its error, whatever the error's kind; only a store
/// that does not compact at all (no `Compaction`) makes it `Ok`.
#[test]
fn g12_a_genuine_compaction_failure_is_not_reported_as_success() {
    struct Refusing(MemStore, Option<StoreErrorKind>);
    impl Store for Refusing {
        fn info(&self) -> StoreInfo {
            StoreInfo::new("refusing")
        }
        fn recover(
            &mut self,
            visit: &mut dyn FnMut(RecordRef<'_>),
        ) -> Result<RecoveryReport, Error> {
            self.0.recover(visit)
        }
        fn submit(&mut self, batch: Batch) {
            self.0.submit(batch)
        }
        fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
            self.0.poll(out, timeout)
        }
        fn in_flight(&self) -> usize {
            self.0.in_flight()
        }
        fn compaction(&mut self) -> Option<&mut dyn Compaction> {
            self.1.is_some().then_some(self as &mut dyn Compaction)
        }
        fn reader(&mut self) -> Option<std::sync::Arc<dyn writebehind::StoreReader>> {
            None
        }
        fn close(&mut self) -> Result<(), StoreError> {
            self.0.close()
        }
    }
    impl Compaction for Refusing {
        fn stored(&self) -> StoredSize {
            StoredSize::default()
        }
        fn begin(&mut self, _resident_is_complete: bool) -> Result<UnitId, StoreError> {
            let kind = self.1.unwrap_or(StoreErrorKind::Other);
            Err(StoreError::new(kind, "the volume is read-only"))
        }
        fn read(
            &mut self,
            _: UnitId,
            _: usize,
            _: &mut Vec<StoredKey>,
        ) -> Result<CompactionRead, StoreError> {
            Ok(CompactionRead::Everything)
        }
        fn finish(&mut self, _: UnitId, _: Version) -> Result<(), StoreError> {
            Ok(())
        }
    }
    for kind in [StoreErrorKind::Other, StoreErrorKind::Write] {
        let wb = WriteBehind::with_store(Refusing(MemStore::new(), Some(kind)), Config::default())
            .unwrap();
        match wb.compact() {
            Err(Error::Store(e)) => assert!(e.message.contains("read-only"), "{e}"),
            other => panic!("expected the store's error, got {other:?}"),
        }
        wb.close().unwrap();
    }
    let wb = WriteBehind::with_store(Refusing(MemStore::new(), None), Config::default()).unwrap();
    wb.compact().unwrap();
    wb.close().unwrap();
}
