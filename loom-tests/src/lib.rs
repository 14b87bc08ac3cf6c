//! Model checks of writebehind's ordering guarantees.
//!
//! The models live in `tests/` and compile only with `RUSTFLAGS="--cfg loom"`,
//! where the library's `sync` module swaps std's atomics for loom's, so loom
//! explores the real code rather than a copy of it:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
