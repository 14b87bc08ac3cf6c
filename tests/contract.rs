//! The contract (G1..G9, see the crate docs) on the in-memory store,
//! end to end through writers, the index, the flusher and the store.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_no_regressions, small_config, store_state};
use writebehind::testing::{FaultPlan, Faulty, Throttled};
use writebehind::{Backpressure, Config, Error, MemStore, StoreErrorKind, Version, WriteBehind};

/// The handles have the thread-safety the design promises: the cache is
/// shared (`Send + Sync`), a writer moves between threads but is used by one
/// at a time (`Send`, not `Sync`; the latter is checked by the compile_fail
/// doctest on `Writer`).
#[test]
fn handles_are_send_and_sync_as_designed() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<WriteBehind>();
    send::<writebehind::Writer>();
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

/// G1: one writer's updates reach the store exactly once and in push order,
/// across many ring wrap-arounds (distinct keys, so nothing coalesces).
#[test]
fn g1_one_writers_updates_arrive_once_in_order() {
    let store = MemStore::new();
    let data = store.data();
    data.lock().unwrap().log_order = true;
    let config = small_config().ring_capacity(8);
    let wb = WriteBehind::with_store(store, config).unwrap();
    let mut w = wb.writer().unwrap();
    const N: u64 = 20_000;
    for i in 0..N {
        w.put(&key(i), &i.to_le_bytes()).unwrap();
    }
    wb.sync().unwrap();
    let d = data.lock().unwrap();
    let keys: Vec<Vec<u8>> = d.order.iter().map(|(k, _)| k.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..N).map(key).collect();
    assert_eq!(keys.len(), expected.len(), "lost or duplicated records");
    assert!(keys == expected, "records arrived out of push order");
    drop(d);
    drop(w);
    wb.close().unwrap();
}

/// G2: two writers race on the same keys with put and add; when they stop
/// and the flusher drains, the store holds exactly the cache's value and
/// version for every key, and never received a version lower than it held.
#[test]
fn g2_store_ends_equal_to_cache_and_never_goes_backwards() {
    let store = MemStore::new();
    let data = store.data();
    let wb = Arc::new(WriteBehind::with_store(store, small_config()).unwrap());
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let wb = Arc::clone(&wb);
            thread::spawn(move || {
                let mut w = wb.writer().unwrap();
                for i in 0..50_000u64 {
                    let k = key(i % 17);
                    if t == 0 {
                        w.put(&k, &(i as i64).to_le_bytes()).unwrap();
                    } else {
                        w.add(&k, 1).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wb.sync().unwrap();
    let state = store_state(&data);
    for i in 0..17 {
        let k = key(i);
        let cached = wb.get(&k).expect("read").unwrap();
        let (version, value) = &state[&k];
        assert_eq!(*version, cached.version(), "store version of {i}");
        assert_eq!(value.as_deref(), Some(&cached[..]), "store value of {i}");
        assert_eq!(wb.version(&k).expect("read"), Some(*version));
    }
    assert_no_regressions(&data);
    let wb = Arc::into_inner(wb).unwrap();
    wb.close().unwrap();
}

/// G3: a get that starts after a put returned (with a happens-before edge
/// through a channel) sees that put or a newer one, on another thread.
#[test]
fn g3_read_your_writes_across_threads() {
    let wb = Arc::new(WriteBehind::with_store(MemStore::new(), small_config()).unwrap());
    let (tx, rx) = mpsc::sync_channel::<(u64, u64)>(64);
    let reader = {
        let wb = Arc::clone(&wb);
        thread::spawn(move || {
            for (k, v) in rx {
                let got = wb
                    .get(&key(k))
                    .expect("read")
                    .expect("a put that returned is visible");
                let got = u64::from_le_bytes(got[..8].try_into().unwrap());
                assert!(got >= v, "key {k}: read {got} after put of {v} returned");
            }
        })
    };
    let mut w = wb.writer().unwrap();
    for i in 0..100_000u64 {
        let k = i % 50;
        w.put(&key(k), &i.to_le_bytes()).unwrap();
        tx.send((k, i)).unwrap();
    }
    drop(tx);
    reader.join().unwrap();
}

/// G4: when sync() returns, everything acknowledged before it is in the
/// store, with a throttled store and several batches in flight.
#[test]
fn g4_sync_is_a_durability_barrier() {
    let store = MemStore::new();
    let data = store.data();
    let config = small_config().batches_in_flight_max(3).batch_ops_max(64);
    let wb = WriteBehind::with_store(Throttled::new(store, 2_000), config).unwrap();
    let mut w = wb.writer().unwrap();
    for round in 0..5u64 {
        let mut acked = Vec::new();
        for i in 0..2_000u64 {
            let v = round * 1_000_000 + i;
            let version = w.put(&key(i % 700), &v.to_le_bytes()).unwrap();
            acked.push((key(i % 700), version));
        }
        wb.sync().unwrap();
        let state = store_state(&data);
        for (k, version) in acked {
            let stored = state.get(&k).map(|s| s.0).unwrap_or_default();
            assert!(
                stored >= version,
                "round {round}: {k:?} acked at {version} but store has {stored}"
            );
        }
    }
    assert_no_regressions(&data);
}

/// G6 with `Backpressure::Fail`: while the store is stalled, a writer gets
/// `Full` once the bounds are reached, and a refused put changes nothing.
#[test]
fn g6_fail_policy_refuses_with_nothing_applied() {
    let plan = FaultPlan::new();
    plan.stall_for(Duration::from_secs(60));
    let config = small_config()
        .ring_capacity(16)
        .dirty_keys_max(32)
        .batch_ops_max(8)
        .batches_in_flight_max(1)
        .backpressure(Backpressure::Fail);
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config).unwrap();
    let mut w = wb.writer().unwrap();
    let mut accepted = 0u64;
    let mut refused = None;
    for i in 0..10_000u64 {
        match w.put(&key(i), b"v") {
            Ok(_) => accepted += 1,
            Err(Error::Full) => {
                refused = Some(i);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
        if i % 16 == 0 {
            thread::sleep(Duration::from_millis(1)); // let the flusher fill its bounds
        }
    }
    let refused = refused.expect("a stalled store must eventually push back");
    // bounds: ring + dirty list + one in-flight batch
    assert!(
        accepted <= 16 + 32 + 8,
        "accepted {accepted} updates past the bounds"
    );
    assert!(
        wb.get(&key(refused)).expect("read").is_none(),
        "a refused put must not be applied"
    );
    assert_eq!(wb.version(&key(refused)).expect("read"), None);
    let stats = wb.stats();
    assert!(stats.ring_full_events >= 1);
    assert!(stats.dirty_keys <= 32);
    assert_eq!(stats.acked_ops, accepted);
    // When the stall ends, everything accepted becomes durable.
    plan.stall_for(Duration::ZERO);
    wb.sync_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(data.lock().unwrap().records.len() as u64, accepted);
    drop(w);
    wb.close().unwrap();
}

/// G6 with `Backpressure::Block`: a writer blocks while the store is stalled
/// (no busy failure, no deadlock) and finishes once it resumes; nothing lost.
#[test]
fn g6_block_policy_waits_and_resumes() {
    let plan = FaultPlan::new();
    plan.stall_for(Duration::from_millis(300));
    let config = small_config()
        .ring_capacity(16)
        .dirty_keys_max(32)
        .batch_ops_max(8)
        .batches_in_flight_max(1);
    let store = MemStore::new();
    let data = store.data();
    let wb = Arc::new(WriteBehind::with_store(Faulty::new(store, plan.clone()), config).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (wb, done) = (Arc::clone(&wb), Arc::clone(&done));
        thread::spawn(move || {
            let mut w = wb.writer().unwrap();
            for i in 0..5_000u64 {
                w.put(&key(i), &i.to_le_bytes()).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    thread::sleep(Duration::from_millis(100));
    assert!(
        !done.load(Ordering::SeqCst),
        "the writer should be held back by the stall"
    );
    assert!(wb.stats().ring_full_events >= 1);
    writer.join().unwrap();
    wb.sync().unwrap();
    assert_eq!(data.lock().unwrap().records.len(), 5_000);
    let wb = Arc::into_inner(wb).unwrap();
    wb.close().unwrap();
}

/// G7: close() without sync() makes everything acknowledged durable; the same
/// for Drop; and after close a writer is refused.
#[test]
fn g7_close_and_drop_drain_everything() {
    for via_drop in [false, true] {
        let store = MemStore::new();
        let data = store.data();
        let wb = WriteBehind::with_store(Throttled::new(store, 500), small_config()).unwrap();
        let mut w = wb.writer().unwrap();
        for i in 0..3_000u64 {
            w.put(&key(i), &i.to_le_bytes()).unwrap();
        }
        if via_drop {
            drop(wb);
        } else {
            wb.close().unwrap();
        }
        assert!(matches!(w.put(b"late", b"x"), Err(Error::Closed)));
        let state = store_state(&data);
        assert_eq!(
            state.len(),
            3_000,
            "close lost writes (via_drop = {via_drop})"
        );
        for i in 0..3_000u64 {
            assert_eq!(state[&key(i)].1.as_deref(), Some(&i.to_le_bytes()[..]));
        }
    }
}

/// G7 through a shared handle: four threads close one `Arc`'d cache at
/// once, after a writer thread panicked holding its writer; every call
/// returns the same outcome, the panicked writer's acknowledged puts are in
/// the store, later closes (and the drop) change nothing, and a store that
/// fails past `close_timeout` gives every caller the same error.
#[test]
fn g7_close_through_a_shared_handle_from_several_threads() {
    let store = MemStore::new();
    let data = store.data();
    let wb = Arc::new(WriteBehind::with_store(Throttled::new(store, 200), small_config()).unwrap());
    let panicked = {
        let wb = Arc::clone(&wb);
        thread::spawn(move || {
            let mut w = wb.writer().unwrap();
            for i in 0..2_000u64 {
                w.put(&key(i), &i.to_le_bytes()).unwrap();
            }
            panic!("a writer thread fails while holding its writer");
        })
        .join()
    };
    assert!(panicked.is_err());
    let closers: Vec<_> = (0..4)
        .map(|_| {
            let wb = Arc::clone(&wb);
            thread::spawn(move || wb.close().map_err(|e| e.to_string()))
        })
        .collect();
    for c in closers {
        assert_eq!(c.join().unwrap(), Ok(()));
    }
    assert!(wb.close().is_ok(), "a later close returns the same outcome");
    assert!(matches!(
        wb.writer()
            .and_then(|mut w| w.put(b"late", b"x").map(|_| ())),
        Err(Error::Closed)
    ));
    let state = store_state(&data);
    assert_eq!(
        state.len(),
        2_000,
        "the panicked writer's puts were drained"
    );
    drop(wb);

    // A store that never comes back: every close gets the same error.
    let plan = FaultPlan::new();
    plan.fail_next(u64::MAX, StoreErrorKind::Write);
    let config = small_config().close_timeout(Duration::from_millis(200));
    let wb = Arc::new(WriteBehind::with_store(Faulty::new(MemStore::new(), plan), config).unwrap());
    wb.writer().unwrap().put(b"k", b"v").unwrap();
    let outcomes: Vec<String> = (0..3)
        .map(|_| {
            let wb = Arc::clone(&wb);
            thread::spawn(move || wb.close().unwrap_err().to_string())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(outcomes.iter().all(|o| o == &outcomes[0]), "{outcomes:?}");
    assert_eq!(wb.close().unwrap_err().to_string(), outcomes[0]);
}

/// G7: close() racing writers on other threads: every put that returned Ok
/// is in the store; puts after the close are refused with `Closed`.
#[test]
fn g7_close_racing_writers_loses_nothing_acknowledged() {
    for _ in 0..20 {
        let store = MemStore::new();
        let data = store.data();
        let wb = WriteBehind::with_store(store, small_config()).unwrap();
        let (tx, rx) = mpsc::channel();
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let mut w = wb.writer().unwrap();
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut acked = 0u64;
                    loop {
                        match w.put(&key(t * 1_000_000 + acked), &acked.to_le_bytes()) {
                            Ok(_) => acked += 1,
                            Err(Error::Closed) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    tx.send((t, acked)).unwrap();
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(2));
        wb.close().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        drop(tx);
        let state = store_state(&data);
        let mut total = 0;
        for (t, acked) in rx.iter() {
            for i in 0..acked {
                assert!(
                    state.contains_key(&key(t * 1_000_000 + i)),
                    "acknowledged put {t}/{i} lost"
                );
            }
            total += acked;
        }
        assert_eq!(
            state.len() as u64,
            total,
            "the store has puts that were not acknowledged"
        );
    }
}

/// G8: a run of failed batches, then success: sync() waits through the
/// retries, nothing acknowledged is missing, and stats show the faults.
#[test]
fn g8_failed_batches_are_retried_and_nothing_is_lost() {
    let plan = FaultPlan::new();
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..500u64 {
        w.put(&key(i), b"before").unwrap();
    }
    wb.sync().unwrap();
    plan.fail_next(6, StoreErrorKind::Write);
    let mut acked = Vec::new();
    for i in 0..2_000u64 {
        acked.push((
            key(i % 800),
            w.put(&key(i % 800), &i.to_le_bytes()).unwrap(),
            i,
        ));
    }
    wb.sync().unwrap();
    let stats = wb.stats();
    assert_eq!(plan.injected(), 6);
    assert!(stats.store_errors >= 6, "{stats:?}");
    assert!(stats.retries >= 1);
    assert!(stats.last_store_error.is_some());
    assert!(stats.healthy, "the store recovered");
    let state = store_state(&data);
    for (k, version, _) in &acked {
        assert!(
            state[k].0 >= *version,
            "acknowledged {k:?}@{version} missing after retries"
        );
    }
    for i in 0..800u64 {
        let cached = wb.get(&key(i)).expect("read").unwrap();
        assert_eq!(state[&key(i)].1.as_deref(), Some(&cached[..]));
    }
    assert_no_regressions(&data);
    drop(w);
    wb.close().unwrap();
}

/// G8/G7: a store that never recovers makes close() return the error after
/// close_timeout, instead of hanging or pretending.
#[test]
fn g8_close_reports_a_store_that_never_recovers() {
    let plan = FaultPlan::new();
    plan.fail_next(u64::MAX, StoreErrorKind::NoSpace);
    let config = small_config().close_timeout(Duration::from_millis(300));
    let wb = WriteBehind::with_store(Faulty::new(MemStore::new(), plan), config).unwrap();
    let mut w = wb.writer().unwrap();
    w.put(b"k", b"v").unwrap();
    assert!(matches!(
        wb.sync_timeout(Duration::from_millis(100)),
        Err(Error::Timeout {
            last_error: Some(_),
            ..
        })
    ));
    assert!(!wb.stats().healthy);
    match wb.close() {
        Err(Error::Timeout {
            last_error: Some(e),
            ..
        }) => assert_eq!(e.kind, StoreErrorKind::NoSpace),
        other => panic!("close must report the failure, got {other:?}"),
    }
}

/// G9: bad input is refused with a typed error and nothing is applied.
#[test]
fn g9_bad_input_is_refused_up_front() {
    let config = small_config()
        .key_bytes_max(16)
        .value_bytes_max(32)
        .writers_max(2);
    let wb = WriteBehind::with_store(MemStore::new(), config).unwrap();
    let mut w = wb.writer().unwrap();
    assert!(matches!(
        w.put(&[1; 17], b"v"),
        Err(Error::KeyTooLong { len: 17, max: 16 })
    ));
    assert!(matches!(w.put(b"", b"v"), Err(Error::EmptyKey)));
    assert!(matches!(
        w.put(b"k", &[0; 33]),
        Err(Error::ValueTooLong { len: 33, max: 32 })
    ));
    assert!(matches!(w.add(&[1; 17], 1), Err(Error::KeyTooLong { .. })));
    w.put(b"text", b"hello").unwrap();
    assert!(matches!(
        w.add(b"text", 1),
        Err(Error::NotACounter { len: 5 })
    ));
    assert_eq!(
        wb.get(b"text").expect("read").unwrap().version(),
        Version(1),
        "refused add changed nothing"
    );
    let _w2 = wb.writer().unwrap();
    assert!(matches!(wb.writer(), Err(Error::TooManyWriters { max: 2 })));
    assert_eq!(wb.stats().acked_ops, 1);
    assert!(wb.get(&[1; 17]).expect("read").is_none());
    assert_eq!(wb.stats().keys, 1);
    // Invalid configs are refused before anything starts.
    let bad = Config::default().ring_capacity(1000);
    assert!(matches!(
        WriteBehind::with_store(MemStore::new(), bad),
        Err(Error::Config(_))
    ));
    let bad = Config::default().batch_bytes_max(64);
    assert!(matches!(
        WriteBehind::with_store(MemStore::new(), bad),
        Err(Error::Config(_))
    ));
}

/// G9: the index bound: a new key beyond keys_max is refused, existing keys
/// still update.
/// A store that recovers a record with version 0 (it did not keep the
/// version the cache gave it) is refused with a typed error, with or
/// without a reader, and nothing opens on it; before, the record was
/// dropped silently.
#[test]
fn g9_a_store_that_recovers_version_0_is_refused_with_a_typed_error() {
    use std::sync::Mutex;
    use writebehind::MemStoreData;
    for reads in [true, false] {
        let data = Arc::new(Mutex::new(MemStoreData::default()));
        data.lock()
            .unwrap()
            .records
            .insert(b"player:1".to_vec(), (Version(0), Some(b"x=1".to_vec())));
        let store = MemStore::with_data(Arc::clone(&data));
        let store = if reads { store } else { store.without_reads() };
        match WriteBehind::with_store(store, small_config()) {
            Err(Error::StoreBug(m)) => assert!(m.contains("version 0"), "{m}"),
            Err(other) => panic!("reads {reads}: expected StoreBug, got {other}"),
            Ok(_) => panic!("reads {reads}: a version-0 record was accepted"),
        }
    }
}

#[test]
fn g9_index_full_is_a_typed_error() {
    let config = small_config().keys_max(10).dirty_keys_max(10);
    let wb = WriteBehind::with_store(MemStore::new(), config).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..10 {
        w.put(&key(i), b"v").unwrap();
    }
    assert!(matches!(
        w.put(&key(10), b"v"),
        Err(Error::IndexFull { max: 10 })
    ));
    assert!(wb.get(&key(10)).expect("read").is_none());
    w.put(&key(3), b"again").unwrap();
    assert_eq!(&wb.get(&key(3)).expect("read").unwrap()[..], b"again");
}

/// Deletes: a deleted key reads as absent, its tombstone reaches the store,
/// and a later put continues its versions.
#[test]
fn deletes_are_versioned_tombstones() {
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(store, small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    assert!(
        !w.delete(b"never").unwrap(),
        "deleting an absent key changes nothing"
    );
    w.put(b"k", b"v1").unwrap();
    assert!(w.delete(b"k").unwrap());
    assert!(wb.get(b"k").expect("read").is_none());
    assert_eq!(wb.version(b"k").expect("read"), Some(Version(2)));
    wb.sync().unwrap();
    assert_eq!(store_state(&data)[&b"k"[..]], (Version(2), None));
    assert_eq!(w.put(b"k", b"v3").unwrap(), Version(3));
    assert!(!store_state(&data).contains_key(&b"never"[..]));
}

/// Reopening on the same data recovers values, tombstones and versions, and
/// versions continue from there.
#[test]
fn reopen_recovers_and_versions_continue() {
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(store, small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..100u64 {
        for _ in 0..3 {
            w.add(&key(i), 1).unwrap();
        }
    }
    w.delete(&key(7)).unwrap();
    drop(w);
    wb.close().unwrap();

    let wb =
        WriteBehind::with_store(MemStore::with_data(Arc::clone(&data)), small_config()).unwrap();
    assert_eq!(
        wb.get(&key(1)).expect("read").unwrap().as_counter(),
        Some(3)
    );
    assert_eq!(
        wb.get(&key(1)).expect("read").unwrap().version(),
        Version(3)
    );
    assert!(wb.get(&key(7)).expect("read").is_none());
    let mut w = wb.writer().unwrap();
    assert_eq!(w.add(&key(1), 1).unwrap(), 4);
    assert_eq!(w.last_version(), Version(4));
    assert_eq!(w.put(&key(7), b"back").unwrap(), Version(5));
    drop(w);
    wb.close().unwrap();
    assert_no_regressions(&data);
}

/// A dropped writer's slot is reused after the flusher drains its ring, and
/// nothing it wrote is lost.
#[test]
fn writer_slots_are_reused() {
    let store = MemStore::new();
    let data = store.data();
    let config = small_config().writers_max(1);
    let wb = WriteBehind::with_store(store, config).unwrap();
    for round in 0..50u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut w = loop {
            match wb.writer() {
                Ok(w) => break w,
                Err(Error::TooManyWriters { .. }) if Instant::now() < deadline => {
                    thread::yield_now()
                }
                Err(e) => panic!("{e}"),
            }
        };
        w.put(&key(round), b"x").unwrap();
    }
    wb.sync().unwrap();
    assert_eq!(data.lock().unwrap().records.len(), 50);
}

/// Values of every size class round-trip through the cache and the store.
#[test]
fn values_of_all_sizes_round_trip() {
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(store, small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    let sizes = [0usize, 1, 8, 63, 64, 65, 200, 4096];
    for (i, &n) in sizes.iter().enumerate() {
        let v: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        w.put(&key(i as u64), &v).unwrap();
        assert_eq!(&wb.get(&key(i as u64)).expect("read").unwrap()[..], &v[..]);
    }
    wb.sync().unwrap();
    let state = store_state(&data);
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(state[&key(i as u64)].1.as_ref().unwrap().len(), n);
    }
}

/// G6: a store that asks for fewer batches in flight than the config allows
/// (`StoreInfo::in_flight_max`, as the `Blocking` adapter does) never gets more:
/// not for regular batches, sync points under `Durability::Deferred`, or retries
/// of failed batches; and every sync barrier still completes.
#[test]
fn g6_the_store_can_lower_the_in_flight_bound() {
    use std::sync::atomic::AtomicUsize;
    use writebehind::{
        Batch, Compaction, Completion, Durability, RecoveryReport, Store, StoreInfo,
    };

    #[derive(Debug)]
    struct OneAtATime<S> {
        inner: S,
        max_seen: Arc<AtomicUsize>,
    }
    impl<S: Store> Store for OneAtATime<S> {
        fn info(&self) -> StoreInfo {
            StoreInfo::new("one-at-a-time").with_in_flight_max(1)
        }
        fn recover(
            &mut self,
            visit: &mut dyn FnMut(writebehind::RecordRef<'_>),
        ) -> Result<RecoveryReport, Error> {
            self.inner.recover(visit)
        }
        fn submit(&mut self, batch: Batch) {
            self.max_seen
                .fetch_max(self.inner.in_flight() + 1, Ordering::Relaxed);
            self.inner.submit(batch);
        }
        fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
            // Slow, so a flusher that ignored the bound would queue more.
            thread::sleep(Duration::from_micros(300));
            self.inner.poll(out, timeout);
        }
        fn in_flight(&self) -> usize {
            self.inner.in_flight()
        }
        fn compaction(&mut self) -> Option<&mut dyn Compaction> {
            self.inner.compaction()
        }
        fn reader(&mut self) -> Option<std::sync::Arc<dyn writebehind::StoreReader>> {
            self.inner.reader()
        }
        fn close(&mut self) -> Result<(), writebehind::StoreError> {
            self.inner.close()
        }
    }

    for durability in [Durability::Batch, Durability::Deferred] {
        let max_seen = Arc::new(AtomicUsize::new(0));
        let mem = MemStore::new();
        let data = mem.data();
        let plan = FaultPlan::new();
        let config = small_config()
            .batches_in_flight_max(8)
            .batch_ops_max(16)
            .durability(durability)
            .retry_backoff_min(Duration::from_micros(100))
            .retry_backoff_max(Duration::from_millis(2));
        let store = OneAtATime {
            inner: Faulty::new(mem, plan.clone()),
            max_seen: Arc::clone(&max_seen),
        };
        let wb = WriteBehind::with_store(store, config).unwrap();
        let mut w = wb.writer().unwrap();
        for i in 0..2_000 {
            if i == 500 {
                plan.fail_next(3, StoreErrorKind::Write);
            }
            w.put(&key(i), b"v").unwrap();
            if i % 400 == 399 {
                wb.sync().unwrap();
            }
        }
        wb.sync().unwrap();
        let stats = wb.stats();
        assert!(stats.retries >= 3, "{durability:?}: {stats:?}");
        assert_eq!(max_seen.load(Ordering::Relaxed), 1, "{durability:?}");
        assert_eq!(store_state(&data).len(), 2_000);
        drop(w);
        wb.close().unwrap();
    }
}

/// G4/G6 under `Durability::Deferred`: a store that holds every batch until an
/// fdatasync covers it, and syncs only when a batch asks (no idle sync of its
/// own), still gets its batches completed, because the cache asks on the
/// batch that fills its in-flight window. Without that, the window fills
/// with held batches, no sync point fits, and `sync()` never returns.
#[test]
fn g4_the_batch_that_fills_the_window_asks_for_an_fdatasync() {
    use std::sync::Mutex;
    use writebehind::{
        Batch, Compaction, Completion, Durability, RecoveryReport, Store, StoreInfo,
    };

    #[derive(Debug)]
    struct HoldsUntilSync {
        held: Vec<Batch>,
        done: Vec<Completion>,
        /// (records, sync) of every batch submitted.
        seen: Arc<Mutex<Vec<(usize, bool)>>>,
    }
    impl Store for HoldsUntilSync {
        fn info(&self) -> StoreInfo {
            StoreInfo::new("holds-until-sync")
        }
        fn recover(
            &mut self,
            _: &mut dyn FnMut(writebehind::RecordRef<'_>),
        ) -> Result<RecoveryReport, Error> {
            Ok(RecoveryReport::default())
        }
        fn submit(&mut self, batch: Batch) {
            self.seen.lock().unwrap().push((batch.records, batch.sync));
            let sync = batch.sync;
            self.held.push(batch);
            if sync {
                for batch in self.held.drain(..) {
                    self.done.push(Completion {
                        batch,
                        result: Ok(()),
                    });
                }
            }
        }
        fn poll(&mut self, out: &mut Vec<Completion>, _: Duration) {
            out.append(&mut self.done);
        }
        fn in_flight(&self) -> usize {
            self.held.len() + self.done.len()
        }
        fn compaction(&mut self) -> Option<&mut dyn Compaction> {
            None
        }
        fn reader(&mut self) -> Option<std::sync::Arc<dyn writebehind::StoreReader>> {
            None
        }
        fn close(&mut self) -> Result<(), writebehind::StoreError> {
            Ok(())
        }
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = HoldsUntilSync {
        held: Vec::new(),
        done: Vec::new(),
        seen: Arc::clone(&seen),
    };
    let config = small_config()
        .durability(Durability::Deferred)
        .batches_in_flight_max(4)
        .batch_ops_max(16);
    let wb = WriteBehind::with_store(store, config).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..2_000u32 {
        w.put(&i.to_le_bytes(), b"v").unwrap();
    }
    wb.sync_timeout(Duration::from_secs(20)).unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|&(records, sync)| records > 0 && sync),
        "no batch of records asked for an fdatasync: {seen:?}"
    );
    drop(w);
    wb.close().unwrap();
}

/// G8 with a limit: a store that never comes back is given up after
/// `retries_max` retries; the hook runs once with what is only in memory,
/// and from then on everything is refused with the same typed error,
/// while reads still answer.
#[test]
fn g8_a_store_that_never_comes_back_is_given_up_after_retries_max() {
    let plan = FaultPlan::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    // One batch in flight: the failures come one completion at a time.
    let config = small_config()
        .batches_in_flight_max(1)
        .retries_max(Some(5))
        .on_give_up({
            let seen = Arc::clone(&seen);
            move |g| seen.lock().unwrap().push(g.clone())
        });
    let wb = WriteBehind::with_store(Faulty::new(MemStore::new(), plan.clone()), config).unwrap();
    plan.fail_next(u64::MAX, StoreErrorKind::Write);
    let mut w = wb.writer().unwrap();
    for i in 0..100 {
        w.put(&key(i), b"v").unwrap();
    }
    let refused = wb.sync();
    assert!(
        matches!(&refused, Err(Error::StoreGaveUp { failures: 6, .. })),
        "{refused:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the hook runs once");
    assert_eq!(seen[0].failures, 6);
    assert_eq!(seen[0].keys_not_durable, 100);
    assert_eq!(seen[0].last_error.kind, StoreErrorKind::Write);
    assert_eq!(plan.submitted(), 6, "the first attempt and 5 retries");
    assert!(matches!(
        w.put(b"late", b"x"),
        Err(Error::StoreGaveUp { .. })
    ));
    assert!(matches!(
        wb.put(b"late", b"x"),
        Err(Error::StoreGaveUp { .. })
    ));
    assert!(matches!(wb.writer(), Err(Error::StoreGaveUp { .. })));
    assert_eq!(
        wb.get(&key(7)).unwrap().as_deref(),
        Some(&b"v"[..]),
        "reads still answer"
    );
    assert!(!wb.stats().flusher_alive);
    drop(w);
    let first = wb.close().map_err(|e| e.to_string());
    assert!(
        first.as_ref().is_err_and(|e| e.contains("gave up")),
        "{first:?}"
    );
    assert_eq!(wb.close().map_err(|e| e.to_string()), first);
}
