//! Reads of one key from a store, for read-through (G11).

use crate::error::StoreError;
use crate::version::{Kind, Version};

/// The newest record a store holds of a key, as [`StoreReader::load`]
/// found it (its value is in the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// The record's version.
    pub version: Version,
    /// A put (the value was copied) or a tombstone (no value).
    pub kind: Kind,
}

/// Reads single keys from a store, from any thread, while the flusher
/// writes to it: what the cache calls when a key is not in memory.
///
/// The rule a reader must keep: a load returns the key's newest record
/// among every batch whose completion has been returned with `Ok` before
/// the load began (or a newer one). It may also report a tombstone as
/// `None`: the cache's version floor already lies above every version of a
/// key whose memory it freed, so a key with no record starts above it too.
pub trait StoreReader: Send + Sync + std::fmt::Debug {
    /// Copies the value of `key`'s newest record into `value` (cleared
    /// first) and returns its version and kind; `None` if the store holds
    /// no record of the key.
    ///
    /// # Errors
    /// The store could not be read (I/O, a record that fails its
    /// checksum, a lost connection); the cache hands the error to the
    /// caller of the read and changes nothing.
    fn load(&self, key: &[u8], value: &mut Vec<u8>) -> Result<Option<Loaded>, StoreError>;

    /// Whether the store holds a live value of `key`, if it can tell
    /// without I/O (an index in memory); `None` if it cannot. A delete of a
    /// key not in memory asks: a key the store does not hold needs no
    /// tombstone. The default: `None` (a tombstone is written).
    fn holds(&self, key: &[u8]) -> Option<bool> {
        let _ = key;
        None
    }
}
