//! Finishing a chain: completions in order, `Durability::Deferred`'s held
//! batches (written, waiting for an fdatasync), the commit marker a good
//! fdatasync makes due, and sealing the segment after a failure.

use super::format::FRAME_HEADER_BYTES;
use super::io::{Chain, FrameOp};
use super::FileStore;
use crate::config::Durability;
use crate::error::StoreError;
use crate::store::{Batch, Completion};

impl FileStore {
    /// Takes a finished chain: completions in order; the first failure seals
    /// the segment.
    pub(super) fn finish_chain(&mut self, chain: Chain) {
        self.in_chain = 0;
        let mut failure: Option<StoreError> = None;
        for op in chain {
            let end = op.offset + op.write_len();
            let op_body = op.offset + FRAME_HEADER_BYTES as u64;
            let FrameOp {
                result,
                batch,
                write,
                sync,
                internal,
                ..
            } = *op;
            let result = match (failure.as_ref(), result) {
                (Some(first), _) => Err(StoreError::new(
                    first.kind,
                    format!("not attempted after an earlier failure: {}", first.message),
                )),
                (None, Ok(())) => {
                    if write {
                        self.index_frame(op_body, &batch);
                    }
                    let written = write.then_some((end, batch.bytes.len() as u64));
                    self.confirm(written, sync);
                    Ok(())
                }
                (None, Err(e)) => {
                    failure = Some(e.clone());
                    Err(e)
                }
            };
            if !internal {
                self.complete(batch, result, sync);
            }
        }
        if let Some(e) = failure {
            tracing::warn!("segment write failed, sealing it: {e}");
            self.fail_unsynced(&e);
            self.seal_after_failure();
            self.commit_due = false;
        }
    }

    /// A frame of the active segment, its body at `body`, was written: its
    /// records' places go into the keydir (only now, so that a reader never
    /// finds a place whose bytes are not there).
    fn index_frame(&mut self, body: u64, batch: &Batch) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let segment = active.id;
        let mut at = body;
        for r in batch.records() {
            let Ok(r) = r else {
                // The flusher encodes every batch, so this is a bug: the
                // rest of the frame's records stay out of the keydir.
                debug_assert!(false, "a batch that does not decode");
                tracing::error!(
                    "file store: a written batch does not decode; its keys are not indexed"
                );
                // Nor may the segment's hint leave them out.
                if let Some(h) = active.hint.take() {
                    h.abandon();
                }
                return;
            };
            self.keydir.apply(segment, at, &r);
            if let Some(hint) = active.hint.as_mut() {
                // A place that does not fit a hint, or a failed write, gives
                // the hint up: the segment is read at open instead.
                let noted = super::hint::HintEntry::of(at, &r).is_some_and(|e| hint.note(&e));
                if !noted {
                    if let Some(h) = active.hint.take() {
                        h.abandon();
                    }
                }
            }
            at += crate::record::encoded_len(r.key.len(), r.value.len()) as u64;
        }
    }

    /// Records a successful op of the active segment: `written`, the end
    /// of its frame and the record bytes in it; `synced`, an fdatasync
    /// followed it.
    fn confirm(&mut self, written: Option<(u64, u64)>, synced: bool) {
        if let Some(a) = self.active.as_mut() {
            if let Some((end, record_bytes)) = written {
                a.confirmed_end = end;
                *self.segment_bytes.entry(a.id).or_insert(0) += record_bytes;
            }
            if synced {
                a.synced_end = a.confirmed_end;
            }
        }
        if self.durability == Durability::Deferred && synced {
            // Everything written before this fdatasync is durable
            // now; a commit marker will say so on disk.
            self.done.append(&mut self.unsynced);
            self.commit_due = true;
        }
    }

    /// Hands a flusher's batch its `result`, or holds it back for an
    /// fdatasync.
    fn complete(&mut self, batch: Batch, result: Result<(), StoreError>, synced: bool) {
        if self.durability == Durability::Deferred && !synced && result.is_ok() {
            // Written, not yet durable: completed only by a later
            // fdatasync (or failed with it).
            self.unsynced.push(Completion { batch, result });
        } else {
            self.done.push(Completion { batch, result });
        }
    }

    /// Fails the batches written since the last good fdatasync (under
    /// `Durability::Deferred`): their pages may be gone, so the flusher must
    /// rewrite them from memory.
    pub(super) fn fail_unsynced(&mut self, cause: &StoreError) {
        for mut c in self.unsynced.drain(..) {
            c.result = Err(StoreError::new(
                cause.kind,
                format!(
                    "written but never confirmed durable before: {}",
                    cause.message
                ),
            ));
            self.done.push(c);
        }
    }
}
