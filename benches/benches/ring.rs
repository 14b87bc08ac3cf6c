//! Ring push+pop across two threads: ours against rtrb and crossbeam's
//! ArrayQueue, same capacity, same item type, same batch shape.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use writebehind_benches::{pin, ring_array_queue, ring_ours, ring_rtrb, ITEMS};

fn bench(c: &mut Criterion) {
    pin(0);
    let mut g = c.benchmark_group("ring_push_pop_2_threads");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(20);
    g.bench_function("writebehind", |b| {
        b.iter_custom(|n| (0..n).map(|_| ring_ours(ITEMS)).sum())
    });
    g.bench_function("rtrb", |b| {
        b.iter_custom(|n| (0..n).map(|_| ring_rtrb(ITEMS)).sum())
    });
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter_custom(|n| (0..n).map(|_| ring_array_queue(ITEMS)).sum())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
