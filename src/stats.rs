//! `Stats`: what the cache is doing, read without stopping it.

use std::time::Duration;

use crate::error::StoreError;
use crate::primitives::{self, Ordering};
use crate::shared::{Shared, LANE_FREE};

/// A snapshot of the cache's counters (see [`WriteBehind::stats`](crate::WriteBehind::stats)).
/// Counters are read one by one while the cache runs, so they are each exact
/// but not mutually atomic.
///
/// # Metrics
///
/// With cargo feature `metrics`, the flusher exports these through the
/// [`metrics`](https://docs.rs/metrics) facade to the recorder the service
/// installed before opening the cache (Prometheus, StatsD...). Every
/// metric carries the label `backend` (the store's, as in
/// [`Stats::backend`]); two caches over the same kind of store in one
/// process write the same series (read `stats()` of each to tell them
/// apart). Counters and gauges are copied from a snapshot at
/// most every 10 ms and when the flusher stops; the two histograms get one
/// sample per batch made durable:
///
/// | name | kind | what |
/// |---|---|---|
/// | `writebehind_updates_acknowledged_total` | counter | [`Stats::acked_ops`] |
/// | `writebehind_updates_coalesced_total` | counter | [`Stats::coalesced_ops`] |
/// | `writebehind_records_persisted_total` | counter | [`Stats::persisted_records`] |
/// | `writebehind_bytes_persisted_total` | counter | [`Stats::persisted_bytes`] |
/// | `writebehind_batches_durable_total` | counter | [`Stats::batches`] |
/// | `writebehind_store_errors_total` | counter | [`Stats::store_errors`] |
/// | `writebehind_batch_retries_total` | counter | [`Stats::retries`] |
/// | `writebehind_ring_full_total` | counter | [`Stats::ring_full_events`] |
/// | `writebehind_evictions_total` | counter | [`Stats::evictions`] |
/// | `writebehind_read_misses_total` | counter | [`Stats::read_misses`] |
/// | `writebehind_keys_reclaimed_total` | counter | [`Stats::keys_reclaimed`] |
/// | `writebehind_compactions_total` | counter | [`Stats::compactions`] |
/// | `writebehind_dirty_keys` | gauge | [`Stats::dirty_keys`] |
/// | `writebehind_keys_resident` | gauge | [`Stats::keys`] |
/// | `writebehind_resident_bytes` | gauge | [`Stats::resident_bytes`] |
/// | `writebehind_batches_in_flight` | gauge | [`Stats::batches_in_flight`] |
/// | `writebehind_oldest_not_durable_seconds` | gauge | [`Stats::durable_lag`] |
/// | `writebehind_stored_bytes` | gauge | [`Stats::stored_bytes`] |
/// | `writebehind_healthy` | gauge | 1 if [`Stats::healthy`], else 0 |
/// | `writebehind_batch_seconds` | histogram | a batch's first submission to durable (retries included) |
/// | `writebehind_durable_lag_seconds` | histogram | when a batch became durable, the age of its oldest update (from when the flusher took it off its ring) |
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

impl Stats {
    /// Reads the counters of the cache `shared` belongs to.
    pub(crate) fn of(shared: &Shared) -> Self {
        let c = shared.counters.snapshot();
        let mut ring_depths = Vec::new();
        let mut acked_ops = 0;
        let mut ring_full_events = 0;
        for lane in shared.lanes.iter() {
            acked_ops += lane.ring.pushed();
            ring_full_events += lane.full_events.load(Ordering::Relaxed);
            if lane.state.load(Ordering::Relaxed) != LANE_FREE {
                ring_depths.push(lane.ring.len());
            }
        }
        let drained_ops = c.drained;
        // Acquire: pairs with the Release store in `announce`.
        let flusher_alive = !shared.flusher_stopped.load(Ordering::Acquire);
        Self {
            backend: shared.backend,
            acked_ops,
            drained_ops,
            coalesced_ops: drained_ops.saturating_sub(c.encoded),
            persisted_records: c.persisted_records,
            persisted_bytes: c.persisted_bytes,
            batches: c.batches,
            batches_in_flight: c.batches_in_flight,
            batches_in_flight_max: shared.in_flight_max,
            batch_target_ops: c.target_ops,
            writers: ring_depths.len(),
            ring_depths,
            ring_full_events,
            dirty_keys: c.dirty_keys,
            oldest_dirty_age: Duration::from_nanos(c.oldest_dirty_ns),
            durable_lag: Duration::from_nanos(c.durable_lag_ns),
            keys: shared.index.len(),
            store_errors: c.store_errors,
            retries: c.retries,
            last_store_error: primitives::lock(&shared.last_error).clone(),
            healthy: flusher_alive && c.failures_in_a_row == 0,
            flusher_alive,
            flusher_death: shared.death(),
            torn_tails: shared.torn_tails,
            records_unread: shared.records_unread,
            compactions: c.compactions,
            keys_reclaimed: c.keys_reclaimed,
            evictions: c.evictions,
            resident_bytes: c.resident_bytes,
            read_misses: shared.loads.misses.load(Ordering::Relaxed),
            loads: shared.loads.loads.load(Ordering::Relaxed),
            live_bytes: c.live_bytes,
            stored_bytes: c.stored_bytes,
            segments: c.segments,
        }
    }
}
