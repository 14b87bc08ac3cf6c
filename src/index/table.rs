//! One shard of the index's hash table: open addressing with linear probing
//! over words `(slot + 1) << 32 | tag`, where the tag is the low 32 bits of
//! the key's hash (0: empty). The table maps keys to arena slots; the
//! entries themselves stay put when it grows.
//!
//! Readers never lock. Writers that insert, and the flusher when it
//! removes, hold the shard's mutex. Two things can make a reader miss a key
//! that is there, and both are caught by a re-check on a miss only (a hit
//! is validated by the entry, which knows its key):
//!
//! - a removal shifts later words back (deletion without tombstones, so
//!   probes stay short however many keys come and go); it holds `moves`
//!   odd meanwhile (a sequence lock), and a reader that missed re-checks
//!   `moves` and probes again if it changed;
//! - growth copies the words into a table twice the size and publishes it;
//!   a reader still probing the old one misses only keys inserted after
//!   the growth, which it may (their inserts did not happen before the read
//!   began). Replaced tables are kept until the index is dropped, so a
//!   reader never probes freed memory; their sizes halve going back, so
//!   together they take less than the current one.
//!
//! The table grows at 3/4 full and never shrinks (yet): a shard holds as
//! many words as it once had keys, at 8 bytes each.

use crate::primitives::{self, fence, AtomicPtr, AtomicU64, Backoff, Mutex, MutexGuard, Ordering};

use super::Slot;

/// Words a shard's first table has.
const FIRST_WORDS: usize = 8;

/// A probe sequence's table.
#[derive(Debug)]
struct Words {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

impl Words {
    fn new(n: usize) -> Box<Self> {
        Box::new(Self {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
        })
    }
}

fn word(slot: Slot, tag: u32) -> u64 {
    (u64::from(slot.0) + 1) << 32 | u64::from(tag)
}

fn word_slot(w: u64) -> Slot {
    Slot(((w >> 32) - 1) as u32)
}

/// The lock-protected part of a shard.
#[derive(Debug)]
pub(super) struct Owned {
    /// Every table this shard had; the last is current. Boxed: `current`
    /// points at a `Words`, which must not move when the list grows.
    #[allow(clippy::vec_box)]
    tables: Vec<Box<Words>>,
    /// Words in use in the current table.
    used: usize,
}

#[derive(Debug)]
#[repr(align(64))]
pub(super) struct Shard {
    /// The current table (`Owned::tables`' last), published with Release.
    current: AtomicPtr<Words>,
    /// Odd while a removal moves words; `+2` per removal.
    moves: AtomicU64,
    owned: Mutex<Owned>,
}

impl Shard {
    pub(super) fn new() -> Self {
        let first = Words::new(FIRST_WORDS);
        let current = AtomicPtr::new(&*first as *const Words as *mut Words);
        Self {
            current,
            moves: AtomicU64::new(0),
            owned: Mutex::new(Owned {
                tables: vec![first],
                used: 0,
            }),
        }
    }

    /// Calls `visit` with every slot whose tag is `tag`, in probe order,
    /// until it returns `Some`; lock-free. `None` only if no visit matched
    /// in a probe that no removal disturbed.
    #[inline]
    pub(super) fn find<T>(&self, tag: u32, mut visit: impl FnMut(Slot) -> Option<T>) -> Option<T> {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: the removal that made `moves` even is complete.
            let m1 = self.moves.load(Ordering::Acquire);
            if m1 & 1 == 0 {
                // Acquire: the table's words are initialized.
                // SAFETY: tables live as long as the shard (module docs).
                let words = unsafe { &*self.current.load(Ordering::Acquire) };
                if let Some(found) = probe(words, tag, &mut visit) {
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

/// Probes `words` from `tag`'s home until an empty word.
#[inline]
fn probe<T>(words: &Words, tag: u32, visit: &mut impl FnMut(Slot) -> Option<T>) -> Option<T> {
    let mut i = tag as usize & words.mask;
    for _ in 0..=words.mask {
        // Acquire: the entry the word names was claimed before it was
        // stored (Release).
        let w = words.slots[i].load(Ordering::Acquire);
        if w == 0 {
            return None;
        }
        if w as u32 == tag {
            if let Some(found) = visit(word_slot(w)) {
                return Some(found);
            }
        }
        i = (i + 1) & words.mask;
    }
    None
}

/// A shard under its lock: the current table cannot change but by us.
#[derive(Debug)]
pub(super) struct Locked<'a> {
    shard: &'a Shard,
    owned: MutexGuard<'a, Owned>,
}

impl Locked<'_> {
    fn words(&self) -> &Words {
        self.owned
            .tables
            .last()
            .expect("a shard always has a table")
    }

    /// As [`Shard::find`], with the table stable.
    pub(super) fn find<T>(&self, tag: u32, mut visit: impl FnMut(Slot) -> Option<T>) -> Option<T> {
        probe(self.words(), tag, &mut visit)
    }

    /// Adds `slot` under `tag` (the caller checked the key is absent).
    pub(super) fn insert(&mut self, slot: Slot, tag: u32) {
        if (self.owned.used + 1) * 4 > self.words().slots.len() * 3 {
            self.grow();
        }
        let words = self.words();
        let mut i = tag as usize & words.mask;
        // Bounded: the table is under 3/4 full, so an empty word comes.
        while words.slots[i].load(Ordering::Relaxed) != 0 {
            i = (i + 1) & words.mask;
        }
        // Release: the entry's claim happens-before a reader that sees it.
        words.slots[i].store(word(slot, tag), Ordering::Release);
        self.owned.used += 1;
    }

    /// Replaces the table with one twice the size holding the same words.
    fn grow(&mut self) {
        let old = self.words();
        let bigger = Words::new(old.slots.len() * 2);
        for w in old.slots.iter() {
            let w = w.load(Ordering::Relaxed);
            if w != 0 {
                let mut i = w as u32 as usize & bigger.mask;
                while bigger.slots[i].load(Ordering::Relaxed) != 0 {
                    i = (i + 1) & bigger.mask;
                }
                bigger.slots[i].store(w, Ordering::Relaxed);
            }
        }
        let ptr = &*bigger as *const Words as *mut Words;
        self.owned.tables.push(bigger);
        // Release: readers that load the pointer see its words.
        self.shard.current.store(ptr, Ordering::Release);
    }

    /// Removes `slot`'s word (stored under `tag`); shifts the words after
    /// it back so no probe sequence has a hole. False if it is not there.
    pub(super) fn remove(&mut self, slot: Slot, tag: u32) -> bool {
        let words = self.words();
        let target = word(slot, tag);
        let mut i = tag as usize & words.mask;
        loop {
            let w = words.slots[i].load(Ordering::Relaxed);
            if w == 0 {
                return false;
            }
            if w == target {
                break;
            }
            i = (i + 1) & words.mask;
        }
        let moves = &self.shard.moves;
        let m = moves.load(Ordering::Relaxed);
        moves.store(m + 1, Ordering::Relaxed);
        // Release fence: no word moved below is visible before the odd
        // `moves` (a sequence-lock writer).
        fence(Ordering::Release);
        shift_back(words, i);
        // Release: readers that see the even value see the moved words.
        moves.store(m + 2, Ordering::Release);
        self.owned.used -= 1;
        true
    }
}

/// Backward-shift deletion at `hole`: each later word of the cluster that
/// may sit at the hole (its home is not cyclically between the hole and
/// it) moves there, opening a new hole, until an empty word.
fn shift_back(words: &Words, mut hole: usize) {
    let mask = words.mask;
    let mut j = hole;
    loop {
        j = (j + 1) & mask;
        let w = words.slots[j].load(Ordering::Relaxed);
        if w == 0 {
            break;
        }
        let home = w as u32 as usize & mask;
        if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
            // Relaxed: published by the Release of `moves`.
            words.slots[hole].store(w, Ordering::Relaxed);
            hole = j;
        }
    }
    words.slots[hole].store(0, Ordering::Relaxed);
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

    /// Colliding tags across growth and removals: every remaining word is
    /// still found from its home.
    #[test]
    fn growth_and_backward_shift_keep_every_word_reachable() {
        let shard = Shard::new();
        let tags: Vec<u32> = (0..200u32).map(|i| (i % 13) * 8 + (i % 3)).collect();
        for (i, &t) in tags.iter().enumerate() {
            shard.lock().insert(Slot(i as u32), t);
        }
        for (i, &t) in tags.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            assert!(shard.lock().remove(Slot(i as u32), t));
            assert!(!shard.lock().remove(Slot(i as u32), t), "removed twice");
        }
        for (i, &t) in tags.iter().enumerate() {
            let found = all(&shard, t).contains(&(i as u32));
            assert_eq!(found, i % 3 != 0, "slot {i}");
        }
        assert_eq!(shard.lock().owned.used, 200 - 67);
    }
}
