//! The key hash the index and the file store's keydir share: 8 bytes at a
//! time, multiply-rotate, then a final avalanche (the constants are the
//! 64-bit golden ratio and splitmix64's finalizer multipliers). Seeded per
//! structure, so a key set that probes badly in one process does not do so
//! everywhere. Hand-written rather than a crate's: it is a dozen lines, and
//! both users hash short keys on their hot paths.

use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The 64-bit hash of `key` under `seed`.
#[inline]
pub(crate) fn hash_key(seed: u64, key: &[u8]) -> u64 {
    let mut h = seed ^ (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(w));
    }
    finish(h)
}

#[inline]
fn mix(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(K).rotate_left(29)
}

#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// A random seed (std's `RandomState` draws it from the OS once per
/// thread); a fixed one under loom, which replays schedules.
#[cfg(not(loom))]
pub(crate) fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        | 1
}

/// Under loom: fixed, as every replayed schedule must take the same path.
#[cfg(loom)]
pub(crate) fn random_seed() -> u64 {
    0x5EED
}

/// [`hash_key`] as a `HashMap`'s hasher, for maps keyed by byte strings
/// (`[u8]` hashes as its length, then its bytes in one `write`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHashBuilder(pub(crate) u64);

impl BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

/// The hasher [`KeyHashBuilder`] builds.
#[derive(Debug)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_key(self.0, bytes);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0, n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn maps_find_keys_by_slice() {
        let mut map: HashMap<Box<[u8]>, u32, _> = HashMap::with_hasher(KeyHashBuilder(7));
        for i in 0..1000u32 {
            map.insert(i.to_le_bytes().to_vec().into_boxed_slice(), i);
        }
        for i in 0..1000u32 {
            assert_eq!(map.get(&i.to_le_bytes()[..]), Some(&i));
        }
        assert_ne!(hash_key(1, b"a"), hash_key(2, b"a"), "seeded");
        assert_ne!(hash_key(1, b"a"), hash_key(1, b"a\0"), "length counts");
    }
}
