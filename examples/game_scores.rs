//! A game-score service on the embedded file store: two threads apply score
//! updates, one reads the leaderboard, a timer makes everything durable every
//! 100 ms, and SIGINT or SIGTERM shuts it down gracefully. Started again on
//! the same directory, it goes on from where it stopped: the example checks
//! that the scores it reopens hold every point it acknowledged.
//!
//! ```text
//! cargo run --release --example game_scores -- [DIR] [--seconds N]
//! ```
//!
//! `DIR` defaults to a directory under the system's temp dir. `--seconds N`
//! sends the process a SIGTERM after N seconds (what CI does); without it,
//! press Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use writebehind::{Config, Error, WriteBehind};

const PLAYERS: u64 = 10_000;

fn player(i: u64) -> Vec<u8> {
    format!("player:{i:05}").into_bytes()
}

/// The sum of every player's score: the service's invariant to check after
/// a restart.
fn total(wb: &WriteBehind) -> Result<i64, Error> {
    let mut sum = 0;
    for i in 0..PLAYERS {
        if let Some(v) = wb.get(&player(i))? {
            sum += i64::from_le_bytes(v[..8].try_into().unwrap_or_default());
        }
    }
    Ok(sum)
}

/// One update thread: adds points to random players until `stop`; returns
/// the points it had acknowledged.
fn updates(wb: &WriteBehind, seed: u64, stop: &AtomicBool) -> Result<i64, Error> {
    let mut w = wb.writer()?;
    let mut rng = seed | 1;
    let mut acked = 0;
    while !stop.load(Ordering::Relaxed) {
        // xorshift64: a cheap, good-enough spread of players and points.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let points = (rng % 10) as i64 + 1;
        w.add(&player(rng % PLAYERS), points)?;
        acked += points;
    }
    Ok(acked)
}

/// The leaderboard: the top three, read from memory every 500 ms.
fn leaderboard(wb: &WriteBehind, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(500));
        let mut top: Vec<(i64, u64)> = (0..PLAYERS)
            .filter_map(|i| {
                let v = wb.get_resident(&player(i))?;
                Some((i64::from_le_bytes(v[..8].try_into().ok()?), i))
            })
            .collect();
        top.sort_unstable_by(|a, b| b.cmp(a));
        let stats = wb.stats();
        println!(
            "top: {:?}  durable lag {:?}, {} dirty keys",
            &top[..top.len().min(3)],
            stats.durable_lag,
            stats.dirty_keys
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = std::env::temp_dir().join("writebehind-game-scores");
    let mut seconds = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = Some(args.next().ok_or("--seconds needs a number")?.parse()?),
            _ => dir = PathBuf::from(arg),
        }
    }
    let config = Config::default().keys_max(1 << 16);
    let wb = Arc::new(WriteBehind::open(&dir, config.clone())?);
    let before = total(&wb)?;
    println!("{}: scores add up to {before}", dir.display());

    // Shutdown: SIGINT or SIGTERM raise the flag; every thread checks it.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let (wb, stop) = (Arc::clone(&wb), Arc::clone(&stop));
            thread::spawn(move || {
                updates(&wb, 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(t + 1), &stop)
            })
        })
        .collect();
    let board = {
        let (wb, stop) = (Arc::clone(&wb), Arc::clone(&stop));
        thread::spawn(move || leaderboard(&wb, &stop))
    };

    // The timer: a durability barrier every 100 ms, bounded so a failing
    // disk is reported rather than waited on for ever.
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(100));
        if let Err(e) = wb.sync_timeout(Duration::from_secs(5)) {
            eprintln!("sync: {e}");
        }
        if seconds.is_some_and(|s| start.elapsed() >= Duration::from_secs(s)) {
            signal_hook::low_level::raise(signal_hook::consts::SIGTERM)?;
        }
    }

    // Graceful shutdown: stop the updates, then drain everything.
    println!("signal received: shutting down");
    let mut acked = 0;
    for w in workers {
        acked += w.join().map_err(|_| "an update thread panicked")??;
    }
    board
        .join()
        .map_err(|_| "the leaderboard thread panicked")?;
    wb.close()?;
    drop(wb);
    println!("closed: {acked} points acknowledged this run");

    // The restart a deploy does: every acknowledged point is there.
    let wb = WriteBehind::open(&dir, config)?;
    let after = total(&wb)?;
    wb.close()?;
    if after != before + acked {
        return Err(format!(
            "after the restart the scores add up to {after}, not {before} + {acked}"
        )
        .into());
    }
    println!("restart check: scores add up to {after} = {before} + {acked}");
    Ok(())
}
