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

use crate::entry::{Entry, SLOT_CLAIMED, SLOT_EMPTY, SLOT_READY};
use crate::error::Error;
use crate::primitives::{AtomicU32, AtomicUsize, Backoff, Ordering};
use crate::table::Table;
use crate::version::Version;

/// Position of an entry in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Slot(pub u32);

/// Key -> entry.
#[derive(Debug)]
pub(crate) struct Index {
    /// `2^k` slots; see the module docs.
    entries: Table,
    /// Slots claimed so far, in claim order (`claimed_len` of them): what
    /// `Drop` must drop, without walking (and mapping) the whole table.
    claimed: Box<[AtomicU32]>,
    claimed_len: AtomicUsize,
    /// `entries.len() - 1`.
    mask: usize,
    /// Slots claimed (plus, briefly, claims in progress); `<= keys_max`.
    count: AtomicUsize,
    keys_max: usize,
    /// Per-index random seed of the key hash.
    seed: u64,
}

/// `n` atomics at 0, from zeroed memory (calloc maps pages lazily).
#[cfg(not(loom))]
fn zeroed_u32s(n: usize) -> Box<[AtomicU32]> {
    const _: () = assert!(
        std::mem::size_of::<u32>() == std::mem::size_of::<AtomicU32>()
            && std::mem::align_of::<u32>() == std::mem::align_of::<AtomicU32>()
    );
    let raw = Box::into_raw(vec![0u32; n].into_boxed_slice()) as *mut [AtomicU32];
    // SAFETY: `AtomicU32` has the size and bit validity of `u32` and, as
    // asserted above, its alignment here, so the allocation is a valid
    // `[AtomicU32]` of the same layout and is freed as one.
    unsafe { Box::from_raw(raw) }
}

/// `n` atomics at 0 (loom's atomics are not plain integers).
#[cfg(loom)]
fn zeroed_u32s(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

impl Index {
    /// An empty index for at most `keys_max` keys.
    pub(crate) fn new(keys_max: usize) -> Result<Self, Error> {
        let slots = (keys_max.max(1) * 2).next_power_of_two();
        // A random seed per index (std's RandomState draws it from the OS once
        // per thread), so a key set that probes badly in one process does not
        // do so everywhere.
        // Loom replays schedules and needs every run to take the same path.
        #[cfg(loom)]
        let seed = 0x5EED;
        #[cfg(not(loom))]
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1
        };
        Ok(Self {
            entries: Table::new(slots)?,
            claimed: zeroed_u32s(keys_max.max(1)),
            claimed_len: AtomicUsize::new(0),
            mask: slots - 1,
            count: AtomicUsize::new(0),
            keys_max,
            seed,
        })
    }

    /// Keys in the index (live or deleted).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed).min(self.keys_max)
    }

    /// Slots claimed so far (claim order); entries at these slots are READY
    /// or about to be.
    pub(crate) fn claimed_len(&self) -> usize {
        // Acquire: pairs with nothing in particular; a slot listed here may
        // still be CLAIMED, which readers of it handle.
        self.claimed_len
            .load(Ordering::Acquire)
            .min(self.claimed.len())
    }

    /// The `i`-th claimed slot, `i < claimed_len()`, once its claimer has
    /// recorded it (`None` for the brief moment before).
    pub(crate) fn claimed_slot(&self, i: usize) -> Option<Slot> {
        let slot = Slot(self.claimed[i].load(Ordering::Relaxed));
        let entry = self.entries.get(slot.0 as usize)?;
        // Acquire: the key and initial state are visible if READY.
        (entry.state.load(Ordering::Acquire) == SLOT_READY && entry.version().0 > 0).then_some(slot)
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

    /// Reserves room for one more key before claiming the empty slot
    /// `entry` (so the bound holds under racing inserts). Returns
    /// `Some(SLOT_EMPTY)` once reserved, `Some(state)` if the slot stopped
    /// being empty meanwhile, `None` if the index is full.
    ///
    /// At the bound a refusal can be transient: two inserts of the same key
    /// each reserve before one finds the other's entry and gives its
    /// reservation back, and a racing insert may hold the last reservation
    /// for this very key and be about to claim this slot. So a failed
    /// reservation waits (spins, yields, then short sleeps, up to
    /// `FULL_WAIT`) for the count to drop or the slot to fill before
    /// refusing. An index whose every reservation is a claimed key (claims
    /// are never undone) is full for good and refuses at once.
    fn reserve(&self, entry: &Entry) -> Option<u32> {
        let mut backoff = Backoff::new();
        #[cfg(not(loom))]
        let mut deadline = None;
        loop {
            // Relaxed: a counter; the slot publishes.
            if self.count.fetch_add(1, Ordering::Relaxed) < self.keys_max {
                return Some(SLOT_EMPTY);
            }
            self.count.fetch_sub(1, Ordering::Relaxed);
            let full_for_good = self.full_for_good();
            // Acquire: as in `get`.
            let state = entry.state.load(Ordering::Acquire);
            if state != SLOT_EMPTY {
                return Some(state);
            }
            if full_for_good {
                return None;
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            // Under loom the wait ends with the backoff (time stands still).
            #[cfg(loom)]
            return None;
            #[cfg(not(loom))]
            {
                let now = std::time::Instant::now();
                if now >= *deadline.get_or_insert(now + FULL_WAIT) {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }

    /// Every reservation is a claimed key (claims are never undone): a
    /// refused reservation need not wait for one to be given back.
    fn full_for_good(&self) -> bool {
        // Acquire: pairs with the claimers' Release increment, so every
        // claim counted here has its CAS visible to the caller's next load.
        self.claimed_len.load(Ordering::Acquire) >= self.keys_max
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
            if state == SLOT_EMPTY && !reserved {
                match self.reserve(entry) {
                    Some(SLOT_EMPTY) => reserved = true,
                    Some(now) => state = now,
                    None => return Err(Error::IndexFull { max: self.keys_max }),
                }
            }
            if state == SLOT_EMPTY {
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
                        // Record the claim for `Drop` (at most keys_max claims:
                        // each one holds a reservation).
                        // Release: a reserver that reads this count sees
                        // the claim (`reserve`).
                        let n = self.claimed_len.fetch_add(1, Ordering::Release);
                        self.claimed[n].store(i as u32, Ordering::Relaxed);
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

/// Longest a full-looking index waits for a racing insert to resolve
/// before refusing (see `Index::reserve`): a preempted thread on a busy
/// machine can take milliseconds to get back to its claim.
#[cfg(not(loom))]
const FULL_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

impl Drop for Index {
    fn drop(&mut self) {
        if crate::primitives::unwinding_in_model() {
            return;
        }
        let n = self.claimed_len.load(Ordering::Relaxed);
        for i in 0..n {
            let slot = self.claimed[i].load(Ordering::Relaxed) as usize;
            // SAFETY: `&mut self`: nobody else holds entries; each claimed
            // slot is listed once (a claim is a successful CAS from EMPTY).
            unsafe { self.entries.drop_entry(slot) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::entry::Update;

    #[test]
    fn insert_find_and_bound() {
        let index = Index::new(100).expect("index");
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
        let index = Index::new(10).expect("index");
        let long: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let (slot, _) = index.get_or_insert(&long, Version(0)).expect("room");
        assert_eq!(index.get(&long).map(|(s, _)| s), Some(slot));
        assert_eq!(index.entry(slot).key(), &long[..]);
    }

    /// A reservation held past the spin/yield budget and then given back (as
    /// the losing racer of an insert of the same key does) does not turn
    /// into IndexFull for a key that fits; a full index refuses at once and
    /// leaks no reservation.
    #[test]
    fn a_refusal_at_the_bound_waits_for_a_given_back_reservation() {
        let index = std::sync::Arc::new(Index::new(2).expect("index"));
        index.get_or_insert(b"a", Version(0)).expect("room");
        // A racer's reservation, held 5 ms.
        index.count.fetch_add(1, Ordering::Relaxed);
        let racer = {
            let index = std::sync::Arc::clone(&index);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(5));
                index.count.fetch_sub(1, Ordering::Relaxed);
            })
        };
        let b = index.get_or_insert(b"b", Version(0));
        racer.join().expect("thread");
        assert!(b.is_ok(), "spurious IndexFull: {b:?}");
        assert_eq!(index.len(), 2);
        // Full for good: `reserve` refuses on its first try, with no wait.
        assert!(index.full_for_good());
        assert!(matches!(
            index.get_or_insert(b"c", Version(0)),
            Err(Error::IndexFull { max: 2 })
        ));
        assert_eq!(index.count.load(Ordering::Relaxed), 2, "count leaked");
    }

    #[test]
    fn racing_inserts_of_the_same_keys_agree() {
        let index = std::sync::Arc::new(Index::new(10_000).expect("index"));
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
