//! `wb verify`, and the scan that it and `wb inspect` run: retried while the
//! store changes under it, its failures sorted into "corrupt" (real damage)
//! and "cannot check" (a bad path, a permission, a newer format, a store
//! that kept changing).
//!
//! The scan only reads: it never takes the store's `LOCK` (a live cache
//! holds it), so it can race a live compaction, which deletes segments the
//! scan has listed but not yet read. A vanished file means "read again",
//! never corruption.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use writebehind::inspect::{self as scan, ScanReport, FORMAT_VERSION};
use writebehind::Error;

use crate::output::{self, Stop};
use crate::store_dir;

/// Full scans tried before giving up on a store that keeps changing.
const SCAN_ATTEMPTS_MAX: u32 = 5;
/// Pause between two scans (lets a compaction finish its deletions).
const SCAN_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Why a scan gave no report.
#[derive(Debug)]
pub enum ScanFailure {
    /// Real damage, at `segment` and `offset`: exit 1.
    Corrupt {
        segment: u64,
        offset: u64,
        message: String,
    },
    /// The store could not be checked: "PATH: why" (exit 2).
    CannotCheck(String),
}

/// What one failed attempt means.
enum Step {
    /// The store changed under the scan: scan again.
    Changed,
    /// Damage at (segment, offset): reported once a second scan finds it
    /// at the same place (a defence against a race not foreseen here;
    /// damage does not move, a race would not repeat exactly).
    Corrupt(u64, u64, String),
    /// The answer.
    Final(ScanFailure),
}

/// Runs `scan` (one full scan of the store `dir`) until its answer is not an
/// artifact of the store changing under it, at most SCAN_ATTEMPTS_MAX times.
pub fn scan_stable<T>(
    dir: &Path,
    mut scan: impl FnMut() -> Result<T, Error>,
) -> Result<T, ScanFailure> {
    store_dir::check(dir).map_err(|p| ScanFailure::CannotCheck(p.to_string()))?;
    let mut corrupt_seen = None;
    for attempt in 0..SCAN_ATTEMPTS_MAX {
        if attempt > 0 {
            std::thread::sleep(SCAN_RETRY_PAUSE);
        }
        let e = match scan() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        match classify(dir, e) {
            Step::Changed => {}
            Step::Corrupt(segment, offset, message) => {
                if corrupt_seen == Some((segment, offset)) {
                    return Err(ScanFailure::Corrupt {
                        segment,
                        offset,
                        message,
                    });
                }
                corrupt_seen = Some((segment, offset));
            }
            Step::Final(f) => return Err(f),
        }
    }
    Err(ScanFailure::CannotCheck(format!(
        "{}: the store changed while it was being read; retry",
        dir.display()
    )))
}

/// Sorts a scan error of the store `dir`.
fn classify(dir: &Path, e: Error) -> Step {
    match e {
        Error::Corrupt {
            segment, offset, ..
        } => Step::Corrupt(segment, offset, e.to_string()),
        Error::Format { path, reason } => {
            Step::Final(ScanFailure::CannotCheck(format_message(&path, &reason)))
        }
        // A file listed, then deleted before it was read (a compaction), or
        // the directory itself gone.
        Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => match store_dir::check(dir) {
            Ok(()) => Step::Changed,
            Err(p) => Step::Final(ScanFailure::CannotCheck(p.to_string())),
        },
        // The library's I/O error does not name the file: find it.
        Error::Io(io) => {
            let (path, io) = store_dir::first_unreadable(dir).unwrap_or((dir.into(), io));
            Step::Final(ScanFailure::CannotCheck(format!(
                "{}: {}",
                path.display(),
                store_dir::describe(&io)
            )))
        }
        e => Step::Final(ScanFailure::CannotCheck(format!("{}: {e}", dir.display()))),
    }
}

/// A file the library cannot read (bad magic, another format version).
/// The version is taken from the library's reason ("... version N ...");
/// without one, the reason is passed on as it is.
fn format_message(path: &Path, reason: &str) -> String {
    let version = reason.split_once("version ").and_then(|(_, rest)| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let age = match version {
        Some(v) if v > FORMAT_VERSION => "a newer",
        Some(v) if v < FORMAT_VERSION => "an older",
        _ => return format!("{}: {reason}", path.display()),
    };
    format!(
        "{}: written by {age} format (version {}); this build reads {FORMAT_VERSION}",
        path.display(),
        version.unwrap_or_default()
    )
}

#[derive(Serialize)]
struct VerifyJson {
    /// "ok", "corrupt" or "cannot_check".
    status: &'static str,
    ok: bool,
    dir: String,
    records: u64,
    segments: usize,
    torn_tails: u64,
    /// What was wrong, naming the path (or segment and offset).
    error: Option<String>,
    segment: Option<u64>,
    offset: Option<u64>,
}

impl VerifyJson {
    fn new(dir: &Path, result: &Result<ScanReport, ScanFailure>) -> Self {
        let mut out = VerifyJson {
            status: "ok",
            ok: true,
            dir: dir.display().to_string(),
            records: 0,
            segments: 0,
            torn_tails: 0,
            error: None,
            segment: None,
            offset: None,
        };
        match result {
            Ok(r) => {
                out.records = r.records();
                out.segments = r.segments.len();
                out.torn_tails = r.torn_tails();
            }
            Err(ScanFailure::Corrupt {
                segment,
                offset,
                message,
            }) => {
                (out.status, out.ok) = ("corrupt", false);
                (out.segment, out.offset) = (Some(*segment), Some(*offset));
                out.error = Some(message.clone());
            }
            Err(ScanFailure::CannotCheck(message)) => {
                (out.status, out.ok) = ("cannot_check", false);
                out.error = Some(message.clone());
            }
        }
        out
    }

    fn text(&self) -> String {
        let error = self.error.as_deref().unwrap_or_default();
        match self.status {
            "ok" => format!(
                "ok: {} records in {} segments verified{}",
                self.records,
                self.segments,
                if self.torn_tails > 0 {
                    " (a torn tail in the newest segment: a crash mid-write, cut at open)"
                } else {
                    ""
                }
            ),
            "corrupt" => format!("CORRUPT: {error}"),
            _ => format!("cannot check {error}"),
        }
    }
}

/// `wb verify DIR`: every record's checksum. Exit 0 ok, 1 corrupt, 2 cannot
/// check (see `wb verify --help`).
pub fn verify(dir: &Path, json: bool) -> Result<(), Stop> {
    let result = scan_stable(dir, || scan::scan_dir(dir, &mut |_, _| {}));
    let out = VerifyJson::new(dir, &result);
    if json {
        output::json_pretty(&out)?;
    } else {
        output::line(out.text())?;
    }
    // The verdict is printed; the status only carries the class.
    match result {
        Ok(_) => Ok(()),
        Err(ScanFailure::Corrupt { .. }) => Err(Stop::Verdict(1)),
        Err(ScanFailure::CannotCheck(_)) => Err(Stop::Verdict(2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_message_names_the_file_and_both_versions() {
        let path = Path::new("/x/000001.wb");
        let newer = format!("unsupported format version 99 (this build reads {FORMAT_VERSION})");
        assert_eq!(
            format_message(path, &newer),
            format!(
                "/x/000001.wb: written by a newer format (version 99); this build reads {FORMAT_VERSION}"
            )
        );
        // Without a version in the reason, the reason is passed on.
        assert_eq!(
            format_message(path, "bad segment magic"),
            "/x/000001.wb: bad segment magic"
        );
    }
}
