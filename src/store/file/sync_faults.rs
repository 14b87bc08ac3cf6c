//! Fault injection for tests: fdatasyncs of a file store that report failure
//! after they ran, as a failing disk does.
//!
//! The handle is taken from the [`FileStore`](super::FileStore) itself, before
//! it is wrapped, so no store decorator in between can lose it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Makes a [`FileStore`](crate::FileStore)'s next fdatasyncs report failure
/// after they ran (the data may or may not be on disk): the store must then
/// seal the segment and the flusher rewrite the records from memory (G8).
/// Get it with [`FileStore::sync_faults`](crate::FileStore::sync_faults).
#[derive(Debug, Clone, Default)]
pub struct SyncFaults(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    to_inject: AtomicU64,
    injected: AtomicU64,
}

impl SyncFaults {
    /// Make the next `n` fdatasyncs fail (replacing any count still pending).
    pub fn fail_next(&self, n: u64) {
        // Relaxed: a test's script; the store sees it at its next fdatasync
        // or one later, which is all a test can ask of a disk.
        self.0.to_inject.store(n, Ordering::Relaxed);
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.0.injected.load(Ordering::Relaxed)
    }

    /// Takes one pending failure, if any (the store's side).
    pub(super) fn take_one(&self) -> bool {
        let taken = self
            .0
            .to_inject
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if taken {
            self.0.injected.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_as_many_as_asked_then_none() {
        let faults = SyncFaults::default();
        assert!(!faults.take_one());
        faults.fail_next(2);
        assert!(faults.take_one());
        assert!(faults.clone().take_one());
        assert!(!faults.take_one());
        assert_eq!(faults.injected(), 2);
    }
}
