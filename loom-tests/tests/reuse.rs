//! G3 and G12 across the reuse of index entries under loom: the flusher
//! frees a deleted key's entry once its tombstone is durable, and the next
//! new key reuses it, while readers and writers of the old key may still
//! hold it (the index itself, as the cache drives it); and a reader
//! copying an out-of-line value while a writer replaces its storage (the
//! whole cache).
#![cfg(loom)]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, tiny_config};
use writebehind::__internals::index::Keys;
use writebehind::loom_weaken::{self, Bug};
use writebehind::{MemStore, Version, WriteBehind};

/// A reader of the deleted key `a` races the free of `a`'s entry and its
/// reuse for key `b` (an index of one key, so `b` must reuse it). It sees
/// nothing (the tombstone, or no entry), never `b`'s value. The index alone, driven as the writer and the
/// flusher drive it: the race needs no flusher thread.
fn reuse_model() {
    model("g12 reader racing free and reuse", || {
        let keys = Arc::new(Keys::new(1));
        keys.put(b"a", b"A").unwrap();
        let tombstone = keys.delete(b"a").unwrap();
        let reader = {
            let keys = Arc::clone(&keys);
            thread::spawn(move || {
                let got = keys.get(b"a");
                assert!(
                    got.is_none(),
                    "a reader of a got another key's value: {got:?}"
                );
            })
        };
        // The tombstone is durable: the flusher frees the entry (G12) ...
        assert!(keys.free(b"a", tombstone));
        // ... and the only one there is: b takes it.
        let b = keys.put(b"b", b"B").unwrap();
        assert!(b > tombstone, "a new entry starts above the floor");
        reader.join().unwrap();
        assert!(keys.get(b"a").is_none(), "a deleted key came back");
        assert_eq!(keys.get(b"b"), Some((b, b"B".to_vec())));
    });
}

#[test]
fn g12_a_reader_never_sees_the_next_key_of_its_entry() {
    reuse_model();
}

#[test]
#[should_panic(expected = "another key's value")]
fn g12_weakened_key_check_outside_the_seqlock_is_caught() {
    loom_weaken::set(Bug::KeyCheckOutsideSeqlock);
    reuse_model();
}

/// A writer puts `a` while the flusher frees `a`'s entry (its tombstone
/// just became durable): the put lands either in the old entry (which then
/// is not freed) or in a fresh one above the tombstone, never in a freed
/// cell.
fn stale_writer_model() {
    model("g12 writer racing free", || {
        let keys = Arc::new(Keys::new(2));
        keys.put(b"a", b"A").unwrap();
        let tombstone = keys.delete(b"a").unwrap();
        let writer = {
            let keys = Arc::clone(&keys);
            thread::spawn(move || keys.put(b"a", b"X").unwrap())
        };
        keys.free(b"a", tombstone);
        let version = writer.join().unwrap();
        assert!(version > tombstone, "{version:?} <= {tombstone:?}");
        let got = keys.get(b"a").expect("a put racing the free was lost");
        assert_eq!(got, (version, b"X".to_vec()));
    });
}

#[test]
fn g12_a_writer_racing_a_free_lands_in_a_live_entry() {
    stale_writer_model();
}

#[test]
#[should_panic(expected = "lost")]
fn g12_weakened_write_into_a_freed_entry_is_caught() {
    loom_weaken::set(Bug::WriteIgnoresFree);
    stale_writer_model();
}

/// G3 with values too long to sit in the entry: a reader races a put that
/// moves the value from its heap storage back inside the entry (retiring
/// the storage). It sees the old value whole at the old version or the new
/// one at the new version.
fn heap_value_model() {
    model("g3 out-of-line values", || {
        let config = tiny_config(1).value_bytes_max(72).batch_bytes_max(256);
        let wb =
            Arc::new(WriteBehind::with_store(MemStore::new().without_reads(), config).unwrap());
        let mut w = wb.writer().unwrap();
        w.put(b"k", &[1u8; 72]).unwrap();
        let writer = thread::spawn(move || {
            w.put(b"k", &[2u8; 8]).unwrap();
        });
        let v = wb.get(b"k").unwrap().unwrap();
        match v.version() {
            Version(1) => assert_eq!(&v[..], &[1u8; 72][..], "a torn out-of-line value"),
            Version(2) => assert_eq!(&v[..], &[2u8; 8][..], "a torn out-of-line value"),
            other => panic!("unexpected {other}"),
        }
        writer.join().unwrap();
    });
}

#[test]
fn g3_out_of_line_values_are_read_whole() {
    heap_value_model();
}

#[test]
#[should_panic(expected = "torn")]
fn g3_weakened_heap_reader_without_recheck_is_caught() {
    loom_weaken::set(Bug::SeqlockReaderNoRecheck);
    heap_value_model();
}
