//! After the load: what the cache holds for every key of the workload must
//! be what a reopened cache reads back from the store (G2: at quiescence
//! store == cache; the replay of acknowledged operations is checked in
//! tests/stress.rs).

use std::path::Path;

use writebehind::{Config, Version, WriteBehind};
use writebehind_workload::Workload;

use super::spec::{counter_key, Params, StoreSpec};

/// A key's value and version as the cache showed it.
type Snapshot = (Version, Vec<u8>);

/// Every key the run touched (the warm-up wrote each once, as a value or a
/// counter) and what the cache holds for it (`None`: deleted).
pub(super) struct Expected(Vec<(Vec<u8>, Option<Snapshot>)>);

impl Expected {
    /// What `wb` holds now for every key of `workload`.
    pub(super) fn of(wb: &WriteBehind, workload: &Workload) -> Self {
        let mut expected = Vec::new();
        for key in &workload.keys {
            for k in [key.clone(), counter_key(key)] {
                let v = wb.get(&k).ok().flatten().map(|v| (v.version(), v.to_vec()));
                if v.is_some() || wb.version(&k).ok().flatten().is_some() {
                    expected.push((k, v));
                }
            }
        }
        Self(expected)
    }

    /// How many keys.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Keys whose value or version differ in `wb`, which is closed after.
    fn differing(&self, wb: WriteBehind) -> Result<usize, String> {
        let bad = self
            .0
            .iter()
            .filter(|(k, v)| wb.get(k).ok().flatten().map(|g| (g.version(), g.to_vec())) != *v)
            .count();
        wb.close().map_err(|e| e.to_string())?;
        Ok(bad)
    }
}

/// Reopens the store the (closed) cache wrote to and compares it with
/// `expected`: `Ok(true)` if it matches, `Ok(false)` if the store does not
/// outlive the run (memory, null), an error naming the damage otherwise.
pub(super) fn verify(
    p: &Params,
    dir: Option<&Path>,
    config: &Config,
    expected: &Expected,
) -> Result<bool, String> {
    match (&p.store, dir) {
        (StoreSpec::File | StoreSpec::Slow(_), Some(d)) => {
            let reopened = WriteBehind::open(d, config.clone()).map_err(|e| e.to_string())?;
            let bad = expected.differing(reopened)?;
            if bad > 0 {
                return Err(format!(
                    "VERIFY FAILED: {bad} of {} keys differ after reopen",
                    expected.len()
                ));
            }
            Ok(true)
        }
        (StoreSpec::Postgres(url), _) => {
            let bad = expected.differing(crate::pg::reopen(url, &p.pg_table, config)?)?;
            // Every key the run wrote is one row (deleted keys as tombstones).
            let rows = crate::pg::count_rows(url, &p.pg_table)?;
            if bad > 0 || rows != expected.len() as u64 {
                return Err(format!(
                    "VERIFY FAILED: {bad} of {} keys differ after reopen; the table has {rows} rows",
                    expected.len()
                ));
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}
