//! A store of your own: the cache in front of a SQLite table.
//!
//! `SqliteStore` implements [`BlockingStore`] (the cache runs it on a thread
//! of its own) and a [`StoreReader`] for read-through, and keeps the rules of
//! [`writebehind::Store`]: each row keeps its record's version, a row is
//! replaced only by a higher version (so a retried batch is harmless), a
//! delete stays as a row marked deleted with its version, and `write`
//! returns `Ok` only once its transaction is committed with
//! `synchronous = FULL`.
//!
//! The example writes, deletes and counts through the cache, closes it,
//! opens it again over the same file ("restart") and checks every key.
//!
//! ```text
//! cargo run --example sqlite_store -- [FILE]
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use writebehind::{
    Batch, Blocking, BlockingStore, Config, Error, Kind, Loaded, RecordRef, RecoveryReport,
    StoreError, StoreErrorKind, StoreReader, Unvisited, Version, WriteBehind,
};

/// The table: one row per key, holding its newest record.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (
    key     BLOB PRIMARY KEY,
    version INTEGER NOT NULL CHECK (version > 0),
    deleted INTEGER NOT NULL,
    value   BLOB NOT NULL
) WITHOUT ROWID";

/// Applies one record unless the row already holds a version as high.
const UPSERT: &str = "INSERT INTO kv (key, version, deleted, value) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (key) DO UPDATE SET
        version = excluded.version, deleted = excluded.deleted, value = excluded.value
    WHERE excluded.version > kv.version";

#[derive(Debug)]
struct SqliteStore {
    path: PathBuf,
    conn: Connection,
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL lets the reader's connection read while the writer commits; FULL
    // makes every commit durable before it returns (rule 5: `Ok` means
    // durable).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn store_error(what: &str, e: rusqlite::Error) -> StoreError {
    StoreError::new(StoreErrorKind::Write, format!("sqlite: {what}: {e}"))
}

impl SqliteStore {
    fn open(path: &Path) -> Result<Self, Error> {
        let conn = open_connection(path).map_err(|e| Error::Database(e.to_string()))?;
        conn.execute(SCHEMA, [])
            .map_err(|e| Error::Database(e.to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            conn,
        })
    }
}

impl BlockingStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// With a reader, no value is loaded at open: the cache needs only the
    /// highest version (its floor) and the longest key and value (checked
    /// against its `Config`).
    fn recover(&mut self, _visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        let (rows, version, key, value): (i64, i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(max(version), 0),
                        coalesce(max(length(key)), 0), coalesce(max(length(value)), 0)
                 FROM kv",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(|e| Error::Database(e.to_string()))?;
        let mut unvisited = Unvisited::default();
        unvisited.records = rows as u64;
        unvisited.longest_key = key as usize;
        unvisited.longest_value = value as usize;
        let mut report = RecoveryReport::default();
        report.version_floor = Version(version as u64);
        report.unvisited = unvisited;
        Ok(report)
    }

    /// One transaction per batch. A retried batch (after an error whose
    /// outcome was unknown) applies again harmlessly: the upsert's guard
    /// keeps the highest version (rules 2 and 3).
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| store_error("begin", e))?;
        {
            let mut upsert = tx
                .prepare_cached(UPSERT)
                .map_err(|e| store_error("prepare", e))?;
            for record in batch.records() {
                let r = record.map_err(|(at, e)| {
                    StoreError::new(StoreErrorKind::Other, format!("record at {at}: {e}"))
                })?;
                // Rule 4: a delete is a row marked deleted, with its version.
                let deleted = r.kind == Kind::Delete;
                upsert
                    .execute(params![r.key, r.version.0 as i64, deleted, r.value])
                    .map_err(|e| store_error("upsert", e))?;
            }
        }
        tx.commit().map_err(|e| store_error("commit", e))
    }

    fn after_panic(&mut self) {
        // A panic midway may leave a transaction open: start afresh.
        if let Ok(conn) = open_connection(&self.path) {
            self.conn = conn;
        }
    }

    fn reader(&mut self) -> Option<Arc<dyn StoreReader>> {
        let conn = open_connection(&self.path).ok()?;
        Some(Arc::new(SqliteReader(Mutex::new(conn))))
    }
}

/// Reads single keys on the caller's thread, over a connection of its own.
#[derive(Debug)]
struct SqliteReader(Mutex<Connection>);

impl StoreReader for SqliteReader {
    fn load(&self, key: &[u8], value: &mut Vec<u8>) -> Result<Option<Loaded>, StoreError> {
        let conn = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let row = conn
            .query_row(
                "SELECT version, deleted, value FROM kv WHERE key = ?1",
                params![key],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| StoreError::new(StoreErrorKind::Read, format!("sqlite: {e}")))?;
        Ok(row.map(|(version, deleted, bytes)| {
            value.clear();
            value.extend_from_slice(&bytes);
            Loaded {
                version: Version(version as u64),
                kind: if deleted { Kind::Delete } else { Kind::Put },
            }
        }))
    }
}

fn open_cache(path: &Path) -> Result<WriteBehind, Error> {
    let store = Blocking::new(SqliteStore::open(path)?);
    WriteBehind::with_store(store, Config::default().memory_bytes(1 << 20))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("writebehind-sqlite-example.db"));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }

    let wb = open_cache(&path)?;
    let mut w = wb.writer()?;
    let mut versions = Vec::new();
    for i in 0..10_000u32 {
        let key = format!("user:{i}");
        versions.push(w.put(key.as_bytes(), format!("name-{i}").as_bytes())?);
        w.add(b"signups", 1)?;
    }
    for i in (0..10_000u32).step_by(10) {
        w.delete(format!("user:{i}").as_bytes())?;
    }
    drop(w);
    wb.close()?;
    println!("wrote 10000 users, deleted 1000, closed");

    // Restart: nothing in memory, every key read through from SQLite.
    let wb = open_cache(&path)?;
    for i in 0..10_000u32 {
        let got = wb.get(format!("user:{i}").as_bytes())?;
        if i % 10 == 0 {
            assert!(got.is_none(), "user:{i} was deleted");
        } else {
            let got = got.ok_or(format!("user:{i} is missing after the restart"))?;
            assert_eq!(&got[..], format!("name-{i}").as_bytes());
            assert_eq!(got.version(), versions[i as usize], "user:{i}'s version");
        }
    }
    let signups = wb.get(b"signups")?.ok_or("the counter is missing")?;
    assert_eq!(i64::from_le_bytes(signups[..8].try_into()?), 10_000);
    // New versions continue above the stored ones.
    assert!(wb.put(b"user:1", b"renamed")? > versions[1]);
    wb.close()?;
    println!("restart check: 9000 users, 1000 deletes and the counter are as written");
    Ok(())
}
