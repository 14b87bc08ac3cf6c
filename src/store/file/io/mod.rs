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
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use super::format::FRAME_HEADER_BYTES;
use super::trace;
use crate::config::IoBackend;
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::store::Batch;

/// One op of a chain: a frame to write and/or an fdatasync after it. Built
/// by [`FrameOp::frame`] (a batch's frame), [`FrameOp::commit_marker`] or
/// [`FrameOp::sync_only`] (the store's own ops).
#[derive(Debug)]
pub(crate) struct FrameOp {
    /// The segment written to.
    pub file: Arc<File>,
    /// Where the frame header goes; for an op that writes nothing, the
    /// segment's tail (it appears only in error messages).
    pub offset: u64,
    /// Write `header` + `batch.bytes` at `offset`.
    pub write: bool,
    /// The encoded frame header (its checksum covers `offset`).
    pub header: [u8; FRAME_HEADER_BYTES],
    /// The flusher's batch whose records the frame carries (empty for the
    /// store's own ops); it comes back in the op's completion.
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
        let mut op = Self::nothing(file, offset, header, batch);
        op.write = writes(&op.batch);
        op.sync = sync;
        op
    }

    /// The store's own commit marker: `header` alone, no fdatasync.
    pub(crate) fn commit_marker(
        file: Arc<File>,
        offset: u64,
        header: [u8; FRAME_HEADER_BYTES],
    ) -> Box<Self> {
        let mut op = Self::nothing(file, offset, header, Batch::default());
        op.write = true;
        op.internal = true;
        op
    }

    /// The store's own fdatasync of frames already written.
    pub(crate) fn sync_only(file: Arc<File>, offset: u64) -> Box<Self> {
        let header = [0; FRAME_HEADER_BYTES];
        let mut op = Self::nothing(file, offset, header, Batch::default());
        op.sync = true;
        op.internal = true;
        op
    }

    /// An op that neither writes nor syncs yet: the constructors above say
    /// what it does.
    fn nothing(
        file: Arc<File>,
        offset: u64,
        header: [u8; FRAME_HEADER_BYTES],
        batch: Batch,
    ) -> Box<Self> {
        Box::new(Self {
            file,
            offset,
            write: false,
            header,
            batch,
            sync: false,
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
/// queue: 2 entries a frame and one for a commit marker, rounded up to 64
/// entries, a few KiB, well inside `RLIMIT_MEMLOCK` on kernels that charge
/// the ring to it; a ring sized by the cache's in-flight bound had 16 for
/// the default of 4 batches); a longer
/// queue is written in several chains, one after another. The cache keeps
/// `Config::batches_in_flight_max` batches in flight, 4 by default.
pub(super) const CHAIN_FRAMES_MAX: usize = 16;

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

#[cfg(target_os = "linux")]
mod uring;
#[cfg(target_os = "linux")]
pub(crate) use uring::Uring;

mod pwrite;
#[cfg(test)]
pub(crate) use pwrite::run_blocking;
pub(crate) use pwrite::Pwrite;
