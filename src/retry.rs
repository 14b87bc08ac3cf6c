//! Retrying an update refused for want of room, the way
//! `Backpressure::Block` waits: for room in the ring, or for a durability
//! barrier to let the flusher evict. The update is tried under
//! `Backpressure::Fail` (so it never parks while the caller holds a shared
//! writer, and a refusal applies nothing); these wait in between, a thread
//! parking ([`retry_blocking`]) or a task awaiting ([`retry_async`]).

use crate::config::Backpressure;
use crate::error::Error;
use crate::futures::SyncFuture;
use crate::room::{park_until_room, Room};
use crate::shared::Shared;
use crate::writer::wait_once;

/// Barriers an awaited update waits for while memory stays full before it
/// returns `MemoryFull` (the blocking twin is bounded by `close_timeout`
/// instead; a future has no timer of its own).
const BARRIERS_MAX: usize = 8;

/// Runs `attempt` (one try of the update under `Backpressure::Fail`; it
/// returns the outcome and the lane it used) until it is not refused for
/// room, parking in between as `Backpressure::Block` does. Under
/// `Backpressure::Fail` the first refusal is returned.
pub(crate) fn retry_blocking<R>(
    shared: &Shared,
    mut attempt: impl FnMut() -> (Result<R, Error>, usize),
) -> Result<R, Error> {
    let policy = shared.config.backpressure;
    let mut waited = false;
    loop {
        let (result, lane) = attempt();
        match result {
            Err(Error::Full) if policy == Backpressure::Block => {
                park_until_room(shared, lane, || shared.lanes[lane].ring.has_room())?;
            }
            Err(e @ (Error::MemoryFull { .. } | Error::IndexFull { .. })) => {
                wait_once(shared, e, &mut waited, policy)?;
            }
            other => return other,
        }
    }
}

/// [`retry_blocking`], awaiting instead of parking: no thread is held
/// while the ring is full or memory waits for a barrier.
pub(crate) async fn retry_async<R>(
    shared: &Shared,
    mut attempt: impl FnMut() -> (Result<R, Error>, usize),
) -> Result<R, Error> {
    let block = shared.config.backpressure == Backpressure::Block;
    let mut barriers = 0;
    loop {
        let (result, lane) = attempt();
        match result {
            Err(Error::Full) if block => Room::new(shared, lane).await?,
            // A full index frees only deleted keys: one barrier, as
            // `wait_once`. Full memory: a barrier lets the flusher evict
            // what it made clean; a few, while each leaves it full.
            Err(Error::IndexFull { .. }) if block && barriers == 0 => {
                barriers += 1;
                SyncFuture::new(shared).await?;
            }
            // While the store fails nothing can be made clean: refused at
            // once (the blocking twin waits up to `close_timeout` for it).
            Err(Error::MemoryFull { .. })
                if block && barriers < BARRIERS_MAX && !store_failing(shared) =>
            {
                barriers += 1;
                SyncFuture::new(shared).await?;
            }
            other => return other,
        }
    }
}

/// The store's last attempt failed (no success since).
fn store_failing(shared: &Shared) -> bool {
    shared.counters.snapshot().failures_in_a_row > 0
}
