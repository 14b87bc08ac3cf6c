//! [`NullStore`], a store that keeps nothing, so a bench can measure the
//! cache and flusher alone.

use std::time::Duration;

use writebehind::{
    Batch, Compaction, Completion, RecordRef, RecoveryReport, Store, StoreError, StoreInfo,
};

/// A store that completes every batch at once and keeps nothing.
#[derive(Debug, Default)]
pub struct NullStore {
    done: Vec<Completion>,
}

impl Store for NullStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("null")
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
    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        None
    }
    fn reader(&mut self) -> Option<std::sync::Arc<dyn writebehind::StoreReader>> {
        None
    }
    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
