//! Reading a file store's directory from outside a running cache: what the
//! `wb inspect` and `wb verify` commands are built on, and what a service's
//! own health checks can use.
//!
//! Everything here only reads. It does not take the store's lock, so it may
//! run beside a live cache; a scan that races a compaction (which removes old
//! segments) fails with an I/O error naming the vanished file, and may simply
//! be run again.
//!
//! ```
//! # fn main() -> Result<(), writebehind::Error> {
//! # let dir = tempfile::tempdir().map_err(writebehind::Error::Io)?;
//! # let wb = writebehind::WriteBehind::open(dir.path(), writebehind::Config::default())?;
//! # let mut w = wb.writer()?;
//! # w.put(b"k", b"v")?;
//! # drop(w);
//! # wb.close()?;
//! use writebehind::inspect;
//!
//! let mut live = std::collections::HashMap::new();
//! let report = inspect::scan_dir(dir.path(), &mut |_segment, record| {
//!     let newest = live.entry(record.key.to_vec()).or_insert(record.version);
//!     *newest = (*newest).max(record.version);
//! })?;
//! assert_eq!(report.torn_tails(), 0);
//! println!("{} records in {} segments, {} keys", report.records(), report.segments.len(), live.len());
//! # Ok(())
//! # }
//! ```

pub use crate::record::encoded_len;
pub use crate::store::file::format::{SegmentHeader, SegmentId, FORMAT_VERSION};
pub use crate::store::file::scan::{list_segments, scan_dir, ScanReport, SegmentReport};
