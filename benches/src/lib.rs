//! Named baselines for the criterion benches.
//!
//! - [`MutexChannelWb`]: the write-behind most services start with: a
//!   `Mutex<HashMap>` for reads and a bounded crossbeam channel to a flusher
//!   thread that coalesces and persists (here: drops) batches.
//!
//! The workload generator and `NullStore` live in `writebehind_tools::workload`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Baseline: a `Mutex<HashMap>` for reads plus a bounded crossbeam channel to
/// a flusher thread that coalesces into a map and "persists" (drops) it.
#[derive(Debug)]
pub struct MutexChannelWb {
    map: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
    tx: Option<crossbeam_channel::Sender<(Vec<u8>, Vec<u8>)>>,
    flusher: Option<JoinHandle<u64>>,
}

impl MutexChannelWb {
    /// A baseline cache with a channel of `capacity` updates.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<(Vec<u8>, Vec<u8>)>(capacity);
        let flusher = std::thread::spawn(move || {
            let mut dirty: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut persisted = 0u64;
            while let Ok((k, v)) = rx.recv() {
                dirty.insert(k, v);
                for (k, v) in rx.try_iter().take(4096) {
                    dirty.insert(k, v);
                }
                persisted += dirty.len() as u64;
                dirty.clear();
            }
            persisted
        });
        Self {
            map: Arc::new(Mutex::new(HashMap::new())),
            tx: Some(tx),
            flusher: Some(flusher),
        }
    }

    /// Writes `value` under `key`: map, then channel.
    pub fn put(&self, key: &[u8], value: &[u8]) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_vec(), value.to_vec());
        if let Some(tx) = &self.tx {
            // A send fails only if the flusher is gone, which `Drop` does last.
            let _ = tx.send((key.to_vec(), value.to_vec()));
        }
    }

    /// Reads `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}

impl Drop for MutexChannelWb {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(f) = self.flusher.take() {
            let _ = f.join();
        }
    }
}

/// Ring capacity in the ring benches.
pub const CAPACITY: usize = 4096;
/// Items per ring run.
pub const ITEMS: u64 = 1 << 20;

/// Pins the calling thread to `core` if it exists (both sides of every ring
/// run on their own core, so runs compare rings rather than scheduling).
pub fn pin(core: usize) {
    // Not via get_core_ids(): it lists the *calling thread's* allowed cores,
    // which a thread spawned by a pinned thread inherits.
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
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
