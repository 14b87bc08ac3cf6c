//! G11 under loom: a load from the store racing a put of its key and the
//! eviction of the put's entry never installs the older value it read (the
//! index itself, driven as read-through and the flusher drive it).
//!
//! Eviction racing a put of the same key, and a reader racing eviction and
//! reuse of its entry, are the models of `reuse.rs`: eviction frees an
//! entry through the same `Index::free` (at the version the flusher found
//! durable) as reclamation does.
#![cfg(loom)]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_tests::model;
use writebehind::__internals::index::Keys;
use writebehind::loom_weaken::{self, Bug};

/// The store holds `a` = "old" (its entry was evicted). A load takes its
/// ticket, finds `a` not resident, reads the store and installs what it
/// read; meanwhile a writer puts "new", the put becomes durable (the store
/// holds it) and the flusher evicts it. Whatever the order, a resident `a`
/// at the end holds what the store holds: never the older value.
fn load_model() {
    model("g11 a load racing a put and its eviction", || {
        let keys = Arc::new(Keys::new(2));
        let old = keys.put(b"a", b"old").unwrap();
        assert!(keys.free(b"a", old), "evicted: the store holds old");
        let store = Arc::new(Mutex::new((old, b"old".to_vec())));
        let loader = {
            let (keys, store) = (Arc::clone(&keys), Arc::clone(&store));
            thread::spawn(move || {
                let ticket = keys.ticket(b"a");
                if keys.get(b"a").is_none() {
                    let (version, value) = store.lock().unwrap().clone();
                    keys.install(b"a", ticket, version, &value);
                }
            })
        };
        let new = keys.put(b"a", b"new").unwrap();
        assert!(new > old);
        *store.lock().unwrap() = (new, b"new".to_vec()); // durable
        keys.free(b"a", new); // evicted, unless a load's entry took it
        loader.join().unwrap();
        let stored = store.lock().unwrap().clone();
        if let Some(resident) = keys.get(b"a") {
            assert_eq!(
                resident, stored,
                "a load installed a value over an evicted newer put"
            );
        }
    });
}

#[test]
fn g11_a_load_never_installs_a_value_older_than_an_evicted_put() {
    load_model();
}

#[test]
#[should_panic(expected = "over an evicted newer put")]
fn g11_weakened_install_ignoring_frees_is_caught() {
    loom_weaken::set(Bug::InstallIgnoresFrees);
    load_model();
}
