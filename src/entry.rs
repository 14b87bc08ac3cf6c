//! One key's cell in the index: its value and version, changed together.
//!
//! # Algorithm
//!
//! The cell is a sequence lock whose sequence word *is* the version:
//! `seq = 2 * version` while the cell is stable and `2 * version + 1` while a
//! writer changes it. A writer takes the cell by CAS from even to odd, writes
//! the value, and publishes `2 * (version + 1)`. So every update of a key gets a
//! version exactly one above the one it replaced (G2 by construction), and
//! value and version cannot be observed apart.
//!
//! Readers never write: they read `seq`, copy the value, and re-read `seq`; if
//! it changed or was odd they retry. The value lives in `AtomicU64` words so
//! that a read racing a write is a well-defined (discarded) read rather than a
//! data race; the fences follow Boehm, "Can Seqlocks Get Along With
//! Programming Language Memory Models?" (MSPC 2012), section 5.
//!
//! Why not an immutable boxed value swapped by CAS and reclaimed by an epoch
//! scheme? The project's design study measured that at p99 36 us against 0.7 us
//! without the swap: an allocation per put, a free on another thread and the
//! epoch's bookkeeping make the tail. Here a put allocates nothing unless the
//! value outgrows its cell. The cost is that two writers of the *same* key
//! serialize on its cell for the few nanoseconds of a copy.
//!
//! An entry is 128 bytes aligned to 64: line 0 holds the sequence word, the
//! length, the key (inline up to `KEY_INLINE_BYTES`, 28 bytes) and the heap pointer; line 1 holds
//! values up to [`INLINE_BYTES`]. Entries live inside the index's slot array
//! (see `index.rs`), so a lookup of a short key costs one cache miss (two
//! adjacent lines, which the hardware prefetches together).
//!
//! All-zero bytes are a valid empty entry, so the index can keep its slots
//! in an anonymous memory mapping (`table.rs`) whose pages the OS maps only
//! as keys arrive. A longer value moves to a heap
//! [`Storage`] at least twice the old size; the storage it replaces is kept on
//! a chain until the entry is dropped, because a concurrent reader may still be
//! copying from it. Capacities double and are bounded by `value_bytes_max`, so
//! the chain holds less than the live storage: memory stays within 2x.

use std::ptr;

use crate::error::Error;
use crate::primitives::{fence, AtomicPtr, AtomicU32, AtomicU64, Backoff, Ordering};
use crate::value::Sink;
use crate::version::{Kind, Version};

/// Words of value stored inside the entry.
pub(crate) const INLINE_WORDS: usize = 8;
/// Values up to this many bytes need no allocation.
pub const INLINE_BYTES: usize = INLINE_WORDS * 8;
/// Keys up to this many bytes are stored inside the entry.
const KEY_INLINE_BYTES: usize = 28;
/// `len` value for "no live value" (never written, or deleted).
const TOMBSTONE: u32 = u32::MAX;

/// A key's bytes: inline when short, else an owned heap copy (a leaked
/// `Box<[u8]>` of `len` bytes). All-zero is the valid empty key.
#[repr(C)]
#[derive(Debug)]
struct KeyBytes {
    len: u32,
    inline: [u8; KEY_INLINE_BYTES],
    /// Null, or `Box::<[u8]>::into_raw` of `len` bytes, freed in `Drop`.
    heap: *mut u8,
}

impl KeyBytes {
    fn new(key: &[u8]) -> Self {
        let mut k = Self {
            len: key.len() as u32,
            inline: [0; KEY_INLINE_BYTES],
            heap: ptr::null_mut(),
        };
        if key.len() <= KEY_INLINE_BYTES {
            k.inline[..key.len()].copy_from_slice(key);
        } else {
            k.heap = Box::into_raw(Box::<[u8]>::from(key)).cast::<u8>();
        }
        k
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        let len = self.len as usize;
        if self.heap.is_null() {
            &self.inline[..len.min(KEY_INLINE_BYTES)]
        } else {
            // SAFETY: `heap` holds `len` initialized bytes owned by us.
            unsafe { std::slice::from_raw_parts(self.heap, len) }
        }
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        if !self.heap.is_null() {
            let slice = ptr::slice_from_raw_parts_mut(self.heap, self.len as usize);
            // SAFETY: `heap` came from `Box::<[u8]>::into_raw` of `len` bytes
            // and is freed only here.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

/// Heap words for a value longer than the inline space.
#[derive(Debug)]
struct Storage {
    words: Box<[AtomicU64]>,
    /// The storage this one replaced, kept alive for concurrent readers.
    retired: *mut Storage,
}

/// What a reader saw: the version and whether a value was there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The version the copied value belongs to (0: never written).
    pub version: Version,
    /// Put (value copied) or Delete (no value; also "never written").
    pub kind: Kind,
}

/// What a writer does to the cell.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Update<'a> {
    Put(&'a [u8]),
    Delete,
    Add(i64),
}

/// The outcome of [`Entry::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// The key's version after the write.
    pub version: Version,
    /// For `Add`: the counter's new value.
    pub counter: i64,
    /// False if the write changed nothing (delete of an absent value).
    pub changed: bool,
}

/// `Entry::state` values: an index slot is claimed once and published once.
pub(crate) const SLOT_EMPTY: u32 = 0;
pub(crate) const SLOT_CLAIMED: u32 = 1;
pub(crate) const SLOT_READY: u32 = 2;

/// One key of the index. See the module docs for the layout.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Entry {
    /// `2 * version`, odd while a writer holds the cell. Only grows.
    seq: AtomicU64,
    /// Value length in bytes, or `TOMBSTONE`. Guarded by `seq`.
    len: AtomicU32,
    /// `SLOT_EMPTY -> SLOT_CLAIMED -> SLOT_READY`, driven by the index. The
    /// key is written while CLAIMED and immutable once READY (published with
    /// Release, observed with Acquire).
    pub(crate) state: AtomicU32,
    /// Heap storage, or null while the value fits inline. Guarded by `seq`;
    /// published with Release so a reader that sees a pointer sees the
    /// storage's initialization.
    heap: AtomicPtr<Storage>,
    /// Written once by the claiming thread, then immutable. A plain std cell:
    /// its publication is tracked (also by loom) through `state`.
    key: std::cell::UnsafeCell<KeyBytes>,
    inline: [AtomicU64; INLINE_WORDS],
}

// SAFETY: the raw pointers (key heap copy, `retired` chains) are owned by the
// entry; the key is written only while the slot is CLAIMED by one thread and
// is immutable after; storages are touched by the writer holding the cell or
// by `Drop`; everything else is atomic.
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

impl Entry {
    /// An empty slot (the same as all-zero bytes, which is how the index
    /// allocates slots outside loom).
    #[cfg_attr(not(any(loom, test)), allow(dead_code))]
    pub(crate) fn empty() -> Self {
        Self {
            seq: AtomicU64::new(0),
            len: AtomicU32::new(0),
            state: AtomicU32::new(SLOT_EMPTY),
            heap: AtomicPtr::new(ptr::null_mut()),
            key: std::cell::UnsafeCell::new(KeyBytes {
                len: 0,
                inline: [0; KEY_INLINE_BYTES],
                heap: ptr::null_mut(),
            }),
            inline: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Makes a claimed slot the entry of `key`, holding nothing at
    /// `version`. The caller then publishes it (`state = SLOT_READY`, Release).
    ///
    /// # Safety
    /// The caller claimed this slot (CAS `SLOT_EMPTY -> SLOT_CLAIMED`) and has
    /// not published it: no other thread reads the key yet.
    pub(crate) unsafe fn init(&self, key: &[u8], version: Version) {
        // SAFETY: exclusive access per the caller's contract; the old key is
        // the empty one (nothing to free), so a plain write is fine.
        unsafe { self.key.get().write(KeyBytes::new(key)) };
        self.len.store(TOMBSTONE, Ordering::Relaxed);
        self.seq.store(version.0 * 2, Ordering::Relaxed);
    }

    /// The key. Only meaningful once the entry is READY (the index hands out
    /// READY entries only).
    #[inline]
    /// The value's length as last written, read without the sequence lock
    /// (0 for a tombstone): a hint, which a concurrent write may make stale.
    pub(crate) fn value_len_hint(&self) -> usize {
        // Relaxed: only a size estimate; the value itself is read under `seq`.
        match self.len.load(Ordering::Relaxed) {
            TOMBSTONE => 0,
            len => len as usize,
        }
    }

    pub(crate) fn key(&self) -> &[u8] {
        // SAFETY: the key was written before the Release store of READY that
        // the caller acquired, and is never written again.
        unsafe { (*self.key.get()).as_slice() }
    }

    /// The current version (a snapshot; for stats and tests).
    pub(crate) fn version(&self) -> Version {
        // Acquire: pairs with the writer's Release unlock.
        Version(self.seq.load(Ordering::Acquire) / 2)
    }

    /// Copies the value into `out` (cleared first) and returns its version.
    /// Lock-free for readers in the sense that matters here: it never blocks a
    /// writer; it retries while a writer is mid-update.
    pub(crate) fn read(&self, out: &mut impl Sink) -> Snapshot {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: everything the last writer did before its Release
            // unlock is visible to the copy below.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                out.clear();
                let len = self.len.load(Ordering::Relaxed);
                let kind = if len == TOMBSTONE {
                    Kind::Delete
                } else {
                    self.copy_out(len as usize, out);
                    Kind::Put
                };
                // Acquire fence: the copies above are ordered before the
                // re-check of seq (Boehm's reader).
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1
                    || crate::primitives::bug(crate::primitives::Bug::SeqlockReaderNoRecheck)
                {
                    return Snapshot {
                        version: Version(s1 / 2),
                        kind,
                    };
                }
            }
            backoff.snooze();
        }
    }

    /// Copies up to `len` bytes of the current words into `out`; the result is
    /// only meaningful if the caller's seq check then passes.
    fn copy_out(&self, len: usize, out: &mut impl Sink) {
        // Acquire: a storage pointer published by a writer comes with its
        // initialized contents.
        let heap = self.heap.load(Ordering::Acquire);
        let words: &[AtomicU64] = if heap.is_null() {
            &self.inline
        } else {
            // SAFETY: a non-null `heap` points to a Storage owned by this entry
            // (current or retired) and freed only in `Drop`, which cannot run
            // while `&self` is borrowed.
            unsafe { &(*heap).words }
        };
        // A torn read may pair a length with a smaller storage: clamp, the
        // seq check will discard the copy.
        let len = len.min(words.len() * 8);
        // 64 bytes at a time through a stack buffer: one `extend` per cache
        // line instead of one per word.
        let mut buf = [0u8; 64];
        for (i, line) in words[..len.div_ceil(8)].chunks(8).enumerate() {
            for (j, word) in line.iter().enumerate() {
                // Relaxed: validated by the seq check (see the module docs).
                buf[j * 8..j * 8 + 8].copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
            }
            let take = (len - i * 64).min(64);
            out.extend(&buf[..take]);
        }
    }

    /// Applies `update`. On error nothing changed; a delete of a key with no
    /// live value changes nothing either (`changed: false`, same version).
    pub(crate) fn write(&self, update: Update<'_>) -> Result<Written, Error> {
        let seq = self.lock();
        match self.apply(update) {
            Ok(Some(counter)) => {
                let version = seq / 2 + 1;
                // Release: the value writes happen-before any reader's or the
                // next writer's Acquire of the new seq.
                self.seq.store(version * 2, Ordering::Release);
                Ok(Written {
                    version: Version(version),
                    counter,
                    changed: true,
                })
            }
            Ok(None) => {
                // Nothing was written; restore the old seq.
                self.seq.store(seq, Ordering::Release);
                Ok(Written {
                    version: Version(seq / 2),
                    counter: 0,
                    changed: false,
                })
            }
            Err(e) => {
                self.seq.store(seq, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Takes the cell; returns the (even) seq it held.
    fn lock(&self) -> u64 {
        let mut backoff = Backoff::new();
        loop {
            let s = self.seq.load(Ordering::Relaxed);
            if crate::primitives::bug(crate::primitives::Bug::SeqlockNoCas) && s & 1 == 0 {
                self.seq.store(s + 1, Ordering::Relaxed);
                fence(Ordering::Release);
                return s;
            }
            // Acquire: the previous writer's value writes are visible to our
            // read-modify-write (`Add`).
            if s & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                // Release fence: no value write below can become visible
                // before the odd seq (Boehm's writer).
                fence(Ordering::Release);
                return s;
            }
            backoff.snooze();
        }
    }

    /// The value writes of `write`, with the cell held. `Ok(None)`: nothing
    /// to do.
    fn apply(&self, update: Update<'_>) -> Result<Option<i64>, Error> {
        match update {
            Update::Put(value) => {
                self.store_value(value);
                Ok(Some(0))
            }
            Update::Delete => {
                if self.len.load(Ordering::Relaxed) == TOMBSTONE {
                    return Ok(None);
                }
                self.len.store(TOMBSTONE, Ordering::Relaxed);
                Ok(Some(0))
            }
            Update::Add(delta) => {
                let len = self.len.load(Ordering::Relaxed);
                let current = if len == TOMBSTONE {
                    0
                } else if len == 8 {
                    // Relaxed: we hold the cell; the Acquire in `lock` made the
                    // last writer's words visible.
                    self.words_held()[0].load(Ordering::Relaxed) as i64
                } else {
                    return Err(Error::NotACounter { len: len as usize });
                };
                let new = current
                    .checked_add(delta)
                    .ok_or(Error::CounterOverflow { current, delta })?;
                self.store_value(&new.to_le_bytes());
                Ok(Some(new))
            }
        }
    }

    /// The current words; caller holds the cell.
    fn words_held(&self) -> &[AtomicU64] {
        let heap = self.heap.load(Ordering::Relaxed);
        if heap.is_null() {
            &self.inline
        } else {
            // SAFETY: as in `copy_out`.
            unsafe { &(*heap).words }
        }
    }

    /// Writes `value` into the words, growing the storage if needed. Caller
    /// holds the cell.
    fn store_value(&self, value: &[u8]) {
        let needed_words = value.len().div_ceil(8);
        let heap = self.heap.load(Ordering::Relaxed);
        let words: &[AtomicU64] = if heap.is_null() && needed_words <= INLINE_WORDS {
            &self.inline
        } else {
            // SAFETY: as in `copy_out`; we hold the cell, so no other writer
            // replaces `heap` meanwhile.
            let current = (!heap.is_null()).then(|| unsafe { &*heap });
            let current_words = current.map_or(INLINE_WORDS, |s| s.words.len());
            if needed_words <= current_words {
                // `current` is Some: the inline case was handled above.
                match current {
                    Some(storage) => &storage.words,
                    None => &self.inline,
                }
            } else {
                let cap = needed_words.max(current_words * 2);
                let storage = Box::into_raw(Box::new(Storage {
                    words: (0..cap).map(|_| AtomicU64::new(0)).collect(),
                    retired: heap,
                }));
                // Release: readers that see the pointer see the storage.
                self.heap.store(storage, Ordering::Release);
                // SAFETY: just allocated; freed only in Drop.
                unsafe { &(*storage).words }
            }
        };
        let mut chunks = value.chunks_exact(8);
        for (word, chunk) in words.iter().zip(&mut chunks) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            // Relaxed: published by the Release unlock.
            word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut bytes = [0u8; 8];
            bytes[..rest.len()].copy_from_slice(rest);
            // Relaxed: as above.
            words[value.len() / 8].store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        self.len.store(value.len() as u32, Ordering::Relaxed);
    }

    /// Sets value and version directly; only while no other thread can see the
    /// entry (recovery).
    pub(crate) fn restore(&self, version: Version, value: Option<&[u8]>) {
        debug_assert_eq!(self.seq.load(Ordering::Relaxed) & 1, 0);
        match value {
            Some(v) => self.store_value(v),
            None => self.len.store(TOMBSTONE, Ordering::Relaxed),
        }
        self.seq.store(version.0 * 2, Ordering::Release);
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut next = self.heap.load(Ordering::Relaxed);
        while !next.is_null() {
            // SAFETY: `&mut self`: no reader or writer is left; every storage
            // on the chain came from `Box::into_raw` and is freed once.
            let storage = unsafe { Box::from_raw(next) };
            next = storage.retired;
        }
    }
}

#[cfg(all(test, not(loom)))]
impl Entry {
    /// A ready entry outside any index (unit tests).
    pub(crate) fn new(key: &[u8], version: Version) -> Self {
        let e = Self::empty();
        e.state.store(SLOT_CLAIMED, Ordering::Relaxed);
        // SAFETY: we own `e`; nobody else can see it.
        unsafe { e.init(key, version) };
        e.state.store(SLOT_READY, Ordering::Release);
        e
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn layout_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Entry>(), 128);
        assert_eq!(std::mem::align_of::<Entry>(), 64);
        assert_eq!(std::mem::offset_of!(Entry, inline), 64);
    }

    fn read(entry: &Entry) -> (Version, Option<Vec<u8>>) {
        let mut out = Vec::new();
        let snap = entry.read(&mut out);
        (snap.version, (snap.kind == Kind::Put).then_some(out))
    }

    #[test]
    fn versions_step_by_one_and_values_follow() {
        let e = Entry::new(b"k", Version(0));
        assert_eq!(read(&e), (Version(0), None));
        assert_eq!(
            e.write(Update::Put(b"a")).map(|r| r.version).ok(),
            Some(Version(1))
        );
        assert_eq!(read(&e), (Version(1), Some(b"a".to_vec())));
        assert_eq!(
            e.write(Update::Delete).map(|r| r.version).ok(),
            Some(Version(2))
        );
        let again = e.write(Update::Delete).expect("delete");
        assert!(
            !again.changed && again.version == Version(2),
            "deleting nothing changes nothing"
        );
        assert_eq!(read(&e), (Version(2), None));
    }

    #[test]
    fn values_grow_shrink_and_cross_the_inline_limit() {
        let e = Entry::new(b"k", Version(0));
        for len in [0usize, 1, 7, 8, 9, 64, 65, 300, 3, 1000, 64, 5000, 0] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            e.write(Update::Put(&value)).expect("put");
            assert_eq!(read(&e).1, Some(value), "len {len}");
        }
    }

    #[test]
    fn counters_add_and_refuse_non_counters() {
        let e = Entry::new(b"c", Version(0));
        assert_eq!(e.write(Update::Add(5)).ok().map(|r| r.counter), Some(5));
        assert_eq!(e.write(Update::Add(-7)).ok().map(|r| r.counter), Some(-2));
        assert_eq!(e.version(), Version(2));
        e.write(Update::Put(b"abc")).expect("put");
        assert!(matches!(
            e.write(Update::Add(1)),
            Err(Error::NotACounter { len: 3 })
        ));
        assert_eq!(e.version(), Version(3), "a refused add changes nothing");
        e.write(Update::Put(&i64::MAX.to_le_bytes())).expect("put");
        assert!(matches!(
            e.write(Update::Add(1)),
            Err(Error::CounterOverflow { .. })
        ));
        assert_eq!(read(&e).1, Some(i64::MAX.to_le_bytes().to_vec()));
    }

    #[test]
    fn long_keys_are_kept_whole() {
        let key = vec![9u8; 300];
        assert_eq!(Entry::new(&key, Version(0)).key(), &key[..]);
    }

    /// Readers racing writers of growing values never see a torn value: every
    /// value read is one some writer wrote whole (all bytes equal to its
    /// length's low byte), and versions never go backwards.
    #[test]
    fn concurrent_readers_see_whole_values() {
        let e = std::sync::Arc::new(Entry::new(b"k", Version(0)));
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let e = std::sync::Arc::clone(&e);
                std::thread::spawn(move || {
                    for i in 0..20_000usize {
                        let len = (i * 13 + t * 5) % 200;
                        e.write(Update::Put(&vec![len as u8; len])).expect("put");
                    }
                })
            })
            .collect();
        let mut last = Version(0);
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let snap = e.read(&mut out);
            assert!(snap.version >= last);
            last = snap.version;
            if snap.kind == Kind::Put {
                assert!(
                    out.iter().all(|&b| usize::from(b) == out.len()),
                    "torn value"
                );
            }
        }
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(e.version(), Version(40_000));
    }
}
