//! Reads of single keys for read-through: `SELECT version, value FROM t
//! WHERE key = $1` on connections of their own (a small pool, so misses on
//! several threads do not queue behind one another, nor behind the batch
//! writes on the store's session).

use std::sync::{Condvar, Mutex};

use postgres::{Client, NoTls, Statement};

use super::config::PgConfig;
use super::error::store_error;
use crate::error::{StoreError, StoreErrorKind};
use crate::store::{Loaded, StoreReader};
use crate::version::{Kind, Version};

/// A reading session: the client and the prepared select.
struct ReadConn {
    client: Client,
    select: Statement,
}

/// The pool's state: idle sessions, and how many exist.
#[derive(Default)]
struct Pool {
    idle: Vec<ReadConn>,
    open: usize,
}

/// The PostgreSQL store's [`StoreReader`].
pub(super) struct PgReader {
    pg: postgres::Config,
    name: String,
    select_sql: String,
    statement_timeout_ms: u128,
    max: usize,
    pool: Mutex<Pool>,
    returned: Condvar,
}

impl std::fmt::Debug for PgReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReader")
            .field("table", &self.name)
            .field("connections_max", &self.max)
            .finish_non_exhaustive()
    }
}

impl PgReader {
    pub(super) fn new(mut pg: postgres::Config, cfg: &PgConfig, quoted_table: &str) -> Self {
        // Named apart from the writing session, so an operator (or a test)
        // can tell the two kinds of session in `pg_stat_activity`.
        let name = format!(
            "{}/read",
            pg.get_application_name().unwrap_or("writebehind")
        );
        pg.application_name(&name);
        Self {
            pg,
            name: cfg.table.clone(),
            select_sql: format!("SELECT version, value FROM {quoted_table} WHERE key = $1"),
            statement_timeout_ms: cfg.statement_timeout.as_millis(),
            max: cfg.read_connections,
            pool: Mutex::new(Pool::default()),
            returned: Condvar::new(),
        }
    }

    /// An idle session, a new one if fewer than `max` are open, or the next
    /// one returned.
    fn take(&self) -> Result<ReadConn, StoreError> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < self.max {
                pool.open += 1;
                drop(pool);
                return self.connect().inspect_err(|_| {
                    self.pool.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                    self.returned.notify_one();
                });
            }
            pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Gives `conn` back (`None`: it failed and is dropped).
    fn give_back(&self, conn: Option<ReadConn>) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        match conn {
            Some(conn) => pool.idle.push(conn),
            None => pool.open -= 1,
        }
        drop(pool);
        self.returned.notify_one();
    }

    fn connect(&self) -> Result<ReadConn, StoreError> {
        let name = &self.name;
        let mut client = self
            .pg
            .connect(NoTls)
            .map_err(|e| store_error(name, "connecting a reader", &e))?;
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET default_transaction_read_only = on",
                self.statement_timeout_ms
            ))
            .map_err(|e| store_error(name, "setting up a reader", &e))?;
        let select = client
            .prepare(&self.select_sql)
            .map_err(|e| store_error(name, "preparing the read", &e))?;
        Ok(ReadConn { client, select })
    }
}

impl PgReader {
    /// Runs the select on a pooled session. A session found dead (the
    /// server restarted, or ended it) is replaced once: an idle session
    /// may have been ended long before this read.
    fn query(&self, key: &[u8]) -> Result<Option<postgres::Row>, StoreError> {
        let mut last = None;
        for _ in 0..2 {
            let mut conn = self.take()?;
            match conn.client.query_opt(&conn.select, &[&key]) {
                Ok(row) => {
                    self.give_back(Some(conn));
                    return Ok(row);
                }
                Err(e) => {
                    let err = store_error(&self.name, "reading a key", &e);
                    let dead = conn.client.is_closed() || err.kind == StoreErrorKind::Connection;
                    self.give_back((!dead).then_some(conn));
                    if !dead {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| StoreError::new(StoreErrorKind::Connection, "no session")))
    }
}

impl StoreReader for PgReader {
    fn load(&self, key: &[u8], value: &mut Vec<u8>) -> Result<Option<Loaded>, StoreError> {
        value.clear();
        let Some(row) = self.query(key)? else {
            return Ok(None);
        };
        let bad = |e: postgres::Error| store_error(&self.name, "reading a key", &e);
        let version: i64 = row.try_get(0).map_err(bad)?;
        let stored: Option<&[u8]> = row.try_get(1).map_err(bad)?;
        if version < 1 {
            return Err(StoreError::new(
                StoreErrorKind::Read,
                format!(
                    "{}: key {:?} has version {version}: versions start at 1",
                    self.name,
                    String::from_utf8_lossy(key)
                ),
            ));
        }
        if let Some(v) = stored {
            value.extend_from_slice(v);
        }
        Ok(Some(Loaded {
            version: Version(version as u64),
            kind: if stored.is_some() {
                Kind::Put
            } else {
                Kind::Delete
            },
        }))
    }
}
