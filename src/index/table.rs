//! One shard of the index's hash table: open addressing with linear probing
//! over words `(slot + 1) << 32 | tag`, where the tag is the low 32 bits of
//! the key's hash (a word of 0 is empty: no word names slot -1). The table maps keys to arena slots; the
//! entries themselves stay put when it resizes.
//!
//! A shard's words live in one zeroed mapping (`chunk.rs`) reserved at the
//! most words the shard can need; the table uses the first `size` of them,
//! doubling at 3/4 full and halving below 1/8, in place. Only touched pages
//! cost memory, and a shrink gives the pages past the new size back to the
//! OS, so the table follows the keys both ways and no old copy is kept.
//!
//! Readers never lock. Writers that insert, and the flusher when it
//! removes, hold the shard's mutex. A removal shifts later words back
//! (deletion without tombstones, so probes stay short however many keys
//! come and go) and a resize rehashes every word; both hold `moves` odd
//! meanwhile (a sequence lock). A reader may then miss a key that is there,
//! so a reader that missed re-checks `moves` and probes again if it
//! changed. A hit needs no re-check: the entry knows its key and is
//! validated on its own (`entry.rs`).

use super::chunk::{ZeroValid, Zeroed};
use super::Slot;
use crate::error::Error;
use crate::primitives::{
    self, fence, AtomicU64, AtomicUsize, Backoff, Mutex, MutexGuard, Ordering,
};

/// Words a shard's table starts with (and never shrinks below).
const FIRST_WORDS: usize = 8;

// SAFETY: a zero `AtomicU64` is all-zero bytes and has no destructor.
unsafe impl ZeroValid for AtomicU64 {
    #[cfg(loom)]
    fn zero() -> Self {
        AtomicU64::new(0)
    }
}

fn word(slot: Slot, tag: u32) -> u64 {
    (u64::from(slot.0) + 1) << 32 | u64::from(tag)
}

fn word_slot(w: u64) -> Slot {
    Slot(((w >> 32) - 1) as u32)
}

/// The lock-protected part of a shard.
#[derive(Debug, Default)]
struct Owned {
    /// Words in use.
    used: usize,
    /// The words being rehashed (kept to reuse its allocation).
    scratch: Vec<u64>,
}

#[derive(Debug)]
#[repr(align(64))]
pub(super) struct Shard {
    /// The reserved words; the table is the first `mask + 1`.
    words: Zeroed<AtomicU64>,
    /// Table size minus one; changes only while `moves` is odd.
    mask: AtomicUsize,
    /// Odd while a removal or a resize moves words; `+2` per move.
    moves: AtomicU64,
    owned: Mutex<Owned>,
}

impl Shard {
    /// A shard for at most `keys_max` keys.
    pub(super) fn new(keys_max: usize) -> Result<Self, Error> {
        let words_max = (keys_max * 4 / 3 + 1).next_power_of_two().max(FIRST_WORDS);
        Ok(Self {
            words: Zeroed::new(words_max)?,
            mask: AtomicUsize::new(FIRST_WORDS - 1),
            moves: AtomicU64::new(0),
            owned: Mutex::new(Owned::default()),
        })
    }

    /// Calls `visit` with every slot whose tag is `tag`, in probe order,
    /// until it returns `Some`; lock-free. `None` only if no visit matched
    /// in a probe that no move disturbed.
    #[inline]
    pub(super) fn find<T>(&self, tag: u32, mut visit: impl FnMut(Slot) -> Option<T>) -> Option<T> {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: the move that made `moves` even is complete.
            let m1 = self.moves.load(Ordering::Acquire);
            if m1 & 1 == 0 {
                // Relaxed: `mask` changes only while `moves` is odd, and a
                // probe under a stale one is caught by the re-check below.
                let mask = self.mask.load(Ordering::Relaxed);
                if let Some(found) = probe(&self.words, mask, tag, &mut visit) {
                    return Some(found);
                }
                // Acquire fence: the probe's loads happen before the
                // re-check (a sequence-lock reader).
                fence(Ordering::Acquire);
                if self.moves.load(Ordering::Relaxed) == m1 {
                    return None;
                }
            }
            backoff.snooze();
        }
    }

    /// Takes the shard's lock (for an insert or a removal).
    pub(super) fn lock(&self) -> Locked<'_> {
        Locked {
            shard: self,
            owned: primitives::lock(&self.owned),
        }
    }
}

/// Probes the table `words[..=mask]` from `tag`'s home until an empty word.
#[inline]
fn probe<T>(
    words: &[AtomicU64],
    mask: usize,
    tag: u32,
    visit: &mut impl FnMut(Slot) -> Option<T>,
) -> Option<T> {
    let mut i = tag as usize & mask;
    for _ in 0..=mask {
        // Acquire: the entry the word names was claimed before it was
        // stored (Release).
        let w = words[i].load(Ordering::Acquire);
        if w == 0 {
            return None;
        }
        if w as u32 == tag {
            if let Some(found) = visit(word_slot(w)) {
                return Some(found);
            }
        }
        i = (i + 1) & mask;
    }
    None
}

/// A shard under its lock: the table cannot change but by us.
#[derive(Debug)]
pub(super) struct Locked<'a> {
    shard: &'a Shard,
    owned: MutexGuard<'a, Owned>,
}

impl Locked<'_> {
    fn mask(&self) -> usize {
        self.shard.mask.load(Ordering::Relaxed)
    }

    /// As [`Shard::find`], with the table stable.
    pub(super) fn find<T>(&self, tag: u32, mut visit: impl FnMut(Slot) -> Option<T>) -> Option<T> {
        probe(&self.shard.words, self.mask(), tag, &mut visit)
    }

    /// True if one more word fits (growing the table if needed).
    pub(super) fn has_room(&self) -> bool {
        (self.owned.used + 1) * 4 <= self.shard.words.len() * 3
    }

    /// Adds `slot` under `tag` (the caller checked the key is absent and
    /// that [`has_room`](Self::has_room)).
    pub(super) fn insert(&mut self, slot: Slot, tag: u32) {
        let size = self.mask() + 1;
        if (self.owned.used + 1) * 4 > size * 3 {
            self.resize(size * 2);
        }
        let mask = self.mask();
        let words = &self.shard.words;
        let mut i = tag as usize & mask;
        // Bounded: the table is under 3/4 full, so an empty word comes.
        while words[i].load(Ordering::Relaxed) != 0 {
            i = (i + 1) & mask;
        }
        // Release: the entry's claim happens-before a reader that sees it.
        words[i].store(word(slot, tag), Ordering::Release);
        self.owned.used += 1;
    }

    /// Removes `slot`'s word (stored under `tag`); shifts the words after
    /// it back so no probe sequence has a hole, and halves the table when
    /// it is under 1/8 full. False if the word is not there.
    pub(super) fn remove(&mut self, slot: Slot, tag: u32) -> bool {
        let mask = self.mask();
        let words = &self.shard.words;
        let target = word(slot, tag);
        let mut i = tag as usize & mask;
        loop {
            let w = words[i].load(Ordering::Relaxed);
            if w == 0 {
                return false;
            }
            if w == target {
                break;
            }
            i = (i + 1) & mask;
        }
        let m = self.begin_move();
        shift_back(words, mask, i);
        self.end_move(m);
        self.owned.used -= 1;
        let size = mask + 1;
        if size > FIRST_WORDS && self.owned.used * 8 < size {
            self.resize(size / 2);
        }
        true
    }

    /// Makes `moves` odd; returns its even value.
    fn begin_move(&self) -> u64 {
        let moves = &self.shard.moves;
        let m = moves.load(Ordering::Relaxed);
        moves.store(m + 1, Ordering::Relaxed);
        // Release fence: no word moved after this is visible before the
        // odd `moves` (a sequence-lock writer).
        fence(Ordering::Release);
        m
    }

    fn end_move(&self, m: u64) {
        // Release: readers that see the even value see the moved words.
        self.shard.moves.store(m + 2, Ordering::Release);
    }

    /// Rehashes the table, in place, to `size` words; a shrink gives the
    /// pages past the new size back to the OS.
    fn resize(&mut self, size: usize) {
        let old = self.mask() + 1;
        let words = &self.shard.words;
        let mut scratch = std::mem::take(&mut self.owned.scratch);
        scratch.clear();
        scratch.extend(
            words[..old]
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .filter(|&w| w != 0),
        );
        let m = self.begin_move();
        for w in &words[..old.max(size)] {
            // Relaxed: published by the end of the move.
            w.store(0, Ordering::Relaxed);
        }
        self.shard.mask.store(size - 1, Ordering::Relaxed);
        for &w in &scratch {
            let mut i = w as u32 as usize & (size - 1);
            while words[i].load(Ordering::Relaxed) != 0 {
                i = (i + 1) & (size - 1);
            }
            words[i].store(w, Ordering::Relaxed);
        }
        if size < old {
            words.release(size, old);
        }
        self.end_move(m);
        scratch.clear();
        if scratch.capacity() > 4 * size {
            scratch.shrink_to(size);
        }
        self.owned.scratch = scratch;
    }
}

/// Backward-shift deletion at `hole`: each later word of the cluster that
/// may sit at the hole (its home is not cyclically between the hole and
/// it) moves there, opening a new hole, until an empty word.
fn shift_back(words: &[AtomicU64], mask: usize, mut hole: usize) {
    let mut j = hole;
    loop {
        j = (j + 1) & mask;
        let w = words[j].load(Ordering::Relaxed);
        if w == 0 {
            break;
        }
        let home = w as u32 as usize & mask;
        if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
            // Relaxed: published by the end of the move.
            words[hole].store(w, Ordering::Relaxed);
            hole = j;
        }
    }
    words[hole].store(0, Ordering::Relaxed);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn all(shard: &Shard, tag: u32) -> Vec<u32> {
        let mut seen = Vec::new();
        shard.find(tag, |s| {
            seen.push(s.0);
            None::<()>
        });
        seen
    }

    /// Colliding tags across growth, removals and shrinking: every
    /// remaining word is still found from its home.
    #[test]
    fn resizing_and_backward_shift_keep_every_word_reachable() {
        let shard = Shard::new(1_000).expect("shard");
        let tags: Vec<u32> = (0..600u32).map(|i| (i % 13) * 8 + (i % 3)).collect();
        for (i, &t) in tags.iter().enumerate() {
            shard.lock().insert(Slot(i as u32), t);
        }
        assert_eq!(shard.mask.load(Ordering::Relaxed) + 1, 1024);
        for (i, &t) in tags.iter().enumerate().filter(|(i, _)| i % 10 != 0) {
            assert!(shard.lock().remove(Slot(i as u32), t));
            assert!(!shard.lock().remove(Slot(i as u32), t), "removed twice");
        }
        assert!(shard.mask.load(Ordering::Relaxed) < 256, "shrank");
        for (i, &t) in tags.iter().enumerate() {
            let found = all(&shard, t).contains(&(i as u32));
            assert_eq!(found, i % 10 == 0, "slot {i}");
        }
        assert_eq!(shard.lock().owned.used, 60);
    }
}
