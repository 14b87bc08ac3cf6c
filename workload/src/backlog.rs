//! The flusher and store alone, with the writers idle: a backlog of dirty
//! keys queued behind a stalled store, then the time until `sync()` returns
//! once the stall is lifted (drain, coalesce, encode, write).

use std::time::{Duration, Instant};

use writebehind::testing::FaultPlan;
use writebehind::{Error, Stats, WriteBehind};

/// What draining a backlog took.
#[derive(Debug, Clone)]
pub struct Drain {
    /// From lifting the stall until `sync()` returned.
    pub elapsed: Duration,
    /// Records encoded after the clock started: the batches the flusher
    /// encoded before it (it submitted up to `batches_in_flight_max` of them
    /// to the stalled store) are not counted.
    pub records: u64,
    /// The cache's counters when `sync()` returned.
    pub after: Stats,
}

/// Waits until the flusher of `wb` has taken `ops` operations off the rings
/// into its dirty list (while `plan` stalls the store), then lifts the stall
/// and times `sync()`.
pub fn drain_backlog(wb: &WriteBehind, plan: &FaultPlan, ops: u64) -> Result<Drain, Error> {
    while wb.stats().drained_ops < ops {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = wb.stats();
    let encoded_before = before.drained_ops - before.coalesced_ops;
    let start = Instant::now();
    plan.stall_for(Duration::ZERO);
    wb.sync()?;
    let elapsed = start.elapsed();
    let after = wb.stats();
    Ok(Drain {
        elapsed,
        records: after.persisted_records.saturating_sub(encoded_before),
        after,
    })
}
