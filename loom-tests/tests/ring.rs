//! G1 on the real ring: one producer, one consumer, capacities 2 and 4,
//! across wrap-around, with batch drain.
#![cfg(loom)]

use loom::thread;
use writebehind::__internals::ring;
use writebehind::loom_weaken::{self, Bug};

/// Pushes `n` values through a ring of `capacity`; the consumer drains in
/// batches and checks order and count (exactly once, in push order).
fn fifo_model(capacity: usize, n: u64) {
    loom_tests::model(
        &format!("ring capacity {capacity}, {n} values"),
        move || {
            let (mut tx, mut rx) = ring::channel::<u64>(capacity);
            let producer = thread::spawn(move || {
                let mut i = 0;
                while i < n {
                    if tx.push(i).is_ok() {
                        i += 1;
                    } else {
                        thread::yield_now();
                    }
                }
            });
            let mut next = 0;
            while next < n {
                let got = rx.drain(usize::MAX, |v| {
                    assert_eq!(v, next, "out of order, lost or duplicated");
                    next += 1;
                });
                if got == 0 {
                    thread::yield_now();
                }
            }
            producer.join().expect("producer");
            assert_eq!(rx.pop(), None, "more values than were pushed");
        },
    );
}

#[test]
fn g1_ring_capacity_2_wraps_in_order() {
    fifo_model(2, 3);
}

#[test]
fn g1_ring_capacity_4_wraps_in_order() {
    fifo_model(4, 5);
}

/// The producer publishing `tail` with Relaxed lets the consumer read a
/// slot before its value is written: loom reports the race on the slot.
#[test]
#[should_panic(expected = "Causality violation")]
fn g1_weakened_relaxed_tail_is_caught() {
    loom_weaken::set(Bug::RingTailRelaxed);
    fifo_model(2, 2);
}
