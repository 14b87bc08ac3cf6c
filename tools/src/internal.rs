//! The library internals the tools reach, all here, so that when the library
//! renames or hides them only this file changes: the record encoding (the
//! write-through baseline), and the in-flight bound a report states.

pub use writebehind::record::{encode, Kind};
pub use writebehind::store::in_flight_bound;
