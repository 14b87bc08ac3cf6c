//! G10-G12 together over time: a key space that keeps moving (sessions
//! that start, are updated and read, and end) through a memory budget
//! that holds about 1% of the keys ever written. It runs to the end with
//! no refusal, memory does not grow with the keys ever written, the disk
//! stays bounded by the live set and the dead ratio, and every live key is
//! correct after close and reopen.
//!
//! `WB_CHURN_UPDATES` sets the number of updates (default 4,000,000, about
//! 20 s; the acceptance run is 100,000,000).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::VecDeque;

use writebehind::{Config, FileOptions, WriteBehind};

/// Updates per session (the first is its creation), then it ends.
const SESSION_UPDATES: u64 = 8;
/// Sessions open at once.
const OPEN: u64 = 20_000;
const BUDGET: u64 = 1 << 20;

fn session(i: u64) -> Vec<u8> {
    format!("session:{i:012}").into_bytes()
}

fn value(i: u64, update: u64) -> Vec<u8> {
    format!("state-{i}-{update}-{:032}", i ^ update).into_bytes()
}

fn config() -> Config {
    Config::default()
        .memory_bytes(BUDGET)
        .keys_max(1 << 16)
        .dirty_keys_max(2_048)
        .compact_segments_min(4)
}

#[test]
fn g10_churn_through_a_budget_of_one_percent_of_the_keys() {
    let updates: u64 = std::env::var("WB_CHURN_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000_000);
    let dir = tempfile::tempdir().unwrap();
    let file = FileOptions::for_cache(&config()).segment_bytes_max(4 << 20);
    let wb = WriteBehind::open_with(dir.path(), &file, config()).unwrap();
    let mut w = wb.writer().unwrap();
    // Open sessions: (session, updates so far), oldest first.
    let mut open: VecDeque<(u64, u64)> = VecDeque::new();
    let (mut next, mut done, mut rss_early, mut peak_resident) = (0u64, 0u64, 0u64, 0u64);
    while done < updates {
        if open.len() < OPEN as usize {
            w.put(&session(next), &value(next, 0)).unwrap();
            open.push_back((next, 1));
            next += 1;
        } else {
            let (s, n) = open.pop_front().unwrap();
            if n == SESSION_UPDATES {
                w.delete(&session(s)).unwrap();
            } else {
                // Read the session (it may be evicted: read through), check
                // it, update it.
                let got = wb.get(&session(s)).unwrap();
                assert_eq!(got.as_deref(), Some(&value(s, n - 1)[..]), "session {s}");
                w.put(&session(s), &value(s, n)).unwrap();
                open.push_back((s, n + 1));
            }
        }
        done += 1;
        if done % 100_000 == 0 {
            peak_resident = peak_resident.max(wb.stats().resident_bytes);
        }
        if done == updates / 10 {
            rss_early = common::rss_bytes();
        }
    }
    wb.sync().unwrap();
    let stats = wb.stats();
    let rss_late = common::rss_bytes();
    eprintln!(
        "churn: {updates} updates, {next} sessions ever, {} open; resident peak {peak_resident} B of a {BUDGET} B budget; RSS {rss_early} -> {rss_late} B; stored {} B for {} live B in {} segments; {} evictions, {} reclaimed, {} loads",
        open.len(),
        stats.stored_bytes,
        stats.live_bytes,
        stats.segments,
        stats.evictions,
        stats.keys_reclaimed,
        stats.loads
    );
    assert!(next >= updates / (SESSION_UPDATES + 1), "{next} sessions");
    assert!(
        BUDGET * 100 <= next * writebehind_resident_key_bytes() * 2,
        "the budget must hold only a few percent of the keys ever written"
    );
    assert!(stats.evictions > 0 && stats.keys_reclaimed > 0, "{stats:?}");
    assert!(peak_resident <= BUDGET + BUDGET / 4, "{peak_resident}");
    // Memory does not follow the keys ever written: between a tenth of the
    // run and its end, nine tenths of them came and went.
    assert!(
        rss_late <= rss_early + (16 << 20),
        "RSS grew from {rss_early} to {rss_late} bytes"
    );
    // The disk holds the live set within the dead ratio (0.5), plus the
    // segments a compaction has not reached yet.
    assert!(
        stats.stored_bytes <= 2 * stats.live_bytes + 4 * (4 << 20),
        "{} stored bytes for {} live",
        stats.stored_bytes,
        stats.live_bytes
    );
    drop(w);
    wb.close().unwrap();

    let wb = WriteBehind::open_with(dir.path(), &file, config()).unwrap();
    for &(s, n) in &open {
        let got = wb.get(&session(s)).unwrap();
        assert_eq!(got.as_deref(), Some(&value(s, n - 1)[..]), "session {s}");
    }
    let first_open = open.front().map_or(next, |&(s, _)| s);
    for s in (0..first_open).step_by(9_973) {
        assert!(
            wb.get(&session(s)).unwrap().is_none(),
            "ended session {s} came back"
        );
    }
    wb.close().unwrap();
}

/// The library's per-key estimate (`Config::memory_bytes`'s docs).
fn writebehind_resident_key_bytes() -> u64 {
    160
}
