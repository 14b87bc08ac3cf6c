//! What the flusher exports through the [`metrics`] facade (cargo feature
//! `metrics`), to whatever recorder the service installed before opening
//! the cache (Prometheus, StatsD...). Without the feature every call here
//! is empty.
//!
//! The list of metrics is in [`Stats`]'s docs, beside the fields they copy.
//!
//! [`metrics`]: https://docs.rs/metrics

use crate::shared::Shared;
#[cfg_attr(not(feature = "metrics"), allow(unused_imports))]
use crate::stats::Stats;

/// Least time between two exports of the counters and gauges: 10 ms.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
const EXPORT_EVERY_NS: u64 = 10_000_000;

/// The flusher's metric handles.
#[derive(Debug)]
pub(super) struct Exporter {
    #[cfg(feature = "metrics")]
    handles: Handles,
    #[cfg(feature = "metrics")]
    exported_ns: std::cell::Cell<Option<u64>>,
}

/// How a metric's value is read from a [`Stats`] snapshot.
#[cfg(feature = "metrics")]
type Read<T> = fn(&Stats) -> T;

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    counters: Vec<(metrics::Counter, Read<u64>)>,
    gauges: Vec<(metrics::Gauge, Read<f64>)>,
    batch_seconds: metrics::Histogram,
    durable_lag_seconds: metrics::Histogram,
}

#[cfg(feature = "metrics")]
impl Handles {
    fn new(backend: &'static str) -> Self {
        let label = [("backend", backend)];
        let counter = |name: &'static str, read: fn(&Stats) -> u64| {
            (metrics::counter!(name, &label), read)
        };
        let gauge = |name: &'static str, read: fn(&Stats) -> f64| {
            (metrics::gauge!(name, &label), read)
        };
        Self {
            counters: vec![
                counter("writebehind_updates_acknowledged_total", |s| s.acked_ops),
                counter("writebehind_updates_coalesced_total", |s| s.coalesced_ops),
                counter("writebehind_records_persisted_total", |s| s.persisted_records),
                counter("writebehind_bytes_persisted_total", |s| s.persisted_bytes),
                counter("writebehind_batches_durable_total", |s| s.batches),
                counter("writebehind_store_errors_total", |s| s.store_errors),
                counter("writebehind_batch_retries_total", |s| s.retries),
                counter("writebehind_ring_full_total", |s| s.ring_full_events),
                counter("writebehind_evictions_total", |s| s.evictions),
                counter("writebehind_read_misses_total", |s| s.read_misses),
                counter("writebehind_keys_reclaimed_total", |s| s.keys_reclaimed),
                counter("writebehind_compactions_total", |s| s.compactions),
            ],
            gauges: vec![
                gauge("writebehind_dirty_keys", |s| s.dirty_keys as f64),
                gauge("writebehind_keys_resident", |s| s.keys as f64),
                gauge("writebehind_resident_bytes", |s| s.resident_bytes as f64),
                gauge("writebehind_batches_in_flight", |s| s.batches_in_flight as f64),
                gauge("writebehind_oldest_not_durable_seconds", |s| {
                    s.durable_lag.as_secs_f64()
                }),
                gauge("writebehind_stored_bytes", |s| s.stored_bytes as f64),
                gauge("writebehind_healthy", |s| f64::from(u8::from(s.healthy))),
            ],
            batch_seconds: metrics::histogram!("writebehind_batch_seconds", &label),
            durable_lag_seconds: metrics::histogram!("writebehind_durable_lag_seconds", &label),
        }
    }
}

impl Exporter {
    /// Registers the metrics with the recorder installed now.
    pub(super) fn new(backend: &'static str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = backend;
        Self {
            #[cfg(feature = "metrics")]
            handles: Handles::new(backend),
            #[cfg(feature = "metrics")]
            exported_ns: std::cell::Cell::new(None),
        }
    }

    /// A batch became durable `batch_ns` after its first submission, its
    /// oldest update `lag_ns` after the flusher took it off its ring.
    #[inline]
    pub(super) fn batch_durable(&self, batch_ns: u64, lag_ns: u64) {
        #[cfg(feature = "metrics")]
        {
            self.handles.batch_seconds.record(seconds(batch_ns));
            self.handles.durable_lag_seconds.record(seconds(lag_ns));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (batch_ns, lag_ns);
    }

    /// Copies the counters and gauges, if `EXPORT_EVERY_NS` passed since
    /// the last time (or `force`).
    pub(super) fn export(&self, shared: &Shared, now: u64, force: bool) {
        #[cfg(feature = "metrics")]
        {
            let due = self
                .exported_ns
                .get()
                .is_none_or(|t| now.saturating_sub(t) >= EXPORT_EVERY_NS);
            if !due && !force {
                return;
            }
            self.exported_ns.set(Some(now));
            let stats = Stats::of(shared);
            for (counter, read) in &self.handles.counters {
                counter.absolute(read(&stats));
            }
            for (gauge, read) in &self.handles.gauges {
                gauge.set(read(&stats));
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (shared, now, force);
    }
}

#[cfg(feature = "metrics")]
fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}
