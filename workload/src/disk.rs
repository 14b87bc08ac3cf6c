//! The disk's sequential write bandwidth, the ceiling a store's write rate is
//! compared with, and the scratch files the baselines write into.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

/// A new, empty file for a baseline to write into (read and write).
pub fn scratch_file(path: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The disk's sequential write bandwidth, bytes per second: `total` bytes
/// (whole MiB) as 1 MiB `pwrite` + `fdatasync`, into a file in `dir`
/// (removed after).
pub fn disk_seq_bytes_per_s(dir: &Path, total: usize) -> Result<f64, String> {
    let path = dir.join("seq.bin");
    let file = scratch_file(&path)?;
    preallocate(&file, total as u64)?;
    file.sync_all().map_err(|e| e.to_string())?;
    let buf = vec![0xA5u8; 1 << 20];
    let start = Instant::now();
    for i in 0..total >> 20 {
        file.write_all_at(&buf, (i << 20) as u64)
            .map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

/// Gives `file` `len` bytes the way the file store preallocates its
/// segments (`fallocate`, so both write into allocated, unwritten extents),
/// or by `set_len` where that is refused or not Linux.
fn preallocate(file: &File, len: u64) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    if rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len).is_ok() {
        return Ok(());
    }
    file.set_len(len).map_err(|e| e.to_string())
}
