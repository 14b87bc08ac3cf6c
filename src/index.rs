//! The index: a fixed-capacity, insert-only, lock-free hash table from key to
//! [`Entry`].
//!
//! Open addressing with linear probing over `2^k >= 2 * keys_max` slots (load
//! factor <= 1/2, so probe sequences stay short). A slot goes from null to an
//! entry pointer once, by CAS, and never changes again: entries are never
//! removed (a delete leaves a tombstone entry that keeps the key's version, so
//! that a later put continues the version sequence, G2). That makes lookups a
//! plain probe with Acquire loads and no reclamation scheme at all; every entry
//! lives until the index is dropped.
//!
//! The table does not grow: `keys_max` bounds it (G6), and a put of a new key
//! beyond it is refused with [`Error::IndexFull`].

use std::hash::{BuildHasher, Hasher};
use std::ptr;

use crate::entry::Entry;
use crate::error::Error;
use crate::record::Version;
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};

/// Key -> entry.
#[derive(Debug)]
pub(crate) struct Index {
    /// Null or an entry from `Box::into_raw`, owned by the index.
    slots: Box<[AtomicPtr<Entry>]>,
    /// `slots.len() - 1`.
    mask: usize,
    /// Entries inserted (plus, briefly, insertions in progress); `<= keys_max`.
    count: AtomicUsize,
    keys_max: usize,
    /// Per-index random seed of the key hash.
    seed: u64,
}

impl Index {
    /// An empty index for at most `keys_max` keys.
    pub(crate) fn new(keys_max: usize) -> Self {
        let slots_len = (keys_max.max(1) * 2).next_power_of_two();
        // A random seed per index (std's RandomState draws it from the OS once
        // per thread), so a key set that probes badly in one process does not
        // do so everywhere.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        Self {
            slots: (0..slots_len)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            mask: slots_len - 1,
            count: AtomicUsize::new(0),
            keys_max,
            seed,
        }
    }

    /// Keys in the index (live or deleted).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed).min(self.keys_max)
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

    /// The entry of `key`, if the key was ever inserted.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        let mut i = self.hash(key) as usize & self.mask;
        // Bounded: at most every slot once (the table is never full, so in
        // practice a null slot ends the probe much sooner).
        for _ in 0..self.slots.len() {
            // Acquire: pairs with the Release CAS that published the entry.
            let p = self.slots[i].load(Ordering::Acquire);
            if p.is_null() {
                return None;
            }
            // SAFETY: non-null slots hold entries that live as long as `self`.
            let entry = unsafe { &*p };
            if entry.key() == key {
                return Some(entry);
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// The entry of `key`, inserted (empty, at `version`) if missing.
    pub(crate) fn get_or_insert(&self, key: &[u8], version: Version) -> Result<&Entry, Error> {
        if let Some(entry) = self.get(key) {
            return Ok(entry);
        }
        // Reserve room first so the bound holds even under racing inserts.
        // Relaxed: a counter; the slot CAS below publishes the entry.
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.keys_max {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::IndexFull { max: self.keys_max });
        }
        let fresh = Box::into_raw(Box::new(Entry::new(key, version)));
        let mut i = self.hash(key) as usize & self.mask;
        for _ in 0..self.slots.len() {
            // Release: the entry's initialization happens-before any reader
            // that loads the pointer with Acquire. Acquire on failure: we read
            // the winner's key.
            match self.slots[i].compare_exchange(
                ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // SAFETY: we just published `fresh`; it lives as long as `self`.
                Ok(_) => return Ok(unsafe { &*fresh }),
                Err(existing) => {
                    // SAFETY: non-null slots hold entries that live as long as
                    // `self`.
                    let entry = unsafe { &*existing };
                    if entry.key() == key {
                        // Another writer inserted the same key first.
                        // SAFETY: `fresh` was never published.
                        drop(unsafe { Box::from_raw(fresh) });
                        self.count.fetch_sub(1, Ordering::Relaxed);
                        return Ok(entry);
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
        // Unreachable while count <= keys_max < slots.len(); handled anyway.
        // SAFETY: `fresh` was never published.
        drop(unsafe { Box::from_raw(fresh) });
        self.count.fetch_sub(1, Ordering::Relaxed);
        Err(Error::IndexFull { max: self.keys_max })
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: `&mut self`: nobody else holds entries; each came
                // from `Box::into_raw` and is freed once.
                drop(unsafe { Box::from_raw(p) });
            }
        }
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
            let e = index
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
            let e = index.get(&i.to_le_bytes()).expect("present");
            let mut out = Vec::new();
            e.read(&mut out);
            assert_eq!(out, i.to_be_bytes());
        }
        assert!(index.get(b"absent").is_none());
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
                                .expect("room") as *const Entry as usize
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
