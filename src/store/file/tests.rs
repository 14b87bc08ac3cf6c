//! Unit tests of the file store that need exact control of its chains: an
//! engine that runs each chain as soon as it is submitted (pwrite +
//! fdatasync, on the calling thread) and hands it back at the next poll, so
//! a test decides what is in flight together.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use super::disk::SYNCS_ON_THIS_THREAD;
use super::format::{
    FrameHeader, SegmentHeader, FRAME_FLAG_COMMIT, FRAME_FLAG_SYNC, FRAME_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};
use super::io::{run_blocking, Chain, Engine};
use super::*;
use crate::record;
use crate::store::Compaction;
use crate::version::{Kind, Version};

#[derive(Debug, Default)]
struct Immediate {
    done: Option<Chain>,
}

impl Engine for Immediate {
    fn name(&self) -> &'static str {
        "immediate"
    }

    fn submit(&mut self, mut chain: Chain) {
        run_blocking(&mut chain);
        self.done = Some(chain);
    }

    fn wait(&mut self, _timeout: Duration) -> Option<Chain> {
        self.done.take()
    }
}

fn store(dir: &Path, config: &FileOptions) -> FileStore {
    let lock = DirLock::acquire(dir).unwrap();
    let mut s =
        FileStore::with_engine(dir.to_path_buf(), lock, Box::<Immediate>::default(), config)
            .unwrap();
    s.recover(&mut |_| {}).unwrap();
    s
}

fn batch(seq: u64, key: &[u8], sync: bool) -> Batch {
    let mut bytes = Vec::new();
    record::encode(&mut bytes, Kind::Put, Version(seq), key, &[7u8; 100]);
    Batch {
        seq: crate::store::BatchSeq(seq),
        bytes,
        records: 1,
        sync,
    }
}

fn poll(s: &mut FileStore) -> Vec<u64> {
    let mut out = Vec::new();
    s.poll(&mut out, Duration::ZERO);
    out.iter().map(|c| c.batch.seq.0).collect()
}

fn keys_recovered(dir: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let mut keys = Vec::new();
    scan::scan_dir(dir, &mut |_, r| keys.push(r.key.to_vec()))?;
    Ok(keys)
}

/// Issue item: under `Durability::Deferred` a chain can hold a frame with an
/// fdatasync (a `sync()` barrier) followed by frames without one; the commit
/// marker at the head of the next chain must vouch only for what that
/// fdatasync covered. On disk: b1 b2(sync) b3 b4 | commit b5. A power cut
/// that damages b3 and keeps the marker is a torn tail, not corruption.
#[test]
fn a_commit_marker_vouches_only_for_what_its_fdatasync_covered() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileOptions::default().durability(Durability::Deferred);
    let mut s = store(dir.path(), &config);
    s.submit(batch(1, b"b1", false));
    for (seq, key, sync) in [(2, b"b2", true), (3, b"b3", false), (4, b"b4", false)] {
        s.submit(batch(seq, key, sync));
    }
    assert_eq!(poll(&mut s), Vec::<u64>::new(), "b1 waits for an fdatasync");
    s.submit(batch(5, b"b5", false));
    assert_eq!(poll(&mut s), vec![1, 2], "b2's fdatasync covers b1 and b2");
    let seg = SegmentId(1).path(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    // Walk the frames: b1 b2 b3 b4 commit b5.
    let mut frames = Vec::new();
    let mut pos = SEGMENT_HEADER_BYTES;
    while let Some(f) = FrameHeader::decode(&bytes[pos..], header.frame_at(pos as u64)) {
        frames.push((pos, f));
        pos += FRAME_HEADER_BYTES + f.len as usize;
    }
    let flags: Vec<u16> = frames.iter().map(|(_, f)| f.flags).collect();
    assert_eq!(flags, [0, FRAME_FLAG_SYNC, 0, 0, FRAME_FLAG_COMMIT, 0]);
    let (b3, _) = frames[2];
    let (b4, _) = frames[3];
    assert_eq!(
        frames[4].1.durable_end, b3 as u64,
        "the marker reaches b2's end"
    );
    drop(s);
    // The power cut: b3's last bytes never reached the disk.
    let mut torn = bytes.clone();
    torn[b4 - 10..b4].fill(0);
    std::fs::write(&seg, &torn).unwrap();
    let keys = keys_recovered(dir.path()).unwrap();
    assert_eq!(keys, [b"b1".to_vec(), b"b2".to_vec()]);
}

/// Under `Durability::Batch` every frame is written behind the previous
/// frame's fdatasync, so a damaged frame followed by another is corruption.
#[test]
fn under_batch_a_damaged_frame_before_another_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path(), &FileOptions::default());
    for seq in 1..=3 {
        s.submit(batch(seq, format!("k{seq}").as_bytes(), false));
        assert_eq!(poll(&mut s), vec![seq]);
    }
    drop(s);
    let seg = SegmentId(1).path(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES + record::encoded_len(2, 100);
    bytes[second + 40] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    match keys_recovered(dir.path()) {
        Err(Error::Corrupt { segment: 1, .. }) => {}
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// Finishing a compaction hands the old segments to the reaper and returns:
/// the store goes on writing while they are still being removed (on the
/// flusher thread, 2,000 unlinks and directory fsyncs stalled every put and
/// `sync()` for seconds). Removal is oldest first, and close waits for it.
#[test]
fn finishing_a_compaction_does_not_wait_for_the_removals() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileOptions::default().segment_bytes_max(4096);
    let mut s = store(dir.path(), &config);
    for seq in 1..=200 {
        s.submit(batch(seq, format!("k{seq}").as_bytes(), false));
        assert_eq!(poll(&mut s), vec![seq]);
    }
    let before = scan::list_segments(dir.path()).unwrap();
    assert!(before.len() >= 5, "{before:?}");
    s.reaper.pause(true);
    let cutoff = Compaction::begin(&mut s, true).unwrap();
    s.submit(batch(201, b"compacted", false));
    assert_eq!(poll(&mut s), vec![201]);
    Compaction::finish(&mut s, cutoff, crate::version::Version(300)).unwrap();
    // Returned with every old segment still there; writing goes on.
    let during = scan::list_segments(dir.path()).unwrap();
    assert!(before.iter().all(|id| during.contains(id)), "{during:?}");
    s.submit(batch(202, b"after", false));
    assert_eq!(poll(&mut s), vec![202]);
    s.reaper.pause(false);
    s.close().unwrap();
    let after = scan::list_segments(dir.path()).unwrap();
    assert!(after.iter().all(|id| id.0 > cutoff.0), "{after:?}");
}

/// An engine that performs a chain's writes and is then killed (kill -9)
/// before any fdatasync: the chain never completes.
#[derive(Debug, Default)]
struct WritesOnly;

impl Engine for WritesOnly {
    fn name(&self) -> &'static str {
        "writes-only"
    }

    fn submit(&mut self, mut chain: Chain) {
        for op in chain.iter_mut() {
            op.sync = false;
        }
        run_blocking(&mut chain);
    }

    fn wait(&mut self, _timeout: Duration) -> Option<Chain> {
        None
    }
}

/// Recovery makes what it read durable before the next segment seals it: a
/// process killed after a write and before its fdatasync leaves the data in
/// the page cache only, and a power cut after the restart must not find a
/// seal past what the disk holds. (Found by review: with a frame larger than
/// the preallocation, the file ended at the data, was neither trimmed nor
/// synced, and the next open failed with "sealed at N bytes but the file
/// has only 4096".)
#[test]
fn recovery_makes_what_it_read_durable_before_sealing_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileOptions::default().segment_bytes_max(4096);
    {
        let lock = DirLock::acquire(dir.path()).unwrap();
        let engine = Box::new(WritesOnly);
        let mut s =
            FileStore::with_engine(dir.path().to_path_buf(), lock, engine, &config).unwrap();
        s.recover(&mut |_| {}).unwrap();
        let mut bytes = Vec::new();
        for i in 0..60u32 {
            let key = format!("big{i}");
            record::encode(&mut bytes, Kind::Put, Version(1), key.as_bytes(), &[1; 100]);
        }
        s.submit(Batch {
            seq: crate::store::BatchSeq(1),
            bytes,
            records: 60,
            sync: false,
        });
    }
    SYNCS_ON_THIS_THREAD.with(|n| n.set(0));
    let mut s = store(dir.path(), &config);
    let synced_at_recovery = SYNCS_ON_THIS_THREAD.with(|n| n.get());
    s.submit(batch(2, b"k2", false));
    assert_eq!(poll(&mut s), vec![2]);
    drop(s);
    assert!(
        synced_at_recovery > 0,
        "recovery did not fdatasync what it read"
    );
}
