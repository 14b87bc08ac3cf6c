//! Eviction (G10): the flusher makes room by freeing clean entries, which
//! it alone can tell (it knows what is durable), and takes the notes of
//! entries that loads made resident.

use super::*;
use crate::index::RESIDENT_KEY_BYTES;
use crate::version::Version;

impl<S: Store> Flusher<S> {
    /// Takes the notes of entries loads made resident: clean at the version
    /// loaded. True if there were any.
    pub(super) fn take_loaded(&mut self) -> bool {
        if self.shared.reader.is_none() {
            return false; // nothing is ever loaded
        }
        let notes = {
            let mut loaded = primitives::lock(&self.shared.loaded);
            if loaded.is_empty() {
                return false;
            }
            std::mem::take(&mut *loaded)
        };
        self.shared.loaded_room.notify_all();
        let index = &self.shared.index;
        for note in notes {
            // Only the flusher frees, so an entry still of this ident is
            // the one the load made, and stays so while this runs.
            let entry = index.entry(note.slot);
            if entry.ident() == note.ident && entry.version() == note.version {
                self.keys.note_loaded(note.slot, note.version, note.len);
            }
        }
        true
    }

    /// The resident keys' bytes, as the budget counts them.
    pub(super) fn resident_bytes(&self) -> u64 {
        self.shared.index.len() as u64 * RESIDENT_KEY_BYTES + self.keys.heap_bytes
    }

    /// Over 90% of the memory budget, evicts clean entries down to 80%:
    /// CLOCK over the slots, a used mark (a read, or a put made durable)
    /// buying an entry one more turn of the hand. At most `HAND_STEPS_MAX`
    /// slots per pass. Then tells the index whether new keys fit. True if
    /// it evicted any.
    pub(super) fn evict(&mut self) -> bool {
        if self.shared.reader.is_none() {
            return false; // nothing could be read back
        }
        let budget = self.shared.config.memory_bytes;
        let mut used = self.resident_bytes();
        if used <= budget - budget / 10 {
            self.shared.index.set_full(false);
            return false;
        }
        let low = budget - budget / 5;
        let index = &self.shared.index;
        let high_water = index.high_water();
        let mut evicted = 0;
        for _ in 0..HAND_STEPS_MAX.min(2 * high_water) {
            if used <= low {
                break;
            }
            if self.hand >= high_water {
                self.hand = 0;
            }
            let slot = Slot(self.hand as u32);
            self.hand += 1;
            if !self.keys.is_clean(slot) || index.take_mark(slot) {
                continue;
            }
            let version = Version(self.keys.batched_version(slot));
            // Refused if the entry changed since it was found clean (a
            // write's ring record is on its way).
            if index.free(slot, version) {
                self.keys.forget(slot);
                evicted += 1;
                used = self.resident_bytes();
            }
        }
        self.counts.evictions += evicted;
        // Still over the budget after this pass: new keys wait (`Block`) or
        // are refused (`Fail`) until enough is durable to evict.
        index.set_full(used >= budget);
        evicted > 0
    }
}

/// Slots eviction's hand looks at per pass, at most.
const HAND_STEPS_MAX: usize = 4096;
