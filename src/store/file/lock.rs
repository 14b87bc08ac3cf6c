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
    /// This open created the LOCK file: until the directory is accepted as
    /// a store ([`DirLock::keep`]), dropping the lock removes it again, so a
    /// refused directory is left as it was found.
    created: Option<PathBuf>,
}

impl DirLock {
    /// Takes the lock of `dir`, or fails with [`Error::Locked`].
    pub(crate) fn acquire(dir: &Path) -> Result<Self, Error> {
        let path: PathBuf = dir.join("LOCK");
        let open = |create_new: bool| {
            OpenOptions::new()
                .create_new(create_new)
                .read(true)
                .write(true)
                .open(&path)
        };
        let (file, created) = match open(true) {
            Ok(f) => (f, Some(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (open(false)?, None),
            Err(e) => return Err(super::io_error_at(&path, e)),
        };
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Error::Locked {
                    dir: dir.to_path_buf(),
                }
            } else {
                super::io_error_at(&path, e)
            });
        }
        Ok(Self {
            _file: file,
            created,
        })
    }

    /// The directory is a store: keep the LOCK file from now on.
    pub(crate) fn keep(&mut self) {
        self.created = None;
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Some(path) = self.created.take() {
            // Removed while still held, so no other opener can have it.
            let _ = std::fs::remove_file(path);
        }
    }
}
