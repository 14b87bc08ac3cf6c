//! G9 for every `Duration` in `Config` (`PgConfig`'s: `tests/postgres.rs`,
//! which builds with the `postgres` feature), and every public
//! method that takes one: at the extremes (zero, 1 ns, the largest allowed
//! value, `Duration::MAX`) each is either refused at open with a typed
//! `Error::Config` naming the field, or gives a cache that works: put, sync
//! and close succeed and the data is in the store. Nothing panics.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::{small_config, store_state};
use writebehind::{Config, Error, MemStore, WriteBehind};

const NS: Duration = Duration::from_nanos(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Works,
    Refused,
}

/// Opens a cache with `config` and checks `expect`: a typed refusal whose
/// message names `field`, or a cache whose put survives sync and close (and
/// a second put, unsynced, survives close: skipped for a `close_timeout` too
/// short to drain anything).
fn check(field: &str, value: Duration, config: Config, expect: Expect) {
    let drain_at_close = config.close_timeout >= Duration::from_secs(1);
    let case = format!("{field} = {value:?}");
    let store = MemStore::new();
    let data = store.data();
    match (WriteBehind::with_store(store, config), expect) {
        (Err(Error::Config(msg)), Expect::Refused) => {
            assert!(
                msg.contains(field),
                "{case}: message {msg:?} must name the field"
            );
        }
        (Ok(wb), Expect::Works) => {
            let mut w = wb.writer().unwrap();
            let version = w
                .put(b"k", b"v")
                .unwrap_or_else(|e| panic!("{case}: put: {e}"));
            wb.sync().unwrap_or_else(|e| panic!("{case}: sync: {e}"));
            if drain_at_close {
                w.put(b"k2", b"v2")
                    .unwrap_or_else(|e| panic!("{case}: second put: {e}"));
            }
            drop(w);
            wb.close().unwrap_or_else(|e| panic!("{case}: close: {e}"));
            let stored = store_state(&data);
            assert_eq!(
                stored.get(&b"k"[..]),
                Some(&(version, Some(b"v".to_vec()))),
                "{case}: synced put not in the store"
            );
            assert!(
                !drain_at_close || stored.contains_key(&b"k2"[..]),
                "{case}: put before close not in the store"
            );
        }
        (Err(e), Expect::Works) => panic!("{case}: refused: {e}"),
        (Ok(wb), Expect::Refused) => {
            drop(wb);
            panic!("{case}: accepted, expected Error::Config");
        }
        (Err(e), Expect::Refused) => panic!("{case}: expected Error::Config, got {e}"),
    }
}

/// The four extremes for a field bounded to `(0, Config::INTERVAL_MAX]`.
fn bounded_cases() -> [(Duration, Expect); 5] {
    [
        (Duration::ZERO, Expect::Refused),
        (NS, Expect::Works),
        (Config::INTERVAL_MAX, Expect::Works),
        (Config::INTERVAL_MAX + NS, Expect::Refused),
        (Duration::MAX, Expect::Refused),
    ]
}

#[test]
fn g9_flush_interval_extremes() {
    for (value, expect) in bounded_cases() {
        let config = small_config().flush_interval(value);
        check("flush_interval", value, config, expect);
    }
}

#[test]
fn g9_idle_park_max_extremes() {
    for (value, expect) in bounded_cases() {
        let config = small_config().idle_park_max(value);
        check("idle_park_max", value, config, expect);
    }
}

#[test]
fn g9_retry_backoff_max_extremes() {
    for (value, expect) in bounded_cases() {
        let config = small_config()
            .retry_backoff_min(NS)
            .retry_backoff_max(value);
        check("retry_backoff_max", value, config, expect);
    }
}

#[test]
fn g9_retry_backoff_min_extremes() {
    for (value, expect) in bounded_cases() {
        // max = min where min is allowed, so only min's own bound decides.
        let config = small_config()
            .retry_backoff_min(value)
            .retry_backoff_max(value.clamp(NS, Config::INTERVAL_MAX));
        check("retry_backoff_min", value, config, expect);
    }
}

/// `close_timeout` may be "for ever": `Duration::MAX` is allowed and handled
/// with saturating arithmetic; zero is refused (close could never drain).
#[test]
fn g9_close_timeout_extremes() {
    let cases = [
        (Duration::ZERO, Expect::Refused),
        (NS, Expect::Works),
        (Duration::from_secs(u64::MAX), Expect::Works),
        (Duration::MAX, Expect::Works),
    ];
    for (value, expect) in cases {
        let config = small_config().close_timeout(value);
        check("close_timeout", value, config, expect);
    }
}

/// Every public method that takes a `Duration` accepts the extremes.
#[test]
fn g9_timeouts_of_calls_accept_the_extremes() {
    let store = MemStore::new();
    let data = store.data();
    let wb = WriteBehind::with_store(store, small_config()).unwrap();
    let mut w = wb.writer().unwrap();
    for (i, timeout) in [Duration::ZERO, NS, Duration::from_secs(3600), Duration::MAX]
        .into_iter()
        .enumerate()
    {
        let key = format!("k{i}");
        w.put(key.as_bytes(), b"v").unwrap();
        match wb.sync_timeout(timeout) {
            Ok(()) => {}
            // A zero or 1 ns deadline may pass before the flusher is done.
            Err(Error::Timeout { .. }) if timeout <= NS => {}
            Err(e) => panic!("sync_timeout({timeout:?}): {e}"),
        }
        match wb.compact_timeout(timeout) {
            Ok(()) => {}
            Err(Error::Timeout { .. }) if timeout <= NS => {}
            Err(e) => panic!("compact_timeout({timeout:?}): {e}"),
        }
    }
    wb.sync_timeout(Duration::MAX).unwrap();
    drop(w);
    wb.close().unwrap();
    assert_eq!(store_state(&data).len(), 4);
}
