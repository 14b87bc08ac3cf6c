//! Compaction, run by the flusher between its other work.
//!
//! A store that can say what each of its units (a file store's segments)
//! holds is compacted **in steps**, oldest unit first: read the keys and
//! versions of its records ([`Compaction::read`], about 1 MiB per
//! pass), rewrite from memory those whose newest submitted record is not
//! newer than the one in the unit, wait until every batch submitted so far
//! is durable (so a newer record of a skipped key is durable too), then let
//! the store drop the unit ([`Compaction::finish`]). Each step needs
//! room only for the live part of one unit and frees a whole one, so a disk
//! nearly full of the store's own dead segments still compacts.
//!
//! A store that cannot ([`CompactionRead::Everything`]) gets the whole live
//! set rewritten from memory, tombstones included, and drops everything up
//! to the cutoff once that is durable.

use super::window::Batched;
use super::Flusher;
use crate::config::Durability;
use crate::error::{StoreError, StoreErrorKind};
use crate::index::Slot;
use crate::primitives::{self, Arc, Ordering};
use crate::record;
use crate::store::{Batch, CompactionRead, Store, StoredKey, UnitId};

/// Bytes of a unit read per flusher pass (bounds the time a pass spends).
const READ_BUDGET_BYTES: usize = 1 << 20;

/// A compaction in progress.
#[derive(Debug)]
pub(super) struct CompactionRun {
    /// The `compact()` generation it serves (0: automatic).
    gen: u64,
    /// From [`Compaction::begin`].
    cutoff: UnitId,
    mode: Mode,
    /// The last batch the current step depends on, once all its rewrites
    /// are submitted.
    last_seq: Option<u64>,
}

#[derive(Debug)]
enum Mode {
    /// Not yet known whether the store compacts in steps.
    Starting,
    /// Unit by unit: the keys read from the unit being compacted, the next
    /// one to consider, and the unit once read whole.
    Steps {
        keys: Vec<StoredKey>,
        next: usize,
        whole: Option<UnitId>,
    },
    /// Every resident key: the next slot and the index's high water when it
    /// began (later keys are written by normal
    /// batches after the cutoff).
    Everything { cursor: usize, end: usize },
}

impl<S: Store> Flusher<S> {
    /// True when the store's dead bytes reach the configured ratio, or many
    /// short segments could be halved in number (checked at most every
    /// 10 ms).
    fn compaction_due(&mut self, now: u64) -> bool {
        if now.saturating_sub(self.compact_checked_ns) < 10_000_000 {
            return false;
        }
        self.compact_checked_ns = now;
        let Some(stored) = self.store.compaction().map(|c| c.stored()) else {
            return false;
        };
        let (segments, unit_bytes_max) = (stored.units, stored.unit_bytes_max);
        let live = stored.live_bytes.unwrap_or(self.keys.live_bytes);
        let stored = stored.bytes;
        let config = &self.shared.config;
        let dead = stored > 0
            && live < stored
            && (stored - live) as f64 / stored as f64 >= config.compact_dead_ratio;
        // Many segments holding little (restarts and syncs each leave a
        // short one behind): compact once that would halve their number.
        let after = live.div_ceil(unit_bytes_max.max(1)) as usize + 1;
        let sparse = after.saturating_mul(2) <= segments;
        segments >= config.compact_segments_min && (dead || sparse)
    }

    /// Starts, advances or finishes a compaction; true if it did something.
    pub(super) fn compact_step(&mut self, now: u64) -> bool {
        if self.compaction.is_none() && !self.begin_compaction(now) {
            return false;
        }
        let Some(c) = self.compaction.as_mut() else {
            return false;
        };
        if c.last_seq.is_some() {
            return self.finish_step();
        }
        match &mut c.mode {
            Mode::Starting | Mode::Steps { whole: None, .. } => self.read_step(),
            Mode::Steps { .. } => self.rewrite_step(now),
            Mode::Everything { .. } => self.rewrite_everything(now),
        }
    }

    /// Starts a compaction if one is asked for or due.
    fn begin_compaction(&mut self, now: u64) -> bool {
        // Acquire: pairs with `compact()`'s RMW.
        let requested = self.shared.compact_requested.load(Ordering::Acquire);
        let asked = requested > self.compact_seen;
        if !asked && (self.sealed || !self.compaction_due(now)) {
            return false;
        }
        self.compact_seen = requested;
        let Some(store) = self.store.compaction() else {
            // A store that does not compact: the request is served, there
            // is nothing to reclaim.
            self.publish_compacted(requested, None);
            return false;
        };
        // Without a reader every live key is in memory, and the whole live
        // set may be rewritten from it; with one, only unit by unit (keys
        // not in memory are copied from the store).
        let resident_is_complete = self.shared.reader.is_none();
        match store.begin(resident_is_complete) {
            Ok(cutoff) => {
                tracing::info!(gen = requested, asked, "compaction began");
                self.compaction = Some(CompactionRun {
                    gen: requested,
                    cutoff,
                    mode: Mode::Starting,
                    last_seq: None,
                });
                true
            }
            Err(e) => {
                tracing::warn!(gen = requested, error = %e, "compaction could not begin");
                self.publish_compacted(requested, Some(e));
                false
            }
        }
    }

    /// Reads the next part of the oldest unit.
    fn read_step(&mut self) -> bool {
        let Some(c) = self.compaction.as_mut() else {
            return false;
        };
        let mut keys = match std::mem::replace(&mut c.mode, Mode::Starting) {
            Mode::Steps { keys, .. } => keys,
            _ => Vec::new(),
        };
        let before = keys.len();
        let read = match self.store.compaction() {
            Some(store) => store.read(c.cutoff, READ_BUDGET_BYTES, &mut keys),
            None => Ok(CompactionRead::Everything),
        };
        let (whole, progress) = match read {
            Ok(CompactionRead::Partial) => (None, keys.len() > before),
            Ok(CompactionRead::Whole(unit)) => (Some(unit), true),
            Ok(CompactionRead::Everything) => {
                let end = self.shared.index.high_water();
                c.mode = Mode::Everything { cursor: 0, end };
                return true;
            }
            Ok(CompactionRead::Done) => {
                let cutoff = c.cutoff;
                return self.end_compaction(cutoff);
            }
            Err(e) => return self.abandon_compaction(e),
        };
        c.mode = Mode::Steps {
            keys,
            next: 0,
            whole,
        };
        progress
    }

    /// Submits a batch of the rewrites the unit read whole needs; once none
    /// is left, the step waits for durability.
    fn rewrite_step(&mut self, now: u64) -> bool {
        if !self.compaction_has_room() {
            return false;
        }
        let shared = Arc::clone(&self.shared);
        let (mut batch, mut entries) = self.fresh_batch();
        let Some(CompactionRun {
            mode: Mode::Steps { keys, next, .. },
            ..
        }) = self.compaction.as_mut()
        else {
            return false;
        };
        while *next < keys.len() && !batch_full(&shared.config, &batch) {
            let StoredKey { key, version } = &keys[*next];
            *next += 1;
            // Not resident: deleted (its tombstone durable and freed, G12;
            // every record of the key is dead), or not loaded (evicted, or
            // never read since the store opened): made resident from the
            // store if this record is the key's newest put.
            let slot = match shared.index.find(key).map(|f| f.slot) {
                Some(slot) => slot,
                None => match carry(&shared, &mut self.keys, key, *version) {
                    Ok(Some(slot)) => slot,
                    Ok(None) => continue,
                    Err(e) => {
                        self.free_batches.push(batch);
                        self.free_lists.push(entries);
                        return self.abandon_compaction(e);
                    }
                },
            };
            // A newer record was submitted: the step waits for it to be
            // durable before the unit goes, so this one is dead.
            if self.keys.batched_version(slot) > version.0 {
                continue;
            }
            if let Some(e) = self
                .keys
                .encode_current(&shared.index, slot, &mut batch.bytes)
            {
                entries.push(Batched::new(slot, e.version, e.kind));
                batch.records += 1;
            }
        }
        let done = *next >= keys.len();
        self.submit_rewrites(batch, entries, done, now);
        true
    }

    /// Every resident key's current value, in batches; then the wait.
    fn rewrite_everything(&mut self, now: u64) -> bool {
        if !self.compaction_has_room() {
            return false;
        }
        let shared = Arc::clone(&self.shared);
        let (mut batch, mut entries) = self.fresh_batch();
        let Some(CompactionRun {
            mode: Mode::Everything { cursor, end },
            ..
        }) = self.compaction.as_mut()
        else {
            return false;
        };
        while *cursor < *end && !batch_full(&shared.config, &batch) {
            let slot = Slot(*cursor as u32);
            if let Some(e) = self
                .keys
                .encode_current(&shared.index, slot, &mut batch.bytes)
            {
                entries.push(Batched::new(slot, e.version, e.kind));
                batch.records += 1;
            }
            *cursor += 1;
        }
        let done = *cursor >= *end;
        self.submit_rewrites(batch, entries, done, now);
        true
    }

    /// A compaction batch may take an in-flight slot (else it goes first
    /// when one frees).
    fn compaction_has_room(&mut self) -> bool {
        self.compaction_waiting = !self.window.has_room();
        !self.compaction_waiting
    }

    /// Submits a batch of rewrites (if it holds any); once the step's last
    /// is submitted (`done`), the step waits until every batch submitted so
    /// far is durable. Under `Durability::Deferred` the last one asks for an
    /// fdatasync, so that happens now rather than whenever the store next
    /// syncs (without one, the store syncs once it has nothing queued).
    fn submit_rewrites(&mut self, mut batch: Batch, entries: Vec<Batched>, done: bool, now: u64) {
        if batch.records > 0 {
            batch.sync = done && self.shared.config.durability == Durability::Deferred;
            self.submit_new(batch, entries, now);
        } else {
            self.free_batches.push(batch);
            self.free_lists.push(entries);
        }
        if done {
            let last = self.window.last_seq();
            self.await_durable(last);
        }
    }

    /// The step (or the whole rewrite) depends on batch `last`.
    fn await_durable(&mut self, last: u64) {
        if let Some(c) = self.compaction.as_mut() {
            c.last_seq = Some(last);
        }
    }

    /// Once the step's batches are durable, drops its unit (or, rewriting
    /// everything, all up to the cutoff and ends).
    fn finish_step(&mut self) -> bool {
        let Some(c) = self.compaction.as_mut() else {
            return false;
        };
        if c.last_seq
            .is_some_and(|last| self.window.durable_seq() < last)
        {
            return false;
        }
        c.last_seq = None;
        let unit = match &mut c.mode {
            Mode::Steps { keys, next, whole } => {
                keys.clear();
                *next = 0;
                whole.take()
            }
            Mode::Everything { .. } => {
                let cutoff = c.cutoff;
                return self.end_compaction(cutoff);
            }
            Mode::Starting => None,
        };
        if let Some(unit) = unit {
            if let Err(e) = self.finish_units(unit) {
                return self.abandon_compaction(e);
            }
        }
        true
    }

    /// Drops what remains up to the cutoff and reports the compaction done.
    fn end_compaction(&mut self, cutoff: UnitId) -> bool {
        let Some(c) = self.compaction.take() else {
            return false;
        };
        let result = self.finish_units(cutoff);
        match &result {
            Err(e) => tracing::warn!(gen = c.gen, error = %e, "compaction could not remove old segments"),
            Ok(()) => {
                self.counts.compactions += 1;
                tracing::info!(gen = c.gen, "compaction finished");
            }
        }
        self.publish_compacted(c.gen, result.err());
        true
    }

    /// Lets the store drop every unit up to `upto`.
    fn finish_units(&mut self, upto: UnitId) -> Result<(), crate::error::StoreError> {
        let floor = self.shared.index.floor();
        match self.store.compaction() {
            Some(store) => store.finish(upto, floor),
            None => Ok(()),
        }
    }

    /// Stops a compaction the store cannot go on with; what it rewrote
    /// stays (it is current data), the next compaction starts over.
    fn abandon_compaction(&mut self, e: StoreError) -> bool {
        let Some(c) = self.compaction.take() else {
            return false;
        };
        tracing::warn!(gen = c.gen, error = %e, "compaction stopped");
        self.publish_compacted(c.gen, Some(e));
        true
    }

    pub(super) fn publish_compacted(&mut self, gen: u64, error: Option<crate::error::StoreError>) {
        // Counters first, so a waiter that wakes reads them up to date.
        self.publish(self.now_ns());
        let mut progress = primitives::lock(&self.shared.progress);
        progress.compacted_gen = progress.compacted_gen.max(gen);
        progress.compact_error = error;
        self.shared.progress_cv.notify_all();
    }
}

/// True once `batch` has no room for another record of the largest size.
fn batch_full(config: &crate::config::Config, batch: &crate::store::Batch) -> bool {
    batch.records >= config.batch_ops_max
        || (batch.records > 0
            && batch.bytes.len()
                + record::HEADER_BYTES
                + config.key_bytes_max
                + config.value_bytes_max
                > config.batch_bytes_max)
}

/// Makes `key` resident from the store if its newest record there is the
/// put at `version` that a compaction is about to drop: it is then
/// rewritten from memory like any resident key, and evictable again once
/// that is durable. If a writer made the key resident meanwhile, its
/// entry's slot (the entry is newer than the store, and rewritten instead).
/// `Ok(None)`: the record is dead (the store holds something newer, a
/// tombstone, or nothing). `Err`: the record could not be read or made
/// resident (`keys_max` reached), and the compaction must stop rather than
/// drop it.
fn carry(
    shared: &crate::shared::Shared,
    keys: &mut super::keys::KeyLedger,
    key: &[u8],
    version: crate::version::Version,
) -> Result<Option<Slot>, StoreError> {
    let Some(reader) = shared.reader.as_ref() else {
        return Ok(None); // every live key is resident
    };
    let ticket = shared.index.load_ticket(key);
    let mut value = Vec::new();
    let loaded = match reader.load(key, &mut value)? {
        Some(l) if l.kind == crate::version::Kind::Put && l.version == version => l,
        _ => return Ok(None),
    };
    // Not budgeted: evictable again once its rewrite is durable.
    match shared
        .index
        .install(key, ticket, loaded.version, &value, false)
    {
        Ok(crate::index::Install::Made(found)) => {
            keys.note_loaded(
                found.slot,
                loaded.version,
                record::encoded_len(key.len(), value.len()),
            );
            Ok(Some(found.slot))
        }
        Ok(_) => Ok(shared.index.find(key).map(|f| f.slot)),
        Err(e) => Err(StoreError::new(
            StoreErrorKind::Other,
            format!("a live record could not be made resident to copy it: {e}"),
        )),
    }
}
