//! Stress: two writers and the flusher, over a million mixed put/add/delete
//! on 1,000 hot keys. Each writer logs what it did (key, version, operation,
//! counter result); at the end the store must equal the cache, and both must
//! equal a replay of every acknowledged operation in version order.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use common::{assert_no_regressions, small_config, store_state};
use writebehind::testing::Throttled;
use writebehind::{Error, MemStore, Version, WriteBehind};

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>),
    Add { delta: i64, result: i64 },
    Delete,
}

/// xorshift64*: a deterministic generator for the op mix.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const KEYS: u64 = 1_000;
const OPS_PER_WRITER: u64 = 600_000;

fn key(i: u64) -> Vec<u8> {
    format!("hot-{i:04}").into_bytes()
}

fn run_writer(wb: &WriteBehind, seed: u64) -> Vec<(Vec<u8>, Version, Op)> {
    let mut w = wb.writer().expect("writer");
    let mut rng = Rng(seed);
    let mut log = Vec::with_capacity(OPS_PER_WRITER as usize);
    for _ in 0..OPS_PER_WRITER {
        let r = rng.next();
        let k = key(r % KEYS);
        match (r >> 32) % 10 {
            0..=3 => {
                // Mostly counter-shaped values; some 12-byte ones so that
                // adds meet non-counters too.
                let v = if (r >> 40) % 8 == 0 {
                    vec![(r >> 48) as u8; 12]
                } else {
                    (r as i64 >> 8).to_le_bytes().to_vec()
                };
                let version = w.put(&k, &v).expect("put");
                log.push((k, version, Op::Put(v)));
            }
            4..=8 => {
                let delta = (r >> 50) as i64 - 4096;
                match w.add(&k, delta) {
                    Ok(result) => log.push((k, w.last_version(), Op::Add { delta, result })),
                    Err(Error::NotACounter { len: 12 }) | Err(Error::CounterOverflow { .. }) => {}
                    Err(e) => panic!("add: {e}"),
                }
            }
            _ => {
                if w.delete(&k).expect("delete") {
                    log.push((k, w.last_version(), Op::Delete));
                }
            }
        }
    }
    log
}

#[test]
fn two_writers_a_million_mixed_ops_replay_exactly() {
    let store = MemStore::new();
    let data = store.data();
    let config = small_config().ring_capacity(256).batch_ops_max(128);
    // A throttled store makes batches pile up and coalescing real.
    let wb = Arc::new(WriteBehind::with_store(Throttled::new(store, 5_000), config).expect("open"));
    let handles: Vec<_> = (0..2u64)
        .map(|t| {
            let wb = Arc::clone(&wb);
            thread::spawn(move || run_writer(&wb, 0x9E37_79B9 + t * 7919))
        })
        .collect();
    let mut all: Vec<(Vec<u8>, Version, Op)> = Vec::new();
    for h in handles {
        all.extend(h.join().expect("writer thread"));
    }
    assert!(
        all.len() >= 1_000_000,
        "only {} acknowledged ops",
        all.len()
    );

    // Replay every acknowledged op in version order, key by key. Versions of
    // a key must be contiguous while it has a value: each update replaced
    // the previous one. After a delete (or before the first write) the
    // next version may jump: the deleted key's entry may have been freed
    // once its tombstone was durable (G12), and a new entry starts above
    // the version floor (G2).
    all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut replay: HashMap<Vec<u8>, (Version, Option<Vec<u8>>)> = HashMap::new();
    for (k, version, op) in &all {
        let slot = replay.entry(k.clone()).or_insert((Version(0), None));
        if slot.1.is_some() {
            assert_eq!(
                version.0,
                slot.0 .0 + 1,
                "{k:?}: versions must be contiguous"
            );
        } else {
            assert!(*version > slot.0, "{k:?}: {version:?} after {:?}", slot.0);
        }
        let value = match op {
            Op::Put(v) => Some(v.clone()),
            Op::Delete => None,
            Op::Add { delta, result } => {
                let before = slot.1.as_ref().map_or(0, |v| {
                    i64::from_le_bytes(v[..].try_into().expect("counter"))
                });
                assert_eq!(
                    before + delta,
                    *result,
                    "{k:?}@{version}: add result disagrees with replay"
                );
                Some(result.to_le_bytes().to_vec())
            }
        };
        *slot = (*version, value);
    }

    // Cache == replay, then store == replay once synced.
    for (k, (version, value)) in &replay {
        if value.is_some() || wb.version(k).expect("read").is_some() {
            assert_eq!(
                wb.version(k).expect("read"),
                Some(*version),
                "cache version of {k:?}"
            );
        }
        assert_eq!(
            wb.get(k).expect("read").map(|v| v.to_vec()),
            *value,
            "cache value of {k:?}"
        );
    }
    wb.sync().expect("sync");
    assert_eq!(store_state(&data), replay, "store after sync");
    let stats = wb.stats();
    assert_eq!(stats.acked_ops, all.len() as u64);
    assert!(
        stats.coalesced_ops > 0,
        "a throttled store must coalesce hot keys: {stats:?}"
    );

    let wb = Arc::into_inner(wb).expect("sole owner");
    wb.close().expect("close");
    assert_eq!(store_state(&data), replay, "store after close");
    assert_no_regressions(&data);
}
