//! `Value`: what `get` returns: the bytes and the version they belong to,
//! copied out of the index (inline up to 64 bytes, so a typical `get`
//! allocates nothing).

use std::fmt;
use std::ops::Deref;

use crate::index::INLINE_BYTES;
use crate::version::Version;

/// Where a reader copies a value to.
pub(crate) trait Sink {
    fn clear(&mut self);
    fn extend(&mut self, bytes: &[u8]);
}

/// A sink that appends to the end of a buffer already holding other bytes:
/// clearing it drops only what it appended (a seqlock reader that retries
/// starts its copy over without disturbing the rest).
pub(crate) struct TailSink<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> TailSink<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        Self { out, start }
    }
}

impl Sink for TailSink<'_> {
    #[inline]
    fn clear(&mut self) {
        self.out.truncate(self.start);
    }
    #[inline]
    fn extend(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn clear(&mut self) {
        Vec::clear(self);
    }
    #[inline]
    fn extend(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    Heap(Vec<u8>),
}

/// A value read from the cache: derefs to its bytes; [`Value::version`] is
/// the version of the update that wrote it.
#[derive(Clone)]
pub struct Value {
    version: Version,
    repr: Repr,
}

impl Value {
    pub(crate) fn empty() -> Self {
        Self {
            version: Version(0),
            repr: Repr::Inline {
                len: 0,
                bytes: [0; INLINE_BYTES],
            },
        }
    }

    pub(crate) fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The version of the update that wrote this value.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The value as a counter, if it is one (8 bytes, little-endian `i64`).
    pub fn as_counter(&self) -> Option<i64> {
        let bytes: [u8; 8] = self.deref().try_into().ok()?;
        Some(i64::from_le_bytes(bytes))
    }
}

impl Sink for Value {
    #[inline]
    fn clear(&mut self) {
        match &mut self.repr {
            Repr::Inline { len, .. } => *len = 0,
            Repr::Heap(v) => v.clear(),
        }
    }

    #[inline]
    fn extend(&mut self, more: &[u8]) {
        match &mut self.repr {
            Repr::Inline { len, bytes } => {
                let start = usize::from(*len);
                let end = start + more.len();
                if end <= INLINE_BYTES {
                    bytes[start..end].copy_from_slice(more);
                    *len = end as u8;
                } else {
                    let mut v = Vec::with_capacity(end);
                    v.extend_from_slice(&bytes[..start]);
                    v.extend_from_slice(more);
                    self.repr = Repr::Heap(v);
                }
            }
            Repr::Heap(v) => v.extend_from_slice(more),
        }
    }
}

impl Deref for Value {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(v) => v,
        }
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq<[u8]> for Value {
    fn eq(&self, other: &[u8]) -> bool {
        self.deref() == other
    }
}

impl PartialEq<&[u8]> for Value {
    fn eq(&self, other: &&[u8]) -> bool {
        self.deref() == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Value {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.deref() == &other[..]
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("version", &self.version)
            .field("bytes", &self.deref())
            .finish()
    }
}
