//! The counters, gauges and histograms reach a recorder through the
//! `metrics` facade (cargo feature `metrics`), store faults included (G8:
//! health and errors are visible). A test binary of its own: the recorder
//! is the process's global one.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use writebehind::testing::{FaultPlan, Faulty};
use writebehind::{Config, MemStore, StoreErrorKind, WriteBehind};

#[test]
fn g8_metrics_reach_a_recorder_through_the_facade() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let plan = FaultPlan::new();
    let config = Config::default()
        .retry_backoff_min(Duration::from_micros(200))
        .retry_backoff_max(Duration::from_millis(2));
    let wb = WriteBehind::with_store(Faulty::new(MemStore::new(), plan.clone()), config).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..1_000u32 {
        w.put(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    wb.sync().unwrap();
    plan.fail_next(3, StoreErrorKind::Write);
    for i in 0..1_000u32 {
        w.put(format!("k{i}").as_bytes(), b"w").unwrap();
    }
    wb.sync().unwrap();
    drop(w);
    wb.close().unwrap();

    let mut counters = HashMap::new();
    let mut gauges = HashMap::new();
    let mut histograms = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        assert!(
            key.labels()
                .any(|l| l.key() == "backend" && l.value() == "mem"),
            "{} has the backend label",
            key.name()
        );
        let name = key.name().to_owned();
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(v)) => drop(counters.insert(name, v)),
            (MetricKind::Gauge, DebugValue::Gauge(v)) => drop(gauges.insert(name, v.0)),
            (MetricKind::Histogram, DebugValue::Histogram(v)) => drop(histograms.insert(name, v)),
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
    assert_eq!(counters["writebehind_updates_acknowledged_total"], 2_000);
    assert_eq!(counters["writebehind_records_persisted_total"], 2_000);
    assert!(
        counters["writebehind_store_errors_total"] >= 3,
        "{counters:?}"
    );
    assert!(
        counters["writebehind_batch_retries_total"] >= 3,
        "{counters:?}"
    );
    assert!(counters["writebehind_batches_durable_total"] >= 2);
    assert_eq!(
        gauges["writebehind_healthy"], 1.0,
        "healthy again after the retries"
    );
    assert_eq!(gauges["writebehind_dirty_keys"], 0.0);
    assert_eq!(gauges["writebehind_keys_resident"], 1_000.0);
    let batches = &histograms["writebehind_batch_seconds"];
    assert_eq!(
        batches.len() as u64,
        counters["writebehind_batches_durable_total"]
    );
    assert!(batches.iter().all(|s| s.0 >= 0.0 && s.0 < 60.0));
    // The retried batch waited at least one backoff.
    assert!(batches.iter().any(|s| s.0 >= 200e-6), "{batches:?}");
    assert_eq!(
        histograms["writebehind_durable_lag_seconds"].len(),
        batches.len()
    );
}
