//! G12: compaction frees disk space as it goes. On a small filesystem
//! nearly full of the store's own dead segments, with less free space than
//! the live set, `compact()` still finishes: it works one segment at a time,
//! oldest first, and each step frees a whole segment before the next one
//! needs room. (Rewriting the whole live set before removing anything, as
//! compaction did before, runs out of space and never finishes.)
//!
//! Needs a filesystem of a known, small size: a tmpfs mounted for the test,
//! so it runs as root (as CI does) and says so and passes vacuously
//! otherwise.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use writebehind::{Config, Error, FileOptions, WriteBehind};

/// A cache of `config` over a file store in `dir` with segments of 1 << 20 bytes.
fn open(dir: impl AsRef<std::path::Path>, config: Config) -> Result<WriteBehind, Error> {
    let file = FileOptions::for_cache(&config).segment_bytes_max(1 << 20);
    WriteBehind::open_with(dir, &file, config)
}

/// A tmpfs of `bytes`, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Self> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("fs");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); this test needs root",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Self {
            dir,
            _parent: parent,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; `st` is written by the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

fn value(key: u64, round: u64) -> Vec<u8> {
    let mut v = vec![(key % 251) as u8; 4000];
    v[..16].copy_from_slice(&(key ^ (round << 32)).to_le_bytes().repeat(2));
    v
}

#[test]
fn g12_compaction_finishes_with_less_free_space_than_the_live_set() {
    let Some(fs) = Tmpfs::mount(12 << 20) else {
        return;
    };
    let dir = fs.dir.join("store");
    let config = Config::default()
        .batch_bytes_max(256 << 10)
        .value_bytes_max(4096)
        .keys_max(1 << 14)
        .dirty_keys_max(1 << 12)
        // Compaction only when asked (the test fills the disk first).
        .compact_dead_ratio(1.0)
        .compact_segments_min(1 << 20)
        // A store that keeps failing is reported after this long.
        .close_timeout(Duration::from_secs(3));
    let (keys, overwritten) = (1_200u64, 600u64);
    let wb = open(&dir, config.clone()).unwrap();
    let mut w = wb.writer().unwrap();
    for k in 0..keys {
        w.put(&k.to_le_bytes(), &value(k, 0)).unwrap();
    }
    for round in 1..=2 {
        for k in 0..overwritten {
            w.put(&k.to_le_bytes(), &value(k, round)).unwrap();
        }
        wb.sync().unwrap();
    }
    let live = wb.stats().live_bytes;
    let free = free_bytes(&fs.dir);
    assert!(
        free < live,
        "the test needs less free space ({free}) than the live set ({live})"
    );
    wb.compact_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("compaction with {free} bytes free, {live} live: {e}"));
    w.put(b"after", b"compaction").unwrap();
    drop(w);
    wb.close().unwrap();
    let wb = open(&dir, config).unwrap();
    for k in 0..keys {
        let round = if k < overwritten { 2 } else { 0 };
        assert_eq!(
            wb.get(&k.to_le_bytes()).expect("read").as_deref(),
            Some(&value(k, round)[..]),
            "key {k}"
        );
    }
    assert_eq!(
        wb.get(b"after").expect("read").as_deref(),
        Some(&b"compaction"[..])
    );
    assert!(free_bytes(&fs.dir) > free, "compaction freed space");
}
