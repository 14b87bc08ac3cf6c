//! Recovery: the version floor only (`max(version)` over the table, read
//! once at open), when the cache reads keys through; or every row, in one
//! read-only snapshot, as records for the index (a cache over a `Blocking`
//! adapter that asks for no reader).

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{IsolationLevel, Row, Transaction};

use super::error::db_error;
use super::PgStore;
use crate::error::Error;
use crate::record::RecordRef;
use crate::store::RecoveryReport;
use crate::version::{Kind, Version};

impl PgStore {
    /// The version floor: above every version the table holds (rows and
    /// tombstones), so a new entry of any key starts above its row and the
    /// version guard takes it. Reads no row into memory.
    pub(super) fn recover_floor(&mut self) -> Result<RecoveryReport, Error> {
        let name = self.cfg.table.clone();
        let table = self.table.quoted();
        let conn = self.conn().map_err(|e| Error::Database(e.message))?;
        let mut tx = snapshot(&mut conn.client, &name)?;
        let max: i64 = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {table}"),
                &[],
            )
            .map_err(|e| db_error(&name, "reading the highest version", &e))?
            .get(0);
        tx.commit()
            .map_err(|e| db_error(&name, "ending the recovery transaction", &e))?;
        Ok(RecoveryReport {
            version_floor: Version(u64::try_from(max).unwrap_or(0)),
            ..RecoveryReport::default()
        })
    }

    /// [`BlockingStore::recover`](crate::BlockingStore::recover): calls
    /// `visit` with every row.
    pub(super) fn recover_rows(
        &mut self,
        visit: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<RecoveryReport, Error> {
        let name = self.cfg.table.clone();
        let table = self.table.quoted();
        let conn = self.conn().map_err(|e| Error::Database(e.message))?;
        let db = |what: &str, e: postgres::Error| db_error(&name, what, &e);
        let mut tx = snapshot(&mut conn.client, &name)?;
        let select = format!("SELECT key, version, value FROM {table}");
        let mut it = tx
            .query_raw(&select, std::iter::empty::<&dyn ToSql>())
            .map_err(|e| db("reading rows", e))?;
        let mut records = 0u64;
        while let Some(row) = it.next().map_err(|e| db("reading rows", e))? {
            let record = record_of(&row, &name)?;
            records += 1;
            visit(record);
        }
        drop(it);
        tx.commit()
            .map_err(|e| db("ending the recovery transaction", e))?;
        Ok(RecoveryReport {
            records,
            torn_tails: 0,
            ..RecoveryReport::default()
        })
    }
}

/// A read-only transaction, one snapshot, with no statement timeout (a
/// large table takes what it takes).
fn snapshot<'c>(client: &'c mut postgres::Client, name: &str) -> Result<Transaction<'c>, Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| db_error(name, "starting the recovery transaction", &e))?;
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(|e| db_error(name, "recovery", &e))?;
    Ok(tx)
}

/// The record `row` of table `name` holds: a put, or a delete where the
/// value is `NULL`. Refuses what the store would never have written.
fn record_of<'r>(row: &'r Row, name: &str) -> Result<RecordRef<'r>, Error> {
    let db = |e: postgres::Error| db_error(name, "reading rows", &e);
    let key: &[u8] = row.try_get(0).map_err(db)?;
    let version: i64 = row.try_get(1).map_err(db)?;
    let value: Option<&[u8]> = row.try_get(2).map_err(db)?;
    if key.is_empty() || version < 1 {
        return Err(Error::Database(format!(
            "{name}: a row has key {:?} and version {version}: keys are non-empty and versions start at 1",
            String::from_utf8_lossy(key)
        )));
    }
    Ok(RecordRef {
        kind: if value.is_some() {
            Kind::Put
        } else {
            Kind::Delete
        },
        version: Version(version as u64),
        key,
        value: value.unwrap_or_default(),
    })
}
