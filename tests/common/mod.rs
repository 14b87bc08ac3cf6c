//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use writebehind::MemStoreData;
use writebehind::{Config, Version};

/// A config small enough that rings wrap and batches are cut often.
pub fn small_config() -> Config {
    Config::default()
        .writers_max(4)
        .ring_capacity(64)
        .keys_max(1 << 16)
        .dirty_keys_max(1 << 12)
        .batch_ops_max(256)
        .batch_bytes_max(1 << 20)
        .value_bytes_max(4096)
        .flush_interval(Duration::from_millis(2))
        .retry_backoff_min(Duration::from_micros(200))
        .retry_backoff_max(Duration::from_millis(5))
        .close_timeout(Duration::from_secs(20))
}

/// The store's contents, keyed by key: (version, value or None for deleted).
pub fn store_state(
    data: &Arc<Mutex<MemStoreData>>,
) -> HashMap<Vec<u8>, (Version, Option<Vec<u8>>)> {
    data.lock().expect("store lock").records.clone()
}

/// Fails the test if the store ever received a version lower than the one it
/// held (G2 at the store).
pub fn assert_no_regressions(data: &Arc<Mutex<MemStoreData>>) {
    let d = data.lock().expect("store lock");
    assert_eq!(
        d.version_regressions, 0,
        "the flusher wrote a key backwards"
    );
}

/// Castagnoli CRC, bitwise: an independent reference for the header's
/// checksum (slow and simple; tests only).
pub fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// This process's resident set size (`VmRSS`), in bytes (0 if unreadable).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
