//! Hit ratio of the cache's eviction (CLOCK with a use mark per entry)
//! against moka (TinyLFU admission, LRU eviction), on the same zipf trace of
//! reads that load on a miss, at the same memory: moka gets room for as
//! many entries as fit, at its own measured RSS per entry, in the RSS that
//! writebehind added at the end of its run. moka at the same number of
//! entries (what writebehind's budget held) is printed beside it, which
//! compares the policies alone.
//!
//! `cargo bench -p writebehind-benches --bench hit_ratio`: 1M keys (16-byte
//! keys, 64-byte values) in a `MemStore`, a zipf(0.99) trace of 4M reads
//! (the first 1M warm the caches up, the last 3M are counted), budgets of
//! 16 and 64 MiB; 3 rounds, contenders interleaved, each run in a child
//! process of its own (so that one's memory never counts against
//! another's). Deterministic up to moka's own hashing.

use std::process::Command;
use std::sync::{Arc, Mutex};

use writebehind::{Config, MemStore, MemStoreData, Version, WriteBehind};
use writebehind_workload::{rss_bytes, Distribution, Workload};

const MIB: f64 = (1u64 << 20) as f64;

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
/// counted reads, entries resident at the end, RSS at the end).
fn writebehind(
    workload: &Workload,
    data: &Arc<Mutex<MemStoreData>>,
    budget: u64,
) -> (f64, u64, u64) {
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
    let rss = rss_bytes();
    wb.close().expect("close");
    (hit, resident, rss)
}

/// moka with room for `entries`, loading from the store on a miss: (hit
/// ratio over the counted reads, RSS at the end).
fn moka(workload: &Workload, data: &Arc<Mutex<MemStoreData>>, entries: u64) -> (f64, u64) {
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
    cache.run_pending_tasks();
    (1.0 - misses as f64 / (TRACE - WARM) as f64, rss_bytes())
}

/// Runs this binary again as a child doing one measurement (`args`);
/// returns the numbers it printed.
fn child(args: &[String]) -> Vec<f64> {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?}: {text} {:?}", out.stderr);
    text.split_whitespace()
        .map(|x| x.parse().unwrap_or_else(|_| panic!("{args:?}: {text}")))
        .collect()
}

/// moka's RSS per entry, bytes: `entries` of the trace's keys and values
/// inserted into a moka that holds them all.
fn moka_bytes_per_entry(workload: &Workload, entries: u64) -> f64 {
    let before = rss_bytes();
    let cache: moka::sync::Cache<Vec<u8>, Vec<u8>> = moka::sync::Cache::new(entries);
    for k in workload.keys.iter().take(entries as usize) {
        cache.insert(k.clone(), workload.value.clone());
    }
    cache.run_pending_tasks();
    let after = rss_bytes();
    drop(cache);
    after.saturating_sub(before) as f64 / entries as f64
}

/// One measurement in this (child) process; prints its numbers.
fn run_child(args: &[String]) {
    let n: u64 = args[1].parse().expect("a number");
    let workload = Workload::new(KEYS, 16, 64, Distribution::Zipf(0.99), TRACE, 0x5EED);
    let data = store(&workload);
    match args[0].as_str() {
        "writebehind" => {
            let before = rss_bytes();
            let (hit, resident, after) = writebehind(&workload, &data, n);
            println!("{hit} {resident} {}", after.saturating_sub(before));
        }
        "moka" => {
            let before = rss_bytes();
            let (hit, after) = moka(&workload, &data, n);
            println!("{hit} {}", after.saturating_sub(before));
        }
        "moka-size" => println!("{}", moka_bytes_per_entry(&workload, n)),
        other => panic!("unknown child {other:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        run_child(&args[i + 1..]);
        return;
    }
    println!(
        "hit ratio, zipf(0.99) over {KEYS} keys (16-byte keys, 64-byte values), {} reads counted after {WARM} of warm-up; \
         each run in a child process of its own; memory is the RSS the cache added (2 vCPU, one busy thread)",
        TRACE - WARM
    );
    for budget_mib in [16u64, 64] {
        for round in 1..=3 {
            let ours = child(&["writebehind".into(), (budget_mib << 20).to_string()]);
            let (hit, resident, rss) = (ours[0], ours[1] as u64, ours[2]);
            // moka at the same entries, and at the same memory (its RSS
            // per entry measured at that size, room for what fits in ours).
            let same_entries = child(&["moka".into(), resident.to_string()]);
            let per_entry = child(&["moka-size".into(), resident.to_string()])[0];
            let fits = (rss / per_entry.max(1.0)) as u64;
            let same_memory = child(&["moka".into(), fits.to_string()]);
            println!(
                "budget {budget_mib} MiB, round {round}: writebehind {hit:.4} ({resident} entries, {:.1} MiB); \
                 moka at the same memory {:.4} ({fits} entries at {per_entry:.0} B each, {:.1} MiB), ratio {:.3}; \
                 moka at the same entries {:.4} ({:.1} MiB), ratio {:.3}",
                rss / MIB,
                same_memory[0],
                same_memory[1] / MIB,
                hit / same_memory[0],
                same_entries[0],
                same_entries[1] / MIB,
                hit / same_entries[0]
            );
        }
    }
}
