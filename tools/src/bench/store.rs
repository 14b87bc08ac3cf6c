//! The cache a run measures: its configuration, and the store behind it.

use std::path::PathBuf;

use writebehind::testing::Throttled;
use writebehind::{Config, FileOptions, FileStore, MemStore, Store};
use writebehind_workload::NullStore;

use super::spec::{cores, Params, StoreSpec};

/// Ring slots per writer, for the cache and the baselines alike: 2^16 (1
/// MiB per writer in the cache) rides out a 65 ms flusher stall at 1M
/// ops/s (on 2 cores the kernel's I/O threads preempt it) without
/// blocking.
pub(super) const RING_CAPACITY: usize = 1 << 16;

/// The cache's configuration for a run of `p`.
pub(super) fn cache_config(p: &Params) -> Config {
    let cores = cores();
    let dirty = (p.keys as usize * 2).max(1024);
    let per_key = 160 * 2; // the library's estimate per entry, twice over
    let (memory, dirty) = match p.memory_bytes {
        // A budget given: at most half of it dirty.
        Some(m) => (m, dirty.min((m / per_key) as usize).max(1)),
        // Room for the whole dirty set at least: nothing is evicted in a
        // run of the default shape.
        None => (
            Config::default().memory_bytes.max(dirty as u64 * per_key),
            dirty,
        ),
    };
    Config::default()
        .memory_bytes(memory)
        .writers_max(p.writers.max(1))
        .durability(p.durability)
        .ring_capacity(RING_CAPACITY)
        .keys_max((p.keys as usize * 3).max(1024))
        .dirty_keys_max(dirty)
        .value_bytes_max(p.value_bytes.max(64))
        .key_bytes_max(p.key_bytes.max(16))
        .flusher_core((p.pin && cores > 1).then_some(cores - 1))
        .batches_in_flight_max(
            p.batches_in_flight
                .unwrap_or(Config::default().batches_in_flight_max),
        )
}

/// The store a run's cache writes to, and what came with it.
pub(super) struct Opened {
    pub store: Box<dyn Store>,
    /// The cache's configuration.
    pub config: Config,
    /// The file store's directory, if it has one (`--dir` or `_temp`).
    pub dir: Option<PathBuf>,
    /// The temporary directory of a file store without `--dir`: removed
    /// when the run's report is done.
    pub _temp: Option<tempfile::TempDir>,
    /// A PostgreSQL store's counters.
    pub pg: Option<crate::pg::Handle>,
}

/// Opens the store `p` names (a PostgreSQL table is emptied first).
pub(super) fn open(p: &Params) -> Result<Opened, String> {
    let config = cache_config(p);
    let temp = match (&p.store, &p.dir) {
        (StoreSpec::File | StoreSpec::Slow(_), None) => {
            Some(tempfile::tempdir().map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let dir = p
        .dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()));
    let mut pg = None;
    let options = FileOptions::for_cache(&config).io_backend(p.io_backend);
    let store: Box<dyn Store> = match (&p.store, &dir) {
        (StoreSpec::File, Some(d)) => {
            Box::new(FileStore::open(d, &options).map_err(|e| e.to_string())?)
        }
        (StoreSpec::Slow(n), Some(d)) => Box::new(Throttled::new(
            FileStore::open(d, &options).map_err(|e| e.to_string())?,
            *n,
        )),
        (StoreSpec::Mem, _) => Box::new(MemStore::new()),
        (StoreSpec::Null, _) => Box::new(NullStore::default()),
        (StoreSpec::Postgres(url), _) => {
            crate::pg::reset(url, &p.pg_table)?;
            let (store, handle) = crate::pg::open(url, &p.pg_table, &config, p.batches_in_flight)?;
            pg = Some(handle);
            store
        }
        _ => return Err("no directory for the file store".into()),
    };
    Ok(Opened {
        store,
        config,
        dir,
        _temp: temp,
        pg,
    })
}
