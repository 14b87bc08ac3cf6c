//! Ring A/B: ours and rtrb alternately, 21 rounds each, in one process, and
//! the median of the per-round throughput ratios. On a shared VM whose speed
//! drifts between criterion's back-to-back groups, interleaving is what
//! makes the ratio mean something. Run: `cargo bench -p writebehind-benches
//! --bench ring_ab`.

use writebehind_benches::{pin, ring_array_queue, ring_ours, ring_rtrb, ITEMS};

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to configure.
    pin(0);
    let rounds = 21;
    let mut ratios_rtrb = Vec::new();
    let mut ratios_aq = Vec::new();
    let mut ours_mps = Vec::new();
    for _ in 0..3 {
        ring_ours(ITEMS);
        ring_rtrb(ITEMS);
    }
    for _ in 0..rounds {
        let a = ring_ours(ITEMS).as_secs_f64();
        let b = ring_rtrb(ITEMS).as_secs_f64();
        let c = ring_array_queue(ITEMS / 4).as_secs_f64() * 4.0;
        ratios_rtrb.push(b / a);
        ratios_aq.push(c / a);
        ours_mps.push(ITEMS as f64 / a / 1e6);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (lo, hi) = {
        let mut v = ratios_rtrb.clone();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() - 1])
    };
    println!(
        "ring push+pop, 2 pinned threads, {rounds} interleaved rounds of {ITEMS} items:\n  ours {:.1} M items/s (median)\n  ours / rtrb          median {:.2}x (min {lo:.2}, max {hi:.2})\n  ours / ArrayQueue    median {:.2}x",
        median(&mut ours_mps),
        median(&mut ratios_rtrb),
        median(&mut ratios_aq),
    );
}
