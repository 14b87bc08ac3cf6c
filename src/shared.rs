//! The state shared by the cache handle, its writers and the flusher.

use crossbeam_utils::CachePadded;

use crate::config::Config;
use crate::counters::PublishedCounts;
use crate::error::{Error, StoreError};
use crate::index::{Ident, Index, Slot};
use crate::primitives::{
    self, Arc, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Condvar, Mutex, Ordering,
};
use crate::ring::Ring;
use crate::store::{in_flight_bound, StoreInfo};
use crate::version::Version;
use crate::wakers::{self, Wakers};

/// What a writer pushes for each applied update: which index slot changed,
/// and to which version (16 bytes). The value itself stays in the index; the flusher reads the
/// newest one when it cuts a batch (coalescing for free).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change {
    pub slot: Slot,
    pub version: Version,
}

/// An entry a load made resident, as the flusher hears of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadedNote {
    pub slot: Slot,
    /// Whose cell it was: by the time the flusher reads the note, the entry
    /// may have been freed and reused for another key.
    pub ident: Ident,
    pub version: Version,
    /// The loaded record's encoded length.
    pub len: usize,
}

/// Most notes of loaded entries waiting for the flusher.
pub(crate) const LOADED_MAX: usize = 1 << 16;

/// Lane states.
pub(crate) const LANE_FREE: u8 = 0;
pub(crate) const LANE_ACTIVE: u8 = 1;
pub(crate) const LANE_RETIRED: u8 = 2;

/// A writer's lane: its ring, its registration and handshake state, and
/// where it parks. There are `writers_max` lanes; `writer()` takes a free one.
#[derive(Debug)]
pub(crate) struct Lane {
    /// `LANE_FREE -> LANE_ACTIVE` (`writer()`), `-> LANE_RETIRED` (the
    /// writer dropped), `-> LANE_FREE` (the flusher drained the ring).
    pub state: AtomicU8,
    pub ring: Arc<Ring<Change>>,
    /// True while the writer is inside an operation; with `Shared::closing`
    /// it forms the handshake that lets `close()` wait for in-progress puts
    /// (see `Writer::begin_op`). Written on every operation, so it has a line
    /// of its own.
    pub op_active: CachePadded<AtomicBool>,
    /// Times the writer found its ring full.
    pub full_events: AtomicU64,
    /// Threads parked (or about to park) and tasks awaiting room in the
    /// ring: the writer itself, or callers of the shared entry
    /// (`WriteBehind::put`) that found its ring full.
    pub waiters: AtomicU32,
    /// The tasks awaiting room; parked threads wait on `room` under it.
    pub park: Mutex<Wakers>,
    pub room: Condvar,
}

/// Bits of `Shared::closing`. Any bit set refuses new writer operations
/// (`Writer::begin_op` tests the whole byte, so a writer's fast path pays
/// for no check of its own); [`Shared::refusal`] says which.
pub(crate) const CLOSE_REQUESTED: u8 = 1;
/// Set by the flusher with a SeqCst RMW before it checks `op_active`.
pub(crate) const CLOSE_SEALED: u8 = 2;
/// The flusher thread died (panicked): nothing will be persisted any more.
/// Set once, by [`Shared::announce_died`].
pub(crate) const FLUSHER_DEAD: u8 = 4;
/// The flusher gave up on the store (`Config::retries_max`); set once, by
/// [`Shared::refuse_after_giving_up`], with the reason in `Progress::gave_up`.
pub(crate) const STORE_GAVE_UP: u8 = 8;

/// Sync/close progress, published by the flusher under a mutex so waiters
/// can sleep on a condvar.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Highest `sync()` generation made durable.
    pub synced_gen: u64,
    /// Highest `compact()` generation finished, and the last compaction's
    /// error, if it failed.
    pub compacted_gen: u64,
    pub compact_error: Option<StoreError>,
    /// The flusher has exited; `Some(Err)` says why if it failed.
    pub stopped: Option<Result<(), String>>,
    /// Why the flusher gave up on the store, if it did (an
    /// `Error::StoreGaveUp`).
    pub gave_up: Option<Error>,
    /// The flusher's thread is done with everything but returning: the
    /// flusher and its store are dropped (set after `stopped`, by the
    /// thread's `StopGuard`). Joining it then does not wait.
    pub exited: bool,
    /// Tasks awaiting a sync generation or the end of the flusher
    /// (`sync_async`, `close_async`); woken whenever either moves.
    pub wakers: Wakers,
}

/// Everything shared.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub index: Index,
    pub lanes: Box<[Lane]>,
    /// `CLOSE_REQUESTED | CLOSE_SEALED | FLUSHER_DEAD` bits.
    pub closing: AtomicU8,
    /// The flusher is parked or about to park.
    pub flusher_sleeping: AtomicBool,
    /// Set by wakers, cleared by the flusher; the flusher waits on
    /// `flusher_cv` for it. (A flag under a mutex rather than thread
    /// park/unpark: a wake-up cannot be lost whatever else the flusher was
    /// blocked on when it came.)
    pub flusher_wake: Mutex<bool>,
    pub flusher_cv: Condvar,
    /// `sync()` generations requested so far.
    pub sync_requested: AtomicU64,
    /// `compact()` generations requested so far.
    pub compact_requested: AtomicU64,
    /// Set once the flusher has exited (so blocked writers stop waiting).
    pub flusher_stopped: AtomicBool,
    pub progress: Mutex<Progress>,
    pub progress_cv: Condvar,
    pub counters: PublishedCounts,
    pub last_error: Mutex<Option<StoreError>>,
    pub backend: &'static str,
    /// The store's reader of single keys (read-through), if it has one.
    /// Without one every key is resident and nothing is evicted.
    pub reader: Option<Arc<dyn crate::store::StoreReader>>,
    /// Loads in progress, and their counts.
    pub loads: crate::read_through::Loads,
    /// Entries loads made resident, for the flusher's per-key state (a
    /// loaded entry is clean: evictable). Bounded by `LOADED_MAX`.
    pub loaded: Mutex<Vec<LoadedNote>>,
    pub loaded_room: Condvar,
    /// The most batches the flusher keeps in flight on this store.
    pub in_flight_max: usize,
    /// What recovery reported: torn tails cut, records located unread.
    pub torn_tails: u64,
    pub records_unread: u64,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        index: Index,
        store: StoreInfo,
        reader: Option<Arc<dyn crate::store::StoreReader>>,
        recovered: &crate::store::RecoveryReport,
    ) -> Self {
        let in_flight_max = in_flight_bound(store, config.batches_in_flight_max);
        let lanes = (0..config.writers_max)
            .map(|_| Lane {
                state: AtomicU8::new(LANE_FREE),
                ring: Ring::new(config.ring_capacity),
                op_active: CachePadded::new(AtomicBool::new(false)),
                full_events: AtomicU64::new(0),
                waiters: AtomicU32::new(0),
                park: Mutex::new(Wakers::default()),
                room: Condvar::new(),
            })
            .collect();
        Self {
            config,
            index,
            lanes,
            closing: AtomicU8::new(0),
            flusher_sleeping: AtomicBool::new(false),
            flusher_wake: Mutex::new(false),
            flusher_cv: Condvar::new(),
            sync_requested: AtomicU64::new(0),
            compact_requested: AtomicU64::new(0),
            flusher_stopped: AtomicBool::new(false),
            progress: Mutex::new(Progress::default()),
            progress_cv: Condvar::new(),
            counters: PublishedCounts::new(),
            last_error: Mutex::new(None),
            backend: store.backend,
            reader,
            loads: Default::default(),
            loaded: Mutex::new(Vec::new()),
            loaded_room: Condvar::new(),
            in_flight_max,
            torn_tails: recovered.torn_tails,
            records_unread: recovered.unvisited.records,
        }
    }

    /// Tells the flusher that a load made `slot` resident as `ident` at
    /// `version` (clean), from a record of `len` bytes. Waits while `LOADED_MAX` such notes are unread (a reader
    /// that loaded from the store waits a little more, rather than the
    /// queue growing without bound).
    pub(crate) fn note_loaded(&self, slot: Slot, ident: Ident, version: Version, len: usize) {
        let mut loaded = primitives::lock(&self.loaded);
        while loaded.len() >= LOADED_MAX {
            // Acquire: pairs with the flusher's Release store on exit.
            if self.flusher_stopped.load(Ordering::Acquire) {
                return; // nothing will evict it any more
            }
            self.wake_flusher();
            loaded = primitives::wait_timeout(
                &self.loaded_room,
                loaded,
                std::time::Duration::from_millis(10),
            );
        }
        loaded.push(LoadedNote {
            slot,
            ident,
            version,
            len,
        });
    }

    /// Wakes the flusher (or makes its next wait return at once).
    pub(crate) fn wake_flusher(&self) {
        *primitives::lock(&self.flusher_wake) = true;
        self.flusher_cv.notify_one();
    }

    /// Wakes the flusher if it is asleep. The caller has published the reason
    /// (a request flag, a ring position) before calling.
    #[inline]
    pub(crate) fn wake_flusher_if_sleeping(&self) {
        // SeqCst fence: pairs with the flusher's fence between setting
        // `flusher_sleeping` and re-checking for work (Dekker): either it sees
        // our reason or we see it sleeping.
        primitives::fence(Ordering::SeqCst);
        if self.flusher_sleeping.load(Ordering::Relaxed) {
            self.wake_flusher();
        }
    }

    /// Publishes that the flusher has exited (`outcome`; with every sync up to
    /// `synced_gen` served, if given) and releases everyone waiting on it:
    /// `sync()`/`compact()` callers and writers parked on a full ring.
    pub(crate) fn announce_stopped(&self, outcome: Result<(), String>, synced_gen: Option<u64>) {
        self.announce(outcome, synced_gen, false);
    }

    /// Publishes that the flusher thread died (panicked) for `reason`:
    /// from now on every writer operation is refused with
    /// [`Error::FlusherDied`], and everyone waiting is released with it.
    pub(crate) fn announce_died(&self, reason: String) {
        self.announce(Err(reason), None, true);
    }

    /// The flusher gives up on the store with `error` (an
    /// `Error::StoreGaveUp`): from now on updates are refused with it;
    /// waiters get it once the flusher announces its stop.
    pub(crate) fn refuse_after_giving_up(&self, error: Error) {
        let mut progress = primitives::lock(&self.progress);
        progress.gave_up = Some(error);
        // Release, under the lock that holds the reason (as a death's): a
        // writer that sees the bit (Acquire, in `refusal`) finds it there.
        self.closing.fetch_or(STORE_GAVE_UP, Ordering::Release);
    }

    fn announce(&self, outcome: Result<(), String>, synced_gen: Option<u64>, died: bool) {
        {
            let mut progress = primitives::lock(&self.progress);
            if let Some(gen) = synced_gen {
                progress.synced_gen = progress.synced_gen.max(gen);
            }
            progress.stopped = Some(outcome);
            if died {
                // Release, under the lock that holds the reason: a writer that
                // sees the bit (Acquire, in `death`) finds the reason there.
                // Set before `flusher_stopped`, so a writer released below
                // sees it too.
                self.closing.fetch_or(FLUSHER_DEAD, Ordering::Release);
            }
            // Release: pairs with the Acquire loads of parked writers. Under
            // the lock, so a waiter released by `stopped` (even on its own
            // timeout) sees the flusher stopped in `stats()` too.
            self.flusher_stopped.store(true, Ordering::Release);
        }
        self.notify_progress();
        for lane in self.lanes.iter() {
            // Under the mutex a parked writer holds until it waits.
            let mut park = primitives::lock(&lane.park);
            let tasks = park.take();
            lane.room.notify_all();
            drop(park);
            wakers::wake_all(tasks);
        }
    }

    /// Wakes everyone waiting for `progress` to move: threads on the
    /// condvar, tasks through their wakers. The caller has changed it
    /// under its mutex (and let go of it).
    pub(crate) fn notify_progress(&self) {
        let tasks = primitives::lock(&self.progress).wakers.take();
        self.progress_cv.notify_all();
        wakers::wake_all(tasks);
    }

    /// Wakes whoever waits for room in `lane`'s ring, if anyone does. The
    /// caller has just freed room (a Release store of the ring's head).
    pub(crate) fn notify_room(&self, lane: &Lane) {
        // SeqCst fence: pairs with a waiter's fence between counting itself
        // in `waiters` and re-checking room (Dekker): either it sees the
        // room or we see it.
        primitives::fence(Ordering::SeqCst);
        if lane.waiters.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut park = primitives::lock(&lane.park);
        let tasks = park.take();
        lane.room.notify_all();
        drop(park);
        wakers::wake_all(tasks);
    }

    /// True once `close()` has begun or the flusher died: writer operations
    /// are refused (with [`Shared::refusal`]).
    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed) != 0
    }

    /// Why writer operations are refused, once `is_closing()`:
    /// [`Error::FlusherDied`] if the flusher died, else [`Error::Closed`].
    #[cold]
    pub(crate) fn refusal(&self) -> Error {
        // Acquire: pairs with the Release RMW in `announce_gave_up`.
        if self.closing.load(Ordering::Acquire) & STORE_GAVE_UP != 0 {
            if let Some(e) = &primitives::lock(&self.progress).gave_up {
                return e.clone();
            }
        }
        match self.death() {
            Some(reason) => Error::FlusherDied(reason),
            None => Error::Closed,
        }
    }

    /// The reason the flusher thread died, if it did.
    pub(crate) fn death(&self) -> Option<String> {
        // Acquire: pairs with the Release RMW in `announce`, so the reason
        // it stored under `progress` is there.
        if self.closing.load(Ordering::Acquire) & FLUSHER_DEAD == 0 {
            return None;
        }
        match &primitives::lock(&self.progress).stopped {
            Some(Err(reason)) => Some(reason.clone()),
            _ => Some("the flusher thread panicked".into()),
        }
    }
}
