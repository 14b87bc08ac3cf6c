//! The flusher: the only consumer of the writer rings and the only user of
//! the store.
//!
//! # One pass of the loop
//!
//! 1. Collect store completions; advance the durable watermark over the
//!    contiguous prefix of completed batches (submission order, G4), retry
//!    failed ones later (G8).
//! 2. Drain every ring, at most `drain_per_pass_max` records each and never
//!    more than the dirty list has room for (G6). A record names an entry and
//!    a version; the entry goes on the dirty list unless it is already there
//!    or a batch already holds that version: that is coalescing.
//! 3. Serve `sync()` requests (see [`PendingSync`]).
//! 4. Cut batches while the store has room and a cut is due: the dirty list
//!    reached the adaptive target, its oldest entry reached `flush_interval`,
//!    or a `sync()`/`close()` needs it. A batch takes entries from the front
//!    of the dirty list and encodes each one's *current* value and version,
//!    read from the index: the newest version wins and nothing older can be
//!    written after it (G2).
//! 5. If nothing happened, wait: on the store if batches are in flight,
//!    otherwise park until the next deadline or a wake-up.
//!
//! # Adaptive batch target
//!
//! The dirty-key count that triggers a cut starts at `TARGET_MIN` (1,024, or
//! `batch_ops_max` if smaller) and doubles whenever
//! a cut was due but the in-flight window was full (the store is the
//! bottleneck, so bigger batches amortize its per-batch cost), and halves when
//! the store goes idle with little dirty (smaller batches cost nothing then
//! and make data durable sooner). It stays in `[TARGET_MIN, batch_ops_max]`.

mod barriers;
mod compaction;
mod cut;
mod drain;
mod evict;
mod guard;
mod keys;
mod metrics;
mod shutdown;
mod sync_requests;
mod window;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Durability;
use crate::counters::Counts;
use crate::error::Error;
use crate::index::Slot;
use crate::primitives::{self, Arc, Ordering};
use crate::ring::{Consumer, Ring};
use crate::shared::{Change, Shared, CLOSE_REQUESTED, CLOSE_SEALED, LANE_FREE, LANE_RETIRED};
use crate::store::{Batch, BatchSeq, Completion, Store};
use barriers::Barriers;
use compaction::CompactionRun;
pub(crate) use guard::StopGuard;
use keys::KeyLedger;
use metrics::Exporter;
use window::{BatchState, Batched, Window};

/// Smallest adaptive target, in dirty keys.
const TARGET_MIN: usize = 1024;
/// How far ahead in the dirty list a cut prefetches entries.
const PREFETCH_AHEAD: usize = 8;
/// Longest the flusher waits on the store in one go while batches are in
/// flight (it must come back to drain the rings).
const STORE_WAIT_MAX: Duration = Duration::from_micros(200);

/// Set in a `flush_state` word while the key is on the dirty list.
const DIRTY_BIT: u64 = 1 << 63;
/// Set in a `flush_state` word while the key's batched version is durable
/// and nothing newer was drained: the entry may be evicted (G10).
const CLEAN_BIT: u64 = 1 << 62;
/// The version part of a `flush_state` word.
const VERSION_MASK: u64 = !(DIRTY_BIT | CLEAN_BIT);

/// A key waiting to be batched.
#[derive(Debug, Clone, Copy)]
struct Dirty {
    slot: Slot,
    /// When the flusher first saw it dirty (ns since `Flusher::base`).
    since_ns: u64,
}

/// A `sync()` request being served. Phase 1: drain every ring up to the
/// positions its producers had published when the request was seen
/// (`targets`); everything acknowledged before `sync()` was called is there,
/// because `sync()` bumped `sync_requested` after it, and we acquired it.
/// Phase 2: batch every entry that was on the dirty list at that moment
/// (`dirty_mark`). Then the request waits for the watermark to reach the last
/// batch cut so far.
#[derive(Debug)]
struct PendingSync {
    gen: u64,
    targets: Vec<u64>,
    dirty_mark: Option<u64>,
}

/// The flusher's state; lives on its thread.
#[derive(Debug)]
pub(crate) struct Flusher<S> {
    shared: Arc<Shared>,
    store: S,
    consumers: Vec<Consumer<Change>>,
    /// Per-key bookkeeping, indexed by slot.
    keys: KeyLedger,
    dirty: VecDeque<Dirty>,
    /// Entries ever pushed on / taken off the dirty list.
    dirty_enqueued: u64,
    dirty_dequeued: u64,
    /// Batches cut and not yet durable, at most `Config::batches_in_flight_max`
    /// or fewer if the store asks for fewer ([`StoreInfo::in_flight_max`](crate::store::StoreInfo)).
    window: Window,
    /// A compaction batch found the window full last time: it goes first next.
    compaction_waiting: bool,
    free_batches: Vec<Batch>,
    free_lists: Vec<Vec<Batched>>,
    completions: Vec<Completion>,
    target_ops: usize,
    /// A cut was due but the in-flight bound stopped it.
    cut_blocked: bool,
    sync_seen: u64,
    collecting: Option<PendingSync>,
    /// `sync()` requests waiting for the watermark.
    barriers: Barriers,
    /// The compaction in progress.
    compaction: Option<CompactionRun>,
    /// `compact()` generations seen.
    compact_seen: u64,
    /// When the automatic trigger was last evaluated.
    compact_checked_ns: u64,
    /// Eviction's CLOCK hand: the next slot it looks at.
    hand: usize,
    sealed: bool,
    close_deadline_ns: u64,
    /// What the flusher counts, published for `stats()`.
    counts: Counts,
    /// The same, and batch latencies, for the `metrics` facade.
    exporter: Exporter,
    base: Instant,
}

impl<S: Store> Flusher<S> {
    pub(crate) fn new(shared: Arc<Shared>, store: S) -> Self {
        let config = &shared.config;
        let consumers = shared
            .lanes
            .iter()
            .map(|s| Ring::consumer(&s.ring))
            .collect();
        let target_ops = TARGET_MIN.min(config.batch_ops_max);
        let keys = KeyLedger::new(&shared.index);
        let backend = shared.backend;
        let mut flusher = Self {
            keys,
            dirty: VecDeque::with_capacity(config.dirty_keys_max.min(1 << 20)),
            window: Window::new(shared.in_flight_max),
            compaction_waiting: false,
            consumers,
            shared,
            store,
            dirty_enqueued: 0,
            dirty_dequeued: 0,
            free_batches: Vec::new(),
            free_lists: Vec::new(),
            completions: Vec::new(),
            compaction: None,
            compact_seen: 0,
            compact_checked_ns: 0,
            hand: 0,
            target_ops,
            cut_blocked: false,
            sync_seen: 0,
            collecting: None,
            barriers: Barriers::default(),
            sealed: false,
            close_deadline_ns: 0,
            counts: Counts::default(),
            exporter: Exporter::new(backend),
            base: Instant::now(),
        };
        // `stats()` is whole from the moment the cache opens (segments and
        // stored bytes included), not from the flusher's first pass.
        flusher.publish(0);
        flusher
    }

    /// Nanoseconds since the flusher started. Under loom time stands still:
    /// a model must not depend on the clock (ages never expire, so batches
    /// are cut by sync, close or size only), and loom needs every execution
    /// of a schedule to take the same path.
    fn now_ns(&self) -> u64 {
        #[cfg(loom)]
        {
            let _ = self.base;
            0
        }
        #[cfg(not(loom))]
        {
            nanos(self.base.elapsed())
        }
    }

    /// Runs until `close()` has been served. `Err` if the store kept failing
    /// past `close_timeout`: acknowledged writes were not all made durable.
    pub(crate) fn run(mut self) -> Result<(), Error> {
        // Every event of the flusher's thread (faults, compactions, batches)
        // carries the store it writes to.
        let _span = tracing::info_span!("writebehind_flusher", backend = self.shared.backend).entered();
        if let Some(core) = self.shared.config.flusher_core {
            if let Err(e) = crate::writer::pin_current_thread(core) {
                tracing::warn!("flusher: {e}");
            }
        }
        loop {
            let now = self.now_ns();
            let mut progress = self.collect_completions(Duration::ZERO, now);
            if let Some(failures) = self.failed_past_limit() {
                return Err(self.abandon(failures, now));
            }
            progress |= self.drain_rings(now) > 0;
            progress |= self.take_loaded();
            progress |= self.evict();
            self.start_sync();
            self.advance_sync();
            progress |= self.retry_failed(now);
            // Regular batches and a compaction's batches take turns at the
            // window's room: while the store is the bottleneck a cut is due
            // at every completion and would otherwise take all of it. A cut
            // forced by sync() or close() keeps going first.
            if self.compaction_waiting && !self.forced() {
                progress |= self.compact_step(now);
                progress |= self.cut_batches(now);
            } else {
                progress |= self.cut_batches(now);
                progress |= self.compact_step(now);
            }
            self.advance_sync();
            self.publish(now);
            if let Some(result) = self.check_close(now) {
                return result;
            }
            if !progress {
                self.idle(now);
            }
        }
    }

    /// Moves completions in; returns true if any arrived.
    fn collect_completions(&mut self, timeout: Duration, now: u64) -> bool {
        let mut completions = std::mem::take(&mut self.completions);
        self.store.poll(&mut completions, timeout);
        let any = !completions.is_empty();
        for c in completions.drain(..) {
            self.complete(c, now);
        }
        self.completions = completions;
        // The watermark moves over the contiguous prefix of durable batches
        // only: never past a batch still in flight or waiting to retry.
        while let Some(f) = self.window.take_durable() {
            // A clock read of its own: `now` may predate an idle wait.
            let done = self.now_ns();
            let batch_ns = done.saturating_sub(f.opened_ns);
            self.exporter
                .batch_durable(batch_ns, done.saturating_sub(f.oldest_ns));
            tracing::debug!(
                seq = f.seq,
                records = f.entries.len(),
                bytes = f.bytes,
                micros = batch_ns / 1_000,
                "batch durable"
            );
            self.counts.persisted_records += f.entries.len() as u64;
            self.counts.persisted_bytes += f.bytes as u64;
            self.settle_durable(&f.entries);
            let mut list = f.entries;
            list.clear();
            self.free_lists.push(list);
        }
        if any {
            // Adapt the batch target (see the module docs).
            if self.cut_blocked {
                self.target_ops = (self.target_ops * 2).min(self.shared.config.batch_ops_max);
                self.cut_blocked = false;
            } else if self.window.is_empty() && self.dirty.len() < self.target_ops / 2 {
                self.target_ops =
                    (self.target_ops / 2).max(TARGET_MIN.min(self.shared.config.batch_ops_max));
            }
        }
        any
    }

    fn complete(&mut self, c: Completion, now: u64) {
        let seq = c.batch.seq.0;
        match c.result {
            Ok(()) => {
                let failures = self.window.succeeded(seq);
                self.free_batches.push(c.batch);
                if failures > 0 {
                    tracing::info!(seq, failures, "store recovered");
                }
            }
            Err(e) => {
                // G8: the records stay un-durable (the watermark cannot pass
                // this batch) and are rewritten from memory after a backoff.
                let config = &self.shared.config;
                let (min, max) = (config.retry_backoff_min, config.retry_backoff_max);
                let backoff = self.window.failed(seq, c.batch, now, min, max);
                self.counts.store_errors += 1;
                tracing::warn!(
                    seq,
                    failures_in_a_row = self.window.failures_in_a_row(),
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    error = %e,
                    "store failed a batch; retrying it from memory"
                );
                *primitives::lock(&self.shared.last_error) = Some(e);
            }
        }
    }

    /// A batch the watermark just passed holds `entries`: puts still at
    /// their batched version are clean now (evictable, G10); the entries
    /// of deleted keys are freed, unless the key changed since (G12): not
    /// dirty again, and still at that version (which `Index::free` checks
    /// once more under the entry's lock).
    fn settle_durable(&mut self, entries: &[Batched]) {
        // Without a reader nothing is evicted: clean bits would be a
        // random access per record for nothing.
        let evictable = self.shared.reader.is_some();
        for b in entries {
            let Some(version) = b.tombstone() else {
                if evictable && self.keys.mark_durable(b.slot, b.version()) {
                    self.shared.index.mark_used(b.slot);
                }
                continue;
            };
            if !self.keys.is_dirty(b.slot)
                && self.keys.batched_version(b.slot) == version.0
                && self.shared.index.free(b.slot, version)
            {
                self.keys.forget(b.slot);
                self.counts.keys_reclaimed += 1;
            }
        }
    }

    /// An empty batch and key list, from the free lists when possible.
    fn fresh_batch(&mut self) -> (Batch, Vec<Batched>) {
        let mut batch = self.free_batches.pop().unwrap_or_default();
        batch.bytes.clear();
        batch.records = 0;
        batch.sync = false;
        let mut entries = self.free_lists.pop().unwrap_or_default();
        entries.clear();
        (batch, entries)
    }

    /// Numbers `batch`, records it in flight with the keys it holds, and
    /// submits it; returns its seq.
    fn submit_new(&mut self, mut batch: Batch, entries: Vec<Batched>, oldest_ns: u64) -> u64 {
        let now = self.now_ns();
        let seq = self.window.open(entries, batch.bytes.len(), oldest_ns, now);
        batch.seq = BatchSeq(seq);
        // Under `Durability::Deferred` the store may hold a batch until an
        // fdatasync covers it: ask for one before every batch in flight
        // would be waiting for it.
        batch.sync |= self.shared.config.durability == Durability::Batch || !self.window.has_room();
        self.store.submit(batch);
        seq
    }

    /// Submits an empty batch that only asks the store to make everything
    /// before it durable; returns its seq.
    fn submit_sync_point(&mut self) -> u64 {
        let mut batch = self.free_batches.pop().unwrap_or_default();
        batch.bytes.clear();
        batch.records = 0;
        batch.sync = true;
        let entries = self.free_lists.pop().unwrap_or_default();
        let now = self.now_ns();
        self.submit_new(batch, entries, now)
    }

    /// Sets the gauges and publishes the counts for `stats()`.
    fn publish(&mut self, now: u64) {
        let oldest_dirty = self.dirty.front().map(|d| d.since_ns);
        let oldest = match (oldest_dirty, self.window.oldest_ns()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let age = |since: Option<u64>| since.map_or(0, |t| now.saturating_sub(t));
        let stored = self.store.compaction().map(|c| c.stored());
        let resident_bytes = self.resident_bytes();
        let c = &mut self.counts;
        c.batches = self.window.durable_seq();
        c.batches_in_flight = self.window.len() as u64;
        c.dirty_keys = self.dirty.len() as u64;
        c.oldest_dirty_ns = age(oldest_dirty);
        c.durable_lag_ns = age(oldest);
        c.target_ops = self.target_ops as u64;
        c.live_bytes = stored
            .and_then(|s| s.live_bytes)
            .unwrap_or(self.keys.live_bytes);
        c.resident_bytes = resident_bytes;
        c.failures_in_a_row = u64::from(self.window.failures_in_a_row());
        if let Some(stored) = stored {
            c.segments = stored.units as u64;
            c.stored_bytes = stored.bytes;
        }
        self.shared.counters.publish(c);
        self.exporter.export(&self.shared, now, false);
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX` (584 years). `Config`
/// bounds the intervals the flusher adds to its clock to 1 hour, except
/// `close_timeout`, which may be `Duration::MAX`; every sum of a time and a
/// duration saturates too.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
