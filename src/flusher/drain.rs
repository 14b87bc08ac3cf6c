//! Draining the writer rings into the dirty list (coalescing).

use super::*;

impl<S: Store> Flusher<S> {
    /// Drains the rings into the dirty list; returns records drained.
    pub(super) fn drain_rings(&mut self, now: u64) -> usize {
        let shared = &*self.shared;
        let per_pass = shared.config.drain_per_pass_max;
        let mut room = shared.config.dirty_keys_max - self.dirty.len();
        let dirty = &mut self.dirty;
        let flush_state = &mut self.keys.flush_state;
        let mut enqueued = 0u64;
        let mut total = 0;
        for (consumer, lane) in self.consumers.iter_mut().zip(shared.lanes.iter()) {
            // Acquire: a writer's pushes happen-before its RETIRED store.
            let retired = lane.state.load(Ordering::Acquire) == LANE_RETIRED;
            let before = enqueued;
            let n = consumer.drain(per_pass.min(room), |rec| {
                let state = super::keys::state_mut(flush_state, rec.slot);
                if *state & DIRTY_BIT != 0 || rec.version.0 <= *state & VERSION_MASK {
                    return; // coalesced: already queued, or already batched
                }
                *state = (*state & !CLEAN_BIT) | DIRTY_BIT;
                dirty.push_back(Dirty {
                    slot: rec.slot,
                    since_ns: now,
                });
                enqueued += 1;
            });
            room -= (enqueued - before) as usize;
            total += n;
            if n > 0 {
                shared.notify_room(lane);
            }
            if retired && consumer.is_empty() {
                // Release: our reads of its ring happen-before a new writer.
                lane.state.store(LANE_FREE, Ordering::Release);
            }
        }
        self.dirty_enqueued += enqueued;
        self.counts.drained += total as u64;
        total
    }
}
