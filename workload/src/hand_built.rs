//! The contender that matters (DESIGN.md section 6): the write-behind a
//! competent Rust user would build in an afternoon from well-kept crates.
//!
//! - the latest value and its version in a `DashMap` with FxHash, so any
//!   thread reads its own writes;
//! - one `rtrb` SPSC ring per writer, carrying the written keys to a
//!   flusher thread;
//! - the flusher drains every ring, coalesces the keys in an `FxHashSet`,
//!   and every `BATCH_KEYS` keys (or `BATCH_AGE`, whichever comes first)
//!   reads the current values back from the map into one batch buffer and
//!   "persists" it (drops it: the store is not what is compared).
//!
//! A full ring makes the writer yield until the flusher has made room
//! (`Block`-style backpressure). `sync` waits until everything pushed
//! before it has been through a batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rustc_hash::{FxBuildHasher, FxHashSet};

/// Keys per batch.
const BATCH_KEYS: usize = 4096;
/// Oldest a batch gets before it is cut anyway.
const BATCH_AGE: Duration = Duration::from_millis(1);
/// The flusher's sleep when every ring was empty.
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// A value with the version its last write gave it.
#[derive(Debug)]
struct Versioned {
    version: u64,
    value: Vec<u8>,
}

type Map = DashMap<Vec<u8>, Versioned, FxBuildHasher>;

/// What the writers and the flusher share.
#[derive(Debug, Default)]
struct Shared {
    map: Map,
    /// Consumers of rings whose writers were made since the flusher's last
    /// pass.
    new_rings: Mutex<Vec<rtrb::Consumer<Vec<u8>>>>,
    /// Raised by `sync`; the flusher answers in `synced`.
    sync_asked: AtomicU64,
    synced: AtomicU64,
    stop: AtomicBool,
}

/// The hand-built dashmap + rtrb write-behind.
#[derive(Debug)]
pub struct HandBuiltWb {
    shared: Arc<Shared>,
    ring_slots: usize,
    flusher: Option<JoinHandle<u64>>,
}

/// One writer thread's handle: its ring's producer.
#[derive(Debug)]
pub struct HandBuiltWriter {
    shared: Arc<Shared>,
    ring: rtrb::Producer<Vec<u8>>,
}

impl HandBuiltWb {
    /// A write-behind whose writers get rings of `ring_slots` keys.
    pub fn new(ring_slots: usize) -> Self {
        let shared = Arc::new(Shared::default());
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || flush(&shared))
        };
        Self {
            shared,
            ring_slots,
            flusher: Some(flusher),
        }
    }

    /// A writer with a ring of its own.
    pub fn writer(&self) -> HandBuiltWriter {
        let (ring, consumer) = rtrb::RingBuffer::new(self.ring_slots);
        lock(&self.shared.new_rings).push(consumer);
        HandBuiltWriter {
            shared: Arc::clone(&self.shared),
            ring,
        }
    }

    /// The latest value of `key`, copied into `out` (cleared first); its
    /// version, or `None` when the key has none.
    pub fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Option<u64> {
        let slot = self.shared.map.get(key)?;
        out.clear();
        out.extend_from_slice(&slot.value);
        Some(slot.version)
    }

    /// Waits until every key pushed before the call has been through a
    /// batch.
    pub fn sync(&self) {
        let asked = self.shared.sync_asked.fetch_add(1, Ordering::AcqRel) + 1;
        while self.shared.synced.load(Ordering::Acquire) < asked {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}

impl Drop for HandBuiltWb {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(f) = self.flusher.take() {
            let _ = f.join();
        }
    }
}

impl HandBuiltWriter {
    /// Writes `value` under `key`; returns its version.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> u64 {
        let version = match self.shared.map.get_mut(key) {
            Some(mut slot) => {
                slot.version += 1;
                slot.value.clear();
                slot.value.extend_from_slice(value);
                slot.version
            }
            None => self.insert(key, value),
        };
        let mut item = key.to_vec();
        while let Err(rtrb::PushError::Full(back)) = self.ring.push(item) {
            item = back;
            std::thread::yield_now();
        }
        version
    }

    /// The first write of `key` (or one racing another writer's first).
    fn insert(&self, key: &[u8], value: &[u8]) -> u64 {
        let mut slot = self.shared.map.entry(key.to_vec()).or_insert(Versioned {
            version: 0,
            value: Vec::new(),
        });
        slot.version += 1;
        slot.value.clear();
        slot.value.extend_from_slice(value);
        slot.version
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The flusher thread: drains, coalesces, cuts batches until stopped with
/// every ring empty. Returns how many keys it persisted.
fn flush(shared: &Shared) -> u64 {
    let mut rings: Vec<rtrb::Consumer<Vec<u8>>> = Vec::new();
    let mut dirty: FxHashSet<Vec<u8>> = FxHashSet::default();
    let mut batch: Vec<u8> = Vec::new();
    let mut persisted = 0u64;
    let mut oldest = Instant::now();
    loop {
        // Read before taking new rings and draining: whatever was pushed
        // (and every ring made) before this `sync` was asked is visible
        // now, and goes into this pass's batches.
        let asked = shared.sync_asked.load(Ordering::Acquire);
        rings.append(&mut lock(&shared.new_rings));
        let stopping = shared.stop.load(Ordering::Acquire);
        if dirty.is_empty() {
            oldest = Instant::now();
        }
        let drained = drain(&mut rings, &mut dirty, &mut |d| {
            persisted += persist(&shared.map, d, &mut batch);
        });
        let idle = drained == 0;
        if dirty.len() >= BATCH_KEYS || oldest.elapsed() >= BATCH_AGE || idle {
            persisted += persist(&shared.map, &mut dirty, &mut batch);
        }
        if idle {
            shared.synced.fetch_max(asked, Ordering::AcqRel);
            rings.retain(|r| !r.is_abandoned());
            if stopping {
                return persisted;
            }
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}

/// Moves every key queued in `rings` into `dirty`, cutting a batch with
/// `cut` whenever it reaches `BATCH_KEYS`. Returns how many it moved.
fn drain(
    rings: &mut [rtrb::Consumer<Vec<u8>>],
    dirty: &mut FxHashSet<Vec<u8>>,
    cut: &mut dyn FnMut(&mut FxHashSet<Vec<u8>>),
) -> usize {
    let mut moved = 0;
    for ring in rings {
        while let Ok(key) = ring.pop() {
            dirty.insert(key);
            moved += 1;
            if dirty.len() >= BATCH_KEYS {
                cut(dirty);
            }
        }
    }
    moved
}

/// One batch: the current value of every dirty key, copied into `batch`
/// as a store would encode it. Returns how many keys it held.
fn persist(map: &Map, dirty: &mut FxHashSet<Vec<u8>>, batch: &mut Vec<u8>) -> u64 {
    let mut n = 0;
    batch.clear();
    for key in dirty.drain() {
        if let Some(slot) = map.get(&key) {
            batch.extend_from_slice(&slot.version.to_le_bytes());
            batch.extend_from_slice(&key);
            batch.extend_from_slice(&slot.value);
            n += 1;
        }
    }
    std::hint::black_box(&batch);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_writes_and_syncs_through_a_full_ring() {
        let wb = HandBuiltWb::new(8);
        let mut w = wb.writer();
        for i in 0..10_000u32 {
            w.put(&(i % 100).to_le_bytes(), &i.to_le_bytes());
        }
        wb.sync();
        let mut out = Vec::new();
        assert_eq!(wb.get_into(&7u32.to_le_bytes(), &mut out), Some(100));
        assert_eq!(out, 9_907u32.to_le_bytes());
        assert_eq!(wb.get_into(b"none", &mut out), None);
    }
}
