//! Property test: random operation sequences on two writers, with random
//! store failures, sync points and simulated crashes (reopening from what
//! the store had made durable), against a sequential reference model.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use writebehind::testing::{FaultPlan, Faulty};
use writebehind::MemStoreData;
use writebehind::{Config, MemStore, StoreErrorKind, Version, WriteBehind};

#[derive(Debug, Clone)]
enum Op {
    Put {
        writer: usize,
        key: u8,
        byte: u8,
    },
    Add {
        writer: usize,
        key: u8,
        delta: i8,
    },
    Delete {
        writer: usize,
        key: u8,
    },
    Sync,
    FailNext(u8),
    /// Crash: reopen a cache from a copy of what the store holds now.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..6u8, any::<u8>()).prop_map(|(writer, key, byte)| Op::Put { writer, key, byte }),
        3 => (0..2usize, 0..3u8, any::<i8>()).prop_map(|(writer, key, delta)| Op::Add { writer, key, delta }),
        2 => (0..2usize, 0..6u8).prop_map(|(writer, key)| Op::Delete { writer, key }),
        1 => Just(Op::Sync),
        1 => (1..4u8).prop_map(Op::FailNext),
        1 => Just(Op::Crash),
    ]
}

fn data_key(k: u8) -> Vec<u8> {
    vec![b'k', k]
}
fn counter_key(k: u8) -> Vec<u8> {
    vec![b'c', k]
}

type Model = HashMap<Vec<u8>, (Version, Option<Vec<u8>>)>;

fn config() -> Config {
    Config::default()
        .writers_max(2)
        .ring_capacity(8)
        .batch_ops_max(4)
        .retry_backoff_min(Duration::from_micros(100))
        .retry_backoff_max(Duration::from_millis(2))
}

fn copy(data: &Arc<Mutex<MemStoreData>>) -> Arc<Mutex<MemStoreData>> {
    let d = data.lock().unwrap();
    Arc::new(Mutex::new(MemStoreData {
        records: d.records.clone(),
        ..MemStoreData::default()
    }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_ops_match_a_sequential_model(ops in proptest::collection::vec(op(), 1..160)) {
        let store = MemStore::new();
        let data = store.data();
        let plan = FaultPlan::new();
        let wb = WriteBehind::with_store(Faulty::new(store, plan.clone()), config()).unwrap();
        let mut writers = [wb.writer().unwrap(), wb.writer().unwrap()];
        let mut model: Model = HashMap::new();
        for op in &ops {
            match *op {
                Op::Put { writer, key, byte } => {
                    let k = data_key(key);
                    let v = vec![byte; usize::from(byte % 9)];
                    let version = writers[writer].put(&k, &v).unwrap();
                    let e = model.entry(k).or_insert((Version(0), None));
                    // G2: strictly above the key's last version (one above
                    // while resident; above the version floor once a
                    // deleted key's entry was freed).
                    prop_assert!(version > e.0, "{:?} after {:?}", version, e.0);
                    *e = (version, Some(v));
                }
                Op::Add { writer, key, delta } => {
                    let k = counter_key(key);
                    let got = writers[writer].add(&k, i64::from(delta)).unwrap();
                    let e = model.entry(k).or_insert((Version(0), None));
                    let before = e.1.as_ref().map_or(0, |b| i64::from_le_bytes(b[..].try_into().unwrap()));
                    prop_assert_eq!(got, before + i64::from(delta));
                    let version = writers[writer].last_version();
                    prop_assert!(version > e.0, "{:?} after {:?}", version, e.0);
                    *e = (version, Some(got.to_le_bytes().to_vec()));
                }
                Op::Delete { writer, key } => {
                    let k = data_key(key);
                    let removed = writers[writer].delete(&k).unwrap();
                    let e = model.entry(k).or_insert((Version(0), None));
                    prop_assert_eq!(removed, e.1.is_some());
                    if removed {
                        let version = writers[writer].last_version();
                        prop_assert!(version > e.0, "{:?} after {:?}", version, e.0);
                        *e = (version, None);
                    }
                }
                Op::Sync => {
                    wb.sync_timeout(Duration::from_secs(20)).unwrap();
                    // G4: everything acknowledged before sync() is in the store.
                    let d = data.lock().unwrap();
                    for (k, (version, _)) in model.iter().filter(|(_, e)| e.0 .0 > 0) {
                        let stored = d.records.get(k).map_or(0, |r| r.0 .0);
                        prop_assert!(stored >= version.0, "{:?}: stored {} < synced {}", k, stored, version.0);
                    }
                }
                Op::FailNext(n) => plan.fail_next(u64::from(n), StoreErrorKind::Write),
                Op::Crash => {
                    // What a restart would recover now: some version of each
                    // key that was written, never newer than the model's.
                    let recovered = WriteBehind::with_store(MemStore::with_data(copy(&data)), config()).unwrap();
                    for (k, (version, value)) in &model {
                        if let Some(v) = recovered.version(k).expect("read") {
                            prop_assert!(v <= *version, "{:?}: recovered {} newer than written {}", k, v, version);
                            if v == *version {
                                prop_assert_eq!(recovered.get(k).expect("read").map(|x| x.to_vec()), value.clone());
                            }
                        }
                    }
                    recovered.close().unwrap();
                }
            }
        }
        // The cache shows the model; after close the store holds it exactly,
        // and a reopened cache continues from it.
        for (k, (version, value)) in &model {
            match (wb.version(k).expect("read"), value) {
                // A deleted key's entry may be freed already (G12).
                (None, None) => {}
                (v, _) => prop_assert_eq!(v.unwrap_or_default(), *version),
            }
            prop_assert_eq!(wb.get(k).expect("read").map(|v| v.to_vec()), value.clone());
        }
        drop(writers);
        wb.close().unwrap();
        let d = data.lock().unwrap();
        for (k, (version, value)) in model.iter().filter(|(_, e)| e.0 .0 > 0) {
            let expected = (*version, value.clone());
            prop_assert_eq!(d.records.get(k), Some(&expected));
        }
        prop_assert_eq!(d.version_regressions, 0);
    }
}
