//! `wb bench`: the cache on a store, under a closed-loop (throughput) or
//! open-loop (latency) load, with the baselines measured in the same run.
//!
//! A run, in the order [`run`] takes it:
//!
//! - `spec`: what to run ([`Params`], [`StoreSpec`], [`Mix`]);
//! - `store`: the cache's configuration and the store behind it;
//! - `cache`: the writers (warmed up, started together), a sampler of the
//!   flusher, and the measured window;
//! - `load`: the writer loop, closed or open, that the cache and every
//!   baseline run (latency in open loop from each operation's intended
//!   start, so a stall is not hidden: no coordinated omission); times come
//!   from `Clock` (rdtsc, calibrated) and go into HDR histograms;
//! - `check`: close, reopen, and compare the store with what the cache held;
//! - `report`: the [`Report`] (`--json`), and `table` its [`Table`];
//! - `baselines`: write-through, the hand-built dashmap + rtrb
//!   write-behind, mutex+channel (and per-update SQL in
//!   `crate::pg`), and the disk's own bandwidth;
//! - `plot`: `--hgrm` and `--plot`.

mod baselines;
mod cache;
mod check;
mod load;
mod plot;
mod report;
mod spec;
mod store;
mod table;

use std::sync::Arc;

use writebehind::WriteBehind;
use writebehind_workload::Workload;

use crate::clock::Clock;

pub use plot::{write_hgrm, write_plot};
pub use report::{BaselineResult, Baselines, Latency, Ratios, Report};
pub use spec::{Mix, Params, StoreSpec};
pub use table::{describe, Table};

pub(crate) use baselines::Measured;
// What the per-update SQL baseline (crate::pg) runs with.
#[cfg(feature = "postgres")]
pub(crate) use {
    baselines::run_baseline_threads,
    load::{LoadLoop, Outcome},
    spec::{counter_key, Op},
};

/// Says on stderr what the bench is doing, when it shows progress, so no
/// phase leaves the screen blank.
pub(crate) fn phase(p: &Params, what: &str) {
    if p.progress {
        eprintln!("wb bench: {what}...");
    }
}

/// Runs the cache part of the bench and the baselines; returns the report.
pub fn run(p: &Params) -> Result<Report, String> {
    let clock = Clock::new();
    let workload = Arc::new(Workload::new(
        p.keys,
        p.key_bytes,
        p.value_bytes,
        p.dist,
        1 << 20,
        0x5EED,
    ));
    phase(p, "opening the store");
    let opened = store::open(p)?;
    let config = opened.config.clone();
    let wb = WriteBehind::with_store(opened.store, config.clone()).map_err(|e| e.to_string())?;
    let in_flight_max = wb.stats().batches_in_flight_max;
    let wb = Arc::new(wb);
    let window = cache::measure(p, &wb, &workload, &clock, opened.pg.as_ref())?;
    let expected = check::Expected::of(&wb, &workload);
    let wb = Arc::into_inner(wb).ok_or("cache still shared")?;
    phase(p, "closing the cache (draining what is not durable)");
    wb.close().map_err(|e| e.to_string())?;
    phase(
        p,
        &format!("reopening and reading back {} keys", expected.len()),
    );
    let verified = check::verify(p, opened.dir.as_deref(), &config, &expected)?;
    let end = report::CacheEnd {
        batches_in_flight_max: in_flight_max,
        verified,
        verified_keys: expected.len() as u64,
        memory_bytes: config.memory_bytes,
    };
    let mut report = Report::of_cache(p, window, end, opened.pg.as_ref());
    baselines::add(&mut report, p, opened.dir.as_deref(), &workload, &clock)?;
    Ok(report)
}
