//! Serving `sync()` requests: collecting what a request covers (every ring
//! up to what its producers had published, then every key that was dirty at
//! that moment) and turning it into a barrier on the last batch cut.

use super::*;

impl<S: Store> Flusher<S> {
    /// Picks up a new `sync()` request if none is being collected.
    pub(super) fn start_sync(&mut self) {
        if self.collecting.is_some() {
            return;
        }
        // Acquire: pairs with `sync()`'s RMW, so every push acknowledged
        // before that call is visible in the tails loaded below.
        let requested = self.shared.sync_requested.load(Ordering::Acquire);
        if requested > self.sync_seen {
            self.sync_seen = requested;
            let targets = self
                .consumers
                .iter()
                .map(|c| c.producer_position())
                .collect();
            self.collecting = Some(PendingSync {
                gen: requested,
                targets,
                dirty_mark: None,
            });
        }
    }

    /// Moves the sync request through its phases and releases waiters whose
    /// barrier batch is durable.
    pub(super) fn advance_sync(&mut self) {
        if let Some(c) = &mut self.collecting {
            if c.dirty_mark.is_none()
                && self
                    .consumers
                    .iter()
                    .zip(&c.targets)
                    .all(|(consumer, &t)| consumer.position() >= t)
            {
                c.dirty_mark = Some(self.dirty_enqueued);
            }
            if c.dirty_mark.is_some_and(|m| self.dirty_dequeued >= m) {
                // Everything the request covers is in batches numbered up to
                // the last one cut. Under `Durability::Deferred` those batches
                // are written but not forced: a sync-only batch after them
                // makes the store force everything before it.
                let gen = c.gen;
                if self.shared.config.durability == Durability::Deferred {
                    if self.window.has_room() {
                        let seq = self.submit_sync_point();
                        self.barriers.push(gen, seq);
                        self.collecting = None;
                    }
                } else {
                    self.barriers.push(gen, self.window.last_seq());
                    self.collecting = None;
                }
            }
        }
        if let Some(gen) = self.barriers.release(self.window.durable_seq()) {
            self.publish_synced(gen);
        }
    }

    pub(super) fn publish_synced(&mut self, gen: u64) {
        // Counters first, so a waiter that wakes reads them up to date.
        self.publish(self.now_ns());
        let mut progress = primitives::lock(&self.shared.progress);
        assert!(
            gen >= progress.synced_gen,
            "sync generations only move forward"
        );
        progress.synced_gen = gen;
        drop(progress);
        self.shared.notify_progress();
    }
}
