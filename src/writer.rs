//! `Writer`: a thread's handle for updates. It owns one SPSC ring, so
//! updates from one writer reach the flusher in order (G1), and an update is
//! acknowledged as soon as it is in the index and the ring.

use std::cell::Cell;
use std::marker::PhantomData;

use crate::config::Backpressure;
use crate::error::Error;
use crate::index::{Update, Upserted, Written};
use crate::primitives::{self, Arc, Backoff, Ordering};
use crate::read_through::Counter;
use crate::ring::{Producer, Ring};
use crate::shared::{Change, Shared, LANE_ACTIVE, LANE_FREE, LANE_RETIRED};
use crate::version::Version;

/// Loads of a counter not in memory one `add` tries before it gives up (each
/// retry needs the loaded entry evicted again before the add reached it).
const LOADS_MAX: usize = 8;

/// A handle for updates, made by [`WriteBehind::writer`](crate::WriteBehind::writer).
///
/// `Send` but not `Sync` and every method takes `&mut self`: one thread at a
/// time pushes into its ring, by construction. Dropping it frees its lane
/// once the flusher has drained the ring.
///
/// ```
/// use writebehind::{Config, MemStore, WriteBehind};
/// let wb = WriteBehind::with_store(MemStore::new(), Config::default())?;
/// let mut w = wb.writer()?;
/// w.put(b"player:7", b"score=10")?;
/// assert_eq!(w.add(b"hits", 2)?, 2);
/// assert_eq!(wb.get(b"player:7")?.as_deref(), Some(&b"score=10"[..]));
/// wb.close()?;
/// # Ok::<(), writebehind::Error>(())
/// ```
///
/// A writer cannot be shared between threads:
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<writebehind::Writer>();
/// ```
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    lane: usize,
    producer: Producer<Change>,
    /// Ring length at which a sleeping flusher is woken.
    wake_at: usize,
    last_version: Version,
    /// `Send`, not `Sync`: one thread uses a writer at a time.
    _not_sync: PhantomData<Cell<()>>,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, lane: usize) -> Self {
        let producer = Ring::producer(&shared.lanes[lane].ring);
        let wake_at = producer.capacity() / 2;
        Self {
            shared,
            lane,
            producer,
            wake_at,
            last_version: Version(0),
            _not_sync: PhantomData,
        }
    }

    /// Sets `key` to `value`; returns the update's version.
    ///
    /// # Errors
    /// [`Error::ValueTooLong`] (over `Config::value_bytes_max`), and
    /// [`Error::EmptyKey`] or [`Error::KeyTooLong`]: nothing applied.
    /// [`Error::Full`] (`Backpressure::Fail`: the writer's ring is full,
    /// as it gets while the dirty set is), [`Error::IndexFull`] (`keys_max` keys resident,
    /// also under `Block` after one durability barrier) or
    /// [`Error::MemoryFull`] (memory is all dirty): nothing applied; retry
    /// later. [`Error::Closed`] once `close()` began, [`Error::FlusherDied`]
    /// if the flusher died.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Version, Error> {
        let policy = self.shared.config.backpressure;
        self.update(key, Update::Put(value), policy)
            .map(|w| w.version)
    }

    /// Deletes `key`. Returns false (and changes nothing) if it has no
    /// value. A key not in memory is deleted without reading the store: if
    /// the store can tell it holds no value without I/O (the file store,
    /// `MemStore`), nothing changes; else (PostgreSQL) a tombstone is
    /// written and this returns true, whether or not the store held a
    /// value.
    ///
    /// # Errors
    /// [`Error::EmptyKey`] or [`Error::KeyTooLong`]: nothing applied.
    /// [`Error::Full`] (`Backpressure::Fail`: the writer's ring is full,
    /// as it gets while the dirty set is), [`Error::IndexFull`] (`keys_max` keys resident,
    /// also under `Block` after one durability barrier) or
    /// [`Error::MemoryFull`] (memory is all dirty): nothing applied; retry
    /// later. [`Error::Closed`] once `close()` began, [`Error::FlusherDied`]
    /// if the flusher died.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        let policy = self.shared.config.backpressure;
        self.update(key, Update::Delete, policy).map(|w| w.changed)
    }

    /// Adds `delta` to the counter at `key` (8 bytes, little-endian `i64`; a
    /// missing key counts as 0) and returns the new value. A key holding
    /// anything else is refused with [`Error::NotACounter`]. A counter not in
    /// memory is read from the store first (like
    /// [`WriteBehind::get`](crate::WriteBehind::get)), so this `add` waits for
    /// that I/O; `put` and `delete` never do.
    ///
    /// # Errors
    /// [`Error::NotACounter`] or [`Error::CounterOverflow`]: nothing
    /// applied. [`Error::Store`] if the counter could not be read from the
    /// store. And as [`put`](Self::put):
    /// [`Error::EmptyKey`] or [`Error::KeyTooLong`]: nothing applied.
    /// [`Error::Full`] (`Backpressure::Fail`: the writer's ring is full,
    /// as it gets while the dirty set is), [`Error::IndexFull`] (`keys_max` keys resident,
    /// also under `Block` after one durability barrier) or
    /// [`Error::MemoryFull`] (memory is all dirty): nothing applied; retry
    /// later. [`Error::Closed`] once `close()` began, [`Error::FlusherDied`]
    /// if the flusher died.
    pub fn add(&mut self, key: &[u8], delta: i64) -> Result<i64, Error> {
        let policy = self.shared.config.backpressure;
        self.update(key, Update::Add(delta), policy)
            .map(|w| w.counter)
    }

    /// [`put`](Self::put) for async code: where `put` would park the
    /// thread (`Backpressure::Block` and a full ring, or memory all dirty),
    /// this awaits, woken by the flusher. Otherwise it is `put`: an update
    /// that finds room completes at its first poll. Needs no particular
    /// runtime. The future is `Send`.
    ///
    /// ```
    /// # use writebehind::{Config, MemStore, WriteBehind};
    /// # let wb = WriteBehind::with_store(MemStore::new(), Config::default())?;
    /// # let block_on = writebehind::testing::block_on;
    /// let mut w = wb.writer()?;
    /// let version = block_on(w.put_async(b"k", b"v"))?;
    /// assert_eq!(wb.get(b"k")?.map(|v| v.version()), Some(version));
    /// # drop(w); wb.close()?;
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`put`](Self::put), but for one difference: with memory all dirty
    /// and the store failing, `put` waits up to `Config::close_timeout`
    /// for it to recover and this returns [`Error::MemoryFull`] at once
    /// (bound any wait with your runtime's timeout).
    pub async fn put_async(&mut self, key: &[u8], value: &[u8]) -> Result<Version, Error> {
        self.update_async(key, Update::Put(value))
            .await
            .map(|w| w.version)
    }

    /// [`delete`](Self::delete) for async code, awaiting where `delete`
    /// would park (see [`put_async`](Self::put_async)).
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub async fn delete_async(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.update_async(key, Update::Delete)
            .await
            .map(|w| w.changed)
    }

    /// [`add`](Self::add) for async code, awaiting where `add` would park
    /// (see [`put_async`](Self::put_async)). A counter not in memory is still
    /// read from the store on the calling thread.
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub async fn add_async(&mut self, key: &[u8], delta: i64) -> Result<i64, Error> {
        self.update_async(key, Update::Add(delta))
            .await
            .map(|w| w.counter)
    }

    async fn update_async(&mut self, key: &[u8], update: Update<'_>) -> Result<Written, Error> {
        let shared = Arc::clone(&self.shared);
        let lane = self.lane;
        crate::retry::retry_async(&shared, || {
            (self.update(key, update, Backpressure::Fail), lane)
        })
        .await
    }

    /// The version of this writer's last update that changed something.
    pub fn last_version(&self) -> Version {
        self.last_version
    }

    /// Pins the calling thread to `core` (the writer belongs to the thread
    /// that uses it; pin from that thread).
    ///
    /// # Errors
    /// [`Error::Pin`] if the process may not run on `core`.
    pub fn pin(&mut self, core: usize) -> Result<(), Error> {
        pin_current_thread(core)
    }

    fn check_key(&self, key: &[u8]) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > self.shared.config.key_bytes_max {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: self.shared.config.key_bytes_max,
            });
        }
        Ok(())
    }

    /// Checks and applies one update, waiting for room as `policy` says.
    pub(crate) fn update(
        &mut self,
        key: &[u8],
        update: Update<'_>,
        policy: Backpressure,
    ) -> Result<Written, Error> {
        self.check_key(key)?;
        if let Update::Put(value) = update {
            if value.len() > self.shared.config.value_bytes_max {
                return Err(Error::ValueTooLong {
                    len: value.len(),
                    max: self.shared.config.value_bytes_max,
                });
            }
        }
        self.begin_op()?;
        let result = self.apply(key, update, policy);
        self.end_op();
        result
    }

    /// The index of this writer's lane.
    pub(crate) fn lane(&self) -> usize {
        self.lane
    }

    /// Marks an operation in progress and checks that the cache is open.
    ///
    /// With the flusher's side in `Flusher::check_close` this is a Dekker
    /// handshake:
    /// the writer stores `op_active = true`, fences, loads `closing`; the
    /// flusher sets `closing` with a read-modify-write, fences, loads
    /// `op_active`. Under SeqCst fences at least one of them sees the other,
    /// so either this operation is refused with `Closed`, or the flusher waits
    /// for it and drains what it pushed (G7).
    ///
    /// The same load refuses every operation after the flusher died: its
    /// death sets a bit of `closing` (`FLUSHER_DEAD`), so the fast path reads
    /// nothing more; only the refusal looks up which error it is. (An
    /// operation that passed this check just before the death is acknowledged
    /// concurrently with it; `sync()` and `close()` report the death.)
    #[inline]
    fn begin_op(&mut self) -> Result<(), Error> {
        let lane = &self.shared.lanes[self.lane];
        lane.op_active.store(true, Ordering::Relaxed);
        primitives::fence(Ordering::SeqCst);
        if self.shared.is_closing() {
            lane.op_active.store(false, Ordering::Relaxed);
            return Err(self.shared.refusal());
        }
        Ok(())
    }

    #[inline]
    fn end_op(&mut self) {
        // Release: the ring push happens-before the flusher's Acquire load that
        // sees the operation finished.
        self.shared.lanes[self.lane]
            .op_active
            .store(false, Ordering::Release);
    }

    fn apply(
        &mut self,
        key: &[u8],
        update: Update<'_>,
        policy: Backpressure,
    ) -> Result<Written, Error> {
        // 1. Reserve a ring cell first, so a refusal leaves nothing applied.
        if !self.producer.has_room() {
            self.wait_for_room(policy)?;
        }
        // 2. Find (or create) the entry and update it (`write_entry`).
        let Some((slot, written)) = write_entry(&self.shared, key, update, policy)? else {
            return Ok(Written {
                version: Version(0),
                counter: 0,
                changed: false,
            });
        };
        if !written.changed {
            return Ok(written);
        }
        // 3. Tell the flusher which entry changed, in order.
        self.producer.push_reserved(Change {
            slot,
            version: written.version,
        });
        self.last_version = written.version;
        // The cached length only grows until the ring looks full; check the
        // real one before paying for a fence and a possible unpark.
        if self.producer.len_upper_bound() >= self.wake_at
            && self.producer.refresh_len() >= self.wake_at
        {
            self.shared.wake_flusher_if_sleeping();
        }
        Ok(written)
    }

    /// The ring is full: apply the backpressure policy.
    #[cold]
    fn wait_for_room(&mut self, policy: Backpressure) -> Result<(), Error> {
        let shared = Arc::clone(&self.shared);
        shared.lanes[self.lane]
            .full_events
            .fetch_add(1, Ordering::Relaxed);
        shared.wake_flusher();
        if policy == Backpressure::Fail {
            return Err(Error::Full);
        }
        // Spin, then yield, a bounded number of times.
        let mut backoff = Backoff::new();
        while !backoff.is_completed() {
            if self.producer.has_room() {
                return Ok(());
            }
            backoff.snooze();
        }
        // Then park until the flusher frees room.
        crate::room::park_until_room(&shared, self.lane, || self.producer.has_room())
    }
}

/// Finds or makes `key`'s entry and applies `update` to it: value and
/// version change together. A write to an entry the flusher freed between
/// the lookup and the write is refused as stale, and the key is looked up
/// again: the next lookup finds the key's new entry or makes one (a freed
/// entry never comes back to the lookup that saw it), so this repeats only
/// if the key's entry is freed again in between, which takes it being made
/// durable and freed each time. `None`: a delete of a key nobody holds.
fn write_entry(
    shared: &Shared,
    key: &[u8],
    update: Update<'_>,
    policy: Backpressure,
) -> Result<Option<(crate::index::Slot, Written)>, Error> {
    let index = &shared.index;
    let (mut waited, mut loads) = (false, 0);
    loop {
        let (new, guard) = match (index.find(key), update) {
            (Some(found), update) => match found.entry.write(found.ident, update)? {
                Some(written) => return Ok(Some((found.slot, written))),
                None => continue,
            },
            // Not in memory, and the store cannot hold it either (no
            // reader behind, or the reader knows it holds none).
            (None, Update::Delete)
                if shared
                    .reader
                    .as_ref()
                    .is_none_or(|r| r.holds(key) == Some(false)) =>
            {
                return Ok(None);
            }
            // A counter not in memory is loaded first (the delta applies
            // to the stored value), then looked up again.
            (None, Update::Add(_)) if shared.reader.is_some() => {
                if loads == LOADS_MAX {
                    return Err(Error::Store(crate::error::StoreError::new(
                        crate::error::StoreErrorKind::Read,
                        "entries near the counter were evicted during each of its loads; try again",
                    )));
                }
                loads += 1;
                match crate::read_through::make_resident(shared, key) {
                    Ok(Counter::Resident | Counter::Again) => continue,
                    Ok(Counter::Absent(ticket)) => (update, Some(ticket)),
                    Err(e) => {
                        wait_once(shared, e, &mut waited, policy)?;
                        continue;
                    }
                }
            }
            // A delete of a key not in memory writes a tombstone: the
            // store may hold a value.
            (None, Update::Delete) => (Update::DeleteStored, None),
            (None, update) => (update, None),
        };
        match index.upsert(key, new, guard) {
            Ok(Upserted::Made(found, written)) => return Ok(Some((found.slot, written))),
            // Made meanwhile by another thread (the next lookup writes to
            // it), or the counter must be loaded again.
            Ok(Upserted::Found(_) | Upserted::Stale) => {}
            Err(e) => wait_once(shared, e, &mut waited, policy)?,
        }
    }
}

/// Memory is full (`MemoryFull`, `IndexFull`) and the policy is `Block`:
/// durability barriers, until the flusher says memory has room again. Each
/// makes every update acknowledged so far durable, so the flusher can evict
/// clean entries and free deleted keys' ones (G10, G12) before it serves
/// it; then the caller tries again. Bounded by `close_timeout` (and, for a
/// full index, one barrier: the index frees only deleted keys). Any other
/// error, a second wait, or under `Fail`: `e`.
#[cold]
pub(crate) fn wait_once(
    shared: &Shared,
    e: Error,
    waited: &mut bool,
    policy: Backpressure,
) -> Result<(), Error> {
    let full = matches!(e, Error::IndexFull { .. } | Error::MemoryFull { .. });
    if !full || *waited || policy != Backpressure::Block {
        return Err(e);
    }
    *waited = true;
    let start = std::time::Instant::now();
    let deadline = start.checked_add(shared.config.close_timeout);
    loop {
        match crate::cache::sync_until(shared, deadline) {
            // The store is failing: nothing can be freed; memory is full.
            Err(Error::Timeout { .. }) => return Err(e),
            Err(other) => return Err(other),
            Ok(()) => {}
        }
        let past = deadline.is_some_and(|d| std::time::Instant::now() >= d);
        if !matches!(e, Error::MemoryFull { .. }) || !shared.index.is_full() || past {
            return Ok(());
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if primitives::unwinding_in_model() {
            return;
        }
        // An operation that panicked midway left `op_active` set; close()
        // would wait on it for close_timeout.
        self.shared.lanes[self.lane]
            .op_active
            .store(false, Ordering::Release);
        // Release: every push happens-before the flusher's Acquire load of the
        // state, so it drains them all before freeing the slot.
        self.shared.lanes[self.lane]
            .state
            .store(LANE_RETIRED, Ordering::Release);
        self.shared.wake_flusher_if_sleeping();
    }
}

/// Registers a writer on a free lane (`WriteBehind::writer`).
pub(crate) fn register(shared: &Arc<Shared>) -> Result<Writer, Error> {
    if shared.is_closing() {
        return Err(shared.refusal());
    }
    for (i, lane) in shared.lanes.iter().enumerate() {
        // Acquire: the flusher's reads of the ring (before it freed the
        // lane) happen-before our writes.
        if lane
            .state
            .compare_exchange(LANE_FREE, LANE_ACTIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(Writer::new(Arc::clone(shared), i));
        }
    }
    Err(Error::TooManyWriters {
        max: shared.config.writers_max,
    })
}

/// Pins the calling thread to `core` with core_affinity.
pub(crate) fn pin_current_thread(core: usize) -> Result<(), Error> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let id = ids
        .into_iter()
        .find(|c| c.id == core)
        .ok_or(Error::Pin { core })?;
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(Error::Pin { core })
    }
}
