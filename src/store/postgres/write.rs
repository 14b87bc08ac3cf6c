//! A batch as one statement: its records decoded into the upsert's three
//! arrays (one row per key), sent in one round trip and one transaction.

use std::collections::HashMap;

use super::error::{classify, describe};
use super::PgStore;
use crate::error::{StoreError, StoreErrorKind};
use crate::record;
use crate::store::Batch;
use crate::version::Kind;

/// The upsert's parameters: `keys[i]` gets `versions[i]` and `values[i]`
/// (`None`: a tombstone).
#[derive(Debug)]
struct Rows<'a> {
    keys: Vec<&'a [u8]>,
    versions: Vec<i64>,
    values: Vec<Option<&'a [u8]>>,
    /// Where each key is in the arrays.
    index: HashMap<&'a [u8], usize>,
}

impl<'a> Rows<'a> {
    /// Decodes every record of `batch` first: a malformed batch sends
    /// nothing.
    fn decode(batch: &'a Batch) -> Result<Self, StoreError> {
        let mut rows = Rows {
            keys: Vec::with_capacity(batch.records),
            versions: Vec::with_capacity(batch.records),
            values: Vec::with_capacity(batch.records),
            index: HashMap::with_capacity(batch.records),
        };
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
            rows.add(r.key, version, (r.kind == Kind::Put).then_some(r.value));
        }
        Ok(rows)
    }

    /// One row per key per statement (ON CONFLICT cannot touch a row
    /// twice): a key seen before keeps its higher version. The flusher
    /// coalesces; this only guards the contract.
    fn add(&mut self, key: &'a [u8], version: i64, value: Option<&'a [u8]>) {
        match self.index.get(key) {
            Some(&i) if self.versions[i] >= version => {}
            Some(&i) => {
                self.versions[i] = version;
                self.values[i] = value;
            }
            None => {
                self.index.insert(key, self.keys.len());
                self.keys.push(key);
                self.versions.push(version);
                self.values.push(value);
            }
        }
    }
}

impl PgStore {
    /// [`BlockingStore::write`](crate::BlockingStore::write): the batch's
    /// rows in one upsert, on the session (reopened if needed); a failure
    /// drops the session unless it is known good.
    pub(super) fn write_batch(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let rows = Rows::decode(batch)?;
        if rows.keys.is_empty() {
            // A sync-only batch: every earlier batch committed before this
            // one was taken (one thread, in order), and a commit is durable.
            return Ok(());
        }
        match self.upsert(batch, &rows) {
            Ok(applied) => {
                self.counters.committed(rows.keys.len() as u64, applied);
                Ok(())
            }
            Err(e) => {
                self.counters.failed();
                self.drop_conn_unless_usable(e.kind);
                Err(e)
            }
        }
    }

    /// Sends `rows` (of `batch`) as one statement; the rows it changed.
    fn upsert(&mut self, batch: &Batch, rows: &Rows<'_>) -> Result<u64, StoreError> {
        let name = self.cfg.table.clone();
        let conn = self.conn()?;
        let params: [&(dyn postgres::types::ToSql + Sync); 3] =
            [&rows.keys, &rows.versions, &rows.values];
        conn.client.execute(&conn.upsert, &params).map_err(|e| {
            StoreError::new(
                classify(&e),
                format!(
                    "{name}: batch {} of {} rows: {}",
                    batch.seq.0,
                    rows.keys.len(),
                    describe(&e)
                ),
            )
        })
    }
}
