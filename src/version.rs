//! The cache's vocabulary, shared by the index, the flusher, the stores and
//! the record format: a key's [`Version`] and what an update does to its key
//! ([`Kind`]).

use std::fmt;

/// The version of one update of one key. Every update of a key gets a version
/// strictly larger than the one it replaced (G2); 0 means "never written".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// What a record does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The key now has the record's value.
    Put = 1,
    /// The key is deleted (a tombstone; no value).
    Delete = 2,
}
