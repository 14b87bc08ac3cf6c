//! The cache under load: writer threads (warmed up, then started together on
//! one signal), a sampler of the flusher's lag and dirty keys, and the
//! measured window between them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use writebehind::{Stats, WriteBehind, Writer};
use writebehind_workload::{new_histogram, Workload};

use super::load::{join_all, LoadLoop, Outcome, OPS_PER_STOP_CHECK};
use super::spec::{counter_key, Op, Params};
use crate::clock::Clock;
use crate::pg::{self, DbCounters};

/// What the window of a run measured.
pub(super) struct Window {
    /// The cache's counters when the load started and when it stopped.
    pub before: Stats,
    pub after: Stats,
    /// A PostgreSQL store's counters at the same two moments.
    pub db: Option<(DbCounters, DbCounters)>,
    /// From the start of the load to its stop, seconds (the counters' window).
    pub window_s: f64,
    /// From the start of the load until every writer had stopped, seconds.
    pub elapsed_s: f64,
    /// Operations acknowledged, and their latencies.
    pub ops: u64,
    pub histogram: Histogram<u64>,
    /// The `sync()` after the load, seconds.
    pub final_sync_s: f64,
    pub durable_lag_p99_ns: u64,
    pub dirty_keys_max_seen: u64,
}

/// Runs the load on `wb` for `p.seconds` and measures it.
pub(super) fn measure(
    p: &Params,
    wb: &Arc<WriteBehind>,
    workload: &Arc<Workload>,
    clock: &Clock,
    pg: Option<&pg::Handle>,
) -> Result<Window, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = Sampler::start(wb, &stop);
    // Warm-up: every key written once (closed loop, not measured), so the
    // measurement does not include first-touch page faults of the index.
    let ready = Arc::new(Barrier::new(p.writers + 1));
    let go = Arc::new(Barrier::new(p.writers + 1));
    super::phase(
        p,
        &format!("starting {} writer thread(s), warming up", p.writers),
    );
    let writers: Vec<_> = (0..p.writers)
        .map(|t| {
            let start = Start {
                ready: Arc::clone(&ready),
                go: Arc::clone(&go),
                stop: Arc::clone(&stop),
            };
            spawn_writer(p, t, wb, workload, *clock, start)
        })
        .collect();
    ready.wait();
    // The warm-up is durable and out of the counters' window before the
    // clock starts.
    wb.sync().map_err(|e| e.to_string())?;
    let bar = progress_bar(p.progress, p.seconds, p.label);
    let before = wb.stats();
    let db_before = pg.map(pg::counters);
    let start = Instant::now();
    go.wait();
    while start.elapsed().as_secs_f64() < p.seconds {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(b) = &bar {
            let t = start.elapsed().as_secs_f64();
            b.set_position((t * 10.0) as u64);
            b.set_message(live_rate(p, &before, &wb.stats(), t));
        }
    }
    stop.store(true, Ordering::Relaxed);
    // The store's counters over the same window as the load.
    let after = wb.stats();
    let db_after = pg.map(pg::counters);
    let window_s = start.elapsed().as_secs_f64();
    let (ops, histogram) = join_all(writers, "writer")?;
    let elapsed_s = start.elapsed().as_secs_f64();
    let (durable_lag_p99_ns, dirty_keys_max_seen) = sampler.finish();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let sync_start = Instant::now();
    wb.sync().map_err(|e| e.to_string())?;
    Ok(Window {
        before,
        after,
        db: db_before.zip(db_after),
        window_s,
        elapsed_s,
        ops,
        histogram,
        final_sync_s: sync_start.elapsed().as_secs_f64(),
        durable_lag_p99_ns,
        dirty_keys_max_seen,
    })
}

/// How the writers are started and stopped together.
struct Start {
    /// Passed when the writer has warmed up.
    ready: Arc<Barrier>,
    /// Passed when the measured window starts.
    go: Arc<Barrier>,
    stop: Arc<AtomicBool>,
}

/// Writer `t`: warms up its share of the keys, then runs the mix from its
/// own place in the trace until stopped.
fn spawn_writer(
    p: &Params,
    t: usize,
    wb: &Arc<WriteBehind>,
    workload: &Arc<Workload>,
    clock: Clock,
    start: Start,
) -> JoinHandle<Result<Outcome, String>> {
    let (wb, workload) = (Arc::clone(wb), Arc::clone(workload));
    let (writers, mix, rate, core) = (p.writers, p.mix, p.rate, p.writer_core(t));
    std::thread::spawn(move || {
        let mut w = wb.writer().map_err(|e| e.to_string())?;
        if let Some(core) = core {
            w.pin(core).map_err(|e| e.to_string())?;
        }
        let warm = warm_up(&mut w, &workload, t, writers, mix.put == 0);
        start.ready.wait();
        // All writers start their schedules together.
        start.go.wait();
        warm?;
        let looping = LoadLoop {
            clock: &clock,
            rate,
            stop: &start.stop,
            ops_per_stop_check: OPS_PER_STOP_CHECK,
        };
        looping.run(t * 7919, |pos| {
            let key = workload.key(pos);
            match mix.op_at(pos) {
                Op::Put => w.put(key, &workload.value).map(|_| ()),
                Op::Add => w.add(&counter_key(key), 1).map(|_| ()),
                Op::Delete => w.delete(key).map(|_| ()),
                Op::Get => wb.get(key).map(|_| ()),
            }
            .map_err(|e| e.to_string())
        })
    })
}

/// Writes every `writers`-th key from the `t`-th once: its counter (at 0)
/// if the mix has no puts, else the workload value.
fn warm_up(
    w: &mut Writer,
    workload: &Workload,
    t: usize,
    writers: usize,
    counters: bool,
) -> Result<(), String> {
    for k in workload.keys.iter().skip(t).step_by(writers) {
        if counters {
            w.add(&counter_key(k), 0).map(|_| ())
        } else {
            w.put(k, &workload.value).map(|_| ())
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Samples the flusher every 10 ms while the load runs: durable lag, dirty
/// keys.
struct Sampler {
    thread: JoinHandle<()>,
    lag: Arc<Mutex<Histogram<u64>>>,
    dirty_max: Arc<AtomicU64>,
}

impl Sampler {
    /// Samples `wb` until `stop` is set.
    fn start(wb: &Arc<WriteBehind>, stop: &Arc<AtomicBool>) -> Self {
        let lag = Arc::new(Mutex::new(new_histogram()));
        let dirty_max = Arc::new(AtomicU64::new(0));
        let (wb, stop) = (Arc::clone(wb), Arc::clone(stop));
        let (l, d) = (Arc::clone(&lag), Arc::clone(&dirty_max));
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let s = wb.stats();
                if let Ok(mut h) = l.lock() {
                    let _ = h.record(s.durable_lag.as_nanos().max(1) as u64);
                }
                d.fetch_max(s.dirty_keys, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            thread,
            lag,
            dirty_max,
        }
    }

    /// Waits for the sampler to stop; the p99 durable lag (ns) and the most
    /// dirty keys it saw.
    fn finish(self) -> (u64, u64) {
        let _ = self.thread.join();
        let lag_p99 = self
            .lag
            .lock()
            .map(|h| h.value_at_quantile(0.99))
            .unwrap_or(0);
        (lag_p99, self.dirty_max.load(Ordering::Relaxed))
    }
}

/// A progress bar on stderr, if `on`, in tenths of a second.
fn progress_bar(on: bool, seconds: f64, label: &str) -> Option<indicatif::ProgressBar> {
    if !on {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some((seconds * 10.0) as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template("[{bar:30}] {msg}") {
        bar.set_style(style);
    }
    bar.set_message(format!("wb bench {label}: measuring"));
    Some(bar)
}

/// The bar's message: time, acknowledged and persisted rates since the
/// window began, and the durable lag now.
fn live_rate(p: &Params, before: &Stats, now: &Stats, t: f64) -> String {
    let per_s = |a: u64, b: u64| a.saturating_sub(b) as f64 / t.max(1e-3);
    format!(
        "{t:.1}/{:.1} s  acked {:.0}/s  persisted {:.0} records/s  durable lag {:?}",
        p.seconds,
        per_s(now.acked_ops, before.acked_ops),
        per_s(now.persisted_records, before.persisted_records),
        now.durable_lag
    )
}
