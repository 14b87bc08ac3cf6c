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
mod compaction;
mod faulty;
pub(crate) mod file;
mod mem;
#[cfg(feature = "postgres")]
mod postgres;
mod reader;
mod throttled;

pub use blocking::{Blocking, BlockingStore};
pub use compaction::{Compaction, CompactionRead, StoredKey, StoredSize, UnitId};
pub use faulty::{FaultPlan, Faulty};
pub use file::{FileOptions, FileStore, SyncFaults};
pub use mem::{MemStore, MemStoreData};
#[cfg(feature = "postgres")]
pub use postgres::{PgConfig, PgStats, PgStatsHandle, PgStore};
pub use reader::{Loaded, StoreReader};
pub use throttled::Throttled;

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, StoreError};
use crate::record::{DecodeError, RecordRef};

/// Submission number of a batch: 1, 2, 3... in submission order. A retried
/// batch keeps its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BatchSeq(pub u64);

/// Records to persist together, encoded back to back (each with its own
/// crc32c); a store reads them with [`Batch::records`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Submission number.
    pub seq: BatchSeq,
    /// The encoded records.
    pub bytes: Vec<u8>,
    /// How many records `bytes` holds.
    pub records: usize,
    /// Make this batch, and everything submitted before it, durable before
    /// completing it. The cache sets it on every batch under
    /// `Durability::Batch`, and on every retry; under `Durability::Deferred` also
    /// on a `sync()` barrier (which may be an empty batch carrying only
    /// this), on a compaction's last batch and on the batch that fills its
    /// in-flight window (its completions are what let it go on). A store
    /// that holds unsynced batches back must still make them durable by
    /// itself once nothing is queued: an idle cache sends nothing more.
    pub sync: bool,
}

impl Batch {
    /// The batch's records in order. Each is checked against its checksum; a
    /// record that does not decode ends the iteration with an `Err` giving
    /// its offset in [`bytes`](Self::bytes) (a batch the flusher built always
    /// decodes).
    pub fn records(&self) -> impl Iterator<Item = Result<RecordRef<'_>, (usize, DecodeError)>> {
        crate::record::iter(&self.bytes)
    }
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

/// What recovery found. A store makes one with `RecoveryReport::default()`
/// and sets the fields it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Records visited.
    pub records: u64,
    /// Torn tails detected and cut off.
    pub torn_tails: u64,
    /// A version floor the store kept: every version it ever held for a
    /// key whose records it no longer has (see [`Compaction::finish`]).
    /// New versions of every key start above it. 0 for a store that keeps
    /// every key's newest record. Covers the records not visited too.
    pub version_floor: crate::version::Version,
    /// Records the store located without reading them, and so did not
    /// visit (the file store's hint files; see [`Store::recover`]).
    pub unvisited: Unvisited,
}

/// Records a store's recovery located but did not visit: how many, and
/// their longest key and value, which the cache checks against its
/// `Config` as it checks every visited record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unvisited {
    /// Records not visited.
    pub records: u64,
    /// Longest key among them, bytes.
    pub longest_key: usize,
    /// Longest value among them, bytes.
    pub longest_value: usize,
}

/// What a store says about itself; read once, when the cache starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// A short name of the backend in use ("mem", "io_uring", "pwrite"...),
    /// reported in [`Stats::backend`](crate::Stats::backend).
    pub backend: &'static str,
    /// The most batches this store is worth having in flight, if fewer than
    /// `Config::batches_in_flight_max` (which bounds it either way). A store
    /// that works on one batch at a time gains nothing from a queue but the
    /// time its batches wait in it.
    pub in_flight_max: Option<usize>,
}

impl StoreInfo {
    /// A store named `backend` that takes as many batches in flight as the
    /// cache gives it.
    pub fn new(backend: &'static str) -> Self {
        Self {
            backend,
            in_flight_max: None,
        }
    }

    /// The same, asking for at most `n` batches in flight.
    pub fn with_in_flight_max(self, n: usize) -> Self {
        Self {
            in_flight_max: Some(n),
            ..self
        }
    }
}

/// A place batches are persisted to.
///
/// # The rules a store keeps
///
/// The cache's guarantees (G1 to G12) hold over any store that keeps
/// these; the contract tests check them for the file store, [`MemStore`]
/// and `PgStore`, and `examples/sqlite_store.rs` is a store of a few dozen
/// lines that keeps them.
///
/// 1. **Versions are kept and given back.** Every record carries a version
///    of at least 1; the store keeps it with the record and returns it from
///    [`recover`](Store::recover) and [`StoreReader::load`]. A store that
///    recovers a record with version 0 (it did not keep them) is refused at
///    open with [`Error::StoreBug`].
/// 2. **The highest version wins.** A record never replaces a stored record
///    of its key with a higher version; one with a lower or equal version
///    changes nothing.
/// 3. **A retried batch is harmless.** After a failure, or an outcome the
///    store cannot know (a connection lost during a commit), the cache
///    writes the records again, from memory and possibly merged with newer
///    ones, and possibly after later batches succeeded. Rule 2 makes that
///    safe; a store must not, say, add values up.
/// 4. **Tombstones keep their versions.** A delete is a record (`Kind::Delete`)
///    with a version. The store keeps it (a row marked deleted, a record in
///    its log) or a floor above it ([`RecoveryReport::version_floor`]), so
///    that an older put replayed after it cannot bring the key back, and the
///    key's next versions start above it.
/// 5. **`Ok` means durable.** A completion whose result is `Ok` promises that
///    every record of its batch survives a crash of the process and, under
///    the store's durability mode, of the machine: the cache then lets
///    `sync()` return and may evict the keys from memory. `Err` promises
///    nothing either way (the records may or may not be stored); the cache
///    retries.
/// 6. **Reads see what was confirmed.** A reader's load returns a key's
///    newest record among every batch completed `Ok` before the load began
///    (see [`StoreReader`]).
///
/// Every method is required, so that a store wrapping another (a decorator
/// such as [`Faulty`](crate::testing::Faulty)) must say what it does with
/// each; none of the inner store's abilities can be lost by forgetting to
/// forward a method.
pub trait Store: Send + 'static {
    /// The backend's name and its preferred number of batches in flight.
    fn info(&self) -> StoreInfo;

    /// Calls `visit` for every stored record (any order; the same key may come
    /// several times with different versions: the caller keeps the highest).
    /// Called once, before the first submit.
    ///
    /// A store whose [`reader`](Store::reader) was taken (its keys are read
    /// on demand, so the cache loads no value at open) may leave out the
    /// records it can locate without reading them; it then counts them in
    /// [`RecoveryReport::unvisited`] and raises
    /// [`RecoveryReport::version_floor`] over their versions.
    ///
    /// # Errors
    /// What keeps the store from being read ([`Error::Corrupt`],
    /// [`Error::Format`], [`Error::Io`], [`Error::Database`]...); the cache
    /// does not open.
    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error>;

    /// Starts persisting `batch`. Must not block for long; failures are
    /// reported through its completion.
    fn submit(&mut self, batch: Batch);

    /// Appends finished batches to `out`. If none is finished but some are in
    /// flight, may wait up to `timeout` for one.
    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration);

    /// Batches submitted and not yet returned by `poll`.
    fn in_flight(&self) -> usize;

    /// The store's compaction, if it compacts (the file store does: its log
    /// grows with every batch). `None` for a store that overwrites in place,
    /// such as a database table; [`WriteBehind::compact`](crate::WriteBehind::compact)
    /// is then a no-op.
    fn compaction(&mut self) -> Option<&mut dyn Compaction>;

    /// The store's reader of single keys, if it can read one without
    /// reading everything (G11). Called once, before
    /// [`recover`](Store::recover) (which decides what recovery loads); the
    /// reader is used only once `recover` has returned. A store with a
    /// reader is a cache's backing store: opening loads no value (the
    /// cache learns only the version floor from `recover`'s visits), a key
    /// not in memory is read through it, and clean keys may be evicted. A
    /// store without one (`None`) must have every key recovered into
    /// memory, and nothing is ever evicted from it.
    fn reader(&mut self) -> Option<Arc<dyn StoreReader>>;

    /// Called once by the flusher after the last batch completed, when the
    /// cache closes. Release resources; report what could not be finished.
    ///
    /// # Errors
    /// What could not be finished (a last fdatasync, a connection that
    /// would not close); `WriteBehind::close` returns it.
    fn close(&mut self) -> Result<(), StoreError>;
}

/// The most batches the flusher keeps in flight on a store: `config_max`
/// (`Config::batches_in_flight_max`), or the store's
/// [`in_flight_max`](StoreInfo::in_flight_max) if lower (at least 1).
pub(crate) fn in_flight_bound(info: StoreInfo, config_max: usize) -> usize {
    info.in_flight_max
        .map_or(config_max, |n| n.clamp(1, config_max))
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn info(&self) -> StoreInfo {
        (**self).info()
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
    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        (**self).compaction()
    }
    fn reader(&mut self) -> Option<Arc<dyn StoreReader>> {
        (**self).reader()
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
        crate::version::Kind::Put,
        crate::version::Version(seq),
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
