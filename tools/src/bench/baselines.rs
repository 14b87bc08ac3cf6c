//! The baselines `wb bench` measures in the same run as the cache, on the
//! same disk, keys, values and loop: what a service would do without it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use writebehind::Version;
use writebehind_workload::{
    disk_seq_bytes_per_s, new_histogram, pin_current_thread, scratch_file, HandBuiltWb,
    MutexChannelWb, Workload,
};

use super::load::{join_all, LoadLoop, Outcome, OPS_PER_STOP_CHECK};
use super::report::{BaselineResult, Latency, Report};
use super::spec::{Params, StoreSpec};
use super::store::RING_CAPACITY;
use crate::clock::Clock;
use crate::internal::encode;
use writebehind::Kind;

/// A baseline's result and its latencies.
pub(crate) type Measured = (BaselineResult, Histogram<u64>);

/// Measures the baselines that go with `p.store` and adds them, with the
/// cache's ratio to each, to `report`. `dir`: the file store's directory.
pub(super) fn add(
    report: &mut Report,
    p: &Params,
    dir: Option<&Path>,
    workload: &Arc<Workload>,
    clock: &Clock,
) -> Result<(), String> {
    if !p.baselines {
        return Ok(());
    }
    let first = match &p.store {
        StoreSpec::Postgres(url) => add_per_update(report, p, url, workload, clock)?,
        _ => add_write_through(report, p, dir, workload, clock)?,
    };
    super::phase(
        p,
        &format!(
            "baseline hand-built dashmap+rtrb ({} s)",
            p.baseline_seconds
        ),
    );
    let (hb, hb_hist) = hand_built(workload, p, clock)?;
    report.ratios.vs_hand_built = ratio_if_comparable(p, report.put_ops_per_s, &hb);
    report.baselines.hand_built = Some(hb);
    super::phase(
        p,
        &format!("baseline mutex+channel ({} s)", p.baseline_seconds),
    );
    let (mc, mc_hist) = mutex_channel(workload, p, clock)?;
    report.ratios.vs_mutex_channel = ratio_if_comparable(p, report.put_ops_per_s, &mc);
    report.baselines.mutex_channel = Some(mc);
    report.baseline_histograms = vec![
        first,
        ("hand-built".into(), hb_hist),
        ("mutex+channel".into(), mc_hist),
    ];
    Ok(())
}

/// A throughput ratio means something only when both sides run flat out the
/// same operations: closed loop, puts only. In open loop both sides are
/// capped at the offered rate; compare their latencies.
fn ratio_if_comparable(p: &Params, cache_ops_per_s: f64, base: &BaselineResult) -> Option<f64> {
    let comparable = p.rate.is_none() && p.mix.put == 100;
    comparable.then(|| cache_ops_per_s / base.ops_per_s.max(1e-9))
}

/// PostgreSQL store: one autocommit statement per update. Returns its
/// latencies, named for the plot.
fn add_per_update(
    report: &mut Report,
    p: &Params,
    url: &str,
    workload: &Arc<Workload>,
    clock: &Clock,
) -> Result<(String, Histogram<u64>), String> {
    super::phase(
        p,
        &format!("baseline per-update INSERT ({} s)", p.baseline_seconds),
    );
    let (pu, pu_hist) = crate::pg::per_update(url, &p.pg_table, workload, p, clock)?;
    // The per-update baseline runs flat out: the ratio says how many times
    // its capacity the cache carried, open loop or not.
    report.ratios.vs_pg_per_update = Some(report.put_ops_per_s / pu.ops_per_s.max(1e-9));
    report.baselines.pg_per_update = Some(pu);
    Ok(("per-update INSERT".into(), pu_hist))
}

/// Any other store: the disk's sequential bandwidth, and write-through on
/// the same disk. Returns write-through's latencies, named for the plot.
fn add_write_through(
    report: &mut Report,
    p: &Params,
    dir: Option<&Path>,
    workload: &Arc<Workload>,
    clock: &Clock,
) -> Result<(String, Histogram<u64>), String> {
    let bdir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir(),
    };
    let scratch = tempfile::tempdir_in(&bdir).map_err(|e| e.to_string())?;
    super::phase(p, "measuring the disk's sequential bandwidth (128 MiB)");
    report.disk_seq_bytes_per_s = Some(disk_seq_bytes_per_s(scratch.path(), 128 << 20)?);
    let seconds = p.baseline_seconds.min(2.0);
    super::phase(p, &format!("baseline write-through ({seconds} s)"));
    let (wt, wt_hist) = write_through(scratch.path(), workload, seconds, clock)?;
    report.ratios.vs_write_through = ratio_if_comparable(p, report.put_ops_per_s, &wt);
    report.baselines.write_through = Some(wt);
    Ok(("write-through".into(), wt_hist))
}

/// Baseline: every put appended with pwrite and made durable with fdatasync
/// before it returns (write-through), one writer, same keys and values.
fn write_through(
    dir: &Path,
    workload: &Workload,
    seconds: f64,
    clock: &Clock,
) -> Result<Measured, String> {
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
        let key = workload.key(ops as usize);
        encode(&mut buf, Kind::Put, Version(ops + 1), key, &workload.value);
        file.write_all_at(&buf, offset).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        offset += buf.len() as u64;
        let _ = hist.record(clock.ns(clock.now().saturating_sub(t)).max(1));
        ops += 1;
    }
    let rate = ops as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    let result = BaselineResult {
        ops_per_s: rate,
        latency_ns: Some(Latency::of(&hist)),
        note: "pwrite + fdatasync per put, one writer, same disk".into(),
    };
    Ok((result, hist))
}

/// Baseline: `Mutex<HashMap>` + bounded crossbeam channel write-behind, the
/// same writers, keys, values and loop (open or closed) as the cache.
fn mutex_channel(workload: &Arc<Workload>, p: &Params, clock: &Clock) -> Result<Measured, String> {
    let base = Arc::new(MutexChannelWb::new(RING_CAPACITY));
    // The same warm-up as the cache got: every key once.
    for k in &workload.keys {
        base.put(k, &workload.value);
    }
    let note = "Mutex<HashMap> + bounded crossbeam channel to a flusher thread";
    run_writers(workload, p, clock, note, |_| {
        let base = Arc::clone(&base);
        move |key, value| base.put(key, value)
    })
}

/// Baseline: the hand-built dashmap + rtrb write-behind a competent user
/// would write (DESIGN.md section 6), rings as long as the cache's, the
/// same writers, keys, values and loop.
fn hand_built(workload: &Arc<Workload>, p: &Params, clock: &Clock) -> Result<Measured, String> {
    let base = Arc::new(HandBuiltWb::new(RING_CAPACITY));
    let mut warm = base.writer();
    for k in &workload.keys {
        warm.put(k, &workload.value);
    }
    drop(warm);
    let note = "DashMap (FxHash) + one rtrb ring of keys per writer to a coalescing flusher";
    run_writers(workload, p, clock, note, |_| {
        let mut w = base.writer();
        move |key, value| {
            w.put(key, value);
        }
    })
}

/// Runs `p.writers` threads of the load loop for `p.baseline_seconds`,
/// thread `t` putting with the function `new_put(t)` returns (called on
/// the spawning thread), and sums their results, described by `note`.
fn run_writers<F>(
    workload: &Arc<Workload>,
    p: &Params,
    clock: &Clock,
    note: &str,
    new_put: impl Fn(usize) -> F,
) -> Result<Measured, String>
where
    F: FnMut(&[u8], &[u8]) + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..p.writers)
        .map(|t| {
            let (stop, workload) = (Arc::clone(&stop), Arc::clone(workload));
            let (clock, rate, core) = (*clock, p.rate, p.writer_core(t));
            let mut put = new_put(t);
            std::thread::spawn(move || {
                if let Some(core) = core {
                    pin_current_thread(core);
                }
                let looping = LoadLoop {
                    clock: &clock,
                    rate,
                    stop: &stop,
                    ops_per_stop_check: OPS_PER_STOP_CHECK,
                };
                looping.run(t * 7919, |pos| {
                    put(workload.key(pos), &workload.value);
                    Ok::<(), String>(())
                })
            })
        })
        .collect();
    run_baseline_threads(p.baseline_seconds, &stop, threads, start, note.into())
}

/// What one baseline thread returns: operations done, their latencies.
pub(crate) type BaselineThread = JoinHandle<Result<Outcome, String>>;

/// Lets a baseline's threads (started at `start`) run `seconds`, stops them,
/// and sums their results into the baseline's result, described by `note`.
pub(crate) fn run_baseline_threads(
    seconds: f64,
    stop: &AtomicBool,
    threads: Vec<BaselineThread>,
    start: Instant,
    note: String,
) -> Result<Measured, String> {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let (ops, hist) = join_all(threads, "baseline")?;
    let result = BaselineResult {
        ops_per_s: ops as f64 / start.elapsed().as_secs_f64(),
        latency_ns: Some(Latency::of(&hist)),
        note,
    };
    Ok((result, hist))
}
