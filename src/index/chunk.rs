//! `Zeroed<T>`: `n` values of a type whose all-zero bytes are a valid
//! value (a free [`Entry`](super::entry::Entry), an empty table word), in
//! zeroed memory that the OS maps page by page as it is first touched.
//! The arena's chunks of entries and the table shards' word arrays are
//! these.
//!
//! Why not `alloc_zeroed`? Entries are 64-byte aligned, and for alignments
//! above 16 the system allocator's zeroed path is `posix_memalign` plus a
//! `memset` of the whole block: half a second and the full RSS up front for
//! a large chunk. An anonymous `mmap` is zeroed, page aligned, and costs
//! nothing until touched; [`Zeroed::release`] gives pages back.
//!
//! A block never drops its values: its owner knows which ones it used and
//! drops exactly those (touching every page of a mostly unused block just to
//! find out would map all of it).

use std::ops::Deref;
use std::ptr::NonNull;

use crate::error::Error;

/// A type whose all-zero bytes are a valid value.
///
/// # Safety
/// Implementors guarantee that all-zero bytes are a valid `Self`, and that
/// dropping a zeroed value does nothing.
pub(crate) unsafe trait ZeroValid: Sized {
    /// The zero value, built (loom's atomics are not plain integers).
    #[cfg(loom)]
    fn zero() -> Self;
}

#[derive(Debug)]
pub(crate) struct Zeroed<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the block owns its values; `T` is `Send + Sync` where used
// (entries and atomics).
unsafe impl<T: ZeroValid + Send + Sync> Send for Zeroed<T> {}
// SAFETY: as above; shared access only hands out `&T`.
unsafe impl<T: ZeroValid + Send + Sync> Sync for Zeroed<T> {}

impl<T: ZeroValid> Zeroed<T> {
    /// `len` zero values.
    #[cfg(not(loom))]
    pub(crate) fn new(len: usize) -> Result<Self, Error> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            Error::Config(format!(
                "an index block of {len} values overflows the address space"
            ))
        })?;
        // SAFETY: an anonymous private mapping; no file, no existing memory
        // is involved. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(Error::Config(format!(
                "cannot map {len} index values ({bytes} bytes): {e}"
            )));
        }
        // Page alignment (4 KiB) satisfies any alignment used here (64 at
        // most), and zeroed bytes are valid values (`ZeroValid`).
        let ptr = NonNull::new(p.cast::<T>())
            .ok_or_else(|| Error::Config("mmap returned null".into()))?;
        Ok(Self { ptr, len })
    }

    /// `len` zero values, constructed one by one (loom).
    #[cfg(loom)]
    pub(crate) fn new(len: usize) -> Result<Self, Error> {
        let mut v: Vec<T> = (0..len).map(|_| T::zero()).collect();
        let ptr =
            NonNull::new(v.as_mut_ptr()).ok_or_else(|| Error::Config("empty block".into()))?;
        std::mem::forget(v);
        Ok(Self { ptr, len })
    }

    /// The first value.
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Drops the value at `i` in place.
    ///
    /// # Safety
    /// Called at most once per value, with no other reference to the block
    /// alive (`&mut self`), and never followed by a use of that value.
    pub(crate) unsafe fn drop_value(&mut self, i: usize) {
        assert!(i < self.len);
        // SAFETY: `i` is in bounds; the caller guarantees exclusivity and
        // that this value is dropped once.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr().add(i)) };
    }

    /// Gives the whole pages inside values `from..to` back to the OS: they
    /// read as zero values from then on (and cost nothing until touched
    /// again). Values there must hold nothing that needs dropping. Readers
    /// may be reading them meanwhile: they see the old values or zeros.
    pub(crate) fn release(&self, from: usize, to: usize) {
        #[cfg(not(loom))]
        {
            let size = std::mem::size_of::<T>();
            let page = 4096;
            let start =
                (self.ptr.as_ptr() as usize + from.min(self.len) * size).next_multiple_of(page);
            let end = (self.ptr.as_ptr() as usize + to.min(self.len) * size) / page * page;
            if end > start {
                // SAFETY: the range lies inside this block's own anonymous
                // private mapping; MADV_DONTNEED replaces its pages with
                // zero pages, which are valid values (`ZeroValid`).
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
                };
            }
        }
        #[cfg(loom)]
        let _ = (from, to);
    }
}

impl<T: ZeroValid> Deref for Zeroed<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialized (zeroed or constructed)
        // values that live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> Drop for Zeroed<T> {
    fn drop(&mut self) {
        if crate::primitives::unwinding_in_model() {
            return; // leak: the values' loom atomics cannot be touched now
        }
        #[cfg(not(loom))]
        {
            let bytes = self.len * std::mem::size_of::<T>();
            // SAFETY: the mapping made in `new`, unmapped once; values that
            // needed dropping were dropped by the owner already.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), bytes.max(1)) };
        }
        #[cfg(loom)]
        // SAFETY: rebuilds the Vec forgotten in `new` with length 0, so its
        // memory is freed without dropping values twice.
        drop(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), 0, self.len) });
    }
}
