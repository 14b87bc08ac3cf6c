//! The io_uring engine: one submission per chain, every write linked
//! (`IOSQE_IO_LINK`) to the fdatasync after it and that to the next write.

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

    /// Takes the completions that have arrived into the chain's ops.
    fn collect(&mut self) {
        let Some(chain) = self.chain.as_mut() else {
            return;
        };
        for cqe in self.ring.completion() {
            let ud = cqe.user_data();
            let (i, fsync) = ((ud >> 1) as usize, ud & 1 == 1);
            self.pending = self.pending.saturating_sub(1);
            let Some(op) = chain.get_mut(i) else { continue };
            if op.result.is_err() {
                continue; // keep the first error of this op
            }
            record_completion(op, fsync, cqe.result());
        }
    }

    /// Pushes `entries` to the submission queue; returns how many fitted.
    fn push(&mut self, entries: &[squeue::Entry]) -> usize {
        let mut pushed = 0;
        let mut sq = self.ring.submission();
        for e in entries {
            // SAFETY: every buffer an entry points to (the op's header,
            // its batch bytes, its iovec array) lives in a boxed op
            // that this engine keeps in `self.chain` until all of the
            // chain's completions have been reaped.
            if unsafe { sq.push(e) }.is_err() {
                break;
            }
            pushed += 1;
        }
        pushed
    }
}

/// Records in `op` the completion `res` of its write (or, `fsync`, of its
/// fdatasync).
fn record_completion(op: &mut FrameOp, fsync: bool, res: i32) {
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

/// The SQEs of `chain`, in order, each linked to the next: a write (from
/// the op's own iovecs, set here) and an fdatasync per op, as it asks.
fn linked_entries(chain: &mut Chain) -> Vec<squeue::Entry> {
    let mut entries = Vec::with_capacity(chain.len() * 2);
    for (i, op) in chain.iter_mut().enumerate() {
        if op.write {
            entries.push(writev_entry(i, op));
        }
        if op.sync {
            op.trace_through = trace::last();
            entries.push(fdatasync_entry(i, op));
        }
    }
    let n = entries.len();
    for (j, e) in entries.iter_mut().enumerate() {
        if j + 1 < n {
            *e = e.clone().flags(squeue::Flags::IO_LINK);
        }
    }
    entries
}

/// The write of op `i`'s header and records, from its iovecs.
fn writev_entry(i: usize, op: &mut FrameOp) -> squeue::Entry {
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
    opcode::Writev::new(types::Fd(op.file.as_raw_fd()), op.iov.as_ptr(), 2)
        .offset(op.offset)
        .build()
        .user_data(tag(i, false))
}

/// The fdatasync after op `i`.
fn fdatasync_entry(i: usize, op: &FrameOp) -> squeue::Entry {
    opcode::Fsync::new(types::Fd(op.file.as_raw_fd()))
        .flags(types::FsyncFlags::DATASYNC)
        .build()
        .user_data(tag(i, true))
}

impl Engine for Uring {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn submit(&mut self, mut chain: Chain) {
        debug_assert!(self.chain.is_none(), "one chain at a time");
        let entries = linked_entries(&mut chain);
        let pushed = self.push(&entries);
        self.pending = pushed;
        if pushed < entries.len() {
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
