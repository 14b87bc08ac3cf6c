//! The shared entry: [`WriteBehind::put`], [`delete`](WriteBehind::delete),
//! [`add`](WriteBehind::add) and their `_async` twins, for callers that
//! cannot own a [`Writer`] each (many tasks on a few runtime threads,
//! request handlers).
//!
//! The cache keeps a few writers of its own, one per core up to half of
//! `writers_max`, each behind a mutex, made as concurrency needs them. A
//! call takes a free one (its thread's own first), else makes one, else
//! waits for its own; it
//! holds it for one update only, never while waiting for room (the update
//! is tried under `Backpressure::Fail` and retried as the policy says,
//! `crate::retry`). A writer is made (and takes a lane) on first use.
//! Same-key updates through different writers still resolve by version.

use std::cell::Cell;
use std::sync::atomic::AtomicUsize;

use crate::cache::WriteBehind;
use crate::config::Backpressure;
use crate::error::Error;
use crate::index::{Update, Written};
use crate::primitives::{self, Arc, Mutex, MutexGuard, Ordering};
use crate::retry::{retry_async, retry_blocking};
use crate::shared::Shared;
use crate::version::Version;
use crate::writer::Writer;

/// Which writer each thread tries first: threads are dealt out in turn.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

std::thread_local! {
    static HOME: Cell<usize> = Cell::new(NEXT_HOME.fetch_add(1, Ordering::Relaxed));
}

/// The cache's own writers.
#[derive(Debug)]
pub(crate) struct SharedWriters {
    writers: Box<[Mutex<Option<Writer>>]>,
}

impl SharedWriters {
    /// Room for one writer per core, and at most half of `writers_max` (the
    /// rest stay for writers of one's own); none made yet.
    pub(crate) fn new(writers_max: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let writers = (0..cores.min(writers_max / 2).max(1))
            .map(|_| Mutex::new(None))
            .collect();
        Self { writers }
    }

    /// One try of `update` under `Backpressure::Fail` on one of the
    /// writers, and the lane it used.
    fn try_update(
        &self,
        shared: &Arc<Shared>,
        key: &[u8],
        update: Update<'_>,
    ) -> (Result<Written, Error>, usize) {
        match self.take(shared) {
            Ok(mut guard) => match guard.as_mut() {
                Some(w) => (w.update(key, update, Backpressure::Fail), w.lane()),
                None => (Err(too_many(shared)), 0),
            },
            Err(e) => (Err(e), 0),
        }
    }

    /// A writer for one update: this thread's if it is made and free, else
    /// any made and free one, else a new one in a free slot (so lanes are
    /// taken only as concurrency needs them), else this thread's (or the
    /// next made one) once it is free. The guard holds a writer (`Some`).
    fn take(&self, shared: &Arc<Shared>) -> Result<MutexGuard<'_, Option<Writer>>, Error> {
        let n = self.writers.len();
        let home = HOME.with(Cell::get) % n;
        let turn = (0..n).map(|i| &self.writers[(home + i) % n]);
        for slot in turn.clone() {
            if let Some(guard) = primitives::try_lock(slot).filter(|g| g.is_some()) {
                return Ok(guard);
            }
        }
        for slot in turn.clone() {
            if let Some(mut guard) = primitives::try_lock(slot) {
                if made(&mut guard, shared)? {
                    return Ok(guard);
                }
            }
        }
        // All busy (or no lane left for a new one): wait, home first.
        for slot in turn {
            let mut guard = primitives::lock(slot);
            if made(&mut guard, shared)? {
                return Ok(guard);
            }
        }
        Err(too_many(shared))
    }
}

/// Makes the writer of `slot` if it has none; false if every lane is taken.
fn made(slot: &mut Option<Writer>, shared: &Arc<Shared>) -> Result<bool, Error> {
    if slot.is_none() {
        match crate::writer::register(shared) {
            Ok(w) => *slot = Some(w),
            Err(Error::TooManyWriters { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn too_many(shared: &Shared) -> Error {
    Error::TooManyWriters {
        max: shared.config.writers_max,
    }
}

/// The shared entry (see the module's docs above).
impl WriteBehind {
    /// Sets `key` to `value` from any thread, without a [`Writer`] of
    /// your own; returns the update's version. Waits for room as
    /// `Config::backpressure` says, as [`Writer::put`] does.
    ///
    /// A writer of your own is faster (no mutex, its ring's lines stay in
    /// its core's cache); this is for code that cannot keep one, like
    /// tasks that move between threads. The cache keeps a writer per core
    /// for it (at most half of `writers_max`), each taking a lane when
    /// concurrency first needs it, so fewer are left for
    /// [`writer`](Self::writer).
    ///
    /// ```
    /// # use writebehind::{Config, MemStore, WriteBehind};
    /// let wb = std::sync::Arc::new(WriteBehind::with_store(MemStore::new(), Config::default())?);
    /// let handles: Vec<_> = (0..4)
    ///     .map(|t| {
    ///         let wb = wb.clone();
    ///         std::thread::spawn(move || wb.put(format!("k{t}").as_bytes(), b"v"))
    ///     })
    ///     .collect();
    /// for h in handles {
    ///     h.join().unwrap()?;
    /// }
    /// assert_eq!(wb.get(b"k3")?.as_deref(), Some(&b"v"[..]));
    /// wb.close()?;
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Writer::put`], and [`Error::TooManyWriters`] if every lane is
    /// taken by writers of your own.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Version, Error> {
        self.update_shared(key, Update::Put(value))
            .map(|w| w.version)
    }

    /// Deletes `key` from any thread (as [`Writer::delete`]; see
    /// [`put`](Self::put)).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn delete(&self, key: &[u8]) -> Result<bool, Error> {
        self.update_shared(key, Update::Delete).map(|w| w.changed)
    }

    /// Adds `delta` to the counter at `key` from any thread (as
    /// [`Writer::add`]; see [`put`](Self::put)).
    ///
    /// # Errors
    /// As [`Writer::add`], and [`Error::TooManyWriters`] as [`put`](Self::put).
    pub fn add(&self, key: &[u8], delta: i64) -> Result<i64, Error> {
        self.update_shared(key, Update::Add(delta))
            .map(|w| w.counter)
    }

    /// [`put`](Self::put) for async code: where `put` would park the
    /// thread, this awaits, woken by the flusher; no writer is held
    /// meanwhile. The future is `Send`, so any task on any runtime may
    /// call it.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn put_async(&self, key: &[u8], value: &[u8]) -> Result<Version, Error> {
        self.update_shared_async(key, Update::Put(value))
            .await
            .map(|w| w.version)
    }

    /// [`delete`](Self::delete), awaiting where it would park.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn delete_async(&self, key: &[u8]) -> Result<bool, Error> {
        self.update_shared_async(key, Update::Delete)
            .await
            .map(|w| w.changed)
    }

    /// [`add`](Self::add), awaiting where it would park. A counter not in
    /// memory is still read from the store on the calling thread.
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub async fn add_async(&self, key: &[u8], delta: i64) -> Result<i64, Error> {
        self.update_shared_async(key, Update::Add(delta))
            .await
            .map(|w| w.counter)
    }

    fn update_shared(&self, key: &[u8], update: Update<'_>) -> Result<Written, Error> {
        let shared = self.shared();
        retry_blocking(shared, || {
            self.shared_writers().try_update(shared, key, update)
        })
    }

    async fn update_shared_async(&self, key: &[u8], update: Update<'_>) -> Result<Written, Error> {
        let shared = self.shared();
        retry_async(shared, || {
            self.shared_writers().try_update(shared, key, update)
        })
        .await
    }
}
