//! The file store's [`StoreReader`]: a key's place from the keydir, then
//! one `pread` of its record, checked against its checksum, key and
//! version.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::format::SegmentId;
use super::keydir::{KeyDir, Place};
use crate::error::{StoreError, StoreErrorKind};
use crate::record;
use crate::store::{Loaded, StoreReader};
use crate::version::Kind;

/// Reads through the keydir; shares it with the store.
#[derive(Debug)]
pub(super) struct FileReader {
    dir: PathBuf,
    keydir: Arc<KeyDir>,
    /// Segments opened for reading, kept open until a compaction removes
    /// them (a read that raced the removal still reads the unlinked file),
    /// and the segments removed so far (never cached again: a read that
    /// found one still there opens it for itself only).
    files: RwLock<Files>,
}

#[derive(Debug, Default)]
struct Files {
    open: HashMap<SegmentId, Arc<File>>,
    removed: HashSet<SegmentId>,
}

/// Times a load looks its key up again after finding its segment removed
/// (a compaction moved the record meanwhile; each retry needs another).
const MOVED_RETRIES: usize = 3;

impl FileReader {
    pub(super) fn new(dir: PathBuf, keydir: Arc<KeyDir>) -> Self {
        Self {
            dir,
            keydir,
            files: RwLock::new(Files::default()),
        }
    }

    /// Closes the segments a compaction removes.
    pub(super) fn forget(&self, removed: &[SegmentId]) {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        for id in removed {
            files.open.remove(id);
            files.removed.insert(*id);
        }
    }

    /// Segment `id` open for reading; `None` if it no longer exists.
    fn file(&self, id: SegmentId) -> Result<Option<Arc<File>>, StoreError> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = files.open.get(&id) {
            return Ok(Some(Arc::clone(f)));
        }
        let removed = files.removed.contains(&id);
        drop(files);
        let path = id.path(&self.dir);
        match File::open(&path) {
            Ok(f) => {
                let f = Arc::new(f);
                if !removed {
                    let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
                    if !files.removed.contains(&id) {
                        files.open.entry(id).or_insert_with(|| Arc::clone(&f));
                    }
                }
                Ok(Some(f))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_error(format!("opening {}: {e}", path.display()))),
        }
    }

    /// Reads the record at `place` into `value` and checks it is `key`'s
    /// put at the place's version; leaves the value alone in `value`.
    /// `Ok(false)`: the segment is gone.
    fn read_place(
        &self,
        key: &[u8],
        place: Place,
        value: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        let Some(file) = self.file(place.segment)? else {
            return Ok(false);
        };
        value.clear();
        value.resize(place.len as usize, 0);
        file.read_exact_at(value, u64::from(place.offset))
            .map_err(|e| {
                read_error(format!(
                    "{} at {}: {e}",
                    place.segment.file_name(),
                    place.offset
                ))
            })?;
        let bad = |why: String| {
            StoreError::new(
                StoreErrorKind::Read,
                format!("{} at {}: {why}", place.segment.file_name(), place.offset),
            )
        };
        let r = match record::iter(value).next() {
            Some(Ok(r)) => r,
            Some(Err((_, e))) => return Err(bad(e.to_string())),
            None => return Err(bad("no record".into())),
        };
        let exact = record::encoded_len(r.key.len(), r.value.len()) == place.len as usize;
        if r.key != key || r.version != place.version || r.kind != Kind::Put || !exact {
            return Err(bad(format!(
                "not the record the keydir names ({:?} {} of another key or version)",
                r.kind, r.version
            )));
        }
        let start = record::HEADER_BYTES + key.len();
        value.copy_within(start.., 0);
        value.truncate(value.len() - start);
        Ok(true)
    }
}

impl StoreReader for FileReader {
    fn load(&self, key: &[u8], value: &mut Vec<u8>) -> Result<Option<Loaded>, StoreError> {
        for _ in 0..MOVED_RETRIES {
            let Some(place) = self.keydir.get(key) else {
                value.clear();
                return Ok(None);
            };
            if self.read_place(key, place, value)? {
                return Ok(Some(Loaded {
                    version: place.version,
                    kind: Kind::Put,
                }));
            }
        }
        Err(read_error(format!(
            "the record moved {MOVED_RETRIES} times while being read (compactions back to back); try again"
        )))
    }

    fn holds(&self, key: &[u8]) -> Option<bool> {
        Some(self.keydir.get(key).is_some())
    }
}

fn read_error(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::Read, message)
}
