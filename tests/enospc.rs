//! A real ENOSPC: the store on a small tmpfs that fills up (G6, G8).
//! Needs root (to mount tmpfs); without it the test says so and skips.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use writebehind::{Backpressure, Config, Error, FileOptions, StoreErrorKind, WriteBehind};

/// A cache of `config` over a file store in `dir` with segments of 256 << 10 bytes.
fn open(dir: impl AsRef<std::path::Path>, config: Config) -> Result<WriteBehind, Error> {
    let file = FileOptions::for_cache(&config).segment_bytes_max(256 << 10);
    WriteBehind::open_with(dir, &file, config)
}

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn remount(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_filesystem_is_reported_bounded_and_recovered_from() {
    let mnt = tempfile::tempdir().unwrap();
    if !mount_tmpfs(mnt.path(), "2m") {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    }
    let _unmount = Unmount(mnt.path());
    let dir = mnt.path().join("store");
    let config = Config::default()
        .compact_segments_min(1_000)
        .backpressure(Backpressure::Fail)
        .ring_capacity(1 << 10)
        .dirty_keys_max(1 << 12)
        .retry_backoff_max(Duration::from_millis(20));
    let wb = open(&dir, config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    let value = vec![7u8; 200];
    let mut acked = Vec::new();
    let mut refused = 0u64;
    // Write until the disk is full and the bounds push back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let key = format!("key-{i:08}");
        match w.put(key.as_bytes(), &value) {
            Ok(v) => acked.push((key, v)),
            Err(Error::Full) => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
        i += 1;
        let stats = wb.stats();
        if refused > 100 && !stats.healthy {
            break;
        }
    }
    let stats = wb.stats();
    assert!(
        !stats.healthy,
        "the store must report the full disk: {stats:?}"
    );
    assert_eq!(
        stats.last_store_error.as_ref().map(|e| e.kind),
        Some(StoreErrorKind::NoSpace),
        "{stats:?}"
    );
    assert!(refused > 0, "writers must see backpressure at the bounds");
    assert!(stats.dirty_keys <= 1 << 12);
    // Space returns: everything acknowledged becomes durable.
    assert!(remount(mnt.path(), "64m"));
    wb.sync_timeout(Duration::from_secs(30)).unwrap();
    assert!(wb.stats().healthy);
    drop(w);
    wb.close().unwrap();
    let wb = open(&dir, config).unwrap();
    for (key, version) in &acked {
        let v = wb
            .get(key.as_bytes())
            .expect("read")
            .unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(v.version(), *version);
    }
    eprintln!(
        "{} puts acknowledged, {} refused while the disk was full; all recovered",
        acked.len(),
        refused
    );
}
