//! `FileOptions`: the file store's own settings.

use std::time::Duration;

use crate::config::{Config, Durability, IoBackend};
use crate::error::Error;

/// Settings of a [`FileStore`](crate::FileStore). Start from
/// [`FileOptions::default`] (or [`FileOptions::for_cache`], which
/// [`WriteBehind::open`](crate::WriteBehind::open) uses) and change what you
/// need:
///
/// ```
/// use writebehind::{Config, FileOptions, FileStore, WriteBehind};
/// # let dir = tempfile::tempdir().map_err(writebehind::Error::Io)?;
/// let config = Config::default();
/// let options = FileOptions::for_cache(&config).segment_bytes_max(16 << 20);
/// let store = FileStore::open(dir.path(), &options)?;
/// let wb = WriteBehind::with_store(store, config)?;
/// # wb.close()?;
/// # Ok::<(), writebehind::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FileOptions {
    /// A segment is rotated once it holds this many bytes (it is
    /// preallocated to this size, and trimmed to its data when left behind
    /// or closed). In 4096 ..= 4 GiB; 64 MiB by default.
    pub segment_bytes_max: u64,
    /// The I/O engine.
    pub io_backend: IoBackend,
    /// When frames reach the disk: under [`Durability::Batch`] each frame
    /// is written behind the previous one's fdatasync; under
    /// [`Durability::Deferred`] frames are written ahead, and a batch completes
    /// once an fdatasync covers it (one comes when a batch asks for it, see
    /// [`Batch::sync`](crate::Batch::sync), or when the store has nothing
    /// queued). Recovery reads the two differently, so it is recorded in
    /// each segment.
    pub durability: Durability,
    /// The largest frame (a batch's records) expected; a segment records it
    /// so recovery knows how far to search past damage. A larger batch is
    /// still written, in a new segment that records its size.
    pub frame_bytes_max: usize,
    /// How long closing waits for the removal of segments a compaction
    /// left behind (a slow disk); what is not removed by then is removed by
    /// the next compaction.
    pub close_wait: Duration,
    /// Opening a cache over this store (which loads no value) takes the
    /// keys of each sealed segment from its hint file, written beside it,
    /// instead of reading every record (true by default). A hint that does
    /// not pass its checks is ignored and its segment read. With `false`,
    /// opening reads and checks every record of every segment, as
    /// `wb verify` does; a bit flipped in a hinted segment is otherwise
    /// found only when its record is read (or compacted, or verified).
    pub read_hints: bool,
}

crate::config::setters! {
    FileOptions {
        segment_bytes_max: u64,
        io_backend: IoBackend,
        durability: Durability,
        frame_bytes_max: usize,
        close_wait: Duration,
        read_hints: bool,
    }
}

impl Default for FileOptions {
    /// [`FileOptions::for_cache`] of the default [`Config`]: for a cache
    /// with another config, take `for_cache` of that one.
    fn default() -> Self {
        Self::for_cache(&Config::default())
    }
}

impl FileOptions {
    /// The options that match a cache's `config`: its durability, its
    /// largest batch and its close timeout; segment size and engine are the
    /// defaults.
    pub fn for_cache(config: &Config) -> Self {
        Self {
            segment_bytes_max: 64 << 20,
            io_backend: IoBackend::Auto,
            durability: config.durability,
            frame_bytes_max: config.batch_bytes_max,
            close_wait: config.close_timeout,
            read_hints: true,
        }
    }

    /// Checks every bound.
    ///
    /// # Errors
    /// [`Error::Config`], naming the option and its bounds.
    pub fn validate(&self) -> Result<(), Error> {
        if self.segment_bytes_max < 4096 || self.segment_bytes_max > 1 << 32 {
            return Err(Error::Config(format!(
                "segment_bytes_max = {} must be in 4096..=4 GiB (each segment is preallocated to it; the default is 64 MiB)",
                self.segment_bytes_max
            )));
        }
        if self.frame_bytes_max == 0 {
            return Err(Error::Config("frame_bytes_max must be at least 1".into()));
        }
        Ok(())
    }
}
