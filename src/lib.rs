//! # writebehind
//!
//! A write-behind (write-back) cache for latency-sensitive services: a
//! writer's update is acknowledged from memory in tens of nanoseconds, and one
//! background flusher thread coalesces updates and persists them in batches to
//! a [`Store`]: the embedded [`FileStore`] ([`WriteBehind::open`]), any store
//! of your own ([`WriteBehind::with_store`]), or, with the cargo feature
//! `postgres`, a PostgreSQL table.
//!
//! ```
//! use writebehind::{Config, MemStore, WriteBehind};
//!
//! let store = MemStore::new();
//! let data = store.data(); // to look at what was persisted
//! let wb = WriteBehind::with_store(store, Config::default())?;
//! let mut writer = wb.writer()?;
//! writer.put(b"player:1", b"x=10,y=20")?;
//! writer.add(b"kills:1", 1)?;
//! assert_eq!(wb.get(b"player:1")?.as_deref(), Some(&b"x=10,y=20"[..]));
//! wb.sync()?; // both updates are now durable in the store
//! assert!(data.lock().unwrap().records.contains_key(&b"kills:1"[..]));
//! drop(writer);
//! wb.close()?;
//! # Ok::<(), writebehind::Error>(())
//! ```
//!
//! ## The write path
//!
//! 1. [`Writer::put`] reserves a cell in the writer's own SPSC ring (so a
//!    refusal leaves nothing applied), updates the key's entry in the index
//!    (value and version change together under the entry's sequence lock),
//!    pushes *(entry, version)* into the ring, and returns.
//! 2. The flusher drains all rings, keeps a dirty list of keys, and cuts a
//!    batch when the list reaches its adaptive target, its oldest key reaches
//!    `flush_interval`, or a `sync()`/`close()` asks. It encodes each key's
//!    current value and version from the index, so any number of updates of a
//!    key between two batches cost one record.
//! 3. The store persists batches; the flusher advances the durable watermark
//!    in submission order and wakes `sync()` callers.
//!
//! The [`architecture`] module walks through all of it: the read path, the
//! threads, how batches are cut, retries, compaction, close, the file
//! store's on-disk format and what its recovery trusts.
//!
//! ## The contract
//!
//! G1 per-writer FIFO, G2 per-key version order, G3 read-your-writes, G4
//! `sync()` as a durability barrier, G5 crash safety (power cuts included),
//! G6 bounded memory, G7 shutdown drains, G8 store faults lose nothing, G9
//! bad input is refused up front, G10 only clean entries are evicted (to
//! keep within `Config::memory_bytes`), G11 read-through (a `get` of a key
//! not in memory loads it from the store), G12 reclamation (a deleted key's
//! memory is freed once its delete is durable). Each is tested in `tests/`; G1-G4, G6's
//! park and wake, G7 and G12's reuse of entries are also model-checked
//! with loom, in the repository's loom-tests crate. The [`architecture`] module has a table of
//! where each item is enforced and which tests check it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

// The crate is Unix-only (flock, mmap, `std::os::unix`; io_uring on
// Linux). Elsewhere it says so once, instead of failing in dozens of places.
#[cfg(not(unix))]
compile_error!(
    "writebehind supports Unix only (Linux is what it is built and tested on): its file store \
     uses flock, mmap and std::os::unix. It does not build for this target."
);

/// Applies `#[cfg(unix)]` to every item it is given.
macro_rules! unix_only {
    ($($item:item)*) => {
        $(
            #[cfg(unix)]
            $item
        )*
    };
}

unix_only! {
    /// How the cache works inside: the write and read paths, the threads, the
    /// file store's format, and where each item of the contract is enforced and
    /// tested.
    #[doc = include_str!("architecture.md")]
    pub mod architecture {}
    mod cache;
    mod config;
    mod counters;
    mod error;
    mod flusher;
    mod futures;
    mod give_up;
    mod hash;
    mod index;
    pub mod inspect;
    mod primitives;
    mod read_through;
    mod retry;
    mod record;
    mod ring;
    mod room;
    mod shared;
    mod shared_writers;
    mod stats;
    mod store;
    pub mod testing;
    mod value;
    mod version;
    mod wakers;
    mod writer;

    pub use cache::WriteBehind;
    pub use config::{Backpressure, Config, Durability, IoBackend};
    pub use error::{Error, StoreError, StoreErrorKind};
    pub use futures::{CloseFuture, SyncFuture};
    pub use give_up::GiveUp;
    /// The PostgreSQL client crate [`PgStore`] uses (re-exported so callers get
    /// the same version).
    #[cfg(feature = "postgres")]
    pub use postgres;
    pub use record::{DecodeError, RecordRef};
    pub use stats::Stats;
    pub use store::{
        Batch, BatchSeq, Blocking, BlockingStore, Compaction, CompactionRead, Completion, FileOptions,
        FileStore, Loaded, MemStore, MemStoreData, RecoveryReport, Store, StoreInfo, StoreReader,
        StoredKey, StoredSize, UnitId, Unvisited,
    };
    #[cfg(feature = "postgres")]
    pub use store::{PgConfig, PgStats, PgStatsHandle, PgStore};
    pub use value::Value;
    pub use version::{Kind, Version};
    pub use writer::Writer;

    /// What the workspace's own fuzz targets, benches and tests reach inside the
    /// crate (the ring, the record and segment formats). Not an API: hidden,
    /// behind the feature `__internals`, and free to change in any release.
    #[cfg(feature = "__internals")]
    #[doc(hidden)]
    pub mod __internals {
        /// The record format.
        pub mod record {
            pub use crate::record::*;
        }
        /// The index, driven as writers, readers and the flusher do.
        pub mod index {
            pub use crate::index::keys::Keys;
        }
        /// The SPSC ring.
        pub mod ring {
            pub use crate::ring::*;
        }
        /// The segment and frame formats.
        pub mod format {
            pub use crate::store::file::format::*;
        }
        /// The file store's I/O recording (power-cut tests).
        #[cfg(feature = "__power_cut")]
        pub mod trace {
            pub use crate::store::file::trace::*;
        }
    }

    /// Deliberate bugs for the loom models (only with `RUSTFLAGS="--cfg loom"`).
    #[cfg(loom)]
    #[doc(hidden)]
    pub use primitives::weaken as loom_weaken;

    /// The README's examples, compiled and run as doctests.
    #[cfg(doctest)]
    #[doc = include_str!("../README.md")]
    pub struct ReadmeDoctests;
}
