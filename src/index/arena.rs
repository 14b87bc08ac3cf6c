//! The arena: where entries live, in chunks that double in size as keys
//! arrive, addressed by a dense [`Slot`] number, with a free list of the
//! entries the flusher freed.
//!
//! Chunk `c` holds `64 << c` entries, so slot `s` lives in chunk
//! `log2(s + 64) - 6` and a lookup is a shift and a subtraction; 23 chunks
//! cover the largest index (`2^28` keys). A chunk is mapped zeroed (an
//! all-zero entry is free) and never moves or goes away while the index
//! lives: a reader holding a slot number can always look at its entry, and
//! validates whose it is (`entry.rs`). Freed entries are reused before the
//! arena grows, so it holds as many entries as were ever resident at once.
//!
//! Beside each chunk of entries is a chunk of *use marks*, one byte per
//! slot: a read sets its entry's mark, and the flusher's eviction clears it
//! as its CLOCK hand passes (a second chance). Kept out of the entries so
//! that a read writes nothing to the entry's lines, and only when the mark
//! is clear (a hot key's reads only load it).

use super::chunk::Zeroed;
use super::entry::Entry;
use super::Slot;
use crate::error::Error;
use crate::primitives::{self, AtomicPtr, AtomicU8, AtomicUsize, Mutex, Ordering};

/// Entries in chunk 0.
#[cfg(not(loom))]
const BASE: usize = 64;
/// Entries in chunk 0 (a model has few keys, and every loom atomic costs).
#[cfg(loom)]
const BASE: usize = 4;
const BASE_SHIFT: u32 = BASE.trailing_zeros();
/// Chunks: enough for `2^28` entries.
const CHUNKS: usize = 23;

#[derive(Debug, Default)]
struct Owned {
    /// The chunks allocated so far, in order.
    chunks: Vec<Zeroed<Entry>>,
    /// Their use marks.
    mark_chunks: Vec<Zeroed<AtomicU8>>,
    /// Freed slots, reused last-in first-out.
    free: Vec<u32>,
    /// Slots handed out so far (the next fresh one).
    next: usize,
}

// SAFETY: a zero byte is a valid `AtomicU8`, and dropping one does nothing.
unsafe impl super::chunk::ZeroValid for AtomicU8 {
    #[cfg(loom)]
    fn zero() -> Self {
        AtomicU8::new(0)
    }
}

#[derive(Debug)]
pub(super) struct Arena {
    /// Chunk `c`'s first entry, once allocated (published with Release).
    bases: [AtomicPtr<Entry>; CHUNKS],
    /// Chunk `c`'s first use mark (published before `bases[c]`).
    marks: [AtomicPtr<AtomicU8>; CHUNKS],
    owned: Mutex<Owned>,
    /// `Owned::next`, readable without the lock.
    high_water: AtomicUsize,
}

/// Chunk and offset of `slot`.
#[inline]
fn locate(slot: Slot) -> (usize, usize) {
    let x = slot.0 as usize + BASE;
    let c = (usize::BITS - 1 - x.leading_zeros() - BASE_SHIFT) as usize;
    (c, x - (BASE << c))
}

impl Arena {
    pub(super) fn new() -> Self {
        Self {
            bases: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            marks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            owned: Mutex::new(Owned::default()),
            high_water: AtomicUsize::new(0),
        }
    }

    /// The entry at `slot`, which this arena handed out.
    #[inline]
    pub(super) fn entry(&self, slot: Slot) -> &Entry {
        let (c, offset) = locate(slot);
        // Acquire: pairs with the Release publication in `alloc`; the slot
        // reached us after it (through the index table or a ring), so the
        // chunk is there.
        let base = self.bases[c].load(Ordering::Acquire);
        assert!(!base.is_null(), "slot {} outside the arena", slot.0);
        // SAFETY: chunk `c` holds `BASE << c` entries and `offset` is below
        // that (by `locate`); chunks live as long as the arena.
        unsafe { &*base.add(offset) }
    }

    /// The use mark of the entry at `slot`, which this arena handed out.
    #[inline]
    pub(super) fn mark(&self, slot: Slot) -> &AtomicU8 {
        let (c, offset) = locate(slot);
        // Acquire: as in `entry`; the marks were published before the
        // entries, so a slot that reached us has them too.
        let base = self.marks[c].load(Ordering::Acquire);
        assert!(!base.is_null(), "slot {} outside the arena", slot.0);
        // SAFETY: as in `entry`: the marks chunk has as many bytes as the
        // entries chunk has entries.
        unsafe { &*base.add(offset) }
    }

    /// Slots handed out so far: every slot in use is below this.
    pub(super) fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Acquire)
    }

    /// A free entry's slot: a freed one, or the next fresh one (allocating
    /// its chunk when it is the first in it).
    pub(super) fn alloc(&self) -> Result<Slot, Error> {
        let mut owned = primitives::lock(&self.owned);
        if let Some(slot) = owned.free.pop() {
            return Ok(Slot(slot));
        }
        let slot = Slot(owned.next as u32);
        let (c, offset) = locate(slot);
        if offset == 0 {
            // Both mapped before either is published, so a failure leaves
            // nothing behind.
            let marks = Zeroed::<AtomicU8>::new(BASE << c)?;
            let chunk = Zeroed::new(BASE << c)?;
            // Release: before the entries, see `mark`.
            self.marks[c].store(marks.as_ptr(), Ordering::Release);
            owned.mark_chunks.push(marks);
            // Release: the chunk's (zeroed or constructed) entries are
            // visible to whoever sees the pointer.
            self.bases[c].store(chunk.as_ptr(), Ordering::Release);
            owned.chunks.push(chunk);
        }
        owned.next += 1;
        // Release: pairs with `high_water`'s Acquire.
        self.high_water.store(owned.next, Ordering::Release);
        Ok(slot)
    }

    /// Gives back the slot of an entry the flusher freed (and unlinked
    /// from the index table).
    pub(super) fn release(&self, slot: Slot) {
        primitives::lock(&self.owned).free.push(slot.0);
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if primitives::unwinding_in_model() {
            return;
        }
        let mut owned = primitives::lock(&self.owned);
        let owned = &mut *owned;
        let mut left = owned.next;
        for chunk in &mut owned.chunks {
            let n = left.min(chunk.len());
            for i in 0..n {
                // SAFETY: `&mut self`: nobody else holds entries; each
                // handed-out entry is dropped once, here.
                unsafe { chunk.drop_value(i) };
            }
            left -= n;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_chunks_that_double() {
        assert_eq!(locate(Slot(0)), (0, 0));
        assert_eq!(locate(Slot(63)), (0, 63));
        assert_eq!(locate(Slot(64)), (1, 0));
        assert_eq!(locate(Slot(191)), (1, 127));
        assert_eq!(locate(Slot(192)), (2, 0));
        let last = (BASE << CHUNKS) - BASE - 1;
        assert_eq!(BASE, 64);
        assert_eq!(
            locate(Slot(last as u32)),
            (CHUNKS - 1, (BASE << (CHUNKS - 1)) - 1)
        );
        assert!(last >= 1 << 28);
    }

    #[test]
    fn freed_slots_are_reused_before_the_arena_grows() {
        let arena = Arena::new();
        let a: Vec<Slot> = (0..100).map(|_| arena.alloc().expect("alloc")).collect();
        assert_eq!(arena.high_water(), 100);
        arena.release(a[7]);
        assert_eq!(arena.alloc().expect("alloc"), a[7]);
        assert_eq!(arena.alloc().expect("alloc"), Slot(100));
        // Every handed-out entry is reachable and free.
        for s in &a {
            assert!(arena.entry(*s).read(&mut Vec::new()).is_none());
        }
    }
}
