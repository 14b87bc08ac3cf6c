//! G11 at scale: a store far larger than the cache's memory budget. Every
//! key is written through the budget, the cache is closed and reopened
//! (which loads no value: nothing is resident after it), and every key
//! reads back through at its last value and version.
//!
//! `WB_LARGE_KEYS` and `WB_LARGE_BUDGET_MIB` scale it (default 1,000,000
//! keys through 8 MiB, about 10 s; the acceptance run is 10,000,000 keys
//! through 64 MiB). Prints the open's time and memory.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Instant;

use writebehind::{Config, Version, WriteBehind};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key(i: u64) -> [u8; 16] {
    let mut k = *b"k:00000000000000";
    k[2..].copy_from_slice(format!("{i:014}").as_bytes());
    k
}

fn value(i: u64) -> [u8; 64] {
    let mut v = [b'.'; 64];
    v[..16].copy_from_slice(&i.to_le_bytes().repeat(2));
    v
}

#[test]
fn g11_a_store_larger_than_memory_reads_back_whole_after_a_reopen() {
    let keys = env("WB_LARGE_KEYS", 1_000_000);
    let budget = env("WB_LARGE_BUDGET_MIB", 8) << 20;
    let config = || {
        Config::default()
            .memory_bytes(budget)
            .keys_max(1 << 22)
            .dirty_keys_max((budget / 320) as usize)
    };
    let dir = tempfile::tempdir().unwrap();
    let wb = WriteBehind::open(dir.path(), config()).unwrap();
    let mut w = wb.writer().unwrap();
    let mut versions = Vec::with_capacity(keys as usize);
    let written = Instant::now();
    for i in 0..keys {
        versions.push(w.put(&key(i), &value(i)).unwrap());
    }
    drop(w);
    let stats = wb.stats();
    wb.close().unwrap();
    let write_s = written.elapsed().as_secs_f64();
    assert!(stats.evictions > 0, "{stats:?}");

    let (rss_before, opened) = (common::rss_bytes(), Instant::now());
    let wb = WriteBehind::open(dir.path(), config()).unwrap();
    let (open_s, rss_open) = (opened.elapsed().as_secs_f64(), common::rss_bytes());
    assert_eq!(wb.stats().keys, 0, "opening loads no value");
    let read = Instant::now();
    // Each read's latency, in ns (closed loop, one reader thread).
    let mut latency = Vec::with_capacity(keys as usize);
    for i in 0..keys {
        let t = Instant::now();
        let got = wb.get(&key(i)).unwrap();
        latency.push(t.elapsed().as_nanos() as u64);
        let v = got.unwrap_or_else(|| panic!("key {i} lost"));
        assert_eq!(&v[..], &value(i)[..], "key {i}");
        assert_eq!(v.version(), versions[i as usize], "key {i}");
        assert!(v.version() > Version(0));
    }
    let read_s = read.elapsed().as_secs_f64();
    latency.sort_unstable();
    let pct = |q: f64| latency[((latency.len() - 1) as f64 * q) as usize];
    let stats = wb.stats();
    assert_eq!(stats.loads, keys, "every key read through once");
    assert!(stats.resident_bytes <= budget + budget / 4, "{stats:?}");
    eprintln!(
        "larger than memory: {keys} keys through {} MiB: written in {write_s:.1} s; reopened in {open_s:.2} s, RSS +{} MiB at open ({} MiB in all); all read back through in {read_s:.1} s ({:.2} us each; miss latency p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns); {} MiB stored",
        budget >> 20,
        rss_open.saturating_sub(rss_before) >> 20,
        rss_open >> 20,
        read_s * 1e6 / keys as f64,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        stats.stored_bytes >> 20
    );
    wb.close().unwrap();
}
