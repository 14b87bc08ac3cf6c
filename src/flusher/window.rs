//! The in-flight window: batches between cut and durable, the durable
//! watermark, and the retry schedule of failed batches.
//!
//! Batches are numbered from 1 in submission order. The watermark
//! (`durable_seq`) moves over the contiguous prefix of durable batches only:
//! never past a batch still in flight or waiting to retry (G4), and it only
//! grows. A failed batch keeps its number; it is retried from memory after
//! a capped exponential backoff (G8).

use std::collections::VecDeque;
use std::time::Duration;

use crate::index::Slot;
use crate::store::Batch;
use crate::version::{Kind, Version};

/// A key a batch holds: its slot, and the version batched (with whether
/// it was a tombstone), so that once the batch is durable the flusher
/// knows which deleted keys' entries it may free (G12).
#[derive(Debug, Clone, Copy)]
pub(super) struct Batched {
    pub(super) slot: Slot,
    /// The version, with `TOMBSTONE_BIT` for a delete.
    version: u64,
}

const TOMBSTONE_BIT: u64 = 1 << 63;

impl Batched {
    pub(super) fn new(slot: Slot, version: Version, kind: Kind) -> Self {
        let bit = if kind == Kind::Delete {
            TOMBSTONE_BIT
        } else {
            0
        };
        Self {
            slot,
            version: version.0 | bit,
        }
    }

    /// The version batched (a put's or a tombstone's).
    pub(super) fn version(&self) -> Version {
        Version(self.version & !TOMBSTONE_BIT)
    }

    /// The tombstone's version, if the batch holds one for this key.
    pub(super) fn tombstone(&self) -> Option<Version> {
        (self.version & TOMBSTONE_BIT != 0).then_some(Version(self.version & !TOMBSTONE_BIT))
    }
}

/// Where a batch in the window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchState {
    Submitted,
    Done,
    Failed { retry_at_ns: u64 },
}

/// A batch between cut and durable.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) seq: u64,
    /// The keys it holds, so a retry can re-encode them from memory.
    pub(super) entries: Vec<Batched>,
    pub(super) bytes: usize,
    /// Oldest `since_ns` of its entries (durable lag).
    pub(super) oldest_ns: u64,
    /// When it was first submitted (the flusher's clock).
    pub(super) opened_ns: u64,
    pub(super) state: BatchState,
    /// The buffer, held while waiting to retry.
    pub(super) batch: Option<Batch>,
}

/// The window; `len() <= max` is the caller's to keep ([`Window::has_room`]).
#[derive(Debug)]
pub(super) struct Window {
    batches: VecDeque<InFlight>,
    /// Most batches in flight.
    max: usize,
    /// Next batch number (starts at 1).
    next_seq: u64,
    /// Every batch with `seq <= durable_seq` is durable. Only grows.
    durable_seq: u64,
    /// Failures since the last success (the backoff's exponent).
    failures_in_a_row: u32,
}

impl Window {
    /// An empty window of at most `max` batches.
    pub(super) fn new(max: usize) -> Self {
        Self {
            batches: VecDeque::with_capacity(max),
            max,
            next_seq: 1,
            durable_seq: 0,
            failures_in_a_row: 0,
        }
    }

    pub(super) fn has_room(&self) -> bool {
        self.batches.len() < self.max
    }

    pub(super) fn len(&self) -> usize {
        self.batches.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The last batch numbered so far (0: none).
    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub(super) fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    pub(super) fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row
    }

    /// Numbers a new batch and records it submitted; returns its number.
    pub(super) fn open(
        &mut self,
        entries: Vec<Batched>,
        bytes: usize,
        oldest_ns: u64,
        now: u64,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.batches.push_back(InFlight {
            seq,
            entries,
            bytes,
            oldest_ns,
            opened_ns: now,
            state: BatchState::Submitted,
            batch: None,
        });
        seq
    }

    /// The batch numbered `seq`, which must be in the window and submitted.
    fn submitted(&mut self, seq: u64) -> &mut InFlight {
        let front = self
            .batches
            .front()
            .map(|f| f.seq)
            .unwrap_or_else(|| panic!("completion of batch {seq} with nothing in flight"));
        let i = seq
            .checked_sub(front)
            .map(|i| i as usize)
            .filter(|&i| i < self.batches.len())
            .unwrap_or_else(|| panic!("completion of unknown batch {seq}"));
        let f = &mut self.batches[i];
        assert_eq!(
            f.state,
            BatchState::Submitted,
            "batch {seq} completed twice"
        );
        f
    }

    /// Batch `seq` is durable. Returns the failures in a row it ends.
    pub(super) fn succeeded(&mut self, seq: u64) -> u32 {
        self.submitted(seq).state = BatchState::Done;
        std::mem::take(&mut self.failures_in_a_row)
    }

    /// Batch `seq` failed at `now`: it is retried after a backoff that
    /// doubles per failure in a row from `min`, capped at `max`; `batch`
    /// is its buffer, kept for the retry. Returns the backoff.
    pub(super) fn failed(
        &mut self,
        seq: u64,
        batch: Batch,
        now: u64,
        min: Duration,
        max: Duration,
    ) -> Duration {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let shift = (self.failures_in_a_row - 1).min(20);
        let backoff = min.saturating_mul(1 << shift).min(max);
        let f = self.submitted(seq);
        f.state = BatchState::Failed {
            retry_at_ns: now.saturating_add(super::nanos(backoff)),
        };
        f.batch = Some(batch);
        backoff
    }

    /// The keys held by the batches in the window.
    pub(super) fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.batches
            .iter()
            .flat_map(|f| f.entries.iter().map(|b| b.slot))
    }

    /// Takes the durable batches at the front, moving the watermark over
    /// them in submission order.
    pub(super) fn take_durable(&mut self) -> Option<InFlight> {
        if self.batches.front()?.state != BatchState::Done {
            return None;
        }
        let f = self.batches.pop_front()?;
        assert_eq!(
            f.seq,
            self.durable_seq + 1,
            "watermark must advance in submission order"
        );
        self.durable_seq = f.seq;
        Some(f)
    }

    /// Failed batches whose retry time has come, to resubmit (each keeps
    /// its number; the caller marks it [`BatchState::Submitted`] again).
    pub(super) fn due_retries(&mut self, now: u64) -> impl Iterator<Item = &mut InFlight> {
        self.batches.iter_mut().filter(
            move |f| matches!(f.state, BatchState::Failed { retry_at_ns } if retry_at_ns <= now),
        )
    }

    /// The earliest retry time, if a batch waits for one.
    pub(super) fn next_retry_ns(&self) -> Option<u64> {
        self.batches
            .iter()
            .filter_map(|f| match f.state {
                BatchState::Failed { retry_at_ns } => Some(retry_at_ns),
                _ => None,
            })
            .min()
    }

    /// The oldest key age in flight (durable lag).
    pub(super) fn oldest_ns(&self) -> Option<u64> {
        self.batches.iter().map(|f| f.oldest_ns).min()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn open(w: &mut Window) -> u64 {
        w.open(Vec::new(), 10, 0, 0)
    }

    #[test]
    fn a_failed_batch_holds_the_watermark_while_later_ones_complete() {
        let mut w = Window::new(4);
        let (a, b, c) = (open(&mut w), open(&mut w), open(&mut w));
        assert_eq!((a, b, c), (1, 2, 3));
        w.failed(a, Batch::default(), 0, MS, MS);
        assert_eq!(
            w.succeeded(b),
            1,
            "the first success ends the failures in a row"
        );
        assert_eq!(w.succeeded(c), 0);
        assert!(w.take_durable().is_none(), "batch 1 is not durable");
        assert_eq!(w.durable_seq(), 0);
        // The retry keeps its number and, once durable, releases all three.
        let retry: Vec<u64> = w.due_retries(1_000_000).map(|f| f.seq).collect();
        assert_eq!(retry, [1]);
        for f in w.due_retries(1_000_000) {
            f.state = BatchState::Submitted;
        }
        w.succeeded(a);
        let durable: Vec<u64> = std::iter::from_fn(|| w.take_durable())
            .map(|f| f.seq)
            .collect();
        assert_eq!(durable, [1, 2, 3]);
        assert_eq!(w.durable_seq(), 3);
        assert!(w.is_empty());
    }

    #[test]
    fn the_backoff_doubles_per_failure_and_is_capped() {
        let mut w = Window::new(1);
        let s = open(&mut w);
        let mut seen = Vec::new();
        for round in 0..6u64 {
            seen.push(w.failed(s, Batch::default(), round, MS, 10 * MS));
            assert_eq!(
                w.next_retry_ns(),
                Some(round + super::super::nanos(*seen.last().unwrap_or(&MS)))
            );
            for f in w.due_retries(u64::MAX) {
                f.state = BatchState::Submitted;
            }
        }
        assert_eq!(seen, [MS, 2 * MS, 4 * MS, 8 * MS, 10 * MS, 10 * MS]);
        assert_eq!(w.failures_in_a_row(), 6);
    }

    #[test]
    fn a_retry_is_not_due_before_its_time() {
        let mut w = Window::new(2);
        let s = open(&mut w);
        w.failed(s, Batch::default(), 100, MS, MS);
        assert_eq!(w.due_retries(100).count(), 0);
        assert_eq!(w.due_retries(100 + 1_000_000).count(), 1);
    }

    #[test]
    #[should_panic(expected = "completed twice")]
    fn a_batch_completed_twice_is_a_bug() {
        let mut w = Window::new(2);
        let s = open(&mut w);
        w.succeeded(s);
        w.succeeded(s);
    }

    #[test]
    fn the_window_has_room_for_max_batches() {
        let mut w = Window::new(2);
        open(&mut w);
        assert!(w.has_room());
        open(&mut w);
        assert!(!w.has_room());
        assert_eq!((w.len(), w.last_seq()), (2, 2));
    }
}
