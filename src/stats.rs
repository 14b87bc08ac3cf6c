//! `Stats`: what the cache is doing, read without stopping it.

use std::time::Duration;

use crate::error::StoreError;

/// A snapshot of the cache's counters (see [`WriteBehind::stats`](crate::WriteBehind::stats)).
/// Counters are read one by one while the cache runs, so they are each exact
/// but not mutually atomic.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The store backend in use ("mem", "io_uring", "pwrite", "postgres", ...).
    pub backend: &'static str,
    /// Updates acknowledged (pushed into a ring) since the cache opened.
    pub acked_ops: u64,
    /// Updates the flusher has taken off the rings.
    pub drained_ops: u64,
    /// Drained updates that did not need a record of their own because a
    /// newer update of the same key superseded them.
    pub coalesced_ops: u64,
    /// Records made durable.
    pub persisted_records: u64,
    /// Bytes of records made durable.
    pub persisted_bytes: u64,
    /// Batches made durable.
    pub batches: u64,
    /// Batches submitted (or waiting to be retried) and not yet durable.
    pub batches_in_flight: u64,
    /// The most batches the flusher keeps in flight on this store:
    /// `Config::batches_in_flight_max`, or fewer if the store asks for fewer.
    pub batches_in_flight_max: usize,
    /// The adaptive batch target, in dirty keys.
    pub batch_target_ops: u64,
    /// Records waiting in each registered writer's ring.
    pub ring_depths: Vec<usize>,
    /// Times a writer found its ring full.
    pub ring_full_events: u64,
    /// Keys changed and not yet in a batch.
    pub dirty_keys: u64,
    /// Age of the oldest dirty key.
    pub oldest_dirty_age: Duration,
    /// Age of the oldest update that is drained but not yet durable.
    pub durable_lag: Duration,
    /// Keys in the index (live or deleted).
    pub keys: usize,
    /// Writers registered now.
    pub writers: usize,
    /// Failed batch attempts.
    pub store_errors: u64,
    /// Batches resubmitted after a failure.
    pub retries: u64,
    /// The store's most recent error, if any.
    pub last_store_error: Option<StoreError>,
    /// False while the store is failing (the last attempt failed), or once
    /// the flusher thread died.
    pub healthy: bool,
    /// False once the flusher thread has stopped: it died (see
    /// `flusher_death`) and every update is refused with
    /// [`Error::FlusherDied`](crate::Error::FlusherDied).
    pub flusher_alive: bool,
    /// Why the flusher thread died (its panic message), if it did.
    pub flusher_death: Option<String>,
    /// Torn tails cut off during recovery.
    pub torn_tails: u64,
    /// Records recovery located without reading them (the file store's
    /// hint files; see `FileOptions::read_hints`).
    pub records_unread: u64,
    /// Compactions finished.
    pub compactions: u64,
    /// Deleted keys whose memory was freed once their tombstones were
    /// durable.
    pub keys_reclaimed: u64,
    /// Clean entries evicted to keep within `Config::memory_bytes` (G10).
    pub evictions: u64,
    /// The resident keys' bytes as the memory budget counts them (see
    /// `Config::memory_bytes`).
    pub resident_bytes: u64,
    /// Reads ([`get`](crate::WriteBehind::get)) of keys not in memory.
    pub read_misses: u64,
    /// Keys read from the store: one per miss, except misses that waited
    /// for another thread's load of the same key; and counters loaded by
    /// an `add`.
    pub loads: u64,
    /// Bytes the newest record of every key takes (what a compacted store
    /// holds).
    pub live_bytes: u64,
    /// Bytes of records in the store (file store; 0 for others).
    pub stored_bytes: u64,
    /// Segment files (file store; 0 for others).
    pub segments: u64,
}
