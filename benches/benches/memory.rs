//! Bytes of memory per resident key: writebehind against the maps a user
//! would otherwise keep the latest values in, each contender in a child
//! process of its own so that one's allocations never count against another.
//!
//! `cargo bench -p writebehind-benches --bench memory [-- --quick]`
//!
//! For each key count (100K and 1M; `--quick`: 100K) and each contender, a
//! child (this binary again, with `--child NAME KEYS`) reads its `VmRSS`,
//! inserts the keys (16-byte keys, 64-byte values), lets the cache's flusher
//! drain them (`sync()`), reads `VmRSS` again and prints the difference per
//! key. Contenders run interleaved in rounds (A B C, A B C, ...); the
//! report gives each one's median over the rounds and the spread (min..max).
//! RSS is what the kernel has mapped for the process, so it counts the
//! index's touched pages and the allocator's slack, not only live bytes.
//!
//! Contenders:
//! - `writebehind default`: `WriteBehind` over a store that keeps nothing,
//!   `Config::default()`;
//! - `hand-built`: the dashmap + rtrb write-behind a competent user would
//!   build (`HandBuiltWb`: versions and values in a `DashMap` with FxHash,
//!   one ring of 2^14 keys per writer like our default, a coalescing
//!   flusher), after its `sync()`; the ratios are against it;
//! - `dashmap+fx`: the bare `DashMap<Vec<u8>, Vec<u8>>` with FxHash, no
//!   versions, rings or flusher (a floor, not a write-behind);
//! - `mutex+hashmap`: `Mutex<HashMap<Vec<u8>, Vec<u8>>>`, the naive map.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;
use writebehind::{Config, WriteBehind};
use writebehind_workload::{rss_bytes, HandBuiltWb, NullStore};

const CONTENDERS: [&str; 4] = [
    "writebehind default",
    "hand-built",
    "dashmap+fx",
    "mutex+hashmap",
];
/// The contender the ratios are against.
const AGAINST: usize = 1;
const VALUE_BYTES: usize = 64;

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:012}").into_bytes()
}

/// Fills one contender with `keys` keys; returns the RSS it added, bytes.
fn fill(name: &str, keys: usize) -> u64 {
    let value = [7u8; VALUE_BYTES];
    let before = rss_bytes();
    // Each branch keeps its structure alive until after the second reading.
    match name {
        "writebehind default" => {
            let config = Config::default().value_bytes_max(VALUE_BYTES);
            let wb = WriteBehind::with_store(NullStore::default(), config).expect("open");
            let mut w = wb.writer().expect("writer");
            for i in 0..keys {
                w.put(&key(i), &value).expect("put");
            }
            wb.sync().expect("sync");
            let after = rss_bytes();
            drop(w);
            wb.close().expect("close");
            after.saturating_sub(before)
        }
        "hand-built" => {
            let wb = HandBuiltWb::new(Config::default().ring_capacity);
            let mut w = wb.writer();
            for i in 0..keys {
                w.put(&key(i), &value);
            }
            wb.sync();
            let after = rss_bytes();
            drop(w);
            drop(wb);
            after.saturating_sub(before)
        }
        "dashmap+fx" => {
            let map: DashMap<Vec<u8>, Vec<u8>, FxBuildHasher> = DashMap::default();
            for i in 0..keys {
                map.insert(key(i), value.to_vec());
            }
            let after = rss_bytes();
            drop(map);
            after.saturating_sub(before)
        }
        "mutex+hashmap" => {
            let map = Mutex::new(HashMap::new());
            for i in 0..keys {
                map.lock().expect("lock").insert(key(i), value.to_vec());
            }
            let after = rss_bytes();
            drop(map);
            after.saturating_sub(before)
        }
        other => panic!("unknown contender {other:?}"),
    }
}

/// Runs one contender in a child process; returns its bytes per key.
fn measure(name: &str, keys: usize) -> f64 {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args(["--child", name, &keys.to_string()])
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed: {text} {:?}",
        out.stderr
    );
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {text}"))
}

fn median_and_spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let keys: usize = args[i + 2].parse().expect("key count");
        println!("{}", fill(&args[i + 1], keys) as f64 / keys as f64);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (counts, rounds): (&[usize], usize) = if quick {
        (&[100_000], 1)
    } else {
        (&[100_000, 1_000_000], 3)
    };
    println!("bytes of RSS per resident key, 16-byte keys, {VALUE_BYTES}-byte values; median over {rounds} interleaved rounds (min..max); one child process per measurement, nothing else running in it");
    for &keys in counts {
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
        for _ in 0..rounds {
            for (c, name) in CONTENDERS.iter().enumerate() {
                results[c].push(measure(name, keys));
            }
        }
        let against = median_and_spread(results[AGAINST].clone()).0;
        for (name, xs) in CONTENDERS.iter().zip(results) {
            let (median, min, max) = median_and_spread(xs);
            println!(
                "{keys:>9} keys  {name:<20} {median:>8.0} B/key ({min:.0}..{max:.0})  {:>5.2}x {}",
                median / against,
                CONTENDERS[AGAINST]
            );
        }
    }
}
