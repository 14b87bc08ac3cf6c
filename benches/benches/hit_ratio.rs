//! Hit ratio of the cache's eviction (CLOCK with a use mark per entry)
//! against moka (TinyLFU admission, LRU eviction), on the same zipf trace of
//! reads that load on a miss, at the same number of resident entries: the
//! entries writebehind's memory budget holds at steady state.
//!
//! `cargo bench -p writebehind-benches --bench hit_ratio`: 1M keys (16-byte
//! keys, 64-byte values) in a `MemStore`, a zipf(0.99) trace of 4M reads
//! (the first 1M warm the caches up, the last 3M are counted), budgets of
//! 16 and 64 MiB; 3 rounds, contenders interleaved. Deterministic up to
//! moka's own hashing.

use std::sync::{Arc, Mutex};

use writebehind::{Config, MemStore, MemStoreData, Version, WriteBehind};
use writebehind_workload::{Distribution, Workload};

const KEYS: u64 = 1_000_000;
const TRACE: usize = 1 << 22;
const WARM: usize = 1 << 20;

fn store(workload: &Workload) -> Arc<Mutex<MemStoreData>> {
    let data = Arc::new(Mutex::new(MemStoreData::default()));
    {
        let mut d = data.lock().expect("data");
        for k in &workload.keys {
            d.records
                .insert(k.clone(), (Version(1), Some(workload.value.clone())));
        }
    }
    data
}

/// writebehind over the store with `budget` bytes: (hit ratio over the
/// counted reads, entries resident at the end).
fn writebehind(workload: &Workload, data: &Arc<Mutex<MemStoreData>>, budget: u64) -> (f64, u64) {
    let config = Config::default()
        .memory_bytes(budget)
        .keys_max(1 << 21)
        .dirty_keys_max((budget / 320) as usize);
    let wb = WriteBehind::with_store(MemStore::with_data(Arc::clone(data)), config).expect("open");
    for pos in 0..WARM {
        wb.get(workload.key(pos)).expect("get");
    }
    let misses = wb.stats().read_misses;
    for pos in WARM..TRACE {
        wb.get(workload.key(pos)).expect("get");
    }
    let stats = wb.stats();
    let counted = (TRACE - WARM) as f64;
    let hit = 1.0 - (stats.read_misses - misses) as f64 / counted;
    let resident = stats.keys as u64;
    wb.close().expect("close");
    (hit, resident)
}

/// moka with room for `entries`, loading from the store on a miss.
fn moka(workload: &Workload, data: &Arc<Mutex<MemStoreData>>, entries: u64) -> f64 {
    let cache: moka::sync::Cache<Vec<u8>, Vec<u8>> = moka::sync::Cache::new(entries);
    let mut misses = 0u64;
    for pos in 0..TRACE {
        let key = workload.key(pos);
        if cache.get(key).is_none() {
            if pos >= WARM {
                misses += 1;
            }
            let value = data
                .lock()
                .expect("data")
                .records
                .get(key)
                .and_then(|(_, v)| v.clone())
                .unwrap_or_default();
            cache.insert(key.to_vec(), value);
        }
    }
    1.0 - misses as f64 / (TRACE - WARM) as f64
}

fn main() {
    let workload = Workload::new(KEYS, 16, 64, Distribution::Zipf(0.99), TRACE, 0x5EED);
    let data = store(&workload);
    println!(
        "hit ratio, zipf(0.99) over {KEYS} keys, {} reads counted after {WARM} of warm-up",
        TRACE - WARM
    );
    for budget_mib in [16u64, 64] {
        for round in 1..=3 {
            let (ours, resident) = writebehind(&workload, &data, budget_mib << 20);
            let theirs = moka(&workload, &data, resident);
            println!(
                "budget {budget_mib} MiB, round {round}: writebehind {ours:.4} with {resident} entries resident; moka {theirs:.4} with room for {resident}; ratio {:.3}",
                ours / theirs
            );
        }
    }
}
