//! G2, G3, G4, G7 and the no-lost-wake-up backpressure, on the real cache
//! (writers, index, flusher thread, MemStore) under loom.
#![cfg(loom)]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
                               // The models run over a `MemStore` without a reader: every key stays
                               // resident (as before read-through existed), so the flusher's eviction and
                               // load notes add no states; their races are modelled in `read_through.rs`.

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, tiny_config};
use writebehind::loom_weaken::{self, Bug};
use writebehind::{Error, MemStore, Version, WriteBehind};

/// G2: two writers update one key (a put and an add) while the flusher
/// drains; at the end the store holds exactly the cache's value and version,
/// both updates got distinct versions, and nothing went backwards. The key
/// is resident from the start (recovered at open), so both updates go
/// through the entry's sequence lock (a new key's first update is made
/// under the shard's lock instead).
fn g2_model() {
    model("g2 two writers, one key", || {
        let store = MemStore::new().without_reads();
        let data = store.data();
        data.lock().unwrap().records.insert(
            b"k".to_vec(),
            (Version(1), Some(0i64.to_le_bytes().to_vec())),
        );
        let wb = Arc::new(WriteBehind::with_store(store, tiny_config(2)).unwrap());
        let a = {
            let wb = Arc::clone(&wb);
            thread::spawn(move || {
                let mut w = wb.writer().unwrap();
                w.put(b"k", &5i64.to_le_bytes()).unwrap()
            })
        };
        let mut w = wb.writer().unwrap();
        w.add(b"k", 1).unwrap();
        let vb = w.last_version();
        let va = a.join().unwrap();
        drop(w);
        assert_ne!(va, vb, "two updates, one version");
        let cached = wb.get(b"k").unwrap().unwrap();
        assert_eq!(cached.version(), Version(3));
        let wb = Arc::try_unwrap(wb).unwrap();
        wb.close().unwrap();
        let d = data.lock().unwrap();
        let (version, value) = d.records.get(&b"k"[..]).cloned().unwrap();
        assert_eq!(version, cached.version());
        assert_eq!(value.as_deref(), Some(&cached[..]));
        assert_eq!(d.version_regressions, 0);
    });
}

#[test]
fn g2_per_key_order() {
    g2_model();
}

#[test]
#[should_panic(expected = "version")]
fn g2_weakened_seqlock_without_cas_is_caught() {
    loom_weaken::set(Bug::SeqlockNoCas);
    g2_model();
}

/// G3: a get that starts after a put returned (a happens-before edge through
/// an atomic flag) sees it; and a get racing a put sees either the old value
/// with the old version or the new value with the new version, never a mix.
fn g3_model() {
    model("g3 read-your-writes", || {
        let wb = Arc::new(
            WriteBehind::with_store(MemStore::new().without_reads(), tiny_config(1)).unwrap(),
        );
        let mut w = wb.writer().unwrap();
        w.put(b"k", b"a").unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let done = Arc::clone(&done);
            thread::spawn(move || {
                w.put(b"k", b"bb").unwrap();
                done.store(true, Ordering::Release);
            })
        };
        let v = wb.get(b"k").unwrap().unwrap();
        match v.version() {
            Version(1) => assert_eq!(&v[..], b"a", "version 1 carries another value"),
            Version(2) => assert_eq!(&v[..], b"bb", "version 2 carries another value"),
            other => panic!("unexpected {other}"),
        }
        if done.load(Ordering::Acquire) {
            let v = wb.get(b"k").unwrap().unwrap();
            assert_eq!(
                (v.version(), &v[..]),
                (Version(2), &b"bb"[..]),
                "read after the put returned is stale"
            );
        }
        writer.join().unwrap();
    });
}

#[test]
fn g3_read_your_writes() {
    g3_model();
}

#[test]
#[should_panic(expected = "carries another value")]
fn g3_weakened_reader_without_recheck_is_caught() {
    loom_weaken::set(Bug::SeqlockReaderNoRecheck);
    g3_model();
}

/// G4: `sync()` races the flusher's completions; when it returns, the write
/// acknowledged before it is in the store.
fn g4_model() {
    model("g4 sync barrier", || {
        let store = MemStore::new().without_reads();
        let data = store.data();
        let wb = WriteBehind::with_store(store, tiny_config(1)).unwrap();
        let mut w = wb.writer().unwrap();
        let version = w.put(b"k", b"v").unwrap();
        wb.sync().unwrap();
        let stored = data.lock().unwrap().records.get(&b"k"[..]).map(|r| r.0);
        assert_eq!(
            stored,
            Some(version),
            "sync returned before the write was durable"
        );
        drop(w);
        wb.close().unwrap();
    });
}

#[test]
fn g4_durability_barrier() {
    g4_model();
}

#[test]
#[should_panic(expected = "sync returned before the write was durable")]
fn g4_weakened_sync_before_durable_is_caught() {
    loom_weaken::set(Bug::SyncBeforeDurable);
    g4_model();
}

/// G7: `close()` races a writer's last puts: every put that returned `Ok`
/// is in the store afterwards; the others were refused with `Closed`.
fn g7_model() {
    model("g7 close vs last put", || {
        let store = MemStore::new().without_reads();
        let data = store.data();
        let wb = WriteBehind::with_store(store, tiny_config(1)).unwrap();
        let mut w = wb.writer().unwrap();
        let writer = thread::spawn(move || {
            let mut acked = Vec::new();
            for key in [&b"k1"[..], b"k2"] {
                match w.put(key, b"v") {
                    Ok(v) => acked.push((key.to_vec(), v)),
                    Err(Error::Closed) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            acked
        });
        wb.close().unwrap();
        let acked = writer.join().unwrap();
        let d = data.lock().unwrap();
        for (key, version) in acked {
            assert_eq!(
                d.records.get(&key).map(|r| r.0),
                Some(version),
                "acknowledged put lost by close"
            );
        }
    });
}

#[test]
fn g7_close_drains() {
    g7_model();
}

#[test]
#[should_panic(expected = "acknowledged put lost by close")]
fn g7_weakened_close_without_handshake_is_caught() {
    loom_weaken::set(Bug::CloseWithoutHandshake);
    g7_model();
}

/// G6 backpressure: a writer blocked on a full two-slot ring parks and is
/// woken by the flusher (no lost wake-up: loom reports a deadlock if every
/// thread ends up waiting).
fn park_model() {
    model("ring full -> park -> wake", || {
        let store = MemStore::new().without_reads();
        let data = store.data();
        let wb = WriteBehind::with_store(store, tiny_config(1)).unwrap();
        let mut w = wb.writer().unwrap();
        for key in [&b"a"[..], b"b", b"c"] {
            w.put(key, b"v").unwrap();
        }
        drop(w);
        wb.close().unwrap();
        assert_eq!(data.lock().unwrap().records.len(), 3);
    });
}

#[test]
fn g6_full_ring_parks_and_wakes() {
    park_model();
}

#[test]
#[should_panic(expected = "deadlock")]
fn g6_weakened_park_without_recheck_is_caught() {
    loom_weaken::set(Bug::ParkWithoutRecheck);
    park_model();
}

/// G6 for async callers: `put_async` on a full two-slot ring awaits (its
/// waker registered with the lane) and is woken by the flusher. loom's
/// `block_on` waits between polls until woken, so a lost wake-up is a
/// deadlock loom reports.
fn async_room_model() {
    model("ring full -> await -> wake", || {
        let store = MemStore::new().without_reads();
        let data = store.data();
        let wb = WriteBehind::with_store(store, tiny_config(1)).unwrap();
        let mut w = wb.writer().unwrap();
        for key in [&b"a"[..], b"b", b"c"] {
            loom::future::block_on(w.put_async(key, b"v")).unwrap();
        }
        drop(w);
        wb.close().unwrap();
        assert_eq!(data.lock().unwrap().records.len(), 3);
    });
}

#[test]
fn g6_full_ring_awaits_and_wakes() {
    async_room_model();
}

#[test]
#[should_panic(expected = "deadlock")]
fn g6_weakened_await_without_recheck_is_caught() {
    loom_weaken::set(Bug::ParkWithoutRecheck);
    async_room_model();
}
