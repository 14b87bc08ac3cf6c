//! `wb`: the writebehind command-line tool.
//!
//! `wb bench` runs a closed-loop put workload against the cache and reports
//! throughput, coalescing and what reached the store. (Open-loop latency,
//! the file store, baselines and the game scenario arrive with later issues.)

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use writebehind::{Config, FileStore, MemStore, Store, WriteBehind};
use writebehind_tools::workload::{Distribution, NullStore, Workload};

mod inspect;

#[derive(Parser, Debug)]
#[command(
    name = "wb",
    version,
    about = "writebehind: bench and inspect a write-behind cache"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Closed-loop put throughput of the cache over a store.
    Bench(BenchArgs),
    /// Segments, records, live keys, dead bytes and versions of a store directory.
    Inspect(DirArgs),
    /// Check every record of a store directory; exit 1 on corruption, naming segment and offset.
    Verify(DirArgs),
    /// Compact a store directory (rewrite the live set, drop old segments).
    Compact(DirArgs),
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
enum StoreKind {
    /// The embedded file store (io_uring or pwrite), in `--dir` or a
    /// temporary directory.
    File,
    /// In-memory store (keeps every record; decodes each batch).
    Mem,
    /// A store that discards batches: measures the cache and flusher alone.
    Null,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Dist {
    Zipf,
    Uniform,
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Store behind the cache.
    #[arg(long, value_enum, default_value = "file")]
    store: StoreKind,
    /// Directory of the file store (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Writer threads (default: cores - 1, at least 1).
    #[arg(long)]
    writers: Option<usize>,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
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
    /// Seconds of load.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Pin writers to cores 0.. and the flusher to the last core.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pin: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench(&args),
        Command::Inspect(a) => inspect::inspect(&a.dir, a.json),
        Command::Verify(a) => match inspect::verify(&a.dir, a.json) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Compact(a) => inspect::compact(&a.dir, a.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wb: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let writers = args.writers.unwrap_or(cores.saturating_sub(1).max(1));
    let dist = match args.dist {
        Dist::Zipf => Distribution::Zipf(args.theta),
        Dist::Uniform => Distribution::Uniform,
    };
    let workload = Arc::new(Workload::new(
        args.keys,
        args.key_bytes,
        args.value_bytes,
        dist,
        1 << 20,
        0x5EED,
    ));
    let config = Config {
        writers_max: writers.max(1),
        keys_max: (args.keys as usize * 2).max(1024),
        dirty_keys_max: (args.keys as usize).max(1024),
        value_bytes_max: args.value_bytes.max(64),
        flusher_core: args.pin.then_some(cores - 1),
        ..Config::default()
    };
    let temp = match (&args.store, &args.dir) {
        (StoreKind::File, None) => Some(tempfile::tempdir().map_err(|e| e.to_string())?),
        _ => None,
    };
    let dir = args
        .dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()));
    let store: Box<dyn Store> = match (args.store, &dir) {
        (StoreKind::File, Some(dir)) => {
            Box::new(FileStore::open(dir, &config).map_err(|e| e.to_string())?)
        }
        (StoreKind::File, None) => return Err("no directory for the file store".into()),
        (StoreKind::Mem, _) => Box::new(MemStore::new()),
        (StoreKind::Null, _) => Box::new(NullStore::default()),
    };
    let wb = Arc::new(WriteBehind::with_store(store, config.clone()).map_err(|e| e.to_string())?);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let (wb, stop, workload) = (Arc::clone(&wb), Arc::clone(&stop), Arc::clone(&workload));
            let pin = args.pin.then_some(t % cores);
            std::thread::spawn(move || -> Result<(usize, usize), String> {
                let mut w = wb.writer().map_err(|e| e.to_string())?;
                if let Some(core) = pin {
                    w.pin(core).map_err(|e| e.to_string())?;
                }
                let start = t * 7919;
                let mut pos = start;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        w.put(workload.key(pos), &workload.value)
                            .map_err(|e| e.to_string())?;
                        pos += 1;
                    }
                }
                Ok((start, pos))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0u64;
    let mut ranges = Vec::new();
    for t in threads {
        let (start, end) = t
            .join()
            .map_err(|_| "writer thread panicked".to_string())??;
        ops += (end - start) as u64;
        ranges.push((start, end));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sync_start = Instant::now();
    wb.sync().map_err(|e| e.to_string())?;
    let sync_s = sync_start.elapsed().as_secs_f64();
    let stats = wb.stats();
    let wb = Arc::into_inner(wb).ok_or("cache still shared")?;
    wb.close().map_err(|e| e.to_string())?;
    // Every acknowledged put must be in the store: reopen and check each key
    // the run wrote (file store only; the others do not outlive the run).
    let verified = match (&args.store, &dir) {
        (StoreKind::File, Some(dir)) => {
            let wb = WriteBehind::open(dir, config.clone()).map_err(|e| e.to_string())?;
            let mut missing = 0u64;
            let mut seen = std::collections::HashSet::new();
            for &(start, end) in &ranges {
                for pos in start..end.min(start + (1 << 20)) {
                    let key = workload.key(pos);
                    if seen.insert(key.to_vec())
                        && wb.get(key).as_deref() != Some(&workload.value[..])
                    {
                        missing += 1;
                    }
                }
            }
            let ok = missing == 0 && wb.stats().keys == seen.len();
            wb.close().map_err(|e| e.to_string())?;
            if !ok {
                return Err(format!(
                    "VERIFY FAILED: {missing} of {} keys missing or wrong after reopen",
                    seen.len()
                ));
            }
            Some(true)
        }
        _ => None,
    };
    let coalescing = stats.drained_ops as f64 / stats.persisted_records.max(1) as f64;
    if args.json {
        println!(
            "{{\"writers\":{writers},\"backend\":\"{}\",\"put_ops_per_s\":{:.0},\"persisted_records_per_s\":{:.0},\"persisted_bytes_per_s\":{:.0},\"coalescing_ratio\":{coalescing:.3},\"ring_full_events\":{},\"batches\":{},\"final_sync_s\":{sync_s:.4},\"verified\":{}}}",
            stats.backend,
            ops as f64 / elapsed,
            stats.persisted_records as f64 / elapsed,
            stats.persisted_bytes as f64 / elapsed,
            stats.ring_full_events,
            stats.batches,
            verified.map_or("null".to_string(), |v| v.to_string()),
        );
    } else {
        println!("wb bench: {writers} writer thread(s) + 1 flusher on {cores} cores, store {}, {:?} over {} keys, {}-byte keys, {}-byte values, {:.1} s closed loop",
            stats.backend, dist, args.keys, args.key_bytes, args.value_bytes, elapsed);
        println!("  acked puts/s         {:>14.0}", ops as f64 / elapsed);
        println!(
            "  persisted records/s  {:>14.0}",
            stats.persisted_records as f64 / elapsed
        );
        println!(
            "  persisted MB/s       {:>14.1}",
            stats.persisted_bytes as f64 / elapsed / 1e6
        );
        println!(
            "  coalescing ratio     {:>14.2}  (updates drained per record written)",
            coalescing
        );
        println!(
            "  batches              {:>14}  (mean {:.0} records)",
            stats.batches,
            stats.persisted_records as f64 / stats.batches.max(1) as f64
        );
        println!("  ring-full events     {:>14}", stats.ring_full_events);
        println!("  final sync           {:>14.4} s", sync_s);
        match verified {
            Some(true) => {
                println!("  verified             every acknowledged put read back after reopen")
            }
            _ => println!(
                "  verified             n/a (the {:?} store does not outlive the run)",
                args.store
            ),
        }
    }
    Ok(())
}
