//! `wb inspect`, `wb verify`, `wb compact`: a store directory from outside.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use writebehind::file::scan::{self, ScanReport};
use writebehind::record::Kind;
use writebehind::{Config, Error, WriteBehind};

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

/// Scans `dir` and summarizes it; the error is the scan's (corruption).
fn summarize(dir: &Path) -> Result<InspectJson, Error> {
    // key -> (highest version, encoded bytes of that record, deleted)
    let mut keys: HashMap<Vec<u8>, (u64, u64, bool)> = HashMap::new();
    let report: ScanReport = scan::scan_dir(dir, &mut |_, r| {
        let len = writebehind::record::encoded_len(r.key.len(), r.value.len()) as u64;
        let e = keys.entry(r.key.to_vec()).or_insert((0, 0, false));
        if r.version.0 >= e.0 {
            *e = (r.version.0, len, r.kind == Kind::Delete);
        }
    })?;
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

fn print_json(value: &impl Serialize) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `wb inspect DIR`.
pub fn inspect(dir: &Path, json: bool) -> Result<(), String> {
    let s = summarize(dir).map_err(|e| e.to_string())?;
    if json {
        return print_json(&s);
    }
    println!(
        "{}: {} segments, {} records ({} bytes)",
        s.dir,
        s.segments.len(),
        s.records,
        s.record_bytes
    );
    println!(
        "  live keys {}, deleted keys {}, live bytes {}, dead bytes {}",
        s.live_keys, s.deleted_keys, s.live_bytes, s.dead_bytes
    );
    println!(
        "  versions {:?}..={:?}, torn tails {}",
        s.version_min, s.version_max, s.torn_tails
    );
    println!(
        "  {:<10} {:>12} {:>12} {:>8} {:>10} {:>12}  versions",
        "segment", "file bytes", "data end", "frames", "records", "rec bytes"
    );
    for g in &s.segments {
        println!(
            "  {:<10} {:>12} {:>12} {:>8} {:>10} {:>12}  {:?}..={:?}{}",
            g.file,
            g.file_bytes,
            g.data_end,
            g.frames,
            g.records,
            g.record_bytes,
            g.version_min,
            g.version_max,
            g.torn_at
                .map(|t| format!(
                    "  torn tail at {t}: {}",
                    g.torn_reason.clone().unwrap_or_default()
                ))
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct VerifyJson {
    ok: bool,
    dir: String,
    records: u64,
    segments: usize,
    torn_tails: u64,
    error: Option<String>,
    segment: Option<u64>,
    offset: Option<u64>,
}

/// `wb verify DIR`: every record's checksum; false on corruption.
pub fn verify(dir: &Path, json: bool) -> Result<bool, String> {
    let result = scan::scan_dir(dir, &mut |_, _| {});
    let out = match &result {
        Ok(r) => VerifyJson {
            ok: true,
            dir: dir.display().to_string(),
            records: r.records(),
            segments: r.segments.len(),
            torn_tails: r.torn_tails(),
            error: None,
            segment: None,
            offset: None,
        },
        Err(e) => {
            let (segment, offset) = match e {
                Error::Corrupt {
                    segment, offset, ..
                } => (Some(*segment), Some(*offset)),
                _ => (None, None),
            };
            VerifyJson {
                ok: false,
                dir: dir.display().to_string(),
                records: 0,
                segments: 0,
                torn_tails: 0,
                error: Some(e.to_string()),
                segment,
                offset,
            }
        }
    };
    if json {
        print_json(&out)?;
    } else if out.ok {
        println!(
            "ok: {} records in {} segments verified{}",
            out.records,
            out.segments,
            if out.torn_tails > 0 {
                " (a torn tail in the newest segment: a crash mid-write, cut at open)"
            } else {
                ""
            }
        );
    } else {
        println!("CORRUPT: {}", out.error.clone().unwrap_or_default());
    }
    Ok(out.ok)
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

/// `wb compact DIR`: open, compact, close.
pub fn compact(dir: &Path, json: bool) -> Result<(), String> {
    let config = Config {
        keys_max: 1 << 26,
        dirty_keys_max: 1 << 20,
        ..Config::default()
    };
    let wb = WriteBehind::open(dir, config).map_err(|e| e.to_string())?;
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
        return print_json(&out);
    }
    println!(
        "compacted {}: {} -> {} segments, {} -> {} record bytes, {} keys",
        out.dir,
        out.segments_before,
        out.segments_after,
        out.bytes_before,
        out.bytes_after,
        out.live_keys
    );
    Ok(())
}
