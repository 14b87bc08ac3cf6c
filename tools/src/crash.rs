//! `wb crash-test`: kill -9 a writing process at random moments and check
//! what the store recovers (G4, G5).
//!
//! Each cycle starts a child (`wb crash-child`) on the same store directory.
//! Its writers each own a set of keys (so a writer knows every version it
//! produces): puts carry values that encode key, version and a checksum;
//! counters only ever receive adds whose delta is a function of key and
//! version, so a counter's value at version v is known (counters are never
//! deleted, and are created before the first cycle, so their versions run
//! from 1); deletes leave tombstones, whose keys' memory is freed once they
//! are durable, so a put after a delete may jump to a higher version (the
//! version floor). A sync thread snapshots every key's acknowledged version,
//! calls `sync()`, and then records the snapshot durably in a side file. The
//! parent kills the child with SIGKILL after a random delay (during writes,
//! flushes, rotations, compactions), reopens the store and checks:
//! no corruption error; every key's version is at least the one of the last
//! completed sync; every value is one that was written for that key and
//! version; every counter equals the sum of its deltas up to its version.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use writebehind::{Config, Error, FileOptions, WriteBehind};

use writebehind_workload::Rng;

/// A cache of `config` over a file store in `dir` with segments of 1 << 18 bytes.
fn open(dir: impl AsRef<std::path::Path>, config: Config) -> Result<WriteBehind, Error> {
    let file = FileOptions::for_cache(&config).segment_bytes_max(1 << 18);
    WriteBehind::open_with(dir, &file, config)
}

const WRITERS: usize = 2;
const KEYS_PER_WRITER: usize = 1_500;
const COUNTERS_PER_WRITER: usize = 100;
const SIDE_FILE: &str = "crash-test-synced.txt";

/// The store configuration of the child: small segments and eager
/// compaction, so kills land in rotations and compactions too.
fn config() -> Config {
    Config::default()
        .writers_max(WRITERS + 1)
        .keys_max(1 << 14)
        .dirty_keys_max(1 << 13)
        .batch_ops_max(256)
        .key_bytes_max(64)
        .value_bytes_max(256)
        .batch_bytes_max(1 << 16)
        .compact_segments_min(4)
        .compact_dead_ratio(0.5)
        .flush_interval(Duration::from_millis(2))
}

/// Every key of the test, in a fixed order: (key, is_counter, writer).
fn universe() -> Vec<(Vec<u8>, bool)> {
    let mut keys = Vec::new();
    for w in 0..WRITERS {
        for i in 0..KEYS_PER_WRITER {
            keys.push((format!("w{w}-k{i:05}").into_bytes(), false));
        }
        for i in 0..COUNTERS_PER_WRITER {
            keys.push((format!("w{w}-c{i:05}").into_bytes(), true));
        }
    }
    keys
}

/// The value a put of `key` at `version` writes: key, version, a length
/// that varies with the version, and a crc32c over all of it.
fn make_value(key: &[u8], version: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(key);
    v.resize(
        8 + key.len() + (version % 23) as usize,
        (version % 251) as u8,
    );
    let crc = crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// True if `value` is what a put of `key` at `version` wrote.
/// The value records the version its writer expected (the key's previous
/// version plus one); a put after a freed delete gets a higher one (the
/// floor), so the recorded version may be below the actual one, never above.
fn value_is_valid(key: &[u8], version: u64, value: &[u8]) -> bool {
    let Some(nonce) = value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
    else {
        return false;
    };
    nonce <= version && value == make_value(key, nonce).as_slice()
}

/// Each key's newest record in the store: version and kind.
type Newest = std::collections::HashMap<Vec<u8>, (u64, writebehind::Kind)>;

/// `acked` entries: a version, with this bit when the key's last update was
/// a delete.
const DELETED: u64 = 1 << 63;

/// The delta of the add that gives `key` its version `version`.
fn delta(key: &[u8], version: u64) -> i64 {
    let h = key
        .iter()
        .fold(version.wrapping_mul(0x9E37_79B9_7F4A_7C15), |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
    (h % 100) as i64 + 1
}

/// A counter's value at `version`: the sum of its deltas.
fn counter_at(key: &[u8], version: u64) -> i64 {
    (1..=version).map(|v| delta(key, v)).sum()
}

/// Gives every counter of the universe its first add (version 1) if it has
/// none: a counter's value is checked as the sum of its deltas from version
/// 1, and a key first written after deletes were freed would start at the
/// version floor instead.
fn seed_counters(wb: &WriteBehind) -> Result<(), String> {
    let mut w = wb.writer().map_err(|e| e.to_string())?;
    for (key, counter) in universe() {
        if counter && wb.version(&key).map_err(|e| e.to_string())?.is_none() {
            w.add(&key, delta(&key, 1)).map_err(|e| e.to_string())?;
            if w.last_version().0 != 1 {
                return Err(format!(
                    "counter {} created at version {}",
                    String::from_utf8_lossy(&key),
                    w.last_version().0
                ));
            }
        }
    }
    drop(w);
    wb.sync().map_err(|e| e.to_string())
}

/// The child: writes until killed. Never returns normally.
pub fn child(dir: &Path, seed: u64) -> Result<(), String> {
    let wb = Arc::new(open(dir, config()).map_err(|e| e.to_string())?);
    let (acked, _writers) = start_writers(&wb, seed, None);
    // The sync thread: snapshot, sync, record.
    let side = dir.join(SIDE_FILE);
    let mut rng = Rng::new(seed ^ 0xABCD);
    loop {
        std::thread::sleep(Duration::from_millis(1 + rng.next_u64() % 20));
        let snapshot: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
        wb.sync().map_err(|e| e.to_string())?;
        write_side(&side, &snapshot).map_err(|e| e.to_string())?;
    }
}

type WriterThreads = Vec<std::thread::JoinHandle<Result<u64, String>>>;

/// Starts the writer threads (each owns its keys); returns every key's
/// acknowledged version, published by its writer after the operation
/// returned. They stop when `stop` is set (or never, without one).
fn start_writers(
    wb: &Arc<WriteBehind>,
    seed: u64,
    stop: Option<Arc<AtomicBool>>,
) -> (Arc<Vec<AtomicU64>>, WriterThreads) {
    let keys = universe();
    // A key with no entry is absent or deleted: its next version may jump.
    let acked: Arc<Vec<AtomicU64>> = Arc::new(
        keys.iter()
            .map(|(k, _)| AtomicU64::new(wb.version(k).ok().flatten().map_or(DELETED, |v| v.0)))
            .collect(),
    );
    let keys = Arc::new(keys);
    let per_writer = KEYS_PER_WRITER + COUNTERS_PER_WRITER;
    let threads = (0..WRITERS)
        .map(|t| {
            let (wb, keys, acked, stop) = (
                Arc::clone(wb),
                Arc::clone(&keys),
                Arc::clone(&acked),
                stop.clone(),
            );
            std::thread::spawn(move || -> Result<u64, String> {
                let mut w = wb.writer().map_err(|e| e.to_string())?;
                let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D));
                let mut ops = 0u64;
                while !stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                    let i = t * per_writer + (rng.next_u64() % per_writer as u64) as usize;
                    let (key, counter) = &keys[i];
                    let state = acked[i].load(Ordering::Relaxed);
                    let (before, was_deleted) = (state & !DELETED, state & DELETED != 0);
                    let mut deleted = false;
                    let after = if *counter {
                        let v = w
                            .add(key, delta(key, before + 1))
                            .map_err(|e| e.to_string())?;
                        if v != counter_at(key, before + 1) {
                            return Err(format!(
                                "counter {} diverged",
                                String::from_utf8_lossy(key)
                            ));
                        }
                        w.last_version().0
                    } else if rng.next_u64().is_multiple_of(8) {
                        deleted = w.delete(key).map_err(|e| e.to_string())?;
                        if deleted {
                            w.last_version().0
                        } else {
                            before
                        }
                    } else {
                        w.put(key, &make_value(key, before + 1))
                            .map_err(|e| e.to_string())?
                            .0
                    };
                    let jumped = was_deleted && after > before;
                    if after != before && after != before + 1 && !jumped {
                        return Err("versions must step by one while a key has a value".into());
                    }
                    let still_deleted = deleted || (was_deleted && after == before);
                    acked[i].store(
                        after | if still_deleted { DELETED } else { 0 },
                        Ordering::Release,
                    );
                    ops += 1;
                }
                Ok(ops)
            })
        })
        .collect();
    (acked, threads)
}

/// What the soak found.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub seconds: f64,
    pub writes: u64,
    pub reads: u64,
    pub syncs: u64,
    pub compactions: u64,
    pub keys_checked: u64,
    pub violations: u64,
    pub first_violations: Vec<String>,
}

/// `wb soak`: writers, a reader validating every value it sees, periodic
/// syncs and compactions, for `seconds`; then close, reopen, and check that
/// every key is exactly at the version last acknowledged.
pub fn soak(seconds: f64, dir: Option<PathBuf>, seed: u64) -> Result<SoakReport, String> {
    let (dir, _temp) = dir_or_temp(dir)?;
    let wb = Arc::new(open(&dir, config()).map_err(|e| e.to_string())?);
    seed_counters(&wb)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, writers) = start_writers(&wb, seed, Some(Arc::clone(&stop)));
    let keys = universe();
    let reader = spawn_reader(&wb, &stop, keys.clone(), seed);
    let start = Instant::now();
    let (mut syncs, mut compactions) = (0u64, 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(50));
        wb.sync().map_err(|e| e.to_string())?;
        syncs += 1;
        if syncs.is_multiple_of(10) {
            wb.compact().map_err(|e| e.to_string())?;
            compactions += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.join().map_err(|_| "writer panicked".to_string())??;
    }
    let (reads, mut violations) = reader.join().map_err(|_| "reader panicked".to_string())?;
    let final_versions: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
    let wb = Arc::into_inner(wb).ok_or("cache still shared")?;
    wb.close().map_err(|e| e.to_string())?;
    violations.extend(check_reopened(&dir, &keys, &final_versions)?);
    Ok(SoakReport {
        seconds: start.elapsed().as_secs_f64(),
        writes,
        reads,
        syncs,
        compactions,
        keys_checked: keys.len() as u64,
        violations: violations.len() as u64,
        first_violations: violations.into_iter().take(10).collect(),
    })
}

/// The soak's reader: random keys until `stop`, each value it sees checked
/// against its version. Returns the reads and the first bad ones.
fn spawn_reader(
    wb: &Arc<WriteBehind>,
    stop: &Arc<AtomicBool>,
    keys: Vec<(Vec<u8>, bool)>,
    seed: u64,
) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    let (wb, stop) = (Arc::clone(wb), Arc::clone(stop));
    std::thread::spawn(move || {
        let (mut reads, mut bad) = (0u64, Vec::new());
        let mut rng = Rng::new(seed ^ 0x5EAD);
        while !stop.load(Ordering::Relaxed) {
            let (key, counter) = &keys[(rng.next_u64() % keys.len() as u64) as usize];
            let v = match wb.get(key) {
                Ok(v) => v,
                Err(e) => {
                    if bad.len() < 10 {
                        bad.push(format!("read {}: {e}", String::from_utf8_lossy(key)));
                    }
                    None
                }
            };
            if let Some(v) = v {
                let ok = if *counter {
                    v.as_counter() == Some(counter_at(key, v.version().0))
                } else {
                    value_is_valid(key, v.version().0, &v)
                };
                if !ok && bad.len() < 10 {
                    bad.push(format!(
                        "read {}: value does not match its version",
                        String::from_utf8_lossy(key)
                    ));
                }
            }
            reads += 1;
        }
        (reads, bad)
    })
}

/// Reopens the store in `dir` and checks every key: a valid value, and
/// exactly the version last acknowledged (`final_versions`).
fn check_reopened(
    dir: &Path,
    keys: &[(Vec<u8>, bool)],
    final_versions: &[u64],
) -> Result<Vec<String>, String> {
    let wb = open(dir, config()).map_err(|e| format!("reopen: {e}"))?;
    let mut max = 0;
    let mut violations = check(&wb, keys, Some(final_versions), None, &mut max);
    for (i, (key, _)) in keys.iter().enumerate() {
        let v = wb.version(key).ok().flatten().map_or(0, |v| v.0);
        // A deleted key takes no entry after the reopen (G12).
        let (last, deleted) = (
            final_versions[i] & !DELETED,
            final_versions[i] & DELETED != 0,
        );
        let expected = if deleted { 0 } else { last };
        if v != expected {
            violations.push(format!(
                "{}: version {v} after reopen, {last} acknowledged{}",
                String::from_utf8_lossy(key),
                if deleted { " (a delete)" } else { "" }
            ));
        }
    }
    wb.close().map_err(|e| e.to_string())?;
    Ok(violations)
}

/// `dir`, or a fresh temporary directory (kept alive by the returned guard).
fn dir_or_temp(dir: Option<PathBuf>) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match dir {
        Some(d) => Ok((d, None)),
        None => {
            let t = tempfile::tempdir().map_err(|e| e.to_string())?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// Writes the synced versions durably: temp file, fsync, rename, fsync dir.
fn write_side(path: &Path, versions: &[u64]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    let text: Vec<String> = versions.iter().map(u64::to_string).collect();
    f.write_all(text.join(" ").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_side(path: &Path) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().map(|t| t.parse().ok()).collect()
}

/// What the crash test found.
#[derive(Debug, Serialize)]
pub struct CrashReport {
    pub cycles: u64,
    pub keys_checked: u64,
    pub torn_tails: u64,
    pub violations: u64,
    pub first_violations: Vec<String>,
    pub syncs_recorded: u64,
    pub max_version_seen: u64,
    pub seconds: f64,
}

/// Runs `cycles` kill -9 cycles on `dir` (a temporary directory if none).
pub fn run(
    cycles: u64,
    dir: Option<PathBuf>,
    seed: u64,
    kill_ms_max: u64,
) -> Result<CrashReport, String> {
    let start = Instant::now();
    let (dir, _temp) = dir_or_temp(dir)?;
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let keys = universe();
    let mut rng = Rng::new(seed);
    let mut report = CrashReport {
        cycles: 0,
        keys_checked: 0,
        torn_tails: 0,
        violations: 0,
        first_violations: Vec::new(),
        syncs_recorded: 0,
        max_version_seen: 0,
        seconds: 0.0,
    };
    {
        let wb = open(&dir, config()).map_err(|e| format!("seeding the counters: {e}"))?;
        seed_counters(&wb)?;
        wb.close().map_err(|e| e.to_string())?;
    }
    let mut last_synced: Option<Vec<u64>> = None;
    for cycle in 0..cycles {
        let child_seed = seed ^ cycle.wrapping_mul(0x9E37_79B9);
        let delay = Duration::from_millis(20 + rng.next_u64() % kill_ms_max.max(1));
        kill_child_after(&exe, &dir, child_seed, delay, cycle)?;
        report.cycles += 1;
        let synced = read_side(&dir.join(SIDE_FILE));
        if synced.is_some() && synced != last_synced {
            report.syncs_recorded += 1;
        }
        check_recovered(&dir, &keys, synced.as_deref(), cycle, &mut report)?;
        last_synced = synced;
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Starts `wb crash-child` on `dir` and kills it (SIGKILL) after `delay`;
/// an error if it could not start or exited on its own before (in cycle
/// `cycle`).
fn kill_child_after(
    exe: &Path,
    dir: &Path,
    seed: u64,
    delay: Duration,
    cycle: u64,
) -> Result<(), String> {
    let mut child = Command::new(exe)
        .arg("crash-child")
        .arg(dir)
        .arg("--seed")
        .arg(seed.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning the child: {e}"))?;
    std::thread::sleep(delay);
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!(
            "cycle {cycle}: the child exited on its own ({status}) before the kill"
        ));
    }
    child.kill().map_err(|e| e.to_string())?; // SIGKILL on Unix
    let _ = child.wait();
    Ok(())
}

/// Reopens `dir` after the kill of cycle `cycle`, checks every key against
/// the last recorded sync, and adds what it found to `report`.
fn check_recovered(
    dir: &Path,
    keys: &[(Vec<u8>, bool)],
    synced: Option<&[u64]>,
    cycle: u64,
    report: &mut CrashReport,
) -> Result<(), String> {
    // The store's own newest record of each key, read as recovery will
    // (a scan that fails shows as a failed reopen just below).
    let mut stored = Newest::new();
    let _ = writebehind::inspect::scan_dir(dir, &mut |_, r| {
        let e = stored.entry(r.key.to_vec()).or_insert((0, r.kind));
        if r.version.0 > e.0 {
            *e = (r.version.0, r.kind);
        }
    });
    let wb = open(dir, config()).map_err(|e| format!("cycle {cycle}: reopen failed: {e}"))?;
    report.torn_tails += wb.stats().torn_tails;
    for msg in check(
        &wb,
        keys,
        synced,
        Some(&stored),
        &mut report.max_version_seen,
    ) {
        report.violations += 1;
        if report.first_violations.len() < 10 {
            report
                .first_violations
                .push(format!("cycle {cycle}: {msg}"));
        }
    }
    report.keys_checked += keys.len() as u64;
    wb.close()
        .map_err(|e| format!("cycle {cycle}: close after check: {e}"))
}

/// Checks every key of the universe in a recovered cache; returns the
/// violations.
fn check(
    wb: &WriteBehind,
    keys: &[(Vec<u8>, bool)],
    synced: Option<&[u64]>,
    stored: Option<&Newest>,
    max_version: &mut u64,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (key, counter)) in keys.iter().enumerate() {
        let name = String::from_utf8_lossy(key).into_owned();
        let (version, value) = match (wb.version(key), wb.get(key)) {
            (Ok(v), Ok(value)) => (v.map_or(0, |v| v.0), value),
            (Err(e), _) | (_, Err(e)) => {
                out.push(format!("{name}: read failed: {e}"));
                continue;
            }
        };
        if let Some(&s) = synced.and_then(|s| s.get(i)) {
            let (s, s_deleted) = (s & !DELETED, s & DELETED != 0);
            // No entry: the key was deleted, then or since (a durable
            // tombstone frees the entry). The store's newest record says
            // which: a delete at or above the synced version, or nothing at
            // all (compaction drops every record of a freed key). Counters
            // are never deleted.
            let deleted_since = match stored.map(|m| m.get(key)) {
                Some(Some(&(v, kind))) => kind == writebehind::Kind::Delete && v >= s,
                Some(None) => !*counter,
                None => false,
            };
            let absent_ok = version == 0 && (s_deleted || deleted_since);
            if version < s && !absent_ok {
                out.push(format!("{name}: recovered version {version} < synced {s}"));
            }
        }
        match (value, counter) {
            (Some(v), true) if v.as_counter() != Some(counter_at(key, version)) => {
                out.push(format!(
                    "{name}: counter {:?} at version {version}, expected {}",
                    v.as_counter(),
                    counter_at(key, version)
                ))
            }
            (Some(v), false) if !value_is_valid(key, version, &v) => out.push(format!(
                "{name}: value at version {version} was never written"
            )),
            (None, true) if version > 0 => {
                out.push(format!("{name}: counter deleted at version {version}"))
            }
            _ => {}
        }
        *max_version = (*max_version).max(version);
    }
    out
}

/// The counter and value checks agree with what a writer produces.
#[cfg(test)]
mod tests {
    use super::*;

    /// The checker finds each kind of violation (so a clean crash-test run
    /// means something).
    #[test]
    fn the_checker_finds_planted_violations() {
        let wb = WriteBehind::with_store(writebehind::MemStore::new(), config()).expect("cache");
        let mut w = wb.writer().expect("writer");
        let keys = vec![
            (b"w0-k00000".to_vec(), false),
            (b"w0-k00001".to_vec(), false),
            (b"w0-c00000".to_vec(), true),
        ];
        w.put(&keys[0].0, &make_value(&keys[0].0, 1)).expect("put");
        let mut max = 0;
        assert!(
            check(&wb, &keys, Some(&[1, 0, 0]), None, &mut max).is_empty(),
            "a clean state passes"
        );
        assert_eq!(
            check(&wb, &keys, Some(&[2, 0, 0]), None, &mut max).len(),
            1,
            "behind the last sync"
        );
        w.put(&keys[1].0, &make_value(&keys[1].0, 5)).expect("put"); // wrong version inside
        w.add(&keys[2].0, delta(&keys[2].0, 1) + 1).expect("add"); // wrong delta
        let found = check(&wb, &keys, None, None, &mut max);
        assert_eq!(found.len(), 2, "{found:?}");
        drop(w);
        wb.close().expect("close");
    }

    #[test]
    fn values_and_counters_validate() {
        let k = b"w0-k00001";
        assert!(value_is_valid(k, 7, &make_value(k, 7)));
        assert!(
            !value_is_valid(k, 6, &make_value(k, 7)),
            "a value from the future"
        );
        // A put after a freed delete lands above the version it expected.
        assert!(value_is_valid(k, 8, &make_value(k, 7)));
        let mut torn = make_value(k, 7);
        torn[9] ^= 1;
        assert!(!value_is_valid(k, 7, &torn));
        assert!(!value_is_valid(b"w0-k00002", 7, &make_value(k, 7)));
        assert_eq!(counter_at(k, 3), delta(k, 1) + delta(k, 2) + delta(k, 3));
    }
}
