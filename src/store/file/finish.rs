//! Finishing a chain: completions in order, `Durability::None`'s held
//! batches, the commit marker an fdatasync makes due, and sealing the
//! segment after a failure.

use super::io::{Chain, FrameOp};
use super::FileStore;
use crate::config::Durability;
use crate::error::StoreError;
use crate::store::Completion;

impl FileStore {
    /// Takes a finished chain: completions in order; the first failure seals
    /// the segment.
    pub(super) fn finish_chain(&mut self, chain: Chain) {
        self.in_chain = 0;
        let none = self.durability == Durability::None;
        let mut failure: Option<StoreError> = None;
        for op in chain {
            let end = op.offset + op.write_len();
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
                    if let Some(a) = self.active.as_mut() {
                        if write {
                            a.confirmed_end = end;
                            *self.segment_bytes.entry(a.id).or_insert(0) +=
                                batch.bytes.len() as u64;
                        }
                        if sync {
                            a.synced_end = a.confirmed_end;
                        }
                    }
                    if none && sync {
                        // Everything written before this fdatasync is durable
                        // now; a commit marker will say so on disk.
                        self.done.append(&mut self.unsynced);
                        self.commit_due = true;
                    }
                    Ok(())
                }
                (None, Err(e)) => {
                    failure = Some(e.clone());
                    Err(e)
                }
            };
            if internal {
                continue;
            }
            if none && !sync && result.is_ok() {
                // Written, not yet durable: completed only by a later
                // fdatasync (or failed with it).
                self.unsynced.push(Completion { batch, result });
            } else {
                self.done.push(Completion { batch, result });
            }
        }
        if let Some(e) = failure {
            tracing::warn!("segment write failed, sealing it: {e}");
            self.fail_unsynced(&e);
            if let Some(a) = self.active.take() {
                // Never touch this file again: seal at what an fdatasync
                // confirmed, in a new segment's header at once (a restart
                // before it exists would read the failed frames from the
                // page cache and trust them); if that fails too, the next
                // write tries again.
                self.pending_seal = Some((a.id, a.synced_end));
                match self.create_segment(self.frame_bytes_max) {
                    Ok(next) => self.active = Some(next),
                    Err(e) => tracing::warn!("sealing {} after a failure: {e}", a.id.file_name()),
                }
            }
            self.commit_due = false;
        }
    }

    /// Fails the batches written since the last good fdatasync (under
    /// `Durability::None`): their pages may be gone, so the flusher must
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
