//! `WriteBehind`: the cache handle. Reads, `sync()`, `close()`, stats; and the
//! factory of [`Writer`]s.

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::flusher::{Flusher, StopGuard};
use crate::futures::{CloseFuture, SyncFuture};
use crate::index::Index;
use crate::primitives::{self, thread, Arc, Mutex, MutexGuard, Ordering};
use crate::shared::{Progress, Shared, CLOSE_REQUESTED};
use crate::shared_writers::SharedWriters;
use crate::stats::Stats;
use crate::store::file::{FileOptions, FileStore};
use crate::store::Store;
use crate::value::Value;
use crate::version::{Kind, Version};
use crate::writer::Writer;

/// A write-behind cache over a [`Store`].
///
/// Writers ([`WriteBehind::writer`]) update it at memory speed; one background
/// flusher thread coalesces their updates and persists them in batches.
/// [`get`](WriteBehind::get) reads from memory on any thread and sees every
/// update that returned before it started (G3). [`sync`](WriteBehind::sync) is
/// a durability barrier (G4); [`close`](WriteBehind::close) drains everything
/// (G7). Share it across threads with `Arc`; it is `Sync`, and any thread
/// may close it.
#[derive(Debug)]
pub struct WriteBehind {
    shared: Arc<Shared>,
    /// The writers of the shared entry (`put`, `put_async`...).
    shared_writers: SharedWriters,
    /// The flusher until the first `close` (or `Drop`) has joined it; then
    /// that close's outcome, which every later `close` returns.
    flusher: Mutex<Closing>,
}

/// Where closing stands.
#[derive(Debug)]
enum Closing {
    Running(thread::JoinHandle<Result<(), Error>>),
    Closed(Result<(), Error>),
}

impl WriteBehind {
    /// Opens a cache over `store`: validates `config`, recovers, and
    /// starts the flusher. A store that reads single keys
    /// ([`Store::reader`]) has nothing loaded: keys are read through on
    /// their first `get`, and recovery only raises the version floor over
    /// every stored version. A store that cannot has every live record
    /// loaded into the index. Either way each key's versions continue
    /// above the highest stored one.
    ///
    /// # Errors
    /// [`Error::Config`] if `config` does not validate (the message says
    /// what to change); the store's recovery errors ([`Error::Corrupt`],
    /// [`Error::Format`], [`Error::Io`], [`Error::Database`]...);
    /// [`Error::StoreBug`] if the store breaks the [`Store`] rules. Nothing
    /// in the store is changed by a failed open but what recovery repairs
    /// (a torn tail cut, an interrupted segment creation removed).
    pub fn with_store<S: Store>(mut store: S, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let reader = store.reader();
        let index = Index::new(config.keys_max)?;
        // Over a store that reads keys back, entries may be evicted.
        let index = match &reader {
            Some(_) => index.evictable(config.memory_bytes),
            None => index,
        };
        let report = {
            let backend = store.info().backend;
            let _span = tracing::info_span!("writebehind_recover", backend).entered();
            let start = Instant::now();
            let report = recover_into(&mut store, &index, &config, reader.is_none())?;
            tracing::info!(
                records = report.records,
                unvisited = report.unvisited.records,
                torn_tails = report.torn_tails,
                keys_loaded = index.len(),
                millis = millis(start.elapsed()),
                "recovered"
            );
            report
        };
        let shared = Arc::new(Shared::new(config, index, store.info(), reader, &report));
        let flusher = Flusher::new(Arc::clone(&shared), store);
        let guard = StopGuard(Arc::clone(&shared));
        let handle = thread::spawn_named("wb-flusher", move || flusher.run_guarded(guard))?;
        Ok(Self {
            shared_writers: SharedWriters::new(shared.config.writers_max),
            shared,
            flusher: Mutex::new(Closing::Running(handle)),
        })
    }

    /// Opens (or creates) the embedded file store in `dir` and a cache over
    /// it: recovers every key with its version, then starts the flusher. The
    /// store's options are [`FileOptions::for_cache`]`(&config)`; for others
    /// (segment size, I/O engine) use [`open_with`](Self::open_with).
    ///
    /// # Errors
    /// As [`with_store`](Self::with_store), and [`Error::Locked`] if
    /// another handle holds the directory, [`Error::Io`] if it cannot be
    /// created or opened.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("wb-doc-open-{}", std::process::id()));
    /// let wb = writebehind::WriteBehind::open(&dir, writebehind::Config::default())?;
    /// let mut w = wb.writer()?;
    /// w.put(b"k", b"v")?;
    /// drop(w);
    /// wb.close()?;
    /// let wb = writebehind::WriteBehind::open(&dir, writebehind::Config::default())?;
    /// assert_eq!(wb.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// # drop(wb); std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    pub fn open(dir: impl AsRef<std::path::Path>, config: Config) -> Result<Self, Error> {
        Self::open_with(dir, &FileOptions::for_cache(&config), config)
    }

    /// [`open`](Self::open) with the file store's options given. They are
    /// used as given, so start from [`FileOptions::for_cache`]`(&config)`,
    /// which matches them to the cache: a store that syncs every frame under
    /// a `Durability::Deferred` cache is safe but slow, and a `frame_bytes_max`
    /// below `batch_bytes_max` makes every larger batch start a new segment.
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`Error::Config`] if `file` does not
    /// validate ([`FileOptions::validate`]).
    ///
    /// ```
    /// use writebehind::{Config, FileOptions, IoBackend, WriteBehind};
    /// # let dir = tempfile::tempdir().map_err(writebehind::Error::Io)?;
    /// let config = Config::default();
    /// let file = FileOptions::for_cache(&config)
    ///     .segment_bytes_max(16 << 20)
    ///     .io_backend(IoBackend::Pwrite);
    /// let wb = WriteBehind::open_with(dir.path(), &file, config)?;
    /// # wb.close()?;
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    pub fn open_with(
        dir: impl AsRef<std::path::Path>,
        file: &FileOptions,
        config: Config,
    ) -> Result<Self, Error> {
        // The config first: a bad one must not even create the directory.
        config.validate()?;
        let store = FileStore::open(dir, file)?;
        Self::with_store(store, config)
    }

    /// Opens a cache over the PostgreSQL table `pg` names (cargo feature
    /// `postgres`): connects, creates or checks the table, and reads the
    /// highest version it holds (the version floor); no row is loaded:
    /// keys are read through on their first `get`. Then starts the
    /// flusher. The same as [`PgStore::open`](crate::PgStore::open) and
    /// [`WriteBehind::with_store`].
    ///
    /// # Errors
    /// As [`PgStore::open`](crate::PgStore::open) and
    /// [`with_store`](Self::with_store).
    ///
    /// ```no_run
    /// use writebehind::{Config, PgConfig, WriteBehind};
    /// let pg = PgConfig::new("postgresql://app@localhost/app");
    /// let wb = WriteBehind::open_postgres(pg, Config::default())?;
    /// # wb.close()?;
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn open_postgres(pg: crate::PgConfig, config: Config) -> Result<Self, Error> {
        let store = crate::PgStore::open(pg)?;
        Self::with_store(store, config)
    }

    /// Registers a writer. At most `Config::writers_max` exist at once; a
    /// dropped writer's lane is reused once the flusher has drained it.
    ///
    /// # Errors
    /// [`Error::TooManyWriters`] while `writers_max` writers exist (drop
    /// one), [`Error::Closed`] once `close()` began.
    pub fn writer(&self) -> Result<Writer, Error> {
        crate::writer::register(&self.shared)
    }

    /// The value of `key`, or `None` if it has none (never written, or
    /// deleted). Reads through (G11): a key not in memory is loaded from
    /// the store, which waits for its I/O, and made resident; concurrent
    /// misses of one key share one load. Sees every update that returned
    /// before it started (G3). For a read that never waits, see
    /// [`get_resident`](Self::get_resident).
    ///
    /// # Errors
    /// [`Error::Store`] if the store could not be read (the key stays not
    /// resident; try again).
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, Error> {
        let mut value = Value::empty();
        if let Some(snap) = self.shared.index.read(key, &mut value) {
            value.set_version(snap.version);
            return Ok((snap.kind == Kind::Put).then_some(value));
        }
        match &self.shared.reader {
            Some(reader) => crate::read_through::get_missed(&self.shared, &**reader, key),
            None => Ok(None),
        }
    }

    /// The value of `key` if it is in memory: never waits for I/O.
    /// `None` if the key has no live value in memory (it may have one in
    /// the store: see [`get`](Self::get)).
    pub fn get_resident(&self, key: &[u8]) -> Option<Value> {
        let mut value = Value::empty();
        let snap = self.shared.index.read(key, &mut value)?;
        value.set_version(snap.version);
        (snap.kind == Kind::Put).then_some(value)
    }

    /// The version of `key`'s live value, read through like
    /// [`get`](Self::get); `None` if it has none. While a deleted key's
    /// tombstone is in memory (until the flusher frees it), the
    /// tombstone's version.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn version(&self, key: &[u8]) -> Result<Option<Version>, Error> {
        let resident = self
            .shared
            .index
            .read(key, &mut Discard)
            .map(|snap| snap.version)
            .filter(|v| v.0 > 0);
        if resident.is_some() {
            return Ok(resident);
        }
        Ok(self.get(key)?.map(|v| v.version()))
    }

    /// Blocks until every update acknowledged before this call (on any
    /// thread, with a happens-before edge to it) is durable (G4).
    ///
    /// A failing store makes this wait (the flusher keeps retrying); use
    /// [`sync_timeout`](Self::sync_timeout) to bound the wait.
    ///
    /// # Errors
    /// [`Error::Closed`] if the cache stopped first, [`Error::FlusherDied`]
    /// if the flusher died.
    pub fn sync(&self) -> Result<(), Error> {
        self.sync_until(None)
    }

    /// Like [`sync`](Self::sync), giving up with [`Error::Timeout`] (which
    /// carries the store's last error) after `timeout`. A timeout too large
    /// to be a point in time (`Duration::MAX`) waits for ever, as `sync()`.
    ///
    /// # Errors
    /// As [`sync`](Self::sync), and [`Error::Timeout`].
    pub fn sync_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.sync_until(Instant::now().checked_add(timeout))
    }

    fn sync_until(&self, deadline: Option<Instant>) -> Result<(), Error> {
        sync_until(&self.shared, deadline)
    }

    /// Like [`sync`](Self::sync), as a future that holds no thread while it
    /// waits: the flusher wakes it once the barrier is durable. The barrier
    /// covers what was acknowledged before this call, whenever the future
    /// is first polled. Needs no particular runtime; bound the wait with the
    /// runtime's timeout.
    ///
    /// ```
    /// # use writebehind::{Config, MemStore, WriteBehind};
    /// # let wb = WriteBehind::with_store(MemStore::new(), Config::default())?;
    /// # let block_on = writebehind::testing::block_on;
    /// wb.put(b"k", b"v")?;
    /// block_on(wb.sync_async())?; // "k" is durable
    /// # wb.close()?;
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`] if the cache stopped first, [`Error::FlusherDied`]
    /// if the flusher died.
    pub fn sync_async(&self) -> SyncFuture<'_> {
        SyncFuture::new(&self.shared)
    }

    /// Compacts the store now: rewrites from memory the current value of
    /// every resident key the old storage still holds (tombstones not yet
    /// durable included; the records of deleted keys already freed are
    /// dropped, and the store keeps the version floor; the file
    /// store either rewrites the whole live set, or, when its disk could not
    /// hold a second copy, goes segment by segment, rewriting only each
    /// segment's live keys), makes it durable, then lets the store drop what
    /// it supersedes (the file store deletes its old segments). Writers and
    /// the flusher keep going meanwhile. Stores that do not compact return
    /// `Ok` at once. The file store also compacts by itself when
    /// `Config::compact_dead_ratio` and `compact_segments_min` are reached.
    ///
    /// No deadline while the store makes progress (a large store takes as
    /// long as it takes; [`compact_timeout`](Self::compact_timeout) bounds
    /// the wait).
    ///
    /// # Errors
    /// [`Error::Store`] if the store fails the compaction itself, or keeps
    /// failing for `Config::close_timeout` with not a single batch
    /// succeeding (a directory that is not writable): the compaction is
    /// then still pending and resumes once the store recovers.
    /// [`Error::FlusherDied`] or [`Error::Closed`] if the flusher stopped.
    pub fn compact(&self) -> Result<(), Error> {
        self.compact_until(None)
    }

    /// Like [`compact`](Self::compact), giving up with [`Error::Timeout`]
    /// (which carries the store's last error, so the caller sees why) after
    /// `timeout`. The compaction goes on in the background. A timeout too
    /// large to be a point in time (`Duration::MAX`) is no deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use writebehind::{Config, MemStore, WriteBehind};
    /// let wb = WriteBehind::with_store(MemStore::new(), Config::default())?;
    /// wb.compact_timeout(Duration::from_secs(60))?; // MemStore does not compact: Ok at once
    /// wb.close()?;
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`compact`](Self::compact), and [`Error::Timeout`].
    pub fn compact_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.compact_until(Instant::now().checked_add(timeout))
    }

    fn compact_until(&self, deadline: Option<Instant>) -> Result<(), Error> {
        let shared = &*self.shared;
        let start = Instant::now();
        // SeqCst RMW: the flusher acquires it.
        let gen = shared.compact_requested.fetch_add(1, Ordering::SeqCst) + 1;
        shared.wake_flusher();
        let mut failing = FailingSince::default();
        let mut progress = primitives::lock(&shared.progress);
        loop {
            if progress.compacted_gen >= gen {
                return match &progress.compact_error {
                    Some(e) => Err(Error::Store(e.clone())),
                    None => Ok(()),
                };
            }
            if failing.observe(shared, Instant::now()) >= shared.config.close_timeout {
                if let Some(e) = primitives::lock(&shared.last_error).clone() {
                    return Err(Error::Store(e));
                }
            }
            progress = wait_for_progress(shared, progress, deadline, start)?;
        }
    }

    /// Stops accepting updates, makes every acknowledged update durable, stops
    /// the flusher and closes the store. Returns the error that prevented it,
    /// if any (the store kept failing past `Config::close_timeout`).
    ///
    /// Any thread may call it, through a shared reference (an `Arc`), as
    /// many times as it likes: the first call closes, calls made meanwhile
    /// wait for it, and every call returns the same outcome. Afterwards
    /// updates are refused with [`Error::Closed`]; reads still answer from
    /// memory. `Drop` closes a cache nobody closed (logging an error through
    /// `tracing`, which is lost without a subscriber: close explicitly to
    /// see it).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] or [`Error::Timeout`] when the store kept failing
    /// past `Config::close_timeout` (acknowledged updates not covered by a
    /// successful `sync()` may be missing from it), [`Error::FlusherDied`]
    /// if the flusher thread died.
    pub fn close(&self) -> Result<(), Error> {
        self.close_once().0
    }

    /// Like [`close`](Self::close), as a future that holds no thread while
    /// the flusher drains: it completes with the outcome every `close`
    /// returns. Await it before the cache is dropped (a `Drop` that still
    /// has to close blocks its thread). Needs no particular runtime.
    ///
    /// ```
    /// # use writebehind::{Config, MemStore, WriteBehind};
    /// # let wb = WriteBehind::with_store(MemStore::new(), Config::default())?;
    /// # let block_on = writebehind::testing::block_on;
    /// wb.put(b"k", b"v")?;
    /// block_on(wb.close_async())?;
    /// assert!(matches!(wb.put(b"k", b"w"), Err(writebehind::Error::Closed)));
    /// # Ok::<(), writebehind::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`close`](Self::close).
    pub fn close_async(&self) -> CloseFuture<'_> {
        CloseFuture::new(self)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn shared_writers(&self) -> &SharedWriters {
        &self.shared_writers
    }

    /// Refuses new updates from now on and tells the flusher to drain and
    /// stop.
    pub(crate) fn request_close(&self) {
        // SeqCst RMW: the flusher acquires it; see `Flusher::check_close`.
        self.shared
            .closing
            .fetch_or(CLOSE_REQUESTED, Ordering::SeqCst);
        self.shared.wake_flusher();
    }

    /// Closes, or waits for the close in progress; returns the outcome and
    /// whether this call was the one that closed.
    fn close_once(&self) -> (Result<(), Error>, bool) {
        let mut closing = primitives::lock(&self.flusher);
        let outcome = self.close_locked(&mut closing);
        drop(closing);
        // An async close may be waiting for the mutex we held.
        self.shared.notify_progress();
        outcome
    }

    /// [`close_once`](Self::close_once) for a caller that must not wait
    /// for another close's join: `None` if one holds the flusher's mutex
    /// (it wakes the progress waiters when it lets go).
    pub(crate) fn try_close_now(&self) -> Option<Result<(), Error>> {
        let mut closing = primitives::try_lock(&self.flusher)?;
        let (outcome, _) = self.close_locked(&mut closing);
        drop(closing);
        self.shared.notify_progress();
        Some(outcome)
    }

    fn close_locked(&self, closing: &mut Closing) -> (Result<(), Error>, bool) {
        let placeholder = Closing::Closed(Err(Error::Closed));
        let handle = match std::mem::replace(closing, placeholder) {
            Closing::Running(handle) => handle,
            Closing::Closed(outcome) => {
                *closing = Closing::Closed(outcome.clone());
                return (outcome, false);
            }
        };
        self.request_close();
        let outcome = match handle.join() {
            Ok(result) => result,
            Err(_) => Err(Error::FlusherDied(
                self.shared
                    .death()
                    .unwrap_or_else(|| "the flusher thread panicked".into()),
            )),
        };
        *closing = Closing::Closed(outcome.clone());
        (outcome, true)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        Stats::of(&self.shared)
    }
}

impl Drop for WriteBehind {
    /// Best-effort close: errors are logged, not returned (use
    /// [`WriteBehind::close`] to see them).
    fn drop(&mut self) {
        if primitives::unwinding_in_model() {
            return;
        }
        if let (Err(e), true) = self.close_once() {
            tracing::error!("writebehind: close on drop failed: {e}");
        }
    }
}

/// One wait of `sync()` or `compact()` for the flusher's progress: the error
/// if the flusher stopped or `deadline` passed (counted from `start`), else
/// up to 100 ms on the progress condvar.
/// Requests a durability barrier and waits until the flusher served it
/// (`sync()`; also a writer that found the index full, `Writer::apply`).
pub(crate) fn sync_until(shared: &Shared, deadline: Option<Instant>) -> Result<(), Error> {
    let start = Instant::now();
    // SeqCst RMW: orders this request after every update that
    // happened-before the call; the flusher acquires it.
    let gen = shared.sync_requested.fetch_add(1, Ordering::SeqCst) + 1;
    shared.wake_flusher();
    let mut progress = primitives::lock(&shared.progress);
    loop {
        if progress.synced_gen >= gen {
            return Ok(());
        }
        progress = wait_for_progress(shared, progress, deadline, start)?;
    }
}

fn wait_for_progress<'a>(
    shared: &'a Shared,
    progress: MutexGuard<'a, Progress>,
    deadline: Option<Instant>,
    start: Instant,
) -> Result<MutexGuard<'a, Progress>, Error> {
    if let Some(stopped) = crate::futures::stopped_error(&progress) {
        return Err(stopped);
    }
    let mut wait = Duration::from_millis(100);
    if let Some(deadline) = deadline {
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                waited_ms: millis(now - start),
                last_error: primitives::lock(&shared.last_error).clone(),
            });
        }
        wait = wait.min(deadline - now);
    }
    Ok(primitives::wait_timeout(
        &shared.progress_cv,
        progress,
        wait,
    ))
}

/// `d` in whole milliseconds, saturating at `u64::MAX`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long the store has been failing with no batch made durable, as seen
/// by a waiter that samples the flusher's counters (`compact_until`).
#[derive(Debug, Default)]
struct FailingSince {
    /// When it was first seen failing, and the durable batch count then.
    since: Option<(Instant, u64)>,
}

impl FailingSince {
    /// Samples the counters at `now`; returns for how long the store has
    /// failed without a success (zero if it is not failing).
    fn observe(&mut self, shared: &Shared, now: Instant) -> Duration {
        // Relaxed loads: statistics; a stale sample only delays the verdict
        // by one wait.
        let c = shared.counters.snapshot();
        if c.failures_in_a_row == 0 {
            self.since = None;
            return Duration::ZERO;
        }
        let batches = c.batches;
        match self.since {
            // Failing all along and nothing made durable in between.
            Some((since, seen)) if seen == batches => now - since,
            _ => {
                self.since = Some((now, batches));
                Duration::ZERO
            }
        }
    }
}

/// A sink that keeps nothing (a read for the version only).
struct Discard;

impl crate::value::Sink for Discard {
    fn clear(&mut self) {}
    fn extend(&mut self, _: &[u8]) {}
}

/// Loads `store`'s live records into `index`, each key at its highest
/// version, and raises the version floor over every version seen. Deleted
/// keys take no entry: records come in any order, so the highest tombstone
/// version of each key not resident is kept aside until recovery ends (a
/// put older than it is dead; a resident entry older than it is freed).
fn recover_into<S: Store>(
    store: &mut S,
    index: &Index,
    config: &Config,
    load_all: bool,
) -> Result<crate::store::RecoveryReport, Error> {
    let mut failure = None;
    let mut floor = Version(0);
    let mut deleted: std::collections::HashMap<Box<[u8]>, Version> = Default::default();
    let report = store.recover(&mut |r| {
        if failure.is_some() {
            return;
        }
        if let Err(e) = check_sizes(config, r.key.len(), r.value.len()) {
            failure = Some(e);
            return;
        }
        if r.version == Version(0) {
            failure = Some(Error::StoreBug(format!(
                "it recovered a {:?} of key {:?} with version 0; a store must keep and return the \
                 version of every record it stores (versions start at 1)",
                r.kind,
                String::from_utf8_lossy(r.key)
            )));
            return;
        }
        floor = floor.max(r.version);
        if !load_all {
            return;
        }
        if let Err(e) = recover_record(index, &mut deleted, r) {
            failure = Some(e);
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    check_unvisited(&report.unvisited, config, load_all)?;
    index.raise_floor(floor.max(report.version_floor));
    Ok(report)
}

/// The records a store did not visit pass the checks a visited record
/// does, and a store that must have every key loaded left none out.
fn check_unvisited(
    unvisited: &crate::store::Unvisited,
    config: &Config,
    load_all: bool,
) -> Result<(), Error> {
    if load_all && unvisited.records > 0 {
        return Err(Error::StoreBug(format!(
            "it left {} records out of recovery, but has no reader to load them from \
             (without a reader, recover must visit every record)",
            unvisited.records
        )));
    }
    check_sizes(config, unvisited.longest_key, unvisited.longest_value)
}

/// A stored record's key and value fit `config`'s bounds.
fn check_sizes(config: &Config, key_len: usize, value_len: usize) -> Result<(), Error> {
    if key_len > config.key_bytes_max || value_len > config.value_bytes_max {
        return Err(Error::Config(format!(
            "the store holds a record (key {key_len} bytes, value {value_len} bytes) over key_bytes_max/value_bytes_max"
        )));
    }
    Ok(())
}

/// One recovered record (see [`recover_into`]).
fn recover_record(
    index: &Index,
    deleted: &mut std::collections::HashMap<Box<[u8]>, Version>,
    r: crate::record::RecordRef<'_>,
) -> Result<(), Error> {
    let resident = index.find(r.key);
    if resident.is_some_and(|f| f.entry.version() >= r.version) {
        return Ok(()); // older than what is resident
    }
    match r.kind {
        Kind::Delete => {
            if let Some(f) = resident {
                index.free(f.slot, f.entry.version());
            }
            let seen = deleted.entry(r.key.into()).or_insert(r.version);
            *seen = (*seen).max(r.version);
        }
        Kind::Put => {
            if deleted.get(r.key).is_some_and(|&d| d >= r.version) {
                return Ok(()); // deleted later
            }
            let found = index.get_or_insert(r.key)?;
            found.entry.restore(r.version, Some(r.value));
        }
    }
    Ok(())
}
