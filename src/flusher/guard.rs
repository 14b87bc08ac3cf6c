//! The flusher thread's death, made visible: if it panics (a bug), writers,
//! `sync()` and `compact()` learn it instead of waiting for ever.

use super::Flusher;
use crate::error::Error;
use crate::primitives::{self, Arc, Ordering};
use crate::shared::Shared;
use crate::store::Store;

impl<S: Store> Flusher<S> {
    /// [`run`](Self::run) on the flusher's thread. If it panics (a bug),
    /// the death is published with the panic's message before the panic
    /// goes on: writers are refused with `FlusherDied` from then on, a
    /// blocked writer and `sync()`/`compact()` waiters wake with it.
    pub(crate) fn run_guarded(self, guard: StopGuard) -> Result<(), Error> {
        // Under loom a failing model must unwind untouched (see
        // `primitives::unwinding_in_model`): the guard alone covers it.
        #[cfg(loom)]
        {
            let _guard = guard;
            self.run()
        }
        #[cfg(not(loom))]
        {
            // AssertUnwindSafe: the flusher (and its store) is dropped by the
            // unwinding and never used again; the shared state it leaves is
            // atomics and mutexes that `primitives::lock` takes past poisoning, and
            // the death bit keeps everyone from relying on it.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || self.run())) {
                Ok(result) => {
                    drop(guard);
                    result
                }
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".into());
                    guard.died(format!("it panicked: {message}"));
                    std::panic::resume_unwind(payload)
                }
            }
        }
    }
}

/// Publishes the flusher's death if its thread unwinds (a bug), so writers
/// are refused and waiters do not block forever.
#[derive(Debug)]
pub(crate) struct StopGuard(pub Arc<Shared>);

impl StopGuard {
    /// The flusher panicked with `reason`: publish it.
    #[cfg(not(loom))]
    fn died(self, reason: String) {
        if !self.0.flusher_stopped.load(Ordering::Acquire) {
            self.0.announce_died(reason);
        }
    }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        if primitives::unwinding_in_model() {
            return;
        }
        // Acquire: pairs with the Release store in `Shared::announce`.
        if !self.0.flusher_stopped.load(Ordering::Acquire) {
            self.0.announce_died("the flusher thread panicked".into());
        }
        // The flusher, and the store with it, is dropped by now: joining
        // the thread no longer waits (`close_async` waits for this).
        primitives::lock(&self.0.progress).exited = true;
        self.0.notify_progress();
    }
}
