//! The index's unit tests: inserts, lookups and bounds, frees and reuse,
//! loads and the memory budget.

use super::*;
use crate::version::Kind;

fn put(index: &Index, key: &[u8], value: &[u8]) -> Written {
    let f = index.get_or_insert(key).expect("room");
    f.entry
        .write(f.ident, Update::Put(value))
        .expect("put")
        .expect("live")
}

fn get(index: &Index, key: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let snap = index.read(key, &mut out)?;
    (snap.kind == Kind::Put).then_some(out)
}

#[test]
fn insert_find_and_bound() {
    let index = Index::new(100).expect("index");
    for i in 0..100u32 {
        put(&index, &i.to_le_bytes(), &i.to_be_bytes());
    }
    assert_eq!(index.len(), 100);
    assert!(matches!(
        index.get_or_insert(b"one too many"),
        Err(Error::IndexFull { max: 100 })
    ));
    for i in 0..100u32 {
        assert_eq!(
            get(&index, &i.to_le_bytes()),
            Some(i.to_be_bytes().to_vec())
        );
    }
    assert!(get(&index, b"absent").is_none());
    assert!(index.find(b"absent").is_none());
}

#[test]
fn long_keys_are_found() {
    let index = Index::new(10).expect("index");
    let long: Vec<u8> = (0..300).map(|i| i as u8).collect();
    put(&index, &long, b"v");
    assert_eq!(get(&index, &long), Some(b"v".to_vec()));
    let mut other = long.clone();
    other[299] ^= 1;
    assert!(get(&index, &other).is_none());
}

/// Freeing gives the slot back, the key is gone, and the next entry of
/// the key starts above the freed version (G2); a stale write to the
/// freed entry is refused.
#[test]
fn freed_keys_leave_and_come_back_above_the_floor() {
    let index = Index::new(2).expect("index");
    let a = index.get_or_insert(b"a").expect("room");
    for _ in 0..5 {
        a.entry.write(a.ident, Update::Put(b"x")).expect("put");
    }
    let del = a
        .entry
        .write(a.ident, Update::Delete)
        .expect("delete")
        .expect("live");
    assert_eq!(del.version, Version(6));
    put(&index, b"b", b"y");
    assert!(index.get_or_insert(b"c").is_err(), "full");
    assert!(
        !index.free(a.slot, Version(5)),
        "not at the durable version"
    );
    assert!(index.free(a.slot, Version(6)));
    assert_eq!(index.len(), 1);
    assert!(index.find(b"a").is_none());
    assert_eq!(
        a.entry.write(a.ident, Update::Put(b"z")).expect("write"),
        None
    );
    let c = index.get_or_insert(b"c");
    let c = c.unwrap_or_else(|e| panic!("room again: {e:?}"));
    assert_eq!(c.slot, a.slot, "the slot is reused");
    assert!(index.free(c.slot, c.entry.version()));
    let again = put(&index, b"a", b"back");
    assert!(again.version > Version(6), "{:?}", again.version);
    assert_eq!(get(&index, b"b"), Some(b"y".to_vec()));
}

/// Many keys through a small bound, freed as they go: the arena stays
/// at the bound and the tables keep every resident key reachable.
#[test]
fn churn_through_a_small_index() {
    let index = Index::new(64).expect("index");
    let mut resident = std::collections::VecDeque::new();
    for i in 0..20_000u32 {
        let key = i.to_le_bytes();
        let w = put(&index, &key, &key);
        resident.push_back((key, w.version));
        if resident.len() == 64 {
            let (old, version) = resident.pop_front().expect("one");
            let f = index.find(&old).expect("resident");
            assert!(index.free(f.slot, version));
        }
    }
    assert!(index.high_water() <= 64);
    for (key, _) in &resident {
        assert_eq!(get(&index, key), Some(key.to_vec()));
    }
}

/// A load or a guarded counter creation that began before an entry of
/// its key came and went (put, then freed: durable and evicted) installs
/// nothing: what it read from the store may be older than that entry.
#[test]
fn a_free_since_the_ticket_refuses_installs_and_guarded_creations() {
    let index = Index::new(8).expect("index");
    let ticket = index.load_ticket(b"k");
    let w = put(&index, b"k", b"new");
    let f = index.find(b"k").expect("resident");
    assert!(matches!(
        index.install(b"k", ticket, Version(1), b"old", true),
        Ok(Install::Present)
    ));
    assert!(index.free(f.slot, w.version));
    assert!(matches!(
        index.install(b"k", ticket, Version(1), b"old", true),
        Ok(Install::Stale)
    ));
    assert!(matches!(
        index.upsert(b"k", Update::Add(1), Some(ticket)),
        Ok(Upserted::Stale)
    ));
    assert!(get(&index, b"k").is_none());
    let fresh = index.load_ticket(b"k");
    assert!(matches!(
        index.install(b"k", fresh, w.version, b"new", true),
        Ok(Install::Made(_))
    ));
    assert_eq!(get(&index, b"k"), Some(b"new".to_vec()));
}

/// While the flusher says memory is full, new keys are refused (loads
/// too, unless unbudgeted: the flusher's own), resident keys updated.
#[test]
fn a_full_budget_refuses_new_keys_only() {
    let index = Index::new(8).expect("index").evictable(1 << 20);
    put(&index, b"a", b"1");
    index.set_full(true);
    assert!(matches!(
        index.upsert(b"b", Update::Put(b"2"), None),
        Err(Error::MemoryFull {
            budget_bytes: 1_048_576
        })
    ));
    let t = index.load_ticket(b"c");
    assert!(index.install(b"c", t, Version(3), b"3", true).is_err());
    assert!(matches!(
        index.install(b"c", t, Version(3), b"3", false),
        Ok(Install::Made(_))
    ));
    put(&index, b"a", b"again");
    index.set_full(false);
    put(&index, b"b", b"2");
    assert_eq!(index.len(), 3);
}

#[test]
fn racing_inserts_of_the_same_keys_agree() {
    let index = std::sync::Arc::new(Index::new(10_000).expect("index"));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let index = std::sync::Arc::clone(&index);
            std::thread::spawn(move || {
                (0..10_000u32)
                    .map(|i| index.get_or_insert(&i.to_le_bytes()).expect("room").slot)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(
        results[0], results[1],
        "both threads must get the same entries"
    );
    assert_eq!(index.len(), 10_000);
}
