//! `PgStore`: the cache in front of a PostgreSQL table (cargo feature
//! `postgres`).
//!
//! # Table
//!
//! ```sql
//! CREATE TABLE writebehind (key bytea PRIMARY KEY, version bigint NOT NULL, value bytea)
//! ```
//!
//! One row per key: the newest version the database has and its value, or
//! `NULL` for a deleted key (a tombstone: it keeps the version, so a delete is
//! ordered against puts of the same key exactly like a put is). The table is
//! created if missing; if present, its columns, their types and nullability
//! and a unique index on `key` are checked, and anything else is refused with
//! [`Error::Database`] naming what differs.
//!
//! # One batch, one statement
//!
//! A batch is one prepared statement, one round trip and one transaction:
//!
//! ```sql
//! INSERT INTO t AS t (key, version, value)
//! SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[])
//! ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, value = EXCLUDED.value
//! WHERE t.version < EXCLUDED.version
//! ```
//!
//! The `WHERE` is the version guard: a row only ever moves to a higher
//! version, so an older record arriving late (a retried batch, a batch whose
//! commit outcome a dropped connection hid) changes nothing, and G2 holds in
//! the database too. A batch that failed is retried by the flusher from memory
//! with backoff; the store reconnects as needed.
//!
//! # Durability
//!
//! A batch completes when its transaction commits, so it is as durable as the
//! server makes a commit (`synchronous_commit`, replication): the store does
//! not weaken that under `Durability::None`.
//!
//! # Ownership
//!
//! A second cache on the same table would version keys independently and the
//! guard would drop its updates, so the table has one owner at a time:
//!
//! - The store's session holds a PostgreSQL advisory lock keyed on the
//!   table's OID (so `t` and `public.t` are the same lock), re-taken after
//!   every reconnect; a second opener is refused.
//! - At open, the owner bumps the table's *epoch* in `writebehind_owners`
//!   (a side table in the same schema, created if missing). After a
//!   reconnect the store checks the epoch: if another cache opened the table
//!   while this one was disconnected, the store is *fenced*: it refuses every
//!   further write with an error naming what happened (the cache turns
//!   unhealthy, `sync` and `close` report it) instead of letting the guard
//!   silently drop its updates.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Statement};

mod config;

pub use config::PgConfig;

use super::{Batch, Blocking, BlockingStore, RecoveryReport};
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::record::{self, Kind, RecordRef, Version};

/// Counters of a [`PgStore`], readable while the cache runs
/// ([`PgStore::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgStats {
    /// Batch statements that committed.
    pub statements: u64,
    /// Rows sent in committed statements.
    pub rows_sent: u64,
    /// Rows the database inserted or updated (fewer than sent when the
    /// version guard skipped rows it already had, e.g. after a retry).
    pub rows_applied: u64,
    /// Batch statements that failed.
    pub failures: u64,
    /// Connections opened after the first one (successfully).
    pub reconnects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    statements: AtomicU64,
    rows_sent: AtomicU64,
    rows_applied: AtomicU64,
    failures: AtomicU64,
    reconnects: AtomicU64,
}

/// A handle on a [`PgStore`]'s counters that stays valid after the store
/// moved into the cache.
#[derive(Debug, Clone)]
pub struct PgStatsHandle(Arc<Counters>);

impl PgStatsHandle {
    /// The counters now.
    pub fn get(&self) -> PgStats {
        let c = &self.0;
        PgStats {
            statements: c.statements.load(Ordering::Relaxed),
            rows_sent: c.rows_sent.load(Ordering::Relaxed),
            rows_applied: c.rows_applied.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// The PostgreSQL store. Open it with [`PgStore::open`], which wraps it in the
/// [`Blocking`] adapter so its network calls run on a thread of their own.
pub struct PgStore {
    cfg: PgConfig,
    pg: postgres::Config,
    /// The table, schema-qualified (resolved once, at open, so a reconnect
    /// under another `search_path` cannot land elsewhere), quoted for SQL.
    table: String,
    /// The same, unquoted (`schema.name`): the owner key and lock name.
    qualified: String,
    upsert_sql: String,
    /// The side table of owner epochs in the table's schema, quoted.
    owners: String,
    /// The table's OID at open: a reconnect that finds another table under
    /// the name fences the store.
    oid: i64,
    /// The epoch this store took at open.
    epoch: Option<i64>,
    /// Set once another cache took the table: every write fails with it.
    fenced: Option<String>,
    conn: Option<Conn>,
    counters: Arc<Counters>,
}

struct Conn {
    client: Client,
    upsert: Statement,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("table", &self.table)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

/// The expected columns: name, type as `format_type` prints it, NOT NULL.
const COLUMNS: [(&str, &str, bool); 3] = [
    ("key", "bytea", true),
    ("version", "bigint", true),
    ("value", "bytea", false),
];

/// The owners table's columns.
const OWNER_COLUMNS: [(&str, &str, bool); 2] = [("tbl", "text", true), ("epoch", "bigint", true)];

/// Checks that `table` (quoted) has exactly `expected` columns, in order;
/// `name` is how errors call it.
fn check_columns(
    client: &mut Client,
    table: &str,
    name: &str,
    expected: &[(&str, &str, bool)],
) -> Result<(), Error> {
    let found: Vec<(String, String, bool)> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
             FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&table],
        )
        .map_err(|e| db_error(name, "reading its columns", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let matches = found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|(f, (n, ty, not_null))| f.0 == *n && f.1 == *ty && f.2 == *not_null);
    if matches {
        return Ok(());
    }
    let show = |cols: &mut dyn Iterator<Item = (&str, &str, bool)>| {
        cols.map(|(n, t, nn)| format!("{n} {t}{}", if nn { " NOT NULL" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::Database(format!(
        "table {name} has columns ({}), expected exactly ({}); use another table or migrate this one",
        show(&mut found.iter().map(|(n, t, nn)| (n.as_str(), t.as_str(), *nn))),
        show(&mut expected.iter().copied())
    )))
}

/// High 32 bits of the advisory lock key (the low 32 are the table's OID):
/// "wb" in ASCII, so the locks are recognisable in `pg_locks`.
const LOCK_CLASS: i64 = 0x7762;

/// The side table of owner epochs, per schema.
const OWNERS_TABLE: &str = "writebehind_owners";

impl PgStore {
    /// Connects to `pg.url`, creates the table if missing or checks it if
    /// present, takes ownership of the table (advisory lock and epoch), and
    /// returns the store behind its thread adapter, ready for
    /// [`WriteBehind::with_store`](crate::WriteBehind::with_store).
    pub fn open(pg: PgConfig) -> Result<Blocking<PgStore>, Error> {
        Ok(Blocking::new(Self::connect(pg)?))
    }

    /// The store itself, connected, its table created or checked and locked,
    /// without the thread adapter (for tests and tools that call
    /// [`BlockingStore::write`] directly, or that keep a [`PgStore::stats`]
    /// handle before wrapping it in [`Blocking`]).
    pub fn connect(cfg: PgConfig) -> Result<PgStore, Error> {
        cfg.validate()?;
        let mut pg: postgres::Config = cfg.url.parse().map_err(|e| {
            Error::Config(format!(
                "postgres.url is not a connection string libpq would take: {e}"
            ))
        })?;
        pg.connect_timeout(cfg.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("writebehind");
        }
        // A peer that vanished without closing the TCP connection (a crashed
        // host, a dropped route) would otherwise hold the store thread for
        // the kernel's 2-hour keepalive default. Kept if the URL sets it.
        if pg.get_keepalives_idle() == std::time::Duration::from_secs(2 * 60 * 60) {
            pg.keepalives_idle(std::time::Duration::from_secs(10));
            pg.keepalives_interval(std::time::Duration::from_secs(2));
            pg.keepalives_retries(3);
        }
        let mut store = PgStore {
            pg,
            table: Self::quote_table(&cfg.table),
            qualified: String::new(),
            upsert_sql: String::new(),
            owners: String::new(),
            oid: 0,
            epoch: None,
            fenced: None,
            conn: None,
            counters: Arc::default(),
            cfg,
        };
        let (oid, schema, name) = store.ensure_table()?;
        store.oid = oid;
        store.table = quote(&[&schema, &name]);
        store.qualified = format!("{schema}.{name}");
        store.owners = quote(&[&schema, OWNERS_TABLE]);
        store.upsert_sql = format!(
            "INSERT INTO {} AS t (key, version, value) \
             SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) \
             ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, value = EXCLUDED.value \
             WHERE t.version < EXCLUDED.version",
            store.table
        );
        let conn = store.open_conn().map_err(|e| Error::Database(e.message))?;
        store.conn = Some(conn);
        Ok(store)
    }

    /// A handle on the store's counters.
    pub fn stats(&self) -> PgStatsHandle {
        PgStatsHandle(Arc::clone(&self.counters))
    }

    fn db_err(&self, what: &str, e: postgres::Error) -> Error {
        db_error(&self.cfg.table, what, &e)
    }

    /// `table` (`name` or `schema.name`, as `PgConfig::validate` accepts)
    /// quoted for SQL.
    pub fn quote_table(table: &str) -> String {
        quote(&table.split('.').collect::<Vec<_>>())
    }

    /// Creates the table if missing (only then: a role without CREATE on
    /// the schema can open an existing table), checks its shape, creates the
    /// owners table beside it if missing. Returns the table's OID, schema and
    /// name.
    fn ensure_table(&mut self) -> Result<(i64, String, String), Error> {
        let mut client = self
            .pg
            .connect(NoTls)
            .map_err(|e| self.db_err("connecting", e))?;
        let resolve = |client: &mut Client, name: &str| {
            client
                .query_opt(
                    "SELECT c.oid::bigint, n.nspname::text, c.relname::text \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.oid = to_regclass($1)",
                    &[&name],
                )
                .map(|r| r.map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1), r.get(2))))
        };
        if resolve(&mut client, &self.table)
            .map_err(|e| self.db_err("looking the table up", e))?
            .is_none()
        {
            let create = format!(
                "CREATE TABLE IF NOT EXISTS {} (key bytea PRIMARY KEY, version bigint NOT NULL, value bytea)",
                self.table
            );
            client
                .batch_execute(&create)
                .map_err(|e| self.db_err("creating the table", e))?;
        }
        let (oid, schema, name) = resolve(&mut client, &self.table)
            .map_err(|e| self.db_err("looking the table up", e))?
            .ok_or_else(|| {
                Error::Database(format!("{}: created, but not found", self.cfg.table))
            })?;
        let owners = quote(&[&schema, OWNERS_TABLE]);
        if resolve(&mut client, &owners)
            .map_err(|e| self.db_err("looking the owners table up", e))?
            .is_none()
        {
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {owners} (tbl text PRIMARY KEY, epoch bigint NOT NULL)"
                ))
                .map_err(|e| self.db_err("creating the owners table", e))?;
        }
        check_columns(&mut client, &self.table, &self.cfg.table, &COLUMNS)?;
        check_columns(
            &mut client,
            &owners,
            &format!("{schema}.{OWNERS_TABLE}"),
            &OWNER_COLUMNS,
        )?;
        let unique: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 \
                   AND i.indimmediate AND i.indisvalid AND i.indisready \
                   AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'key'",
                &[&self.table],
            )
            .map_err(|e| self.db_err("reading the table's indexes", e))?
            .get(0);
        if unique == 0 {
            return Err(Error::Database(format!(
                "table {} has no valid, non-deferrable unique index on (key) alone; the upsert needs one (PRIMARY KEY (key))",
                self.cfg.table
            )));
        }
        client
            .close()
            .map_err(|e| self.db_err("disconnecting", e))?;
        Ok((oid, schema, name))
    }

    /// Opens the session batches are written on: the advisory lock, the
    /// owner epoch (taken at open, checked after), the statement timeout,
    /// the prepared upsert.
    fn open_conn(&mut self) -> Result<Conn, StoreError> {
        let fail = |what: &str, e: postgres::Error| {
            StoreError::new(
                classify(&e),
                format!("{} ({what}): {}", self.cfg.table, describe(&e)),
            )
        };
        let mut client = self.pg.connect(NoTls).map_err(|e| fail("connecting", e))?;
        // Keyed on the qualified name, so a table dropped and recreated under
        // a running cache is still its: no second cache gets in.
        let (locked, lock_key): (bool, i64) = client
            .query_one(
                "SELECT pg_try_advisory_lock(k), k \
                 FROM (SELECT ($1::bigint << 32) | (hashtext($2)::bigint & 4294967295) AS k) s",
                &[&LOCK_CLASS, &self.qualified],
            )
            .map(|r| (r.get(0), r.get(1)))
            .map_err(|e| fail("taking the table's advisory lock", e))?;
        if !locked {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "table {} is in use by another writebehind session (advisory lock {lock_key} is held)",
                    self.qualified
                ),
            ));
        }
        let fence = |this: &mut Self, why: String| {
            this.fenced = Some(why.clone());
            // Returning drops the client: the session and its lock end.
            StoreError::new(StoreErrorKind::Other, why)
        };
        match self.epoch {
            None => {
                // Opening: take the table.
                let epoch = client
                    .query_one(
                        &format!(
                            "INSERT INTO {o} AS o (tbl, epoch) VALUES ($1, 1) \
                             ON CONFLICT (tbl) DO UPDATE SET epoch = o.epoch + 1 RETURNING epoch",
                            o = self.owners
                        ),
                        &[&self.qualified],
                    )
                    .map_err(|e| fail("taking the table's owner epoch", e))?
                    .get(0);
                self.epoch = Some(epoch);
            }
            Some(mine) => {
                // Reconnecting: is it the same table, and still ours?
                let oid: Option<i64> = client
                    .query_one("SELECT to_regclass($1)::oid::bigint", &[&self.table])
                    .map_err(|e| fail("looking the table up", e))?
                    .get(0);
                if oid != Some(self.oid) {
                    return Err(fence(
                        self,
                        format!(
                            "table {} is not the table this cache opened (dropped, recreated or replaced while it was disconnected); \
                             this cache no longer writes to it",
                            self.qualified
                        ),
                    ));
                }
                let epoch: Option<i64> = client
                    .query_opt(
                        &format!("SELECT epoch FROM {} WHERE tbl = $1", self.owners),
                        &[&self.qualified],
                    )
                    .map_err(|e| fail("reading the table's owner epoch", e))?
                    .map(|r| r.get(0));
                if epoch != Some(mine) {
                    return Err(fence(
                        self,
                        format!(
                            "table {} was opened by another cache while this one was disconnected (owner epoch {mine} -> {}); \
                             this cache no longer writes to it: its unsynced updates are not in the table",
                            self.qualified,
                            epoch.map_or("none".into(), |e| e.to_string())
                        ),
                    ));
                }
            }
        }
        // The server's side of the keepalives (ignored on a Unix socket):
        // a client that vanished must not hold the lock for hours.
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET tcp_keepalives_idle = 10; \
                 SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3",
                self.cfg.statement_timeout.as_millis()
            ))
            .map_err(|e| fail("setting the session's timeouts", e))?;
        let upsert = client
            .prepare(&self.upsert_sql)
            .map_err(|e| fail("preparing the upsert", e))?;
        Ok(Conn { client, upsert })
    }

    fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if let Some(why) = &self.fenced {
            return Err(StoreError::new(StoreErrorKind::Other, why.clone()));
        }
        if self.conn.is_none() {
            let conn = self.open_conn()?;
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::new(StoreErrorKind::Connection, "not connected"))
    }
}

/// `parts` (identifiers) joined by dots, each double-quoted.
fn quote(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// An error of an operation `what` on table `name`, as `Error::Database`.
fn db_error(name: &str, what: &str, e: &postgres::Error) -> Error {
    Error::Database(format!("{name} ({what}): {}", describe(e)))
}

/// The error's text with the server's detail, when there is one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    }
}

/// Which kind of failure `e` is, for stats and for deciding to reconnect.
fn classify(e: &postgres::Error) -> StoreErrorKind {
    let Some(code) = e.code() else {
        // No SQLSTATE: an I/O error or a closed connection.
        return StoreErrorKind::Connection;
    };
    if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
        StoreErrorKind::Timeout
    } else if *code == SqlState::DISK_FULL {
        StoreErrorKind::NoSpace
    } else if code.code().starts_with("08") || code.code().starts_with("57P") {
        // Class 08: connection exceptions; 57P01-57P05: admin/crash
        // shutdown, cannot connect now, idle session timeout.
        StoreErrorKind::Connection
    } else {
        StoreErrorKind::Write
    }
}

impl BlockingStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        let max = self.cfg.recover_rows_max;
        let name = self.cfg.table.clone();
        let select = format!("SELECT key, version, value FROM {}", self.table);
        let count = format!("SELECT count(*) FROM {}", self.table);
        let conn = self.conn().map_err(|e| Error::Database(e.message))?;
        let db = |what: &str, e: postgres::Error| db_error(&name, what, &e);
        // One snapshot for the count and the rows.
        let mut tx = conn
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| db("starting the recovery transaction", e))?;
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .map_err(|e| db("recovery", e))?;
        let rows: i64 = tx
            .query_one(&count, &[])
            .map_err(|e| db("counting rows", e))?
            .get(0);
        let rows = u64::try_from(rows).unwrap_or(0);
        if rows > max {
            return Err(Error::TooManyRows { rows, max });
        }
        let mut it = tx
            .query_raw(&select, std::iter::empty::<&dyn ToSql>())
            .map_err(|e| db("reading rows", e))?;
        let mut records = 0u64;
        while let Some(row) = it.next().map_err(|e| db("reading rows", e))? {
            let key: &[u8] = row.try_get(0).map_err(|e| db("reading rows", e))?;
            let version: i64 = row.try_get(1).map_err(|e| db("reading rows", e))?;
            let value: Option<&[u8]> = row.try_get(2).map_err(|e| db("reading rows", e))?;
            if key.is_empty() || version < 1 {
                return Err(Error::Database(format!(
                    "{name}: a row has key {:?} and version {version}: keys are non-empty and versions start at 1",
                    String::from_utf8_lossy(key)
                )));
            }
            records += 1;
            // The count above saw the same snapshot; this only guards it.
            if records > max {
                return Err(Error::TooManyRows { rows: records, max });
            }
            visit(RecordRef {
                kind: if value.is_some() {
                    Kind::Put
                } else {
                    Kind::Delete
                },
                version: Version(version as u64),
                key,
                value: value.unwrap_or_default(),
            });
        }
        drop(it);
        tx.commit()
            .map_err(|e| db("ending the recovery transaction", e))?;
        Ok(RecoveryReport {
            records,
            torn_tails: 0,
        })
    }

    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        // Decode everything first: a malformed batch sends nothing.
        let mut keys: Vec<&[u8]> = Vec::with_capacity(batch.records);
        let mut versions: Vec<i64> = Vec::with_capacity(batch.records);
        let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(batch.records);
        // One row per key per statement (ON CONFLICT cannot touch a row
        // twice); the flusher coalesces, this only guards the contract.
        let mut seen: HashMap<&[u8], usize> = HashMap::with_capacity(batch.records);
        for r in record::iter(&batch.bytes) {
            let r = r.map_err(|(offset, e)| {
                StoreError::new(
                    StoreErrorKind::Corrupt,
                    format!("batch {} record at offset {offset}: {e}", batch.seq.0),
                )
            })?;
            let version = i64::try_from(r.version.0).map_err(|_| {
                StoreError::new(
                    StoreErrorKind::Corrupt,
                    format!("version {} does not fit a bigint", r.version.0),
                )
            })?;
            let value = (r.kind == Kind::Put).then_some(r.value);
            match seen.get(r.key) {
                Some(&i) if versions[i] >= version => {}
                Some(&i) => {
                    versions[i] = version;
                    values[i] = value;
                }
                None => {
                    seen.insert(r.key, keys.len());
                    keys.push(r.key);
                    versions.push(version);
                    values.push(value);
                }
            }
        }
        if keys.is_empty() {
            // A sync-only batch: every earlier batch committed before this
            // one was taken (one thread, in order), and a commit is durable.
            return Ok(());
        }
        let counters = Arc::clone(&self.counters);
        let table = self.cfg.table.clone();
        let result = match self.conn() {
            Ok(conn) => conn
                .client
                .execute(&conn.upsert, &[&keys, &versions, &values])
                .map_err(|e| {
                    StoreError::new(
                        classify(&e),
                        format!(
                            "{table}: batch {} of {} rows: {}",
                            batch.seq.0,
                            keys.len(),
                            describe(&e)
                        ),
                    )
                }),
            Err(e) => Err(e),
        };
        match result {
            Ok(applied) => {
                counters.statements.fetch_add(1, Ordering::Relaxed);
                counters
                    .rows_sent
                    .fetch_add(keys.len() as u64, Ordering::Relaxed);
                counters.rows_applied.fetch_add(applied, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                // Reconnect before the retry unless the session is known
                // good (a statement timeout leaves it usable).
                let keep = e.kind == StoreErrorKind::Timeout
                    && self.conn.as_ref().is_some_and(|c| !c.client.is_closed());
                if !keep {
                    self.conn = None;
                }
                Err(e)
            }
        }
    }

    fn after_panic(&mut self) {
        self.conn = None;
    }

    fn close(&mut self) -> Result<(), StoreError> {
        match self.conn.take() {
            Some(conn) => conn.client.close().map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Connection,
                    format!(
                        "{}: closing the connection: {}",
                        self.cfg.table,
                        describe(&e)
                    ),
                )
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_table_quotes_each_part_and_escapes_quotes() {
        assert_eq!(PgStore::quote_table("order"), "\"order\"");
        assert_eq!(PgStore::quote_table("s.t"), "\"s\".\"t\"");
        assert_eq!(quote(&["a\"b"]), "\"a\"\"b\"");
    }
}
