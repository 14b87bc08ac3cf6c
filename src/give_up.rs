//! Giving up on a store that will not come back: after
//! [`Config::retries_max`](crate::Config::retries_max) failed attempts in a
//! row the flusher stops, calls the [`Config::on_give_up`](crate::Config::on_give_up)
//! hook, and the cache refuses updates with [`Error::StoreGaveUp`](crate::Error::StoreGaveUp).
//! Without a limit (the default) it retries for ever.

use std::sync::Arc;

use crate::error::StoreError;

/// What the flusher knew when it gave up, handed to the
/// [`Config::on_give_up`](crate::Config::on_give_up) hook.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GiveUp {
    /// Failed attempts in a row, none succeeding in between.
    pub failures: u32,
    /// The store's last error.
    pub last_error: StoreError,
    /// Keys whose newest update is not durable: in memory only. They stay
    /// readable with `get` until the cache is dropped.
    pub keys_not_durable: u64,
}

/// The hook [`Config::on_give_up`](crate::Config::on_give_up) sets.
#[derive(Clone)]
pub(crate) struct GiveUpHook(pub Arc<dyn Fn(&GiveUp) + Send + Sync>);

impl std::fmt::Debug for GiveUpHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GiveUpHook(..)")
    }
}
