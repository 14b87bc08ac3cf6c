//! The one place the lock-free parts get their synchronization primitives from.
//!
//! Under `cfg(loom)` everything here comes from [loom], so the model checks in
//! `loom-tests/` explore the very code that ships; otherwise it is `std`. Code in
//! this crate never names `std::sync::atomic`, `std::cell::UnsafeCell`,
//! `std::sync::{Mutex, Condvar}` or `std::thread` directly (`Arc` is std's
//! on both sides, see below).
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
/// std's `Arc` even under loom: reference counts are not part of any protocol
/// the models check, and loom's `Arc` touches the model runtime when dropped,
/// which turns a failing model's unwinding into an abort of the test binary.
#[cfg(loom)]
pub(crate) use std::sync::Arc;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

pub(crate) use std::sync::atomic::Ordering;

/// A deliberate bug a loom model can switch on (see `weaken`); outside loom
/// none is ever on and every check compiles to `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(loom), allow(dead_code))]
pub enum Bug {
    /// The real protocol.
    None,
    /// The ring producer publishes `tail` with Relaxed instead of Release.
    RingTailRelaxed,
    /// A waiter for room in a ring (a parked writer, or an awaiting task)
    /// waits without re-checking for room after counting itself in the
    /// lane's `waiters` (a lost wake-up).
    ParkWithoutRecheck,
    /// A writer bumps the sequence word with load+store instead of CAS.
    SeqlockNoCas,
    /// A reader returns its copy without re-checking the sequence word.
    SeqlockReaderNoRecheck,
    /// The flusher serves a `sync()` when its barrier batch is cut, not
    /// when it is durable.
    SyncBeforeDurable,
    /// `close()` does not wait for writers' in-progress operations.
    CloseWithoutHandshake,
    /// A reader checks whose cell an entry is before its sequence-lock
    /// read instead of inside it (so a free and reuse in between goes
    /// unseen).
    KeyCheckOutsideSeqlock,
    /// A writer writes into the entry it looked up without checking that
    /// the flusher has not freed it meanwhile.
    WriteIgnoresFree,
    /// A load installs what it read from the store without checking that
    /// no entry of its key's bucket was freed while it read.
    InstallIgnoresFrees,
}

/// True if a loom model switched `bug` on (always false outside loom).
#[inline(always)]
pub(crate) fn bug(bug: Bug) -> bool {
    #[cfg(loom)]
    {
        weaken::on(bug)
    }
    #[cfg(not(loom))]
    {
        let _ = bug;
        false
    }
}

/// True when a `Drop` must not touch synchronization objects: under loom,
/// while a failing model unwinds (loom's runtime would panic again inside
/// the destructor and abort the whole test binary). The memory is leaked;
/// only a failing model pays. Always false outside loom.
#[inline(always)]
pub(crate) fn unwinding_in_model() -> bool {
    cfg!(loom) && std::thread::panicking()
}

/// `Release`, or `Relaxed` when a model weakens it with `bug`.
#[inline(always)]
pub(crate) fn release_unless(b: Bug) -> Ordering {
    if bug(b) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// `UnsafeCell` with loom's closure API (`with`, `with_mut`) on both sides, so
/// loom can track every access to the cell's contents.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `UnsafeCell` with loom's closure API (`with`, `with_mut`) on both sides, so
/// loom can track every access to the cell's contents.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Thread handles and parking, from loom under `cfg(loom)`.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{yield_now, JoinHandle};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{yield_now, JoinHandle};

    /// Spawns a named thread (loom threads have no names).
    pub(crate) fn spawn_named<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        #[cfg(loom)]
        {
            let _ = name;
            Ok(loom::thread::spawn(f))
        }
        #[cfg(not(loom))]
        std::thread::Builder::new().name(name.into()).spawn(f)
    }
}

/// Waits on `cond` for at most `timeout` (a plain wait under loom).
pub(crate) fn wait_timeout<'a, T>(
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    #[cfg(loom)]
    {
        let _ = timeout;
        cond.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
    #[cfg(not(loom))]
    match cond.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section in this crate
/// leaves the protected state consistent before anything that can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks `mutex` if no one holds it; as [`lock`], a poisoned one is used
/// as it is.
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Bounded spinning, then yielding: the only way this crate waits without a
/// lock. After [`Backoff::is_completed`] the caller must block (park or wait)
/// instead of spinning on.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spin steps double up to `2^SPIN_LIMIT` pause instructions.
    #[cfg(not(loom))]
    const SPIN_LIMIT: u32 = 6;
    /// After this many steps (spins, then yields) the caller should block.
    #[cfg(not(loom))]
    const YIELD_LIMIT: u32 = 10;
    /// Under loom every spin is a yield (a branch to explore): keep it short;
    /// what matters is the blocking path after it.
    #[cfg(loom)]
    const SPIN_LIMIT: u32 = 0;
    #[cfg(loom)]
    const YIELD_LIMIT: u32 = 1;

    pub(crate) fn new() -> Self {
        Self { step: 0 }
    }

    /// One step of waiting: a few pause instructions, or a yield once spinning
    /// has stopped paying off.
    pub(crate) fn snooze(&mut self) {
        if self.step <= Self::SPIN_LIMIT {
            for _ in 0..(1u32 << self.step) {
                spin_hint();
            }
        } else {
            thread::yield_now();
        }
        if self.step <= Self::YIELD_LIMIT {
            self.step += 1;
        }
    }

    /// True once spinning and yielding have both had their turn.
    pub(crate) fn is_completed(&self) -> bool {
        self.step > Self::YIELD_LIMIT
    }
}

#[inline(always)]
fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Deliberate bugs for the loom models to find (only under `cfg(loom)`):
/// each model in `loom-tests/` runs once with the real protocol and once with
/// one of these switched on, and must fail the second time. The switch is
/// thread-local, and loom runs every model thread on the test's OS thread,
/// so concurrent tests do not see each other's bugs.
#[cfg(loom)]
pub mod weaken {
    use std::cell::Cell;

    pub use super::Bug;

    thread_local! {
        static BUG: Cell<Bug> = const { Cell::new(Bug::None) };
    }

    /// Switches `bug` on for models run from this thread.
    pub fn set(bug: Bug) {
        BUG.with(|b| b.set(bug));
    }

    /// True if `bug` is switched on.
    pub(crate) fn on(bug: Bug) -> bool {
        BUG.with(|b| b.get() == bug)
    }
}
