//! The writer loop every contender of `wb bench` runs (the cache's writers,
//! the mutex+channel baseline, the per-update SQL baseline): one operation
//! after another until told to stop, each timed into a histogram.
//!
//! Closed loop (no rate) issues the next operation when the last returns and
//! times it from its start. Open loop (`rate` per second from the loop's
//! start) issues operation `i` at its intended time `t0 + i / rate` and times
//! it from then, not from when the writer got to it, so a stall shows up in
//! every operation it delayed (no coordinated omission); at the end, the
//! operations that were due but never issued count too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use hdrhistogram::Histogram;
use writebehind_workload::new_histogram;

use crate::clock::Clock;

/// What a writer loop did: operations issued, and their latencies (ns).
pub(crate) type Outcome = (u64, Histogram<u64>);

/// Operations between two looks at the stop flag for loops whose operations
/// take nanoseconds (a look is a load of a shared cache line).
pub(crate) const OPS_PER_STOP_CHECK: usize = 256;

/// One writer's loop: its clock, its pace and when it stops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadLoop<'a> {
    pub clock: &'a Clock,
    /// Open loop: operations per second from the loop's start; closed loop
    /// without.
    pub rate: Option<u64>,
    /// Set by the thread that ends the run.
    pub stop: &'a AtomicBool,
    /// Operations issued between two looks at `stop` (at least 1).
    pub ops_per_stop_check: usize,
}

impl LoadLoop<'_> {
    /// Runs `op` on trace positions `first_pos`, `first_pos + 1`, ... until
    /// `stop` is set; the first error `op` returns ends the loop with it.
    pub(crate) fn run<E>(
        &self,
        first_pos: usize,
        mut op: impl FnMut(usize) -> Result<(), E>,
    ) -> Result<Outcome, E> {
        let clock = self.clock;
        let mut hist = new_histogram();
        let mut pos = first_pos;
        let t0 = clock.now();
        let mut ops = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            for _ in 0..self.ops_per_stop_check.max(1) {
                let intended = self.turn(t0, ops);
                op(pos)?;
                let _ = hist.record(clock.ns(clock.now().saturating_sub(intended)).max(1));
                pos += 1;
                ops += 1;
            }
        }
        self.record_backlog(&mut hist, t0, ops);
        Ok((ops, hist))
    }

    /// When operation `ops` is due, in ticks: `t0 + ops / rate`.
    fn due(&self, t0: u64, rate: u64, ops: u64) -> u64 {
        t0 + self.clock.ticks((ops as f64 * 1e9 / rate as f64) as u64)
    }

    /// The start time of operation `ops`: in open loop wait for it, bounded
    /// by the schedule, and return the intended time even if the writer is
    /// late (so lateness counts as latency); in closed loop, now.
    #[inline]
    fn turn(&self, t0: u64, ops: u64) -> u64 {
        match self.rate {
            Some(r) => {
                let due = self.due(t0, r, ops);
                while self.clock.now() < due {
                    std::hint::spin_loop();
                }
                due
            }
            None => self.clock.now(),
        }
    }

    /// Open loop, at the end of a run: every operation that was due but
    /// never issued is recorded as waiting until now (otherwise a writer
    /// that is behind when the run stops hides its backlog from the tail).
    fn record_backlog(&self, hist: &mut Histogram<u64>, t0: u64, mut ops: u64) {
        let Some(r) = self.rate else { return };
        let now = self.clock.now();
        loop {
            let due = self.due(t0, r, ops);
            if due > now {
                break;
            }
            let _ = hist.record(self.clock.ns(now - due).max(1));
            ops += 1;
        }
    }
}

/// Waits for the loops of `threads` and sums their operations and
/// latencies; `who` names them if one panicked ("writer", "baseline").
pub(crate) fn join_all(
    threads: Vec<JoinHandle<Result<Outcome, String>>>,
    who: &str,
) -> Result<Outcome, String> {
    let mut ops = 0u64;
    let mut hist = new_histogram();
    for t in threads {
        let (n, h) = t.join().map_err(|_| format!("{who} thread panicked"))??;
        ops += n;
        hist.add(&h).map_err(|e| e.to_string())?;
    }
    Ok((ops, hist))
}
