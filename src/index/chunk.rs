//! `Chunk`: a block of `n` entries of zeroed memory, mapped by the OS page
//! by page as entries are first used.
//!
//! Why not `alloc_zeroed`? Entries are 64-byte aligned, and for alignments
//! above 16 the system allocator's zeroed path is `posix_memalign` plus a
//! `memset` of the whole block: half a second and the full RSS up front for
//! a large chunk. An anonymous `mmap` is zeroed, page aligned, and costs
//! nothing until touched.
//!
//! A chunk never drops its entries: the arena knows how many it handed out
//! and drops exactly those (touching every page of a mostly unused chunk
//! just to find out would map all of it).

use std::ops::Deref;
use std::ptr::NonNull;

use super::entry::Entry;
use crate::error::Error;

#[derive(Debug)]
pub(crate) struct Chunk {
    ptr: NonNull<Entry>,
    len: usize,
}

// SAFETY: the chunk owns its entries, which are `Send + Sync`.
unsafe impl Send for Chunk {}
// SAFETY: as above; shared access only hands out `&Entry`.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// `len` empty entries.
    #[cfg(not(loom))]
    pub(crate) fn new(len: usize) -> Result<Self, Error> {
        let bytes = len
            .checked_mul(std::mem::size_of::<Entry>())
            .ok_or_else(|| {
                Error::Config(format!(
                    "a chunk of {len} entries overflows the address space"
                ))
            })?;
        // SAFETY: an anonymous private mapping; no file, no existing memory
        // is involved. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(Error::Config(format!(
                "cannot map {len} index entries ({bytes} bytes): {e}"
            )));
        }
        // Page alignment (4 KiB) satisfies the entries' 64-byte alignment,
        // and zeroed bytes are valid empty entries (see `Entry::empty`).
        let ptr = NonNull::new(p.cast::<Entry>())
            .ok_or_else(|| Error::Config("mmap returned null".into()))?;
        Ok(Self { ptr, len })
    }

    /// `len` empty entries (loom's atomics are not plain integers, so they
    /// are constructed one by one).
    #[cfg(loom)]
    pub(crate) fn new(len: usize) -> Result<Self, Error> {
        let mut v: Vec<Entry> = (0..len).map(|_| Entry::empty()).collect();
        let ptr =
            NonNull::new(v.as_mut_ptr()).ok_or_else(|| Error::Config("empty chunk".into()))?;
        std::mem::forget(v);
        Ok(Self { ptr, len })
    }

    /// The first entry.
    pub(crate) fn as_ptr(&self) -> *mut Entry {
        self.ptr.as_ptr()
    }

    /// Drops the entry at `i` in place.
    ///
    /// # Safety
    /// Called at most once per entry, with no other reference to the chunk
    /// alive (`&mut self`), and never followed by a use of that entry.
    pub(crate) unsafe fn drop_entry(&mut self, i: usize) {
        assert!(i < self.len);
        // SAFETY: `i` is in bounds; the caller guarantees exclusivity and
        // that this entry is dropped once.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr().add(i)) };
    }
}

impl Deref for Chunk {
    type Target = [Entry];
    fn deref(&self) -> &[Entry] {
        // SAFETY: `ptr` points to `len` initialized (zeroed or constructed)
        // entries that live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if crate::primitives::unwinding_in_model() {
            return; // leak: the entries' loom atomics cannot be touched now
        }
        #[cfg(not(loom))]
        {
            let bytes = self.len * std::mem::size_of::<Entry>();
            // SAFETY: the mapping made in `new`, unmapped once; entries that
            // needed dropping were dropped by the arena already.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), bytes) };
        }
        #[cfg(loom)]
        // SAFETY: rebuilds the Vec forgotten in `new` with length 0, so its
        // memory is freed without dropping entries twice.
        drop(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), 0, self.len) });
    }
}
