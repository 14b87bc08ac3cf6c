//! The store directory's lock: `DIR/LOCK`, held with `flock(LOCK_EX |
//! LOCK_NB)` for as long as a `FileStore` is open. flock locks belong to the
//! open file description, so a second open of the same directory fails
//! whether it comes from another process or from this one.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, or fails with [`Error::Locked`].
    pub(crate) fn acquire(dir: &Path) -> Result<Self, Error> {
        let path: PathBuf = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Error::Locked {
                    dir: dir.to_path_buf(),
                }
            } else {
                Error::Io(e)
            });
        }
        Ok(Self { _file: file })
    }
}
