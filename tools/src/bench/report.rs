//! What `wb bench` reports (`--json` prints it as one object).

use hdrhistogram::Histogram;
use serde::Serialize;
use writebehind_workload::peak_rss_bytes;

use super::cache::Window;
use super::spec::{Mix, Params};
use crate::pg::DbReport;

/// Latency summary, nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    pub samples: u64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            samples: h.len(),
        }
    }
}

/// One baseline's result.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    pub ops_per_s: f64,
    pub latency_ns: Option<Latency>,
    pub note: String,
}

/// Baselines measured in the same run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Baselines {
    pub write_through: Option<BaselineResult>,
    /// The dashmap + rtrb write-behind a competent user would build.
    pub hand_built: Option<BaselineResult>,
    pub mutex_channel: Option<BaselineResult>,
    /// PostgreSQL store: one autocommit INSERT ... ON CONFLICT per update.
    pub pg_per_update: Option<BaselineResult>,
}

/// Ratios of the cache's put rate to each baseline's.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Ratios {
    pub vs_write_through: Option<f64>,
    pub vs_hand_built: Option<f64>,
    pub vs_mutex_channel: Option<f64>,
    /// Acknowledged updates per second over the per-update baseline's
    /// (which runs flat out): in open loop the cache runs at the offered
    /// rate, so this is how many times the baseline's capacity it carried.
    pub vs_pg_per_update: Option<f64>,
}

/// The run's report (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub mode: &'static str,
    pub writers: usize,
    pub backend: &'static str,
    /// `Config::durability`: "Batch" or "Deferred".
    pub durability: String,
    pub store: String,
    pub distribution: String,
    pub keys: u64,
    pub key_bytes: usize,
    pub value_bytes: usize,
    pub mix: Mix,
    pub seconds: f64,
    pub offered_ops_per_s: Option<f64>,
    pub put_ops_per_s: f64,
    pub put_latency_ns: Latency,
    pub persisted_records_per_s: f64,
    pub persisted_bytes_per_s: f64,
    pub disk_seq_bytes_per_s: Option<f64>,
    pub coalescing_ratio: f64,
    pub batches_per_s: f64,
    pub mean_batch_records: f64,
    pub batches_in_flight_max: usize,
    pub durable_lag_p99_ns: u64,
    pub dirty_keys_max_seen: u64,
    pub ring_full_events: u64,
    pub peak_rss_bytes: u64,
    pub final_sync_s: f64,
    pub verified: bool,
    pub verified_keys: u64,
    pub baselines: Baselines,
    pub ratios: Ratios,
    /// PostgreSQL store: what the database saw.
    pub db: Option<DbReport>,
    /// Memory: the budget, what was resident at the end, and the window's
    /// evictions and reads through.
    pub memory: MemoryReport,
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
    #[serde(skip)]
    pub baseline_histograms: Vec<(String, Histogram<u64>)>,
}

/// The cache's memory over a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemoryReport {
    /// `Config::memory_bytes`.
    pub budget_bytes: u64,
    /// Keys in memory at the end of the window, and their bytes as the
    /// budget counts them.
    pub resident_keys: usize,
    pub resident_bytes: u64,
    /// Over the window: entries evicted, reads of keys not in memory,
    /// loads from the store.
    pub evictions: u64,
    pub read_misses: u64,
    pub loads: u64,
    /// Share of the window's gets that found their key in memory
    /// (estimated: gets counted from the mix's share of operations).
    pub get_hit_ratio: Option<f64>,
}

/// How the cache's run ended: its bound on batches in flight, and what
/// verification found (`verified_keys` keys, if `verified`).
pub(super) struct CacheEnd {
    pub batches_in_flight_max: usize,
    pub verified: bool,
    pub verified_keys: u64,
    pub memory_bytes: u64,
}

impl Report {
    /// The report of the cache's part of a run (the baselines come after).
    pub(super) fn of_cache(
        p: &Params,
        w: Window,
        end: CacheEnd,
        pg: Option<&crate::pg::Handle>,
    ) -> Self {
        let (before, after, window) = (&w.before, &w.after, w.window_s);
        let persisted = (after.persisted_records - before.persisted_records) as f64;
        let batches = (after.batches - before.batches) as f64;
        Report {
            scenario: p.label,
            mode: p.mode(),
            writers: p.writers,
            backend: after.backend,
            durability: format!("{:?}", p.durability),
            store: p.store.describe(),
            distribution: format!("{:?}", p.dist),
            keys: p.keys,
            key_bytes: p.key_bytes,
            value_bytes: p.value_bytes,
            mix: p.mix,
            seconds: w.elapsed_s,
            offered_ops_per_s: p.rate.map(|r| (r * p.writers as u64) as f64),
            put_ops_per_s: w.ops as f64 / w.elapsed_s,
            put_latency_ns: Latency::of(&w.histogram),
            persisted_records_per_s: persisted / window,
            persisted_bytes_per_s: (after.persisted_bytes - before.persisted_bytes) as f64 / window,
            disk_seq_bytes_per_s: None,
            coalescing_ratio: (after.drained_ops - before.drained_ops) as f64 / persisted.max(1.0),
            batches_per_s: batches / window,
            mean_batch_records: persisted / batches.max(1.0),
            batches_in_flight_max: end.batches_in_flight_max,
            durable_lag_p99_ns: w.durable_lag_p99_ns,
            dirty_keys_max_seen: w.dirty_keys_max_seen,
            ring_full_events: after.ring_full_events - before.ring_full_events,
            peak_rss_bytes: peak_rss_bytes(),
            final_sync_s: w.final_sync_s,
            verified: end.verified,
            verified_keys: if end.verified { end.verified_keys } else { 0 },
            baselines: Baselines::default(),
            ratios: Ratios::default(),
            db: db_report(p, &w, pg),
            memory: memory_report(p, &w, end.memory_bytes),
            histogram: Some(w.histogram),
            baseline_histograms: Vec::new(),
        }
    }
}

/// The memory figures of a run.
fn memory_report(p: &Params, w: &Window, budget_bytes: u64) -> MemoryReport {
    let (b, a) = (&w.before, &w.after);
    let read_misses = a.read_misses - b.read_misses;
    let gets = w.ops as f64 * f64::from(p.mix.get) / 100.0;
    MemoryReport {
        budget_bytes,
        resident_keys: a.keys,
        resident_bytes: a.resident_bytes,
        evictions: a.evictions - b.evictions,
        read_misses,
        loads: a.loads - b.loads,
        get_hit_ratio: (gets >= 1.0).then(|| (1.0 - read_misses as f64 / gets).max(0.0)),
    }
}

/// What the database saw over the window, for a PostgreSQL store.
fn db_report(p: &Params, w: &Window, pg: Option<&crate::pg::Handle>) -> Option<DbReport> {
    let ((b, a), h) = (w.db?, pg?);
    let total = crate::pg::counters(h);
    let window = w.window_s;
    Some(DbReport {
        table: p.pg_table.clone(),
        statements_per_s: (a.statements - b.statements) as f64 / window,
        rows_per_s: (a.rows_sent - b.rows_sent) as f64 / window,
        rows_applied_per_s: (a.rows_applied - b.rows_applied) as f64 / window,
        failures: total.failures,
        reconnects: total.reconnects,
    })
}
