//! The baseline that `wb bench` and the criterion benches measure in the
//! same run as the cache: the write-behind a service would build without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
