//! `Keys`: the index driven the way writers, readers and the flusher drive
//! it, for the loom models of entry reuse (hidden feature `__internals`).
//! A model of the whole cache runs the flusher thread too, and the races of
//! a free with a read or a write need no flusher to happen.

use super::{Index, Update};
use crate::version::{Kind, Version};

/// An index with the writer's, reader's and flusher's operations.
#[derive(Debug)]
pub struct Keys(Index);

impl Keys {
    /// An index for `keys_max` resident keys.
    pub fn new(keys_max: usize) -> Self {
        Self(Index::new(keys_max).unwrap_or_else(|e| panic!("index: {e}")))
    }

    /// A writer's put, with its retry when the entry was freed meanwhile;
    /// the new version, or `None` if the index is full.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Option<Version> {
        self.write(key, Update::Put(value))
    }

    /// A writer's delete of a resident key; the tombstone's version.
    pub fn delete(&self, key: &[u8]) -> Option<Version> {
        self.write(key, Update::Delete)
    }

    fn write(&self, key: &[u8], update: Update<'_>) -> Option<Version> {
        loop {
            let found = match update {
                Update::Delete => self.0.find(key)?,
                _ => match self.0.upsert(key, update, None).ok()? {
                    crate::index::Upserted::Found(found) => found,
                    crate::index::Upserted::Made(_, written) => return Some(written.version),
                    crate::index::Upserted::Stale => continue,
                },
            };
            if let Ok(Some(written)) = found.entry.write(found.ident, update) {
                return Some(written.version);
            }
        }
    }

    /// A load's first step: the ticket it takes before it looks the key up
    /// and reads the store.
    pub fn ticket(&self, key: &[u8]) -> super::LoadTicket {
        self.0.load_ticket(key)
    }

    /// A load's last step: installs `value` at `version`, read from the
    /// store after `ticket`; true if that made the key resident.
    pub fn install(
        &self,
        key: &[u8],
        ticket: super::LoadTicket,
        version: Version,
        value: &[u8],
    ) -> bool {
        matches!(
            self.0.install(key, ticket, version, value, true),
            Ok(super::Install::Made(_))
        )
    }

    /// A reader's get: the version and value, if the key has one.
    pub fn get(&self, key: &[u8]) -> Option<(Version, Vec<u8>)> {
        let mut out = Vec::new();
        let snap = self.0.read(key, &mut out)?;
        (snap.kind == Kind::Put).then_some((snap.version, out))
    }

    /// The flusher's free of `key`'s entry at `version` (its tombstone is
    /// durable); false if the key changed since.
    pub fn free(&self, key: &[u8], version: Version) -> bool {
        self.0
            .find(key)
            .is_some_and(|found| self.0.free(found.slot, version))
    }
}
