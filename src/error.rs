//! Typed errors. Every refusal says what was refused and by which bound, and
//! leaves the cache unchanged.

use std::fmt;

/// A failure reported by a [`Store`](crate::Store): what went wrong and whether
/// retrying can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// What kind of failure this is.
    pub kind: StoreErrorKind,
    /// Human-readable context (the operation, the file, the OS error).
    pub message: String,
}

/// The kinds of store failure the flusher distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Writing the batch failed (EIO, a dropped connection...): retried.
    Write,
    /// Making the batch durable failed (a failed fdatasync): the store must
    /// not trust earlier unconfirmed writes either; retried from memory.
    Sync,
    /// The device is full (ENOSPC): retried until space returns.
    NoSpace,
    /// The store found data it cannot use (a malformed batch). The flusher
    /// retries it like any failure, so the batch stays un-durable and the
    /// error stays visible in `stats()` until the store accepts it.
    Corrupt,
    /// The connection to a database was lost or refused: reconnected and
    /// retried.
    Connection,
    /// The database cancelled the statement (a statement timeout): retried.
    Timeout,
    /// Reading a key for a cache miss failed (I/O, or a record that is
    /// not what the store's index says). Returned to the reader; nothing
    /// is retried or changed.
    Read,
    /// Anything else: retried.
    Other,
}

impl StoreError {
    /// An error of `kind` with a message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for StoreError {}

/// Everything a writebehind call can refuse or fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `Config` value is out of range or contradicts another one.
    #[error("invalid config: {0}")]
    Config(String),
    /// The key is longer than `Config::key_bytes_max`.
    #[error("key of {len} bytes exceeds key_bytes_max = {max}")]
    KeyTooLong {
        /// Length of the refused key.
        len: usize,
        /// The configured bound.
        max: usize,
    },
    /// The key is empty; keys have at least one byte.
    #[error("empty key")]
    EmptyKey,
    /// The value is longer than `Config::value_bytes_max`.
    #[error("value of {len} bytes exceeds value_bytes_max = {max}")]
    ValueTooLong {
        /// Length of the refused value.
        len: usize,
        /// The configured bound.
        max: usize,
    },
    /// `Config::writers_max` writers are already registered.
    #[error("all {max} writer slots are in use (writers_max)")]
    TooManyWriters {
        /// The configured bound.
        max: usize,
    },
    /// `Config::keys_max` keys are resident: raise `keys_max`, or delete
    /// keys you no longer need (a deleted key's memory is freed once its
    /// delete is durable). Under `Backpressure::Block` a writer first waits
    /// once for the deletes acknowledged so far to become durable (bounded
    /// by `close_timeout`); under `Fail` it is refused at once. Also
    /// returned at open when the store holds more live keys than that.
    #[error("the index is full: {max} resident keys (keys_max)")]
    IndexFull {
        /// The configured bound.
        max: usize,
    },
    /// A new key would take memory beyond `Config::memory_bytes`, and
    /// nothing can be evicted: what is in memory is dirty (not yet
    /// durable), or the flusher has not caught up. Nothing was applied.
    /// Under `Backpressure::Block` a writer first waits once for what it
    /// acknowledged so far to become durable (bounded by `close_timeout`),
    /// which lets the flusher evict; under `Fail` it is refused at once.
    /// Raise `memory_bytes`, or lower `dirty_keys_max` so that less of the
    /// budget can be dirty at once.
    #[error(
        "memory is full: {budget_bytes} bytes (memory_bytes) of entries that are not yet durable"
    )]
    MemoryFull {
        /// The configured budget.
        budget_bytes: u64,
    },
    /// The writer's ring is full and the policy is `Backpressure::Fail`.
    /// Nothing was applied.
    #[error("the writer's ring is full (Backpressure::Fail); nothing was applied")]
    Full,
    /// `add` on a key whose value is not an 8-byte counter.
    #[error("value of {len} bytes is not an 8-byte counter")]
    NotACounter {
        /// Length of the value found.
        len: usize,
    },
    /// `add` would overflow the `i64` counter.
    #[error("counter overflow: {current} + {delta}")]
    CounterOverflow {
        /// The counter's value.
        current: i64,
        /// The refused delta.
        delta: i64,
    },
    /// The cache is closed (or closing); nothing was applied.
    #[error("the cache is closed")]
    Closed,
    /// The store failed and the operation could not complete; the last store
    /// error is attached.
    #[error("store failure: {0}")]
    Store(StoreError),
    /// `sync_timeout`, `compact_timeout` or `close` gave up waiting; the last
    /// store error, if any, is attached (it is usually why: fix what it
    /// reports, then retry).
    #[error(
        "timed out after {waited_ms} ms waiting for the store to make data durable (last store error: {})",
        last_error.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string)
    )]
    Timeout {
        /// How long the call waited.
        waited_ms: u64,
        /// The store's last error, which is usually why.
        last_error: Option<StoreError>,
    },
    /// Pinning a thread to a core failed.
    #[error("could not pin the thread to core {core}")]
    Pin {
        /// The core asked for.
        core: usize,
    },
    /// An OS-level failure outside the store (spawning the flusher thread).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A stored record or segment is damaged somewhere a crash cannot explain
    /// (not the torn tail of the newest segment). Nothing was loaded.
    #[error("corrupt store: segment {segment:06}, offset {offset}: {reason}")]
    Corrupt {
        /// The segment's id (its file is `{segment:06}.wb`).
        segment: u64,
        /// Byte offset in the segment file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A file in the store directory is not a segment this build can read
    /// (wrong magic, or a newer format version).
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// Another handle, in this or another process, has the store directory
    /// open.
    #[error("store directory {dir} is locked by another handle")]
    Locked {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// A database store could not be opened: connecting failed, its table
    /// does not have the expected shape, or a stored row is unusable.
    /// Nothing was loaded.
    #[error("database: {0}")]
    Database(String),
    /// The flusher thread died (it panicked: a bug), so nothing more can be
    /// persisted. Every update from then on is refused with this error (a
    /// writer blocked on a full ring wakes with it), and so are `sync()`,
    /// `compact()` and `close()`. Updates acknowledged before it and not
    /// covered by a successful `sync()` may not be in the store; they are
    /// still readable with `get`. Drop the cache and open the store again.
    #[error(
        "the flusher thread died ({0}): nothing more can be persisted and updates are refused; \
         updates not covered by a successful sync() may not be in the store (get() still reads \
         them). Drop this cache and reopen the store"
    )]
    FlusherDied(String),
    /// The flusher gave up on the store after `failures` failed attempts in
    /// a row ([`Config::retries_max`](crate::Config::retries_max)); the
    /// [`on_give_up`](crate::Config::on_give_up) hook has run. As after
    /// [`Error::FlusherDied`], nothing more is persisted: updates, `sync()`,
    /// `compact()` and `close()` are refused with this, updates not covered
    /// by a successful `sync()` may be missing from the store, and `get`
    /// still reads them. Drop the cache and reopen the store once it is back.
    #[error(
        "gave up on the store after {failures} failed attempts in a row (Config::retries_max):          {last_error}; updates are refused and those not covered by a successful sync() may not          be in the store (get() still reads them). Reopen once the store is back"
    )]
    StoreGaveUp {
        /// Failed attempts in a row.
        failures: u32,
        /// The store's last error.
        last_error: StoreError,
    },
    /// The store broke a rule of the [`Store`](crate::Store) trait: it
    /// recovered a record with version 0 (every stored record keeps the
    /// version the cache gave it, which is at least 1), or a store without
    /// a reader left records out of recovery. A bug in the store; the
    /// cache did not open.
    #[error("the store broke a rule of the Store trait: {0}")]
    StoreBug(String),
}

/// By hand, because `std::io::Error` is not `Clone`: an `Io` error is copied
/// as its kind and message (its OS error code kept when it has one). Used
/// where one outcome goes to several callers (`WriteBehind::close`).
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::Config(m) => Error::Config(m.clone()),
            &Error::KeyTooLong { len, max } => Error::KeyTooLong { len, max },
            Error::EmptyKey => Error::EmptyKey,
            &Error::ValueTooLong { len, max } => Error::ValueTooLong { len, max },
            &Error::TooManyWriters { max } => Error::TooManyWriters { max },
            &Error::IndexFull { max } => Error::IndexFull { max },
            &Error::MemoryFull { budget_bytes } => Error::MemoryFull { budget_bytes },
            Error::Full => Error::Full,
            &Error::NotACounter { len } => Error::NotACounter { len },
            &Error::CounterOverflow { current, delta } => Error::CounterOverflow { current, delta },
            Error::Closed => Error::Closed,
            Error::Store(e) => Error::Store(e.clone()),
            Error::Timeout {
                waited_ms,
                last_error,
            } => Error::Timeout {
                waited_ms: *waited_ms,
                last_error: last_error.clone(),
            },
            &Error::Pin { core } => Error::Pin { core },
            Error::Io(e) => Error::Io(match e.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(e.kind(), e.to_string()),
            }),
            Error::Corrupt {
                segment,
                offset,
                reason,
            } => Error::Corrupt {
                segment: *segment,
                offset: *offset,
                reason: reason.clone(),
            },
            Error::Format { path, reason } => Error::Format {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Locked { dir } => Error::Locked { dir: dir.clone() },
            Error::Database(m) => Error::Database(m.clone()),
            Error::FlusherDied(m) => Error::FlusherDied(m.clone()),
            Error::StoreBug(m) => Error::StoreBug(m.clone()),
            Error::StoreGaveUp {
                failures,
                last_error,
            } => Error::StoreGaveUp {
                failures: *failures,
                last_error: last_error.clone(),
            },
        }
    }
}
