//! `wb bench --store postgres://...`: the cache on a PostgreSQL table, and the
//! baseline a service would write without it: one autocommit
//! `INSERT ... ON CONFLICT` per update, against the same database in the same
//! run. Built with the tools' `postgres` feature; without it, asking for a
//! PostgreSQL store is a clear error.

use serde::Serialize;

/// What the database saw while the load ran.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DbReport {
    /// The cache's table.
    pub table: String,
    /// Batch statements (one transaction each) committed over the window.
    pub statements_per_s: f64,
    /// Rows sent in them per second.
    pub rows_per_s: f64,
    /// Of those, rows the database inserted or updated (the version guard
    /// skips rows it already has).
    pub rows_applied_per_s: f64,
    /// Failed statements and reconnects over the whole run.
    pub failures: u64,
    /// Reconnects over the whole run.
    pub reconnects: u64,
}

/// The store's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbCounters {
    pub statements: u64,
    pub rows_sent: u64,
    pub rows_applied: u64,
    pub failures: u64,
    pub reconnects: u64,
}

/// The table of the per-update baseline, next to the cache's.
pub fn baseline_table(table: &str) -> String {
    format!("{table}_per_update")
}

/// `url` without its password (`user:password@` or `password=` in the
/// query string or a key=value string).
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let (Some(s), Some(at)) = (out.find("://"), out.rfind('@')) {
        if let Some(colon) = out[s + 3..at].find(':') {
            out.replace_range(s + 3 + colon + 1..at, "***");
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(feature = "postgres")]
mod imp {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use writebehind::postgres::{Client, NoTls, Statement};
    use writebehind::{Blocking, Config, PgConfig, PgStatsHandle, PgStore, Store};
    use writebehind_workload::Workload;

    use crate::bench::{
        counter_key, run_baseline_threads, LoadLoop, Measured, Op, Outcome, Params,
    };
    use crate::clock::Clock;

    fn connect(url: &str) -> Result<Client, String> {
        Client::connect(url, NoTls)
            .map_err(|e| format!("connecting to {}: {e}", super::redact(url)))
    }

    /// `table` quoted for SQL (`name` or `schema.name`; `reset` refuses
    /// names `PgConfig::validate` would not take).
    fn quote_table(table: &str) -> String {
        let part = |p: &str| format!("\"{}\"", p.replace('"', "\"\""));
        table.split('.').map(part).collect::<Vec<_>>().join(".")
    }

    /// The store's settings for the bench's table.
    fn pg_config(url: &str, table: &str, _config: &Config) -> PgConfig {
        PgConfig::new(url).table(table)
    }

    /// The handle `open` returns.
    pub type Handle = PgStatsHandle;

    /// The counters behind `h` now.
    pub fn counters(h: &Handle) -> super::DbCounters {
        let s = h.get();
        super::DbCounters {
            statements: s.statements,
            rows_sent: s.rows_sent,
            rows_applied: s.rows_applied,
            failures: s.failures,
            reconnects: s.reconnects,
        }
    }

    /// Drops the bench's tables, so each run starts empty.
    pub fn reset(url: &str, table: &str) -> Result<(), String> {
        // The name goes into SQL below: only names PgStore would take.
        PgConfig::new(url)
            .table(table)
            .validate()
            .map_err(|e| e.to_string())?;
        // The baseline's table name must fit PostgreSQL's 63 bytes too, or
        // it would be truncated onto something else.
        if table.rsplit('.').next().map_or(0, str::len) + "_per_update".len() > 63 {
            return Err(format!(
                "--pg-table {table}: at most 52 bytes (the baseline uses {table}_per_update)"
            ));
        }
        let mut c = connect(url)?;
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}",
            quote_table(table),
            quote_table(&super::baseline_table(table))
        ))
        .map_err(|e| format!("dropping the bench tables: {e}"))
    }

    /// The cache's store on `table`, and a handle on its counters.
    /// `in_flight`: batches in flight if not the adapter's one (also capped
    /// by `config`).
    pub fn open(
        url: &str,
        table: &str,
        config: &Config,
        in_flight: Option<usize>,
    ) -> Result<(Box<dyn Store>, PgStatsHandle), String> {
        let store = PgStore::connect(pg_config(url, table, config)).map_err(|e| e.to_string())?;
        let stats = store.stats();
        let store = match in_flight {
            Some(n) => Blocking::new(store).with_in_flight_max(n),
            None => Blocking::new(store),
        };
        Ok((Box::new(store), stats))
    }

    /// Baseline: each writer thread has its own connection and sends every
    /// update as one autocommit `INSERT ... ON CONFLICT` (the same row shape
    /// and version guard as the cache's batches), as fast as the database
    /// answers (closed loop), same keys, values and op mix.
    pub fn per_update(
        url: &str,
        table: &str,
        workload: &Arc<Workload>,
        p: &Params,
        clock: &Clock,
    ) -> Result<Measured, String> {
        let table = super::baseline_table(table);
        let sql = create_baseline_table(url, &table)?;
        let select_sql = format!("SELECT value FROM {} WHERE key = $1", quote_table(&table));
        let stop = Arc::new(AtomicBool::new(false));
        let version = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let threads: Vec<_> = (0..p.writers)
            .map(|t| {
                let (stop, version, workload, clock) = (
                    Arc::clone(&stop),
                    Arc::clone(&version),
                    Arc::clone(workload),
                    *clock,
                );
                let (url, sql, mix) = (url.to_string(), sql.clone(), p.mix);
                let select_sql = select_sql.clone();
                std::thread::spawn(move || -> Result<Outcome, String> {
                    let mut client = connect(&url)?;
                    let stmt = client.prepare(&sql).map_err(|e| e.to_string())?;
                    let select = client.prepare(&select_sql).map_err(|e| e.to_string())?;
                    let mut counters = HashMap::<Vec<u8>, i64>::new();
                    // A statement takes a round trip: look at `stop` after each.
                    let looping = LoadLoop {
                        clock: &clock,
                        rate: None,
                        stop: &stop,
                        ops_per_stop_check: 1,
                    };
                    looping.run(t * 7919, |pos| {
                        let v = version.fetch_add(1, Ordering::Relaxed) as i64 + 1;
                        let mut row = Row {
                            client: &mut client,
                            stmt: &stmt,
                            select: &select,
                            counters: &mut counters,
                        };
                        row.send(&workload, mix.op_at(pos), pos, v)
                    })
                })
            })
            .collect();
        run_baseline_threads(
            p.baseline_seconds,
            &stop,
            threads,
            start,
            format!(
                "one autocommit INSERT ... ON CONFLICT per update, {} connection(s), closed loop, table {table}",
                p.writers
            ),
        )
    }

    /// Creates the per-update baseline's table; returns the statement that
    /// writes one row of it.
    fn create_baseline_table(url: &str, table: &str) -> Result<String, String> {
        let q = quote_table(table);
        connect(url)?
            .batch_execute(&format!(
                "CREATE TABLE {q} (key bytea PRIMARY KEY, version bigint NOT NULL, value bytea)"
            ))
            .map_err(|e| format!("creating {table}: {e}"))?;
        Ok(format!(
            "INSERT INTO {q} AS t (key, version, value) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, value = EXCLUDED.value \
             WHERE t.version < EXCLUDED.version"
        ))
    }

    /// One per-update baseline connection, its prepared statement, and the
    /// counters it has added to (their values are sent as rows).
    struct Row<'a> {
        client: &'a mut Client,
        stmt: &'a Statement,
        select: &'a Statement,
        counters: &'a mut HashMap<Vec<u8>, i64>,
    }

    impl Row<'_> {
        /// Sends operation `op` of trace position `pos` at version `v`.
        fn send(&mut self, workload: &Workload, op: Op, pos: usize, v: i64) -> Result<(), String> {
            let (client, stmt) = (&mut *self.client, self.stmt);
            let key = workload.key(pos);
            let result = match op {
                Op::Put => client.execute(stmt, &[&key, &v, &Some(&workload.value[..])]),
                Op::Add => {
                    let k = counter_key(key);
                    let n = self.counters.entry(k.clone()).or_insert(0);
                    *n += 1;
                    let bytes = n.to_le_bytes();
                    client.execute(stmt, &[&k, &v, &Some(&bytes[..])])
                }
                Op::Delete => client.execute(stmt, &[&key, &v, &None::<&[u8]>]),
                // The database is the cache here: a read is a select.
                Op::Get => client.query_opt(self.select, &[&key]).map(|_| 0),
            };
            result
                .map(|_| ())
                .map_err(|e| format!("per-update baseline: {e}"))
        }
    }

    /// A new cache over `table` (verification).
    pub fn reopen(
        url: &str,
        table: &str,
        config: &Config,
    ) -> Result<writebehind::WriteBehind, String> {
        writebehind::WriteBehind::open_postgres(pg_config(url, table, config), config.clone())
            .map_err(|e| e.to_string())
    }

    /// Rows the cache's table holds.
    pub fn count_rows(url: &str, table: &str) -> Result<u64, String> {
        let n: i64 = connect(url)?
            .query_one(&format!("SELECT count(*) FROM {}", quote_table(table)), &[])
            .map_err(|e| e.to_string())?
            .get(0);
        Ok(n as u64)
    }
}

#[cfg(feature = "postgres")]
pub use imp::*;

#[cfg(not(feature = "postgres"))]
mod imp {
    use std::sync::Arc;

    use writebehind::{Config, Store};
    use writebehind_workload::Workload;

    use crate::bench::{Measured, Params};
    use crate::clock::Clock;

    /// The stand-in for the counters handle of a build without PostgreSQL.
    #[derive(Debug, Clone)]
    pub struct Handle;

    pub fn counters(_h: &Handle) -> super::DbCounters {
        super::DbCounters::default()
    }

    const MISSING: &str = "this wb was built without PostgreSQL support; rebuild with the `postgres` feature: \
         cargo run --release -p writebehind-tools --features postgres --bin wb -- bench --store postgres://...";

    pub fn reset(_url: &str, _table: &str) -> Result<(), String> {
        Err(MISSING.into())
    }

    pub fn open(
        _url: &str,
        _table: &str,
        _config: &Config,
        _in_flight: Option<usize>,
    ) -> Result<(Box<dyn Store>, Handle), String> {
        Err(MISSING.into())
    }

    pub fn per_update(
        _url: &str,
        _table: &str,
        _workload: &Arc<Workload>,
        _p: &Params,
        _clock: &Clock,
    ) -> Result<Measured, String> {
        Err(MISSING.into())
    }

    pub fn count_rows(_url: &str, _table: &str) -> Result<u64, String> {
        Err(MISSING.into())
    }

    pub fn reopen(
        _url: &str,
        _table: &str,
        _config: &Config,
    ) -> Result<writebehind::WriteBehind, String> {
        Err(MISSING.into())
    }
}

#[cfg(not(feature = "postgres"))]
pub use imp::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_in_every_spelling() {
        assert_eq!(
            redact("postgresql://app:s3cret@db:5432/x"),
            "postgresql://app:***@db:5432/x"
        );
        assert_eq!(redact("postgresql://app@db/x"), "postgresql://app@db/x");
        assert_eq!(
            redact("postgresql://app@db/x?password=s3cret&sslmode=off"),
            "postgresql://app@db/x?password=***&sslmode=off"
        );
        assert_eq!(
            redact("host=/run/pg password=s3cret user=app"),
            "host=/run/pg password=*** user=app"
        );
    }
}
