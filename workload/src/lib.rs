//! What `wb bench` (the `writebehind-tools` crate) and the criterion benches
//! (`writebehind-benches`) both measure with, so that neither depends on the
//! other and nothing is written twice:
//!
//! - the workload: [`Workload`], a precomputed trace of keys drawn
//!   [`Distribution::Uniform`] or [`Distribution::Zipf`] (YCSB's generator,
//!   [`Zipf`]), from a small deterministic [`Rng`];
//! - [`NullStore`], a store that keeps nothing (the cache and flusher alone);
//! - [`MutexChannelWb`], the `Mutex<HashMap>` + channel baseline;
//! - [`HandBuiltWb`], the dashmap + rtrb write-behind a competent user
//!   would build (the contender that matters);
//! - [`disk_seq_bytes_per_s`], the disk's sequential write bandwidth, and
//!   [`scratch_file`] for a baseline's own writes;
//! - [`drain_backlog`], the flusher and store alone on a stalled store's
//!   backlog;
//! - [`peak_rss_bytes`], [`pin_current_thread`] and [`new_histogram`].

mod backlog;
mod disk;
mod hand_built;
mod histogram;
mod mutex_channel;
mod null_store;
mod process;
mod rng;
mod trace;
mod zipf;

pub use backlog::{drain_backlog, Drain};
pub use disk::{disk_seq_bytes_per_s, scratch_file};
pub use hand_built::{HandBuiltWb, HandBuiltWriter};
pub use histogram::new_histogram;
pub use mutex_channel::MutexChannelWb;
pub use null_store::NullStore;
pub use process::{peak_rss_bytes, pin_current_thread, rss_bytes};
pub use rng::Rng;
pub use trace::Workload;
pub use zipf::{Distribution, Zipf};
