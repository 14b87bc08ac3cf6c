//! The compaction capability of a store whose storage grows with every
//! batch (a log).

use crate::error::StoreError;
use crate::version::Version;

/// A unit of storage a compaction replaces whole (a file store's segment),
/// numbered in the order the store wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(pub u64);

/// What a store holds now, from which the flusher decides when to compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredSize {
    /// Units of storage (segments).
    pub units: usize,
    /// Bytes of records stored, live or superseded.
    pub bytes: u64,
    /// Bytes a unit holds when full (a file store's segment size).
    pub unit_bytes_max: u64,
    /// Bytes of live records (each key's newest put), if the store knows
    /// (one that can read single keys does); else the cache estimates it
    /// from the keys in memory.
    pub live_bytes: Option<u64>,
}

/// A key and the version a unit holds of it, as [`Compaction::read`]
/// reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key.
    pub key: Vec<u8>,
    /// The version of the key's record in the unit.
    pub version: Version,
}

/// What [`Compaction::read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionRead {
    /// The store cannot say what each unit holds: rewrite every key.
    Everything,
    /// Read part of a unit; call again for more.
    Partial,
    /// The unit has been read whole (its keys are in `out`, over this and
    /// earlier calls).
    Whole(UnitId),
    /// No unit at or below the cutoff remains.
    Done,
}

/// The compaction of a store whose storage grows with every batch (a log):
/// what the flusher needs to rewrite the live records and let
/// the store drop what they replace.
///
/// The flusher drives it: [`begin`](Compaction::begin) names the newest unit
/// of storage the compaction replaces; [`read`](Compaction::read) lists the
/// keys and versions of the oldest unit left, which the flusher rewrites
/// (from memory) where still live; once that is durable,
/// [`finish`](Compaction::finish) drops the unit. A store that cannot say what
/// a unit holds answers [`CompactionRead::Everything`]: the flusher rewrites
/// every key and finishes at the cutoff.
pub trait Compaction {
    /// What is stored now.
    fn stored(&self) -> StoredSize;

    /// Starts a compaction: every record stored so far will be superseded by
    /// records written after this call. Returns the cutoff: the newest unit
    /// the compaction replaces. `resident_is_complete`: every live key is in
    /// the cache's memory, so [`CompactionRead::Everything`] is an answer
    /// `read` may give; when false, it must go unit by unit.
    ///
    /// # Errors
    /// The compaction cannot start (the store cannot write); it is
    /// reported to `compact()` and tried again later.
    fn begin(&mut self, resident_is_complete: bool) -> Result<UnitId, StoreError>;

    /// Appends the keys and versions of the oldest unit at or below `cutoff`
    /// still stored, about `budget_bytes` of them per call.
    ///
    /// # Errors
    /// The unit could not be read; the compaction stops and reports it.
    fn read(
        &mut self,
        cutoff: UnitId,
        budget_bytes: usize,
        out: &mut Vec<StoredKey>,
    ) -> Result<CompactionRead, StoreError>;

    /// Every live record of the units up to `upto` (a unit `read` reported
    /// whole, or the cutoff) has been rewritten durably since `begin`: drop
    /// those units. The records of keys no longer in memory (deleted, their
    /// tombstones durable) are not rewritten, so the units may hold the
    /// only record of a version a key reached: before anything is dropped,
    /// make `floor` (the cache's version floor, above every such version)
    /// durable, and report it from the next [`Store::recover`](crate::Store::recover)
    /// in [`RecoveryReport::version_floor`](crate::RecoveryReport::version_floor).
    ///
    /// # Errors
    /// The old units could not be dropped (or the floor made durable); the
    /// compaction's records are durable either way, and the next one tries
    /// again.
    fn finish(&mut self, upto: UnitId, floor: Version) -> Result<(), StoreError>;
}
