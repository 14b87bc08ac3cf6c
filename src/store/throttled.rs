//! `Throttled`: a store that accepts at most N batches per second, to play a
//! slow database in tests, benches and the demo.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Batch, Compaction, Completion, RecoveryReport, Store, StoreInfo};
use crate::error::{Error, StoreError};
use crate::record::RecordRef;

/// Wraps a store and releases batches to it at most `batches_per_s` per second
/// (evenly spaced). Batches wait in a queue that the flusher's in-flight bound
/// keeps small.
#[derive(Debug)]
pub struct Throttled<S> {
    inner: S,
    interval: Duration,
    next_release: Instant,
    queued: VecDeque<Batch>,
}

impl<S: Store> Throttled<S> {
    /// `inner` limited to `batches_per_s` batches per second (at least 1).
    pub fn new(inner: S, batches_per_s: u32) -> Self {
        Self {
            inner,
            interval: Duration::from_secs(1) / batches_per_s.max(1),
            next_release: Instant::now(),
            queued: VecDeque::new(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn release_due(&mut self, now: Instant) {
        while !self.queued.is_empty() && now >= self.next_release {
            if let Some(batch) = self.queued.pop_front() {
                self.inner.submit(batch);
            }
            // An idle period earns no burst credit.
            self.next_release = self.next_release.max(now - self.interval) + self.interval;
        }
    }
}

impl<S: Store> Store for Throttled<S> {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }

    fn recover(&mut self, visit: &mut dyn FnMut(RecordRef<'_>)) -> Result<RecoveryReport, Error> {
        self.inner.recover(visit)
    }

    fn submit(&mut self, batch: Batch) {
        self.queued.push_back(batch);
        self.release_due(Instant::now());
    }

    fn poll(&mut self, out: &mut Vec<Completion>, timeout: Duration) {
        let start = Instant::now();
        self.release_due(start);
        let before = out.len();
        self.inner.poll(out, Duration::ZERO);
        if out.len() > before || self.in_flight() == 0 || timeout.is_zero() {
            return;
        }
        let deadline = start + timeout;
        if !self.queued.is_empty() && self.inner.in_flight() == 0 {
            // Nothing can complete before the next release: sleep until then.
            let until = self.next_release.min(deadline);
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            self.release_due(Instant::now());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.inner.poll(out, remaining);
    }

    fn in_flight(&self) -> usize {
        self.queued.len() + self.inner.in_flight()
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
    use crate::store::{BatchSeq, MemStore};

    #[test]
    fn releases_at_most_the_cap() {
        // One batch per 10 s: the first goes at once, the rest wait.
        let mut store = Throttled::new(MemStore::new(), 1);
        store.interval = Duration::from_secs(10);
        for seq in 1..=5 {
            store.submit(batch(seq));
        }
        let mut out = Vec::new();
        store.poll(&mut out, Duration::ZERO);
        assert_eq!(out.len(), 1, "only the first batch is released");
        assert_eq!(out[0].batch.seq, BatchSeq(1));
        assert_eq!(store.in_flight(), 4);
    }
}
