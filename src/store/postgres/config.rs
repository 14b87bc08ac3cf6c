//! `PgConfig`: where the PostgreSQL store's table is and how to talk to it,
//! validated before anything connects.

use std::time::Duration;

use super::sql::OWNERS_TABLE;
use crate::config::check_interval;
use crate::error::Error;

/// Settings of the PostgreSQL store ([`PgStore`](crate::PgStore), cargo
/// feature `postgres`), given to [`PgStore::open`](crate::PgStore::open) or
/// [`WriteBehind::open_postgres`](crate::WriteBehind::open_postgres) beside
/// the cache's [`Config`](crate::Config).
///
/// The table has three columns, `key bytea PRIMARY KEY`, `version bigint NOT
/// NULL` and `value bytea` (`NULL` for a deleted key, a tombstone that keeps
/// its version); it is created if missing and checked if present.
///
/// ```
/// use writebehind::PgConfig;
/// let pg = PgConfig::new("postgresql://app@localhost/app?host=/run/postgresql")
///     .table("cache.sessions");
/// pg.validate()?;
/// # Ok::<(), writebehind::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgConfig {
    /// Connection string, as libpq takes it: a URL
    /// (`postgresql://user@host:5432/db`, `postgresql://user@localhost/db?host=/run/postgresql`
    /// for a Unix socket) or `key=value` pairs (`host=/run/postgresql user=app`).
    pub url: String,
    /// The table: `name` or `schema.name`, each part a lowercase SQL
    /// identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub table: String,
    /// Connections the reads of keys not in memory use at most (each miss
    /// takes one for its `SELECT`; more misses at once wait for one). Apart
    /// from the session batches are written on.
    pub read_connections: usize,
    /// How long connecting (and reconnecting after a failure) may take; in
    /// `(0, Config::INTERVAL_MAX]` (1 hour, [`Config::INTERVAL_MAX`](crate::Config::INTERVAL_MAX)).
    pub connect_timeout: Duration,
    /// `statement_timeout` of the store's session: a batch statement that runs
    /// longer fails and is retried. Zero: no timeout; at most `i32::MAX`
    /// milliseconds (about 24.8 days, PostgreSQL's limit).
    pub statement_timeout: Duration,
}

impl Default for PgConfig {
    /// No connection string (it must be set), table `writebehind`, 4
    /// reading connections, 5 s to connect, 30 s per statement.
    fn default() -> Self {
        Self {
            url: String::new(),
            table: "writebehind".into(),
            read_connections: 4,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

crate::config::setters! {
    PgConfig {
        read_connections: usize,
        connect_timeout: Duration,
        statement_timeout: Duration,
    }
}

impl PgConfig {
    /// The defaults, connecting to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Sets [`table`](Self::table).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }
}

impl PgConfig {
    /// Checks the connection string is present, the table name is one
    /// `PgStore` can quote safely, and the bounds and timeouts are in range.
    /// Called by every constructor of the store.
    ///
    /// # Errors
    /// [`Error::Config`], naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.url.trim().is_empty() {
            return bad("postgres.url is empty".into());
        }
        check_table_name(&self.table)?;
        if self.read_connections == 0 || self.read_connections > 64 {
            return bad(format!(
                "postgres.read_connections = {} must be in 1..=64",
                self.read_connections
            ));
        }
        check_interval("postgres.connect_timeout", self.connect_timeout)?;
        if self.statement_timeout.as_millis() > i32::MAX as u128 {
            return bad(format!(
                "postgres.statement_timeout = {:?} exceeds PostgreSQL's limit of {} ms; \
                 set at most that, or zero for no timeout",
                self.statement_timeout,
                i32::MAX
            ));
        }
        Ok(())
    }
}

/// Refuses a table name that is not `name` or `schema.name` of lowercase
/// identifiers (so quoting it cannot change what it names), or that is the
/// store's own side table.
fn check_table_name(table: &str) -> Result<(), Error> {
    let parts: Vec<&str> = table.split('.').collect();
    let ident_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.bytes()
                .enumerate()
                .all(|(i, b)| b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit()))
    };
    if parts.len() > 2 || !parts.iter().all(|p| ident_ok(p)) {
        return Err(Error::Config(format!(
            "postgres.table = {table:?}: expected `name` or `schema.name`, lowercase identifiers ([a-z_][a-z0-9_]*, at most 63 bytes)"
        )));
    }
    if parts.last() == Some(&OWNERS_TABLE) {
        return Err(Error::Config(format!(
            "postgres.table = {OWNERS_TABLE}: that name is the store's own side table of owner epochs"
        )));
    }
    Ok(())
}
