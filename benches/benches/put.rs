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

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use writebehind::testing::{FaultPlan, Faulty};
use writebehind::{Config, WriteBehind};
use writebehind_workload::{
    drain_backlog, Distribution, HandBuiltWb, MutexChannelWb, NullStore, Workload,
};

const OPS: u64 = 1 << 18;

fn config() -> Config {
    Config::default().ring_capacity(1 << 14)
}

/// Times `iters * OPS` calls of `op`, on the trace positions that follow
/// `pos` (which it advances, so the next call goes on where this one ended).
fn time_ops(iters: u64, pos: &mut usize, mut op: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    for _ in 0..iters * OPS {
        op(*pos);
        *pos += 1;
    }
    start.elapsed()
}

/// Times two writer threads doing `iters * OPS` operations each, from their
/// own places in the trace: each thread makes its writer with `new_writer`,
/// then calls it with each trace position. Spawning and joining count.
fn time_two_writers<W: FnMut(usize)>(iters: u64, new_writer: impl Fn() -> W + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2usize {
            let new_writer = &new_writer;
            s.spawn(move || {
                let mut put = new_writer();
                for i in 0..iters * OPS {
                    put(t * 7919 + i as usize);
                }
            });
        }
    });
    start.elapsed()
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
        put_one_writer(&mut g, name, &workload);
    }
    g.finish();

    let mut g = c.benchmark_group("put_2_writers_3_busy_threads_on_2_cores");
    g.throughput(Throughput::Elements(2 * OPS));
    g.sample_size(10);
    let workload = Workload::standard(Distribution::Zipf(0.99));
    let wb = WriteBehind::with_store(NullStore::default(), config()).expect("open");
    g.bench_function("writebehind_zipf", |b| {
        b.iter_custom(|iters| {
            time_two_writers(iters, || {
                let mut w = wb.writer().expect("writer");
                let workload = &workload;
                move |pos| {
                    w.put(workload.key(pos), &workload.value).expect("put");
                }
            })
        })
    });
    // The shared entry: no writer of one's own, a mutex per update.
    g.bench_function("writebehind_shared_entry_zipf", |b| {
        b.iter_custom(|iters| {
            time_two_writers(iters, || {
                let (wb, workload) = (&wb, &workload);
                move |pos| {
                    wb.put(workload.key(pos), &workload.value).expect("put");
                }
            })
        })
    });
    drop(wb);
    let hand = HandBuiltWb::new(1 << 14);
    g.bench_function("hand_built_dashmap_rtrb_zipf", |b| {
        b.iter_custom(|iters| {
            time_two_writers(iters, || {
                let mut w = hand.writer();
                let workload = &workload;
                move |pos| {
                    w.put(workload.key(pos), &workload.value);
                }
            })
        })
    });
    drop(hand);
    let base = MutexChannelWb::new(1 << 14);
    g.bench_function("mutex_hashmap_channel_zipf", |b| {
        b.iter_custom(|iters| {
            time_two_writers(iters, || |pos| base.put(workload.key(pos), &workload.value))
        })
    });
    g.finish();
}

/// One writer's puts of `workload` (distribution `name`): the cache, the
/// hand-built dashmap + rtrb write-behind, the mutex+channel one, and fjall
/// without a sync per write.
fn put_one_writer(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, workload: &Workload) {
    let wb = WriteBehind::with_store(NullStore::default(), config()).expect("open");
    let mut w = wb.writer().expect("writer");
    let mut pos = 0usize;
    g.bench_function(BenchmarkId::new("writebehind", name), |b| {
        b.iter_custom(|iters| {
            time_ops(iters, &mut pos, |pos| {
                w.put(workload.key(pos), &workload.value).expect("put");
            })
        })
    });
    drop(w);
    let mut pos = 0usize;
    g.bench_function(BenchmarkId::new("writebehind_shared_entry", name), |b| {
        b.iter_custom(|iters| {
            time_ops(iters, &mut pos, |pos| {
                wb.put(workload.key(pos), &workload.value).expect("put");
            })
        })
    });
    wb.close().expect("close");

    let hand = HandBuiltWb::new(1 << 14);
    let mut w = hand.writer();
    let mut pos = 0usize;
    g.bench_function(BenchmarkId::new("hand_built_dashmap_rtrb", name), |b| {
        b.iter_custom(|iters| {
            time_ops(iters, &mut pos, |pos| {
                w.put(workload.key(pos), &workload.value);
            })
        })
    });
    drop(w);
    drop(hand);

    let base = MutexChannelWb::new(1 << 14);
    let mut pos = 0usize;
    g.bench_function(BenchmarkId::new("mutex_hashmap_channel", name), |b| {
        b.iter_custom(|iters| {
            time_ops(iters, &mut pos, |pos| {
                base.put(workload.key(pos), &workload.value)
            })
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
            time_ops(iters, &mut pos, |pos| {
                part.insert(workload.key(pos), &workload.value[..])
                    .expect("insert");
            })
        })
    });
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
            time_ops(iters, &mut pos, |pos| {
                std::hint::black_box(wb.get_resident(workload.key(pos)));
            })
        })
    });
    // The same over a store that reads keys back (entries evictable, so a
    // hit sets the entry's use mark): what read-through's bookkeeping
    // costs a hit.
    let evictable = WriteBehind::with_store(writebehind::MemStore::new(), config()).expect("open");
    let mut w2 = evictable.writer().expect("writer");
    for k in &workload.keys {
        w2.put(k, &workload.value).expect("put");
    }
    g.bench_function("writebehind_evictable_zipf", |b| {
        b.iter_custom(|iters| {
            time_ops(iters, &mut pos, |pos| {
                std::hint::black_box(evictable.get(workload.key(pos)).ok());
            })
        })
    });
    let hand = HandBuiltWb::new(1 << 14);
    let mut w3 = hand.writer();
    for k in &workload.keys {
        w3.put(k, &workload.value);
    }
    let mut out = Vec::with_capacity(workload.value.len());
    g.bench_function("hand_built_dashmap_zipf", |b| {
        b.iter_custom(|iters| {
            time_ops(iters, &mut pos, |pos| {
                std::hint::black_box(hand.get_into(workload.key(pos), &mut out));
            })
        })
    });
    let base = MutexChannelWb::new(1 << 14);
    for k in &workload.keys {
        base.put(k, &workload.value);
    }
    g.bench_function("mutex_hashmap_zipf", |b| {
        b.iter_custom(|iters| {
            time_ops(iters, &mut pos, |pos| {
                std::hint::black_box(base.get(workload.key(pos)));
            })
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
                let config = config().dirty_keys_max(1 << 18);
                let wb = WriteBehind::with_store(
                    Faulty::new(NullStore::default(), plan.clone()),
                    config,
                )
                .expect("open");
                let mut w = wb.writer().expect("writer");
                for k in &workload.keys {
                    w.put(k, &workload.value).expect("put");
                }
                // Time per record encoded after the clock starts (a few
                // batches went to the stalled store before it): scale to the
                // full backlog.
                let drain = drain_backlog(&wb, &plan, KEYS).expect("sync");
                let encoded_after = drain.records.max(1);
                total += drain.elapsed.mul_f64(KEYS as f64 / encoded_after as f64);
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
