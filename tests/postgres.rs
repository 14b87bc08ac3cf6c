//! `PgStore` against a real PostgreSQL server (cargo feature `postgres`).
//!
//! `bash .ci/pg test` installs PostgreSQL if needed, starts a throwaway
//! cluster on a Unix socket, runs these and stops it. By hand: set
//! `WB_PG_URL` to a server you may create tables on, and for the restart test
//! `WB_PG_CTL` and `WB_PG_DIR` (`$WB_PG_CTL restart|stop|start $WB_PG_DIR`).
//! Each test uses its own table, dropped at its start.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use writebehind::__internals::record;
use writebehind::postgres::{Client, NoTls};
use writebehind::Kind;
use writebehind::{
    Batch, BatchSeq, Blocking, BlockingStore, Config, Error, PgConfig, PgStore, StoreErrorKind,
    Version, WriteBehind,
};

fn url() -> String {
    std::env::var("WB_PG_URL").expect(
        "WB_PG_URL is not set: run `bash .ci/pg test`, which starts a throwaway PostgreSQL and sets it",
    )
}

/// `url()` with an application_name, so a test can find its own sessions.
fn url_named(name: &str) -> String {
    let u = url();
    if u.starts_with("postgres://") || u.starts_with("postgresql://") {
        let sep = if u.contains('?') { '&' } else { '?' };
        format!("{u}{sep}application_name={name}")
    } else {
        format!("{u} application_name={name}")
    }
}

fn client() -> Client {
    Client::connect(&url(), NoTls).expect("connect to WB_PG_URL")
}

/// A fresh table name for one test (dropped if a previous run left it).
fn fresh(table: &str) -> String {
    let name = format!("wb_test_{table}");
    client()
        .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
        .expect("drop table");
    name
}

/// The store's settings for `table` on the test server.
fn pg_config(table: &str) -> PgConfig {
    PgConfig::new(url()).table(table)
}

/// The cache's settings of every test: short intervals, a small index.
fn config() -> Config {
    Config::default()
        .flush_interval(Duration::from_millis(2))
        .retry_backoff_min(Duration::from_millis(5))
        .retry_backoff_max(Duration::from_millis(200))
        .keys_max(1 << 16)
        .dirty_keys_max(1 << 15)
}

type Rows = HashMap<Vec<u8>, (i64, Option<Vec<u8>>)>;

fn rows(table: &str) -> Rows {
    client()
        .query(&format!("SELECT key, version, value FROM {table}"), &[])
        .expect("select")
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// Every key the cache knows is in the table with the same version and value.
fn assert_table_matches_cache(table: &str, wb: &WriteBehind, keys: &[Vec<u8>]) {
    let rows = rows(table);
    for k in keys {
        let value = wb.get(k).expect("read").map(|v| v.to_vec());
        let row = rows
            .get(k)
            .unwrap_or_else(|| panic!("{} missing from {table}", String::from_utf8_lossy(k)));
        // A deleted key whose tombstone was durable is no longer in memory
        // (G12): its row must be that tombstone.
        let Some(version) = wb.version(k).expect("read") else {
            assert_eq!(
                row.1,
                None,
                "{} is freed but live in {table}",
                String::from_utf8_lossy(k)
            );
            continue;
        };
        assert_eq!(
            (row.0 as u64, &row.1),
            (version.0, &value),
            "row of {} differs from the cache",
            String::from_utf8_lossy(k)
        );
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// (key, version, value; `None` for a delete)
type Rec<'a> = (&'a [u8], u64, Option<&'a [u8]>);

fn batch(seq: u64, records: &[Rec<'_>]) -> Batch {
    let mut bytes = Vec::new();
    for (k, ver, v) in records {
        match v {
            Some(v) => record::encode(&mut bytes, Kind::Put, Version(*ver), k, v),
            None => record::encode(&mut bytes, Kind::Delete, Version(*ver), k, b""),
        }
    }
    Batch {
        seq: BatchSeq(seq),
        bytes,
        records: records.len(),
        sync: false,
    }
}

/// Terminates the sessions named `app` (application_name) that also match
/// `extra` (an SQL condition on pg_stat_activity); returns how many.
fn kill_sessions(app: &str, extra: &str) -> usize {
    client()
        .query(
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND {extra}"
            ),
            &[&app],
        )
        .unwrap()
        .len()
}

fn pg_ctl(action: &str) {
    let ctl = std::env::var("WB_PG_CTL").expect(
        "WB_PG_CTL is not set: run `bash .ci/pg test` (the restart test restarts the server)",
    );
    let dir = std::env::var("WB_PG_DIR").expect("WB_PG_DIR is not set: run `bash .ci/pg test`");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{ctl} {action} {dir}"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run WB_PG_CTL");
    assert!(status.success(), "`{ctl} {action} {dir}` failed: {status}");
}

#[test]
fn round_trip_puts_adds_and_deletes_land_in_the_table() {
    let table = fresh("round_trip");
    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    assert_eq!(wb.stats().backend, "postgres");
    let mut w = wb.writer().unwrap();
    let keys: Vec<Vec<u8>> = (0..2_000).map(key).collect();
    for round in 0..3 {
        for (i, k) in keys.iter().enumerate() {
            match i % 10 {
                0 => {
                    w.add(k, i as i64 + round).unwrap();
                }
                9 if round == 2 => {
                    w.delete(k).unwrap();
                }
                _ => {
                    w.put(k, format!("value {i} round {round}").as_bytes())
                        .unwrap();
                }
            }
        }
    }
    drop(w);
    wb.sync().unwrap();
    assert_table_matches_cache(&table, &wb, &keys);
    let rows = rows(&table);
    assert_eq!(rows.len(), keys.len());
    assert_eq!(rows.values().filter(|r| r.1.is_none()).count(), 200);
    let counter = rows[&key(10)].1.clone().unwrap();
    assert_eq!(i64::from_le_bytes(counter.try_into().unwrap()), 3 * 10 + 3);
    let stats = wb.stats();
    assert_eq!(stats.store_errors, 0, "{stats:?}");
    assert!(stats.persisted_records >= 2_000, "{stats:?}");
    wb.close().unwrap();
}

#[test]
fn the_version_guard_keeps_the_newest_row() {
    let table = fresh("guard");
    let mut store = PgStore::connect(pg_config(&table)).unwrap();
    let stats = store.stats();
    store
        .write(&batch(1, &[(b"k", 5, Some(b"new")), (b"d", 2, Some(b"x"))]))
        .unwrap();
    assert_eq!(stats.get().rows_applied, 2);
    // Older versions of both kinds, and the same version again: no effect.
    store.write(&batch(2, &[(b"k", 3, Some(b"old"))])).unwrap();
    store.write(&batch(3, &[(b"k", 4, None)])).unwrap();
    store
        .write(&batch(4, &[(b"k", 5, Some(b"other"))]))
        .unwrap();
    assert_eq!(rows(&table)[&b"k".to_vec()], (5, Some(b"new".to_vec())));
    assert_eq!(stats.get().rows_applied, 2, "{:?}", stats.get());
    assert_eq!(stats.get().rows_sent, 5);
    // A newer delete is a tombstone with its version; a newer put revives.
    store.write(&batch(5, &[(b"k", 6, None)])).unwrap();
    assert_eq!(rows(&table)[&b"k".to_vec()], (6, None));
    store.write(&batch(6, &[(b"k", 5, Some(b"late"))])).unwrap();
    assert_eq!(rows(&table)[&b"k".to_vec()], (6, None));
    store
        .write(&batch(7, &[(b"k", 7, Some(b"again"))]))
        .unwrap();
    assert_eq!(rows(&table)[&b"k".to_vec()], (7, Some(b"again".to_vec())));
    // The same key twice in one batch: the higher version wins whatever the
    // order (ON CONFLICT alone would refuse to touch a row twice).
    store
        .write(&batch(
            8,
            &[(b"d", 9, Some(b"nine")), (b"d", 8, Some(b"eight"))],
        ))
        .unwrap();
    assert_eq!(rows(&table)[&b"d".to_vec()], (9, Some(b"nine".to_vec())));
    // A malformed batch is refused before anything is sent.
    let mut bad = batch(9, &[(b"k", 10, Some(b"ten"))]);
    let len = bad.bytes.len();
    bad.bytes[len - 1] ^= 0xff;
    let err = store.write(&bad).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Corrupt);
    assert_eq!(rows(&table)[&b"k".to_vec()], (7, Some(b"again".to_vec())));
    store.close().unwrap();
}

#[test]
fn deletes_keep_their_order_and_versions_continue_after_reopen() {
    let table = fresh("deletes");
    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    let mut w = wb.writer().unwrap();
    // Put, durable; then delete, durable: a tombstone with version 2.
    w.put(b"a", b"1").unwrap();
    wb.sync().unwrap();
    w.delete(b"a").unwrap();
    wb.sync().unwrap();
    assert_eq!(rows(&table)[&b"a".to_vec()], (2, None));
    // Put, delete, put with no barrier between: the last one wins. (New
    // keys start at the version floor, which a's freed tombstone raised.)
    w.put(b"b", b"1").unwrap();
    w.delete(b"b").unwrap();
    let b = w.put(b"b", b"3").unwrap();
    // Put then delete: the delete wins.
    w.put(b"c", b"1").unwrap();
    w.delete(b"c").unwrap();
    let c = w.last_version();
    wb.sync().unwrap();
    let r = rows(&table);
    assert_eq!(r[&b"b".to_vec()], (b.0 as i64, Some(b"3".to_vec())));
    assert_eq!(r[&b"c".to_vec()], (c.0 as i64, None));
    drop(w);
    wb.close().unwrap();

    // Reopen: the tombstones are not loaded (G12), but the version floor is
    // above every version in the table, so a new put of a deleted key gets
    // a higher version and the guard lets it through (G2).
    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    assert!(wb.get(b"a").expect("read").is_none());
    assert_eq!(
        wb.version(b"a").expect("read"),
        None,
        "a tombstone takes no memory"
    );
    assert_eq!(wb.get(b"b").expect("read").as_deref(), Some(&b"3"[..]));
    let mut w = wb.writer().unwrap();
    let a = w.put(b"a", b"back").unwrap();
    let c = w.put(b"c", b"back").unwrap();
    assert!(a > Version(2) && c > Version(2), "{a:?} {c:?}");
    wb.sync().unwrap();
    let r = rows(&table);
    assert_eq!(r[&b"a".to_vec()], (a.0 as i64, Some(b"back".to_vec())));
    assert_eq!(r[&b"c".to_vec()], (c.0 as i64, Some(b"back".to_vec())));
    drop(w);
    wb.close().unwrap();
}

/// G12 at the database: a deleted key whose tombstone row is committed has
/// its entry freed; a later put starts above the floor, so the version
/// guard lets it through and the row takes the new value.
#[test]
fn a_put_after_a_freed_delete_passes_the_version_guard() {
    let table = fresh("freed");
    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    let mut w = wb.writer().unwrap();
    for v in [&b"1"[..], b"2", b"3"] {
        w.put(b"k", v).unwrap();
    }
    w.delete(b"k").unwrap();
    let tombstone = w.last_version();
    wb.sync().unwrap();
    assert_eq!(rows(&table)[&b"k".to_vec()], (tombstone.0 as i64, None));
    assert_eq!(wb.stats().keys_reclaimed, 1);
    assert_eq!(wb.version(b"k").expect("read"), None);
    let again = w.put(b"k", b"back").unwrap();
    assert!(again > tombstone, "{again:?} <= {tombstone:?}");
    wb.sync().unwrap();
    assert_eq!(
        rows(&table)[&b"k".to_vec()],
        (again.0 as i64, Some(b"back".to_vec()))
    );
    drop(w);
    wb.close().unwrap();
}

#[test]
fn reopen_loads_every_row_up_to_the_bound() {
    let table = fresh("reopen");
    let keys: Vec<Vec<u8>> = (0..20_000).map(key).collect();
    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    let mut w = wb.writer().unwrap();
    for (i, k) in keys.iter().enumerate() {
        w.put(k, format!("v{i}").as_bytes()).unwrap();
        if i % 3 == 0 {
            w.put(k, format!("w{i}").as_bytes()).unwrap();
        }
        if i % 100 == 7 {
            w.delete(k).unwrap();
        }
    }
    drop(w);
    // The table is taken while this cache has it open.
    let second = WriteBehind::open_postgres(pg_config(&table), config());
    assert!(
        matches!(&second, Err(Error::Database(m)) if m.contains("in use by another writebehind session")),
        "{second:?}"
    );
    let expected: Vec<_> = keys
        .iter()
        .map(|k| wb.get(k).expect("read").map(|v| (v.version(), v.to_vec())))
        .collect();
    wb.close().unwrap();

    // Opening loads no row; live keys read back through with their
    // versions, deleted ones as absent (and take no memory).
    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    assert_eq!(wb.stats().keys, 0, "opening loads no row");
    for (k, live) in keys.iter().zip(&expected) {
        assert_eq!(
            wb.get(k)
                .expect("read")
                .map(|v| (v.version(), v.to_vec()))
                .as_ref(),
            live.as_ref()
        );
        assert_eq!(wb.version(k).expect("read"), live.as_ref().map(|l| l.0));
    }
    let stats = wb.stats();
    assert_eq!(stats.keys, keys.len() - keys.len() / 100, "{stats:?}");
    assert_eq!(stats.read_misses, 2 * keys.len() as u64 - stats.keys as u64);
    wb.close().unwrap();
    assert_eq!(rows(&table).len(), keys.len());
}

#[test]
fn a_mismatching_table_or_bad_settings_are_refused_and_change_nothing() {
    let table = fresh("mismatch");
    client()
        .batch_execute(&format!(
            "CREATE TABLE {table} (key text PRIMARY KEY, version int NOT NULL, value bytea);
             INSERT INTO {table} VALUES ('x', 1, 'y')"
        ))
        .unwrap();
    let err = WriteBehind::open_postgres(pg_config(&table), config()).unwrap_err();
    let Error::Database(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("key text NOT NULL") && msg.contains("expected exactly"),
        "{msg}"
    );
    assert_eq!(
        client()
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get::<_, i64>(0),
        1
    );

    // No unique index on key; a deferrable one (ON CONFLICT cannot use
    // it): refused at open, not by every batch afterwards.
    for (name, key, expect) in [
        ("no_unique", "key bytea NOT NULL", "unique index on (key)"),
        (
            "deferrable",
            "key bytea PRIMARY KEY DEFERRABLE",
            "non-deferrable",
        ),
    ] {
        let table = fresh(name);
        client()
            .batch_execute(&format!(
                "CREATE TABLE {table} ({key}, version bigint NOT NULL, value bytea)"
            ))
            .unwrap();
        let err = WriteBehind::open_postgres(pg_config(&table), config()).unwrap_err();
        assert!(
            matches!(&err, Error::Database(m) if m.contains(expect)),
            "{name}: {err:?}"
        );
    }

    for bad in [
        "Wb",
        "wb-x",
        "a.b.c",
        "",
        "x; drop table y",
        "1abc",
        "writebehind_owners",
        "public.writebehind_owners",
    ] {
        let mut c = pg_config("x");
        c.table = bad.into();
        let err = WriteBehind::open_postgres(c, config()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad:?}: {err:?}");
    }
    let mut c = pg_config("x");
    c.url = "postgresql://wb@localhost/postgres?host=/nonexistent-wb-dir".into();
    c.connect_timeout = Duration::from_secs(1);
    let err = WriteBehind::open_postgres(c, config()).unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    let mut c = pg_config("x");
    c.url = "postgresql://[broken".into();
    let err = WriteBehind::open_postgres(c, config()).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

/// Each key's last acknowledged (version, value).
type Acked = HashMap<Vec<u8>, (Version, Vec<u8>)>;

/// One writer thread: counter adds and puts over `keys` keys, cycling (or,
/// with `once`, each key once, so a lost batch cannot be hidden by a later
/// write of the same key), pausing every 64 updates, until `stop`.
/// Returns each key's last acknowledged (version, value).
fn spawn_writer(
    wb: &Arc<WriteBehind>,
    keys: usize,
    once: bool,
    pause: Duration,
    stop: &Arc<AtomicBool>,
    acked: &Arc<AtomicU64>,
) -> thread::JoinHandle<Acked> {
    let mut w = wb.writer().unwrap();
    let stop = Arc::clone(stop);
    let acked = Arc::clone(acked);
    thread::spawn(move || {
        let mut last = HashMap::new();
        let mut i = 0usize;
        while !(stop.load(Ordering::Relaxed) || once && i == keys) {
            let k = key(i % keys);
            if i % 2 == 0 {
                let n = w.add(&k, 1).unwrap();
                last.insert(k, (w.last_version(), n.to_le_bytes().to_vec()));
            } else {
                let v = format!("value {i}").into_bytes();
                let ver = w.put(&k, &v).unwrap();
                last.insert(k, (ver, v));
            }
            acked.fetch_add(1, Ordering::Relaxed);
            i += 1;
            if i % 64 == 0 {
                // Keep the run long in time, not in records.
                thread::sleep(pause);
            }
        }
        last
    })
}

fn assert_rows_are(table: &str, expected: &Acked) {
    let rows = rows(table);
    assert_eq!(rows.len(), expected.len());
    for (k, (ver, v)) in expected {
        assert_eq!(
            rows.get(k),
            Some(&(ver.0 as i64, Some(v.clone()))),
            "{}",
            String::from_utf8_lossy(k)
        );
    }
}

#[test]
fn a_server_restart_and_a_crash_mid_run_lose_no_acknowledged_write() {
    let table = fresh("restart");
    let wb = Arc::new(WriteBehind::open_postgres(pg_config(&table), config()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = spawn_writer(&wb, 500, false, Duration::from_micros(200), &stop, &acked);

    thread::sleep(Duration::from_millis(400));
    pg_ctl("restart"); // fast shutdown: sessions are terminated
    thread::sleep(Duration::from_millis(400));
    pg_ctl("stop"); // immediate: a crash; the server recovers from its WAL
    let down_at = acked.load(Ordering::Relaxed);
    let down = Instant::now();
    let mut saw_unhealthy = false;
    while down.elapsed() < Duration::from_millis(800) {
        let s = wb.stats();
        saw_unhealthy |= !s.healthy
            && s.last_store_error
                .as_ref()
                .is_some_and(|e| e.kind == StoreErrorKind::Connection);
        thread::sleep(Duration::from_millis(20));
    }
    let acked_while_down = acked.load(Ordering::Relaxed) - down_at;
    pg_ctl("start");
    thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let expected = writer.join().unwrap();

    wb.sync_timeout(Duration::from_secs(60)).unwrap();
    let stats = wb.stats();
    assert!(saw_unhealthy, "stats never showed the outage: {stats:?}");
    assert!(stats.store_errors > 0 && stats.retries > 0, "{stats:?}");
    assert!(stats.healthy, "{stats:?}");
    assert!(
        acked_while_down > 100,
        "writers should keep going while the database is down (acked {acked_while_down})"
    );
    assert_rows_are(&table, &expected);
    Arc::into_inner(wb).unwrap().close().unwrap();

    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    for (k, (ver, v)) in &expected {
        let got = wb.get(k).expect("read").unwrap();
        assert_eq!((got.version(), &got[..]), (*ver, &v[..]));
    }
    wb.close().unwrap();
}

#[test]
fn dropped_connections_are_reopened_and_the_batch_retried() {
    let table = fresh("dropped");
    let mut pg = pg_config(&table);
    pg.url = url_named("wb_test_dropped");
    let store = PgStore::connect(pg).unwrap();
    let pg_stats = store.stats();
    let wb = Arc::new(WriteBehind::with_store(Blocking::new(store), config()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    // Each key once, over about a second: a batch lost to a dropped
    // connection would leave its keys missing.
    let writer = spawn_writer(&wb, 20_000, true, Duration::from_millis(3), &stop, &acked);
    let mut killed = 0;
    for _ in 0..5 {
        thread::sleep(Duration::from_millis(150));
        killed += kill_sessions("wb_test_dropped", "true");
    }
    let expected = writer.join().unwrap();
    assert_eq!(expected.len(), 20_000);
    wb.sync_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(killed, 5, "each round should find the store's one session");
    assert!(
        pg_stats.get().reconnects >= 1,
        "{:?} {:?}",
        pg_stats.get(),
        wb.stats()
    );
    assert_rows_are(&table, &expected);
    Arc::into_inner(wb).unwrap().close().unwrap();
}

#[test]
fn a_statement_timeout_is_retried_until_the_table_is_free() {
    let table = fresh("timeout");
    let mut pg = pg_config(&table);
    pg.statement_timeout = Duration::from_millis(100);
    let wb = WriteBehind::open_postgres(pg, config()).unwrap();
    let mut w = wb.writer().unwrap();
    w.put(b"first", b"1").unwrap();
    wb.sync().unwrap();

    // Another session holds the table: the upsert waits, times out, retries.
    let mut locker = client();
    let mut tx = locker.transaction().unwrap();
    tx.batch_execute(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .unwrap();
    for i in 0..1_000 {
        w.put(&key(i), b"during the lock").unwrap();
    }
    let start = Instant::now();
    let mut saw_timeout = false;
    while start.elapsed() < Duration::from_secs(3) && !saw_timeout {
        saw_timeout = wb
            .stats()
            .last_store_error
            .is_some_and(|e| e.kind == StoreErrorKind::Timeout);
        thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_timeout, "{:?}", wb.stats());
    assert!(
        wb.sync_timeout(Duration::from_millis(200)).is_err(),
        "sync cannot succeed while the table is locked"
    );
    tx.rollback().unwrap();
    wb.sync_timeout(Duration::from_secs(30)).unwrap();
    let keys: Vec<Vec<u8>> = (0..1_000).map(key).collect();
    assert_table_matches_cache(&table, &wb, &keys);
    drop(w);
    wb.close().unwrap();
}

#[test]
fn the_same_table_under_another_name_is_the_same_lock() {
    let table = fresh("alias");
    let wb = WriteBehind::open_postgres(pg_config(&table), config()).unwrap();
    let err =
        WriteBehind::open_postgres(pg_config(&format!("public.{table}")), config()).unwrap_err();
    assert!(
        matches!(&err, Error::Database(m) if m.contains("in use by another writebehind session")),
        "{err:?}"
    );
    wb.close().unwrap();
    // Released at close: the other spelling opens now.
    WriteBehind::open_postgres(pg_config(&format!("public.{table}")), config())
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn a_cache_that_lost_its_table_during_a_disconnect_is_fenced_not_silently_dropped() {
    let table = fresh("fenced");
    let mut pg_a = pg_config(&table);
    pg_a.url = url_named("wb_test_fenced_a");
    let mut cfg_a = config();
    cfg_a.close_timeout = Duration::from_millis(500);
    let a = WriteBehind::open_postgres(pg_a, cfg_a).unwrap();
    let mut wa = a.writer().unwrap();
    wa.put(b"k", b"a1").unwrap();
    a.sync().unwrap();

    // A's session dies; while A is idle (it reconnects only to write), B
    // opens the table, writes k past A's version, and closes.
    let killed = kill_sessions("wb_test_fenced_a", "true");
    assert_eq!(killed, 1);
    let mut waited = 0;
    let b = loop {
        // The server releases A's lock once its backend has exited.
        match WriteBehind::open_postgres(pg_config(&table), config()) {
            Ok(b) => break b,
            Err(e) if waited < 250 => {
                let _ = e;
                waited += 1;
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    let mut wb_ = b.writer().unwrap();
    for i in 0..5 {
        wb_.put(b"k", format!("b{i}").as_bytes()).unwrap();
    }
    drop(wb_);
    b.close().unwrap();
    assert_eq!(rows(&table)[&b"k".to_vec()], (6, Some(b"b4".to_vec())));

    // A writes again: its version 2 would lose to B's 6 under the guard; the
    // store refuses instead, and says why.
    wa.put(b"k", b"a2").unwrap();
    let err = a.sync_timeout(Duration::from_millis(500)).unwrap_err();
    let stats = a.stats();
    let last = stats.last_store_error.clone().expect("a store error");
    assert!(
        last.message.contains("opened by another cache"),
        "{err:?} {stats:?}"
    );
    assert!(!stats.healthy);
    drop(wa);
    let err = a.close().unwrap_err();
    assert!(
        format!("{err}").contains("opened by another cache"),
        "{err}"
    );
    assert_eq!(rows(&table)[&b"k".to_vec()], (6, Some(b"b4".to_vec())));
}

#[test]
fn a_connection_killed_in_the_middle_of_a_statement_loses_nothing() {
    let table = fresh("killed_mid_statement");
    let mut pg = pg_config(&table);
    pg.url = url_named("wb_test_mid_statement");
    let wb = WriteBehind::open_postgres(pg, config()).unwrap();
    let mut w = wb.writer().unwrap();
    w.put(b"first", b"1").unwrap();
    wb.sync().unwrap();

    // Hold the table so the next batch's statement is running (waiting for
    // the lock) when its session is killed.
    let mut locker = client();
    let mut tx = locker.transaction().unwrap();
    tx.batch_execute(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .unwrap();
    let keys: Vec<Vec<u8>> = (0..2_000).map(key).collect();
    for (i, k) in keys.iter().enumerate() {
        w.put(k, format!("v{i}").as_bytes()).unwrap();
    }
    let start = Instant::now();
    let killed = loop {
        let n = kill_sessions(
            "wb_test_mid_statement",
            "state = 'active' AND wait_event_type = 'Lock'",
        );
        if n > 0 || start.elapsed() > Duration::from_secs(10) {
            break n;
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(killed, 1, "the store's statement never waited on the lock");
    tx.rollback().unwrap();
    wb.sync_timeout(Duration::from_secs(30)).unwrap();
    let stats = wb.stats();
    assert!(stats.store_errors >= 1 && stats.retries >= 1, "{stats:?}");
    assert_table_matches_cache(&table, &wb, &keys);
    drop(w);
    wb.close().unwrap();
}

#[test]
fn a_table_recreated_while_the_cache_was_disconnected_fences_it() {
    let table = fresh("recreated");
    let mut pg = pg_config(&table);
    pg.url = url_named("wb_test_recreated");
    let mut cfg = config();
    cfg.close_timeout = Duration::from_millis(500);
    let wb = WriteBehind::open_postgres(pg, cfg).unwrap();
    let mut w = wb.writer().unwrap();
    w.put(b"k", b"1").unwrap();
    wb.sync().unwrap();
    let mut admin = client();
    let killed = kill_sessions("wb_test_recreated", "true");
    assert_eq!(killed, 1);
    admin
        .batch_execute(&format!(
            "DROP TABLE {table}; CREATE TABLE {table} (key bytea PRIMARY KEY, version bigint NOT NULL, value bytea)"
        ))
        .unwrap();
    w.put(b"k", b"2").unwrap();
    assert!(wb.sync_timeout(Duration::from_millis(500)).is_err());
    let last = wb.stats().last_store_error.expect("a store error");
    assert!(
        last.message.contains("not the table this cache opened"),
        "{last:?}"
    );
    drop(w);
    assert!(wb.close().is_err());
    assert!(rows(&table).is_empty());
}

/// `url()` with another user name.
fn url_as(user: &str) -> String {
    let u = url();
    match (u.find("://"), u.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{user}{}", &u[..s + 3], &u[at..]),
        (Some(s), _) => format!("{}{user}@{}", &u[..s + 3], &u[s + 3..]),
        _ => format!("{u} user={user}"),
    }
}

#[test]
fn a_role_without_create_rights_opens_an_existing_table() {
    let table = fresh("least_privilege");
    // The tables exist (as a deployment would create them); the cache's
    // role may only read and write them.
    WriteBehind::open_postgres(pg_config(&table), config())
        .unwrap()
        .close()
        .unwrap();
    let mut admin = client();
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS wb_limited; CREATE ROLE wb_limited LOGIN;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO wb_limited;
             GRANT SELECT, INSERT, UPDATE ON {table}, writebehind_owners TO wb_limited"
        ))
        .unwrap();
    let mut pg = pg_config(&table);
    pg.url = url_as("wb_limited");
    let result = WriteBehind::open_postgres(pg, config());
    let cleanup = || {
        client()
            .batch_execute(&format!(
                "REVOKE ALL ON {table}, writebehind_owners FROM wb_limited;
                 REVOKE USAGE ON SCHEMA public FROM wb_limited; DROP ROLE wb_limited"
            ))
            .unwrap();
    };
    let wb = match result {
        Ok(wb) => wb,
        Err(e) => {
            cleanup();
            panic!("{e:?}");
        }
    };
    let mut w = wb.writer().unwrap();
    w.put(b"k", b"v").unwrap();
    wb.sync().unwrap();
    drop(w);
    wb.close().unwrap();
    cleanup();
    assert_eq!(rows(&table)[&b"k".to_vec()], (1, Some(b"v".to_vec())));
}

/// G9: `PgConfig`'s durations are checked by `PgConfig::validate` (which
/// `PgStore::open` calls) without a database. (Moved here from
/// `g9_config_durations.rs` with `PgConfig`, which needs the feature.)
#[test]
fn g9_postgres_timeouts_extremes() {
    let pg = |connect_timeout, statement_timeout| {
        PgConfig::new("host=/nonexistent")
            .connect_timeout(connect_timeout)
            .statement_timeout(statement_timeout)
    };
    let ok = Duration::from_secs(5);
    let connect = [
        (Duration::ZERO, false),
        (Duration::from_nanos(1), true),
        (Config::INTERVAL_MAX, true),
        (Config::INTERVAL_MAX + Duration::from_nanos(1), false),
        (Duration::MAX, false),
    ];
    for (value, valid) in connect {
        match pg(value, ok).validate() {
            Ok(()) => assert!(valid, "connect_timeout = {value:?} accepted"),
            Err(Error::Config(msg)) => {
                assert!(!valid, "connect_timeout = {value:?} refused: {msg}");
                assert!(msg.contains("connect_timeout"), "{msg}");
            }
            Err(e) => panic!("connect_timeout = {value:?}: {e}"),
        }
    }
    let statement = [
        (Duration::ZERO, true), // zero: no timeout
        (Duration::from_nanos(1), true),
        (Duration::from_millis(i32::MAX as u64), true),
        (Duration::from_millis(i32::MAX as u64 + 1), false),
        (Duration::MAX, false),
    ];
    for (value, valid) in statement {
        match pg(ok, value).validate() {
            Ok(()) => assert!(valid, "statement_timeout = {value:?} accepted"),
            Err(Error::Config(msg)) => {
                assert!(!valid, "statement_timeout = {value:?} refused: {msg}");
                assert!(msg.contains("statement_timeout"), "{msg}");
            }
            Err(e) => panic!("statement_timeout = {value:?}: {e}"),
        }
    }
}

/// A table larger than the cache's budget: 2,000,000 keys written through a
/// budget that holds about 2% of them. Writes go behind, clean keys are
/// evicted, reads go through (`SELECT ... WHERE key = $1`); a reopen loads
/// no row (only the version floor) and every sampled key reads back at its
/// last value and version; a put to an evicted key lands past the version
/// guard and wins after another reopen.
#[test]
fn g11_a_table_larger_than_the_budget_reads_through_and_restarts_without_loading() {
    const ROWS: u64 = 2_000_000;
    let table = fresh("larger_than_memory");
    let key = |i: u64| format!("user:{i:09}").into_bytes();
    let value = |i: u64| format!("profile-{i}-{:024}", i * 13).into_bytes();
    let cache = || {
        Config::default()
            .memory_bytes(8 << 20)
            .keys_max(1 << 20)
            .dirty_keys_max(1 << 15)
            .flush_interval(Duration::from_millis(5))
    };
    let wb = WriteBehind::open_postgres(pg_config(&table), cache()).unwrap();
    let mut w = wb.writer().unwrap();
    let mut versions = HashMap::new();
    for i in 0..ROWS {
        let v = w.put(&key(i), &value(i)).unwrap();
        if i % 997 == 0 {
            versions.insert(i, v);
        }
    }
    wb.sync().unwrap();
    let stats = wb.stats();
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(stats.resident_bytes <= 10 << 20, "{stats:?}");
    for (&i, &v) in &versions {
        let got = wb
            .get(&key(i))
            .unwrap()
            .unwrap_or_else(|| panic!("key {i} lost"));
        assert_eq!((&got[..], got.version()), (&value(i)[..], v), "key {i}");
    }
    drop(w);
    wb.close().unwrap();
    let count: i64 = client()
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0);
    assert_eq!(count as u64, ROWS);

    let opened = Instant::now();
    let wb = WriteBehind::open_postgres(pg_config(&table), cache()).unwrap();
    let open_time = opened.elapsed();
    assert_eq!(wb.stats().keys, 0, "opening loads no row");
    let mut latency = Vec::new();
    for (&i, &v) in &versions {
        let t = Instant::now();
        let got = wb.get(&key(i)).unwrap();
        latency.push(t.elapsed().as_nanos() as u64);
        let got = got.unwrap_or_else(|| panic!("key {i} lost"));
        assert_eq!((&got[..], got.version()), (&value(i)[..], v), "key {i}");
    }
    latency.sort_unstable();
    let pct = |q: f64| latency[((latency.len() - 1) as f64 * q) as usize];
    let stats = wb.stats();
    assert_eq!(stats.loads, versions.len() as u64, "{stats:?}");
    // A key not in memory: the put reads nothing and gets a version above
    // the stored row's, which the guard takes.
    let mut w = wb.writer().unwrap();
    let again = w.put(&key(1), b"changed").unwrap();
    assert!(again > Version(1), "{again:?}");
    drop(w);
    wb.close().unwrap();
    let wb = WriteBehind::open_postgres(pg_config(&table), cache()).unwrap();
    assert_eq!(wb.get(&key(1)).unwrap().as_deref(), Some(&b"changed"[..]));
    assert_eq!(wb.version(&key(1)).unwrap(), Some(again));
    wb.close().unwrap();
    eprintln!(
        "{ROWS} rows: reopened in {open_time:?}; {} misses read through: p50 {} ns, p99 {} ns, max {} ns",
        latency.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
