//! The file store over its lifetime: three problems of issue 11, measured
//! through the public API only, so the same program runs before and after
//! the fixes. It measures and prints; it asserts nothing about time.
//!
//! - `compaction-stall` (item 6): a store of ~2,000 small segments is
//!   compacted while one thread keeps putting and another syncs every 10 ms:
//!   how long did the slowest put and the slowest `sync()` wait?
//! - `restarts` (item 8): open, write 10 keys, sync, close, ten times on one
//!   directory with the default `Config`: segment files, disk usage and open
//!   time after each run.
//! - `big-segment` (item 9): a 2 GiB `segment_bytes_max` holding one 2-byte
//!   value: open time and peak RSS growth of a reopen (in a child process, so
//!   the writer's memory does not count), after a clean close and after a
//!   crash (the writer killed with SIGKILL after `sync()`).
//!
//! Run: `cargo bench -p writebehind-benches --bench store_lifecycle --
//! [--case compaction-stall|restarts|big-segment] [--quick] [--json]`.
//! `--quick`: 200 segments, 3 restarts, a 256 MiB segment.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use writebehind::{Config, FileOptions, WriteBehind};
use writebehind_workload::{new_histogram, peak_rss_bytes};

/// A cache of `config` over a file store in `dir` with segments of
/// `segment_bytes`.
fn open(dir: &Path, config: Config, segment_bytes: u64) -> WriteBehind {
    let file = FileOptions::for_cache(&config).segment_bytes_max(segment_bytes);
    WriteBehind::open_with(dir, &file, config).expect("open")
}

const MIB: u64 = 1 << 20;
const CASES: [&str; 3] = ["compaction-stall", "restarts", "big-segment"];

/// One measured figure: name, value, unit.
struct Figure {
    name: String,
    value: f64,
    decimals: usize,
    unit: &'static str,
}

/// What one case measured.
struct Report {
    case: &'static str,
    notes: Vec<String>,
    figures: Vec<Figure>,
}

impl Report {
    fn new(case: &'static str) -> Self {
        Self {
            case,
            notes: Vec::new(),
            figures: Vec::new(),
        }
    }

    fn add(&mut self, name: impl Into<String>, value: f64, decimals: usize, unit: &'static str) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            decimals,
            unit,
        });
    }

    fn count(&mut self, name: impl Into<String>, value: u64, unit: &'static str) {
        self.add(name, value as f64, 0, unit);
    }

    fn ms(&mut self, name: impl Into<String>, d: Duration) {
        self.add(name, d.as_secs_f64() * 1e3, 2, "ms");
    }

    fn us(&mut self, name: impl Into<String>, d: Duration) {
        self.add(name, d.as_secs_f64() * 1e6, 1, "us");
    }

    fn mib(&mut self, name: impl Into<String>, bytes: u64) {
        self.add(name, bytes as f64 / MIB as f64, 1, "MiB");
    }

    fn print_table(&self) {
        println!("\n== {} ==", self.case);
        for note in &self.notes {
            println!("  # {note}");
        }
        let width = self.figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in &self.figures {
            println!(
                "  {:<width$}  {:>12.*} {}",
                f.name, f.decimals, f.value, f.unit
            );
        }
    }

    fn print_json(&self) {
        let figures: Vec<serde_json::Value> = self
            .figures
            .iter()
            .map(|f| serde_json::json!({ "name": f.name, "value": f.value, "unit": f.unit }))
            .collect();
        let line = serde_json::json!({
            "case": self.case,
            "notes": self.notes,
            "figures": figures,
        });
        println!("{line}");
    }
}

struct Args {
    cases: Vec<&'static str>,
    quick: bool,
    json: bool,
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = child_main(&argv) {
        std::process::exit(code);
    }
    let args = parse_args(&argv);
    println!("{}", machine_note());
    for case in &args.cases {
        let report = match *case {
            "compaction-stall" => compaction_stall(args.quick),
            "restarts" => restarts(args.quick),
            _ => big_segment(args.quick),
        };
        report.print_table();
        if args.json {
            report.print_json();
        }
    }
}

fn parse_args(argv: &[String]) -> Args {
    let mut args = Args {
        cases: CASES.to_vec(),
        quick: false,
        json: false,
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = true,
            "--bench" => {} // cargo bench passes it
            "--case" => {
                let name = it.next().map(String::as_str).unwrap_or("");
                match CASES.iter().find(|c| **c == name) {
                    Some(c) => args.cases = vec![c],
                    None => usage(&format!("unknown case {name:?}")),
                }
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    args
}

fn usage(msg: &str) -> ! {
    eprintln!("store_lifecycle: {msg}");
    eprintln!(
        "usage: store_lifecycle [--case {}] [--quick] [--json]",
        CASES.join("|")
    );
    std::process::exit(2)
}

/// Load and cores when the run started (the machine is shared).
fn machine_note() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!("# cores: {cores}; /proc/loadavg at start: {}", load.trim())
}

// ---------------------------------------------------------------- case 1

/// Value size of every put in `compaction-stall`.
const STALL_VALUE_BYTES: usize = 200;
/// Puts between two syncs while building: 16 records of 228 bytes fill
/// most of a 4096-byte segment, so the next batch rotates.
const PUTS_PER_SYNC: u64 = 16;

fn stall_config() -> Config {
    Config::default()
        .key_bytes_max(64)
        .value_bytes_max(256)
        // Only the explicit compact() runs.
        .compact_segments_min(usize::MAX)
}

fn compaction_stall(quick: bool) -> Report {
    let target = if quick { 200 } else { 2000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let wb = Arc::new(open(dir.path(), stall_config(), 4096));
    let mut report = Report::new("compaction-stall");
    report.notes.push(format!(
        "segment_bytes_max 4096 B, {STALL_VALUE_BYTES} B values, 8 B keys, {PUTS_PER_SYNC} puts per sync while building; \
         during the compaction one writer puts in bursts of 64 every 1 ms and one thread syncs every 10 ms"
    ));
    let (keys, build) = build_segments(&wb, target);
    let before = wb.stats().segments;
    report.count("keys written", keys, "keys");
    report.ms("time to build the segments", build);
    report.count("segments before", before, "segments");
    let load = run_compaction_under_load(&wb, keys);
    report.count("segments 300 ms later", wb.stats().segments, "segments");
    load.report(&mut report);
    let wb = Arc::into_inner(wb).expect("sole owner");
    wb.close().expect("close");
    report
}

/// Writes distinct keys, syncing every `PUTS_PER_SYNC`, until the store has
/// `target` segments. Returns the keys written and the time it took.
fn build_segments(wb: &WriteBehind, target: u64) -> (u64, Duration) {
    let start = Instant::now();
    let mut w = wb.writer().expect("writer");
    let value = [b'v'; STALL_VALUE_BYTES];
    let mut keys = 0u64;
    while wb.stats().segments < target {
        for _ in 0..PUTS_PER_SYNC {
            w.put(&keys.to_be_bytes(), &value).expect("put");
            keys += 1;
        }
        wb.sync().expect("sync");
    }
    (keys, start.elapsed())
}

/// What the background threads saw around one `compact()`.
struct LoadResult {
    compact: Duration,
    segments_after: u64,
    puts: Histogram<u64>,
    sync_max: Duration,
    syncs_total: u64,
    puts_during: u64,
    syncs_during: u64,
}

impl LoadResult {
    fn report(&self, r: &mut Report) {
        let ns = |v: u64| Duration::from_nanos(v);
        r.count(
            "segments when compact() returned",
            self.segments_after,
            "segments",
        );
        r.ms("compaction wall time (compact())", self.compact);
        r.ms("slowest put", ns(self.puts.max()));
        r.us("p99.9 put", ns(self.puts.value_at_quantile(0.999)));
        r.us("p99 put", ns(self.puts.value_at_quantile(0.99)));
        r.us("median put", ns(self.puts.value_at_quantile(0.5)));
        r.ms("slowest sync", self.sync_max);
        r.count(
            "puts measured (300 ms + compact() + 300 ms)",
            self.puts.len(),
            "puts",
        );
        r.count("syncs measured (same window)", self.syncs_total, "syncs");
        r.count("puts completed during compact()", self.puts_during, "puts");
        r.count(
            "syncs completed during compact()",
            self.syncs_during,
            "syncs",
        );
    }
}

/// Shared by the main thread and the two load threads.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    puts: AtomicU64,
    syncs: AtomicU64,
}

/// Starts the writer and the syncer, waits 300 ms, compacts, waits 300 ms.
fn run_compaction_under_load(wb: &Arc<WriteBehind>, keys: u64) -> LoadResult {
    let load = Arc::new(Load::default());
    let writer = spawn_putter(Arc::clone(wb), Arc::clone(&load), keys);
    let syncer = spawn_syncer(Arc::clone(wb), Arc::clone(&load));
    thread::sleep(Duration::from_millis(300));
    let (p0, s0) = (
        load.puts.load(Ordering::Relaxed),
        load.syncs.load(Ordering::Relaxed),
    );
    let start = Instant::now();
    wb.compact().expect("compact");
    let compact = start.elapsed();
    let segments_after = wb.stats().segments;
    let (p1, s1) = (
        load.puts.load(Ordering::Relaxed),
        load.syncs.load(Ordering::Relaxed),
    );
    thread::sleep(Duration::from_millis(300));
    load.stop.store(true, Ordering::Relaxed);
    let puts = writer.join().expect("writer thread");
    let (sync_max, syncs_total) = syncer.join().expect("sync thread");
    LoadResult {
        compact,
        segments_after,
        puts,
        sync_max,
        syncs_total,
        puts_during: p1 - p0,
        syncs_during: s1 - s0,
    }
}

/// Overwrites the existing keys in bursts of 64 puts every 1 ms, timing
/// each put.
fn spawn_putter(
    wb: Arc<WriteBehind>,
    load: Arc<Load>,
    keys: u64,
) -> thread::JoinHandle<Histogram<u64>> {
    thread::spawn(move || {
        let mut w = wb.writer().expect("writer");
        let mut hist = new_histogram();
        let value = [b'w'; STALL_VALUE_BYTES];
        let mut i = 0u64;
        while !load.stop.load(Ordering::Relaxed) {
            for _ in 0..64 {
                let t = Instant::now();
                w.put(&(i % keys).to_be_bytes(), &value).expect("put");
                hist.saturating_record(t.elapsed().as_nanos() as u64);
                load.puts.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            thread::sleep(Duration::from_millis(1));
        }
        hist
    })
}

/// Calls `sync()` every 10 ms; returns the slowest and how many ran.
fn spawn_syncer(wb: Arc<WriteBehind>, load: Arc<Load>) -> thread::JoinHandle<(Duration, u64)> {
    thread::spawn(move || {
        let (mut max, mut n) = (Duration::ZERO, 0);
        while !load.stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            wb.sync().expect("sync");
            max = max.max(t.elapsed());
            n += 1;
            load.syncs.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(10));
        }
        (max, n)
    })
}

// ---------------------------------------------------------------- case 2

/// Segment files, apparent bytes and allocated bytes of a store directory.
struct DirUsage {
    segments: u64,
    apparent: u64,
    allocated: u64,
}

fn dir_usage(dir: &Path) -> DirUsage {
    use std::os::unix::fs::MetadataExt;
    let mut u = DirUsage {
        segments: 0,
        apparent: 0,
        allocated: 0,
    };
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let meta = entry.metadata().expect("metadata");
        if entry.path().extension().is_some_and(|e| e == "wb") {
            u.segments += 1;
        }
        u.apparent += meta.len();
        u.allocated += meta.blocks() * 512;
    }
    u
}

fn restarts(quick: bool) -> Report {
    let runs = if quick { 3 } else { 10 };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut report = Report::new("restarts");
    report.notes.push(format!(
        "{runs} runs of open -> put 10 keys -> sync -> close on one directory, Config::default() (segment_bytes_max {} MiB)",
        FileOptions::default().segment_bytes_max / MIB
    ));
    for run in 1..=runs {
        let open = restart_once(dir.path(), run);
        let u = dir_usage(dir.path());
        report.ms(format!("run {run:2}: open time"), open);
        report.count(
            format!("run {run:2}: segment files after"),
            u.segments,
            "files",
        );
        report.mib(
            format!("run {run:2}: dir size on disk (blocks)"),
            u.allocated,
        );
        report.mib(format!("run {run:2}: dir apparent size"), u.apparent);
    }
    report
}

/// One open/write/sync/close cycle; returns how long the open took.
fn restart_once(dir: &Path, run: u64) -> Duration {
    let start = Instant::now();
    let wb = WriteBehind::open(dir, Config::default()).expect("open");
    let open = start.elapsed();
    let mut w = wb.writer().expect("writer");
    for k in 0..10u64 {
        w.put(format!("run{run}-key{k}").as_bytes(), b"value")
            .expect("put");
    }
    wb.sync().expect("sync");
    drop(w);
    wb.close().expect("close");
    open
}

// ---------------------------------------------------------------- case 3

/// Child modes: `--open-only DIR SEGMENT_BYTES` opens and closes the store,
/// printing what it measured; `--write-then-hang DIR SEGMENT_BYTES` writes
/// one value, syncs, says so and waits to be killed (SIGKILL: no close).
fn child_main(argv: &[String]) -> Option<i32> {
    let mode = argv.first()?.as_str();
    if mode != "--open-only" && mode != "--write-then-hang" {
        return None;
    }
    let dir = PathBuf::from(argv.get(1)?);
    let seg: u64 = argv.get(2)?.parse().ok()?;
    if mode == "--open-only" {
        open_only(&dir, seg);
    } else {
        let _wb = write_one(&dir, seg);
        println!("synced");
        // The parent kills us; should it die first, give up eventually.
        thread::sleep(Duration::from_secs(120));
        return Some(1);
    }
    Some(0)
}

/// Peak resident set size of this process so far, KiB.
fn vm_hwm_kib() -> u64 {
    peak_rss_bytes() / 1024
}

fn open_only(dir: &Path, segment_bytes: u64) {
    let hwm_before = vm_hwm_kib();
    let start = Instant::now();
    let wb = open(dir, Config::default(), segment_bytes);
    let open = start.elapsed();
    let hwm_after = vm_hwm_kib();
    let found = wb.get(b"k").expect("read").is_some();
    wb.close().expect("close");
    println!(
        "open_ns={} hwm_before_kib={hwm_before} hwm_after_kib={hwm_after} found={found}",
        open.as_nanos()
    );
}

fn write_one(dir: &Path, segment_bytes: u64) -> WriteBehind {
    let wb = open(dir, Config::default(), segment_bytes);
    let mut w = wb.writer().expect("writer");
    w.put(b"k", b"v2").expect("put");
    wb.sync().expect("sync");
    drop(w);
    wb
}

/// A child process of this binary in one of the `child_main` modes.
fn child(mode: &str, dir: &Path, seg: u64) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.arg(mode).arg(dir).arg(seg.to_string());
    cmd
}

/// What a reopen in a child measured.
struct Reopen {
    open: Duration,
    rss_growth_kib: u64,
    rss_peak_kib: u64,
    found: bool,
}

fn reopen_in_child(dir: &Path, seg: u64) -> Reopen {
    let out = child("--open-only", dir, seg)
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn --open-only");
    assert!(out.status.success(), "--open-only failed: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> String {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    };
    let num = |name: &str| field(name).parse::<u64>().unwrap_or(0);
    Reopen {
        open: Duration::from_nanos(num("open_ns")),
        rss_growth_kib: num("hwm_after_kib").saturating_sub(num("hwm_before_kib")),
        rss_peak_kib: num("hwm_after_kib"),
        found: field("found") == "true",
    }
}

/// Writes in a child, kills it (SIGKILL) once it has synced.
fn crash_writer(dir: &Path, seg: u64) {
    let mut c = child("--write-then-hang", dir, seg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn --write-then-hang");
    let stdout = c.stdout.take().expect("child stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read child");
    assert_eq!(line.trim(), "synced", "child did not sync");
    c.kill().expect("kill child");
    c.wait().expect("wait child");
}

/// 2 GiB, or less when /tmp has under 6 GiB free (and 256 MiB with
/// `--quick`); refused sizes fall back to the largest `validate` accepts.
fn big_segment_bytes(quick: bool, dir: &Path, notes: &mut Vec<String>) -> u64 {
    let want: u64 = if quick { 256 * MIB } else { 2 << 30 };
    let free = free_bytes(dir);
    let mut seg = want;
    if free < 6 << 30 {
        seg = (free / 4).min(want).max(4096) & !4095;
        notes.push(format!(
            "only {} MiB free: segment_bytes_max lowered to {} MiB",
            free / MIB,
            seg / MIB
        ));
    }
    let accepted = |s: u64| {
        FileOptions::default()
            .segment_bytes_max(s)
            .validate()
            .is_ok()
    };
    if !accepted(seg) {
        notes.push(format!(
            "validate() refuses segment_bytes_max = {seg}: using 2^40"
        ));
        seg = 1 << 40;
    }
    seg
}

/// Free bytes of the filesystem holding `dir` (from `df`, to stay in std).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .arg("-B1")
        .arg("--output=avail")
        .arg(dir)
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().nth(1).and_then(|l| l.trim().parse().ok()))
        .unwrap_or(u64::MAX)
}

fn big_segment(quick: bool) -> Report {
    let mut report = Report::new("big-segment");
    let clean = tempfile::tempdir().expect("tempdir");
    let seg = big_segment_bytes(quick, clean.path(), &mut report.notes);
    report.notes.push(format!(
        "segment_bytes_max {} MiB, one 2-byte value; each reopen runs in a child process (peak RSS = its VmHWM)",
        seg / MIB
    ));
    let start = Instant::now();
    write_one(clean.path(), seg).close().expect("close");
    report.ms("write + sync + close (in process)", start.elapsed());
    reopen_figures(&mut report, "after close", clean.path(), seg);
    drop(clean);
    let crashed = tempfile::tempdir().expect("tempdir");
    crash_writer(crashed.path(), seg);
    reopen_figures(&mut report, "after crash", crashed.path(), seg);
    report
}

fn reopen_figures(report: &mut Report, when: &str, dir: &Path, seg: u64) {
    let u = dir_usage(dir);
    report.mib(format!("{when}: dir size on disk (blocks)"), u.allocated);
    report.mib(format!("{when}: dir apparent size"), u.apparent);
    let r = reopen_in_child(dir, seg);
    report.ms(format!("{when}: reopen time"), r.open);
    report.mib(
        format!("{when}: peak RSS growth during open"),
        r.rss_growth_kib * 1024,
    );
    report.mib(format!("{when}: child peak RSS"), r.rss_peak_kib * 1024);
    if !r.found {
        report
            .notes
            .push(format!("{when}: the reopened store did not have the key"));
    }
}
