//! One resident key's cell: its key, value and version, changed together,
//! and reused for another key once the flusher frees it.
//!
//! # Algorithm
//!
//! The cell is a sequence lock: `seq` is even while the cell is stable and
//! odd while a writer (or the flusher freeing it) changes it. A writer takes
//! the cell by CAS from even to odd, changes value and version, and
//! publishes `seq + 2`. Readers never write: they read `seq`, copy, and
//! re-read `seq`; if it changed or was odd they retry. Everything a reader
//! copies lives in atomic words, so a read racing a write is a well-defined
//! (discarded) read rather than a data race; the fences follow Boehm, "Can
//! Seqlocks Get Along With Programming Language Memory Models?" (MSPC 2012),
//! section 5. Every update of a key gets a version exactly one above the one
//! it replaced, under the same lock, so versions of a resident key rise
//! strictly (G2).
//!
//! # Reuse
//!
//! Entries are never freed while the index lives; the flusher *frees* one
//! (a deleted key whose tombstone is durable, G12) and a later insert reuses
//! it for another key. `ident` says whose cell it is: a life counter (odd
//! while the cell belongs to a key, raised at every claim and every free)
//! and the key's length. Readers check key and `ident` inside the sequence
//! lock, so a reader racing a free and a reuse sees either the old key's
//! value or "not this key", never another key's value. A writer carries the
//! `ident` it found the entry with and re-checks it under the lock: if the
//! cell was freed meanwhile, the write is refused as stale and the writer
//! looks the key up again.
//!
//! # Layout
//!
//! 128 bytes aligned to 64. Line 0: `seq`, `version`, the heap pointers,
//! `ident`, the value's length and the key inline (up to
//! [`KEY_INLINE_BYTES`], 20). Line 1: values up to [`INLINE_BYTES`]. All-zero
//! bytes are a free entry, so entry chunks come from zeroed memory that the
//! OS maps as it is touched (`chunk.rs`).
//!
//! Longer values live in a heap [`Storage`]; longer keys in a heap copy.
//! A replaced storage (the value outgrew it, shrank to a quarter of it or
//! into the entry, or was deleted) and a freed entry's key are retired
//! through `retire.rs`: freed once no reader can still be copying them.

use std::ptr;

use super::retire::{self, Pin};
use crate::error::Error;
use crate::primitives::{fence, AtomicPtr, AtomicU32, AtomicU64, Backoff, Ordering};
use crate::value::Sink;
use crate::version::{Kind, Version};

/// Words of value stored inside the entry.
pub(crate) const INLINE_WORDS: usize = 8;
/// Values up to this many bytes need no allocation.
pub const INLINE_BYTES: usize = INLINE_WORDS * 8;
/// Words of key stored inside the entry.
const KEY_WORDS: usize = 5;
/// Keys up to this many bytes are stored inside the entry.
pub(crate) const KEY_INLINE_BYTES: usize = KEY_WORDS * 4;
/// `len` value for "no live value" (never written, or deleted).
const TOMBSTONE: u32 = u32::MAX;
/// Low bits of `ident`: the key's length (keys are at most 65535 bytes).
const KEY_LEN_BITS: u32 = 16;

/// Whose cell an entry is: `life << 16 | key length`; `life` is odd while
/// the entry belongs to a key. Changes at every claim and every free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ident(u64);

impl Ident {
    fn is_live(self) -> bool {
        (self.0 >> KEY_LEN_BITS) & 1 == 1
    }
    fn key_len(self) -> usize {
        (self.0 & ((1 << KEY_LEN_BITS) - 1)) as usize
    }
    fn next_life(self, key_len: usize) -> Self {
        Self((((self.0 >> KEY_LEN_BITS) + 1) << KEY_LEN_BITS) | key_len as u64)
    }
}

/// A key prepared for comparison with entries: a short one as the words an
/// entry stores it in (so comparing is five loads, no `memcmp`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyProbe<'a> {
    bytes: &'a [u8],
    words: [u32; KEY_WORDS],
}

impl<'a> KeyProbe<'a> {
    #[inline]
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            words: inline_words(bytes),
        }
    }
}

/// `key` zero-padded into words, if it fits inline (else zeros).
#[inline]
fn inline_words(key: &[u8]) -> [u32; KEY_WORDS] {
    let mut words = [0u32; KEY_WORDS];
    if key.len() <= KEY_INLINE_BYTES {
        // Whole words straight from the key, then the tail byte by byte:
        // no `memcpy` call for a length only known at run time (measured
        // with callgrind: the copy through a padded buffer cost a call and
        // about 20 instructions per lookup).
        let mut chunks = key.chunks_exact(4);
        for (w, chunk) in words.iter_mut().zip(&mut chunks) {
            *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let rest = chunks.remainder();
        let mut tail = 0u32;
        for (i, &b) in rest.iter().enumerate() {
            tail |= u32::from(b) << (8 * i);
        }
        if !rest.is_empty() {
            words[key.len() / 4] = tail;
        }
    }
    words
}

/// A key's bytes when too long to sit inline.
#[derive(Debug)]
struct LongKey(Box<[u8]>);

/// Heap words for a value longer than the inline space.
#[derive(Debug)]
struct Storage {
    words: Box<[AtomicU64]>,
}

impl Storage {
    fn boxed(words: usize) -> *mut Storage {
        Box::into_raw(Box::new(Storage {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }))
    }
}

/// What a reader saw: the version and whether a value was there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The version the copied value belongs to.
    pub version: Version,
    /// Put (value copied) or Delete (no value).
    pub kind: Kind,
}

/// What a writer does to the cell.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Update<'a> {
    Put(&'a [u8]),
    Delete,
    /// A delete of a key the store may hold a value of: a tombstone even
    /// if the entry holds no value.
    DeleteStored,
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

/// One key of the index. See the module docs for the layout.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Entry {
    /// Odd while a writer holds the cell; `+2` per change.
    seq: AtomicU64,
    /// The key's version. Guarded by `seq`.
    version: AtomicU64,
    /// Heap storage, or null while the value fits inline (or there is
    /// none). Guarded by `seq`; published with Release so a reader that sees
    /// a pointer sees the storage's initialization.
    heap: AtomicPtr<Storage>,
    /// A long key's heap copy, or null. Guarded by `seq`.
    key_heap: AtomicPtr<LongKey>,
    /// Whose cell this is ([`Ident`]). Guarded by `seq`.
    ident: AtomicU64,
    /// Value length in bytes, or `TOMBSTONE`. Guarded by `seq`.
    len: AtomicU32,
    /// The key, zero-padded, when it fits. Guarded by `seq`.
    key: [AtomicU32; KEY_WORDS],
    inline: [AtomicU64; INLINE_WORDS],
}

// SAFETY: the raw pointers (the key's heap copy, value storage) are owned by
// the entry and replaced only under its sequence lock; replaced blocks are
// retired through epochs; everything else is atomic.
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

// SAFETY: all-zero bytes are a free entry (zero atomics, null pointers), and
// dropping one frees nothing (both pointers are null).
unsafe impl super::chunk::ZeroValid for Entry {
    #[cfg(loom)]
    fn zero() -> Self {
        Self::empty()
    }
}

impl Entry {
    /// A free entry (the same as all-zero bytes, which is how chunks are
    /// allocated outside loom).
    #[cfg_attr(not(any(loom, test)), allow(dead_code))]
    pub(crate) fn empty() -> Self {
        Self {
            seq: AtomicU64::new(0),
            version: AtomicU64::new(0),
            heap: AtomicPtr::new(ptr::null_mut()),
            key_heap: AtomicPtr::new(ptr::null_mut()),
            ident: AtomicU64::new(0),
            len: AtomicU32::new(0),
            key: std::array::from_fn(|_| AtomicU32::new(0)),
            inline: std::array::from_fn(|_| AtomicU64::new(0)),
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
            // Acquire: the previous writer's changes are visible to our
            // read-modify-write (`Add`, the ident check).
            if s & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                // Release fence: no write below can become visible before
                // the odd seq (Boehm's writer).
                fence(Ordering::Release);
                return s;
            }
            backoff.snooze();
        }
    }

    /// Releases the cell taken at `seq`, publishing a change if `changed`.
    fn unlock(&self, seq: u64, changed: bool) {
        // Release: the writes under the lock happen-before any reader's or
        // the next writer's Acquire of the new seq.
        let next = if changed { seq + 2 } else { seq };
        self.seq.store(next, Ordering::Release);
    }

    /// Makes this free entry the cell of `key`, holding `value` (`None`:
    /// nothing) at `version`, all in one change; returns its new ident. The
    /// caller (the index, under the lock of the table that will point here)
    /// has made sure no other key is claiming it.
    pub(crate) fn claim(&self, key: &[u8], version: Version, value: Option<&[u8]>) -> Ident {
        let seq = self.lock();
        let old = Ident(self.ident.load(Ordering::Relaxed));
        debug_assert!(!old.is_live(), "claiming a live entry");
        let ident = old.next_life(key.len());
        if key.len() <= KEY_INLINE_BYTES {
            for (word, w) in self.key.iter().zip(inline_words(key)) {
                // Relaxed: published by the unlock.
                word.store(w, Ordering::Relaxed);
            }
        } else {
            let long = Box::into_raw(Box::new(LongKey(key.into())));
            // Release: a reader that sees the pointer sees the bytes.
            self.key_heap.store(long, Ordering::Release);
        }
        self.version.store(version.0, Ordering::Relaxed);
        match value {
            Some(v) => self.store_value(v),
            None => self.len.store(TOMBSTONE, Ordering::Relaxed),
        }
        // Release: whoever sees this ident with an Acquire load sees the
        // key written above (`candidate`, `key`).
        self.ident.store(ident.0, Ordering::Release);
        self.unlock(seq, true);
        ident
    }

    /// Frees the cell if it still belongs to `ident` at `version` (nothing
    /// changed it since the caller decided); its heap blocks are retired.
    /// Only the flusher frees.
    pub(crate) fn free(&self, ident: Ident, version: Version) -> bool {
        let seq = self.lock();
        if self.ident.load(Ordering::Relaxed) != ident.0
            || self.version.load(Ordering::Relaxed) != version.0
        {
            self.unlock(seq, false);
            return false;
        }
        let pin = retire::pin();
        let heap = self.heap.swap(ptr::null_mut(), Ordering::Relaxed);
        let key = self.key_heap.swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: both were unlinked just above, under the lock, and each
        // block is linked from one entry only.
        unsafe {
            retire_nonnull(&pin, heap);
            retire_nonnull(&pin, key);
        }
        self.len.store(TOMBSTONE, Ordering::Relaxed);
        self.ident.store(ident.next_life(0).0, Ordering::Relaxed);
        self.unlock(seq, true);
        true
    }

    /// The entry's ident if it is the live cell of `probe`'s key
    /// (validated under the sequence lock), else `None`.
    pub(crate) fn ident_if(&self, probe: &KeyProbe<'_>) -> Option<Ident> {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: as in `read_matching`.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let ident = Ident(self.ident.load(Ordering::Relaxed));
                let found = self.is_cell_of(ident, probe).then_some(ident);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return found;
                }
            }
            backoff.snooze();
        }
    }

    /// The ident, if this entry looks like the live cell of `probe`'s key,
    /// read without the sequence lock: a writer's candidate. Its write
    /// re-checks the ident under the lock ([`write`](Self::write)), and that
    /// is enough: the key words read after an Acquire load of `ident` are
    /// the ones its claim wrote, or a later claim's, and a later claim
    /// changes the ident first (the entry must be freed before it is
    /// claimed again). Nor is the live cell of the key ever missed: only
    /// claims and frees write a key and its ident, never an update.
    #[inline]
    pub(crate) fn candidate(&self, probe: &KeyProbe<'_>) -> Option<Ident> {
        // Acquire: pairs with the claim's Release store of the ident.
        let ident = Ident(self.ident.load(Ordering::Acquire));
        self.is_cell_of(ident, probe).then_some(ident)
    }

    /// Part of a seqlock read: does `ident` (just read) with the key words
    /// name `probe`'s key? Meaningful only if the caller's seq check passes.
    #[inline]
    fn is_cell_of(&self, ident: Ident, probe: &KeyProbe<'_>) -> bool {
        if !ident.is_live() || ident.key_len() != probe.bytes.len() {
            return false;
        }
        if probe.bytes.len() <= KEY_INLINE_BYTES {
            // Relaxed: validated by the seq check.
            return self
                .key
                .iter()
                .zip(probe.words)
                .all(|(word, w)| word.load(Ordering::Relaxed) == w);
        }
        let _pin = retire::pin();
        // Acquire: the bytes behind the pointer are initialized.
        let long = self.key_heap.load(Ordering::Acquire);
        // SAFETY: loaded after pinning, so even if the entry is freed now,
        // the block is retired (not freed) until the pin drops.
        !long.is_null() && unsafe { &*long }.0[..] == *probe.bytes
    }

    /// If this is the live cell of `probe`'s key, copies the value into
    /// `out` (cleared first) and returns its snapshot. Never blocks a
    /// writer; retries while one is mid-update.
    #[inline]
    pub(crate) fn read_matching(
        &self,
        probe: &KeyProbe<'_>,
        out: &mut impl Sink,
    ) -> Option<Snapshot> {
        let mut backoff = Backoff::new();
        let checked_early = crate::primitives::bug(crate::primitives::Bug::KeyCheckOutsideSeqlock)
            .then(|| self.ident_if(probe).is_some());
        loop {
            // Acquire: everything the last writer did before its Release
            // unlock is visible to the copy below.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let ident = Ident(self.ident.load(Ordering::Relaxed));
                let snap = checked_early
                    .unwrap_or_else(|| self.is_cell_of(ident, probe))
                    .then(|| self.copy_snapshot(out));
                // Acquire fence: the copies above are ordered before the
                // re-check of seq (Boehm's reader).
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1
                    || crate::primitives::bug(crate::primitives::Bug::SeqlockReaderNoRecheck)
                {
                    return snap;
                }
            }
            backoff.snooze();
        }
    }

    /// The flusher's read of the value and version, whoever's cell it is
    /// (`None` if free), with the ident it belongs to: a writer may claim a
    /// free entry at any time, so the caller pairs this with
    /// [`key`](Self::key) by ident.
    pub(crate) fn read(&self, out: &mut impl Sink) -> Option<(Ident, Snapshot)> {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: as in `read_matching`.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let ident = Ident(self.ident.load(Ordering::Relaxed));
                let snap = ident.is_live().then(|| (ident, self.copy_snapshot(out)));
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return snap;
                }
            }
            backoff.snooze();
        }
    }

    /// Part of a seqlock read: version, kind and value into `out`.
    #[inline]
    fn copy_snapshot(&self, out: &mut impl Sink) -> Snapshot {
        out.clear();
        let version = Version(self.version.load(Ordering::Relaxed));
        let len = self.len.load(Ordering::Relaxed);
        let kind = if len == TOMBSTONE {
            Kind::Delete
        } else {
            self.copy_out(len as usize, out);
            Kind::Put
        };
        Snapshot { version, kind }
    }

    /// Copies up to `len` bytes of the current words into `out`; the result is
    /// only meaningful if the caller's seq check then passes.
    #[inline]
    fn copy_out(&self, len: usize, out: &mut impl Sink) {
        // Acquire: a storage pointer published by a writer comes with its
        // initialized contents.
        if self.heap.load(Ordering::Acquire).is_null() {
            return copy_words(&self.inline, len, out);
        }
        let _pin = retire::pin();
        // Reloaded after pinning: only a pointer loaded under the pin is
        // protected from being freed.
        let heap = self.heap.load(Ordering::Acquire);
        if heap.is_null() {
            return copy_words(&self.inline, len, out);
        }
        // SAFETY: loaded under the pin: the storage is current or retired,
        // and retired blocks are freed only after the pin drops.
        copy_words(unsafe { &(*heap).words }, len, out);
    }

    /// The key and the ident it belongs to (`None` if free); a short key is
    /// copied into `buf`. For the flusher, which alone frees entries: a
    /// live entry cannot be claimed by anyone (a claim needs a free entry),
    /// so once its ident is seen live (Acquire, pairing with the claim's
    /// Release) its key is what the claim wrote and stays so while the
    /// flusher uses it; a free entry being claimed meanwhile is seen free,
    /// or live with its new key.
    pub(crate) fn key<'a>(
        &'a self,
        buf: &'a mut [u8; KEY_INLINE_BYTES],
    ) -> Option<(Ident, &'a [u8])> {
        // Acquire: pairs with the claim's Release store of the ident.
        let ident = Ident(self.ident.load(Ordering::Acquire));
        if !ident.is_live() {
            return None;
        }
        let len = ident.key_len();
        if len <= KEY_INLINE_BYTES {
            for (chunk, word) in buf.chunks_exact_mut(4).zip(&self.key) {
                // Relaxed: ordered after the Acquire above; stable (see above).
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
            }
            return Some((ident, &buf[..len]));
        }
        // Acquire: the bytes behind the pointer are initialized.
        let long = self.key_heap.load(Ordering::Acquire);
        // SAFETY: a live entry's long key is freed only by `free`, which
        // only the flusher (our caller) runs.
        (!long.is_null()).then(|| (ident, &unsafe { &*long }.0[..]))
    }

    /// Whose cell this is now (Acquire: pairs with the claim's Release).
    /// For the flusher, which alone frees: a live ident it reads stays.
    pub(crate) fn ident(&self) -> Ident {
        Ident(self.ident.load(Ordering::Acquire))
    }

    /// The key's length, read without the sequence lock (0 if free): a
    /// hint for the flusher's size checks.
    pub(crate) fn key_len_hint(&self) -> usize {
        // Relaxed: only a size estimate.
        Ident(self.ident.load(Ordering::Relaxed)).key_len()
    }

    /// The value's length as last written, read without the sequence lock
    /// (0 for a tombstone): a hint, which a concurrent write may make stale.
    pub(crate) fn value_len_hint(&self) -> usize {
        // Relaxed: only a size estimate; the value itself is read under `seq`.
        match self.len.load(Ordering::Relaxed) {
            TOMBSTONE => 0,
            len => len as usize,
        }
    }

    /// The current version (a snapshot, without the lock).
    pub(crate) fn version(&self) -> Version {
        // Relaxed: a statistic; reads that matter go through the lock.
        Version(self.version.load(Ordering::Relaxed))
    }

    /// Applies `update` if the cell still belongs to `ident` (`Ok(None)`:
    /// it was freed meanwhile; look the key up again). On error nothing
    /// changed; a delete of a key with no live value changes nothing
    /// either (`changed: false`, same version).
    pub(crate) fn write(&self, ident: Ident, update: Update<'_>) -> Result<Option<Written>, Error> {
        let seq = self.lock();
        if self.ident.load(Ordering::Relaxed) != ident.0
            && !crate::primitives::bug(crate::primitives::Bug::WriteIgnoresFree)
        {
            self.unlock(seq, false);
            return Ok(None);
        }
        let version = self.version.load(Ordering::Relaxed);
        match self.apply(update) {
            Ok(Some(counter)) => {
                self.version.store(version + 1, Ordering::Relaxed);
                self.unlock(seq, true);
                Ok(Some(Written {
                    version: Version(version + 1),
                    counter,
                    changed: true,
                }))
            }
            Ok(None) => {
                self.unlock(seq, false);
                Ok(Some(Written {
                    version: Version(version),
                    counter: 0,
                    changed: false,
                }))
            }
            Err(e) => {
                self.unlock(seq, false);
                Err(e)
            }
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
                self.replace_storage(ptr::null_mut());
                Ok(Some(0))
            }
            Update::DeleteStored => {
                self.len.store(TOMBSTONE, Ordering::Relaxed);
                self.replace_storage(ptr::null_mut());
                Ok(Some(0))
            }
            Update::Add(delta) => {
                let len = self.len.load(Ordering::Relaxed);
                let current = if len == TOMBSTONE {
                    0
                } else if len == 8 {
                    // Relaxed: we hold the cell; the Acquire in `lock` made the
                    // last writer's words visible. 8 bytes sit inline.
                    self.inline[0].load(Ordering::Relaxed) as i64
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

    /// Installs `storage` (null: the value goes inline or away) and retires
    /// the one it replaces. Caller holds the cell.
    fn replace_storage(&self, storage: *mut Storage) {
        let old = self.heap.load(Ordering::Relaxed);
        if old == storage {
            return;
        }
        // Release: readers that see the pointer see the storage.
        self.heap.store(storage, Ordering::Release);
        if !old.is_null() {
            // SAFETY: unlinked just above under the lock; linked from this
            // entry only.
            unsafe { retire::pin().retire(old) };
        }
    }

    /// Where a value of `words` words goes: inline, the current storage, or
    /// a new one (capacities double as a value grows, so a growing value is
    /// copied O(log n) times; a storage four times too large is replaced).
    /// Caller holds the cell.
    fn words_for(&self, words: usize) -> &[AtomicU64] {
        if words <= INLINE_WORDS {
            self.replace_storage(ptr::null_mut());
            return &self.inline;
        }
        let heap = self.heap.load(Ordering::Relaxed);
        // SAFETY: we hold the cell, so no other writer replaces or retires
        // `heap` while we use it.
        let current = (!heap.is_null()).then(|| unsafe { &*heap });
        let cap = current.map_or(INLINE_WORDS, |s| s.words.len());
        if let Some(storage) = current.filter(|_| words <= cap && words * 4 > cap) {
            return &storage.words;
        }
        let fresh = Storage::boxed(if words > cap {
            words.max(cap * 2)
        } else {
            words
        });
        self.replace_storage(fresh);
        // SAFETY: just installed; only this entry frees it, under its lock.
        unsafe { &(*fresh).words }
    }

    /// Writes `value` into the words. Caller holds the cell.
    fn store_value(&self, value: &[u8]) {
        let words = self.words_for(value.len().div_ceil(8));
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

    /// Sets value and version of a live entry (recovery, while the cache
    /// is not running yet).
    pub(crate) fn restore(&self, version: Version, value: Option<&[u8]>) {
        let seq = self.lock();
        match value {
            Some(v) => self.store_value(v),
            None => {
                self.len.store(TOMBSTONE, Ordering::Relaxed);
                self.replace_storage(ptr::null_mut());
            }
        }
        self.version.store(version.0, Ordering::Relaxed);
        self.unlock(seq, true);
    }
}

/// Retires `block` if non-null.
///
/// # Safety
/// As [`Pin::retire`].
unsafe fn retire_nonnull<T: 'static>(pin: &Pin, block: *mut T) {
    if !block.is_null() {
        // SAFETY: forwarded from the caller.
        unsafe { pin.retire(block) };
    }
}

/// Copies `len` bytes (clamped to `words`: a torn read may pair a length
/// with a smaller storage; the seq check discards it) into `out`, 64 bytes
/// at a time through a stack buffer.
#[inline(always)]
fn copy_words(words: &[AtomicU64], len: usize, out: &mut impl Sink) {
    let len = len.min(words.len() * 8);
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

impl Drop for Entry {
    fn drop(&mut self) {
        if crate::primitives::unwinding_in_model() {
            return;
        }
        // Relaxed: `&mut self`, nobody else is left.
        let heap = self.heap.load(Ordering::Relaxed);
        if !heap.is_null() {
            // SAFETY: `&mut self`: no reader is left; the block came from
            // `Box::into_raw` and is linked (and so freed) once.
            drop(unsafe { Box::from_raw(heap) });
        }
        let key = self.key_heap.load(Ordering::Relaxed);
        if !key.is_null() {
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(key) });
        }
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

    fn claimed(key: &[u8]) -> (Entry, Ident) {
        let e = Entry::empty();
        let ident = e.claim(key, Version(0), None);
        (e, ident)
    }

    fn read(entry: &Entry, key: &[u8]) -> (Version, Option<Vec<u8>>) {
        let mut out = Vec::new();
        let snap = entry
            .read_matching(&KeyProbe::new(key), &mut out)
            .expect("the entry of this key");
        (snap.version, (snap.kind == Kind::Put).then_some(out))
    }

    fn put(e: &Entry, ident: Ident, v: &[u8]) -> Version {
        e.write(ident, Update::Put(v))
            .expect("put")
            .expect("live")
            .version
    }

    #[test]
    fn versions_step_by_one_and_values_follow() {
        let (e, id) = claimed(b"k");
        assert_eq!(read(&e, b"k"), (Version(0), None));
        assert_eq!(put(&e, id, b"a"), Version(1));
        assert_eq!(read(&e, b"k"), (Version(1), Some(b"a".to_vec())));
        let del = e.write(id, Update::Delete).expect("delete").expect("live");
        assert_eq!(del.version, Version(2));
        let again = e.write(id, Update::Delete).expect("delete").expect("live");
        assert!(
            !again.changed && again.version == Version(2),
            "deleting nothing changes nothing"
        );
        assert_eq!(read(&e, b"k"), (Version(2), None));
    }

    #[test]
    fn values_grow_shrink_and_cross_the_inline_limit() {
        let (e, id) = claimed(b"k");
        for len in [
            0usize, 1, 7, 8, 9, 64, 65, 300, 3, 1000, 64, 5000, 0, 9000, 100,
        ] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            put(&e, id, &value);
            assert_eq!(read(&e, b"k").1, Some(value), "len {len}");
            let heap = e.heap.load(Ordering::Relaxed);
            assert_eq!(heap.is_null(), len <= INLINE_BYTES, "len {len}");
            if !heap.is_null() {
                // SAFETY: the entry is ours and nobody writes it.
                let cap = unsafe { &*heap }.words.len() * 8;
                assert!(
                    cap >= len && cap <= 4 * len.max(INLINE_BYTES),
                    "len {len} cap {cap}"
                );
            }
        }
        e.write(id, Update::Delete).expect("delete");
        assert!(
            e.heap.load(Ordering::Relaxed).is_null(),
            "a delete frees the value"
        );
    }

    #[test]
    fn counters_add_and_refuse_non_counters() {
        let (e, id) = claimed(b"c");
        let add = |d| e.write(id, Update::Add(d)).map(|w| w.map(|w| w.counter));
        assert_eq!(add(5).ok().flatten(), Some(5));
        assert_eq!(add(-7).ok().flatten(), Some(-2));
        assert_eq!(e.version(), Version(2));
        put(&e, id, b"abc");
        assert!(matches!(add(1), Err(Error::NotACounter { len: 3 })));
        assert_eq!(e.version(), Version(3), "a refused add changes nothing");
        put(&e, id, &i64::MAX.to_le_bytes());
        assert!(matches!(add(1), Err(Error::CounterOverflow { .. })));
        assert_eq!(read(&e, b"c").1, Some(i64::MAX.to_le_bytes().to_vec()));
    }

    #[test]
    fn keys_short_and_long_are_matched_exactly() {
        for key in [vec![1u8], vec![7u8; 20], vec![7u8; 21], vec![9u8; 300]] {
            let (e, _) = claimed(&key);
            let mut buf = [0u8; KEY_INLINE_BYTES];
            assert_eq!(e.key(&mut buf).map(|(_, k)| k), Some(&key[..]));
            assert!(e.ident_if(&KeyProbe::new(&key)).is_some());
            let mut other = key.clone();
            *other.last_mut().expect("non-empty") ^= 1;
            assert!(e.ident_if(&KeyProbe::new(&other)).is_none());
            other.pop();
            assert!(e.ident_if(&KeyProbe::new(&other)).is_none());
        }
    }

    #[test]
    fn a_freed_entry_refuses_stale_writes_and_serves_its_next_key() {
        let (e, id) = claimed(b"old");
        let v = put(&e, id, &[1u8; 100]);
        assert!(
            !e.free(id, Version(v.0 - 1)),
            "a stale version does not free"
        );
        assert!(e.free(id, v));
        assert!(e.heap.load(Ordering::Relaxed).is_null());
        assert_eq!(
            e.write(id, Update::Put(b"x")).expect("write"),
            None,
            "stale"
        );
        assert!(e
            .read_matching(&KeyProbe::new(b"old"), &mut Vec::new())
            .is_none());
        let next = e.claim(b"new", Version(40), None);
        assert_ne!(next, id);
        assert_eq!(put(&e, next, b"y"), Version(41));
        assert_eq!(read(&e, b"new"), (Version(41), Some(b"y".to_vec())));
        assert!(e
            .read_matching(&KeyProbe::new(b"old"), &mut Vec::new())
            .is_none());
    }

    /// Readers racing writers of growing and shrinking values never see a
    /// torn value: every value read is one some writer wrote whole (all
    /// bytes equal to its length's low byte), and versions never go
    /// backwards.
    #[test]
    fn concurrent_readers_see_whole_values() {
        let (e, id) = claimed(b"k");
        let e = std::sync::Arc::new(e);
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let e = std::sync::Arc::clone(&e);
                std::thread::spawn(move || {
                    for i in 0..20_000usize {
                        let len = (i * 13 + t * 5) % 700;
                        e.write(id, Update::Put(&vec![len as u8; len]))
                            .expect("put")
                            .expect("live");
                    }
                })
            })
            .collect();
        let mut last = Version(0);
        let mut out = Vec::new();
        let probe = KeyProbe::new(b"k");
        for _ in 0..100_000 {
            let snap = e.read_matching(&probe, &mut out).expect("live");
            assert!(snap.version >= last);
            last = snap.version;
            if snap.kind == Kind::Put {
                assert!(out.iter().all(|&b| b == out.len() as u8), "torn value");
            }
        }
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(e.version(), Version(40_000));
    }
}
