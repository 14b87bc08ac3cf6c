//! Read-through (G11): a key not in memory is loaded from the store and
//! made resident, one load per key however many threads miss it at once.
//!
//! # Why a load never installs a stale value
//!
//! A load takes a ticket (the free counter of its key's hash bucket),
//! checks the key is not resident, reads the store, and installs what it
//! read under the key's shard lock only if the key is still not resident
//! and no entry of the bucket was freed meanwhile (`Index::install`):
//!
//! - a writer that made the key resident during the load wrote a version
//!   above everything stored (a new entry starts at the version floor), so
//!   its entry wins and the load returns what the entry holds;
//! - an entry of the key that came *and went* during the load (put, made
//!   durable, then evicted or reclaimed) bumps the bucket's counter, so the
//!   load installs nothing; what it read is returned to the caller (the
//!   put was concurrent with this read, so the older value is a correct
//!   answer), and the next read loads again.
//!
//! Concurrent misses of a key wait for the first one's load (a map of the
//! loads in progress, one entry per key being loaded: bounded by the
//! threads reading).

use std::collections::HashMap;

use crate::error::{Error, StoreError};
use crate::index::Install;
use crate::primitives::{self, Arc, AtomicU64, Condvar, Mutex, Ordering};
use crate::shared::Shared;
use crate::store::StoreReader;
use crate::value::Value;
use crate::version::{Kind, Version};

/// What a load found: the value and its version, or no live value.
type Outcome = Result<Option<(Version, Vec<u8>)>, StoreError>;

/// One load in progress; its followers wait for its outcome.
#[derive(Debug, Default)]
struct Pending {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

/// The loads in progress, and their counts.
#[derive(Debug, Default)]
pub(crate) struct Loads {
    pending: Mutex<HashMap<Box<[u8]>, Arc<Pending>>>,
    /// Reads of keys not resident (each either loads or waits for a load).
    pub(crate) misses: AtomicU64,
    /// Loads from the store.
    pub(crate) loads: AtomicU64,
    /// Loads that made their key resident.
    pub(crate) installed: AtomicU64,
}

/// Publishes the leader's outcome when dropped, so followers never wait
/// for a leader that panicked (they get an error instead).
struct Publish<'a> {
    loads: &'a Loads,
    key: &'a [u8],
    pending: Arc<Pending>,
    outcome: Option<Outcome>,
}

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or_else(|| {
            Err(StoreError::new(
                crate::error::StoreErrorKind::Read,
                "the load of this key panicked",
            ))
        });
        primitives::lock(&self.loads.pending).remove(self.key);
        *primitives::lock(&self.pending.outcome) = Some(outcome);
        self.pending.done.notify_all();
    }
}

/// `key`'s value: from memory if resident, else loaded through `reader`
/// (made resident if there is room). `None`: no live value.
pub(crate) fn get(
    shared: &Shared,
    reader: &dyn StoreReader,
    key: &[u8],
) -> Result<Option<Value>, Error> {
    if let Some(resident) = read_resident(shared, key) {
        return Ok(resident);
    }
    shared.loads.misses.fetch_add(1, Ordering::Relaxed);
    let (pending, leader) = {
        let mut map = primitives::lock(&shared.loads.pending);
        match map.get(key) {
            Some(p) => (Arc::clone(p), false),
            None => {
                let p = Arc::new(Pending::default());
                map.insert(key.into(), Arc::clone(&p));
                (p, true)
            }
        }
    };
    let outcome = if leader {
        lead(shared, reader, key, pending)
    } else {
        follow(&pending)
    };
    Ok(outcome
        .map_err(Error::Store)?
        .map(|(version, bytes)| value_of(version, &bytes)))
}

/// The first miss of a key: loads it (unless a load finished just before
/// this one began and left it resident) and hands the outcome on.
fn lead(shared: &Shared, reader: &dyn StoreReader, key: &[u8], pending: Arc<Pending>) -> Outcome {
    let mut publish = Publish {
        loads: &shared.loads,
        key,
        pending,
        outcome: None,
    };
    let outcome = load(shared, reader, key);
    publish.outcome = Some(outcome.clone());
    drop(publish);
    outcome
}

fn follow(pending: &Pending) -> Outcome {
    let mut outcome = primitives::lock(&pending.outcome);
    loop {
        if let Some(o) = outcome.as_ref() {
            return o.clone();
        }
        // The timeout is a safety net: the leader always publishes (its
        // `Publish` guard runs even if it panics).
        outcome = primitives::wait_timeout(
            &pending.done,
            outcome,
            std::time::Duration::from_millis(100),
        );
    }
}

/// Ticket, re-check, read, install (see the module docs).
fn load(shared: &Shared, reader: &dyn StoreReader, key: &[u8]) -> Outcome {
    let index = &shared.index;
    let ticket = index.load_ticket(key);
    let mut bytes = Vec::new();
    if let Some(resident) = read_into(shared, key, &mut bytes) {
        return Ok(resident.map(|v| (v, bytes)));
    }
    shared.loads.loads.fetch_add(1, Ordering::Relaxed);
    let loaded = match reader.load(key, &mut bytes)? {
        Some(l) if l.kind == Kind::Put => l,
        _ => return Ok(None),
    };
    match index.install(key, ticket, loaded.version, &bytes) {
        Ok(Install::Made(found)) => {
            shared.loads.installed.fetch_add(1, Ordering::Relaxed);
            shared.note_loaded(
                found.slot,
                loaded.version,
                crate::record::encoded_len(key.len(), bytes.len()),
            );
            Ok(Some((loaded.version, bytes)))
        }
        Ok(Install::Present) => {
            Ok(read_into(shared, key, &mut bytes).and_then(|r| r.map(|v| (v, bytes))))
        }
        // Not installed; what was read is still this read's answer (see
        // the module docs). A full index is the flusher's to relieve.
        Ok(Install::Stale) | Err(_) => Ok(Some((loaded.version, bytes))),
    }
}

/// Makes `key` resident from the store if it holds a live value there
/// (a counter about to be added to). True if the key is resident now (then
/// look it up again); false if the store holds no live value of it.
///
/// # Errors
/// The store could not be read; or the load could not be installed
/// (memory full, or an entry of its bucket freed during it) and nothing is
/// resident to add to.
pub(crate) fn make_resident(shared: &Shared, key: &[u8]) -> Result<bool, Error> {
    let Some(reader) = shared.reader.as_deref() else {
        return Ok(false);
    };
    let ticket = shared.index.load_ticket(key);
    if shared.index.find(key).is_some() {
        return Ok(true);
    }
    let mut bytes = Vec::new();
    shared.loads.loads.fetch_add(1, Ordering::Relaxed);
    let loaded = match reader.load(key, &mut bytes).map_err(Error::Store)? {
        Some(l) if l.kind == Kind::Put => l,
        _ => return Ok(false),
    };
    match shared.index.install(key, ticket, loaded.version, &bytes)? {
        Install::Made(found) => {
            shared.loads.installed.fetch_add(1, Ordering::Relaxed);
            shared.note_loaded(
                found.slot,
                loaded.version,
                crate::record::encoded_len(key.len(), bytes.len()),
            );
            Ok(true)
        }
        Install::Present | Install::Stale => Ok(true),
    }
}

/// `Some(value or None)` if `key` is resident.
pub(crate) fn read_resident(shared: &Shared, key: &[u8]) -> Option<Option<Value>> {
    let mut value = Value::empty();
    let snap = shared.index.read(key, &mut value)?;
    value.set_version(snap.version);
    Some((snap.kind == Kind::Put).then_some(value))
}

/// As [`read_resident`], the value's bytes into `out`.
fn read_into(shared: &Shared, key: &[u8], out: &mut Vec<u8>) -> Option<Option<Version>> {
    let snap = shared.index.read(key, out)?;
    Some((snap.kind == Kind::Put).then_some(snap.version))
}

fn value_of(version: Version, bytes: &[u8]) -> Value {
    use crate::value::Sink;
    let mut value = Value::empty();
    value.extend(bytes);
    value.set_version(version);
    value
}
