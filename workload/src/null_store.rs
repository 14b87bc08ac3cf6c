//! [`NullStore`], a store that keeps nothing, so a bench can measure the
//! cache and flusher alone.

use std::time::Duration;

// The one library internal this crate reaches (the record a store's
// recovery hands back).
use writebehind::record::RecordRef;
use writebehind::{Batch, Completion, RecoveryReport, Store};

/// A store that completes every batch at once and keeps nothing.
#[derive(Debug, Default)]
pub struct NullStore {
    done: Vec<Completion>,
}

impl Store for NullStore {
    fn backend(&self) -> &'static str {
        "null"
    }
    fn recover(
        &mut self,
        _: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<RecoveryReport, writebehind::Error> {
        Ok(RecoveryReport::default())
    }
    fn submit(&mut self, batch: Batch) {
        self.done.push(Completion {
            batch,
            result: Ok(()),
        });
    }
    fn poll(&mut self, out: &mut Vec<Completion>, _: Duration) {
        out.append(&mut self.done);
    }
    fn in_flight(&self) -> usize {
        self.done.len()
    }
}
