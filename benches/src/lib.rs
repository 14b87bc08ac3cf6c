//! Drivers for the ring benches (ours, rtrb, crossbeam's ArrayQueue).
//!
//! The `Mutex<HashMap>` + channel baseline, the workload generator,
//! `NullStore` and the disk's bandwidth live in `writebehind_workload`,
//! because `wb bench` measures against them in the same run too.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

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

/// Ours: push one at a time, drain in batches. Producer on core 0 (the
/// caller must pin itself), consumer on core 1.
pub fn ring_ours(items: u64) -> Duration {
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
    produce(items, |i| tx.push(i).is_ok());
    consumer.join().expect("consumer");
    start.elapsed()
}

/// rtrb: push one at a time, read in chunks.
pub fn ring_rtrb(items: u64) -> Duration {
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
    produce(items, |i| tx.push(i).is_ok());
    consumer.join().expect("consumer");
    start.elapsed()
}

/// crossbeam's ArrayQueue (MPMC): push and pop one at a time.
pub fn ring_array_queue(items: u64) -> Duration {
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
    produce(items, |i| q.push(i).is_ok());
    consumer.join().expect("consumer");
    start.elapsed()
}
