//! A bounded single-producer single-consumer ring: the path from one writer to
//! the flusher.
//!
//! The algorithm is the classic Lamport ring with two refinements that matter
//! at tens of nanoseconds per operation (both as in rtrb and in Rigtorp's
//! SPSCQueue):
//!
//! - `head` (consumer cursor) and `tail` (producer cursor) live in separate
//!   cache lines ([`CachePadded`]), so the two sides do not false-share;
//! - each side keeps a private copy of the other side's cursor and re-reads the
//!   shared one only when the copy says the ring is full (producer) or empty
//!   (consumer). In steady state a push touches no line the consumer writes.
//!
//! The consumer drains in batches: one `Acquire` load of `tail`, many cell
//! reads, one `Release` store of `head`.
//!
//! Cursors are positions that only grow (`u64`: at 10^9 pushes per second they
//! wrap after 584 years); a cell index is `position & mask`. Capacity is a power
//! of two. All memory is allocated in [`channel`]; nothing allocates after.

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::primitives::{Arc, AtomicU64, Ordering, UnsafeCell};

/// A bounded SPSC ring of `capacity` cells; returns its two halves: push
/// on the producer, `drain(max, f)` on the consumer (see the tests below).
///
/// # Panics
/// If `capacity` is not a power of two >= 2.
// Used by the ring's own tests, benches and loom model (`__internals`).
#[cfg_attr(not(feature = "__internals"), allow(dead_code))]
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let ring = Ring::new(capacity);
    (Ring::producer(&ring), Ring::consumer(&ring))
}

/// The shared part of a ring. Producer and consumer each hold an `Arc` to it.
#[derive(Debug)]
pub struct Ring<T> {
    /// Position of the next cell the consumer reads. Written by the consumer
    /// only. Invariant: `head <= tail <= head + capacity`.
    head: CachePadded<AtomicU64>,
    /// Position of the next cell the producer writes. Written by the producer
    /// only.
    tail: CachePadded<AtomicU64>,
    /// `capacity` cells; cell `p & mask` is initialized iff `head <= p < tail`.
    cells: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// `capacity - 1`, capacity a power of two.
    mask: u64,
}

// SAFETY: a cell is accessed by exactly one side at a time: the producer writes
// cells in `tail .. head + capacity`, the consumer reads cells in
// `head .. tail`, and the cursors' Release/Acquire pairs hand each cell over.
// Values of `T` move between threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above; the ring owns its `T`s.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Ring<T> {
    /// A ring of `capacity` cells.
    ///
    /// # Panics
    /// If `capacity` is not a power of two or is below 2 (`Config::validate`
    /// refuses such values before they get here).
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        assert!(
            capacity >= 2 && capacity.is_power_of_two(),
            "ring capacity {capacity} must be a power of two >= 2"
        );
        let cells = (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect();
        Arc::new(Self {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            cells,
            mask: capacity as u64 - 1,
        })
    }

    /// Number of cells.
    pub fn capacity(&self) -> usize {
        self.cells.len()
    }

    /// Records in the ring right now, as seen from a third thread (stats).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a statistic; head is loaded first so the difference cannot
        // go negative (both only grow).
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        tail.saturating_sub(head) as usize
    }

    /// True if a push would find room now, as a thread waiting for room
    /// sees it (the producer, or a caller that takes turns with it on the
    /// shared entry). Has no cached copy of `head` to trust.
    pub(crate) fn has_room(&self) -> bool {
        // Acquire: pairs with the consumer's Release store of head that
        // freed the room. Head first: then tail cannot be below it.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        tail.saturating_sub(head) < self.capacity() as u64
    }

    /// Records pushed since the ring was made (statistics).
    pub(crate) fn pushed(&self) -> u64 {
        // Relaxed: a statistic.
        self.tail.load(Ordering::Relaxed)
    }

    /// The producer side. The caller guarantees there is at most one producer
    /// at a time and that the previous one's pushes happen-before this call
    /// (the writer registry hands a ring over through an Acquire/Release state
    /// change).
    pub(crate) fn producer(this: &Arc<Self>) -> Producer<T> {
        // Relaxed: tail was last written by this side (a previous producer),
        // and the hand-off synchronizes; head may be stale, which only means
        // a re-read when the cached copy says "full".
        let tail = this.tail.load(Ordering::Relaxed);
        let head = this.head.load(Ordering::Acquire);
        Producer {
            ring: Arc::clone(this),
            tail,
            head_cached: head,
        }
    }

    /// The consumer side; at most one may exist.
    pub(crate) fn consumer(this: &Arc<Self>) -> Consumer<T> {
        let head = this.head.load(Ordering::Relaxed);
        let tail = this.tail.load(Ordering::Acquire);
        Consumer {
            ring: Arc::clone(this),
            head,
            tail_cached: tail,
        }
    }

    #[inline(always)]
    fn cell(&self, pos: u64) -> &UnsafeCell<MaybeUninit<T>> {
        let index = (pos & self.mask) as usize;
        debug_assert!(index < self.cells.len());
        // SAFETY: `index <= mask < cells.len()`.
        unsafe { self.cells.get_unchecked(index) }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        for pos in head..tail {
            // SAFETY: `&mut self`: no producer or consumer is left, and cells in
            // `head .. tail` are initialized.
            self.cell(pos)
                .with_mut(|p| unsafe { (*p).assume_init_drop() });
        }
    }
}

/// The producer half of a [`Ring`]: `Send`, not `Clone`, `&mut self` methods.
#[derive(Debug)]
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    /// Our copy of `ring.tail` (we are its only writer).
    tail: u64,
    /// Last `ring.head` we loaded; `<= ring.head`.
    head_cached: u64,
}

impl<T> Producer<T> {
    /// True if a push would succeed now. Touches the consumer's cursor only
    /// when the cached copy says the ring is full.
    #[inline]
    pub fn has_room(&mut self) -> bool {
        let capacity = self.ring.capacity() as u64;
        if self.tail - self.head_cached < capacity {
            return true;
        }
        // Acquire: the consumer's reads of the cells it freed happen-before
        // our writes to them.
        self.head_cached = self.ring.head.load(Ordering::Acquire);
        debug_assert!(self.head_cached <= self.tail);
        self.tail - self.head_cached < capacity
    }

    /// Pushes `value`, or gives it back if the ring is full.
    #[inline]
    #[cfg_attr(not(feature = "__internals"), allow(dead_code))]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if !self.has_room() {
            return Err(value);
        }
        self.push_reserved(value);
        Ok(())
    }

    /// Pushes `value` after [`Producer::has_room`] returned true. Room cannot
    /// disappear in between: only the consumer changes `head`, and only upward.
    ///
    /// # Panics
    /// If the ring is full, which means the caller skipped `has_room`: a bug.
    #[inline]
    pub fn push_reserved(&mut self, value: T) {
        assert!(
            self.tail - self.head_cached < self.ring.capacity() as u64,
            "push_reserved on a full ring"
        );
        let tail = self.tail;
        // SAFETY: `tail < head_cached + capacity <= head + capacity`, so cell
        // `tail` is empty: the consumer has finished with it (we observed its
        // Release store of head) and will not read it before we publish tail.
        self.ring
            .cell(tail)
            .with_mut(|p| unsafe { (*p).write(value) });
        self.tail = tail + 1;
        // Release: the cell write happens-before the consumer's Acquire load
        // of tail.
        self.ring.tail.store(
            self.tail,
            crate::primitives::release_unless(crate::primitives::Bug::RingTailRelaxed),
        );
    }

    /// Records in the ring now: refreshes the cached consumer cursor (one
    /// Acquire load of the consumer's line).
    pub fn refresh_len(&mut self) -> usize {
        // Acquire: as in `has_room`.
        self.head_cached = self.ring.head.load(Ordering::Acquire);
        (self.tail - self.head_cached) as usize
    }

    /// Records in the ring by our cached view (an upper bound: the consumer
    /// may have taken more since).
    #[inline]
    pub fn len_upper_bound(&self) -> usize {
        (self.tail - self.head_cached) as usize
    }

    /// Number of cells.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Position of the next push (records pushed so far by all producers).
    #[cfg_attr(not(feature = "__internals"), allow(dead_code))]
    pub fn position(&self) -> u64 {
        self.tail
    }
}

/// The consumer half of a [`Ring`].
#[derive(Debug)]
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    /// Our copy of `ring.head` (we are its only writer).
    head: u64,
    /// Last `ring.tail` we loaded; `<= ring.tail`.
    tail_cached: u64,
}

impl<T> Consumer<T> {
    /// Pops one record.
    #[cfg_attr(not(feature = "__internals"), allow(dead_code))]
    pub fn pop(&mut self) -> Option<T> {
        let mut out = None;
        self.drain(1, |v| out = Some(v));
        out
    }

    /// Pops up to `max` records in push order, handing each to `f`, and frees
    /// their cells with a single store. Returns how many were popped.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        if self.tail_cached - self.head < max as u64 {
            // The cached view cannot fill the request: look again (one load
            // per drain call, not per record).
            // Acquire: the producer's cell writes happen-before our reads.
            self.tail_cached = self.ring.tail.load(Ordering::Acquire);
        }
        let available = self.tail_cached - self.head;
        debug_assert!(available <= self.ring.capacity() as u64);
        let n = available.min(max as u64);
        if n == 0 {
            return 0;
        }
        // Publishes `head` once at the end, and also if `f` panics: every
        // value moved out before the panic counts as consumed, so none is
        // handed out or dropped twice.
        struct Publish<'a, T> {
            consumer: &'a mut Consumer<T>,
            taken: u64,
        }
        impl<T> Drop for Publish<'_, T> {
            fn drop(&mut self) {
                let c = &mut *self.consumer;
                c.head += self.taken;
                // Release: our reads of the freed cells happen-before the
                // producer's next writes to them (it loads head with Acquire).
                c.ring.head.store(c.head, Ordering::Release);
            }
        }
        let start = self.head;
        let mut publish = Publish {
            consumer: self,
            taken: 0,
        };
        for pos in start..start + n {
            // SAFETY: `head <= pos < tail_cached <= tail`: the producer wrote
            // this cell and published it with its Release store of tail, which
            // we acquired; it will not touch the cell again until we publish a
            // head past it. Reading moves the value out; `taken` is bumped
            // before `f` runs, so the cell counts as consumed even if `f`
            // panics.
            let value = publish
                .consumer
                .ring
                .cell(pos)
                .with(|p| unsafe { (*p).assume_init_read() });
            publish.taken += 1;
            f(value);
        }
        drop(publish);
        n as usize
    }

    /// True if the ring held nothing at the last look (refreshes the look if
    /// the cached view is empty).
    pub fn is_empty(&mut self) -> bool {
        if self.tail_cached == self.head {
            // Acquire: as in `drain`.
            self.tail_cached = self.ring.tail.load(Ordering::Acquire);
        }
        self.tail_cached == self.head
    }

    /// Position of the next pop (records consumed so far).
    pub fn position(&self) -> u64 {
        self.head
    }

    /// The producer's published position, loaded now.
    pub fn producer_position(&self) -> u64 {
        // Acquire: callers use the position to decide that everything before
        // it is visible.
        self.ring.tail.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fills_to_capacity_then_refuses() {
        let ring = Ring::<u32>::new(4);
        let mut p = Ring::producer(&ring);
        for i in 0..4 {
            assert_eq!(p.push(i), Ok(()));
        }
        assert_eq!(p.push(99), Err(99));
        let mut c = Ring::consumer(&ring);
        assert_eq!(c.pop(), Some(0));
        assert_eq!(p.push(4), Ok(()));
        let mut got = Vec::new();
        assert_eq!(c.drain(usize::MAX, |v| got.push(v)), 4);
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn wraps_around_many_times_in_order() {
        let ring = Ring::<u64>::new(8);
        let mut p = Ring::producer(&ring);
        let mut c = Ring::consumer(&ring);
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        // Uneven push/pop counts so that every cell offset is crossed.
        for round in 0..1000u64 {
            let pushes = 1 + round % 7;
            for _ in 0..pushes {
                if p.push(next_in).is_ok() {
                    next_in += 1;
                }
            }
            let pops = 1 + (round * 3) % 5;
            c.drain(pops as usize, |v| {
                assert_eq!(v, next_out);
                next_out += 1;
            });
        }
        c.drain(usize::MAX, |v| {
            assert_eq!(v, next_out);
            next_out += 1;
        });
        assert_eq!(next_in, next_out);
        assert!(next_in > 8 * 100, "the test must wrap many times");
    }

    #[test]
    fn drops_what_is_left() {
        let ring = Ring::<Arc<()>>::new(4);
        let token = Arc::new(());
        let mut p = Ring::producer(&ring);
        for _ in 0..3 {
            assert!(p.push(Arc::clone(&token)).is_ok());
        }
        let mut c = Ring::consumer(&ring);
        drop(c.pop());
        drop((p, c));
        assert_eq!(Arc::strong_count(&token), 3);
        drop(ring);
        assert_eq!(Arc::strong_count(&token), 1);
    }

    /// A panicking drain callback must not let a value be handed out or
    /// dropped twice.
    #[test]
    fn drain_is_panic_safe() {
        let token = Arc::new(());
        let (mut p, mut c) = channel::<Arc<()>>(4);
        for _ in 0..3 {
            assert!(p.push(Arc::clone(&token)).is_ok());
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.drain(usize::MAX, |v| {
                drop(v);
                panic!("callback fails");
            });
        }));
        assert!(r.is_err());
        // The first value was consumed (and dropped by the callback); two remain.
        assert_eq!(Arc::strong_count(&token), 3);
        assert_eq!(c.drain(usize::MAX, drop), 2);
        drop((p, c));
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn a_new_producer_continues_where_the_last_stopped() {
        let ring = Ring::<u32>::new(4);
        let mut p = Ring::producer(&ring);
        assert!(p.push(1).is_ok());
        drop(p);
        let mut p = Ring::producer(&ring);
        assert!(p.push(2).is_ok());
        let mut c = Ring::consumer(&ring);
        assert_eq!(c.pop(), Some(1));
        assert_eq!(c.pop(), Some(2));
    }

    /// G1 on real threads: 10 million records, one producer, one consumer,
    /// a small ring so it wraps and fills constantly; order and count checked.
    #[test]
    fn two_threads_ten_million_in_order() {
        const N: u64 = 10_000_000;
        let ring = Ring::<u64>::new(1024);
        let mut p = Ring::producer(&ring);
        let mut c = Ring::consumer(&ring);
        let producer = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                if p.push(i).is_ok() {
                    i += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let mut expected = 0u64;
        let mut sum = 0u64;
        while expected < N {
            let n = c.drain(256, |v| {
                assert_eq!(v, expected, "out of order or duplicated");
                expected += 1;
                sum = sum.wrapping_add(v);
            });
            if n == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().expect("producer panicked");
        assert_eq!(c.pop(), None, "more records than were pushed");
        assert_eq!(sum, N * (N - 1) / 2);
    }
}
