//! G12's `compact()` has a way out: `compact_timeout` gives up with a typed
//! `Error::Timeout` that carries the store's last error (why it is stuck),
//! and both `compact()` and `compact_timeout` return the store's error once
//! it has kept failing for `close_timeout`, instead of waiting for ever (a
//! directory that is not writable).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::small_config;
use writebehind::{
    Batch, Compaction, CompactionRead, Completion, Error, RecordRef, RecoveryReport, Store,
    StoreError, StoreErrorKind, StoreInfo, StoredKey, StoredSize, UnitId, Version, WriteBehind,
};

const DENIED: &str = "open 000002.wb: Permission denied (os error 13)";

/// What the test store does; the test flips the flags.
#[derive(Debug, Default)]
struct Control {
    /// Every batch fails with `DENIED`.
    fail_batches: AtomicBool,
    /// `Compaction::begin` makes the store stall: no batch completes again.
    stall_on_compaction: AtomicBool,
    stalled: AtomicBool,
    /// `Compaction::finish` fails with `DENIED`.
    fail_finish: AtomicBool,
}

/// A store that compacts (as far as the flusher can tell) and fails or
/// stalls on command.
#[derive(Debug)]
struct TestStore {
    control: Arc<Control>,
    submitted: VecDeque<Batch>,
}

fn store() -> (TestStore, Arc<Control>) {
    let control = Arc::new(Control::default());
    let store = TestStore {
        control: Arc::clone(&control),
        submitted: VecDeque::new(),
    };
    (store, control)
}

fn denied() -> StoreError {
    StoreError::new(StoreErrorKind::Write, DENIED)
}

impl Store for TestStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("test")
    }

    fn recover(&mut self, _visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        Ok(RecoveryReport::default())
    }

    fn submit(&mut self, batch: Batch) {
        self.submitted.push_back(batch);
    }

    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
        if self.control.stalled.load(Ordering::Relaxed) {
            thread::sleep(timeout.min(Duration::from_millis(1)));
            return;
        }
        let fail = self.control.fail_batches.load(Ordering::Relaxed);
        while let Some(batch) = self.submitted.pop_front() {
            let result = if fail { Err(denied()) } else { Ok(()) };
            out.push(Completion { batch, result });
        }
    }

    fn in_flight(&self) -> usize {
        self.submitted.len()
    }

    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        Some(self)
    }
    fn reader(&mut self) -> Option<std::sync::Arc<dyn writebehind::StoreReader>> {
        None
    }

    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Compaction for TestStore {
    /// Never enough dead bytes for an automatic compaction: only the
    /// test's calls compact.
    fn stored(&self) -> StoredSize {
        StoredSize::default()
    }

    fn begin(&mut self, _resident_is_complete: bool) -> Result<UnitId, StoreError> {
        if self.control.stall_on_compaction.load(Ordering::Relaxed) {
            self.control.stalled.store(true, Ordering::Relaxed);
        }
        Ok(UnitId(0))
    }

    /// Cannot say what a unit holds: the flusher rewrites every key.
    fn read(
        &mut self,
        _cutoff: UnitId,
        _budget_bytes: usize,
        _out: &mut Vec<StoredKey>,
    ) -> Result<CompactionRead, StoreError> {
        Ok(CompactionRead::Everything)
    }

    fn finish(&mut self, _upto: UnitId, _floor: Version) -> Result<(), StoreError> {
        if self.control.fail_finish.load(Ordering::Relaxed) {
            return Err(denied());
        }
        Ok(())
    }
}

fn open(store: TestStore, close_timeout: Duration) -> WriteBehind {
    let config = small_config().close_timeout(close_timeout);
    WriteBehind::with_store(store, config).unwrap()
}

/// Waits (bounded) until the store has reported an error.
fn wait_for_store_error(wb: &WriteBehind) {
    for _ in 0..10_000 {
        if wb.stats().last_store_error.is_some() {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
    panic!("the store never reported its error");
}

/// Runs `f` on a thread and returns its result, failing the test (instead
/// of hanging it) if it does not return within a generous bound.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} did not return: it waits for ever"))
}

/// A compaction that never finishes (the store stalls) and a store that
/// reports nothing: `compact_timeout` returns `Timeout` without an error.
#[test]
fn g12_compact_timeout_gives_up_on_a_compaction_that_never_finishes() {
    let (store, control) = store();
    control.stall_on_compaction.store(true, Ordering::Relaxed);
    let wb = Arc::new(open(store, Duration::from_millis(300)));
    let mut w = wb.writer().unwrap();
    w.put(b"k", b"v").unwrap();
    wb.sync().unwrap();
    let result = {
        let wb = Arc::clone(&wb);
        bounded("compact_timeout", move || {
            wb.compact_timeout(Duration::from_millis(100))
        })
    };
    assert!(
        matches!(
            result,
            Err(Error::Timeout {
                last_error: None,
                ..
            })
        ),
        "{result:?}"
    );
    drop(w);
    let wb = Arc::try_unwrap(wb).unwrap();
    // The stalled compaction batch is never durable: close reports it.
    assert!(matches!(wb.close(), Err(Error::Timeout { .. })));
}

/// A store whose every write fails: `compact_timeout` shorter than
/// `close_timeout` returns `Timeout` carrying the store's error (the user
/// sees "Permission denied").
#[test]
fn g12_compact_timeout_carries_the_stores_last_error() {
    let (store, control) = store();
    control.fail_batches.store(true, Ordering::Relaxed);
    let wb = Arc::new(open(store, Duration::from_secs(2)));
    let mut w = wb.writer().unwrap();
    w.put(b"k", b"v").unwrap();
    wait_for_store_error(&wb);
    let result = {
        let wb = Arc::clone(&wb);
        bounded("compact_timeout", move || {
            wb.compact_timeout(Duration::from_millis(100))
        })
    };
    match result {
        Err(Error::Timeout {
            last_error: Some(e),
            ..
        }) => assert!(e.message.contains("Permission denied"), "{e}"),
        other => panic!("expected Timeout with the store's error, got {other:?}"),
    }
    let msg = wb.compact_timeout(Duration::ZERO).unwrap_err().to_string();
    assert!(msg.contains("Permission denied"), "{msg}");
    drop(w);
    let wb = Arc::try_unwrap(wb).unwrap();
    assert!(matches!(wb.close(), Err(Error::Timeout { .. })));
}

/// A store that keeps failing (no batch succeeds for `close_timeout`):
/// `compact()` and a long `compact_timeout` return its error instead of
/// waiting for ever.
#[test]
fn g12_compact_returns_a_persistent_store_error() {
    let (store, control) = store();
    control.fail_batches.store(true, Ordering::Relaxed);
    let wb = Arc::new(open(store, Duration::from_millis(200)));
    let mut w = wb.writer().unwrap();
    w.put(b"k", b"v").unwrap();
    let result = {
        let wb = Arc::clone(&wb);
        bounded("compact()", move || wb.compact())
    };
    match result {
        Err(Error::Store(e)) => assert!(e.message.contains("Permission denied"), "{e}"),
        other => panic!("compact(): expected the store's error, got {other:?}"),
    }
    let result = {
        let wb = Arc::clone(&wb);
        bounded("compact_timeout(1 h)", move || {
            wb.compact_timeout(Duration::from_secs(3600))
        })
    };
    match result {
        Err(Error::Store(e)) => assert!(e.message.contains("Permission denied"), "{e}"),
        other => panic!("compact_timeout: expected the store's error, got {other:?}"),
    }
    // Once the store recovers, compaction works again.
    control.fail_batches.store(false, Ordering::Relaxed);
    wb.compact_timeout(Duration::from_secs(3600)).unwrap();
    drop(w);
    let wb = Arc::try_unwrap(wb).unwrap();
    wb.close().unwrap();
}

/// The store refuses to finish the compaction (removing old segments
/// fails): `compact_timeout` returns that error at once.
#[test]
fn g12_compact_timeout_returns_a_failed_finish() {
    let (store, control) = store();
    control.fail_finish.store(true, Ordering::Relaxed);
    let wb = open(store, Duration::from_secs(20));
    let mut w = wb.writer().unwrap();
    w.put(b"k", b"v").unwrap();
    match wb.compact_timeout(Duration::from_secs(3600)) {
        Err(Error::Store(e)) => assert!(e.message.contains("Permission denied"), "{e}"),
        other => panic!("expected the store's error, got {other:?}"),
    }
    control.fail_finish.store(false, Ordering::Relaxed);
    wb.compact_timeout(Duration::from_secs(3600)).unwrap();
    drop(w);
    wb.close().unwrap();
}
