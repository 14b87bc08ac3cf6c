//! The store behind the cache: a submit/poll interface with no async runtime.
//!
//! The flusher is the only caller. It [`submit`](Store::submit)s encoded
//! [`Batch`]es (at most `Config::batches_in_flight_max` at a time), keeps
//! working, and collects [`Completion`]s with [`poll`](Store::poll). A batch
//! counts as durable only when its completion says `Ok`; on `Err` the flusher
//! rewrites its records from memory and submits them again (G8), so a store
//! must make a retried batch harmless: applying records is idempotent by
//! version (the highest version of a key wins).
//!
//! [`MemStore`] keeps records in memory (tests, benches); [`Throttled`] caps
//! the batch rate (a slow database); [`Faulty`] injects errors and delays from
//! a script the test holds. [`Blocking`] runs a [`BlockingStore`] (a database
//! client whose calls block) on a thread of its own; `PgStore` (cargo feature
//! `postgres`) is one. The file store is [`crate::FileStore`].

mod blocking;
mod faulty;
mod mem;
#[cfg(feature = "postgres")]
mod postgres;
mod throttled;

pub use blocking::{Blocking, BlockingStore};
pub use faulty::{FaultPlan, Faulty};
pub use mem::{MemStore, MemStoreData};
#[cfg(feature = "postgres")]
pub use postgres::{PgConfig, PgStats, PgStatsHandle, PgStore};
pub use throttled::Throttled;

use std::time::Duration;

use crate::error::{Error, StoreError, StoreErrorKind};
use crate::record::{RecordRef, Version};

/// Submission number of a batch: 1, 2, 3... in submission order. A retried
/// batch keeps its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BatchSeq(pub u64);

/// Records to persist together, encoded back to back in the
/// [record format](crate::record).
#[derive(Debug, Default)]
pub struct Batch {
    /// Submission number.
    pub seq: BatchSeq,
    /// The encoded records.
    pub bytes: Vec<u8>,
    /// How many records `bytes` holds.
    pub records: usize,
    /// Make this batch, and everything submitted before it, durable before
    /// completing it, whatever the store's durability mode (a `sync()`
    /// barrier under `Durability::None`). A batch may be empty and carry
    /// only this.
    pub sync: bool,
}

/// The outcome of one submitted batch. The batch comes back so its buffer can
/// be reused.
#[derive(Debug)]
pub struct Completion {
    /// The batch, as submitted.
    pub batch: Batch,
    /// `Ok` once every record of the batch is durable (under the store's
    /// durability mode).
    pub result: Result<(), StoreError>,
}

/// What [`Store::read_for_compaction`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionRead {
    /// The store cannot say what each unit holds: rewrite every key.
    Everything,
    /// Read part of a unit; call again for more.
    Partial,
    /// Unit `id` has been read whole (its records are in `out`, over this
    /// and earlier calls).
    Whole(u64),
    /// No unit at or below the cutoff remains.
    Done,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records visited.
    pub records: u64,
    /// Torn tails detected and cut off.
    pub torn_tails: u64,
}

/// A place batches are persisted to.
pub trait Store: Send + 'static {
    /// A short name of the backend in use ("mem", "io_uring", "pwrite"...),
    /// reported in `stats()`.
    fn backend(&self) -> &'static str;

    /// Calls `visit` for every stored record (any order; the same key may come
    /// several times with different versions: the caller keeps the highest).
    /// Called once, before the first submit.
    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error>;

    /// Starts persisting `batch`. Must not block for long; failures are
    /// reported through its completion.
    fn submit(&mut self, batch: Batch);

    /// Appends finished batches to `out`. If none is finished but some are in
    /// flight, may wait up to `timeout` for one.
    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration);

    /// Batches submitted and not yet returned by `poll`.
    fn in_flight(&self) -> usize;

    /// The most batches this store is worth having in flight, if fewer than
    /// `Config::batches_in_flight_max` (which bounds it either way). A store
    /// that works on one batch at a time gains nothing from a queue but the
    /// time its batches wait in it. Read once, when the cache starts; a
    /// decorator must forward its inner store's answer. (Compaction batches
    /// take turns with regular ones for the slots, so a compacting store
    /// may ask for 1 too.)
    fn in_flight_max(&self) -> Option<usize> {
        None
    }

    /// For stores that compact: (segments, bytes of records stored), from
    /// which the flusher decides when to compact. `None`: never compact.
    fn compaction_stats(&self) -> Option<(usize, u64)> {
        None
    }

    /// Starts a compaction: every record stored so far will be superseded by
    /// records written after this call. Returns a cutoff: the newest unit of
    /// storage (a file store's segment) the compaction replaces.
    fn begin_compaction(&mut self) -> Result<u64, StoreError> {
        Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this store does not compact",
        ))
    }

    /// Every live record of the units up to `upto` (a unit that
    /// [`read_for_compaction`](Self::read_for_compaction) reported whole, or
    /// the cutoff) has been rewritten durably since `begin_compaction`: drop
    /// those units.
    fn finish_compaction(&mut self, upto: u64) -> Result<(), StoreError> {
        let _ = upto;
        Ok(())
    }

    /// For stores that compact in steps, so that each step frees space
    /// before the next needs it: appends the key and version of the records
    /// of the oldest unit at or below `cutoff` still stored, about
    /// `budget_bytes` of them per call. The flusher rewrites those still
    /// live, waits until that is durable, then calls `finish_compaction`
    /// with the unit. The default, [`CompactionRead::Everything`], makes the
    /// flusher rewrite every key instead and finish at the cutoff.
    fn read_for_compaction(
        &mut self,
        cutoff: u64,
        budget_bytes: usize,
        out: &mut Vec<(Vec<u8>, Version)>,
    ) -> Result<CompactionRead, StoreError> {
        let _ = (cutoff, budget_bytes, out);
        Ok(CompactionRead::Everything)
    }

    /// Test hook for fault injection ([`Faulty`]): make the store's next
    /// durability operation (an fdatasync) report failure *after* it ran, as
    /// a failing disk would. Returns false if the store has no such
    /// operation.
    fn inject_sync_failure(&mut self) -> bool {
        false
    }

    /// Called once by the flusher after the last batch completed, when the
    /// cache closes. Release resources; report what could not be finished.
    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The most batches the flusher keeps in flight on `store`: `config_max`
/// (`Config::batches_in_flight_max`), or the store's
/// [`in_flight_max`](Store::in_flight_max) if lower (at least 1).
pub fn in_flight_bound<S: Store + ?Sized>(store: &S, config_max: usize) -> usize {
    store
        .in_flight_max()
        .map_or(config_max, |n| n.clamp(1, config_max))
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        (**self).recover(visit)
    }
    fn submit(&mut self, batch: Batch) {
        (**self).submit(batch)
    }
    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
        (**self).poll(out, timeout)
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    fn in_flight_max(&self) -> Option<usize> {
        (**self).in_flight_max()
    }
    fn inject_sync_failure(&mut self) -> bool {
        (**self).inject_sync_failure()
    }
    fn compaction_stats(&self) -> Option<(usize, u64)> {
        (**self).compaction_stats()
    }
    fn begin_compaction(&mut self) -> Result<u64, StoreError> {
        (**self).begin_compaction()
    }
    fn finish_compaction(&mut self, upto: u64) -> Result<(), StoreError> {
        (**self).finish_compaction(upto)
    }
    fn read_for_compaction(
        &mut self,
        cutoff: u64,
        budget_bytes: usize,
        out: &mut Vec<(Vec<u8>, Version)>,
    ) -> Result<CompactionRead, StoreError> {
        (**self).read_for_compaction(cutoff, budget_bytes, out)
    }
    fn close(&mut self) -> Result<(), StoreError> {
        (**self).close()
    }
}

/// A one-record batch numbered `seq` (key `k`, version `seq`), for the
/// stores' unit tests.
#[cfg(test)]
pub(crate) fn test_batch(seq: u64) -> Batch {
    let mut bytes = Vec::new();
    crate::record::encode(
        &mut bytes,
        crate::record::Kind::Put,
        Version(seq),
        b"k",
        b"v",
    );
    Batch {
        seq: BatchSeq(seq),
        bytes,
        records: 1,
        sync: false,
    }
}
