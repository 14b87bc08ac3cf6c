//! G10: only clean entries leave memory. Through a memory budget far
//! smaller than the data, the flusher evicts entries whose newest version
//! is durable, reads bring them back, and nothing acknowledged is lost;
//! while what is in memory is dirty, new keys are refused (backpressure)
//! rather than anything evicted.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::small_config;
use writebehind::testing::{FaultPlan, Faulty};
use writebehind::{Backpressure, Config, Error, MemStore, Version, WriteBehind};

fn key(i: u64) -> Vec<u8> {
    format!("key:{i:010}").into_bytes()
}

fn value(i: u64, round: u64) -> Vec<u8> {
    format!("value-{i}-{round}-{:040}", i * 31 + round).into_bytes()
}

/// A budget of 2 MiB holds about 13,000 entries; 100,000 keys go through
/// it (about 8x the budget): memory stays near the budget, evictions
/// happen, every key reads back at its value and version, before and
/// after a reopen.
fn config(budget: u64) -> Config {
    small_config().memory_bytes(budget).dirty_keys_max(2_048)
}

#[test]
fn g10_a_data_set_larger_than_the_budget_reads_back_whole() {
    const KEYS: u64 = 100_000;
    const BUDGET: u64 = 2 << 20;
    let dir = tempfile::tempdir().unwrap();
    let wb = WriteBehind::open(dir.path(), config(BUDGET)).unwrap();
    let mut w = wb.writer().unwrap();
    let mut peak = 0;
    // A put to an evicted key starts at the version floor (above every
    // stored version): versions rise, not necessarily by one.
    let mut versions = vec![Version(0); KEYS as usize];
    for i in 0..KEYS {
        versions[i as usize] = w.put(&key(i), &value(i, 0)).unwrap();
        if i % 1_000 == 0 {
            peak = peak.max(wb.stats().resident_bytes);
        }
    }
    for i in (0..KEYS).step_by(7) {
        let v = w.put(&key(i), &value(i, 1)).unwrap();
        assert!(v > versions[i as usize]);
        versions[i as usize] = v;
    }
    wb.sync().unwrap();
    let stats = wb.stats();
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(
        peak <= BUDGET + BUDGET / 4,
        "resident {peak} bytes over a {BUDGET}-byte budget"
    );
    let check = |wb: &WriteBehind| {
        for i in 0..KEYS {
            let round = u64::from(i % 7 == 0);
            let v = wb
                .get(&key(i))
                .unwrap()
                .unwrap_or_else(|| panic!("key {i} lost"));
            assert_eq!(&v[..], &value(i, round)[..], "key {i}");
            assert_eq!(v.version(), versions[i as usize], "key {i}");
        }
    };
    check(&wb);
    assert!(wb.stats().read_misses > 0);
    drop(w);
    wb.close().unwrap();
    let wb = WriteBehind::open(dir.path(), config(BUDGET)).unwrap();
    check(&wb);
    assert!(wb.stats().resident_bytes <= BUDGET + BUDGET / 4);
    wb.close().unwrap();
}

/// A key evicted earlier takes a put without a read, at a version above
/// the stored one, and the put wins after a reopen.
#[test]
fn g10_a_put_to_an_evicted_key_wins_over_its_stored_record() {
    let dir = tempfile::tempdir().unwrap();
    let wb = WriteBehind::open(dir.path(), config(2 << 20)).unwrap();
    let mut w = wb.writer().unwrap();
    for _ in 0..3 {
        w.put(b"early", b"old").unwrap();
    }
    // Push "early" out: many other keys, made durable as they go.
    let mut i = 0;
    while wb.get_resident(b"early").is_some() {
        for _ in 0..10_000 {
            w.put(&key(i), &value(i, 0)).unwrap();
            i += 1;
        }
        wb.sync().unwrap();
        assert!(i < 2_000_000, "early was never evicted");
    }
    assert_eq!(wb.stats().loads, 0);
    let v = w.put(b"early", b"new").unwrap();
    assert!(v > Version(3), "{v:?}");
    assert_eq!(wb.stats().loads, 0, "a put reads nothing");
    drop(w);
    wb.close().unwrap();
    let wb = WriteBehind::open(dir.path(), config(2 << 20)).unwrap();
    assert_eq!(wb.get(b"early").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(wb.version(b"early").unwrap(), Some(v));
    wb.close().unwrap();
}

/// A store that makes nothing durable (stalled): nothing may be evicted,
/// so once the budget is full new keys are refused (`Fail`), every
/// acknowledged key still reads from memory, and once the store resumes
/// the cache evicts and takes new keys again.
#[test]
fn g10_dirty_entries_are_never_evicted() {
    let plan = FaultPlan::new();
    let store = MemStore::new();
    let data = store.data();
    let config = config(1 << 20).backpressure(Backpressure::Fail);
    let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config).unwrap();
    plan.stall_for(Duration::from_secs(3));
    let mut w = wb.writer().unwrap();
    let mut acked = 0;
    let refused = loop {
        match w.put(&key(acked), &value(acked, 0)) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 1_000_000, "never refused");
    };
    // Refused by the dirty bound or the budget, whichever came first;
    // either way nothing was evicted.
    assert!(
        matches!(refused, Error::MemoryFull { .. } | Error::Full),
        "{refused:?}"
    );
    assert_eq!(wb.stats().evictions, 0);
    for i in 0..acked {
        assert_eq!(
            wb.get_resident(&key(i)).as_deref(),
            Some(&value(i, 0)[..]),
            "key {i}"
        );
    }
    wb.sync_timeout(Duration::from_secs(30)).unwrap();
    // Durable now: new keys push clean ones out.
    for i in acked..acked + 20_000 {
        loop {
            match w.put(&key(i), &value(i, 0)) {
                Ok(_) => break,
                Err(Error::MemoryFull { .. } | Error::Full) => wb.sync().unwrap(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    wb.sync().unwrap();
    assert!(wb.stats().evictions > 0);
    let stored = data.lock().unwrap().records.len() as u64;
    assert_eq!(stored, acked + 20_000);
    for i in (0..acked + 20_000).step_by(97) {
        assert_eq!(
            wb.get(&key(i)).unwrap().as_deref(),
            Some(&value(i, 0)[..]),
            "key {i}"
        );
    }
    drop(w);
    wb.close().unwrap();
}
