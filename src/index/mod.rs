//! The index: key -> entry, lock-free for readers, growing with the keys
//! that are resident and giving back the entries of keys the flusher frees.
//!
//! Three parts (one file each):
//!
//! - `entry.rs`: one key's cell (key, value, version) behind a sequence
//!   lock, reusable for another key once freed;
//! - `arena.rs`: the entries, in chunks that double as keys arrive, named
//!   by a dense [`Slot`] number that the rings and the flusher use;
//! - `table.rs`: 64 shards of an open-addressing table of `(slot, hash tag)`
//!   words, each growing and shrinking on its own, in place.
//!
//! Memory therefore follows the keys: before the first key the index holds
//! 64 tables of 8 words and no entry (a few pages), and each resident key
//! costs its 128-byte entry and 11 to 21 bytes of table.
//!
//! # Versions of new entries
//!
//! A key's versions rise by one per update while it is resident. When the
//! flusher frees an entry (its tombstone is durable), the key's history is
//! in the store only; an entry made for the key later must start above it
//! (G2) without reading the store. So every new entry starts at the
//! *version floor*: at least every version the store held at open and every
//! version of an entry freed since. The flusher raises the floor before it
//! frees an entry, and a writer reads it under the shard's lock after seeing
//! that entry free or gone, so the new entry starts above the old one.

mod arena;
mod chunk;
mod entry;
#[cfg(feature = "__internals")]
pub(crate) mod keys;
mod retire;
mod table;

pub(crate) use entry::{Ident, KeyProbe, Snapshot, Update, Written, INLINE_BYTES};

use crate::error::Error;
use crate::primitives::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::value::Sink;
use crate::version::Version;
use arena::Arena;
pub(crate) use entry::Entry;
pub(crate) use entry::KEY_INLINE_BYTES;
use table::Shard;

/// What one resident key costs besides keys and values too long to sit
/// inline, as the memory budget counts it: the 128-byte entry, its table
/// word at the table's load (8 bytes at 3/8 to 3/4: 11 to 21), and the
/// flusher's 12 bytes of state. Measured with `benches/memory.rs`: 170 to
/// 197 bytes per key in all (the rest: the dirty list, allocator slack).
pub(crate) const RESIDENT_KEY_BYTES: u64 = 160;

/// Position of an entry in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Slot(pub u32);

/// Shards of the table: the top bits of a key's hash pick one.
#[cfg(not(loom))]
const SHARD_BITS: u32 = 6;
/// Two shards in a model: enough for keys in different shards, without
/// loom tracking 64 tables.
#[cfg(loom)]
const SHARD_BITS: u32 = 1;
const SHARDS: usize = 1 << SHARD_BITS;

/// A key's hash, computed once per operation.
#[derive(Debug, Clone, Copy)]
struct Hash(u64);

impl Hash {
    fn shard(self) -> usize {
        (self.0 >> (64 - SHARD_BITS)) as usize
    }
    fn tag(self) -> u32 {
        self.0 as u32
    }
}

/// An entry found for a key: where it is, and whose cell it was when found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'a> {
    pub slot: Slot,
    pub entry: &'a Entry,
    pub ident: Ident,
}

/// Counters of frees by key hash: a load's guard (see [`Index::install`]).
#[cfg(not(loom))]
const FREED_BUCKETS: usize = 4096;
#[cfg(loom)]
const FREED_BUCKETS: usize = 2;

/// What a load saw before it read the store: the free counter of its key's
/// bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadTicket(u64);

impl LoadTicket {
    /// The bucket's count when the ticket was taken.
    fn count(self) -> u64 {
        self.0
    }
}

/// What [`Index::upsert`] did.
#[derive(Debug)]
pub(crate) enum Upserted<'a> {
    /// The key's entry, resident already: write to it.
    Found(Found<'a>),
    /// A new entry, holding the update.
    Made(Found<'a>, Written),
    /// Not made: the guard's bucket saw a free (see [`Index::upsert`]).
    Stale,
}

/// What [`Index::install`] did.
#[derive(Debug)]
pub(crate) enum Install<'a> {
    /// The key is resident now, holding what was loaded.
    Made(Found<'a>),
    /// The key became resident while the store was read (a writer made
    /// it, or another load): its entry is newer than what was read.
    Present,
    /// An entry of a key in the bucket was freed while the store was read:
    /// it may have been this key's, with a newer version than what was
    /// read, so nothing was installed.
    Stale,
}

/// Key -> entry.
#[derive(Debug)]
pub(crate) struct Index {
    shards: Box<[Shard]>,
    arena: Arena,
    /// Resident keys (plus, briefly, inserts in progress); `<= keys_max`.
    live: AtomicUsize,
    keys_max: usize,
    /// The version a new entry starts at (see the module docs).
    floor: AtomicU64,
    /// Per-index random seed of the key hash.
    seed: u64,
    /// Frees per bucket of key hashes, raised under the shard's lock.
    freed: Box<[AtomicU64]>,
    /// Reads set use marks (eviction may run; see `arena.rs`).
    track_use: bool,
    /// Set by the flusher while memory is over its budget: new keys are
    /// refused (`budget_bytes` says the budget).
    full: AtomicBool,
    budget_bytes: u64,
    /// The most entries the budget holds (`budget_bytes /
    /// RESIDENT_KEY_BYTES`), checked by every insert: the flusher's flag
    /// adds the heap bytes, but only as often as it runs.
    keys_cap: usize,
}

impl Index {
    /// An empty index for at most `keys_max` resident keys.
    pub(crate) fn new(keys_max: usize) -> Result<Self, Error> {
        // A random seed per index, so a key set that probes badly in one
        // process does not do so everywhere.
        let seed = crate::hash::random_seed();
        // Keys spread evenly over the shards (the hash is seeded at random),
        // so a shard is reserved twice its share, and all of them in a
        // small index; a shard that fills its reservation refuses like a
        // full index (with 2^20 keys that is 130 standard deviations away).
        let shard_keys = if keys_max <= 4096 {
            keys_max
        } else {
            (keys_max / SHARDS * 2 + 1024).min(keys_max)
        };
        let shards = (0..SHARDS)
            .map(|_| Shard::new(shard_keys))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            shards,
            arena: Arena::new(),
            live: AtomicUsize::new(0),
            keys_max,
            floor: AtomicU64::new(0),
            seed,
            freed: (0..FREED_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            track_use: false,
            full: AtomicBool::new(false),
            budget_bytes: u64::MAX,
            keys_cap: usize::MAX,
        })
    }

    /// This index, its reads marking entries used, and new keys refused
    /// with [`Error::MemoryFull`] (of `budget_bytes`) while the flusher
    /// says memory is full: for a cache whose entries may be evicted.
    pub(crate) fn evictable(mut self, budget_bytes: u64) -> Self {
        self.track_use = true;
        self.budget_bytes = budget_bytes;
        self.keys_cap = usize::try_from(budget_bytes / RESIDENT_KEY_BYTES).unwrap_or(usize::MAX);
        self
    }

    /// Marks `slot`'s entry used (a read found it).
    #[inline]
    fn touch(&self, slot: Slot) {
        if self.track_use {
            let mark = self.arena.mark(slot);
            // Relaxed: a hint for eviction's second chance.
            if mark.load(Ordering::Relaxed) == 0 {
                mark.store(1, Ordering::Relaxed);
            }
        }
    }

    /// Marks `slot`'s entry used (the flusher: a put of it just became
    /// durable).
    pub(crate) fn mark_used(&self, slot: Slot) {
        self.touch(slot);
    }

    /// Clears `slot`'s use mark; true if it was set (eviction's hand).
    pub(crate) fn take_mark(&self, slot: Slot) -> bool {
        let mark = self.arena.mark(slot);
        // Relaxed: as in `touch`.
        mark.load(Ordering::Relaxed) != 0 && mark.swap(0, Ordering::Relaxed) != 0
    }

    /// True while a new key would be refused for memory: the flusher says
    /// the budget is full, or the entries alone fill it.
    pub(crate) fn is_full(&self) -> bool {
        // Relaxed: see `set_full`; `live` is a counter.
        self.full.load(Ordering::Relaxed) || self.live.load(Ordering::Relaxed) >= self.keys_cap
    }

    /// The flusher says whether new keys fit in memory.
    pub(crate) fn set_full(&self, full: bool) {
        // Relaxed: a hint; a key inserted just after the flusher decided
        // is within the stated overhead.
        if self.full.load(Ordering::Relaxed) != full {
            self.full.store(full, Ordering::Relaxed);
        }
    }

    /// Resident keys.
    pub(crate) fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed).min(self.keys_max)
    }

    /// Every slot in use is below this.
    pub(crate) fn high_water(&self) -> usize {
        self.arena.high_water()
    }

    /// The entry in `slot` (which came from this index). It may have been
    /// freed, or reused for another key, since the slot was handed out.
    #[inline]
    pub(crate) fn entry(&self, slot: Slot) -> &Entry {
        self.arena.entry(slot)
    }

    /// The version new entries start at.
    pub(crate) fn floor(&self) -> Version {
        Version(self.floor.load(Ordering::Acquire))
    }

    /// Raises the version floor to at least `version`.
    pub(crate) fn raise_floor(&self, version: Version) {
        // Release: a writer that reads the floor after seeing the entry this
        // protects freed (or gone) sees the raise.
        self.floor.fetch_max(version.0, Ordering::Release);
    }

    /// Hints the CPU to start loading `slot`'s entry (both lines) into cache:
    /// the flusher walks its dirty list in an order unrelated to memory, and
    /// overlapping those misses is what keeps it ahead of the writers. A
    /// no-op off x86-64.
    #[inline]
    pub(crate) fn prefetch(&self, slot: Slot) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = (self.entry(slot) as *const Entry).cast::<i8>();
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

    /// `key`'s hash under this index's seed.
    #[inline]
    fn hash(&self, key: &[u8]) -> Hash {
        Hash(crate::hash::hash_key(self.seed, key))
    }

    /// Copies `key`'s value into `out` if the key is resident; its
    /// snapshot says which version (and whether it is a tombstone).
    #[inline]
    pub(crate) fn read(&self, key: &[u8], out: &mut impl Sink) -> Option<Snapshot> {
        let h = self.hash(key);
        let probe = KeyProbe::new(key);
        self.shards[h.shard()].find(h.tag(), |slot| {
            let snap = self.entry(slot).read_matching(&probe, out);
            if snap.is_some() {
                self.touch(slot);
            }
            snap
        })
    }

    /// `key`'s entry, if resident: a candidate that [`Entry::write`]
    /// confirms under the entry's lock (its ident re-checked). Lock-free.
    #[inline]
    pub(crate) fn find(&self, key: &[u8]) -> Option<Found<'_>> {
        let h = self.hash(key);
        let probe = KeyProbe::new(key);
        self.shards[h.shard()].find(h.tag(), |slot| {
            let entry = self.entry(slot);
            let ident = entry.candidate(&probe)?;
            Some(Found { slot, entry, ident })
        })
    }

    fn found<'a>(&'a self, slot: Slot, probe: &KeyProbe<'_>) -> Option<Found<'a>> {
        let entry = self.entry(slot);
        entry
            .ident_if(probe)
            .map(|ident| Found { slot, entry, ident })
    }

    /// `key`'s entry, made (holding nothing, at the version floor) if the
    /// key is not resident. [`Error::IndexFull`] if `keys_max` keys are.
    pub(crate) fn get_or_insert(&self, key: &[u8]) -> Result<Found<'_>, Error> {
        if let Some(found) = self.find(key) {
            return Ok(found);
        }
        let h = self.hash(key);
        let probe = KeyProbe::new(key);
        let mut shard = self.shards[h.shard()].lock();
        // Under the lock the table is stable: a racing insert of the same
        // key either finished (found here) or waits for us.
        if let Some(found) = shard.find(h.tag(), |slot| self.found(slot, &probe)) {
            return Ok(found);
        }
        self.insert_locked(&mut shard, h, key, self.floor(), None, true)
    }

    /// `key`'s entry if resident (the caller then writes `update` to it);
    /// else a new entry made holding `update` already applied, at one above
    /// the version floor, in the same change that makes it visible, so no
    /// reader ever sees the key with neither its old value (which may be in
    /// the store) nor its new one. [`Error::IndexFull`] or
    /// [`Error::MemoryFull`] if there is no room. With `guard` (a counter
    /// the store was found not to hold since that ticket), the new entry is
    /// made only if no entry of the key's bucket was freed since: else
    /// [`Upserted::Stale`] (a put may have been made durable and evicted
    /// meanwhile, and the counter must be loaded again).
    pub(crate) fn upsert(
        &self,
        key: &[u8],
        update: Update<'_>,
        guard: Option<LoadTicket>,
    ) -> Result<Upserted<'_>, Error> {
        if let Some(found) = self.find(key) {
            return Ok(Upserted::Found(found));
        }
        let h = self.hash(key);
        let probe = KeyProbe::new(key);
        let mut shard = self.shards[h.shard()].lock();
        if let Some(found) = shard.find(h.tag(), |slot| self.found(slot, &probe)) {
            return Ok(Upserted::Found(found));
        }
        // Relaxed: raised under the shard's lock, which we hold.
        if guard.is_some_and(|t| self.freed[Self::bucket(h)].load(Ordering::Relaxed) != t.count()) {
            return Ok(Upserted::Stale);
        }
        let version = Version(self.floor().0 + 1);
        let (value, counter) = match update {
            Update::Put(v) => (Some(v), 0),
            Update::Delete | Update::DeleteStored => (None, 0),
            Update::Add(delta) => (None, delta),
        };
        let counter_bytes = counter.to_le_bytes();
        let value = match update {
            Update::Add(_) => Some(&counter_bytes[..]),
            _ => value,
        };
        let found = self.insert_locked(&mut shard, h, key, version, value, true)?;
        let written = Written {
            version,
            counter,
            changed: true,
        };
        Ok(Upserted::Made(found, written))
    }

    /// The ticket a load takes before it looks the key up and reads the
    /// store.
    pub(crate) fn load_ticket(&self, key: &[u8]) -> LoadTicket {
        let h = self.hash(key);
        // Acquire: pairs with the Release raise in `free`, so a load that
        // sees the count of a free also sees the key gone.
        LoadTicket(self.freed[Self::bucket(h)].load(Ordering::Acquire))
    }

    fn bucket(h: Hash) -> usize {
        (h.0 >> 20) as usize % FREED_BUCKETS
    }

    /// Makes `key` resident holding `value` at `version`, read from the
    /// store after taking `ticket` and finding the key not resident:
    /// unless the key is resident by now (its entry is newer than the
    /// store: a new entry starts above every stored version), or an entry
    /// in the key's bucket was freed since the ticket (what was read may
    /// be older than what that entry held, which is in the store now).
    /// [`Error::IndexFull`] if `keys_max` keys are resident;
    /// [`Error::MemoryFull`] if `budgeted` and the flusher says memory is
    /// full (the flusher's own installs, for compaction, are not budgeted:
    /// they are evictable as soon as their rewrite is durable).
    pub(crate) fn install(
        &self,
        key: &[u8],
        ticket: LoadTicket,
        version: Version,
        value: &[u8],
        budgeted: bool,
    ) -> Result<Install<'_>, Error> {
        let h = self.hash(key);
        let probe = KeyProbe::new(key);
        let mut shard = self.shards[h.shard()].lock();
        if shard
            .find(h.tag(), |slot| self.found(slot, &probe))
            .is_some()
        {
            return Ok(Install::Present);
        }
        // Relaxed: raised under the shard's lock, which we hold.
        if self.freed[Self::bucket(h)].load(Ordering::Relaxed) != ticket.count()
            && !crate::primitives::bug(crate::primitives::Bug::InstallIgnoresFrees)
        {
            return Ok(Install::Stale);
        }
        self.insert_locked(&mut shard, h, key, version, Some(value), budgeted)
            .map(Install::Made)
    }

    /// Claims an entry for `key` (not resident; `shard` is its shard,
    /// locked) holding `value` at `version`, and links it.
    fn insert_locked(
        &self,
        shard: &mut table::Locked<'_>,
        h: Hash,
        key: &[u8],
        version: Version,
        value: Option<&[u8]>,
        budgeted: bool,
    ) -> Result<Found<'_>, Error> {
        if !shard.has_room() {
            return Err(Error::IndexFull { max: self.keys_max });
        }
        if budgeted && self.is_full() {
            return Err(Error::MemoryFull {
                budget_bytes: self.budget_bytes,
            });
        }
        // Relaxed: a counter; the table publishes.
        if self.live.fetch_add(1, Ordering::Relaxed) >= self.keys_max {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::IndexFull { max: self.keys_max });
        }
        let slot = match self.arena.alloc() {
            Ok(slot) => slot,
            Err(e) => {
                self.live.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let entry = self.entry(slot);
        let ident = entry.claim(key, version, value);
        shard.insert(slot, h.tag());
        Ok(Found { slot, entry, ident })
    }

    /// Frees `slot`'s entry if it still holds the version `version` of the
    /// key it held when the caller decided (the flusher, once that version
    /// is durable): raises the floor, frees the entry, unlinks it from the
    /// table and gives its slot back. True if freed.
    pub(crate) fn free(&self, slot: Slot, version: Version) -> bool {
        let entry = self.entry(slot);
        let mut buf = [0u8; KEY_INLINE_BYTES];
        let Some((ident, key)) = entry.key(&mut buf) else {
            return false;
        };
        let h = self.hash(key);
        // Before the free: see the module docs.
        self.raise_floor(version);
        // Under the shard's lock, so the word is removed with the entry's
        // free in between no insert of the key (which would find the entry
        // live, or gone).
        let mut shard = self.shards[h.shard()].lock();
        if !entry.free(ident, version) {
            return false;
        }
        let removed = shard.remove(slot, h.tag());
        // Release: see `load_ticket`. Under the lock, so `install` reads it
        // in order with the table.
        self.freed[Self::bucket(h)].fetch_add(1, Ordering::Release);
        drop(shard);
        if !removed {
            // A live entry is always in its shard's table; if that ever
            // failed, keep the slot out of use (a leak of one entry) rather
            // than hand out an entry a stale table word still names.
            debug_assert!(removed, "a live entry is in its shard's table");
            tracing::error!("index: freed slot {} had no table word; not reused", slot.0);
            return true;
        }
        // Relaxed: a hint (see `touch`); the next key in the slot starts
        // unmarked.
        self.arena.mark(slot).store(0, Ordering::Relaxed);
        self.arena.release(slot);
        self.live.fetch_sub(1, Ordering::Relaxed);
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
