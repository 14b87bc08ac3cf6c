//! `wb bench`: the cache on a store, under a closed-loop (throughput) or
//! open-loop (latency) load, with the baselines measured in the same run.
//!
//! Latency in open loop is measured from each operation's *intended* start
//! time (`t0 + i / rate`), not from when the writer got to it, so a stall
//! shows up in every operation it delayed (no coordinated omission). Times
//! come from `Clock` (rdtsc, calibrated) and go into HDR histograms.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use writebehind::{Config, FileStore, MemStore, Store, Throttled, Version, WriteBehind};

use writebehind_workload::{
    disk_seq_bytes_per_s, new_histogram, peak_rss_bytes, pin_current_thread, scratch_file,
    Distribution, MutexChannelWb, NullStore, Workload,
};

use crate::clock::Clock;

/// Which store the cache runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded file store.
    File,
    /// The file store behind `Throttled` at N batches per second.
    Slow(u32),
    /// In memory.
    Mem,
    /// Discards batches.
    Null,
    /// A PostgreSQL table (`PgStore`), by connection URL.
    Postgres(String),
}

impl StoreSpec {
    /// How the report names the store (no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(url) => format!("Postgres({})", crate::pg::redact(url)),
            other => format!("{other:?}"),
        }
    }
}

impl std::str::FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(Self::File),
            "mem" => Ok(Self::Mem),
            "null" => Ok(Self::Null),
            _ if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Ok(Self::Postgres(s.to_string()))
            }
            _ => match s.strip_prefix("slow:").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => Ok(Self::Slow(n)),
                _ => Err(format!(
                    "unknown store {s:?}: file, mem, null, slow:N or postgres://..."
                )),
            },
        }
    }
}

/// Operation mix, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    /// put of the workload value
    pub put: u32,
    /// add 1 to a counter key
    pub add: u32,
    /// delete
    pub delete: u32,
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mix = Mix {
            put: 0,
            add: 0,
            delete: 0,
        };
        for part in s.split(',') {
            let (name, pct) = part
                .split_once('=')
                .ok_or_else(|| format!("bad mix part {part:?}"))?;
            let pct: u32 = pct
                .parse()
                .map_err(|_| format!("bad percentage in {part:?}"))?;
            match name {
                "put" => mix.put = pct,
                "add" => mix.add = pct,
                "delete" => mix.delete = pct,
                _ => return Err(format!("unknown op {name:?}")),
            }
        }
        let total = mix
            .put
            .checked_add(mix.add)
            .and_then(|t| t.checked_add(mix.delete));
        if total != Some(100) {
            return Err("the mix must add up to 100".into());
        }
        Ok(mix)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    pub store: StoreSpec,
    pub dir: Option<PathBuf>,
    pub writers: usize,
    pub keys: u64,
    pub dist: Distribution,
    pub key_bytes: usize,
    pub value_bytes: usize,
    pub mix: Mix,
    pub seconds: f64,
    /// Open loop: operations per second per writer.
    pub rate: Option<u64>,
    pub pin: bool,
    pub baselines: bool,
    pub baseline_seconds: f64,
    pub progress: bool,
    pub label: &'static str,
    /// PostgreSQL store: the cache's table (emptied at the start; the
    /// per-update baseline uses `TABLE_per_update`).
    pub pg_table: String,
    /// `Config::batches_in_flight_max`, if not the default.
    pub batches_in_flight: Option<usize>,
}

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
    fn of(h: &Histogram<u64>) -> Self {
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
    pub mutex_channel: Option<BaselineResult>,
    /// PostgreSQL store: one autocommit INSERT ... ON CONFLICT per update.
    pub pg_per_update: Option<BaselineResult>,
}

/// Ratios of the cache's put rate to each baseline's.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Ratios {
    pub vs_write_through: Option<f64>,
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
    pub db: Option<crate::pg::DbReport>,
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
    #[serde(skip)]
    pub baseline_histograms: Vec<(String, Histogram<u64>)>,
}

/// A key's value and version as the cache showed it.
type Snapshot = (Version, Vec<u8>);

/// The key an `add` uses for workload key `k` (its own key space, so a put's
/// 64-byte value never meets a counter).
pub(crate) fn counter_key(k: &[u8]) -> Vec<u8> {
    let mut c = k.to_vec();
    c[0] = b'#';
    c
}

/// The op at trace position `pos` (deterministic from the position).
#[inline]
pub(crate) fn op_at(mix: &Mix, pos: usize) -> u8 {
    let r = ((pos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100;
    if r < u64::from(mix.put) {
        0
    } else if r < u64::from(mix.put + mix.add) {
        1
    } else {
        2
    }
}

/// The start time of operation `ops`: in open loop (`rate` per second from
/// `t0`) wait for it, bounded by the schedule, and return the intended time
/// even if the writer is late (so lateness counts as latency); in closed
/// loop, now.
#[inline]
fn turn(clock: &Clock, t0: u64, rate: Option<u64>, ops: u64) -> u64 {
    match rate {
        Some(r) => {
            let due = t0 + clock.ticks((ops as f64 * 1e9 / r as f64) as u64);
            while clock.now() < due {
                std::hint::spin_loop();
            }
            due
        }
        None => clock.now(),
    }
}

/// Open loop, at the end of a run: every operation that was due but never
/// issued gets recorded as waiting until now (otherwise a writer that is
/// behind when the run stops hides its backlog from the tail).
fn record_backlog(
    clock: &Clock,
    hist: &mut Histogram<u64>,
    t0: u64,
    rate: Option<u64>,
    mut ops: u64,
) {
    let Some(r) = rate else { return };
    let now = clock.now();
    loop {
        let due = t0 + clock.ticks((ops as f64 * 1e9 / r as f64) as u64);
        if due > now {
            break;
        }
        let _ = hist.record(clock.ns(now - due).max(1));
        ops += 1;
    }
}

/// Runs the cache part of the bench and the baselines; returns the report.
pub fn run(p: &Params) -> Result<Report, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let clock = Clock::new();
    let workload = Arc::new(Workload::new(
        p.keys,
        p.key_bytes,
        p.value_bytes,
        p.dist,
        1 << 20,
        0x5EED,
    ));
    let mut config = Config {
        writers_max: p.writers.max(1),
        // 2^16 slots (1 MiB per writer): at 1M ops/s a writer rides out a
        // 65 ms flusher stall (on 2 cores the kernel's I/O threads preempt it)
        // without blocking.
        ring_slots: 1 << 16,
        keys_max: (p.keys as usize * 3).max(1024),
        dirty_keys_max: (p.keys as usize * 2).max(1024),
        value_bytes_max: p.value_bytes.max(64),
        key_bytes_max: p.key_bytes.max(16),
        flusher_core: (p.pin && cores > 1).then_some(cores - 1),
        batches_in_flight_max: p
            .batches_in_flight
            .unwrap_or(Config::default().batches_in_flight_max),
        ..Config::default()
    };
    let temp = match (&p.store, &p.dir) {
        (StoreSpec::File | StoreSpec::Slow(_), None) => {
            Some(tempfile::tempdir().map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let dir = p
        .dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()));
    let mut pg_stats = None;
    let store: Box<dyn Store> = match (&p.store, &dir) {
        (StoreSpec::File, Some(d)) => {
            Box::new(FileStore::open(d, &config).map_err(|e| e.to_string())?)
        }
        (StoreSpec::Slow(n), Some(d)) => Box::new(Throttled::new(
            FileStore::open(d, &config).map_err(|e| e.to_string())?,
            *n,
        )),
        (StoreSpec::Mem, _) => Box::new(MemStore::new()),
        (StoreSpec::Null, _) => Box::new(NullStore::default()),
        (StoreSpec::Postgres(url), _) => {
            crate::pg::reset(url, &p.pg_table)?;
            let (store, handle) =
                crate::pg::open(url, &p.pg_table, &mut config, p.batches_in_flight)?;
            pg_stats = Some(handle);
            store
        }
        _ => return Err("no directory for the file store".into()),
    };
    let in_flight_max = writebehind::store::in_flight_bound(&store, config.batches_in_flight_max);
    let wb = Arc::new(WriteBehind::with_store(store, config.clone()).map_err(|e| e.to_string())?);

    // Sample the flusher while the load runs: durable lag, dirty keys.
    let stop = Arc::new(AtomicBool::new(false));
    let lag = Arc::new(Mutex::new(new_histogram()));
    let dirty_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (wb, stop, lag, dirty_max) = (
            Arc::clone(&wb),
            Arc::clone(&stop),
            Arc::clone(&lag),
            Arc::clone(&dirty_max),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let s = wb.stats();
                if let Ok(mut h) = lag.lock() {
                    let _ = h.record(s.durable_lag.as_nanos().max(1) as u64);
                }
                dirty_max.fetch_max(s.dirty_keys, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // Warm-up: every key written once (closed loop, not measured), so the
    // measurement does not include first-touch page faults of the index.
    let ready = Arc::new(std::sync::Barrier::new(p.writers + 1));
    let go = Arc::new(std::sync::Barrier::new(p.writers + 1));
    let threads: Vec<_> = (0..p.writers)
        .map(|t| {
            let (wb, stop, workload) = (Arc::clone(&wb), Arc::clone(&stop), Arc::clone(&workload));
            let (ready, go) = (Arc::clone(&ready), Arc::clone(&go));
            let writers = p.writers;
            let (mix, rate, pin) = (
                p.mix,
                p.rate,
                p.pin.then_some(t % cores.saturating_sub(1).max(1)),
            );
            std::thread::spawn(
                move || -> Result<(u64, Histogram<u64>, Vec<usize>), String> {
                    let mut w = wb.writer().map_err(|e| e.to_string())?;
                    if let Some(core) = pin {
                        w.pin(core).map_err(|e| e.to_string())?;
                    }
                    let warm = (|| -> Result<(), String> {
                        for k in workload.keys.iter().skip(t).step_by(writers) {
                            match mix.put {
                                0 => w.add(&counter_key(k), 0).map(|_| ()),
                                _ => w.put(k, &workload.value).map(|_| ()),
                            }
                            .map_err(|e| e.to_string())?;
                        }
                        Ok(())
                    })();
                    ready.wait();
                    warm?;
                    let mut hist = new_histogram();
                    let first = t * 7919;
                    let mut pos = first;
                    // All writers start their schedules together.
                    go.wait();
                    let t0 = clock.now();
                    let mut ops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            let intended = turn(&clock, t0, rate, ops);
                            let key = workload.key(pos);
                            match op_at(&mix, pos) {
                                0 => w.put(key, &workload.value).map(|_| ()),
                                1 => w.add(&counter_key(key), 1).map(|_| ()),
                                _ => w.delete(key).map(|_| ()),
                            }
                            .map_err(|e| e.to_string())?;
                            let _ =
                                hist.record(clock.ns(clock.now().saturating_sub(intended)).max(1));
                            pos += 1;
                            ops += 1;
                        }
                    }
                    record_backlog(&clock, &mut hist, t0, rate, ops);
                    Ok((ops, hist, vec![first, pos]))
                },
            )
        })
        .collect();
    ready.wait();
    // The warm-up is durable and out of the counters' window before the
    // clock starts.
    wb.sync().map_err(|e| e.to_string())?;
    let bar = progress_bar(p.progress, p.seconds, p.label);
    let before = wb.stats();
    let db_before = pg_stats.as_ref().map(crate::pg::counters);
    let start = Instant::now();
    go.wait();
    while start.elapsed().as_secs_f64() < p.seconds {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(b) = &bar {
            b.set_position((start.elapsed().as_secs_f64() * 10.0) as u64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    // The store's counters over the same window as the load.
    let after = wb.stats();
    let db_after = pg_stats.as_ref().map(crate::pg::counters);
    let window = start.elapsed().as_secs_f64();
    let mut ops = 0u64;
    let mut hist = new_histogram();
    let mut ranges = Vec::new();
    for t in threads {
        let (n, h, range) = t
            .join()
            .map_err(|_| "writer thread panicked".to_string())??;
        ops += n;
        hist.add(&h).map_err(|e| e.to_string())?;
        ranges.push((range[0], range[1]));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = sampler.join();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let sync_start = Instant::now();
    wb.sync().map_err(|e| e.to_string())?;
    let final_sync_s = sync_start.elapsed().as_secs_f64();

    // What the cache holds for every key of the workload (the warm-up wrote
    // each once): after close and reopen the store must hold exactly that
    // (G2: at quiescence store == cache; the replay of acknowledged
    // operations is checked in tests/stress.rs).
    let mut expected: Vec<(Vec<u8>, Option<Snapshot>)> = Vec::new();
    for key in &workload.keys {
        for k in [key.clone(), counter_key(key)] {
            let v = wb.get(&k).map(|v| (v.version(), v.to_vec()));
            if v.is_some() || wb.version(&k).is_some() {
                expected.push((k, v));
            }
        }
    }
    let _ = &ranges;
    let wb = Arc::into_inner(wb).ok_or("cache still shared")?;
    wb.close().map_err(|e| e.to_string())?;
    // Keys whose value or version differ in a reopened cache (closed after).
    let differing = |wb: WriteBehind| -> Result<usize, String> {
        let bad = expected
            .iter()
            .filter(|(k, v)| wb.get(k).map(|g| (g.version(), g.to_vec())) != *v)
            .count();
        wb.close().map_err(|e| e.to_string())?;
        Ok(bad)
    };
    let verified = match (&p.store, &dir) {
        (StoreSpec::File | StoreSpec::Slow(_), Some(d)) => {
            let bad = differing(WriteBehind::open(d, config.clone()).map_err(|e| e.to_string())?)?;
            if bad > 0 {
                return Err(format!(
                    "VERIFY FAILED: {bad} of {} keys differ after reopen",
                    expected.len()
                ));
            }
            true
        }
        (StoreSpec::Postgres(url), _) => {
            let bad = differing(crate::pg::reopen(&config)?)?;
            // Every key the run wrote is one row (deleted keys as tombstones).
            let rows = crate::pg::count_rows(url, &p.pg_table)?;
            if bad > 0 || rows != expected.len() as u64 {
                return Err(format!(
                    "VERIFY FAILED: {bad} of {} keys differ after reopen; the table has {rows} rows",
                    expected.len()
                ));
            }
            true
        }
        _ => false,
    };

    let persisted = (after.persisted_records - before.persisted_records) as f64;
    let batches = (after.batches - before.batches) as f64;
    let mut report = Report {
        scenario: p.label,
        mode: if p.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        },
        writers: p.writers,
        backend: after.backend,
        store: p.store.describe(),
        distribution: format!("{:?}", p.dist),
        keys: p.keys,
        key_bytes: p.key_bytes,
        value_bytes: p.value_bytes,
        mix: p.mix,
        seconds: elapsed,
        offered_ops_per_s: p.rate.map(|r| (r * p.writers as u64) as f64),
        put_ops_per_s: ops as f64 / elapsed,
        put_latency_ns: Latency::of(&hist),
        persisted_records_per_s: persisted / window,
        persisted_bytes_per_s: (after.persisted_bytes - before.persisted_bytes) as f64 / window,
        disk_seq_bytes_per_s: None,
        coalescing_ratio: (after.drained_ops - before.drained_ops) as f64 / persisted.max(1.0),
        batches_per_s: batches / window,
        mean_batch_records: persisted / batches.max(1.0),
        batches_in_flight_max: in_flight_max,
        durable_lag_p99_ns: lag.lock().map(|h| h.value_at_quantile(0.99)).unwrap_or(0),
        dirty_keys_max_seen: dirty_max.load(Ordering::Relaxed),
        ring_full_events: after.ring_full_events - before.ring_full_events,
        peak_rss_bytes: peak_rss_bytes(),
        final_sync_s,
        verified,
        verified_keys: if verified { expected.len() as u64 } else { 0 },
        baselines: Baselines::default(),
        ratios: Ratios::default(),
        db: match (db_before, db_after, pg_stats.as_ref()) {
            (Some(b), Some(a), Some(h)) => {
                let total = crate::pg::counters(h);
                Some(crate::pg::DbReport {
                    table: p.pg_table.clone(),
                    statements_per_s: (a.statements - b.statements) as f64 / window,
                    rows_per_s: (a.rows_sent - b.rows_sent) as f64 / window,
                    rows_applied_per_s: (a.rows_applied - b.rows_applied) as f64 / window,
                    failures: total.failures,
                    reconnects: total.reconnects,
                })
            }
            _ => None,
        },
        histogram: Some(hist),
        baseline_histograms: Vec::new(),
    };
    if let (true, StoreSpec::Postgres(url)) = (p.baselines, &p.store) {
        let (pu, pu_hist) = crate::pg::per_update(url, &p.pg_table, &workload, p, &clock)?;
        let (mc, mc_hist) = mutex_channel(&workload, p, &clock)?;
        report.ratios.vs_pg_per_update = Some(report.put_ops_per_s / pu.ops_per_s.max(1e-9));
        let comparable = p.rate.is_none() && p.mix.put == 100;
        report.ratios.vs_mutex_channel =
            comparable.then(|| report.put_ops_per_s / mc.ops_per_s.max(1e-9));
        report.baselines.pg_per_update = Some(pu);
        report.baselines.mutex_channel = Some(mc);
        report.baseline_histograms = vec![
            ("per-update INSERT".into(), pu_hist),
            ("mutex+channel".into(), mc_hist),
        ];
    } else if p.baselines {
        let bdir = match &dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir(),
        };
        let scratch = tempfile::tempdir_in(&bdir).map_err(|e| e.to_string())?;
        report.disk_seq_bytes_per_s = Some(disk_seq_bytes_per_s(scratch.path(), 128 << 20)?);
        let (wt, wt_hist) = write_through(
            scratch.path(),
            &workload,
            p.baseline_seconds.min(2.0),
            &clock,
        )?;
        let (mc, mc_hist) = mutex_channel(&workload, p, &clock)?;
        // A throughput ratio means something only when both sides run flat
        // out the same operations: closed loop, puts only. In open loop both
        // sides are capped at the offered rate; compare their latencies.
        let comparable = p.rate.is_none() && p.mix.put == 100;
        report.ratios.vs_write_through =
            comparable.then(|| report.put_ops_per_s / wt.ops_per_s.max(1e-9));
        report.ratios.vs_mutex_channel =
            comparable.then(|| report.put_ops_per_s / mc.ops_per_s.max(1e-9));
        report.baselines.write_through = Some(wt);
        report.baselines.mutex_channel = Some(mc);
        report.baseline_histograms = vec![
            ("write-through".into(), wt_hist),
            ("mutex+channel".into(), mc_hist),
        ];
    }
    Ok(report)
}

fn progress_bar(on: bool, seconds: f64, label: &str) -> Option<indicatif::ProgressBar> {
    if !on {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some((seconds * 10.0) as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {elapsed}/{duration}")
    {
        bar.set_style(style);
    }
    bar.set_message(format!("wb bench {label}"));
    Some(bar)
}

/// Baseline: every put appended with pwrite and made durable with fdatasync
/// before it returns (write-through), one writer, same keys and values.
fn write_through(
    dir: &Path,
    workload: &Workload,
    seconds: f64,
    clock: &Clock,
) -> Result<(BaselineResult, Histogram<u64>), String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("write-through.log");
    let file = scratch_file(&path)?;
    let mut hist = new_histogram();
    let mut buf = Vec::new();
    let start = Instant::now();
    let mut offset = 0u64;
    let mut ops = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let t = clock.now();
        buf.clear();
        writebehind::record::encode(
            &mut buf,
            writebehind::record::Kind::Put,
            Version(ops + 1),
            workload.key(ops as usize),
            &workload.value,
        );
        file.write_all_at(&buf, offset).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        offset += buf.len() as u64;
        let _ = hist.record(clock.ns(clock.now().saturating_sub(t)).max(1));
        ops += 1;
    }
    let rate = ops as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok((
        BaselineResult {
            ops_per_s: rate,
            latency_ns: Some(Latency::of(&hist)),
            note: "pwrite + fdatasync per put, one writer, same disk".into(),
        },
        hist,
    ))
}

/// Baseline: `Mutex<HashMap>` + bounded crossbeam channel write-behind, the
/// same writers, keys, values and loop (open or closed) as the cache.
fn mutex_channel(
    workload: &Arc<Workload>,
    p: &Params,
    clock: &Clock,
) -> Result<(BaselineResult, Histogram<u64>), String> {
    let base = Arc::new(MutexChannelWb::new(1 << 14));
    // The same warm-up as the cache got: every key once.
    for k in &workload.keys {
        base.put(k, &workload.value);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let threads: Vec<_> = (0..p.writers)
        .map(|t| {
            let (base, stop, workload, clock, rate) = (
                Arc::clone(&base),
                Arc::clone(&stop),
                Arc::clone(workload),
                *clock,
                p.rate,
            );
            let pin = p.pin.then_some(t % cores.saturating_sub(1).max(1));
            std::thread::spawn(move || {
                if let Some(core) = pin {
                    // Same placement as the cache's writers.
                    pin_current_thread(core);
                }
                let mut hist = new_histogram();
                let mut pos = t * 7919;
                let t0 = clock.now();
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let intended = turn(&clock, t0, rate, ops);
                        base.put(workload.key(pos), &workload.value);
                        let _ = hist.record(clock.ns(clock.now().saturating_sub(intended)).max(1));
                        pos += 1;
                        ops += 1;
                    }
                }
                record_backlog(&clock, &mut hist, t0, rate, ops);
                Ok((ops, hist))
            })
        })
        .collect();
    run_baseline_threads(
        p.baseline_seconds,
        &stop,
        threads,
        start,
        "Mutex<HashMap> + bounded crossbeam channel to a flusher thread".into(),
    )
}

/// What one baseline thread returns: operations done, their latencies.
pub(crate) type BaselineThread = std::thread::JoinHandle<Result<(u64, Histogram<u64>), String>>;

/// Lets a baseline's threads (started at `start`) run `seconds`, stops them,
/// and sums their results into the baseline's result, described by `note`.
pub(crate) fn run_baseline_threads(
    seconds: f64,
    stop: &AtomicBool,
    threads: Vec<BaselineThread>,
    start: Instant,
    note: String,
) -> Result<(BaselineResult, Histogram<u64>), String> {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    let mut hist = new_histogram();
    for t in threads {
        let (n, h) = t
            .join()
            .map_err(|_| "baseline thread panicked".to_string())??;
        ops += n;
        hist.add(&h).map_err(|e| e.to_string())?;
    }
    Ok((
        BaselineResult {
            ops_per_s: ops as f64 / start.elapsed().as_secs_f64(),
            latency_ns: Some(Latency::of(&hist)),
            note,
        },
        hist,
    ))
}

/// The human-readable table.
pub fn print_table(r: &Report) {
    let ns = |v: u64| {
        if v >= 1_000_000 {
            format!("{:.2} ms", v as f64 / 1e6)
        } else if v >= 1_000 {
            format!("{:.2} us", v as f64 / 1e3)
        } else {
            format!("{v} ns")
        }
    };
    println!(
        "wb bench ({}, {}): {} writer thread(s) + 1 flusher on {} cores, store {} ({}), {} over {} keys, {}-byte keys, {}-byte values, mix put {}% add {}% delete {}%, {:.1} s",
        r.scenario,
        r.mode,
        r.writers,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        r.store,
        r.backend,
        r.distribution,
        r.keys,
        r.key_bytes,
        r.value_bytes,
        r.mix.put,
        r.mix.add,
        r.mix.delete,
        r.seconds
    );
    if let Some(o) = r.offered_ops_per_s {
        println!("  offered ops/s          {:>14.0}", o);
    }
    println!("  acked ops/s            {:>14.0}", r.put_ops_per_s);
    let l = &r.put_latency_ns;
    println!(
        "  op latency             p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
        ns(l.p50),
        ns(l.p90),
        ns(l.p99),
        ns(l.p999),
        ns(l.p9999),
        ns(l.max)
    );
    println!(
        "  persisted records/s    {:>14.0}",
        r.persisted_records_per_s
    );
    println!(
        "  persisted MB/s         {:>14.1}",
        r.persisted_bytes_per_s / 1e6
    );
    println!(
        "  coalescing ratio       {:>14.2}  (updates drained per record written)",
        r.coalescing_ratio
    );
    println!(
        "  batches/s              {:>14.1}  (mean {:.0} records, at most {} in flight)",
        r.batches_per_s, r.mean_batch_records, r.batches_in_flight_max
    );
    println!("  durable lag p99        {:>14}", ns(r.durable_lag_p99_ns));
    println!("  dirty keys, max seen   {:>14}", r.dirty_keys_max_seen);
    println!("  ring-full events       {:>14}", r.ring_full_events);
    println!(
        "  peak RSS               {:>11.1} MB",
        r.peak_rss_bytes as f64 / 1e6
    );
    println!(
        "  final sync             {:>14}",
        ns((r.final_sync_s * 1e9) as u64)
    );
    if r.verified {
        println!("  verified               all {} keys of the workload read back identical after close + reopen", r.verified_keys);
    } else {
        println!("  verified               n/a (the store does not outlive the run)");
    }
    if let Some(db) = &r.db {
        println!(
            "  database               {:>14.0} rows/s in {:.1} statements/s ({:.0} rows/s applied; {} failures, {} reconnects), table {}",
            db.rows_per_s,
            db.statements_per_s,
            db.rows_applied_per_s,
            db.failures,
            db.reconnects,
            db.table
        );
    }
    if let Some(d) = r.disk_seq_bytes_per_s {
        println!(
            "  disk sequential        {:>11.0} MB/s  (1 MiB pwrite + fdatasync)",
            d / 1e6
        );
    }
    for (name, b, ratio) in [
        (
            "write-through",
            &r.baselines.write_through,
            r.ratios.vs_write_through,
        ),
        (
            "mutex+channel",
            &r.baselines.mutex_channel,
            r.ratios.vs_mutex_channel,
        ),
        (
            "per-update SQL",
            &r.baselines.pg_per_update,
            r.ratios.vs_pg_per_update,
        ),
    ] {
        if let Some(b) = b {
            let lat = b.latency_ns.as_ref().map_or(String::new(), |l| {
                format!("p50 {} p99.9 {}", ns(l.p50), ns(l.p999))
            });
            let ratio = ratio.map_or_else(
                || "(no throughput ratio: open loop or not all puts)".to_string(),
                |r| format!("-> cache is {r:.1}x"),
            );
            println!(
                "  baseline {name:<14}{:>11.0} ops/s  {lat}  {ratio}",
                b.ops_per_s
            );
        }
    }
}

/// Writes `h` in HdrHistogram's percentile-distribution text format.
pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> Result<(), String> {
    use std::fmt::Write;
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    for v in h.iter_quantiles(1) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:.2}", 1.0 / (1.0 - q))
        } else {
            "inf".into()
        };
        let _ = writeln!(
            out,
            "{:12.3} {:14.12} {:10} {:>14}",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(out, "# values in microseconds");
    std::fs::write(path, out).map_err(|e| e.to_string())
}

/// Writes an SVG latency-by-percentile plot (log scales) of the given runs.
pub fn write_plot(path: &Path, runs: &[(String, &Histogram<u64>)]) -> Result<(), String> {
    use std::fmt::Write;
    let (w, h, m) = (900.0, 520.0, 70.0);
    let nines = [0.0, 0.9, 0.99, 0.999, 0.9999, 0.99999];
    let x_of = |q: f64| m + (w - 2.0 * m) * ((1.0 / (1.0 - q.min(0.99999))).log10() / 5.0);
    let max_ns = runs
        .iter()
        .map(|(_, hist)| hist.max())
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let y_of = |ns: f64| h - m - (h - 2.0 * m) * (ns.max(1.0).log10() / max_ns.log10());
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{m}" y="30" font-size="15">wb bench: latency by percentile (log scales)</text>"#
    );
    for q in nines {
        let x = x_of(q);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{m}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}%</text>"##,
            h - m,
            h - m + 18.0,
            q * 100.0
        );
    }
    let mut decade = 1.0;
    while decade <= max_ns * 10.0 {
        let y = y_of(decade);
        if y >= m - 1.0 {
            let label = if decade >= 1e6 {
                format!("{} ms", decade / 1e6)
            } else if decade >= 1e3 {
                format!("{} us", decade / 1e3)
            } else {
                format!("{decade} ns")
            };
            let _ = write!(
                s,
                r##"<line x1="{m}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                w - m,
                m - 6.0,
                y + 4.0
            );
        }
        decade *= 10.0;
    }
    for (i, (name, hist)) in runs.iter().enumerate() {
        let color = colors[i % colors.len()];
        let mut points = String::new();
        for step in 0..=200 {
            let q = 1.0 - 10f64.powf(-5.0 * step as f64 / 200.0);
            let v = hist.value_at_quantile(q) as f64;
            let _ = write!(points, "{:.1},{:.1} ", x_of(q), y_of(v));
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/><text x="{:.1}" y="{:.1}" fill="{color}">{name}</text>"#,
            w - m - 160.0,
            m + 16.0 * (i as f64 + 1.0)
        );
    }
    s.push_str("</svg>");
    std::fs::write(path, s).map_err(|e| e.to_string())
}
