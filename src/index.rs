//! The index: a fixed-capacity, insert-only, lock-free hash table whose slots
//! *are* the entries.
//!
//! Open addressing with linear probing over `2^k >= 2 * keys_max` slots (load
//! factor <= 1/2, so probe sequences stay short). Each slot is a 128-byte
//! [`Entry`] holding the key inline (up to 28 bytes), the sequence word and a
//! value of up to 64 bytes, so finding and updating a short key costs one
//! cache miss: the slot. A slot goes `EMPTY -> CLAIMED -> READY` once (the
//! claiming thread writes the key in between) and never changes key again:
//! entries are never removed. A delete leaves a tombstone that keeps the key's
//! version, so a later put continues the version sequence (G2). Entries thus
//! live exactly as long as the index, and no reclamation scheme is needed.
//!
//! The table does not grow: `keys_max` bounds it (G6), and a put of a new key
//! beyond it is refused with [`Error::IndexFull`]. It is allocated zeroed (an
//! all-zero entry is an empty slot), so the OS maps its pages as keys arrive;
//! once populated it costs `256 bytes x keys_max`.

use std::hash::{BuildHasher, Hasher};

use crate::entry::{Entry, SLOT_CLAIMED, SLOT_EMPTY, SLOT_READY};
use crate::error::Error;
use crate::record::Version;
use crate::sync::{AtomicUsize, Backoff, Ordering};

/// Position of an entry in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Slot(pub u32);

/// Key -> entry.
#[derive(Debug)]
pub(crate) struct Index {
    /// `2^k` slots; see the module docs.
    entries: Box<[Entry]>,
    /// `entries.len() - 1`.
    mask: usize,
    /// Slots claimed (plus, briefly, claims in progress); `<= keys_max`.
    count: AtomicUsize,
    keys_max: usize,
    /// Per-index random seed of the key hash.
    seed: u64,
}

/// Allocates `n` empty entries.
#[cfg(not(loom))]
fn alloc_entries(n: usize) -> Box<[Entry]> {
    use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
    let layout = match Layout::array::<Entry>(n) {
        Ok(layout) => layout,
        Err(_) => panic!("index of {n} slots overflows the address space"),
    };
    // SAFETY: `layout` has a nonzero size (n >= 2).
    let p = unsafe { alloc_zeroed(layout) }.cast::<Entry>();
    if p.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: `p` is a fresh allocation of `n` entries with the layout a
    // `Box<[Entry]>` frees with, and all-zero bytes are a valid empty `Entry`
    // (atomics at 0, null pointers, empty inline key; see `Entry::empty`).
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) }
}

/// Allocates `n` empty entries (loom's atomics are not plain integers, so no
/// zeroed allocation under loom).
#[cfg(loom)]
fn alloc_entries(n: usize) -> Box<[Entry]> {
    (0..n).map(|_| Entry::empty()).collect()
}

impl Index {
    /// An empty index for at most `keys_max` keys.
    pub(crate) fn new(keys_max: usize) -> Self {
        let slots = (keys_max.max(1) * 2).next_power_of_two();
        // A random seed per index (std's RandomState draws it from the OS once
        // per thread), so a key set that probes badly in one process does not
        // do so everywhere.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        Self {
            entries: alloc_entries(slots),
            mask: slots - 1,
            count: AtomicUsize::new(0),
            keys_max,
            seed,
        }
    }

    /// Keys in the index (live or deleted).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed).min(self.keys_max)
    }

    /// Slots in the table.
    pub(crate) fn slots(&self) -> usize {
        self.entries.len()
    }

    /// The entry in `slot` (which came from this index).
    #[inline]
    pub(crate) fn entry(&self, slot: Slot) -> &Entry {
        &self.entries[slot.0 as usize]
    }

    /// Hints the CPU to start loading `slot`'s entry (both lines) into cache:
    /// the flusher walks its dirty list in an order unrelated to memory, and
    /// overlapping those misses is what keeps it ahead of the writers. A
    /// no-op off x86-64.
    #[inline]
    pub(crate) fn prefetch(&self, slot: Slot) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if let Some(entry) = self.entries.get(slot.0 as usize) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = (entry as *const Entry).cast::<i8>();
            // SAFETY: prefetching never faults and has no architectural
            // effect; `p` and `p + 64` are inside the same entry anyway.
            unsafe {
                _mm_prefetch(p, _MM_HINT_T0);
                _mm_prefetch(p.wrapping_add(64), _MM_HINT_T0);
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(loom))))]
        let _ = slot;
    }

    /// A 64-bit hash of `key`: 8 bytes at a time, multiply-rotate, then a
    /// final avalanche (the constants are the 64-bit golden ratio and
    /// splitmix64's finalizer multipliers).
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = self.seed ^ (key.len() as u64).wrapping_mul(K);
        let mut chunks = key.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
        }
        h ^= h >> 30;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^ (h >> 31)
    }

    /// Waits out a claim in progress and returns the slot's state afterwards
    /// (READY). The claimer only copies a key between its CAS and its
    /// publication, so this is short; Backoff bounds the spinning.
    #[cold]
    fn wait_ready(entry: &Entry) -> u32 {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: pairs with the claimer's Release publication.
            let state = entry.state.load(Ordering::Acquire);
            if state != SLOT_CLAIMED {
                return state;
            }
            backoff.snooze();
        }
    }

    /// The entry of `key`, if the key was ever inserted.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<(Slot, &Entry)> {
        let mut i = self.hash(key) as usize & self.mask;
        // Bounded: at most every slot once (the table is never more than
        // half full, so an empty slot ends the probe much sooner).
        for _ in 0..self.entries.len() {
            let entry = &self.entries[i];
            // Acquire: the key written before READY is visible.
            let mut state = entry.state.load(Ordering::Acquire);
            if state == SLOT_CLAIMED {
                state = Self::wait_ready(entry);
            }
            if state == SLOT_EMPTY {
                return None;
            }
            if entry.key() == key {
                return Some((Slot(i as u32), entry));
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// The entry of `key`, inserted (empty, at `version`) if missing.
    pub(crate) fn get_or_insert(
        &self,
        key: &[u8],
        version: Version,
    ) -> Result<(Slot, &Entry), Error> {
        let mut i = self.hash(key) as usize & self.mask;
        let mut reserved = false;
        for _ in 0..self.entries.len() {
            let entry = &self.entries[i];
            // Acquire: as in `get`.
            let mut state = entry.state.load(Ordering::Acquire);
            if state == SLOT_EMPTY {
                if !reserved {
                    // Reserve room first so the bound holds under racing
                    // inserts. Relaxed: a counter; the slot publishes.
                    if self.count.fetch_add(1, Ordering::Relaxed) >= self.keys_max {
                        self.count.fetch_sub(1, Ordering::Relaxed);
                        return Err(Error::IndexFull { max: self.keys_max });
                    }
                    reserved = true;
                }
                // Acquire on failure: we may read the winner's key next.
                match entry.state.compare_exchange(
                    SLOT_EMPTY,
                    SLOT_CLAIMED,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        // SAFETY: we claimed the slot and have not published it.
                        unsafe { entry.init(key, version) };
                        // Release: the key and initial state happen-before
                        // any Acquire load that sees READY.
                        entry.state.store(SLOT_READY, Ordering::Release);
                        return Ok((Slot(i as u32), entry));
                    }
                    Err(now) => state = now,
                }
            }
            if state == SLOT_CLAIMED {
                state = Self::wait_ready(entry);
            }
            debug_assert_eq!(state, SLOT_READY);
            if entry.key() == key {
                if reserved {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                }
                return Ok((Slot(i as u32), entry));
            }
            i = (i + 1) & self.mask;
        }
        // Unreachable while count <= keys_max < slots; handled anyway.
        if reserved {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Err(Error::IndexFull { max: self.keys_max })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::entry::Update;

    #[test]
    fn insert_find_and_bound() {
        let index = Index::new(100);
        for i in 0..100u32 {
            let (_, e) = index
                .get_or_insert(&i.to_le_bytes(), Version(0))
                .expect("room");
            e.write(Update::Put(&i.to_be_bytes())).expect("put");
        }
        assert_eq!(index.len(), 100);
        assert!(matches!(
            index.get_or_insert(b"one too many", Version(0)),
            Err(Error::IndexFull { max: 100 })
        ));
        for i in 0..100u32 {
            let (slot, e) = index.get(&i.to_le_bytes()).expect("present");
            assert!(std::ptr::eq(index.entry(slot), e));
            let mut out = Vec::new();
            e.read(&mut out);
            assert_eq!(out, i.to_be_bytes());
        }
        assert!(index.get(b"absent").is_none());
    }

    #[test]
    fn long_keys_live_on_the_heap_and_are_found() {
        let index = Index::new(10);
        let long: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let (slot, _) = index.get_or_insert(&long, Version(0)).expect("room");
        assert_eq!(index.get(&long).map(|(s, _)| s), Some(slot));
        assert_eq!(index.entry(slot).key(), &long[..]);
    }

    #[test]
    fn racing_inserts_of_the_same_keys_agree() {
        let index = std::sync::Arc::new(Index::new(10_000));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let index = std::sync::Arc::clone(&index);
                std::thread::spawn(move || {
                    (0..10_000u32)
                        .map(|i| {
                            index
                                .get_or_insert(&i.to_le_bytes(), Version(0))
                                .expect("room")
                                .0
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(
            results[0], results[1],
            "both threads must get the same entries"
        );
        assert_eq!(index.len(), 10_000);
    }
}
