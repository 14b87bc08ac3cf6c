//! The file store's write bandwidth against the disk's, in one run.
//!
//! - baseline: sequential 1 MiB `pwrite` + `fdatasync`, 256 MiB, into a file
//!   preallocated with `fallocate` (as segments are) on the same filesystem;
//! - the cache on the file store, `Durability::Batch` (fdatasync per batch),
//!   one writer cycling through 1M keys as fast as it can for 3 s (a key
//!   comes back only after a million others, so nothing coalesces and every
//!   put is a record), io_uring and pwrite backends, 64-byte values (the
//!   standard workload) and 1 KiB values. The keys are written once before
//!   the clock starts, so the index's pages are mapped already.
//!
//! Rounds are interleaved (baseline, then each configuration) and the
//! medians reported, because this VM's disk speed drifts. Run:
//! `cargo bench -p writebehind-benches --bench file_store`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use writebehind::{Config, FileOptions, FileStore, IoBackend, WriteBehind};
use writebehind_workload::drain_backlog;

const MIB: usize = 1 << 20;
/// Keys the writer cycles through.
const KEYS: u64 = 1 << 20;

fn disk_seq_bytes_per_s(dir: &std::path::Path) -> f64 {
    writebehind_workload::disk_seq_bytes_per_s(dir, 256 * MIB).expect("disk baseline")
}

struct StoreRun {
    records_per_s: f64,
    bytes_per_s: f64,
    mean_batch: f64,
}

fn store_run(dir: &std::path::Path, backend: IoBackend, value_bytes: usize) -> StoreRun {
    let path = dir.join(format!("store-{backend:?}-{value_bytes}"));
    std::fs::remove_dir_all(&path).ok();
    let config = Config::default()
        .keys_max(KEYS as usize)
        .dirty_keys_max(1 << 18)
        .value_bytes_max(value_bytes.max(64))
        // No compaction during the measurement: it would write twice.
        .compact_segments_min(1 << 20);
    let options = FileOptions::for_cache(&config).io_backend(backend);
    let store = FileStore::open(&path, &options).expect("open");
    let wb = Arc::new(WriteBehind::with_store(store, config).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (wb, stop) = (Arc::clone(&wb), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut w = wb.writer().expect("writer");
            let value = vec![7u8; value_bytes];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                w.put(&(i % KEYS).to_be_bytes(), &value).expect("put");
                i += 1;
            }
        })
    };
    // Warm-up: every key written once, then measure what the store
    // persists in 3 s.
    while wb.stats().keys < KEYS as usize {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s0 = wb.stats();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let s1 = wb.stats();
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    let wb = Arc::into_inner(wb).expect("sole owner");
    wb.close().expect("close");
    std::fs::remove_dir_all(&path).ok();
    let records = (s1.persisted_records - s0.persisted_records) as f64;
    StoreRun {
        records_per_s: records / secs,
        bytes_per_s: (s1.persisted_bytes - s0.persisted_bytes) as f64 / secs,
        mean_batch: records / (s1.batches - s0.batches).max(1) as f64,
    }
}

/// The flusher and store alone: `n` dirty keys are queued while the store
/// is stalled (its first completions held back, so the in-flight bound stops
/// the flusher), then the stall is lifted and the time until `sync()`
/// returns is the time to encode, write and fdatasync the backlog, with the
/// writer idle. Returns (records/s, bytes/s).
fn backlog_drain(
    dir: &std::path::Path,
    backend: IoBackend,
    value_bytes: usize,
    n: u64,
) -> (f64, f64) {
    use writebehind::testing::{FaultPlan, Faulty};
    let path = dir.join(format!("drain-{backend:?}-{value_bytes}"));
    std::fs::remove_dir_all(&path).ok();
    let config = Config::default()
        .keys_max(n as usize)
        .dirty_keys_max(n as usize)
        .value_bytes_max(value_bytes.max(64))
        .compact_segments_min(1 << 20);
    let plan = FaultPlan::new();
    plan.stall_for(Duration::from_secs(3600));
    let options = FileOptions::for_cache(&config).io_backend(backend);
    let store = FileStore::open(&path, &options).expect("open");
    let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config).expect("cache");
    let mut w = wb.writer().expect("writer");
    let value = vec![7u8; value_bytes];
    for i in 0..n {
        w.put(&i.to_be_bytes(), &value).expect("put");
    }
    // Only what is encoded after the clock starts counts.
    let drain = drain_backlog(&wb, &plan, n).expect("sync");
    let (secs, after) = (drain.elapsed.as_secs_f64(), &drain.after);
    drop(w);
    wb.close().expect("close");
    std::fs::remove_dir_all(&path).ok();
    let records = drain.records as f64;
    let bytes_per_record = after.persisted_bytes as f64 / after.persisted_records.max(1) as f64;
    (records / secs, records * bytes_per_record / secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("wb-file-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    let rounds = 3;
    let configs = [
        (IoBackend::IoUring, 64),
        (IoBackend::Pwrite, 64),
        (IoBackend::IoUring, 1024),
        (IoBackend::Pwrite, 1024),
    ];
    let mut disk = Vec::new();
    let mut runs: Vec<Vec<StoreRun>> = configs.iter().map(|_| Vec::new()).collect();
    let mut drains: Vec<Vec<(f64, f64)>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        disk.push(disk_seq_bytes_per_s(dir.path()));
        for (i, &(backend, value)) in configs.iter().enumerate() {
            runs[i].push(store_run(dir.path(), backend, value));
            let n = if value >= 1024 { 200_000 } else { 1_000_000 };
            drains[i].push(backlog_drain(dir.path(), backend, value, n));
        }
    }
    let disk_mb = median(disk.clone()) / 1e6;
    println!("file store vs disk, 1 writer + flusher, Durability::Batch (fdatasync per batch), {rounds} interleaved rounds, medians");
    println!(
        "  disk: sequential 1 MiB pwrite + fdatasync   {disk_mb:8.0} MB/s   (rounds: {:?})",
        disk.iter().map(|d| (d / 1e6) as u64).collect::<Vec<_>>()
    );
    for (i, &(backend, value)) in configs.iter().enumerate() {
        let rec = median(runs[i].iter().map(|r| r.records_per_s).collect());
        let mb = median(runs[i].iter().map(|r| r.bytes_per_s).collect()) / 1e6;
        let batch = median(runs[i].iter().map(|r| r.mean_batch).collect());
        println!(
            "  {:<9} {:>5}-byte values: {:>10.0} records/s {:>8.0} MB/s  = {:>5.1}% of disk   (mean batch {:.0} records)",
            format!("{backend:?}"),
            value,
            rec,
            mb,
            100.0 * mb / disk_mb,
            batch
        );
    }
    println!("  flusher + store alone (a stalled store's backlog of 1M / 200K dirty keys drained by sync(), writer idle):");
    for (i, &(backend, value)) in configs.iter().enumerate() {
        let rec = median(drains[i].iter().map(|r| r.0).collect());
        let mb = median(drains[i].iter().map(|r| r.1).collect()) / 1e6;
        println!(
            "  {:<9} {:>5}-byte values: {:>10.0} records/s {:>8.0} MB/s  = {:>5.1}% of disk",
            format!("{backend:?}"),
            value,
            rec,
            mb,
            100.0 * mb / disk_mb
        );
    }
}
