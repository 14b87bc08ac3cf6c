//! Read-through (G11): a key not in memory is loaded from the store and
//! made resident, one load per key however many threads miss it at once.
//!
//! # Why a load never installs or returns a stale value
//!
//! A load takes a ticket (the free counter of its key's hash bucket),
//! checks the key is not resident, reads the store, and installs what it
//! read under the key's shard lock only if the key is still not resident
//! and no entry of the bucket was freed meanwhile (`Index::install`):
//!
//! - a writer that made the key resident during the load wrote a version
//!   above everything stored (a new entry starts at the version floor), so
//!   its entry wins and the load returns what the entry holds (or, if that
//!   entry was evicted before it could be read, loads again);
//! - an entry of the key that came *and went* during the load (put, made
//!   durable, then evicted or reclaimed) bumps the bucket's counter, so the
//!   load installs nothing. What it read is still a correct answer for the
//!   thread that loaded (the put was concurrent with its read), but not for
//!   a thread that started waiting for the load after that put returned.
//!
//! So an outcome is handed to the threads that waited for it only if no
//! entry of the bucket was freed between the leader's ticket and the end of
//! its load; otherwise each of them loads again by itself, once, outside
//! the map of loads in progress. (Without a free in
//! between, any put since the leader's ticket is still resident, and a
//! follower that found the key not resident started before it.)
//!
//! The loads in progress are a map with one entry per key being loaded:
//! bounded by the threads reading.

use std::collections::HashMap;

use crate::error::{Error, StoreError};
use crate::index::{Install, LoadTicket};
use crate::primitives::{self, Arc, AtomicU64, Condvar, Mutex, Ordering};
use crate::shared::Shared;
use crate::store::StoreReader;
use crate::value::Value;
use crate::version::{Kind, Version};

/// What a load found: the value and its version, or no live value.
type Found = Option<(Version, Vec<u8>)>;

/// A leader's outcome, and whether the threads that waited for it may take
/// it (see the module docs).
#[derive(Debug, Clone)]
struct Outcome {
    result: Result<Found, StoreError>,
    shareable: bool,
}

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
}

/// Times one load reads the store again when the entry a writer made
/// meanwhile was evicted before the load could read it.
const ATTEMPTS: usize = 4;

/// Publishes the leader's outcome when dropped, so followers never wait
/// for a leader that panicked (they load themselves instead).
struct Publish<'a> {
    loads: &'a Loads,
    key: &'a [u8],
    pending: Arc<Pending>,
    outcome: Option<Outcome>,
}

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or(Outcome {
            result: Ok(None),
            shareable: false,
        });
        primitives::lock(&self.loads.pending).remove(self.key);
        *primitives::lock(&self.pending.outcome) = Some(outcome);
        self.pending.done.notify_all();
    }
}

/// `key`'s value, which a read just found not resident: loaded through
/// `reader` (made resident if there is room), or waited for if another
/// thread is loading it. `None`: no live value.
pub(crate) fn get_missed(
    shared: &Shared,
    reader: &dyn StoreReader,
    key: &[u8],
) -> Result<Option<Value>, Error> {
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
    let result = if leader {
        lead(shared, reader, key, pending).result
    } else {
        match follow(&pending) {
            // Not this thread's to take: it loads for itself.
            Outcome {
                shareable: false, ..
            } => load(shared, reader, key),
            outcome => outcome.result,
        }
    };
    Ok(result
        .map_err(Error::Store)?
        .map(|(version, bytes)| value_of(version, &bytes)))
}

/// The first miss of a key: loads it and hands the outcome on.
fn lead(shared: &Shared, reader: &dyn StoreReader, key: &[u8], pending: Arc<Pending>) -> Outcome {
    let mut publish = Publish {
        loads: &shared.loads,
        key,
        pending,
        outcome: None,
    };
    let ticket = shared.index.load_ticket(key);
    let result = load(shared, reader, key);
    let outcome = Outcome {
        shareable: shared.index.load_ticket(key) == ticket,
        result,
    };
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

/// Ticket, re-check, read, install (see the module docs); again if the
/// entry that beat the install was gone before it could be read.
fn load(shared: &Shared, reader: &dyn StoreReader, key: &[u8]) -> Result<Found, StoreError> {
    let mut bytes = Vec::new();
    for _ in 0..ATTEMPTS {
        let ticket = shared.index.load_ticket(key);
        if let Some(resident) = read_into(shared, key, &mut bytes) {
            return Ok(resident.map(|v| (v, bytes)));
        }
        let Some(version) = read_store(shared, reader, key, &mut bytes)? else {
            return Ok(None);
        };
        // Memory full (or `keys_max` reached) counts as not installed: the
        // read still answers; the flusher is the one to make room.
        match install(shared, key, ticket, version, &bytes) {
            Ok(Install::Made(_) | Install::Stale) | Err(_) => return Ok(Some((version, bytes))),
            Ok(Install::Present) => {
                if let Some(resident) = read_into(shared, key, &mut bytes) {
                    return Ok(resident.map(|v| (v, bytes)));
                }
            }
        }
    }
    Err(StoreError::new(
        crate::error::StoreErrorKind::Read,
        format!("the key was evicted {ATTEMPTS} times while being read; try again"),
    ))
}

/// The version of `key`'s live value in the store (copied into `bytes`),
/// if it has one.
fn read_store(
    shared: &Shared,
    reader: &dyn StoreReader,
    key: &[u8],
    bytes: &mut Vec<u8>,
) -> Result<Option<Version>, StoreError> {
    shared.loads.loads.fetch_add(1, Ordering::Relaxed);
    let loaded = reader.load(key, bytes)?;
    if loaded.is_some_and(|l| l.version == Version(0)) {
        return Err(StoreError::new(
            crate::error::StoreErrorKind::Read,
            "the store's reader returned version 0 (a bug in the store: it must return the \
             version it stored, at least 1)",
        ));
    }
    Ok(loaded.filter(|l| l.kind == Kind::Put).map(|l| l.version))
}

/// [`Index::install`](crate::index::Index::install) (budgeted), telling
/// the flusher of an entry made.
fn install<'a>(
    shared: &'a Shared,
    key: &[u8],
    ticket: LoadTicket,
    version: Version,
    bytes: &[u8],
) -> Result<Install<'a>, Error> {
    let installed = shared.index.install(key, ticket, version, bytes, true)?;
    if let Install::Made(found) = &installed {
        let len = crate::record::encoded_len(key.len(), bytes.len());
        shared.note_loaded(found.slot, found.ident, version, len);
    }
    Ok(installed)
}

/// What [`make_resident`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    /// The key is resident now: look it up again.
    Resident,
    /// The store holds no live value of the key, and no entry of its bucket
    /// was freed since `ticket`: a new counter may start from zero if the
    /// bucket is still so when it is made (`Index::upsert` checks).
    Absent(LoadTicket),
    /// An entry of its bucket was freed meanwhile: try again.
    Again,
}

/// Makes `key` resident from the store if it holds a live value there
/// (a counter about to be added to).
///
/// # Errors
/// The store could not be read; or memory is full (`MemoryFull`,
/// `IndexFull`): nothing could be made resident to add to.
pub(crate) fn make_resident(shared: &Shared, key: &[u8]) -> Result<Counter, Error> {
    let Some(reader) = shared.reader.as_deref() else {
        return Ok(Counter::Absent(shared.index.load_ticket(key)));
    };
    let ticket = shared.index.load_ticket(key);
    if shared.index.find(key).is_some() {
        return Ok(Counter::Resident);
    }
    let mut bytes = Vec::new();
    let Some(version) = read_store(shared, reader, key, &mut bytes).map_err(Error::Store)? else {
        return Ok(Counter::Absent(ticket));
    };
    match install(shared, key, ticket, version, &bytes)? {
        Install::Made(_) | Install::Present => Ok(Counter::Resident),
        Install::Stale => Ok(Counter::Again),
    }
}

/// `Some(its version, if it has a live value)` if `key` is resident, the
/// value's bytes into `out`.
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
