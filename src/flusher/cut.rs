//! Cutting batches: when a cut is due (the adaptive target, the oldest dirty
//! key's age, a `sync()` or `close()`), encoding each dirty key's current
//! value and version, and resubmitting failed batches from memory.

use super::keys::encode_entry;
use super::*;
use crate::record;
use crate::version::{Kind, Version};

impl<S: Store> Flusher<S> {
    /// True if a sync or close needs the dirty list emptied now.
    pub(super) fn forced(&self) -> bool {
        self.sealed
            || self
                .collecting
                .as_ref()
                .and_then(|c| c.dirty_mark)
                .is_some_and(|m| self.dirty_dequeued < m)
    }

    /// Cuts and submits batches while one is due and the store has room.
    pub(super) fn cut_batches(&mut self, now: u64) -> bool {
        let config = &self.shared.config;
        let interval_ns = nanos(config.flush_interval);
        let trigger = self.target_ops.min(config.dirty_keys_max);
        let mut cut = false;
        while let Some(front) = self.dirty.front() {
            let due = self.forced()
                || self.dirty.len() >= trigger
                || now.saturating_sub(front.since_ns) >= interval_ns;
            if !due {
                break;
            }
            if !self.window.has_room() {
                self.cut_blocked = true;
                break;
            }
            cut |= self.cut_one();
        }
        cut
    }

    /// Encodes one batch from the front of the dirty list and submits it.
    pub(super) fn cut_one(&mut self) -> bool {
        let (mut batch, mut entries) = self.fresh_batch();
        let shared = &*self.shared;
        let config = &shared.config;
        let mut oldest_ns = u64::MAX;
        while let Some(&d) = self.dirty.front() {
            if batch.records >= config.batch_ops_max {
                break;
            }
            if let Some(ahead) = self.dirty.get(PREFETCH_AHEAD) {
                shared.index.prefetch(ahead.slot);
            }
            let entry = shared.index.entry(d.slot);
            let start = batch.bytes.len();
            // Checked before encoding too, so the buffer does not grow past
            // the bound only to be cut back (its capacity would double).
            let hint = record::encoded_len(entry.key_len_hint(), entry.value_len_hint());
            if batch.records > 0 && start + hint > config.batch_bytes_max {
                break;
            }
            let encoded = encode_entry(entry, &mut batch.bytes);
            if batch.records > 0 && batch.bytes.len() > config.batch_bytes_max {
                batch.bytes.truncate(start);
                break;
            }
            self.dirty.pop_front();
            self.dirty_dequeued += 1;
            let Some(encoded) = encoded else {
                // A stale ring record named an entry freed since.
                *self.keys.state_mut(d.slot) &= !DIRTY_BIT;
                continue;
            };
            if !self.keys.mark_batched(d.slot, encoded.version) {
                batch.bytes.truncate(start);
                continue;
            }
            self.keys.set_live_len(d.slot, encoded.len);
            entries.push(Batched::new(d.slot, encoded.version, encoded.kind));
            batch.records += 1;
            oldest_ns = oldest_ns.min(d.since_ns);
        }
        if batch.records == 0 {
            self.free_batches.push(batch);
            self.free_lists.push(entries);
            return false;
        }
        self.counts.encoded += batch.records as u64;
        self.submit_new(batch, entries, oldest_ns);
        true
    }

    /// Resubmits failed batches whose backoff has passed, re-encoded from the
    /// index: each entry's current value and version, which is at least the
    /// version the failed attempt carried, so nothing older is ever written
    /// after something newer (G2).
    ///
    /// A retried batch can exceed `batch_bytes_max` if values grew meanwhile;
    /// it stays within `batch_ops_max` records of at most the largest record.
    pub(super) fn retry_failed(&mut self, now: u64) -> bool {
        let shared = &*self.shared;
        let mut any = false;
        for f in self.window.due_retries(now) {
            let mut batch = f.batch.take().unwrap_or_default();
            batch.bytes.clear();
            let mut records = 0;
            for b in f.entries.iter_mut() {
                let slot = b.slot;
                match self
                    .keys
                    .encode_current(&shared.index, slot, &mut batch.bytes)
                {
                    Some(encoded) => {
                        *b = Batched::new(slot, encoded.version, encoded.kind);
                        records += 1;
                    }
                    // The entry changed owner (never freed: this batch
                    // holds its latest record and is not durable).
                    None => *b = Batched::new(slot, Version(0), Kind::Put),
                }
            }
            batch.records = records;
            batch.seq = BatchSeq(f.seq);
            // A retry always asks for an fdatasync: under `Durability::Deferred`
            // a sync point submitted after this batch may already have
            // completed, and the watermark would pass it with this batch's
            // records only in the page cache (under `Batch` every batch asks).
            batch.sync = true;
            f.bytes = batch.bytes.len();
            f.state = BatchState::Submitted;
            self.counts.retries += 1;
            self.store.submit(batch);
            any = true;
        }
        any
    }
}
