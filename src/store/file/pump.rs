//! The pump: turns queued batches into the next chain of frame ops, one
//! chain in flight at a time.

use std::sync::Arc;

use super::format::{FRAME_FLAG_COMMIT, FRAME_FLAG_SYNC, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use super::io::{self, Chain, FrameOp, CHAIN_FRAMES_MAX};
use super::FileStore;
use crate::config::Durability;
use crate::error::{StoreError, StoreErrorKind};
use crate::store::Completion;

impl FileStore {
    /// Starts the next chain if none is in flight.
    pub(super) fn pump(&mut self) {
        if self.in_chain > 0 {
            return;
        }
        if self.rotate_requested {
            // A compaction began: leave the active segment now, so that it
            // can be compacted too, with nothing of it in flight.
            self.rotate_requested = false;
            if let Err(e) = self.retire_active() {
                self.fail_queue(&e);
                return;
            }
        }
        if self.queue.is_empty() {
            // Nothing to write, but batches wait for an fdatasync: do one.
            if let (Some(a), false) = (self.active.as_ref(), self.unsynced.is_empty()) {
                let op = FrameOp::sync_only(Arc::clone(&a.file), a.write_pos);
                self.in_chain = 1;
                self.engine.submit(vec![op]);
            }
            return;
        }
        let mut chain: Chain = Vec::new();
        while chain.len() < CHAIN_FRAMES_MAX {
            let Some(batch) = self.queue.front() else {
                break;
            };
            let frame_len = (FRAME_HEADER_BYTES + batch.bytes.len()) as u64;
            let write = io::writes(batch);
            // Rotate when the frame does not fit (a frame larger than a
            // whole segment gets a fresh segment to itself), or is longer
            // than the segment's header allows (a retry re-encoded from
            // values that grew): recovery refuses such a frame.
            let body_len = u32::try_from(batch.bytes.len()).unwrap_or(u32::MAX);
            let full = self.active.as_ref().is_some_and(|a| {
                write
                    && ((a.write_pos + frame_len > self.segment_bytes_max
                        && a.write_pos > SEGMENT_HEADER_BYTES as u64)
                        || body_len > a.frame_bytes_max)
            });
            if full {
                if !chain.is_empty() {
                    break; // finish this segment's chain first
                }
                if let Err(e) = self.retire_active() {
                    self.fail_queue(&e);
                    return;
                }
            }
            if self.active.is_none() {
                match self.create_segment(self.frame_bytes_max.max(body_len)) {
                    Ok(a) => self.active = Some(a),
                    Err(e) => {
                        tracing::warn!("{e}");
                        self.fail_queue(&e);
                        return;
                    }
                }
            }
            let Some(batch) = self.queue.pop_front() else {
                break;
            };
            if u32::try_from(batch.bytes.len()).is_err() {
                // A frame's length is a u32. Only a retry re-encoded from
                // grown values can get here; fail it loudly rather than
                // truncate (it stays un-durable and visible in stats).
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
                continue;
            }
            let Some(active) = self.active.as_mut() else {
                break;
            };
            if chain.is_empty() && self.commit_due {
                // The last fdatasync succeeded: record on disk how far it
                // reached, before anything newer (recovery's proof that a bad
                // frame before that point is damage, see `scan`).
                self.commit_due = false;
                let header = active.frame_header(self.durability, FRAME_FLAG_COMMIT, 0);
                let op = FrameOp::commit_marker(Arc::clone(&active.file), active.write_pos, header);
                active.write_pos += FRAME_HEADER_BYTES as u64;
                chain.push(op);
            }
            // Under `Durability::None` a batch completes only when an
            // fdatasync covers it: one comes when a batch asks for it (the
            // cache asks before its in-flight batches would all be waiting)
            // or when nothing is queued.
            let sync = self.durability == Durability::Batch || batch.sync;
            let flags = if sync { FRAME_FLAG_SYNC } else { 0 };
            let header = active.frame_header(self.durability, flags, batch.bytes.len() as u32);
            let mut op = FrameOp::frame(
                Arc::clone(&active.file),
                active.write_pos,
                header,
                batch,
                sync,
            );
            if sync && self.sync_faults.take_one() {
                op.fail_sync = true;
            }
            if write {
                active.write_pos += frame_len;
            }
            chain.push(op);
        }
        if !chain.is_empty() {
            self.in_chain = chain.len();
            self.engine.submit(chain);
        }
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
