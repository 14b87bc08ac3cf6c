//! The one library internal the tools reach, here so that when the library
//! changes it only this file does: the record encoding, which the
//! write-through baseline of `wb bench` uses to write its records as the
//! store does. Everything else goes through the library's public API
//! (`writebehind::inspect` for the store directory).

pub use writebehind::__internals::record::encode;
