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
//! not weaken that under `Durability::Deferred`.
//!
//! # Ownership
//!
//! A second cache on the same table would version keys independently and the
//! guard would drop its updates, so the table has one owner at a time:
//!
//! - The store's session holds a PostgreSQL advisory lock keyed on the
//!   table's schema-qualified name (so `t` and `public.t` are the same lock),
//!   re-taken after every reconnect; a second opener is refused.
//! - At open, the owner bumps the table's *epoch* in `writebehind_owners`
//!   (a side table in the same schema, created if missing). After a
//!   reconnect the store checks the epoch: if another cache opened the table
//!   while this one was disconnected, the store is *fenced*: it refuses every
//!   further write with an error naming what happened (the cache turns
//!   unhealthy, `sync` and `close` report it) instead of letting the guard
//!   silently drop its updates.
//!   A reconnect that finds another table under the name (dropped and
//!   recreated meanwhile) fences the store too.
//!
//! # Files
//!
//! `config` (the settings), `schema` (the table at open), `ownership` (the
//! lock, the epoch, fencing), `session` (connecting and reconnecting),
//! `write` (a batch as one statement), `recover` (the rows at open), `stats`
//! (the counters), `error` and `sql` (errors and identifier quoting).

mod config;
mod error;
mod ownership;
mod read;
mod recover;
mod schema;
mod session;
mod sql;
mod stats;
mod write;

use std::fmt;
use std::sync::Arc;

pub use config::PgConfig;
pub use stats::{PgStats, PgStatsHandle};

use self::error::describe;
use self::ownership::Ownership;
use self::schema::Table;
use self::session::Conn;
use self::stats::Counters;
use super::{Batch, Blocking, BlockingStore, RecoveryReport};
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::record::RecordRef;

/// The PostgreSQL store. Open it with [`PgStore::open`], which wraps it in the
/// [`Blocking`] adapter so its network calls run on a thread of their own, or
/// let [`WriteBehind::open_postgres`](crate::WriteBehind::open_postgres) do it.
///
/// ```no_run
/// use writebehind::{Config, PgConfig, PgStore, WriteBehind};
/// let pg = PgConfig::new("postgresql://app@localhost/app");
/// let store = PgStore::connect(pg)?;
/// let counters = store.stats(); // still readable once the cache owns the store
/// let wb = WriteBehind::with_store(writebehind::Blocking::new(store), Config::default())?;
/// # wb.close()?;
/// println!("{:?}", counters.get());
/// # Ok::<(), writebehind::Error>(())
/// ```
pub struct PgStore {
    cfg: PgConfig,
    /// `cfg.url` parsed, with the store's timeouts (`session::client_config`).
    pg: postgres::Config,
    /// The table, resolved at open.
    table: Table,
    /// The batch statement (module docs), on the resolved table.
    upsert_sql: String,
    /// The lock and epoch this store holds on the table.
    ownership: Ownership,
    /// The session; `None` after a failure until the next write reopens it.
    conn: Option<Conn>,
    /// A reader was handed out: recovery reads only the version floor.
    reads_keys: bool,
    counters: Arc<Counters>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("table", &self.table.quoted())
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `pg.url`, creates the table if missing or checks it if
    /// present, takes ownership of the table (advisory lock and epoch), and
    /// returns the store behind its thread adapter, ready for
    /// [`WriteBehind::with_store`](crate::WriteBehind::with_store).
    ///
    /// # Errors
    /// [`Error::Config`] if `pg` does not validate, [`Error::Database`] if
    /// connecting fails, the table has another shape, or another cache
    /// owns it.
    pub fn open(pg: PgConfig) -> Result<Blocking<PgStore>, Error> {
        Ok(Blocking::new(Self::connect(pg)?))
    }

    /// The store itself, connected, its table created or checked and locked,
    /// without the thread adapter (for tests and tools that call
    /// [`BlockingStore::write`] directly, or that keep a [`PgStore::stats`]
    /// handle before wrapping it in [`Blocking`]).
    ///
    /// # Errors
    /// As [`PgStore::open`].
    pub fn connect(cfg: PgConfig) -> Result<PgStore, Error> {
        cfg.validate()?;
        let pg = session::client_config(&cfg)?;
        let table = schema::ensure_table(&pg, &cfg.table)?;
        let upsert_sql = format!(
            "INSERT INTO {} AS t (key, version, value) \
             SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) \
             ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, value = EXCLUDED.value \
             WHERE t.version < EXCLUDED.version",
            table.quoted()
        );
        let mut store = PgStore {
            cfg,
            pg,
            table,
            upsert_sql,
            ownership: Ownership::default(),
            conn: None,
            reads_keys: false,
            counters: Arc::default(),
        };
        let conn = store.open_conn().map_err(|e| Error::Database(e.message))?;
        store.conn = Some(conn);
        Ok(store)
    }

    /// A handle on the store's counters.
    pub fn stats(&self) -> PgStatsHandle {
        PgStatsHandle(Arc::clone(&self.counters))
    }
}

impl BlockingStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        if self.reads_keys {
            return self.recover_floor();
        }
        self.recover_rows(visit)
    }

    fn reader(&mut self) -> Option<Arc<dyn crate::store::StoreReader>> {
        self.reads_keys = true;
        Some(Arc::new(read::PgReader::new(
            self.pg.clone(),
            &self.cfg,
            &self.table.quoted(),
        )))
    }

    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.write_batch(batch)
    }

    fn after_panic(&mut self) {
        self.conn = None;
    }

    fn close(&mut self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        conn.client.close().map_err(|e| {
            StoreError::new(
                StoreErrorKind::Connection,
                format!(
                    "{}: closing the connection: {}",
                    self.cfg.table,
                    describe(&e)
                ),
            )
        })
    }
}
