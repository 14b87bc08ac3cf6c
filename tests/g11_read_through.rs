//! G11: a read of a key not in memory loads it from the store (file store
//! and a store of our own), makes it resident, and returns the store's
//! latest version; concurrent misses of one key do one load; a load never
//! installs a value older than a put that raced it; opening loads no
//! value; puts, deletes and counters of keys not in memory keep G2.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::small_config;
use writebehind::{
    Batch, Compaction, Completion, Config, Error, Loaded, MemStore, MemStoreData, RecordRef,
    RecoveryReport, Store, StoreError, StoreInfo, StoreReader, Version, WriteBehind,
};

fn key(i: u64) -> Vec<u8> {
    format!("key:{i:08}").into_bytes()
}

/// Written, closed and reopened over the file store: nothing is resident
/// after the open, every key reads back at its value and version, and a
/// read makes its key resident (a second read is a hit).
#[test]
fn g11_keys_read_through_after_a_reopen_and_stay_resident() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let wb = WriteBehind::open(dir.path(), config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..1_000 {
        w.put(&key(i), format!("v{i}").as_bytes()).unwrap();
    }
    for i in 0..10 {
        w.put(&key(i), b"second").unwrap();
    }
    drop(w);
    wb.close().unwrap();

    let wb = WriteBehind::open(dir.path(), config).unwrap();
    assert_eq!(wb.stats().keys, 0, "opening loads no value");
    assert!(wb.get_resident(&key(500)).is_none(), "not in memory yet");
    let v = wb.get(&key(500)).unwrap().unwrap();
    assert_eq!((&v[..], v.version()), (&b"v500"[..], Version(1)));
    let v = wb.get(&key(3)).unwrap().unwrap();
    assert_eq!((&v[..], v.version()), (&b"second"[..], Version(2)));
    assert_eq!(wb.get_resident(&key(500)).as_deref(), Some(&b"v500"[..]));
    assert!(wb.get(b"never written").unwrap().is_none());
    let stats = wb.stats();
    assert_eq!(
        (stats.read_misses, stats.loads, stats.keys),
        (3, 3, 2),
        "{stats:?}"
    );
    assert_eq!(wb.get(&key(500)).unwrap().as_deref(), Some(&b"v500"[..]));
    assert_eq!(wb.stats().loads, 3, "a hit loads nothing");
    wb.close().unwrap();
}

/// A put, a delete and an add to keys not in memory: the put and the
/// delete do not read the store and get versions above the stored ones;
/// the add loads the counter first. All of it wins over the older records
/// after another reopen.
#[test]
fn g11_updates_of_keys_not_in_memory_continue_their_versions() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let wb = WriteBehind::open(dir.path(), config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    for _ in 0..5 {
        w.put(b"put", b"old").unwrap();
        w.put(b"del", b"old").unwrap();
    }
    w.add(b"count", 40).unwrap();
    drop(w);
    wb.close().unwrap();

    let wb = WriteBehind::open(dir.path(), config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    let v = w.put(b"put", b"new").unwrap();
    assert!(v > Version(5), "{v:?}");
    assert!(w.delete(b"del").unwrap());
    assert_eq!(wb.stats().loads, 0, "put and delete read nothing");
    assert_eq!(w.add(b"count", 2).unwrap(), 42, "the counter was loaded");
    assert_eq!(wb.stats().loads, 1);
    drop(w);
    wb.close().unwrap();

    let wb = WriteBehind::open(dir.path(), config).unwrap();
    assert_eq!(wb.get(b"put").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(wb.version(b"put").unwrap(), Some(v));
    assert!(wb.get(b"del").unwrap().is_none());
    assert_eq!(
        wb.get(b"count").unwrap().and_then(|v| v.as_counter()),
        Some(42)
    );
    wb.close().unwrap();
}

/// A store over a `MemStore` whose reader waits at a gate before it
/// answers, and counts its loads.
#[derive(Debug)]
struct GatedStore {
    inner: MemStore,
    reader: Arc<GatedReader>,
}

#[derive(Debug)]
struct GatedReader {
    data: Arc<Mutex<MemStoreData>>,
    gate: Mutex<Option<Arc<Barrier>>>,
    loads: AtomicU64,
}

impl StoreReader for GatedReader {
    fn load(&self, key: &[u8], value: &mut Vec<u8>) -> Result<Option<Loaded>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        // Read first, then wait: the race the gate opens is a store read
        // that is already stale when it is installed.
        let found = self.data.lock().unwrap().records.get(key).cloned();
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.wait();
            gate.wait();
        }
        value.clear();
        Ok(found.map(|(version, v)| {
            value.extend_from_slice(v.as_deref().unwrap_or_default());
            Loaded {
                version,
                kind: if v.is_some() {
                    writebehind::Kind::Put
                } else {
                    writebehind::Kind::Delete
                },
            }
        }))
    }
}

impl Store for GatedStore {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        self.inner.recover(visit)
    }
    fn submit(&mut self, batch: Batch) {
        self.inner.submit(batch)
    }
    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
        self.inner.poll(out, timeout)
    }
    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }
    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        None
    }
    fn reader(&mut self) -> Option<Arc<dyn StoreReader>> {
        Some(Arc::clone(&self.reader) as Arc<dyn StoreReader>)
    }
    fn close(&mut self) -> Result<(), StoreError> {
        self.inner.close()
    }
}

/// A store holding `k` = "stored" at version 7, behind a gated reader.
fn gated() -> (GatedStore, Arc<GatedReader>) {
    let data = Arc::new(Mutex::new(MemStoreData::default()));
    data.lock()
        .unwrap()
        .records
        .insert(b"k".to_vec(), (Version(7), Some(b"stored".to_vec())));
    let reader = Arc::new(GatedReader {
        data: Arc::clone(&data),
        gate: Mutex::new(None),
        loads: AtomicU64::new(0),
    });
    let store = GatedStore {
        inner: MemStore::with_data(data),
        reader: Arc::clone(&reader),
    };
    (store, reader)
}

/// Eight threads miss the same key while its load is held at the gate:
/// one load, and all eight get the stored value.
#[test]
fn g11_concurrent_misses_of_one_key_do_one_load() {
    let (store, reader) = gated();
    let gate = Arc::new(Barrier::new(2));
    *reader.gate.lock().unwrap() = Some(Arc::clone(&gate));
    let wb = Arc::new(WriteBehind::with_store(store, Config::default()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let wb = Arc::clone(&wb);
            std::thread::spawn(move || wb.get(b"k").unwrap().map(|v| (v.to_vec(), v.version())))
        })
        .collect();
    gate.wait(); // the leader is inside its load
                 // Give the other seven time to miss and queue behind it.
    std::thread::sleep(Duration::from_millis(200));
    *reader.gate.lock().unwrap() = None;
    gate.wait();
    for t in threads {
        assert_eq!(t.join().unwrap(), Some((b"stored".to_vec(), Version(7))));
    }
    assert_eq!(
        reader.loads.load(Ordering::SeqCst),
        1,
        "one load for eight misses"
    );
    let stats = wb.stats();
    assert_eq!((stats.read_misses, stats.loads), (8, 1), "{stats:?}");
}

/// A put lands while a load of the same key, which read the store before
/// the put, waits to install: the put wins, in memory and after a sync.
#[test]
fn g11_a_load_never_overwrites_a_newer_put() {
    let (store, reader) = gated();
    let data = store.inner.data();
    let gate = Arc::new(Barrier::new(2));
    *reader.gate.lock().unwrap() = Some(Arc::clone(&gate));
    let wb = Arc::new(WriteBehind::with_store(store, Config::default()).unwrap());
    let loader = {
        let wb = Arc::clone(&wb);
        std::thread::spawn(move || wb.get(b"k").unwrap().map(|v| v.to_vec()))
    };
    gate.wait(); // the load has read "stored" and waits
    let mut w = wb.writer().unwrap();
    let v = w.put(b"k", b"newer").unwrap();
    assert!(v > Version(7), "{v:?}: above the stored version");
    *reader.gate.lock().unwrap() = None;
    gate.wait();
    let got = loader.join().unwrap();
    assert_eq!(
        got.as_deref(),
        Some(&b"newer"[..]),
        "the load returns the resident put"
    );
    assert_eq!(wb.get_resident(b"k").as_deref(), Some(&b"newer"[..]));
    wb.sync().unwrap();
    assert_eq!(
        data.lock().unwrap().records.get(&b"k"[..]).cloned(),
        Some((v, Some(b"newer".to_vec())))
    );
    drop(w);
}

/// A store whose reads fail: `get` reports the error and nothing changes;
/// an `add` (which must load its counter) fails the same way; a put needs
/// no read and works.
#[test]
fn g11_a_failed_load_is_an_error_and_changes_nothing() {
    #[derive(Debug)]
    struct Failing;
    impl StoreReader for Failing {
        fn load(&self, _: &[u8], _: &mut Vec<u8>) -> Result<Option<Loaded>, StoreError> {
            Err(StoreError::new(
                writebehind::StoreErrorKind::Read,
                "disk on fire",
            ))
        }
    }
    #[derive(Debug)]
    struct FailingStore(MemStore);
    impl Store for FailingStore {
        fn info(&self) -> StoreInfo {
            self.0.info()
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
            None
        }
        fn reader(&mut self) -> Option<Arc<dyn StoreReader>> {
            Some(Arc::new(Failing))
        }
        fn close(&mut self) -> Result<(), StoreError> {
            self.0.close()
        }
    }
    let (store, _) = gated();
    let wb = WriteBehind::with_store(FailingStore(store.inner), Config::default()).unwrap();
    match wb.get(b"k") {
        Err(Error::Store(e)) => assert!(e.message.contains("disk on fire"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(wb.stats().keys, 0);
    let mut w = wb.writer().unwrap();
    assert!(
        matches!(w.add(b"k", 1), Err(Error::Store(_))),
        "a counter must be loaded first"
    );
    w.put(b"k", b"fresh").unwrap();
    assert_eq!(wb.get(b"k").unwrap().as_deref(), Some(&b"fresh"[..]));
}
