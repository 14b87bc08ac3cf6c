//! The library internals the tools reach, all here, so that when the library
//! renames or hides them only this file changes: the on-disk format and its
//! scanner (`wb inspect`, `verify`, `compact`), the record encoding (the
//! write-through baseline), and the in-flight bound a report states.

pub use writebehind::file::format::{FORMAT_VERSION, FRAME_HEADER_BYTES};
pub use writebehind::file::scan;
pub use writebehind::record::{encode, encoded_len, Kind};
pub use writebehind::store::in_flight_bound;
