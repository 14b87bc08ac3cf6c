//! The pump: turns queued batches into the next chain of frame ops, one
//! chain in flight at a time. It leaves a full segment behind, starts the
//! next, refuses a batch too long for a frame, puts a commit marker at the
//! head of a chain when an fdatasync made one due, and, when nothing is
//! queued, syncs the batches `Durability::Deferred` holds.

use std::sync::Arc;

use super::io::{Chain, FrameOp, CHAIN_FRAMES_MAX};
use super::FileStore;
use crate::config::Durability;
use crate::error::{StoreError, StoreErrorKind};
use crate::store::{Batch, Completion};

impl FileStore {
    /// Starts the next chain if none is in flight.
    pub(super) fn pump(&mut self) {
        if self.in_chain > 0 {
            return;
        }
        if let Err(e) = self.rotate_if_requested() {
            self.fail_queue(&e);
            return;
        }
        if self.queue.is_empty() {
            self.sync_held_batches();
            return;
        }
        let chain = self.next_chain();
        self.start(chain);
    }

    /// Hands `chain` to the engine, unless it is empty.
    fn start(&mut self, chain: Chain) {
        if !chain.is_empty() {
            self.in_chain = chain.len();
            self.engine.submit(chain);
        }
    }

    fn rotate_if_requested(&mut self) -> Result<(), StoreError> {
        if !self.rotate_requested {
            return Ok(());
        }
        // A compaction began: leave the active segment now, so that it
        // can be compacted too, with nothing of it in flight.
        self.rotate_requested = false;
        self.retire_active()
    }

    /// Nothing to write, but batches wait for an fdatasync: do one.
    fn sync_held_batches(&mut self) {
        if let (Some(a), false) = (self.active.as_ref(), self.unsynced.is_empty()) {
            let op = FrameOp::sync_only(Arc::clone(&a.file), a.write_pos);
            self.start(vec![op]);
        }
    }

    /// Takes queued batches into a chain of frames of one segment, at most
    /// `CHAIN_FRAMES_MAX`; empty if none can be written now.
    fn next_chain(&mut self) -> Chain {
        let mut chain = Chain::new();
        while chain.len() < CHAIN_FRAMES_MAX {
            let Some(batch) = self.queue.front() else {
                break;
            };
            let body_len = u32::try_from(batch.bytes.len()).unwrap_or(u32::MAX);
            let full = self
                .active
                .as_ref()
                .is_some_and(|a| a.has_no_room_for(batch, self.segment_bytes_max));
            if full && !chain.is_empty() {
                break; // finish this segment's chain first
            }
            if let Err(e) = self.make_room(full, body_len) {
                // Only at a chain's first frame: the segment changes only
                // between chains.
                debug_assert!(chain.is_empty());
                self.fail_queue(&e);
                return chain;
            }
            let Some(batch) = self.queue.pop_front() else {
                break;
            };
            let Ok(body_len) = u32::try_from(batch.bytes.len()) else {
                self.refuse_oversize(batch);
                continue;
            };
            let Some(active) = self.active.as_mut() else {
                // `make_room` just made one, so never here; were it reached,
                // the batch stays queued rather than vanish.
                self.queue.push_front(batch);
                break;
            };
            if chain.is_empty() && self.commit_due {
                // The last fdatasync succeeded: record on disk how far it
                // reached, before anything newer (recovery's proof that a bad
                // frame before that point is damage, see `scan`).
                self.commit_due = false;
                chain.push(active.append_commit_marker(self.durability));
            }
            // Under `Durability::Deferred` a batch completes only when an
            // fdatasync covers it: one comes when a batch asks for it (the
            // cache asks before its in-flight batches would all be waiting)
            // or when nothing is queued.
            let sync = self.durability == Durability::Batch || batch.sync;
            let mut op = active.append_frame(self.durability, batch, body_len, sync);
            if sync && self.sync_faults.take_one() {
                op.fail_sync = true;
            }
            chain.push(op);
        }
        chain
    }

    /// Makes an active segment ready for a frame of `body_len` bytes: leaves
    /// the `full` one behind, creates the next if there is none.
    fn make_room(&mut self, full: bool, body_len: u32) -> Result<(), StoreError> {
        if full {
            self.retire_active()?;
        }
        if self.active.is_none() {
            let active = self
                .create_segment(self.frame_bytes_max.max(body_len))
                .inspect_err(|e| tracing::warn!("{e}"))?;
            self.active = Some(active);
        }
        Ok(())
    }

    /// A frame's length is a u32. Only a retry re-encoded from grown values
    /// can get here; fail it loudly rather than truncate (it stays
    /// un-durable and visible in stats).
    fn refuse_oversize(&mut self, batch: Batch) {
        let e = StoreError::new(
            StoreErrorKind::Other,
            format!(
                "batch {} of {} bytes exceeds a frame's 4 GiB limit",
                batch.seq.0,
                batch.bytes.len()
            ),
        );
        self.done.push(Completion {
            batch,
            result: Err(e),
        });
    }

    /// Fails every queued batch with `e` (the flusher retries them).
    pub(super) fn fail_queue(&mut self, e: &StoreError) {
        for batch in self.queue.drain(..) {
            self.done.push(Completion {
                batch,
                result: Err(e.clone()),
            });
        }
    }
}
