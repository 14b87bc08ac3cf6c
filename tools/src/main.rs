//! `wb`: the writebehind command-line tool.
//!
//! `wb bench` runs a put workload against the cache (closed loop, or open
//! loop with `--rate`) and reports throughput, latency, coalescing and what
//! reached the store, beside baselines measured in the same run; `wb
//! inspect`, `verify` and `compact` work on a store directory; `wb
//! crash-test` and `wb soak` check the store under kill -9 and load.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use writebehind_workload::Distribution;

mod inspect;
mod output;
mod store_dir;
mod verify;

use output::Stop;

/// The exit statuses, shown by `wb --help`.
const EXIT_STATUS_HELP: &str = "\
Exit status of verify (and inspect): 0 ok; 1 corrupt (real damage found);
2 cannot check (not a store, a permission error, a newer format, or the store
changed while it was read). Other commands: 0 ok, 1 failed, 2 the path is not
a store. A closed stdout (wb inspect DIR | head) ends a command with 0.";

#[derive(Parser, Debug)]
#[command(
    name = "wb",
    version,
    about = "writebehind: bench and inspect a write-behind cache",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Throughput and latency of the cache over a store (closed loop, or open
    /// loop with --rate), beside baselines measured in the same run.
    Bench(Box<BenchArgs>),
    /// Segments, records, live keys, dead bytes and versions of a store directory.
    Inspect(DirArgs),
    /// Check every record of a store directory; name the segment and offset of any damage.
    ///
    /// Reads only (it does not take the store's lock, so it may run beside a
    /// live cache; a scan that a compaction races is retried).
    ///
    /// Exit status: 0 ok; 1 corrupt (real damage found); 2 cannot check (not
    /// a store, a permission error, a newer format, or the store changed
    /// while it was read). --json gives "status": "ok" | "corrupt" |
    /// "cannot_check" and the "error" naming the path.
    Verify(DirArgs),
    /// Compact a store directory (rewrite the live set, drop old segments).
    Compact(DirArgs),
    /// Kill -9 a writing child process at random moments, reopen, check
    /// what was recovered; exit 1 on any violation.
    CrashTest(CrashArgs),
    /// Writes, reads, syncs and compactions together, then reopen and a full
    /// check; exit 1 on any violation.
    Soak {
        /// Seconds of load.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Store directory (default: a fresh temporary directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The writing child of crash-test (runs until killed).
    #[command(hide = true)]
    CrashChild {
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(clap::Args, Debug)]
struct CrashArgs {
    /// Kill/reopen/check cycles.
    #[arg(long, default_value_t = 20)]
    cycles: u64,
    /// Store directory (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Longest wait before each kill, milliseconds (plus 20).
    #[arg(long, default_value_t = 400)]
    kill_ms_max: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct DirArgs {
    /// The store directory.
    dir: std::path::PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Dist {
    Zipf,
    Uniform,
}

/// `Config::durability`.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum DurabilityArg {
    /// Every batch fdatasync'ed before it completes.
    Batch,
    /// Batches written at once; one fdatasync covers several (when the
    /// window fills, at sync(), when idle).
    Deferred,
}

/// `FileOptions::io_backend`.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum IoBackendArg {
    /// io_uring where the kernel allows it, else pwrite.
    Auto,
    IoUring,
    Pwrite,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// The standard workload (16-byte keys, 64-byte values, zipf 0.99).
    Standard,
    /// Game-score updates (counter adds) offered at 50,000/s times --scale
    /// against a store that takes 1,000 batches/s (slow:1000).
    Game,
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Workload preset.
    #[arg(long, value_enum, default_value = "standard")]
    scenario: Scenario,
    /// Game scenario: offered rate multiplier.
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Store behind the cache: file, mem, null, slow:N (the file store
    /// throttled to N batches per second), or a PostgreSQL connection URL
    /// (postgres://..., needs the `postgres` feature; the table is emptied
    /// first, see --pg-table).
    #[arg(long)]
    store: Option<String>,
    /// PostgreSQL store: the cache's table (dropped and recreated at the
    /// start); the per-update baseline uses TABLE_per_update.
    #[arg(long, default_value = "wb_bench")]
    pg_table: String,
    /// Directory of the file store (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Writer threads (default: cores - 1, at least 1).
    #[arg(long)]
    writers: Option<usize>,
    /// Distinct keys.
    #[arg(long)]
    keys: Option<u64>,
    /// Key popularity.
    #[arg(long, value_enum, default_value = "zipf")]
    dist: Dist,
    /// Zipf skew.
    #[arg(long, default_value_t = 0.99)]
    theta: f64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 16)]
    key_bytes: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,
    /// Operation mix, e.g. put=80,add=15,delete=5.
    #[arg(long)]
    mix: Option<String>,
    /// Seconds of load.
    #[arg(long)]
    seconds: Option<f64>,
    /// Open loop: operations per second per writer (latency is measured from
    /// each operation's intended start). Without it: closed loop.
    #[arg(long)]
    rate: Option<u64>,
    /// Leave threads where the scheduler puts them (by default writers are
    /// pinned to cores 0.. and the flusher to the last core).
    #[arg(long)]
    no_pin: bool,
    /// Config::durability of the cache (and its file store).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Batch)]
    durability: DurabilityArg,
    /// The file store's I/O engine.
    #[arg(long, value_enum, default_value_t = IoBackendArg::Auto)]
    io_backend: IoBackendArg,
    /// Short run: 2 s of load, 1 s per baseline.
    #[arg(long)]
    quick: bool,
    /// Skip the baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Config::batches_in_flight_max (default: the library's, 4; a
    /// PostgreSQL store keeps one in flight unless this is given).
    #[arg(long)]
    batches_in_flight: Option<usize>,
    /// Config::memory_bytes: the cache's memory budget, in bytes, with an
    /// optional K/M/G suffix (powers of 1024), e.g. 64M. Clean keys beyond
    /// it are evicted and read back through on a miss (a `get` in --mix).
    #[arg(long, value_parser = parse_bytes)]
    memory: Option<u64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the latency percentile distributions (HdrHistogram text
    /// format): the cache's to this path, each baseline's beside it
    /// (`NAME-BASELINE.hgrm`).
    #[arg(long)]
    hgrm: Option<std::path::PathBuf>,
    /// Write an SVG latency-percentile plot of this run and the baselines.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(stop) => {
            if let Some(m) = stop.message() {
                eprintln!("wb: {m}");
            }
            stop.exit_code()
        }
    }
}

fn run(command: Command) -> Result<(), Stop> {
    match command {
        Command::Bench(args) => bench(&args),
        Command::Inspect(a) => inspect::inspect(&a.dir, a.json),
        Command::Verify(a) => verify::verify(&a.dir, a.json),
        Command::Compact(a) => inspect::compact(&a.dir, a.json),
        Command::CrashChild { dir, seed } => Ok(writebehind_tools::crash::child(&dir, seed)?),
        Command::Soak {
            seconds,
            dir,
            seed,
            json,
        } => {
            let r = writebehind_tools::crash::soak(seconds, dir, seed)?;
            let text = format!(
                "soak: {:.1} s, {} writes, {} reads, {} syncs, {} compactions, {} keys checked after reopen, {} violations",
                r.seconds, r.writes, r.reads, r.syncs, r.compactions, r.keys_checked, r.violations
            );
            report(&r, json, &text, &r.first_violations)
        }
        Command::CrashTest(a) => {
            let r = writebehind_tools::crash::run(a.cycles, a.dir.clone(), a.seed, a.kill_ms_max)?;
            let text = format!(
                "crash-test: {} cycles, {} keys checked, {} torn tails cut, {} sync points recorded, max version {}, {} violations, {:.1} s",
                r.cycles, r.keys_checked, r.torn_tails, r.syncs_recorded, r.max_version_seen, r.violations, r.seconds
            );
            report(&r, a.json, &text, &r.first_violations)
        }
    }
}

/// Prints a check's report (JSON or text) and fails if it found violations.
fn report(
    r: &impl serde::Serialize,
    json: bool,
    text: &str,
    violations: &[String],
) -> Result<(), Stop> {
    if json {
        output::json_line(r)?;
    } else {
        output::line(text)?;
        for v in violations {
            output::line(format_args!("  VIOLATION {v}"))?;
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Stop::Verdict(1))
    }
}

/// `wb bench`: runs, writes the optional files, prints.
fn bench(a: &BenchArgs) -> Result<(), Stop> {
    let report = bench_report(a)?;
    if a.json {
        output::json_line(&report)
    } else {
        output::line(writebehind_tools::bench::Table(&report))
    }
}

/// Checks the arguments, runs the benchmark, writes --hgrm and --plot.
fn bench_report(a: &BenchArgs) -> Result<writebehind_tools::bench::Report, String> {
    let params = bench_params(a)?;
    let report = writebehind_tools::bench::run(&params)?;
    write_latency_files(a, &report)?;
    Ok(report)
}

/// Refuses what `wb bench` cannot run: no writers, a rate out of range, a
/// skew outside (0, 1), no keys, keys too short to name them all, or a
/// non-positive duration.
fn check_bench_args(a: &BenchArgs, writers: usize) -> Result<(), String> {
    if writers == 0 {
        return Err("--writers must be at least 1".into());
    }
    if a.rate.is_some_and(|r| r == 0 || r > 100_000_000) {
        return Err("--rate must be in 1..=100000000 operations per second per writer".into());
    }
    if !(a.theta > 0.0 && a.theta < 1.0) {
        return Err("--theta must be in (0, 1)".into());
    }
    if a.keys == Some(0) {
        return Err("--keys must be at least 1".into());
    }
    let keys_needed = a.keys.unwrap_or(100_000);
    let digits = keys_needed.saturating_sub(1).max(1).ilog10() as usize + 1;
    if a.key_bytes < digits + 1 {
        return Err(format!(
            "--key-bytes {} cannot name {keys_needed} distinct keys (need {})",
            a.key_bytes,
            digits + 1
        ));
    }
    if a.seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
        return Err("--seconds must be positive".into());
    }
    Ok(())
}

/// The run the arguments ask for: the scenario's defaults (standard, or
/// game: counter adds at 50,000/s times --scale on slow:1000), then the
/// flags given.
fn bench_params(a: &BenchArgs) -> Result<writebehind_tools::bench::Params, String> {
    use writebehind_tools::bench::{Mix, Params, StoreSpec};
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let writers = a.writers.unwrap_or(cores.saturating_sub(1).max(1));
    let game = a.scenario == Scenario::Game;
    check_bench_args(a, writers)?;
    let default_seconds = match (a.quick, game) {
        (true, _) => 2.0,
        (false, true) => 10.0,
        (false, false) => 5.0,
    };
    let store: StoreSpec = a
        .store
        .as_deref()
        .unwrap_or(if game { "slow:1000" } else { "file" })
        .parse()?;
    let mix: Mix = a
        .mix
        .as_deref()
        .unwrap_or(if game { "add=100" } else { "put=100" })
        .parse()?;
    let rate = if game {
        Some((50_000 * u64::from(a.scale.max(1))).div_ceil(writers as u64))
    } else {
        a.rate
    };
    Ok(Params {
        store,
        dir: a.dir.clone(),
        writers,
        keys: a.keys.unwrap_or(if game { 10_000 } else { 100_000 }),
        dist: match a.dist {
            Dist::Zipf => Distribution::Zipf(a.theta),
            Dist::Uniform => Distribution::Uniform,
        },
        key_bytes: a.key_bytes,
        value_bytes: a.value_bytes,
        mix,
        seconds: a.seconds.unwrap_or(default_seconds),
        rate,
        pin: !a.no_pin,
        durability: match a.durability {
            DurabilityArg::Batch => writebehind::Durability::Batch,
            DurabilityArg::Deferred => writebehind::Durability::Deferred,
        },
        io_backend: match a.io_backend {
            IoBackendArg::Auto => writebehind::IoBackend::Auto,
            IoBackendArg::IoUring => writebehind::IoBackend::IoUring,
            IoBackendArg::Pwrite => writebehind::IoBackend::Pwrite,
        },
        baselines: !a.no_baselines,
        baseline_seconds: if a.quick { 1.0 } else { 2.0 },
        progress: true,
        label: if game { "game" } else { "standard" },
        pg_table: a.pg_table.clone(),
        batches_in_flight: a.batches_in_flight,
        memory_bytes: a.memory,
    })
}

/// `--hgrm`: the run's latency distribution; `--plot`: the run's and the
/// baselines' latencies by percentile.
fn write_latency_files(
    a: &BenchArgs,
    report: &writebehind_tools::bench::Report,
) -> Result<(), String> {
    use writebehind_tools::bench;
    let Some(h) = &report.histogram else {
        return Ok(());
    };
    let mut runs = vec![("writebehind".to_string(), h)];
    runs.extend(
        report
            .baseline_histograms
            .iter()
            .map(|(n, h)| (n.clone(), h)),
    );
    if let Some(path) = &a.hgrm {
        for file in bench::write_hgrm(path, &runs)? {
            eprintln!("wb: wrote {}", file.display());
        }
    }
    if let Some(path) = &a.plot {
        let mut what = bench::describe(report);
        if let Some(rate) = report.offered_ops_per_s {
            what += &format!(
                "; offered {rate:.0} ops/s, open loop (each latency from its intended start)"
            );
        }
        what += "; the baselines ran in the same process, after the cache";
        bench::write_plot(path, &what, &runs)?;
        eprintln!("wb: wrote {}", path.display());
    }
    Ok(())
}

/// `64M`, `2G`, `512K` (powers of 1024) or plain bytes.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s
        .trim()
        .to_ascii_uppercase()
        .strip_suffix("IB")
        .unwrap_or(s)
    {
        t if t.ends_with(['K', 'k']) => (t[..t.len() - 1].to_string(), 10),
        t if t.ends_with(['M', 'm']) => (t[..t.len() - 1].to_string(), 20),
        t if t.ends_with(['G', 'g']) => (t[..t.len() - 1].to_string(), 30),
        t => (t.to_string(), 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: a number of bytes, optionally with K, M or G"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}
