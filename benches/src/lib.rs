//! Drivers for the ring benches (ours, rtrb, crossbeam's ArrayQueue).
//!
//! The `Mutex<HashMap>` + channel baseline, the workload generator,
//! `NullStore` and the disk's bandwidth live in `writebehind_workload`,
//! because `wb bench` measures against them in the same run too.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

// The one library internal the benches reach: the ring itself.
use writebehind::__internals::ring;
/// Pins the calling thread to a core: both sides of every ring run on their
/// own core, so runs compare rings rather than scheduling.
pub use writebehind_workload::pin_current_thread as pin;

/// Ring capacity in the ring benches.
pub const CAPACITY: usize = 4096;
/// Items per ring run.
pub const ITEMS: u64 = 1 << 20;

/// The producer side of every ring driver: values `0..items`, one push at
/// a time, spinning while the ring is full.
fn produce(items: u64, mut push: impl FnMut(u64) -> bool) {
    let mut i = 0;
    while i < items {
        if push(i) {
            i += 1;
        } else {
            std::hint::spin_loop();
        }
    }
}

/// One ring run: a consumer thread on core 1 calls `take` (which adds what
/// it took to the sum it is given and says how many) until it has `items`,
/// spinning while the ring is empty; the calling thread (which must have
/// pinned itself to core 0) pushes them with `push`. Returns the time from
/// before the consumer starts until it has them all.
fn time_run(
    items: u64,
    mut take: impl FnMut(&mut u64) -> u64 + Send + 'static,
    push: impl FnMut(u64) -> bool,
) -> Duration {
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        pin(1);
        let mut got = 0;
        let mut sum = 0u64;
        while got < items {
            let n = take(&mut sum);
            if n == 0 {
                std::hint::spin_loop();
            }
            got += n;
        }
        black_box(sum);
    });
    produce(items, push);
    consumer.join().expect("consumer");
    start.elapsed()
}

/// Ours: push one at a time, drain in batches.
pub fn ring_ours(items: u64) -> Duration {
    let (mut tx, mut rx) = ring::channel::<u64>(CAPACITY);
    let take = move |sum: &mut u64| rx.drain(CAPACITY, |v| *sum = sum.wrapping_add(v)) as u64;
    time_run(items, take, |i| tx.push(i).is_ok())
}

/// rtrb: push one at a time, read in chunks.
pub fn ring_rtrb(items: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    let take = move |sum: &mut u64| {
        let n = rx.slots();
        if n == 0 {
            return 0;
        }
        // rtrb's batch read, the fair counterpart of our drain.
        if let Ok(chunk) = rx.read_chunk(n) {
            for v in chunk {
                *sum = sum.wrapping_add(v);
            }
        }
        n as u64
    };
    time_run(items, take, |i| tx.push(i).is_ok())
}

/// crossbeam's ArrayQueue (MPMC): push and pop one at a time.
pub fn ring_array_queue(items: u64) -> Duration {
    let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
    let consumer_q = std::sync::Arc::clone(&q);
    let take = move |sum: &mut u64| match consumer_q.pop() {
        Some(v) => {
            *sum = sum.wrapping_add(v);
            1
        }
        None => 0,
    };
    time_run(items, take, |i| q.push(i).is_ok())
}
