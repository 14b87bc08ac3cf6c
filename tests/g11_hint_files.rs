//! G11 (opening without reading values) and G5 over hint files: a cache
//! over the file store opens from the hint files of its sealed segments
//! without reading their records; a hint that is missing, short or damaged
//! is ignored and its segment read (and a new hint written); a bit flipped
//! in a hinted record is an error when the record is read, and at open when
//! hints are not read.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};

use common::small_config;
use writebehind::inspect::list_segments;
use writebehind::{Config, Error, FileOptions, FileStore, Version, WriteBehind};

const KEYS: u64 = 2_000;

fn key(i: u64) -> Vec<u8> {
    format!("hint-key:{i:06}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    format!("value {i:06} {}", "x".repeat(90)).into_bytes()
}

fn config() -> Config {
    small_config().memory_bytes(1 << 20)
}

fn open(dir: &Path, read_hints: bool) -> Result<WriteBehind, Error> {
    let options = FileOptions::for_cache(&config())
        .segment_bytes_max(32 << 10)
        .read_hints(read_hints);
    WriteBehind::with_store(FileStore::open(dir, &options)?, config())
}

/// Every key written once (versions 1), then key 0 again (version 2);
/// closed. Returns the segments' hint paths, oldest first.
fn written(dir: &Path) -> Vec<PathBuf> {
    let wb = open(dir, true).unwrap();
    let mut w = wb.writer().unwrap();
    for i in 0..KEYS {
        w.put(&key(i), &value(i)).unwrap();
        if i % 100 == 99 {
            wb.sync().unwrap();
        }
    }
    w.put(&key(0), b"second").unwrap();
    drop(w);
    wb.close().unwrap();
    let segments = list_segments(dir).unwrap();
    assert!(segments.len() > 5, "{segments:?}");
    segments
        .iter()
        .map(|s| dir.join(s.file_name().replace(".wb", ".hint")))
        .collect()
}

fn assert_all_read_back(wb: &WriteBehind) {
    for i in 1..KEYS {
        let v = wb.get(&key(i)).unwrap().unwrap();
        assert_eq!((&v[..], v.version()), (&value(i)[..], Version(1)), "{i}");
    }
    let v = wb.get(&key(0)).unwrap().unwrap();
    assert_eq!((&v[..], v.version()), (&b"second"[..], Version(2)));
}

/// Flips the first value byte of `key`'s record in segment file `seg`.
fn flip_value_byte(seg: &Path, key: &[u8]) {
    let mut bytes = std::fs::read(seg).unwrap();
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the key is in the segment");
    bytes[at + key.len()] ^= 0x20;
    std::fs::write(seg, &bytes).unwrap();
}

#[test]
fn g11_a_reopen_reads_no_record_of_a_hinted_segment() {
    let dir = tempfile::tempdir().unwrap();
    let hints = written(dir.path());
    for h in &hints {
        assert!(
            h.exists(),
            "{} (every segment, the newest at close)",
            h.display()
        );
    }
    // A hinted segment's record damaged: the open does not read it.
    let oldest = list_segments(dir.path()).unwrap()[0].path(dir.path());
    flip_value_byte(&oldest, &key(5));
    let wb = open(dir.path(), true).unwrap();
    assert_eq!(wb.stats().keys, 0, "opening loads no value");
    // Its read finds the damage: an error naming the segment, no value.
    let err = wb.get(&key(5)).unwrap_err().to_string();
    assert!(err.contains("000001.wb"), "{err}");
    for i in (1..KEYS).filter(|&i| i != 5) {
        assert_eq!(wb.get(&key(i)).unwrap().as_deref(), Some(&value(i)[..]));
    }
    // A key not in memory starts above every version the hints listed
    // (key 0's 2), though no record was visited.
    let mut w = wb.writer().unwrap();
    assert_eq!(w.put(&key(5), b"new").unwrap(), Version(3));
    drop(w);
    wb.close().unwrap();
    // Without hints, the open reads every record and refuses the damage,
    // and changes nothing in the directory (the hints it began are gone).
    let before = files(dir.path());
    match open(dir.path(), false) {
        Err(Error::Corrupt { segment: 1, .. }) => {}
        Err(other) => panic!("expected corruption in segment 1, got {other}"),
        Ok(_) => panic!("expected corruption in segment 1, the open succeeded"),
    }
    assert_eq!(files(dir.path()), before);
}

/// Every file in `dir` but the lock, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().into_string().unwrap(), e.path()))
        .filter(|(name, _)| name != "LOCK")
        .map(|(name, path)| (name, std::fs::read(path).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn g11_a_missing_short_or_damaged_hint_is_ignored_and_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let hints = written(dir.path());
    let stored = |h: &PathBuf| std::fs::read(h).unwrap();
    let (gone, short, flipped, other) = (&hints[0], &hints[1], &hints[2], &hints[3]);
    let original = [stored(gone), stored(short), stored(flipped)];
    std::fs::remove_file(gone).unwrap();
    let s = stored(short);
    std::fs::write(short, &s[..s.len() / 2]).unwrap();
    let mut f = stored(flipped);
    f[40] ^= 1;
    std::fs::write(flipped, &f).unwrap();
    // Another segment's hint in this one's place: another salt.
    std::fs::write(hints[4].clone(), stored(other)).unwrap();

    let wb = open(dir.path(), true).unwrap();
    assert_all_read_back(&wb);
    wb.close().unwrap();
    // The segments read at open got their hints back, the same bytes.
    for (h, was) in [gone, short, flipped].into_iter().zip(&original) {
        assert_eq!(&std::fs::read(h).unwrap(), was, "{}", h.display());
    }
    let wb = open(dir.path(), true).unwrap();
    assert_all_read_back(&wb);
    wb.close().unwrap();
}

/// Deleted keys and compaction over hints: a key deleted in a newer
/// segment than its put stays deleted after a reopen from hints, and a
/// compaction's removed segments take their hints with them.
#[test]
fn g11_deletes_and_compaction_keep_hints_true() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let wb = open(dir.path(), true).unwrap();
    let mut w = wb.writer().unwrap();
    for i in (0..KEYS).step_by(3) {
        w.delete(&key(i)).unwrap();
    }
    drop(w);
    wb.sync().unwrap();
    wb.compact().unwrap();
    wb.close().unwrap();
    let segments: Vec<String> = list_segments(dir.path())
        .unwrap()
        .iter()
        .map(|s| s.file_name().replace(".wb", ".hint"))
        .collect();
    let hints = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".hint"))
            .collect();
        names.sort();
        names
    };
    for name in hints() {
        assert!(segments.contains(&name), "{name} outlived its segment");
    }
    // What a crash can leave (a removed segment's hint whose unlink was
    // lost, an open's unfinished new hint) is swept at the next open;
    // a file not named as hints are is left alone.
    let left = hints();
    for stray in ["000001.hint", "000002.hint.new", "notes.hint.txt"] {
        std::fs::write(dir.path().join(stray), b"left").unwrap();
    }
    drop(open(dir.path(), true).unwrap());
    let mut expected = left.clone();
    expected.push("notes.hint.txt".into());
    expected.sort();
    assert_eq!(hints(), expected);
    let wb = open(dir.path(), true).unwrap();
    for i in 0..KEYS {
        let got = wb.get(&key(i)).unwrap();
        if i % 3 == 0 {
            assert!(got.is_none(), "{i} was deleted");
        } else {
            assert_eq!(got.as_deref(), Some(&value(i)[..]), "{i}");
        }
    }
    wb.close().unwrap();
}
