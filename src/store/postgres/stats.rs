//! The store's counters: written by the store thread, read through a
//! [`PgStatsHandle`] while the cache runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of a [`PgStore`](crate::PgStore), readable while the cache runs
/// ([`PgStore::stats`](crate::PgStore::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgStats {
    /// Batch statements that committed.
    pub statements: u64,
    /// Rows sent in committed statements.
    pub rows_sent: u64,
    /// Rows the database inserted or updated (fewer than sent when the
    /// version guard skipped rows it already had, e.g. after a retry).
    pub rows_applied: u64,
    /// Batch statements that failed.
    pub failures: u64,
    /// Connections opened after the first one (successfully).
    pub reconnects: u64,
}

/// The live counters behind [`PgStats`]. Each is a count on its own, read
/// without ordering against the others: `Relaxed` throughout.
#[derive(Debug, Default)]
pub(super) struct Counters {
    statements: AtomicU64,
    rows_sent: AtomicU64,
    rows_applied: AtomicU64,
    failures: AtomicU64,
    reconnects: AtomicU64,
}

impl Counters {
    /// A batch statement committed: `sent` rows, `applied` of them changed.
    pub(super) fn committed(&self, sent: u64, applied: u64) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.rows_sent.fetch_add(sent, Ordering::Relaxed);
        self.rows_applied.fetch_add(applied, Ordering::Relaxed);
    }

    /// A batch statement failed (or could not be sent).
    pub(super) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was reopened after the first.
    pub(super) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handle on a [`PgStore`](crate::PgStore)'s counters that stays valid
/// after the store moved into the cache.
#[derive(Debug, Clone)]
pub struct PgStatsHandle(pub(super) Arc<Counters>);

impl PgStatsHandle {
    /// The counters now.
    pub fn get(&self) -> PgStats {
        let c = &self.0;
        PgStats {
            statements: c.statements.load(Ordering::Relaxed),
            rows_sent: c.rows_sent.load(Ordering::Relaxed),
            rows_applied: c.rows_applied.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }
}
