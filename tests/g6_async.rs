//! The async way in (G4, G6, G7 for async callers): `sync_async` and
//! `close_async` complete when the flusher says so, `put_async` awaits a full
//! ring without holding its thread, and many tasks write through the
//! shared entry without a `Writer` each.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{small_config, store_state};
use writebehind::testing::{block_on, FaultPlan, Faulty, Throttled};
use writebehind::{Backpressure, Config, Error, MemStore, StoreErrorKind, WriteBehind};

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// A config whose rings fill as soon as the store stops completing.
fn tight_config() -> Config {
    small_config()
        .ring_capacity(2)
        .dirty_keys_max(4)
        .batch_ops_max(2)
        .batches_in_flight_max(1)
}

/// A cache over a `MemStore` behind a fault plan, the store's records (to
/// check), and a current-thread runtime with timers.
type FaultyCache = (
    WriteBehind,
    FaultPlan,
    Arc<std::sync::Mutex<writebehind::MemStoreData>>,
    tokio::runtime::Runtime,
);

/// [`FaultyCache`] for `config`. One runtime thread, so a task that parked
/// it would stop every other task.
fn faulty_cache(config: Config) -> FaultyCache {
    let plan = FaultPlan::new();
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    (wb, plan, data, rt)
}

#[test]
fn g4_sync_async_completes_once_the_barrier_is_durable() {
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(Throttled::new(store, 200), small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    let mut versions = Vec::new();
    for i in 0..2_000 {
        versions.push(w.put(&key(i), b"v").unwrap());
    }
    block_on(wb.sync_async()).unwrap();
    let state = store_state(&data);
    for (i, v) in versions.iter().enumerate() {
        assert_eq!(state.get(&key(i as u64)).map(|s| s.0), Some(*v));
    }
    drop(w);
    block_on(wb.close_async()).unwrap();
    assert!(matches!(block_on(wb.sync_async()), Err(Error::Closed)));
}

#[test]
fn g4_sync_async_waits_out_a_stalled_store_without_a_thread() {
    let (wb, plan, _, rt) = faulty_cache(small_config());
    wb.put(b"k", b"v").unwrap();
    plan.stall_for(Duration::from_millis(300));
    wb.put(b"k", b"w").unwrap();
    rt.block_on(async {
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let short = tokio::time::timeout(Duration::from_millis(50), wb.sync_async()).await;
        assert!(
            short.is_err(),
            "the barrier cannot pass while the store stalls"
        );
        let start = Instant::now();
        wb.sync_async().await.unwrap();
        // The one thread kept running the ticker while the barrier waited.
        let ran = ticks.load(Ordering::Relaxed);
        assert!(
            ran >= 10,
            "the ticker ran {ran} times in {:?}",
            start.elapsed()
        );
        ticker.abort();
    });
    assert_eq!(wb.get(b"k").unwrap().as_deref(), Some(&b"w"[..]));
    wb.close().unwrap();
}

/// Puts on one current-thread runtime while the store stalls: if a full
/// ring parked the thread, the ticker task could not run meanwhile.
#[test]
fn g6_put_async_awaits_a_full_ring_without_holding_the_thread() {
    let (wb, plan, data, rt) = faulty_cache(tight_config());
    plan.stall_for(Duration::from_millis(400));
    let ticks = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let ticker = tokio::spawn({
            let (ticks, done) = (Arc::clone(&ticks), Arc::clone(&done));
            async move {
                while !done.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let start = Instant::now();
        let mut w = wb.writer().unwrap();
        for i in 0..100 {
            w.put_async(&key(i), b"own").await.unwrap();
        }
        for i in 100..200 {
            wb.put_async(&key(i), b"shared").await.unwrap();
        }
        let took = start.elapsed();
        done.store(true, Ordering::Relaxed);
        ticker.await.unwrap();
        assert!(
            took >= Duration::from_millis(300),
            "the puts did not wait: {took:?}"
        );
        let ran = ticks.load(Ordering::Relaxed);
        assert!(
            ran >= 20,
            "the ticker ran {ran} times while the puts waited {took:?}"
        );
        assert!(wb.stats().ring_full_events > 0);
        wb.sync_async().await.unwrap();
    });
    let state = store_state(&data);
    assert_eq!(state.len(), 200);
    assert_eq!(state[&key(7)].1.as_deref(), Some(&b"own"[..]));
    assert_eq!(state[&key(107)].1.as_deref(), Some(&b"shared"[..]));
    wb.close().unwrap();
}

/// The futures can move to another thread (`tokio::spawn` needs it).
#[test]
fn g6_the_async_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let wb = WriteBehind::with_store(MemStore::new(), small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    send(&w.put_async(b"k", b"v"));
    send(&w.delete_async(b"k"));
    send(&w.add_async(b"n", 1));
    send(&wb.put_async(b"k", b"v"));
    send(&wb.sync_async());
    send(&wb.close_async());
    drop(w);
    wb.close().unwrap();
}

/// A `put_async` dropped while it waits for room applies nothing and
/// leaves the writer usable: the next one waits, and lands.
#[test]
fn g6_a_put_async_dropped_while_waiting_changes_nothing() {
    let (wb, plan, data, rt) = faulty_cache(tight_config());
    plan.stall_for(Duration::from_millis(300));
    let mut w = wb.writer().unwrap();
    rt.block_on(async {
        let mut gave_up = None;
        for i in 0..100 {
            let k = key(i);
            let put = w.put_async(&k, b"v");
            if tokio::time::timeout(Duration::from_millis(20), put)
                .await
                .is_err()
            {
                gave_up = Some(i);
                break;
            }
        }
        let i = gave_up.expect("a put waited for room while the store stalled");
        assert!(
            wb.get_resident(&key(i)).is_none(),
            "the dropped put applied nothing"
        );
        w.put_async(&key(i), b"again").await.unwrap();
        wb.sync_async().await.unwrap();
        assert_eq!(
            store_state(&data)[&key(i)].1.as_deref(),
            Some(&b"again"[..])
        );
    });
    drop(w);
    wb.close().unwrap();
}

#[test]
fn g6_put_async_under_fail_refuses_at_once() {
    let plan = FaultPlan::new();
    let config = tight_config().backpressure(Backpressure::Fail);
    let wb = WriteBehind::with_store(Faulty::new(MemStore::new(), plan.clone()), config).unwrap();
    plan.stall_for(Duration::from_millis(300));
    let mut w = wb.writer().unwrap();
    let refused = (0..100).find_map(|i| block_on(w.put_async(&key(i), b"v")).err());
    assert!(matches!(refused, Some(Error::Full)), "{refused:?}");
    drop(w);
    wb.close().unwrap();
}

/// 64 tasks on two runtime threads, no `Writer` of their own, then a
/// restart: every put and every add is there.
#[test]
fn g6_many_tasks_write_through_the_shared_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config().writers_max(4);
    let wb = Arc::new(WriteBehind::open(dir.path(), config.clone()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let wb = Arc::clone(&wb);
                tokio::spawn(async move {
                    for i in 0..500 {
                        let value = format!("{t}:{i}");
                        wb.put_async(&key(t * 1_000 + i), value.as_bytes()).await?;
                        wb.add_async(b"hits", 1).await?;
                        if i % 100 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    Ok::<(), Error>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        wb.sync_async().await.unwrap();
        assert!(
            wb.stats().writers <= 2,
            "the shared writers take at most half of writers_max (and one per core)"
        );
        wb.close_async().await.unwrap();
    });
    drop(wb);
    let wb = WriteBehind::open(dir.path(), config).unwrap();
    for t in 0..64 {
        for i in (0..500).step_by(37) {
            let got = wb.get(&key(t * 1_000 + i)).unwrap();
            assert_eq!(got.as_deref(), Some(format!("{t}:{i}").as_bytes()));
        }
    }
    let hits = wb.get(b"hits").unwrap().unwrap();
    assert_eq!(i64::from_le_bytes(hits[..8].try_into().unwrap()), 64 * 500);
    wb.close().unwrap();
}

#[test]
fn g7_close_async_from_many_tasks_and_a_thread_returns_one_outcome() {
    let store = MemStore::new();
    let data = store.data();
    let wb = Arc::new(WriteBehind::with_store(Throttled::new(store, 200), small_config()).unwrap());
    for i in 0..2_000 {
        wb.put(&key(i), b"v").unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let thread = {
        let wb = Arc::clone(&wb);
        std::thread::spawn(move || wb.close().map_err(|e| e.to_string()))
    };
    rt.block_on(async {
        let closers: Vec<_> = (0..8)
            .map(|_| {
                let wb = Arc::clone(&wb);
                tokio::spawn(async move { wb.close_async().await.map_err(|e| e.to_string()) })
            })
            .collect();
        for c in closers {
            assert_eq!(c.await.unwrap(), Ok(()));
        }
    });
    assert_eq!(thread.join().unwrap(), Ok(()));
    assert_eq!(store_state(&data).len(), 2_000, "close drained every put");
    assert!(matches!(wb.put(b"late", b"x"), Err(Error::Closed)));

    // A store that never comes back: every close, async or not, gets the
    // same error.
    let plan = FaultPlan::new();
    let config = small_config().close_timeout(Duration::from_millis(300));
    let wb = WriteBehind::with_store(Faulty::new(MemStore::new(), plan.clone()), config).unwrap();
    plan.fail_next(u64::MAX, StoreErrorKind::Write);
    wb.put(b"k", b"v").unwrap();
    let first = block_on(wb.close_async()).map_err(|e| e.to_string());
    assert!(first.is_err());
    assert_eq!(wb.close().map_err(|e| e.to_string()), first);
    assert_eq!(block_on(wb.close_async()).map_err(|e| e.to_string()), first);
}

#[test]
fn g7_a_close_async_dropped_midway_leaves_the_close_going() {
    let (wb, plan, data, rt) = faulty_cache(small_config());
    // Nothing completes for 300 ms: the close cannot finish within 1 ms.
    plan.stall_for(Duration::from_millis(300));
    for i in 0..1_000 {
        wb.put(&key(i), b"v").unwrap();
    }
    let early = rt
        .block_on(async { tokio::time::timeout(Duration::from_millis(1), wb.close_async()).await });
    assert!(early.is_err(), "the close could not finish in 1 ms");
    assert!(
        matches!(wb.put(b"late", b"x"), Err(Error::Closed)),
        "closing began"
    );
    wb.close().unwrap();
    assert_eq!(store_state(&data).len(), 1_000);
}
