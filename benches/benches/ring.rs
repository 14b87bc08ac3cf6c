//! Ring push+pop across two threads: ours against rtrb and crossbeam's
//! ArrayQueue, same capacity, same item type, same batch shape.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CAPACITY: usize = 4096;
const ITEMS: u64 = 1 << 20;

/// Pins the calling thread to `core` if it exists (both sides of every ring
/// run on their own core, so runs compare rings rather than scheduling).
fn pin(core: usize) {
    // Not via get_core_ids(): it lists the *calling thread's* allowed cores,
    // which a thread spawned by a pinned thread inherits.
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
}

fn ours(items: u64) -> Duration {
    let (mut tx, mut rx) = writebehind::ring::channel::<u64>(CAPACITY);
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        pin(1);
        let mut got = 0;
        let mut sum = 0u64;
        while got < items {
            let n = rx.drain(CAPACITY, |v| sum = sum.wrapping_add(v));
            if n == 0 {
                std::hint::spin_loop();
            }
            got += n as u64;
        }
        black_box(sum);
    });
    let mut i = 0;
    while i < items {
        if tx.push(i).is_ok() {
            i += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    consumer.join().expect("consumer");
    start.elapsed()
}

fn rtrb(items: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        pin(1);
        let mut got = 0;
        let mut sum = 0u64;
        while got < items {
            let n = rx.slots();
            if n == 0 {
                std::hint::spin_loop();
                continue;
            }
            // rtrb's batch read, the fair counterpart of our drain.
            if let Ok(chunk) = rx.read_chunk(n) {
                for v in chunk {
                    sum = sum.wrapping_add(v);
                }
            }
            got += n as u64;
        }
        black_box(sum);
    });
    let mut i = 0;
    while i < items {
        if tx.push(i).is_ok() {
            i += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    consumer.join().expect("consumer");
    start.elapsed()
}

fn array_queue(items: u64) -> Duration {
    let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
    let start = Instant::now();
    let consumer = {
        let q = std::sync::Arc::clone(&q);
        thread::spawn(move || {
            pin(1);
            let mut got = 0;
            let mut sum = 0u64;
            while got < items {
                match q.pop() {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        got += 1;
                    }
                    None => std::hint::spin_loop(),
                }
            }
            black_box(sum);
        })
    };
    let mut i = 0;
    while i < items {
        if q.push(i).is_ok() {
            i += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    consumer.join().expect("consumer");
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    pin(0);
    let mut g = c.benchmark_group("ring_push_pop_2_threads");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(20);
    g.bench_function("writebehind", |b| {
        b.iter_custom(|n| (0..n).map(|_| ours(ITEMS)).sum())
    });
    g.bench_function("rtrb", |b| {
        b.iter_custom(|n| (0..n).map(|_| rtrb(ITEMS)).sum())
    });
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter_custom(|n| (0..n).map(|_| array_queue(ITEMS)).sum())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
