//! `Faulty`: a store decorator that fails and delays batches on a script held
//! by the test ([`FaultPlan`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Batch, Compaction, Completion, RecoveryReport, Store, StoreInfo};
use crate::error::{Error, StoreError, StoreErrorKind};
use crate::record::RecordRef;

#[derive(Debug, Default)]
struct Plan {
    /// Fail this many upcoming submissions, with this kind.
    fail_next: u64,
    fail_kind: Option<StoreErrorKind>,
    /// Hold every completion this long after it happened.
    delay: Duration,
    /// Hold every completion until this instant (a stalled store).
    stall_until: Option<Instant>,
    /// Failures injected so far.
    injected: u64,
    /// Submissions seen.
    submitted: u64,
}

/// The script of a [`Faulty`] store. Clone it, keep one copy in the test, and
/// change the plan while the cache runs.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan(Arc<Mutex<Plan>>);

impl FaultPlan {
    /// A plan with no faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Plan> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail the next `n` submissions with `kind` (they never reach the inner
    /// store).
    pub fn fail_next(&self, n: u64, kind: StoreErrorKind) {
        let mut plan = self.lock();
        plan.fail_next = n;
        plan.fail_kind = Some(kind);
    }

    /// Deliver every completion `delay` late.
    pub fn delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Deliver no completion for `duration` from now (a stalled store).
    pub fn stall_for(&self, duration: Duration) {
        self.lock().stall_until = Some(Instant::now() + duration);
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// Submissions seen so far (failed or not).
    pub fn submitted(&self) -> u64 {
        self.lock().submitted
    }
}

/// Wraps a store and injects the faults of its [`FaultPlan`].
#[derive(Debug)]
pub struct Faulty<S> {
    inner: S,
    plan: FaultPlan,
    /// Completions held back, with the instant they happened (the plan
    /// decides at delivery time how long to hold them, so a test can lift a
    /// stall or a delay while they wait).
    held: VecDeque<(Instant, Completion)>,
    scratch: Vec<Completion>,
}

impl<S: Store> Faulty<S> {
    /// `inner` with faults from `plan`.
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        Self {
            inner,
            plan,
            held: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// When a completion that happened at `at` may be delivered.
    fn ready_at(&self, at: Instant) -> Instant {
        let plan = self.plan.lock();
        let delayed = at + plan.delay;
        plan.stall_until.map_or(delayed, |s| s.max(delayed))
    }

    fn release(&mut self, out: &mut Vec<Completion>, now: Instant) {
        while let Some((at, _)) = self.held.front() {
            if self.ready_at(*at) > now {
                break;
            }
            if let Some((_, c)) = self.held.pop_front() {
                out.push(c);
            }
        }
    }
}

impl<S: Store> Store for Faulty<S> {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }

    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        self.inner.recover(visit)
    }

    fn submit(&mut self, batch: Batch) {
        let now = Instant::now();
        let fail = {
            let mut plan = self.plan.lock();
            plan.submitted += 1;
            if plan.fail_next > 0 {
                plan.fail_next -= 1;
                plan.injected += 1;
                plan.fail_kind
            } else {
                None
            }
        };
        match fail {
            Some(kind) => {
                let error =
                    StoreError::new(kind, format!("injected failure of batch {}", batch.seq.0));
                self.held.push_back((
                    now,
                    Completion {
                        batch,
                        result: Err(error),
                    },
                ));
            }
            None => self.inner.submit(batch),
        }
    }

    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.inner.poll(&mut scratch, Duration::ZERO);
        let now = Instant::now();
        for c in scratch.drain(..) {
            self.held.push_back((now, c));
        }
        self.scratch = scratch;
        let before = out.len();
        self.release(out, now);
        if out.len() == before && !timeout.is_zero() && !self.held.is_empty() {
            // Wait for the next held completion, within `timeout`.
            let next = self.held.front().map_or(now, |(at, _)| self.ready_at(*at));
            let until = next.min(now + timeout);
            std::thread::sleep(until.saturating_duration_since(now));
            self.release(out, Instant::now());
        }
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight() + self.held.len()
    }

    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        self.inner.compaction()
    }

    fn reader(&mut self) -> Option<std::sync::Arc<dyn crate::store::StoreReader>> {
        self.inner.reader()
    }

    fn close(&mut self) -> Result<(), StoreError> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_batch as batch;
    use crate::store::MemStore;

    #[test]
    fn fails_the_scripted_number_then_passes_through() {
        let plan = FaultPlan::new();
        let inner = MemStore::new();
        let data = inner.data();
        let mut store = Faulty::new(inner, plan.clone());
        plan.fail_next(2, StoreErrorKind::Sync);
        for seq in 1..=3 {
            store.submit(batch(seq));
        }
        let mut out = Vec::new();
        store.poll(&mut out, Duration::ZERO);
        let results: Vec<_> = out
            .iter()
            .map(|c| c.result.as_ref().map_err(|e| e.kind))
            .collect();
        assert_eq!(results.len(), 3);
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == Err(StoreErrorKind::Sync))
                .count(),
            2
        );
        assert_eq!(plan.injected(), 2);
        assert_eq!(
            data.lock().map(|d| d.batches).unwrap_or(0),
            1,
            "failed batches never reach the store"
        );
    }

    #[test]
    fn a_stall_holds_completions_until_lifted() {
        let plan = FaultPlan::new();
        let mut store = Faulty::new(MemStore::new(), plan.clone());
        plan.stall_for(Duration::from_secs(3600));
        store.submit(batch(1));
        let mut out = Vec::new();
        store.poll(&mut out, Duration::ZERO);
        assert!(out.is_empty());
        assert_eq!(store.in_flight(), 1);
        plan.stall_for(Duration::ZERO);
        store.poll(&mut out, Duration::ZERO);
        assert_eq!(out.len(), 1);
    }
}
