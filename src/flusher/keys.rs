//! The flusher's private per-key state.

use super::{CLEAN_BIT, DIRTY_BIT, VERSION_MASK};
use crate::index::{Entry, Index, Slot};
use crate::record;
use crate::value::TailSink;
use crate::version::{Kind, Version};

/// The flusher's private per-key state, indexed by index slot. Kept here,
/// not in the entry, so that draining a ring never touches (and steals from
/// the writer) the entry's cache line.
#[derive(Debug)]
pub(super) struct KeyLedger {
    /// Highest version put into a submitted batch, with `DIRTY_BIT` while
    /// the key is on the dirty list and `CLEAN_BIT` while that version is
    /// durable and nothing newer has been drained.
    pub(super) flush_state: Vec<u64>,
    /// Encoded length of the key's newest record written (0: none).
    live_len: Vec<u32>,
    /// Sum of `live_len`: the bytes a compacted store would hold.
    pub(super) live_bytes: u64,
    /// Estimated heap bytes of the resident keys (keys and values too long
    /// to sit inline), from `live_len`: see [`heap_estimate`].
    pub(super) heap_bytes: u64,
}

/// Heap bytes an entry whose newest record is `len` bytes long holds, as
/// the memory budget counts them: whatever the record holds beyond the
/// header, an inline key and an inline value (exact when the key fits
/// inline, or the value does; at most 84 bytes short otherwise).
fn heap_estimate(len: u32) -> u64 {
    let inline = record::HEADER_BYTES + crate::index::KEY_INLINE_BYTES + crate::index::INLINE_BYTES;
    u64::from(len).saturating_sub(inline as u64)
}

impl KeyLedger {
    /// The state of every resident key of `index`: keys recovered into it
    /// count as batched (and live) at their current version.
    pub(super) fn new(index: &Index) -> Self {
        let slots = index.high_water();
        // vec![0; n] allocates zeroed memory: pages are mapped as used.
        let mut keys = Self {
            flush_state: vec![0u64; slots],
            live_len: vec![0u32; slots],
            live_bytes: 0,
            heap_bytes: 0,
        };
        let mut value = Vec::new();
        for slot in (0..slots).map(|s| Slot(s as u32)) {
            let Some(encoded) = encode_entry(index.entry(slot), &mut value) else {
                continue;
            };
            value.clear();
            keys.flush_state[slot.0 as usize] = encoded.version.0 | CLEAN_BIT;
            keys.set_live_len(slot, encoded.len);
        }
        keys
    }

    /// `slot`'s state word, growing the ledger to reach it (slots are
    /// dense: the ledger grows with the index's arena).
    #[inline]
    pub(super) fn state_mut(&mut self, slot: Slot) -> &mut u64 {
        state_mut(&mut self.flush_state, slot)
    }

    /// Forgets `slot`, whose entry the index freed: its record in the store
    /// is dead (a durable tombstone), and the slot starts over for whichever
    /// key reuses it.
    pub(super) fn forget(&mut self, slot: Slot) {
        *self.state_mut(slot) = 0;
        self.set_live_len(slot, 0);
    }

    /// True while `slot` is on the dirty list.
    pub(super) fn is_dirty(&self, slot: Slot) -> bool {
        self.state(slot) & DIRTY_BIT != 0
    }

    fn state(&self, slot: Slot) -> u64 {
        self.flush_state.get(slot.0 as usize).copied().unwrap_or(0)
    }

    /// The highest version of `slot` put into a submitted batch.
    pub(super) fn batched_version(&self, slot: Slot) -> u64 {
        self.state(slot) & VERSION_MASK
    }

    /// True if `slot`'s entry may be evicted: its batched version is
    /// durable and nothing newer was drained (`Index::free` still checks
    /// the entry is at that version).
    pub(super) fn is_clean(&self, slot: Slot) -> bool {
        self.state(slot) & (CLEAN_BIT | DIRTY_BIT) == CLEAN_BIT
    }

    /// A batch holding `version` of `slot` is durable: clean, unless the
    /// key changed since.
    /// True if it is clean now.
    pub(super) fn mark_durable(&mut self, slot: Slot, version: Version) -> bool {
        let state = self.state_mut(slot);
        let clean = *state & (DIRTY_BIT | VERSION_MASK) == version.0;
        if clean {
            *state |= CLEAN_BIT;
        }
        clean
    }

    /// A load made `slot` resident at `version`, read from the store as a
    /// record of `len` bytes: batched (the store has it) and clean. A slot
    /// whose state says otherwise (a writer reused it since, and its record
    /// was drained) is left alone.
    pub(super) fn note_loaded(&mut self, slot: Slot, version: Version, len: usize) {
        let state = self.state_mut(slot);
        if *state & DIRTY_BIT == 0 && *state & VERSION_MASK <= version.0 {
            *state = version.0 | CLEAN_BIT;
            self.set_live_len(slot, len);
        }
    }

    pub(super) fn set_live_len(&mut self, slot: Slot, len: usize) {
        let i = slot.0 as usize;
        if i >= self.live_len.len() {
            self.live_len.resize(i + 1, 0);
        }
        let old = std::mem::replace(&mut self.live_len[i], len as u32);
        self.live_bytes = self.live_bytes - u64::from(old) + len as u64;
        self.heap_bytes = self.heap_bytes - heap_estimate(old) + heap_estimate(len as u32);
    }

    /// Records that a first submission batched `version` of `slot` (taken
    /// off the dirty list). False if an earlier batch (retried from memory)
    /// already holds that version: that batch is numbered lower, so any
    /// barrier that covers this entry covers it, and no record is needed.
    pub(super) fn mark_batched(&mut self, slot: Slot, version: Version) -> bool {
        let rose = self.raise_batched(slot, version);
        *self.state_mut(slot) &= !DIRTY_BIT;
        rose
    }

    /// Encodes `slot`'s current value and version into `out` and records it
    /// as batched, leaving the dirty mark as it is (a retry from memory, or
    /// compaction). `None` (nothing encoded) if the entry was freed.
    pub(super) fn encode_current(
        &mut self,
        index: &Index,
        slot: Slot,
        out: &mut Vec<u8>,
    ) -> Option<Encoded> {
        let encoded = encode_entry(index.entry(slot), out)?;
        self.raise_batched(slot, encoded.version);
        self.set_live_len(slot, encoded.len);
        Some(encoded)
    }

    /// Raises `slot`'s batched version to `version`, which the index's
    /// version never falls below (G2); the dirty mark stays. True if it
    /// rose.
    fn raise_batched(&mut self, slot: Slot, version: Version) -> bool {
        let batched = self.batched_version(slot);
        assert!(version.0 >= batched, "index version behind a batched one");
        let state = self.state_mut(slot);
        *state = (*state & DIRTY_BIT) | version.0;
        version.0 > batched
    }
}

/// `flush_state[slot]`, growing `flush_state` to reach it.
#[inline]
pub(super) fn state_mut(flush_state: &mut Vec<u64>, slot: Slot) -> &mut u64 {
    let i = slot.0 as usize;
    if i >= flush_state.len() {
        // To `i + 1` only: `Vec` grows its capacity geometrically anyway,
        // and capacity not yet written costs no resident memory.
        flush_state.resize(i + 1, 0);
    }
    &mut flush_state[i]
}

/// A record the flusher encoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Encoded {
    pub version: Version,
    pub kind: Kind,
    /// Encoded bytes.
    pub len: usize,
}

/// Appends `entry`'s current record (value and version, read together) to
/// `out`, copying the value once, straight out of the entry. `None`, with
/// nothing appended, if the entry is free (a ring record or a dirty mark
/// may outlive the key it named).
pub(super) fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> Option<Encoded> {
    let mut buf = [0u8; crate::index::KEY_INLINE_BYTES];
    let (ident, key) = entry.key(&mut buf)?;
    let start = out.len();
    let mut snap = None;
    record::encode_with(out, key, |out| {
        let value_start = out.len();
        let s = entry.read(&mut TailSink::new(out));
        // The entry changed owner between the two reads (a writer claimed
        // it), or was claimed and not yet written (version 0 on a fresh
        // store): nothing to encode; its writer's record will come.
        snap = s
            .filter(|(id, s)| *id == ident && s.version.0 > 0)
            .map(|(_, s)| s);
        if snap.is_none() {
            out.truncate(value_start);
        }
        // A valid header even for a record cut off below.
        snap.map_or((Kind::Delete, Version(1)), |s| (s.kind, s.version))
    });
    let Some(snap) = snap else {
        out.truncate(start);
        return None;
    };
    Some(Encoded {
        version: snap.version,
        kind: snap.kind,
        len: out.len() - start,
    })
}
