//! Recovery: every row of the table, in one read-only snapshot, as records
//! for the index; refused before anything is loaded if there are more than
//! `PgConfig::recover_rows_max`.

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
    /// [`BlockingStore::recover`](crate::BlockingStore::recover): calls
    /// `visit` with every row, at most `recover_rows_max` of them.
    pub(super) fn recover_rows(
        &mut self,
        visit: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<RecoveryReport, Error> {
        let max = self.cfg.recover_rows_max;
        let name = self.cfg.table.clone();
        let table = self.table.quoted();
        let conn = self.conn().map_err(|e| Error::Database(e.message))?;
        let db = |what: &str, e: postgres::Error| db_error(&name, what, &e);
        let mut tx = snapshot(&mut conn.client, &name)?;
        let rows: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .map_err(|e| db("counting rows", e))?
            .get(0);
        let rows = u64::try_from(rows).unwrap_or(0);
        if rows > max {
            return Err(Error::TooManyRows { rows, max });
        }
        let select = format!("SELECT key, version, value FROM {table}");
        let mut it = tx
            .query_raw(&select, std::iter::empty::<&dyn ToSql>())
            .map_err(|e| db("reading rows", e))?;
        let mut records = 0u64;
        while let Some(row) = it.next().map_err(|e| db("reading rows", e))? {
            let record = record_of(&row, &name)?;
            records += 1;
            // The count above saw the same snapshot; this only guards it.
            if records > max {
                return Err(Error::TooManyRows { rows: records, max });
            }
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

/// A read-only transaction, one snapshot for the count and the rows, with
/// no statement timeout (a large table takes what it takes).
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
