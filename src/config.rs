//! `Config`: every bound the cache has, with units in the names, validated
//! before anything starts.

use std::time::Duration;

use crate::error::Error;
use crate::give_up::{GiveUp, GiveUpHook};
use crate::record;

/// What a writer does when its ring (or the flusher's dirty set behind it) is
/// full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// Wait: spin briefly, then yield, then park until the flusher frees room.
    #[default]
    Block,
    /// Return [`Error::Full`] at once, with nothing applied.
    Fail,
}

/// What a crash may lose. `sync()` makes everything
/// acknowledged before it durable under either mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every batch is made durable (fdatasync) before it counts as persisted:
    /// a crash loses at most the writes younger than the current batch.
    #[default]
    Batch,
    /// The fdatasync is deferred: batches are written at once, and one
    /// fdatasync covers several of them. The store issues it when the cache
    /// asks for one (on the batch that fills the in-flight window, on a
    /// retry, at `sync()`) and when it has nothing queued. A batch counts as
    /// persisted only once an fdatasync covers it, so a failed one is
    /// rewritten from memory like any failure (G8); a crash loses at most
    /// the batches written since the last one. (Named `None` before 0.1.0:
    /// it never meant "no durability".)
    Deferred,
}

/// Which I/O engine the file store uses ([`FileOptions::io_backend`](crate::FileOptions::io_backend)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// io_uring where the kernel allows it, else pwrite.
    #[default]
    Auto,
    /// io_uring, or fail to open.
    IoUring,
    /// pwrite + fdatasync on a worker thread.
    Pwrite,
}

/// Configuration of a [`WriteBehind`](crate::WriteBehind). Start from
/// `Config::default()` and set what you need with the setter of the same
/// name as the field (or assign the field); [`Config::validate`] is called
/// by every constructor. New settings may come in any release, with
/// defaults, so a `Config` is never built field by field.
///
/// ```
/// use writebehind::{Backpressure, Config};
/// let config = Config::default()
///     .ring_capacity(1 << 12)
///     .backpressure(Backpressure::Fail);
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Writers that may be registered at once.
    pub writers_max: usize,
    /// Slots per writer ring; a power of two, >= 2.
    pub ring_capacity: usize,
    /// Longest key accepted, in bytes (<= 65535).
    pub key_bytes_max: usize,
    /// Longest value accepted, in bytes.
    pub value_bytes_max: usize,
    /// Keys resident in memory at once (a deleted key counts until its
    /// tombstone is durable; then its memory is freed). A put of a new key
    /// beyond it is refused with [`Error::IndexFull`] (under
    /// `Backpressure::Block` after waiting once for the deletes acknowledged
    /// so far to become durable). Memory follows the keys actually
    /// resident, not this bound: about 170 to 200 bytes per key of up to 20
    /// bytes with a value of up to 64 (longer ones add their heap copy).
    pub keys_max: usize,
    /// The memory budget, in bytes, of the keys in memory: 160 bytes per
    /// key (the entry, its table word, the flusher's state of it) plus keys
    /// and values too long to sit inline. Over a store that reads single
    /// keys (the file store, PostgreSQL, `MemStore`), the flusher evicts
    /// clean entries (durable, not changed since) to keep under it, least
    /// recently used first (CLOCK), and a key not in memory is read
    /// through. A new key that would not fit waits for room under
    /// `Backpressure::Block` (durability barriers let the flusher evict),
    /// bounded by `close_timeout`, or is refused with
    /// [`Error::MemoryFull`] under `Fail`; keys in memory are always
    /// updated. Not counted: the file store's keydir (about 100 bytes per
    /// key stored), rings, batches in flight. Over a store that cannot
    /// read single keys nothing is evicted and the budget is not enforced.
    /// Default 1 GiB; at least 1 MiB, and enough for `dirty_keys_max`
    /// entries.
    pub memory_bytes: u64,
    /// Keys that may be dirty (changed, not yet in a submitted batch) at once.
    /// When reached, the flusher stops draining rings until a batch frees
    /// room, and writers see backpressure.
    pub dirty_keys_max: usize,
    /// Largest encoded batch, in bytes. (A batch retried after a store
    /// failure is re-encoded from the current values and may exceed it if
    /// values grew meanwhile; it keeps its record count.)
    pub batch_bytes_max: usize,
    /// Most records in one batch.
    pub batch_ops_max: usize,
    /// Oldest a dirty key may get before a batch is cut for it; in
    /// `(0, Config::INTERVAL_MAX]` (1 hour).
    pub flush_interval: Duration,
    /// Batches submitted to the store and not yet completed, at most.
    pub batches_in_flight_max: usize,
    /// Records the flusher takes from one ring per pass (fairness bound).
    pub drain_per_pass_max: usize,
    /// Writer policy when full.
    pub backpressure: Backpressure,
    /// Durability of each batch.
    pub durability: Durability,
    /// First delay before retrying a failed batch; doubles per failure. In
    /// `(0, retry_backoff_max]`.
    pub retry_backoff_min: Duration,
    /// Cap of the retry delay; at most `Config::INTERVAL_MAX` (1 hour).
    pub retry_backoff_max: Duration,
    /// Retries of failed batches in a row (no batch succeeding in between)
    /// after which the flusher gives up on the store: when the attempt
    /// after the last allowed retry fails too, it refuses updates, calls
    /// [`on_give_up`](Self::on_give_up), and stops; every update,
    /// `sync()` and `close()` from then on returns
    /// [`Error::StoreGaveUp`]. `None` (the default): retry for ever, which
    /// is right for a store that comes back (a database restarting, a disk
    /// freed); a limit is for one that may not (a disk gone), where the
    /// service would rather fail over. Every failed completion counts, so
    /// with several batches in flight the count grows faster than the
    /// backoff (from `retry_backoff_min`, doubling, up to
    /// `retry_backoff_max`) alone suggests: with the defaults and one batch
    /// in flight, 20 retries take about 10 s.
    pub retries_max: Option<u32>,
    /// Called once, on the flusher's thread, when it gives up
    /// ([`retries_max`](Self::retries_max)). Set with [`Config::on_give_up`].
    pub(crate) on_give_up: Option<GiveUpHook>,
    /// How long `close()` (and `Drop`) wait for every acknowledged update to
    /// become durable (retrying a failing store meanwhile) before giving up
    /// with the error; also how long
    /// [`compact()`](crate::WriteBehind::compact) waits on a store that keeps
    /// failing without a single success. Positive; `Duration::MAX` means
    /// for ever. A value too short to write anything makes `close()` fail
    /// unless a `sync()` made everything durable just before.
    pub close_timeout: Duration,
    /// Longest the flusher sleeps when idle (it is woken earlier by `sync()`,
    /// full rings and `close()`); in `(0, Config::INTERVAL_MAX]` (1 hour).
    pub idle_park_max: Duration,
    /// Pin the flusher thread to this core.
    pub flusher_core: Option<usize>,
    /// Compact when at least this fraction of the stored record bytes is
    /// dead (superseded)...
    pub compact_dead_ratio: f64,
    /// ...and the store has at least this many units of storage (a file
    /// store's segments). Also compacted,
    /// whatever the dead fraction, once it has at least this many segments
    /// and compacting would halve their number (many short segments, as
    /// restarts and frequent rotations leave).
    pub compact_segments_min: usize,
    /// Which settings that others depend on were set by their setters (the
    /// others follow what the user set; see [`Config::keys_max`]).
    chosen: Chosen,
}

/// Settings chosen through their setters, which the setters of the
/// settings they depend on then leave alone.
#[derive(Debug, Clone, Copy, Default)]
struct Chosen {
    dirty_keys_max: bool,
    batch_bytes_max: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            writers_max: 16,
            ring_capacity: 1 << 14,
            key_bytes_max: 1024,
            value_bytes_max: 64 * 1024,
            keys_max: 1 << 20,
            memory_bytes: 1 << 30,
            dirty_keys_max: 1 << 18,
            batch_bytes_max: 4 << 20,
            batch_ops_max: 1 << 16,
            flush_interval: Duration::from_millis(10),
            batches_in_flight_max: 4,
            drain_per_pass_max: 4096,
            backpressure: Backpressure::Block,
            durability: Durability::Batch,
            retry_backoff_min: Duration::from_millis(1),
            retry_backoff_max: Duration::from_secs(1),
            close_timeout: Duration::from_secs(30),
            retries_max: None,
            on_give_up: None,
            idle_park_max: Duration::from_millis(100),
            flusher_core: None,
            compact_dead_ratio: 0.5,
            compact_segments_min: 4,
            chosen: Chosen::default(),
        }
    }
}

/// `dirty_keys_max` by default: 2^18, at most `keys_max`, and at most half
/// of what `memory_bytes` holds (the rest is room for clean keys).
fn derived_dirty_keys_max(keys_max: usize, memory_bytes: u64) -> usize {
    let half_of_memory = memory_bytes / (2 * crate::index::RESIDENT_KEY_BYTES);
    (1usize << 18)
        .min(keys_max)
        .min(usize::try_from(half_of_memory).unwrap_or(usize::MAX))
        .max(1)
}

/// `batch_bytes_max` by default: 4 MiB, or one record of the longest key
/// and value if that is longer.
fn derived_batch_bytes_max(key_bytes_max: usize, value_bytes_max: usize) -> usize {
    (4usize << 20).max(record::encoded_len(key_bytes_max, value_bytes_max))
}

impl Config {
    /// Sets [`keys_max`](Self::keys_max); `dirty_keys_max`, unless set by
    /// its own setter, follows it (see [`dirty_keys_max`](Self::dirty_keys_max)).
    pub fn keys_max(mut self, value: usize) -> Self {
        self.keys_max = value;
        self.derive()
    }

    /// Sets [`memory_bytes`](Self::memory_bytes); `dirty_keys_max`, unless
    /// set by its own setter, follows it.
    pub fn memory_bytes(mut self, value: u64) -> Self {
        self.memory_bytes = value;
        self.derive()
    }

    /// Sets [`key_bytes_max`](Self::key_bytes_max); `batch_bytes_max`,
    /// unless set by its own setter, grows to hold one record of the
    /// longest key and value.
    pub fn key_bytes_max(mut self, value: usize) -> Self {
        self.key_bytes_max = value;
        self.derive()
    }

    /// Sets [`value_bytes_max`](Self::value_bytes_max); `batch_bytes_max`,
    /// unless set by its own setter, grows to hold one record of the
    /// longest key and value.
    pub fn value_bytes_max(mut self, value: usize) -> Self {
        self.value_bytes_max = value;
        self.derive()
    }

    /// Sets [`dirty_keys_max`](Self::dirty_keys_max). Until it is set, it
    /// follows `keys_max` and `memory_bytes`: 2^18, at most `keys_max`,
    /// and at most half of the entries `memory_bytes` holds.
    pub fn dirty_keys_max(mut self, value: usize) -> Self {
        self.dirty_keys_max = value;
        self.chosen.dirty_keys_max = true;
        self
    }

    /// Sets [`batch_bytes_max`](Self::batch_bytes_max). Until it is set, it
    /// is 4 MiB or one record of the longest key and value, whichever is
    /// longer.
    pub fn batch_bytes_max(mut self, value: usize) -> Self {
        self.batch_bytes_max = value;
        self.chosen.batch_bytes_max = true;
        self
    }

    /// The settings not chosen, derived again from those that were.
    fn derive(mut self) -> Self {
        if !self.chosen.dirty_keys_max {
            self.dirty_keys_max = derived_dirty_keys_max(self.keys_max, self.memory_bytes);
        }
        if !self.chosen.batch_bytes_max {
            self.batch_bytes_max =
                derived_batch_bytes_max(self.key_bytes_max, self.value_bytes_max);
        }
        self
    }
}

/// Refuses a zero `value` or one over [`Config::INTERVAL_MAX`], naming `field`
/// (also for the stores' own settings, such as `PgConfig::connect_timeout`).
pub(crate) fn check_interval(field: &str, value: Duration) -> Result<(), Error> {
    if value.is_zero() || value > Config::INTERVAL_MAX {
        return Err(Error::Config(format!(
            "{field} = {value:?} must be in (0, {:?}]: set a positive duration of at most 1 hour",
            Config::INTERVAL_MAX
        )));
    }
    Ok(())
}

/// One chainable setter per named field of a settings type:
/// `Config::default().ring_capacity(1 << 12)`.
macro_rules! setters {
    ($type:ty { $($name:ident: $ty:ty,)* }) => {
        impl $type {
            $(
                #[doc = concat!("Sets [`", stringify!($name), "`](Self::", stringify!($name), ").")]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

pub(crate) use setters;

setters! {
    Config {
        writers_max: usize,
        ring_capacity: usize,
        batch_ops_max: usize,
        flush_interval: Duration,
        batches_in_flight_max: usize,
        drain_per_pass_max: usize,
        backpressure: Backpressure,
        durability: Durability,
        retry_backoff_min: Duration,
        retry_backoff_max: Duration,
        close_timeout: Duration,
        retries_max: Option<u32>,
        idle_park_max: Duration,
        flusher_core: Option<usize>,
        compact_dead_ratio: f64,
        compact_segments_min: usize,
    }
}

impl Config {
    /// Sets the hook called when the flusher gives up on the store
    /// ([`retries_max`](Self::retries_max)): once, on the flusher's thread,
    /// after updates are refused and before any waiter learns of it. Keep
    /// it short (raise an alarm, start a failover elsewhere). It must not
    /// call this cache's `sync`, `compact` or `close`: they wait for the
    /// flusher, which is running the hook. Reads (`get`) work.
    ///
    /// ```
    /// use writebehind::Config;
    /// let config = Config::default()
    ///     .retries_max(Some(20))
    ///     .on_give_up(|g| eprintln!("store lost: {} ({} keys only in memory)", g.last_error, g.keys_not_durable));
    /// # config.validate().unwrap();
    /// ```
    pub fn on_give_up(mut self, hook: impl Fn(&GiveUp) + Send + Sync + 'static) -> Self {
        self.on_give_up = Some(GiveUpHook(std::sync::Arc::new(hook)));
        self
    }

    /// The longest `flush_interval`, `idle_park_max`, `retry_backoff_min`,
    /// `retry_backoff_max` and `PgConfig::connect_timeout` may be: 1 hour.
    /// (Longer would only delay durability or recovery, and keeps every
    /// deadline the flusher computes far from overflow.)
    pub const INTERVAL_MAX: Duration = Duration::from_secs(3600);

    /// Checks every bound and that no two contradict each other.
    ///
    /// # Errors
    /// [`Error::Config`], naming the setting, its value and what to change.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_sizes()?;
        self.validate_batches()?;
        self.validate_times()?;
        if !(self.compact_dead_ratio > 0.0 && self.compact_dead_ratio <= 1.0) {
            return Err(Error::Config(format!(
                "compact_dead_ratio = {} must be in (0, 1]",
                self.compact_dead_ratio
            )));
        }
        Ok(())
    }

    /// Writers, rings, keys and values.
    fn validate_sizes(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.writers_max == 0 {
            return bad("writers_max must be at least 1".into());
        }
        if self.writers_max > 4096 {
            return bad(format!("writers_max = {} exceeds 4096", self.writers_max));
        }
        if self.ring_capacity < 2 || !self.ring_capacity.is_power_of_two() {
            return bad(format!(
                "ring_capacity = {} must be a power of two >= 2",
                self.ring_capacity
            ));
        }
        if self.ring_capacity > 1 << 24 {
            return bad(format!(
                "ring_capacity = {} exceeds 2^24",
                self.ring_capacity
            ));
        }
        if self.key_bytes_max == 0 || self.key_bytes_max > record::KEY_BYTES_LIMIT {
            return bad(format!(
                "key_bytes_max = {} must be in 1..={}",
                self.key_bytes_max,
                record::KEY_BYTES_LIMIT
            ));
        }
        if self.value_bytes_max > record::VALUE_BYTES_LIMIT {
            return bad(format!(
                "value_bytes_max = {} exceeds {}",
                self.value_bytes_max,
                record::VALUE_BYTES_LIMIT
            ));
        }
        if self.keys_max == 0 || self.keys_max > 1 << 28 {
            return bad(format!("keys_max = {} must be in 1..=2^28", self.keys_max));
        }
        if self.memory_bytes < (1 << 20) {
            return bad(format!(
                "memory_bytes = {} must be at least 1 MiB (1048576)",
                self.memory_bytes
            ));
        }
        let fits = derived_dirty_keys_max(self.keys_max, self.memory_bytes);
        if self.dirty_keys_max == 0 || self.dirty_keys_max > self.keys_max {
            return bad(format!(
                "dirty_keys_max = {} must be in 1..=keys_max ({}): set dirty_keys_max to at most {}, \
                 or leave it unset to follow keys_max",
                self.dirty_keys_max, self.keys_max, fits
            ));
        }
        let dirty_bytes = self.dirty_keys_max as u64 * crate::index::RESIDENT_KEY_BYTES;
        if self.memory_bytes < dirty_bytes {
            return bad(format!(
                "memory_bytes = {} cannot hold dirty_keys_max ({}) entries of {} bytes ({dirty_bytes}): \
                 raise memory_bytes to at least {dirty_bytes}, or lower dirty_keys_max to at most {} \
                 (or leave it unset to follow memory_bytes)",
                self.memory_bytes,
                self.dirty_keys_max,
                crate::index::RESIDENT_KEY_BYTES,
                self.memory_bytes / crate::index::RESIDENT_KEY_BYTES
            ));
        }
        self.validate_flusher_core()
    }

    /// A core to pin the flusher to must be one this process may run on.
    fn validate_flusher_core(&self) -> Result<(), Error> {
        let Some(core) = self.flusher_core else {
            return Ok(());
        };
        let allowed: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .map(|c| c.id)
            .collect();
        if allowed.contains(&core) {
            return Ok(());
        }
        Err(Error::Config(format!(
            "flusher_core = {core} is not a core this process may run on (it may run on {allowed:?}): \
             pick one of those, or None"
        )))
    }

    /// Batches and the flusher's pace.
    fn validate_batches(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        let record_max = record::encoded_len(self.key_bytes_max, self.value_bytes_max);
        if self.batch_bytes_max < record_max {
            return bad(format!(
                "batch_bytes_max = {} cannot hold one record of the largest key and value ({} bytes): \
                 raise batch_bytes_max to at least {record_max}, or leave it unset to follow \
                 key_bytes_max and value_bytes_max",
                self.batch_bytes_max, record_max
            ));
        }
        if self.batch_bytes_max > 1 << 30 {
            return bad(format!(
                "batch_bytes_max = {} exceeds 1 GiB",
                self.batch_bytes_max
            ));
        }
        if self.batch_ops_max == 0 {
            return bad("batch_ops_max must be at least 1".into());
        }
        if self.batches_in_flight_max == 0 || self.batches_in_flight_max > 1024 {
            return bad(format!(
                "batches_in_flight_max = {} must be in 1..=1024",
                self.batches_in_flight_max
            ));
        }
        if self.drain_per_pass_max == 0 {
            return bad("drain_per_pass_max must be at least 1".into());
        }
        Ok(())
    }

    /// Intervals, backoffs and timeouts.
    fn validate_times(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        check_interval("flush_interval", self.flush_interval)?;
        check_interval("retry_backoff_min", self.retry_backoff_min)?;
        check_interval("retry_backoff_max", self.retry_backoff_max)?;
        if self.retry_backoff_min > self.retry_backoff_max {
            return bad(format!(
                "retry_backoff_min ({:?}) must be <= retry_backoff_max ({:?})",
                self.retry_backoff_min, self.retry_backoff_max
            ));
        }
        if self.close_timeout.is_zero() {
            return bad(
                "close_timeout must be positive (it bounds how long close() retries a failing \
                 store); Duration::MAX waits for ever"
                    .into(),
            );
        }
        check_interval("idle_park_max", self.idle_park_max)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().expect("default config");
    }

    /// Changing one setting alone works: the settings that depend on it
    /// follow, unless they were chosen; then the error says what to set.
    #[test]
    fn one_change_alone_is_valid_and_chosen_settings_are_kept() {
        let ok = |c: Config| c.validate().map(|()| c).expect("valid");
        let c = ok(Config::default().keys_max(1000));
        assert_eq!(c.dirty_keys_max, 1000);
        let c = ok(Config::default().memory_bytes(4 << 20));
        assert_eq!(c.dirty_keys_max, (4 << 20) / 320);
        let c = ok(Config::default().value_bytes_max(16 << 20));
        assert!(c.batch_bytes_max >= 16 << 20);
        let c = ok(Config::default()
            .key_bytes_max(60_000)
            .value_bytes_max(8 << 20));
        assert!(c.batch_bytes_max > 8 << 20);
        // Order does not matter, and a raise gives back the default.
        let c = ok(Config::default().keys_max(10).keys_max(1 << 22));
        assert_eq!(c.dirty_keys_max, 1 << 18);

        let err = |c: Config| match c.validate() {
            Err(Error::Config(m)) => m,
            other => panic!("{other:?}"),
        };
        let m = err(Config::default().dirty_keys_max(5000).keys_max(1000));
        assert!(m.contains("set dirty_keys_max to at most 1000"), "{m}");
        let m = err(Config::default()
            .batch_bytes_max(1 << 20)
            .value_bytes_max(2 << 20));
        assert!(m.contains("raise batch_bytes_max to at least"), "{m}");
        let m = err(Config::default()
            .dirty_keys_max(1 << 18)
            .memory_bytes(2 << 20));
        assert!(m.contains("lower dirty_keys_max to at most 13107"), "{m}");
        let m = err(Config::default().flusher_core(Some(100_000)));
        assert!(m.contains("flusher_core = 100000"), "{m}");
    }

    #[test]
    fn contradictions_are_refused() {
        let cases = [
            Config {
                ring_capacity: 3,
                ..Config::default()
            },
            Config {
                writers_max: 0,
                ..Config::default()
            },
            Config {
                dirty_keys_max: 10,
                keys_max: 5,
                ..Config::default()
            },
            Config {
                batch_bytes_max: 100,
                value_bytes_max: 1000,
                ..Config::default()
            },
            Config {
                key_bytes_max: 70_000,
                ..Config::default()
            },
            Config {
                retry_backoff_min: Duration::from_secs(2),
                retry_backoff_max: Duration::from_secs(1),
                ..Config::default()
            },
            Config {
                flush_interval: Duration::ZERO,
                ..Config::default()
            },
        ];
        for config in cases {
            assert!(
                matches!(config.validate(), Err(Error::Config(_))),
                "{config:?}"
            );
        }
    }
}
