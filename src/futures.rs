//! The futures of [`WriteBehind::sync_async`] and
//! [`WriteBehind::close_async`]: they complete when the flusher has made the
//! barrier durable or has stopped, woken by the flusher, with no thread held
//! while they wait. They need no particular runtime.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cache::WriteBehind;
use crate::error::Error;
use crate::primitives::{self, Ordering};
use crate::shared::{Progress, Shared};

/// The durability barrier of [`WriteBehind::sync_async`]: completes once every
/// update acknowledged before the call made it is durable (G4).
///
/// The barrier is requested when the future is made, not when it is first
/// polled. Dropping it stops the waiting, not the barrier. A failing store
/// makes it wait while the flusher retries (as `sync()`); bound it with your
/// runtime's timeout, e.g. `tokio::time::timeout`.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited; the barrier is requested either way"]
pub struct SyncFuture<'a> {
    shared: &'a Shared,
    gen: u64,
    waiter: Option<u64>,
}

impl<'a> SyncFuture<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        // SeqCst RMW: orders this request after every update that
        // happened-before the call; the flusher acquires it.
        let gen = shared.sync_requested.fetch_add(1, Ordering::SeqCst) + 1;
        shared.wake_flusher();
        Self {
            shared,
            gen,
            waiter: None,
        }
    }
}

impl Future for SyncFuture<'_> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut progress = primitives::lock(&this.shared.progress);
        if progress.synced_gen >= this.gen {
            return Poll::Ready(Ok(()));
        }
        if let Some(stopped) = stopped_error(&progress) {
            return Poll::Ready(Err(stopped));
        }
        progress.wakers.register(&mut this.waiter, cx.waker());
        Poll::Pending
    }
}

impl Drop for SyncFuture<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            primitives::lock(&self.shared.progress).wakers.remove(id);
        }
    }
}

/// Why waiters of `progress` are released without what they wait for: the
/// flusher has stopped.
pub(crate) fn stopped_error(progress: &Progress) -> Option<Error> {
    let stopped = progress.stopped.as_ref()?;
    if let Some(e) = &progress.gave_up {
        return Some(e.clone());
    }
    Some(match stopped {
        Ok(()) => Error::Closed,
        Err(msg) => Error::FlusherDied(msg.clone()),
    })
}

/// The shutdown of [`WriteBehind::close_async`]: completes with the outcome
/// every `close` returns, once the flusher has drained everything and
/// stopped.
///
/// Closing begins when the future is first polled. Dropping it before it
/// completes leaves the close going on in the background; any later
/// `close` or `close_async` returns its outcome.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct CloseFuture<'a> {
    cache: &'a WriteBehind,
    requested: bool,
    waiter: Option<u64>,
}

impl<'a> CloseFuture<'a> {
    pub(crate) fn new(cache: &'a WriteBehind) -> Self {
        Self {
            cache,
            requested: false,
            waiter: None,
        }
    }
}

impl Future for CloseFuture<'_> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let shared = this.cache.shared();
        if !this.requested {
            this.cache.request_close();
            this.requested = true;
        }
        // Registered before the flusher's mutex is tried: whoever holds it
        // (another close, joining) wakes the progress waiters once it lets
        // go.
        let exited = {
            let mut progress = primitives::lock(&shared.progress);
            progress.wakers.register(&mut this.waiter, cx.waker());
            progress.exited
        };
        if !exited {
            return Poll::Pending;
        }
        // The flusher's thread has dropped the flusher and its store (a
        // store's drop may wait for its I/O): joining it does not wait.
        match this.cache.try_close_now() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

impl Drop for CloseFuture<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            primitives::lock(&self.cache.shared().progress)
                .wakers
                .remove(id);
        }
    }
}
