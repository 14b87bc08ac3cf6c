//! Library part of the `wb` tool: `wb bench` ([`bench`](mod@bench), with its
//! PostgreSQL store and baseline in [`pg`]), `wb crash-test` and `wb soak`
//! ([`crash`]), and the library internals the commands reach
//! ([`internal`]). What the criterion benches share with `wb bench` (the
//! workload, the null store, the mutex+channel baseline, the disk's
//! bandwidth) is the `writebehind-workload` crate.

pub mod bench;
pub mod clock;
pub mod crash;
#[doc(hidden)]
pub mod internal;
pub mod pg;
