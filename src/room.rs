//! Waiting for room in a writer's ring, under `Backpressure::Block`: a
//! thread parks ([`park_until_room`]), a task awaits ([`Room`]).
//!
//! Both count themselves in the lane's `waiters`, fence, and check for room
//! again; the flusher frees room (a Release store of the ring's head),
//! fences, and wakes the lane if `waiters` is not zero
//! ([`Shared::notify_room`]). Under SeqCst fences at least one side sees
//! the other (a Dekker handshake), so no wake-up is lost; loom checks it
//! (`g6_full_ring_parks_and_wakes`, `g6_full_ring_awaits_and_wakes`, and
//! their weakened twins).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::Error;
use crate::primitives::{self, Ordering};
use crate::shared::Shared;

/// Parks the calling thread until `has_room()` says lane `lane`'s ring has
/// room. Errors once the flusher has stopped: nothing will make room.
pub(crate) fn park_until_room(
    shared: &Shared,
    lane: usize,
    mut has_room: impl FnMut() -> bool,
) -> Result<(), Error> {
    let lane = &shared.lanes[lane];
    loop {
        let guard = primitives::lock(&lane.park);
        lane.waiters.fetch_add(1, Ordering::Relaxed);
        primitives::fence(Ordering::SeqCst);
        let room = !primitives::bug(primitives::Bug::ParkWithoutRecheck) && has_room();
        // Acquire: pairs with the flusher's Release store on exit.
        let stopped = shared.flusher_stopped.load(Ordering::Acquire);
        if room || stopped {
            lane.waiters.fetch_sub(1, Ordering::Relaxed);
            // `FlusherDied` if it died, not `Closed`: nothing will ever
            // make room, and the cache must be reopened.
            return if room { Ok(()) } else { Err(shared.refusal()) };
        }
        shared.wake_flusher();
        // The timeout is a safety net, not part of the protocol (the loom
        // model runs without it).
        drop(primitives::wait_timeout(
            &lane.room,
            guard,
            Duration::from_millis(100),
        ));
        lane.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A future that completes when lane `lane`'s ring has room (or with the
/// refusal once the flusher has stopped). Holds no thread while it waits:
/// the flusher wakes it when it drains the ring.
#[derive(Debug)]
pub(crate) struct Room<'a> {
    shared: &'a Shared,
    lane: usize,
    /// Our entry in the lane's wakers, once registered.
    waiter: Option<u64>,
    /// Counted in the lane's `waiters`.
    counted: bool,
}

impl<'a> Room<'a> {
    pub(crate) fn new(shared: &'a Shared, lane: usize) -> Self {
        Self {
            shared,
            lane,
            waiter: None,
            counted: false,
        }
    }
}

impl Future for Room<'_> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let lane = &this.shared.lanes[this.lane];
        if lane.ring.has_room() {
            return Poll::Ready(Ok(()));
        }
        primitives::lock(&lane.park).register(&mut this.waiter, cx.waker());
        if !this.counted {
            lane.waiters.fetch_add(1, Ordering::Relaxed);
            this.counted = true;
        }
        primitives::fence(Ordering::SeqCst);
        if !primitives::bug(primitives::Bug::ParkWithoutRecheck) && lane.ring.has_room() {
            return Poll::Ready(Ok(()));
        }
        // Acquire: pairs with the flusher's Release store on exit.
        if this.shared.flusher_stopped.load(Ordering::Acquire) {
            return Poll::Ready(Err(this.shared.refusal()));
        }
        this.shared.wake_flusher();
        Poll::Pending
    }
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        let lane = &self.shared.lanes[self.lane];
        if self.counted {
            lane.waiters.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(id) = self.waiter {
            primitives::lock(&lane.park).remove(id);
        }
    }
}
