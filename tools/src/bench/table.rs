//! The human-readable report of `wb bench` (without `--json`).

use std::fmt::{self, Display, Formatter};

use super::report::{BaselineResult, Report};
use super::spec::cores;

/// `report` as the table `wb bench` prints: a heading line, then one line a
/// figure. Displayed, it has no newline at the end.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a>(pub &'a Report);

impl Display for Table<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let r = self.0;
        heading(f, r)?;
        cache_figures(f, r)?;
        memory_figures(f, r)?;
        store_figures(f, r)?;
        baselines(f, r)
    }
}

/// Nanoseconds in the unit that suits them.
fn ns(v: u64) -> String {
    if v >= 1_000_000 {
        format!("{:.2} ms", v as f64 / 1e6)
    } else if v >= 1_000 {
        format!("{:.2} us", v as f64 / 1e3)
    } else {
        format!("{v} ns")
    }
}

/// The values a run writes: puts carry `value_bytes`, adds 8-byte counters.
fn values(r: &Report) -> String {
    let puts = format!("{}-byte values", r.value_bytes);
    match (r.mix.put > 0, r.mix.add > 0) {
        (true, true) => format!("{puts} and 8-byte counters"),
        (false, true) => "8-byte counters".into(),
        _ => puts,
    }
}

/// What ran: scenario, threads, store, keys, values, mix, duration.
fn heading(f: &mut Formatter<'_>, r: &Report) -> fmt::Result {
    f.write_str(&describe(r))
}

/// The heading's text: what ran, in one line (also the plot's subtitle).
pub fn describe(r: &Report) -> String {
    format!(
        "wb bench ({}, {}): {} writer thread(s) + 1 flusher on {} cores, store {} ({}, durability {}), {} over {} keys, {}-byte keys, {}, mix put {}% add {}% delete {}% get {}%, {:.1} s",
        r.scenario,
        r.mode,
        r.writers,
        cores(),
        r.store,
        r.backend,
        r.durability,
        r.distribution,
        r.keys,
        r.key_bytes,
        values(r),
        r.mix.put,
        r.mix.add,
        r.mix.delete,
        r.mix.get,
        r.seconds
    )
}

/// Memory: the budget, what is resident, evictions and reads through.
fn memory_figures(f: &mut Formatter<'_>, r: &Report) -> fmt::Result {
    let m = &r.memory;
    write!(
        f,
        "\n  memory                 budget {} MiB, resident {} keys ({:.1} MiB), {} evictions, {} misses, {} loads",
        m.budget_bytes >> 20,
        m.resident_keys,
        m.resident_bytes as f64 / f64::from(1u32 << 20),
        m.evictions,
        m.read_misses,
        m.loads
    )?;
    if let Some(h) = m.get_hit_ratio {
        write!(f, "\n  get hit ratio          {:>14.3}", h)?;
    }
    Ok(())
}

/// The cache's side: rates, latency, coalescing, batches, lag.
fn cache_figures(f: &mut Formatter<'_>, r: &Report) -> fmt::Result {
    if let Some(o) = r.offered_ops_per_s {
        write!(f, "\n  offered ops/s          {:>14.0}", o)?;
    }
    write!(f, "\n  acked ops/s            {:>14.0}", r.put_ops_per_s)?;
    let l = &r.put_latency_ns;
    write!(
        f,
        "\n  op latency             p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
        ns(l.p50),
        ns(l.p90),
        ns(l.p99),
        ns(l.p999),
        ns(l.p9999),
        ns(l.max)
    )?;
    write!(
        f,
        "\n  persisted records/s    {:>14.0}",
        r.persisted_records_per_s
    )?;
    write!(
        f,
        "\n  persisted MB/s         {:>14.1}",
        r.persisted_bytes_per_s / 1e6
    )?;
    write!(
        f,
        "\n  coalescing ratio       {:>14.2}  (updates drained per record written)",
        r.coalescing_ratio
    )?;
    write!(
        f,
        "\n  batches/s              {:>14.1}  (mean {:.0} records, at most {} in flight)",
        r.batches_per_s, r.mean_batch_records, r.batches_in_flight_max
    )?;
    write!(
        f,
        "\n  durable lag p99        {:>14}",
        ns(r.durable_lag_p99_ns)
    )?;
    write!(
        f,
        "\n  dirty keys, max seen   {:>14}",
        r.dirty_keys_max_seen
    )?;
    write!(f, "\n  ring-full events       {:>14}", r.ring_full_events)
}

/// Memory, the final sync, verification, the database and the disk.
fn store_figures(f: &mut Formatter<'_>, r: &Report) -> fmt::Result {
    write!(
        f,
        "\n  peak RSS               {:>11.1} MB",
        r.peak_rss_bytes as f64 / 1e6
    )?;
    write!(
        f,
        "\n  final sync             {:>14}",
        ns((r.final_sync_s * 1e9) as u64)
    )?;
    if r.verified {
        write!(f, "\n  verified               all {} keys of the workload read back identical after close + reopen", r.verified_keys)?;
    } else {
        write!(
            f,
            "\n  verified               n/a (the store does not outlive the run)"
        )?;
    }
    if let Some(db) = &r.db {
        write!(
            f,
            "\n  database               {:>14.0} rows/s in {:.1} statements/s ({:.0} rows/s applied; {} failures, {} reconnects), table {}",
            db.rows_per_s,
            db.statements_per_s,
            db.rows_applied_per_s,
            db.failures,
            db.reconnects,
            db.table
        )?;
    }
    if let Some(d) = r.disk_seq_bytes_per_s {
        write!(
            f,
            "\n  disk sequential        {:>11.0} MB/s  (1 MiB pwrite + fdatasync)",
            d / 1e6
        )?;
    }
    Ok(())
}

/// One line per baseline that ran, with the cache's ratio to it.
fn baselines(f: &mut Formatter<'_>, r: &Report) -> fmt::Result {
    let rows: [(&str, &Option<BaselineResult>, Option<f64>); 4] = [
        (
            "write-through",
            &r.baselines.write_through,
            r.ratios.vs_write_through,
        ),
        (
            "hand-built",
            &r.baselines.hand_built,
            r.ratios.vs_hand_built,
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
    ];
    for (name, b, ratio) in rows {
        let Some(b) = b else { continue };
        let lat = b.latency_ns.as_ref().map_or(String::new(), |l| {
            format!("p50 {} p99.9 {}", ns(l.p50), ns(l.p999))
        });
        let ratio = ratio.map_or_else(
            || "(no throughput ratio: open loop or not all puts)".to_string(),
            |r| format!("-> cache is {r:.1}x"),
        );
        write!(
            f,
            "\n  baseline {name:<14}{:>11.0} ops/s  {lat}  {ratio}",
            b.ops_per_s
        )?;
    }
    Ok(())
}
