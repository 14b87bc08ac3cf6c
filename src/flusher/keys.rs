//! The flusher's private per-key state.

use super::DIRTY_BIT;
use crate::entry::Entry;
use crate::index::{Index, Slot};
use crate::record;
use crate::value::TailSink;
use crate::version::Version;

/// The flusher's private per-key state, indexed by index slot. Kept here,
/// not in the entry, so that draining a ring never touches (and steals from
/// the writer) the entry's cache line.
#[derive(Debug)]
pub(super) struct KeyLedger {
    /// Highest version put into a submitted batch, with `DIRTY_BIT` while
    /// the key is on the dirty list.
    pub(super) flush_state: Vec<u64>,
    /// Encoded length of the key's newest record written (0: none).
    live_len: Vec<u32>,
    /// Sum of `live_len`: the bytes a compacted store would hold.
    pub(super) live_bytes: u64,
}

impl KeyLedger {
    /// The state of every slot of `index`; keys recovered into it count as
    /// batched (and live) at their current version.
    pub(super) fn new(index: &Index) -> Self {
        // vec![0; n] allocates zeroed memory: pages are mapped as used.
        let mut keys = Self {
            flush_state: vec![0u64; index.slots()],
            live_len: vec![0u32; index.slots()],
            live_bytes: 0,
        };
        let mut value = Vec::new();
        for i in 0..index.claimed_len() {
            let Some(slot) = index.claimed_slot(i) else {
                continue;
            };
            let entry = index.entry(slot);
            let snap = entry.read(&mut value);
            keys.flush_state[slot.0 as usize] = snap.version.0;
            keys.set_live_len(slot, record::encoded_len(entry.key().len(), value.len()));
        }
        keys
    }

    /// The highest version of `slot` put into a submitted batch.
    pub(super) fn batched_version(&self, slot: Slot) -> u64 {
        self.flush_state[slot.0 as usize] & !DIRTY_BIT
    }

    pub(super) fn set_live_len(&mut self, slot: Slot, len: usize) {
        let old = std::mem::replace(&mut self.live_len[slot.0 as usize], len as u32);
        self.live_bytes = self.live_bytes - u64::from(old) + len as u64;
    }

    /// Records that a first submission batched `version` of `slot` (taken
    /// off the dirty list). False if an earlier batch (retried from memory)
    /// already holds that version: that batch is numbered lower, so any
    /// barrier that covers this entry covers it, and no record is needed.
    pub(super) fn mark_batched(&mut self, slot: Slot, version: Version) -> bool {
        let rose = self.raise_batched(slot, version);
        self.flush_state[slot.0 as usize] &= !DIRTY_BIT;
        rose
    }

    /// Encodes `slot`'s current value and version into `out` and records it
    /// as batched, leaving the dirty mark as it is (a retry from memory, or
    /// compaction).
    pub(super) fn encode_current(&mut self, index: &Index, slot: Slot, out: &mut Vec<u8>) {
        let (version, len) = encode_entry(index.entry(slot), out);
        self.raise_batched(slot, version);
        self.set_live_len(slot, len);
    }

    /// Raises `slot`'s batched version to `version`, which the index's
    /// version never falls below (G2); the dirty mark stays. True if it
    /// rose.
    fn raise_batched(&mut self, slot: Slot, version: Version) -> bool {
        let batched = self.batched_version(slot);
        assert!(version.0 >= batched, "index version behind a batched one");
        let state = &mut self.flush_state[slot.0 as usize];
        *state = (*state & DIRTY_BIT) | version.0;
        version.0 > batched
    }
}

/// Appends `entry`'s current record (value and version, read together) to
/// `out`, copying the value once, straight out of the entry. Returns the
/// version and the record's length.
pub(super) fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> (Version, usize) {
    let start = out.len();
    let mut version = Version(0);
    record::encode_with(out, entry.key(), |out| {
        let snap = entry.read(&mut TailSink::new(out));
        version = snap.version;
        (snap.kind, snap.version)
    });
    (version, out.len() - start)
}
