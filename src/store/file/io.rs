//! The two I/O engines of the file store. Both execute a *chain* of frame
//! writes strictly in order (each optionally followed by an fdatasync), one
//! chain at a time, and hand the chain back with a result per frame:
//!
//! - `Uring`: one io_uring submission per chain, every write linked
//!   (`IOSQE_IO_LINK`) to the fdatasync after it and that to the next write,
//!   so the kernel runs them in order while the flusher keeps working; a
//!   failure cancels the rest of the chain (`ECANCELED`).
//! - `Pwrite`: a worker thread doing `pwrite` + `fdatasync`, for systems
//!   without io_uring or where setup is refused (seccomp, old kernels).
//!
//! Ordering is what recovery relies on: a frame is written only after the
//! previous frame (and its sync, if any) completed, so only the last frame of
//! a segment can be torn by a crash.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::format::FRAME_HEADER_BYTES;
use super::trace;
use crate::config::IoBackend;
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::store::Batch;

/// One frame to write (or, with `write == false`, only a sync point).
#[derive(Debug)]
pub(crate) struct FrameOp {
    pub file: Arc<File>,
    pub offset: u64,
    /// Write `header` + `batch.bytes` at `offset`.
    pub write: bool,
    pub header: [u8; FRAME_HEADER_BYTES],
    pub batch: Batch,
    /// fdatasync after the write.
    pub sync: bool,
    /// Fault injection: report the fdatasync as failed after running it.
    pub fail_sync: bool,
    /// The store's own op (a commit marker, an fdatasync of held batches):
    /// no batch of the flusher's completes with it.
    pub internal: bool,
    /// Filled in by the engine.
    pub result: Result<(), StoreError>,
    /// The I/O trace's index of this op's write: what its fdatasync covers
    /// (see `trace`; 0 when not recording).
    trace_through: usize,
    /// iovecs for io_uring (stable: the op is boxed while in flight).
    #[cfg(target_os = "linux")]
    iov: [libc::iovec; 2],
}

// SAFETY: the raw pointers in `iov` point into this op's own `header` and
// `batch.bytes`, which move with it (the op is boxed, the Vec's heap buffer
// does not move); they are only used by the engine while it owns the op.
unsafe impl Send for FrameOp {}

impl FrameOp {
    /// A batch's frame at `offset`: `header` and the batch's records
    /// (nothing is written for an empty batch, a sync point), then an
    /// fdatasync if `sync`.
    pub(crate) fn frame(
        file: Arc<File>,
        offset: u64,
        header: [u8; FRAME_HEADER_BYTES],
        batch: Batch,
        sync: bool,
    ) -> Box<Self> {
        let write = writes(&batch);
        Self::new(file, offset, write, header, batch, sync)
    }

    /// The store's own commit marker: `header` alone, no fdatasync.
    pub(crate) fn commit_marker(
        file: Arc<File>,
        offset: u64,
        header: [u8; FRAME_HEADER_BYTES],
    ) -> Box<Self> {
        let mut op = Self::new(file, offset, true, header, Batch::default(), false);
        op.internal = true;
        op
    }

    /// The store's own fdatasync of frames already written.
    pub(crate) fn sync_only(file: Arc<File>, offset: u64) -> Box<Self> {
        let header = [0; FRAME_HEADER_BYTES];
        let mut op = Self::new(file, offset, false, header, Batch::default(), true);
        op.internal = true;
        op
    }

    fn new(
        file: Arc<File>,
        offset: u64,
        write: bool,
        header: [u8; FRAME_HEADER_BYTES],
        batch: Batch,
        sync: bool,
    ) -> Box<Self> {
        Box::new(Self {
            file,
            offset,
            write,
            header,
            batch,
            sync,
            fail_sync: false,
            internal: false,
            result: Ok(()),
            trace_through: 0,
            #[cfg(target_os = "linux")]
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 2],
        })
    }

    /// Bytes this op writes.
    pub(crate) fn write_len(&self) -> u64 {
        if self.write {
            (FRAME_HEADER_BYTES + self.batch.bytes.len()) as u64
        } else {
            0
        }
    }
}

pub(crate) type Chain = Vec<Box<FrameOp>>;

/// True if `batch`'s frame writes anything (an empty batch is a sync point
/// only).
pub(crate) fn writes(batch: &Batch) -> bool {
    batch.records > 0 || !batch.bytes.is_empty()
}

fn io_error(kind: StoreErrorKind, what: &str, op: &FrameOp, e: &std::io::Error) -> StoreError {
    let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
        StoreErrorKind::NoSpace
    } else {
        kind
    };
    StoreError::new(
        kind,
        format!(
            "{what} at offset {} ({} bytes): {e}",
            op.offset,
            op.write_len()
        ),
    )
}

/// The injected fdatasync failure of `op`, if any (EIO, as a disk reports it).
fn injected(op: &FrameOp) -> std::io::Result<()> {
    if op.fail_sync {
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    } else {
        Ok(())
    }
}

/// Most frames submitted to the engine as one chain (sizes the io_uring
/// queue); a longer queue is written in several chains, one after another.
/// The cache keeps `Config::batches_in_flight_max` batches in flight, 4 by
/// default, so a chain is rarely longer than that.
pub(super) const CHAIN_FRAMES_MAX: usize = 64;

/// The engine `backend` asks for.
pub(super) fn new_engine(backend: IoBackend) -> Result<Box<dyn Engine>, Error> {
    let chain_max = CHAIN_FRAMES_MAX;
    let engine: Box<dyn Engine> = match backend {
        IoBackend::Pwrite => Box::new(Pwrite::new()?),
        #[cfg(target_os = "linux")]
        IoBackend::IoUring => Box::new(Uring::new(chain_max)?),
        #[cfg(target_os = "linux")]
        IoBackend::Auto => match Uring::new(chain_max) {
            Ok(u) => Box::new(u),
            Err(e) => {
                tracing::info!("io_uring unavailable ({e}); using pwrite");
                Box::new(Pwrite::new()?)
            }
        },
        #[cfg(not(target_os = "linux"))]
        IoBackend::IoUring => {
            return Err(Error::Config("io_uring is only available on Linux".into()))
        }
        #[cfg(not(target_os = "linux"))]
        IoBackend::Auto => Box::new(Pwrite::new()?),
    };
    Ok(engine)
}

/// Runs chains.
pub(crate) trait Engine: Send + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Starts a chain. Only called when no chain is in flight.
    fn submit(&mut self, chain: Chain);
    /// Waits up to `timeout` for the chain in flight; returns it when done.
    fn wait(&mut self, timeout: Duration) -> Option<Chain>;
}

/// Executes a chain synchronously with pwrite + fdatasync (on the worker).
pub(super) fn run_blocking(chain: &mut Chain) {
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

#[cfg(target_os = "linux")]
pub(crate) use uring::Uring;

#[cfg(target_os = "linux")]
mod uring {
    use super::*;
    use io_uring::{opcode, squeue, types, IoUring};

    /// io_uring with one chain in flight.
    pub(crate) struct Uring {
        ring: IoUring,
        chain: Option<Chain>,
        /// SQEs of the chain not yet completed.
        pending: usize,
        ext_arg: bool,
    }

    impl std::fmt::Debug for Uring {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Uring")
                .field("pending", &self.pending)
                .finish()
        }
    }

    /// user_data: op index * 2 + (1 for the fsync).
    fn tag(i: usize, fsync: bool) -> u64 {
        (i as u64) << 1 | u64::from(fsync)
    }

    impl Uring {
        /// Sets up a ring with room for `ops` frames (two SQEs each).
        pub(crate) fn new(ops: usize) -> std::io::Result<Self> {
            // Two SQEs per frame (write, fdatasync), and one for a commit
            // marker at the head of a chain.
            let entries = (ops * 2 + 1).next_power_of_two().max(8) as u32;
            let ring = IoUring::new(entries)?;
            let ext_arg = ring.params().is_feature_ext_arg();
            Ok(Self {
                ring,
                chain: None,
                pending: 0,
                ext_arg,
            })
        }

        fn collect(&mut self) {
            let Some(chain) = self.chain.as_mut() else {
                return;
            };
            for cqe in self.ring.completion() {
                let ud = cqe.user_data();
                let (i, fsync) = ((ud >> 1) as usize, ud & 1 == 1);
                self.pending = self.pending.saturating_sub(1);
                let Some(op) = chain.get_mut(i) else { continue };
                let res = cqe.result();
                if op.result.is_err() {
                    continue; // keep the first error of this op
                }
                if res < 0 {
                    let e = std::io::Error::from_raw_os_error(-res);
                    let (kind, what) = if fsync {
                        (StoreErrorKind::Sync, "fdatasync")
                    } else {
                        (StoreErrorKind::Write, "write")
                    };
                    let mut err = io_error(kind, what, op, &e);
                    if -res == libc::ECANCELED {
                        err = StoreError::new(
                            StoreErrorKind::Write,
                            format!("{what} cancelled after an earlier failure in the chain"),
                        );
                    }
                    op.result = Err(err);
                } else if fsync && op.fail_sync {
                    let e = std::io::Error::from_raw_os_error(libc::EIO);
                    op.result = Err(io_error(
                        StoreErrorKind::Sync,
                        "fdatasync (injected)",
                        op,
                        &e,
                    ));
                } else if fsync {
                    trace::synced_fd(op.file.as_raw_fd(), op.trace_through);
                } else if res as u64 != op.write_len() {
                    op.result = Err(StoreError::new(
                        StoreErrorKind::Write,
                        format!(
                            "short write at offset {}: {res} of {} bytes",
                            op.offset,
                            op.write_len()
                        ),
                    ));
                }
            }
        }
    }

    impl Engine for Uring {
        fn name(&self) -> &'static str {
            "io_uring"
        }

        fn submit(&mut self, mut chain: Chain) {
            debug_assert!(self.chain.is_none(), "one chain at a time");
            let mut entries = Vec::with_capacity(chain.len() * 2);
            for (i, op) in chain.iter_mut().enumerate() {
                let fd = types::Fd(op.file.as_raw_fd());
                if op.write {
                    trace::write_fd(
                        op.file.as_raw_fd(),
                        op.offset,
                        &[&op.header, &op.batch.bytes],
                    );
                    op.iov = [
                        libc::iovec {
                            iov_base: op.header.as_mut_ptr().cast(),
                            iov_len: op.header.len(),
                        },
                        libc::iovec {
                            iov_base: op.batch.bytes.as_mut_ptr().cast(),
                            iov_len: op.batch.bytes.len(),
                        },
                    ];
                    entries.push(
                        opcode::Writev::new(fd, op.iov.as_ptr(), 2)
                            .offset(op.offset)
                            .build()
                            .user_data(tag(i, false)),
                    );
                }
                if op.sync {
                    op.trace_through = trace::last();
                    entries.push(
                        opcode::Fsync::new(fd)
                            .flags(types::FsyncFlags::DATASYNC)
                            .build()
                            .user_data(tag(i, true)),
                    );
                }
            }
            let n = entries.len();
            for (j, e) in entries.iter_mut().enumerate() {
                if j + 1 < n {
                    *e = e.clone().flags(squeue::Flags::IO_LINK);
                }
            }
            let mut pushed = 0;
            {
                let mut sq = self.ring.submission();
                for e in &entries {
                    // SAFETY: every buffer an entry points to (the op's header,
                    // its batch bytes, its iovec array) lives in a boxed op
                    // that this engine keeps in `self.chain` until all of the
                    // chain's completions have been reaped.
                    if unsafe { sq.push(e) }.is_err() {
                        break;
                    }
                    pushed += 1;
                }
            }
            self.pending = pushed;
            if pushed < n {
                // The ring was sized for the chain; this is a bug, but fail
                // the ops rather than lose them.
                for op in chain.iter_mut() {
                    op.result = Err(StoreError::new(
                        StoreErrorKind::Other,
                        "io_uring submission queue full",
                    ));
                }
            }
            self.chain = Some(chain);
            if let Err(e) = self.ring.submit() {
                tracing::warn!("io_uring submit: {e}");
            }
        }

        fn wait(&mut self, timeout: Duration) -> Option<Chain> {
            self.chain.as_ref()?;
            self.collect();
            if self.pending > 0 && !timeout.is_zero() {
                let r = if self.ext_arg {
                    let ts = types::Timespec::new()
                        .sec(timeout.as_secs())
                        .nsec(timeout.subsec_nanos());
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                } else {
                    std::thread::sleep(timeout.min(Duration::from_micros(50)));
                    self.ring.submit()
                };
                match r {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                        ) => {}
                    Err(e) => tracing::warn!("io_uring wait: {e}"),
                }
                self.collect();
            }
            if self.pending == 0 {
                self.chain.take()
            } else {
                None
            }
        }
    }

    impl Drop for Uring {
        fn drop(&mut self) {
            // The kernel may still write into our buffers: wait for the
            // chain to finish before they are freed.
            let mut spins = 0;
            while self.chain.is_some() && self.pending > 0 && spins < 10_000 {
                let _ = self.ring.submit_and_wait(1);
                self.collect();
                spins += 1;
            }
            if self.pending > 0 {
                // Still not done: leak the buffers rather than free memory
                // the kernel may yet read.
                if let Some(chain) = self.chain.take() {
                    std::mem::forget(chain);
                }
            }
        }
    }
}
