//! `wb inspect`, `wb compact`: a store directory from outside (`wb verify`
//! is in `verify.rs`).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use writebehind::inspect::{self as scan, encoded_len, ScanReport};
use writebehind::Kind;
use writebehind::{Config, Error, WriteBehind};

use crate::output::{self, Stop};
use crate::store_dir;
use crate::verify::{scan_stable, ScanFailure};

#[derive(Serialize)]
struct SegmentJson {
    id: u64,
    file: String,
    file_bytes: u64,
    data_end: u64,
    frames: u64,
    records: u64,
    record_bytes: u64,
    version_min: Option<u64>,
    version_max: Option<u64>,
    torn_at: Option<u64>,
    torn_reason: Option<String>,
}

#[derive(Serialize)]
struct InspectJson {
    dir: String,
    segments: Vec<SegmentJson>,
    records: u64,
    record_bytes: u64,
    live_keys: u64,
    deleted_keys: u64,
    live_bytes: u64,
    dead_bytes: u64,
    version_min: Option<u64>,
    version_max: Option<u64>,
    torn_tails: u64,
}

/// Per key: (highest version, encoded bytes of that record, deleted).
type KeyTable = HashMap<Vec<u8>, (u64, u64, bool)>;

/// One full scan of `dir`, with the newest record of every key.
fn scan_keys(dir: &Path) -> Result<(ScanReport, KeyTable), Error> {
    let mut keys = KeyTable::new();
    let report = scan::scan_dir(dir, &mut |_, r| {
        let len = encoded_len(r.key.len(), r.value.len()) as u64;
        let e = keys.entry(r.key.to_vec()).or_insert((0, 0, false));
        if r.version.0 >= e.0 {
            *e = (r.version.0, len, r.kind == Kind::Delete);
        }
    })?;
    Ok((report, keys))
}

/// Scans `dir` (again if it changed under the scan) and summarizes it.
fn summarize(dir: &Path) -> Result<InspectJson, ScanFailure> {
    let (report, keys) = scan_stable(dir, || scan_keys(dir))?;
    let live_keys = keys.values().filter(|k| !k.2).count() as u64;
    let live_bytes: u64 = keys.values().map(|k| k.1).sum();
    let record_bytes = report.record_bytes();
    let segments = report
        .segments
        .iter()
        .map(|s| SegmentJson {
            id: s.id.0,
            file: s.id.file_name(),
            file_bytes: s.file_bytes,
            data_end: s.data_end,
            frames: s.frames,
            records: s.records,
            record_bytes: s.record_bytes,
            version_min: s.versions.map(|v| v.0),
            version_max: s.versions.map(|v| v.1),
            torn_at: s.torn.as_ref().map(|t| t.0),
            torn_reason: s.torn.as_ref().map(|t| t.1.clone()),
        })
        .collect::<Vec<_>>();
    Ok(InspectJson {
        dir: dir.display().to_string(),
        version_min: segments.iter().filter_map(|s| s.version_min).min(),
        version_max: segments.iter().filter_map(|s| s.version_max).max(),
        segments,
        records: report.records(),
        // record_bytes counts frame payloads, which are exactly records
        record_bytes,
        live_keys,
        deleted_keys: keys.len() as u64 - live_keys,
        live_bytes,
        dead_bytes: record_bytes.saturating_sub(live_bytes),
        torn_tails: report.torn_tails(),
    })
}

/// `wb inspect DIR`. Exit 1 on corruption, 2 if the store cannot be read.
pub fn inspect(dir: &Path, json: bool) -> Result<(), Stop> {
    let s = summarize(dir).map_err(|f| match f {
        ScanFailure::Corrupt { message, .. } => Stop::Failed(message),
        ScanFailure::CannotCheck(why) => Stop::CannotUse(format!("cannot inspect {why}")),
    })?;
    if json {
        return output::json_pretty(&s);
    }
    output::line(format_args!(
        "{}: {} segments, {} records ({} bytes)",
        s.dir,
        s.segments.len(),
        s.records,
        s.record_bytes
    ))?;
    output::line(format_args!(
        "  live keys {}, deleted keys {}, live bytes {}, dead bytes {}",
        s.live_keys, s.deleted_keys, s.live_bytes, s.dead_bytes
    ))?;
    output::line(format_args!(
        "  versions {}, torn tails {}",
        versions(s.version_min, s.version_max),
        s.torn_tails
    ))?;
    output::line(format_args!(
        "  {:<10} {:>12} {:>12} {:>8} {:>10} {:>12}  versions",
        "segment", "file bytes", "data end", "frames", "records", "rec bytes"
    ))?;
    for g in &s.segments {
        output::line(segment_line(g))?;
    }
    Ok(())
}

/// A range of versions as `1..=962`, or `none` when no record has one.
fn versions(min: Option<u64>, max: Option<u64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("{a}..={b}"),
        _ => "none".into(),
    }
}

/// One segment's row of `wb inspect`.
fn segment_line(g: &SegmentJson) -> String {
    format!(
        "  {:<10} {:>12} {:>12} {:>8} {:>10} {:>12}  {}{}",
        g.file,
        g.file_bytes,
        g.data_end,
        g.frames,
        g.records,
        g.record_bytes,
        versions(g.version_min, g.version_max),
        g.torn_at
            .map(|t| format!(
                "  torn tail at {t}: {}",
                g.torn_reason.clone().unwrap_or_default()
            ))
            .unwrap_or_default()
    )
}

#[derive(Serialize)]
struct CompactJson {
    dir: String,
    segments_before: u64,
    segments_after: u64,
    bytes_before: u64,
    bytes_after: u64,
    live_keys: usize,
}

/// `wb compact DIR`: open, compact, close. Exit 2, creating nothing, if
/// `dir` is not a store.
pub fn compact(dir: &Path, json: bool) -> Result<(), Stop> {
    store_dir::check(dir).map_err(|p| Stop::CannotUse(format!("cannot compact {p}")))?;
    let config = Config::default().keys_max(1 << 26).dirty_keys_max(1 << 20);
    let wb = WriteBehind::open(dir, config)
        .map_err(|e| format!("opening the store {}: {e}", dir.display()))?;
    // sync() returns after the flusher has published its counters.
    wb.sync().map_err(|e| e.to_string())?;
    let before = wb.stats();
    wb.compact().map_err(|e| e.to_string())?;
    let after = wb.stats();
    wb.close().map_err(|e| e.to_string())?;
    let out = CompactJson {
        dir: dir.display().to_string(),
        segments_before: before.segments,
        segments_after: after.segments,
        bytes_before: before.stored_bytes,
        bytes_after: after.stored_bytes,
        live_keys: after.keys,
    };
    if json {
        return output::json_pretty(&out);
    }
    output::line(format_args!(
        "compacted {}: {} -> {} segments, {} -> {} record bytes, {} keys",
        out.dir,
        out.segments_before,
        out.segments_after,
        out.bytes_before,
        out.bytes_after,
        out.live_keys
    ))
}
