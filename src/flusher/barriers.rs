//! `sync()` barriers waiting for the durable watermark.
//!
//! A `sync()` request, once everything it covers is in batches, becomes a
//! barrier: its generation and the last batch it depends on. It is served
//! when every batch up to that one is durable (G4), never before; barriers
//! are served in order, and a served generation covers every earlier one.

use std::collections::VecDeque;

use crate::primitives;

/// Barriers in the order they were set.
#[derive(Debug, Default)]
pub(super) struct Barriers {
    /// (sync generation, batch seq it waits for); both non-decreasing.
    pending: VecDeque<(u64, u64)>,
}

impl Barriers {
    /// Sync generation `gen` is served once batch `seq` is durable.
    pub(super) fn push(&mut self, gen: u64, seq: u64) {
        if let Some(&(last_gen, last_seq)) = self.pending.back() {
            assert!(
                gen > last_gen && seq >= last_seq,
                "barriers must be set in order"
            );
        }
        self.pending.push_back((gen, seq));
    }

    /// Takes the barriers that every batch up to `durable_seq` being durable
    /// serves; returns the highest generation served, if any.
    pub(super) fn release(&mut self, durable_seq: u64) -> Option<u64> {
        let mut served = None;
        while let Some(&(gen, seq)) = self.pending.front() {
            if seq > durable_seq && !primitives::bug(primitives::Bug::SyncBeforeDurable) {
                break;
            }
            served = Some(gen);
            self.pending.pop_front();
        }
        served
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_barrier_is_served_only_when_the_watermark_passes_it() {
        let mut b = Barriers::default();
        b.push(1, 3);
        b.push(2, 3);
        b.push(3, 7);
        assert_eq!(b.release(0), None);
        assert_eq!(b.release(2), None, "batch 3 is not durable yet");
        assert_eq!(b.release(3), Some(2), "both waiting on batch 3");
        assert_eq!(b.release(6), None);
        assert_eq!(b.release(9), Some(3));
        assert_eq!(b.release(10), None, "served once");
    }

    #[test]
    fn a_barrier_on_nothing_is_served_at_once() {
        let mut b = Barriers::default();
        b.push(1, 0);
        assert_eq!(b.release(0), Some(1));
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn barriers_out_of_order_are_a_bug() {
        let mut b = Barriers::default();
        b.push(2, 5);
        b.push(1, 6);
    }
}
