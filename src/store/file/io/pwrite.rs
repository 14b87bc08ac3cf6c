//! The pwrite engine: a worker thread doing `pwrite` + `fdatasync`, one
//! chain at a time, for systems without io_uring.

use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use super::{injected, io_error, Chain, Engine};
use crate::error::{StoreError, StoreErrorKind};
use crate::store::file::format::FRAME_HEADER_BYTES;
use crate::store::file::trace;

/// Executes a chain synchronously with pwrite + fdatasync (on the worker).
pub(crate) fn run_blocking(chain: &mut Chain) {
    let mut failed = false;
    for op in chain.iter_mut() {
        if failed {
            op.result = Err(StoreError::new(
                StoreErrorKind::Write,
                "cancelled after an earlier failure in the chain",
            ));
            continue;
        }
        if op.write {
            trace::write_fd(
                op.file.as_raw_fd(),
                op.offset,
                &[&op.header, &op.batch.bytes],
            );
            let r = op.file.write_all_at(&op.header, op.offset).and_then(|()| {
                op.file
                    .write_all_at(&op.batch.bytes, op.offset + FRAME_HEADER_BYTES as u64)
            });
            if let Err(e) = r {
                op.result = Err(io_error(StoreErrorKind::Write, "pwrite", op, &e));
                failed = true;
                continue;
            }
        }
        if op.sync {
            let r = op.file.sync_data().and_then(|()| injected(op));
            match r {
                Ok(()) => trace::synced_fd(op.file.as_raw_fd(), trace::last()),
                Err(e) => {
                    op.result = Err(io_error(StoreErrorKind::Sync, "fdatasync", op, &e));
                    failed = true;
                }
            }
        }
    }
}

/// pwrite + fdatasync on a worker thread.
#[derive(Debug)]
pub(crate) struct Pwrite {
    to_worker: Option<mpsc::SyncSender<Chain>>,
    /// A chain the worker could not take (it died), failed, to return.
    orphan: Option<Chain>,
    from_worker: mpsc::Receiver<Chain>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Pwrite {
    pub(crate) fn new() -> std::io::Result<Self> {
        let (to_worker, rx) = mpsc::sync_channel::<Chain>(1);
        let (tx, from_worker) = mpsc::sync_channel::<Chain>(1);
        let worker = std::thread::Builder::new()
            .name("wb-pwrite".into())
            .spawn(move || {
                for mut chain in rx {
                    run_blocking(&mut chain);
                    if tx.send(chain).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            to_worker: Some(to_worker),
            orphan: None,
            from_worker,
            worker: Some(worker),
        })
    }
}

impl Engine for Pwrite {
    fn name(&self) -> &'static str {
        "pwrite"
    }

    fn submit(&mut self, chain: Chain) {
        let sent = match &self.to_worker {
            Some(tx) => tx.send(chain).map_err(|mpsc::SendError(c)| c),
            None => Err(chain),
        };
        if let Err(mut chain) = sent {
            // The worker died (a panic): fail the chain and hand it back from
            // `wait`, so its batches are retried rather than lost.
            for op in chain.iter_mut() {
                op.result = Err(StoreError::new(
                    StoreErrorKind::Other,
                    "the pwrite worker thread is gone",
                ));
            }
            self.orphan = Some(chain);
        }
    }

    fn wait(&mut self, timeout: Duration) -> Option<Chain> {
        if let Some(chain) = self.orphan.take() {
            return Some(chain);
        }
        if timeout.is_zero() {
            self.from_worker.try_recv().ok()
        } else {
            self.from_worker.recv_timeout(timeout).ok()
        }
    }
}

impl Drop for Pwrite {
    fn drop(&mut self) {
        self.to_worker = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
