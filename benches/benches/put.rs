//! `put` throughput, one writer thread (the bench thread) plus each design's
//! flusher thread: 2 busy threads on this 2-core machine. Standard workload:
//! 16-byte keys, 64-byte values, 100K keys, zipf 0.99 and uniform.
//!
//! Both sides are store-less write-behinds ([`NullStore`] vs a flusher that
//! coalesces and drops), so the numbers compare the caches, not a store.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use writebehind::{Config, WriteBehind};
use writebehind_benches::MutexChannelWb;
use writebehind_tools::workload::{Distribution, NullStore, Workload};

const OPS: u64 = 1 << 18;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_1_writer");
    g.throughput(Throughput::Elements(OPS));
    g.sample_size(20);
    for (name, dist) in [
        ("zipf", Distribution::Zipf(0.99)),
        ("uniform", Distribution::Uniform),
    ] {
        let workload = Workload::standard(dist);

        let config = Config {
            ring_slots: 1 << 14,
            ..Config::default()
        };
        let wb = WriteBehind::with_store(NullStore::default(), config).expect("open");
        let mut w = wb.writer().expect("writer");
        let mut pos = 0usize;
        g.bench_function(BenchmarkId::new("writebehind", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        w.put(workload.key(pos), &workload.value).expect("put");
                        pos += 1;
                    }
                    total += start.elapsed();
                }
                total
            })
        });
        drop(w);
        wb.close().expect("close");

        let base = MutexChannelWb::new(1 << 14);
        let mut pos = 0usize;
        g.bench_function(BenchmarkId::new("mutex_hashmap_channel", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        base.put(workload.key(pos), &workload.value);
                        pos += 1;
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
