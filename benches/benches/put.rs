//! `put` throughput against named baselines, `get` hits, and the flusher's
//! coalesce+encode rate. Standard workload: 16-byte keys, 64-byte values,
//! 100K keys, zipf 0.99 and uniform.
//!
//! Threads: "1 writer" is the bench thread plus the design's flusher (2 busy
//! threads on this 2-core machine); "2 writers" adds a second writer thread
//! (3 busy threads on 2 cores: it measures the scheduler too, and says so).
//! The caches are store-less (`NullStore` / a flusher that coalesces and
//! drops), so the numbers compare caches; fjall writes to its own journal
//! without a per-write sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use writebehind::{Config, FaultPlan, Faulty, WriteBehind};
use writebehind_workload::{Distribution, MutexChannelWb, NullStore, Workload};

const OPS: u64 = 1 << 18;

fn config() -> Config {
    Config {
        ring_slots: 1 << 14,
        ..Config::default()
    }
}

fn bench_put(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_1_writer");
    g.throughput(Throughput::Elements(OPS));
    g.sample_size(20);
    for (name, dist) in [
        ("zipf", Distribution::Zipf(0.99)),
        ("uniform", Distribution::Uniform),
    ] {
        let workload = Workload::standard(dist);

        let wb = WriteBehind::with_store(NullStore::default(), config()).expect("open");
        let mut w = wb.writer().expect("writer");
        let mut pos = 0usize;
        g.bench_function(BenchmarkId::new("writebehind", name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters * OPS {
                    w.put(workload.key(pos), &workload.value).expect("put");
                    pos += 1;
                }
                start.elapsed()
            })
        });
        drop(w);
        wb.close().expect("close");

        let base = MutexChannelWb::new(1 << 14);
        let mut pos = 0usize;
        g.bench_function(BenchmarkId::new("mutex_hashmap_channel", name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters * OPS {
                    base.put(workload.key(pos), &workload.value);
                    pos += 1;
                }
                start.elapsed()
            })
        });
        drop(base);

        let dir = tempfile::tempdir().expect("temp dir");
        let keyspace = fjall::Config::new(dir.path()).open().expect("fjall");
        let part = keyspace
            .open_partition("bench", fjall::PartitionCreateOptions::default())
            .expect("partition");
        let mut pos = 0usize;
        g.bench_function(BenchmarkId::new("fjall_insert_no_sync", name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters * OPS {
                    part.insert(workload.key(pos), &workload.value[..])
                        .expect("insert");
                    pos += 1;
                }
                start.elapsed()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("put_2_writers_3_busy_threads_on_2_cores");
    g.throughput(Throughput::Elements(2 * OPS));
    g.sample_size(10);
    let workload = Arc::new(Workload::standard(Distribution::Zipf(0.99)));
    let wb = Arc::new(WriteBehind::with_store(NullStore::default(), config()).expect("open"));
    g.bench_function("writebehind_zipf", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let threads: Vec<_> = (0..2usize)
                .map(|t| {
                    let (wb, workload) = (Arc::clone(&wb), Arc::clone(&workload));
                    std::thread::spawn(move || {
                        let mut w = wb.writer().expect("writer");
                        for i in 0..iters * OPS {
                            w.put(workload.key(t * 7919 + i as usize), &workload.value)
                                .expect("put");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("writer");
            }
            start.elapsed()
        })
    });
    let base = Arc::new(MutexChannelWb::new(1 << 14));
    g.bench_function("mutex_hashmap_channel_zipf", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let threads: Vec<_> = (0..2usize)
                .map(|t| {
                    let (base, workload) = (Arc::clone(&base), Arc::clone(&workload));
                    std::thread::spawn(move || {
                        for i in 0..iters * OPS {
                            base.put(workload.key(t * 7919 + i as usize), &workload.value);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("writer");
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn bench_get(c: &mut Criterion) {
    let mut g = c.benchmark_group("get_hit");
    g.throughput(Throughput::Elements(OPS));
    g.sample_size(20);
    let workload = Workload::standard(Distribution::Zipf(0.99));
    let wb = WriteBehind::with_store(NullStore::default(), config()).expect("open");
    let mut w = wb.writer().expect("writer");
    for k in &workload.keys {
        w.put(k, &workload.value).expect("put");
    }
    let mut pos = 0usize;
    g.bench_function("writebehind_zipf", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters * OPS {
                std::hint::black_box(wb.get(workload.key(pos)));
                pos += 1;
            }
            start.elapsed()
        })
    });
    let base = MutexChannelWb::new(1 << 14);
    for k in &workload.keys {
        base.put(k, &workload.value);
    }
    g.bench_function("mutex_hashmap_zipf", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters * OPS {
                std::hint::black_box(base.get(workload.key(pos)));
                pos += 1;
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// The flusher alone: 100K dirty keys queued while the store is stalled,
/// then the time until `sync()` returns (drain, coalesce, encode, submit).
fn bench_flusher(c: &mut Criterion) {
    const KEYS: u64 = 100_000;
    let mut g = c.benchmark_group("flusher_encode");
    g.throughput(Throughput::Elements(KEYS));
    g.sample_size(10);
    let workload = Workload::standard(Distribution::Uniform);
    g.bench_function("100k_dirty_keys_64b_values", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let plan = FaultPlan::new();
                plan.stall_for(Duration::from_secs(3600));
                let config = Config {
                    dirty_keys_max: 1 << 18,
                    ..config()
                };
                let wb = WriteBehind::with_store(
                    Faulty::new(NullStore::default(), plan.clone()),
                    config,
                )
                .expect("open");
                let mut w = wb.writer().expect("writer");
                for k in &workload.keys {
                    w.put(k, &workload.value).expect("put");
                }
                while wb.stats().drained_ops < KEYS {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Time per record encoded after the clock starts (a few
                // batches went to the stalled store before it): scale to the
                // full backlog.
                let before = wb.stats();
                let encoded_before = before.drained_ops - before.coalesced_ops;
                let start = Instant::now();
                plan.stall_for(Duration::ZERO);
                wb.sync().expect("sync");
                let elapsed = start.elapsed();
                let after = wb.stats();
                let encoded_after = after
                    .persisted_records
                    .saturating_sub(encoded_before)
                    .max(1);
                total += elapsed.mul_f64(KEYS as f64 / encoded_after as f64);
                drop(w);
                wb.close().expect("close");
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_put, bench_get, bench_flusher);
criterion_main!(benches);
