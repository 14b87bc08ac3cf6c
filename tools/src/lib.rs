//! Library part of the `wb` tool: workloads and helpers shared with the
//! criterion benches.

pub mod baselines;
pub mod bench;
pub mod clock;
pub mod crash;
pub mod pg;
pub mod workload;
