//! Overload: a store that takes 1,000 batches per second under an offered
//! load of millions of updates per second (G6): `Block` writers are held back
//! without deadlock, `Fail` writers get `Full`, the bounds hold, and
//! everything acknowledged is durable after `sync()`.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_no_regressions, store_state};
use writebehind::testing::Throttled;
use writebehind::{Backpressure, Config, Error, MemStore, WriteBehind};

/// Peak resident set size of this process, bytes (0 if unknown).
fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage fills the struct we pass and touches nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        usage.ru_maxrss as u64 * 1024
    } else {
        0
    }
}

#[test]
fn a_throttled_store_under_overload_holds_its_bounds_and_loses_nothing() {
    for policy in [Backpressure::Block, Backpressure::Fail] {
        let store = MemStore::new();
        let data = store.data();
        let config = Config::default()
            .ring_capacity(1 << 10)
            .dirty_keys_max(4_096)
            .batch_ops_max(512)
            .batches_in_flight_max(2)
            .keys_max(1 << 19)
            .backpressure(policy);
        let wb = Arc::new(WriteBehind::with_store(Throttled::new(store, 1_000), config).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..2u64)
            .map(|t| {
                let (wb, stop) = (Arc::clone(&wb), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut w = wb.writer().unwrap();
                    let (mut acked, mut refused, mut i) = (0u64, 0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("w{t}-{:06}", i % 200_000);
                        match w.put(key.as_bytes(), &i.to_le_bytes()) {
                            Ok(_) => acked += 1,
                            Err(Error::Full) => refused += 1,
                            Err(e) => panic!("{e}"),
                        }
                        i += 1;
                    }
                    (acked, refused)
                })
            })
            .collect();
        let start = Instant::now();
        let mut dirty_max = 0;
        while start.elapsed() < Duration::from_millis(1500) {
            dirty_max = dirty_max.max(wb.stats().dirty_keys);
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let results: Vec<(u64, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let stats = wb.stats();
        let acked: u64 = results.iter().map(|r| r.0).sum();
        let refused: u64 = results.iter().map(|r| r.1).sum();
        assert!(
            dirty_max <= 4_096,
            "{policy:?}: dirty keys {dirty_max} over the bound"
        );
        assert!(
            stats.ring_full_events > 0,
            "{policy:?}: the store must push back"
        );
        match policy {
            Backpressure::Fail => assert!(refused > 0, "Fail writers must be refused"),
            Backpressure::Block => assert_eq!(refused, 0, "Block writers wait, never fail"),
        }
        assert_eq!(stats.acked_ops, acked);
        let drain = Instant::now();
        wb.sync().unwrap();
        let drain = drain.elapsed();
        // Everything acknowledged is durable: the store equals the cache.
        let state = store_state(&data);
        for t in 0..2u64 {
            for i in 0..200_000u64 {
                let key = format!("w{t}-{i:06}");
                let cached = wb
                    .get(key.as_bytes())
                    .expect("read")
                    .map(|v| (v.version(), v.to_vec()));
                let stored = state
                    .get(key.as_bytes())
                    .map(|(ver, v)| (*ver, v.clone().unwrap_or_default()));
                assert_eq!(stored, cached, "{policy:?}: {key}");
            }
        }
        assert_no_regressions(&data);
        let wb = Arc::into_inner(wb).unwrap();
        wb.close().unwrap();
        eprintln!(
            "overload {policy:?}: offered {:.0}/s, acked {acked} in 1.5 s ({:.0}/s), {refused} refused, {} store batches, max dirty {dirty_max}, drained by sync() in {drain:?}, peak RSS {:.1} MB",
            (acked + refused) as f64 / 1.5,
            acked as f64 / 1.5,
            stats.batches,
            peak_rss_bytes() as f64 / 1e6
        );
    }
}
