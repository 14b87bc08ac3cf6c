//! Closing and idling: when the flusher may stop (everything acknowledged
//! durable, or the close deadline passed), announcing it, and what it waits
//! for when there is nothing to do.

use super::*;
use crate::error::{StoreError, StoreErrorKind};
use crate::give_up::GiveUp;

impl<S: Store> Flusher<S> {
    /// Serves `close()`: seals writers out, then finishes once everything
    /// acknowledged is durable (or the deadline passes with the store still
    /// failing). `None` while there is work left.
    pub(super) fn check_close(&mut self, now: u64) -> Option<Result<(), Error>> {
        let shared = &*self.shared;
        if !self.sealed {
            // Acquire: pairs with close()'s RMW.
            if shared.closing.load(Ordering::Acquire) & CLOSE_REQUESTED == 0 {
                return None;
            }
            // The RMW and the fence are our half of the handshake in
            // `Writer::begin_op`: from here on, every writer operation either
            // sees `closing` and is refused, or is visible to us as
            // `op_active` below (or already finished and pushed).
            shared.closing.fetch_or(CLOSE_SEALED, Ordering::SeqCst);
            primitives::fence(Ordering::SeqCst);
            self.sealed = true;
            // `close_timeout` may be `Duration::MAX` ("for ever"): saturate.
            self.close_deadline_ns = now.saturating_add(nanos(shared.config.close_timeout));
        }
        // Acquire: pairs with `end_op`'s Release, so its push is visible.
        let writers_idle = primitives::bug(primitives::Bug::CloseWithoutHandshake)
            || shared
                .lanes
                .iter()
                .all(|s| !s.op_active.load(Ordering::Acquire));
        let rings_empty = self.consumers.iter_mut().all(|c| c.is_empty());
        if writers_idle
            && rings_empty
            && self.dirty.is_empty()
            && self.window.is_empty()
            && self.compaction.is_none()
        {
            let result = self.store.close().map_err(Error::Store);
            self.finish(&result);
            return Some(result);
        }
        if now >= self.close_deadline_ns {
            let last_error = primitives::lock(&shared.last_error).clone();
            let result = Err(Error::Timeout {
                waited_ms: u64::try_from(shared.config.close_timeout.as_millis())
                    .unwrap_or(u64::MAX),
                last_error,
            });
            tracing::error!(
                "close gave up with {} dirty keys and {} batches not durable",
                self.dirty.len(),
                self.window.len()
            );
            self.finish(&result);
            return Some(result);
        }
        None
    }

    /// Failed attempts in a row, if they are more than `Config::retries_max`
    /// allows. Read when a pass begins, so a success collected since the
    /// last failure (which resets the count) is never given up on.
    pub(super) fn failed_past_limit(&self) -> Option<u32> {
        let failures = self.window.failures_in_a_row();
        let limit = self.shared.config.retries_max?;
        (failures > limit).then_some(failures)
    }

    /// Gives up on the store after `failures` failed attempts in a row
    /// (`Config::retries_max`): refuses updates, runs the hook, then
    /// releases every waiter with the error returned (which `close()`
    /// returns too).
    pub(super) fn abandon(&mut self, failures: u32, now: u64) -> Error {
        let last_error = primitives::lock(&self.shared.last_error)
            .clone()
            .unwrap_or_else(|| StoreError::new(StoreErrorKind::Other, "no error recorded"));
        let error = Error::StoreGaveUp {
            failures,
            last_error: last_error.clone(),
        };
        // Updates are refused before the hook hears how many keys are only
        // in memory, so the count stays true (but for an update already
        // past its check, which is pushed and taken in below).
        self.shared.refuse_after_giving_up(error.clone());
        self.drain_rings(now);
        let mut keys: std::collections::HashSet<Slot> = self.window.slots().collect();
        keys.extend(self.dirty.iter().map(|d| d.slot));
        let give_up = GiveUp {
            failures,
            last_error,
            keys_not_durable: keys.len() as u64,
        };
        tracing::error!(
            failures,
            keys_not_durable = give_up.keys_not_durable,
            error = %give_up.last_error,
            "gave up on the store (Config::retries_max)"
        );
        if let Some(hook) = &self.shared.config.on_give_up {
            (hook.0)(&give_up);
        }
        self.publish(self.now_ns());
        self.exporter.export(&self.shared, self.now_ns(), true);
        self.shared.announce_stopped(Err(error.to_string()), None);
        error
    }

    /// Publishes the exit: syncs requested so far are served if everything
    /// is durable; blocked writers and waiters are released.
    pub(super) fn finish(&self, result: &Result<(), Error>) {
        let shared = &*self.shared;
        // On success everything acknowledged is durable, so every sync
        // requested so far is served.
        let synced = result
            .is_ok()
            .then(|| shared.sync_requested.load(Ordering::Acquire));
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        // The last counts, before anyone learns the flusher stopped.
        self.exporter.export(shared, self.now_ns(), true);
        shared.announce_stopped(outcome, synced);
    }

    /// Nothing to do right now: wait for the store or park.
    pub(super) fn idle(&mut self, now: u64) {
        let config = &self.shared.config;
        // Next deadline: the oldest dirty key's age limit, or a retry.
        let mut wait_ns = nanos(config.idle_park_max.min(config.flush_interval / 2));
        // The oldest dirty key's deadline matters only if a batch could be
        // cut for it; with the in-flight window full, the next event is a
        // completion (or a retry time), not a deadline.
        let can_cut = self.window.has_room();
        if let Some(d) = self.dirty.front().filter(|_| can_cut) {
            let due = d.since_ns.saturating_add(nanos(config.flush_interval));
            wait_ns = wait_ns.min(due.saturating_sub(now));
        }
        if let Some(retry_at_ns) = self.window.next_retry_ns() {
            wait_ns = wait_ns.min(retry_at_ns.saturating_sub(now));
        }
        if self.sealed {
            // Waiting for a writer to finish its operation: short naps (a
            // writer does not wake us when it ends one). Loom has no clock,
            // so there we yield to the writer instead.
            #[cfg(loom)]
            if self
                .shared
                .lanes
                .iter()
                .any(|s| s.op_active.load(Ordering::Acquire))
            {
                primitives::thread::yield_now();
                return;
            }
            wait_ns = wait_ns.min(50_000);
        }
        let wait = Duration::from_nanos(wait_ns.max(1_000));
        if self.store.in_flight() > 0 {
            self.collect_completions(wait.min(STORE_WAIT_MAX), now);
            return;
        }
        let shared = &*self.shared;
        shared.flusher_sleeping.store(true, Ordering::Relaxed);
        // SeqCst fence: pairs with `wake_flusher_if_sleeping` (Dekker): either
        // we see the reason for waking below, or the waker sees us sleeping.
        primitives::fence(Ordering::SeqCst);
        // Work that this loop can act on right now (not work it is blocked
        // on: a sync behind one still collecting, rings while the dirty list
        // is full).
        let room = self.dirty.len() < config.dirty_keys_max;
        // A sync or close that needs the dirty list cut, with room to cut:
        // e.g. close sealed after this pass's cut had already run.
        let cut_now = self.forced() && !self.dirty.is_empty() && can_cut;
        let work_waiting = cut_now
            || (self.collecting.is_none()
                && shared.sync_requested.load(Ordering::Relaxed) > self.sync_seen)
            || (shared.closing.load(Ordering::Relaxed) != 0 && !self.sealed)
            || (room && self.consumers.iter_mut().any(|c| !c.is_empty()))
            || (room
                && shared
                    .lanes
                    .iter()
                    .any(|s| s.state.load(Ordering::Relaxed) == LANE_RETIRED));
        if !work_waiting {
            let mut woken = primitives::lock(&shared.flusher_wake);
            if !*woken {
                woken = primitives::wait_timeout(&shared.flusher_cv, woken, wait);
            }
            *woken = false;
        }
        shared.flusher_sleeping.store(false, Ordering::Relaxed);
    }
}
