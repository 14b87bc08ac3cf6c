//! Deferred frees: memory a concurrent reader may still be copying from.
//!
//! Readers of the index never lock. A value too long to sit inside its entry
//! lives in a heap [`Storage`](super::entry) that a writer replaces when the
//! value outgrows it, shrinks, or is deleted, and a long key lives on the
//! heap until its entry is freed. A reader that loaded such a pointer may
//! still be copying from it, so the old block is handed to crossbeam-epoch
//! and freed once every thread that was pinned when it was unlinked has
//! unpinned.
//!
//! Why epochs, and why only here: the alternative of a hazard pointer per
//! reader costs a store and a full fence on *every* read; an epoch pin costs
//! about the same, but is taken only by the readers that follow a heap
//! pointer: values over 64 bytes and keys over 20 bytes. Reads of short
//! keys and values, the common case, touch no reclamation state at all,
//! because entries and index tables themselves are never freed while the
//! index lives (entries are reused, validated by their sequence word; see
//! `entry.rs`). The cost of epochs is that a reader descheduled while
//! pinned delays every free until it runs again: memory retired meanwhile
//! waits (it is not lost).
//!
//! Under loom the models check the index's own protocol, not crossbeam's
//! (which has its own models): a pin is a no-op and a retired block is
//! leaked, which is sound (nothing is freed while in use) and small in a
//! model.

/// Keeps retired blocks alive while held.
#[cfg(not(loom))]
pub(crate) struct Pin(crossbeam_epoch::Guard);

/// Keeps retired blocks alive while held (nothing is ever freed under loom).
#[cfg(loom)]
pub(crate) struct Pin(());

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin")
    }
}

/// Pins the calling thread: a pointer loaded from an entry after this call
/// stays valid until the pin is dropped.
#[inline]
pub(crate) fn pin() -> Pin {
    #[cfg(not(loom))]
    {
        Pin(crossbeam_epoch::pin())
    }
    #[cfg(loom)]
    {
        Pin(())
    }
}

impl Pin {
    /// Drops `block` once no thread pinned now (or earlier) can still be
    /// reading it.
    ///
    /// # Safety
    /// `block` came from `Box::into_raw`, is no longer reachable from any
    /// entry (the caller unlinked it before calling), and is retired once.
    pub(crate) unsafe fn retire<T: 'static>(&self, block: *mut T) {
        #[cfg(not(loom))]
        {
            let addr = block as usize;
            // SAFETY: per the caller's contract the block is unreachable
            // for new readers and retired once; crossbeam runs the closure
            // only after every thread pinned before now has unpinned. The
            // pointer travels as an address because the closure may run on
            // another thread; `T` is only ever a plain heap block
            // (`Storage`, a key's bytes) that any thread may free.
            unsafe {
                self.0
                    .defer_unchecked(move || drop(Box::from_raw(addr as *mut T)))
            };
        }
        #[cfg(loom)]
        let _ = block;
    }
}
