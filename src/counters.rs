//! What the flusher counts, kept as plain numbers on its thread
//! ([`Counts`]) and published as one set of relaxed atomics
//! ([`PublishedCounts`]) that [`stats()`](crate::WriteBehind::stats) reads
//! back as a snapshot. Each count is named once, in the list below.

use crate::primitives::{AtomicU64, Ordering};

/// Declares `Counts` (plain) and `PublishedCounts` (atomic) with the same
/// fields, and the copy between them.
macro_rules! counts {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The flusher's counts: running totals and the gauges it sets just
        /// before publishing.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub(crate) struct Counts {
            $($(#[$doc])* pub(crate) $name: u64,)*
        }

        /// [`Counts`] as last published.
        #[derive(Debug)]
        pub(crate) struct PublishedCounts {
            $($name: AtomicU64,)*
        }

        impl PublishedCounts {
            pub(crate) fn new() -> Self {
                Self { $($name: AtomicU64::new(0),)* }
            }

            /// Relaxed stores: statistics; a reader may see some counts of
            /// one publication and some of the next.
            pub(crate) fn publish(&self, counts: &Counts) {
                $(self.$name.store(counts.$name, Ordering::Relaxed);)*
            }

            pub(crate) fn snapshot(&self) -> Counts {
                Counts { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counts! {
    /// Updates taken off the rings.
    drained,
    /// Records encoded into batches (first submissions, not retries).
    encoded,
    /// Records made durable.
    persisted_records,
    /// Bytes of records made durable.
    persisted_bytes,
    /// Batches made durable: the durable watermark.
    batches,
    /// Gauge: batches submitted or waiting to retry.
    batches_in_flight,
    /// Gauge: keys on the dirty list.
    dirty_keys,
    /// Gauge: age of the oldest dirty key, ns.
    oldest_dirty_ns,
    /// Gauge: age of the oldest update not yet durable, ns.
    durable_lag_ns,
    /// Failed batch attempts.
    store_errors,
    /// Batches resubmitted after a failure.
    retries,
    /// Gauge: the adaptive batch target, in keys.
    target_ops,
    /// Compactions finished.
    compactions,
    /// Entries of deleted keys freed once their tombstones were durable.
    keys_reclaimed,
    /// Clean entries evicted to keep within the memory budget.
    evictions,
    /// Gauge: the memory budget's estimate of the resident keys' bytes.
    resident_bytes,
    /// Gauge: bytes the newest record of every key takes.
    live_bytes,
    /// Gauge: bytes of records in the store (stores that compact).
    stored_bytes,
    /// Gauge: units of storage (segments) in the store.
    segments,
    /// Gauge: batch failures since the last success (0: healthy).
    failures_in_a_row,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_returns_what_was_published() {
        let published = PublishedCounts::new();
        assert_eq!(published.snapshot(), Counts::default());
        let counts = Counts {
            drained: 3,
            failures_in_a_row: 1,
            ..Counts::default()
        };
        published.publish(&counts);
        assert_eq!(published.snapshot(), counts);
    }
}
