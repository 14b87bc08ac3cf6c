//! `MemStore`: the store in memory. Applies batches with "highest version
//! wins" and counts any attempt to go backwards, so tests can check G2 at the
//! store itself.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{Batch, Compaction, Completion, Loaded, RecoveryReport, Store, StoreInfo, StoreReader};
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::record::{self, RecordRef};
use crate::version::{Kind, Version};

/// The contents of a [`MemStore`], shared with the test or program that made
/// it (it outlives the cache, so a test can inspect it after `close()` or open
/// a new cache on it).
#[derive(Debug, Default)]
pub struct MemStoreData {
    /// Key -> (highest version, value; `None` for a delete).
    pub records: HashMap<Vec<u8>, (Version, Option<Vec<u8>>)>,
    /// Records received with a version lower than the one stored (must stay 0:
    /// the flusher never writes a key backwards, G2).
    pub version_regressions: u64,
    /// Records received with exactly the stored version (retries rewrite
    /// records; harmless).
    pub rewrites: u64,
    /// Batches applied.
    pub batches: u64,
    /// Records applied.
    pub records_applied: u64,
    /// If true, every applied record's key and version is appended to
    /// `order` (tests of delivery order).
    pub log_order: bool,
    /// Applied records in order (only while `log_order`).
    pub order: Vec<(Vec<u8>, Version)>,
}

impl MemStoreData {
    /// The live keys and values (deletes left out).
    pub fn live(&self) -> HashMap<Vec<u8>, (Version, Vec<u8>)> {
        self.records
            .iter()
            .filter_map(|(k, (ver, v))| v.as_ref().map(|v| (k.clone(), (*ver, v.clone()))))
            .collect()
    }
}

/// An in-memory [`Store`]. A batch is applied (becomes "durable") when the
/// next `poll` completes it, not at `submit`, so the gap between the two is
/// real, as it is for a disk.
#[derive(Debug, Default)]
pub struct MemStore {
    data: Arc<Mutex<MemStoreData>>,
    submitted: VecDeque<Batch>,
    /// Offer no reader: the cache loads everything at open and never
    /// evicts (as over a store that cannot read single keys).
    no_reads: bool,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared contents; clone the `Arc` to keep them after the cache is
    /// gone, and pass it to [`MemStore::with_data`] to reopen.
    pub fn data(&self) -> Arc<Mutex<MemStoreData>> {
        Arc::clone(&self.data)
    }

    /// A store over existing contents (a "reopen").
    pub fn with_data(data: Arc<Mutex<MemStoreData>>) -> Self {
        Self {
            data,
            submitted: VecDeque::new(),
            no_reads: false,
        }
    }

    /// This store, offering no reader of single keys: a cache over it
    /// loads every record at open and evicts nothing, as over a store that
    /// cannot read one key (tests of that path).
    pub fn without_reads(self) -> Self {
        Self {
            no_reads: true,
            ..self
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemStoreData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        // Decode everything first, so a malformed batch changes nothing.
        let records = record::iter(&batch.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|(offset, e)| {
                StoreError::new(
                    StoreErrorKind::Corrupt,
                    format!("batch {} record at offset {offset}: {e}", batch.seq.0),
                )
            })?;
        let mut guard = self.lock();
        let data = &mut *guard;
        for r in &records {
            if data.log_order {
                data.order.push((r.key.to_vec(), r.version));
            }
            let value = (r.kind == Kind::Put).then(|| r.value.to_vec());
            match data.records.get_mut(r.key) {
                Some(stored) if stored.0 > r.version => data.version_regressions += 1,
                Some(stored) if stored.0 == r.version => {
                    data.rewrites += 1;
                    stored.1 = value;
                }
                Some(stored) => *stored = (r.version, value),
                None => {
                    data.records.insert(r.key.to_vec(), (r.version, value));
                }
            }
        }
        data.batches += 1;
        data.records_applied += records.len() as u64;
        Ok(())
    }
}

impl Store for MemStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("mem")
    }

    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        let data = self.lock();
        for (key, (version, value)) in &data.records {
            visit(RecordRef {
                kind: if value.is_some() {
                    Kind::Put
                } else {
                    Kind::Delete
                },
                version: *version,
                key,
                value: value.as_deref().unwrap_or_default(),
            });
        }
        Ok(RecoveryReport {
            records: data.records.len() as u64,
            torn_tails: 0,
            ..RecoveryReport::default()
        })
    }

    fn submit(&mut self, batch: Batch) {
        self.submitted.push_back(batch);
    }

    fn poll(&mut self, out: &mut Vec<Completion>, _timeout: Duration) {
        while let Some(batch) = self.submitted.pop_front() {
            let result = self.apply(&batch);
            out.push(Completion { batch, result });
        }
    }

    fn in_flight(&self) -> usize {
        self.submitted.len()
    }

    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        None
    }

    fn reader(&mut self) -> Option<Arc<dyn StoreReader>> {
        if self.no_reads {
            return None;
        }
        Some(Arc::new(MemReader(Arc::clone(&self.data))))
    }

    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// [`MemStore`]'s reader: a lookup under the data's lock.
#[derive(Debug)]
struct MemReader(Arc<Mutex<MemStoreData>>);

impl StoreReader for MemReader {
    fn load(&self, key: &[u8], value: &mut Vec<u8>) -> Result<Option<Loaded>, StoreError> {
        value.clear();
        let data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(data.records.get(key).map(|(version, stored)| {
            if let Some(v) = stored {
                value.extend_from_slice(v);
            }
            Loaded {
                version: *version,
                kind: if stored.is_some() {
                    Kind::Put
                } else {
                    Kind::Delete
                },
            }
        }))
    }

    fn holds(&self, key: &[u8]) -> Option<bool> {
        let data = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Some(data.records.get(key).is_some_and(|(_, v)| v.is_some()))
    }
}
