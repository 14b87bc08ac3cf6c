//! The tasks awaiting one thing from the flusher (a sync generation, the
//! end of the flusher, room in a ring), kept under the mutex of what they
//! await.
//!
//! Each waiting future has one entry, named by an id it keeps, and removes
//! it when it is dropped: the list holds at most one waker per future alive
//! (a cancelled `sync_async()` leaves nothing behind).

use std::task::Waker;

#[derive(Debug, Default)]
pub(crate) struct Wakers {
    next_id: u64,
    waiting: Vec<(u64, Waker)>,
}

impl Wakers {
    /// Registers `waker` for the waiter `id` names, or for a new waiter
    /// (`id` is `None`; it is given one), replacing what that waiter
    /// registered before.
    pub(crate) fn register(&mut self, id: &mut Option<u64>, waker: &Waker) {
        if let Some(id) = *id {
            if let Some((_, w)) = self.waiting.iter_mut().find(|(i, _)| *i == id) {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                return;
            }
        }
        let id = *id.get_or_insert_with(|| {
            self.next_id += 1;
            self.next_id
        });
        self.waiting.push((id, waker.clone()));
    }

    /// Forgets waiter `id` (its future completed or was dropped).
    pub(crate) fn remove(&mut self, id: u64) {
        self.waiting.retain(|(i, _)| *i != id);
    }

    /// Takes every waker out, to be woken once the caller has let go of
    /// the mutex (a woken task may poll at once on another thread). A
    /// waiter woken and still waiting registers again.
    pub(crate) fn take(&mut self) -> Vec<Waker> {
        self.waiting.drain(..).map(|(_, w)| w).collect()
    }
}

/// Wakes every waker in `wakers`.
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn one_entry_per_waiter_and_removed_on_drop() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut wakers = Wakers::default();
        let (mut a, mut b) = (None, None);
        for _ in 0..3 {
            wakers.register(&mut a, &waker);
        }
        wakers.register(&mut b, &waker);
        assert_eq!(wakers.waiting.len(), 2);
        wakers.remove(b.unwrap());
        wake_all(wakers.take());
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(wakers.waiting.is_empty());
        // Woken and still waiting: the same id registers again.
        wakers.register(&mut a, &waker);
        assert_eq!(wakers.waiting.len(), 1);
    }
}
