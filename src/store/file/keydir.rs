//! The keydir: where each key's newest put is on disk, so that a read of a
//! key not in memory costs one lookup here and one `pread` (the idea of
//! Bitcask's keydir; Sheehy and Smith, "Bitcask: A Log-Structured Hash
//! Table for Fast Key/Value Data", Basho, 2010).
//!
//! Built at open (from the scan, or a sealed segment's hint file), then
//! kept by the store's thread as frames are
//! confirmed written (never before: a reader must not find a place whose
//! bytes are not there yet). Tombstones take no place: a deleted key has
//! none, and the cache's version floor keeps its versions rising. Readers
//! on any thread look places up under a shard's read lock.
//!
//! Cost: one map entry per stored key, about 100 bytes with a 16-byte key
//! (the key's heap copy, the 24-byte place, the map's slot). That is
//! store-side memory outside the cache's budget, and what a data set larger
//! than memory pays per key; a keydir of hashes only would cut it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::format::SegmentId;
use crate::hash::{hash_key, random_seed, KeyHashBuilder};
use crate::record::{self, RecordRef};
use crate::version::{Kind, Version};

/// Where a record is: its segment, its offset there and its encoded length,
/// with its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    pub(super) segment: SegmentId,
    pub(super) offset: u32,
    pub(super) len: u32,
    pub(super) version: Version,
}

impl Place {
    /// The place of record `r`, found at `offset` of `segment`.
    fn of(segment: SegmentId, offset: u64, r: &RecordRef<'_>) -> Self {
        // Segments are at most 4 GiB (`FileOptions::validate`).
        debug_assert!(offset < 1 << 32, "offset {offset} past a segment");
        Self {
            segment,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            len: record::encoded_len(r.key.len(), r.value.len()) as u32,
            version: r.version,
        }
    }
}

/// Locks over the map, so readers rarely meet the store's thread.
const SHARDS: usize = 64;

type Map = HashMap<Box<[u8]>, Place, KeyHashBuilder>;

/// Key -> the place of its newest put.
#[derive(Debug)]
pub(super) struct KeyDir {
    shards: Box<[RwLock<Map>]>,
    seed: u64,
    /// Sum of the places' lengths: the bytes a compacted store would hold.
    live_bytes: AtomicU64,
}

impl KeyDir {
    pub(super) fn new() -> Self {
        let map_seed = random_seed();
        Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(KeyHashBuilder(map_seed))))
                .collect(),
            seed: random_seed(),
            live_bytes: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> usize {
        (hash_key(self.seed, key) % SHARDS as u64) as usize
    }

    fn read(&self, key: &[u8]) -> RwLockReadGuard<'_, Map> {
        self.shards[self.shard(key)]
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, key: &[u8]) -> RwLockWriteGuard<'_, Map> {
        self.shards[self.shard(key)]
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The place of `key`'s newest put, if it has one.
    pub(super) fn get(&self, key: &[u8]) -> Option<Place> {
        self.read(key).get(key).copied()
    }

    /// Record `r`, at `offset` of `segment`, was written: a put becomes the
    /// key's place unless the place held is of a newer version (a copy of
    /// the same version, written by a compaction, moves it); a tombstone at
    /// least as new as the place removes it.
    pub(super) fn apply(&self, segment: SegmentId, offset: u64, r: &RecordRef<'_>) {
        self.apply_place(r.kind, r.key, Place::of(segment, offset, r));
    }

    /// [`apply`](Self::apply) for a record known by its place only (a
    /// hint file's entry).
    pub(super) fn apply_place(&self, kind: Kind, key: &[u8], place: Place) {
        match kind {
            Kind::Put => self.put(key, place),
            Kind::Delete => self.delete(key, place.version),
        }
    }

    fn put(&self, key: &[u8], place: Place) {
        let mut map = self.write(key);
        match map.get_mut(key) {
            Some(old) if old.version > place.version => {}
            Some(old) => {
                let was = std::mem::replace(old, place);
                drop(map);
                self.live_bytes
                    .fetch_add(u64::from(place.len), Ordering::Relaxed);
                self.live_bytes
                    .fetch_sub(u64::from(was.len), Ordering::Relaxed);
            }
            None => {
                map.insert(key.into(), place);
                drop(map);
                self.live_bytes
                    .fetch_add(u64::from(place.len), Ordering::Relaxed);
            }
        }
    }

    fn delete(&self, key: &[u8], version: Version) {
        let mut map = self.write(key);
        if map.get(key).is_some_and(|old| old.version <= version) {
            if let Some(was) = map.remove(key) {
                drop(map);
                self.live_bytes
                    .fetch_sub(u64::from(was.len), Ordering::Relaxed);
            }
        }
    }

    /// Bytes of the newest puts: what a compacted store would hold.
    pub(super) fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::Relaxed)
    }
}

/// The keydir of a scan. A record's version decides, not its place in the
/// log, so each tombstone is remembered until the scan ends: a put it
/// deleted must not come back if it appears later in the log (the format
/// does not promise it never does).
#[derive(Debug, Default)]
pub(super) struct Rebuild {
    tombstones: HashMap<Box<[u8]>, Version>,
}

impl Rebuild {
    /// Takes one record of the scan into `dir`.
    pub(super) fn take(
        &mut self,
        dir: &KeyDir,
        segment: SegmentId,
        offset: u64,
        r: &RecordRef<'_>,
    ) {
        self.take_place(dir, r.kind, r.key, Place::of(segment, offset, r));
    }

    /// Takes one record, known by its place (from a hint file or the
    /// scan), into `dir`.
    pub(super) fn take_place(&mut self, dir: &KeyDir, kind: Kind, key: &[u8], place: Place) {
        match kind {
            Kind::Put
                if self
                    .tombstones
                    .get(key)
                    .is_some_and(|&t| t >= place.version) => {}
            Kind::Put => dir.apply_place(kind, key, place),
            Kind::Delete => {
                let seen = self.tombstones.entry(key.into()).or_insert(place.version);
                *seen = (*seen).max(place.version);
                dir.apply_place(kind, key, place);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(kind: Kind, v: u64, key: &'a [u8], value: &'a [u8]) -> RecordRef<'a> {
        RecordRef {
            kind,
            version: Version(v),
            key,
            value,
        }
    }

    #[test]
    fn newest_version_wins_whatever_the_order() {
        let dir = KeyDir::new();
        let mut rebuild = Rebuild::default();
        let s = SegmentId(1);
        rebuild.take(&dir, s, 100, &rec(Kind::Put, 2, b"a", b"new"));
        rebuild.take(&dir, s, 200, &rec(Kind::Put, 1, b"a", b"old"));
        assert_eq!(
            dir.get(b"a").map(|p| (p.offset, p.version)),
            Some((100, Version(2)))
        );
        rebuild.take(&dir, s, 300, &rec(Kind::Delete, 3, b"a", b""));
        rebuild.take(&dir, s, 400, &rec(Kind::Put, 2, b"a", b"new"));
        assert_eq!(dir.get(b"a"), None, "deleted, whatever comes later");
        rebuild.take(&dir, s, 500, &rec(Kind::Put, 4, b"a", b"back"));
        assert_eq!(dir.get(b"a").map(|p| p.offset), Some(500));
        assert_eq!(dir.live_bytes(), record::encoded_len(1, 4) as u64);
    }

    #[test]
    fn a_copy_of_the_same_version_moves_the_place() {
        let dir = KeyDir::new();
        dir.apply(SegmentId(1), 64, &rec(Kind::Put, 5, b"k", b"v"));
        dir.apply(SegmentId(2), 64, &rec(Kind::Put, 5, b"k", b"v"));
        assert_eq!(dir.get(b"k").map(|p| p.segment), Some(SegmentId(2)));
        dir.apply(SegmentId(3), 64, &rec(Kind::Delete, 4, b"k", b""));
        assert!(
            dir.get(b"k").is_some(),
            "an older tombstone changes nothing"
        );
    }
}
