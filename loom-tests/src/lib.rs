//! Model checks of writebehind's ordering guarantees.
//!
//! The models live in `tests/` and compile only with `RUSTFLAGS="--cfg loom"`,
//! where the library's `sync` module swaps std's atomics, cells, mutexes and
//! thread parking for loom's, so loom explores the real code rather than a
//! copy of it:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
//!
//! Each model has a twin that switches on one deliberate bug
//! (`writebehind::loom_weaken`) and must fail: proof that the model can see
//! the bug it is there for.

#[cfg(loom)]
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` under loom, counting the interleavings explored, and prints the
/// count and the time (`cargo test -- --nocapture` shows it; CI does).
#[cfg(loom)]
pub fn model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let start = std::time::Instant::now();
    let before = RUNS.load(Ordering::Relaxed);
    let counted = move || {
        RUNS.fetch_add(1, Ordering::Relaxed);
        f();
    };
    loom::model(counted);
    // Other tests run in parallel and share the counter: count only ours by
    // running models on the test's own thread, where RUNS moved from `before`.
    let runs = RUNS.load(Ordering::Relaxed) - before;
    println!(
        "loom model {name:?}: {runs} interleavings, {:.2} s, LOOM_MAX_PREEMPTIONS={} (counts are exact with --test-threads=1)",
        start.elapsed().as_secs_f64(),
        std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "unbounded".into())
    );
}

/// A configuration small enough to model: one or two writers, two-slot
/// rings, a handful of keys, one batch in flight.
#[cfg(loom)]
pub fn tiny_config(writers: usize) -> writebehind::Config {
    writebehind::Config::default()
        .writers_max(writers)
        .ring_capacity(2)
        .keys_max(4)
        .dirty_keys_max(4)
        .key_bytes_max(8)
        .value_bytes_max(8)
        .batch_bytes_max(64)
        .batch_ops_max(4)
        .batches_in_flight_max(1)
        .drain_per_pass_max(4)
}
