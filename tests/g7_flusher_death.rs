//! G7 when the flusher thread dies (a panic, i.e. a bug): nothing is
//! acknowledged into memory that will never be persisted. Every update after
//! the death is refused with `Error::FlusherDied`, a writer blocked on a full
//! ring wakes with it, `sync()` and `close()` return it, and `stats()` says
//! the flusher is gone.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::small_config;
use writebehind::{
    Backpressure, Batch, Compaction, Completion, Error, RecordRef, RecoveryReport, Store,
    StoreError, StoreInfo, WriteBehind,
};

/// What the test store does; the test flips the flags.
#[derive(Debug, Default)]
struct Control {
    /// `submit` panics.
    panic_on_submit: AtomicBool,
    /// `poll` panics (while batches stall).
    panic_on_poll: AtomicBool,
}

/// A store that never completes a batch and panics when told to.
#[derive(Debug)]
struct PanickingStore {
    control: Arc<Control>,
    submitted: Vec<Batch>,
}

impl PanickingStore {
    fn new() -> (Self, Arc<Control>) {
        let control = Arc::new(Control::default());
        let store = Self {
            control: Arc::clone(&control),
            submitted: Vec::new(),
        };
        (store, control)
    }
}

impl Store for PanickingStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("panicking")
    }

    fn recover(&mut self, _visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        Ok(RecoveryReport::default())
    }

    fn submit(&mut self, batch: Batch) {
        assert!(
            !self.control.panic_on_submit.load(Ordering::Relaxed),
            "test store: submit panics"
        );
        self.submitted.push(batch);
    }

    fn poll(&mut self, _out: &mut Vec<Completion>, timeout: Duration) {
        assert!(
            !self.control.panic_on_poll.load(Ordering::Relaxed),
            "test store: poll panics"
        );
        // Stalled: nothing completes. Sleep like a store waiting on I/O.
        thread::sleep(timeout.min(Duration::from_millis(1)));
    }

    fn in_flight(&self) -> usize {
        self.submitted.len()
    }

    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        None
    }
    fn reader(&mut self) -> Option<std::sync::Arc<dyn writebehind::StoreReader>> {
        None
    }

    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn is_flusher_died(result: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::FlusherDied(_)))
}

/// After the flusher panicked in `submit`, every update (put, delete, add),
/// a new writer, `sync()` and `close()` fail with `FlusherDied`, whose
/// message says what happened and to reopen; `stats()` reports it.
#[test]
fn g7_updates_after_the_flusher_died_are_refused() {
    let (store, control) = PanickingStore::new();
    control.panic_on_submit.store(true, Ordering::Relaxed);
    let wb = WriteBehind::with_store(store, small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    assert!(wb.stats().flusher_alive);
    // Acknowledged before the death: the flusher panics submitting it.
    w.put(b"k0", b"v").unwrap();
    // sync() can never succeed: it returns once the death is published.
    let synced = wb.sync();
    assert!(is_flusher_died(&synced), "sync: {synced:?}");
    let put = w.put(b"k1", b"v");
    assert!(is_flusher_died(&put), "put after the death: {put:?}");
    let delete = w.delete(b"k0");
    assert!(
        is_flusher_died(&delete),
        "delete after the death: {delete:?}"
    );
    let add = w.add(b"n", 1);
    assert!(is_flusher_died(&add), "add after the death: {add:?}");
    let registered = wb.writer();
    assert!(
        is_flusher_died(&registered),
        "writer() after the death: {registered:?}"
    );
    assert!(
        wb.get(b"k1").expect("read").is_none(),
        "a refused put was applied"
    );
    match put {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("test store: submit panics"), "{msg}");
            assert!(
                msg.contains("reopen"),
                "the message must say what to do: {msg}"
            );
        }
        Ok(_) => unreachable!(),
    }
    let stats = wb.stats();
    assert!(!stats.flusher_alive, "stats() must report the death");
    assert!(!stats.healthy, "a cache without a flusher is not healthy");
    assert!(
        stats
            .flusher_death
            .as_deref()
            .is_some_and(|m| m.contains("test store: submit panics")),
        "{:?}",
        stats.flusher_death
    );
    drop(w);
    let closed = wb.close();
    assert!(is_flusher_died(&closed), "close: {closed:?}");
}

/// A writer blocked on a full ring (`Backpressure::Block`, two slots, a
/// stalled store) when the flusher dies wakes and fails with `FlusherDied`
/// instead of hanging or reporting a normal close.
#[test]
fn g7_a_blocked_writer_wakes_when_the_flusher_dies() {
    let (store, control) = PanickingStore::new();
    let config = small_config()
        .ring_capacity(2)
        .dirty_keys_max(2)
        .batches_in_flight_max(1)
        .backpressure(Backpressure::Block);
    let wb = Arc::new(WriteBehind::with_store(store, config).unwrap());
    let (tx, rx) = mpsc::channel();
    let writer = {
        let wb = Arc::clone(&wb);
        thread::spawn(move || {
            let mut w = wb.writer().unwrap();
            // One batch in flight, two dirty keys, two in the ring: the
            // sixth put at the latest finds no room and blocks.
            for i in 0..64u32 {
                if let Err(e) = w.put(format!("k{i}").as_bytes(), b"v") {
                    tx.send(e).unwrap();
                    return;
                }
            }
            panic!("64 puts acknowledged by a store that completes nothing");
        })
    };
    // Wait (bounded) until the writer found its ring full.
    let mut full = false;
    for _ in 0..10_000 {
        if wb.stats().ring_full_events > 0 {
            full = true;
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert!(full, "the writer never found its ring full");
    control.panic_on_poll.store(true, Ordering::Relaxed);
    // A generous bound so that a hang fails the test instead of stalling it.
    let error = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the blocked writer did not wake after the flusher died");
    assert!(
        matches!(&error, Error::FlusherDied(m) if m.contains("test store: poll panics")),
        "blocked writer: {error:?}"
    );
    writer.join().unwrap();
    let stats = wb.stats();
    assert!(!stats.flusher_alive);
    assert!(!stats.healthy);
    let wb = Arc::try_unwrap(wb).unwrap();
    let synced = wb.sync();
    assert!(is_flusher_died(&synced), "sync: {synced:?}");
    let closed = wb.close();
    assert!(is_flusher_died(&closed), "close: {closed:?}");
}
