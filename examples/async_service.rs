//! The cache in an async service under tokio: 64 tasks record page views
//! through the shared entry (no `Writer` each, and a full ring makes a task
//! wait, not its thread), a task makes them durable every 100 ms with
//! `sync_async`, and Ctrl-C or SIGTERM closes the cache with `close_async`.
//! Started again on the same directory, it checks that every acknowledged
//! view is there.
//!
//! ```text
//! cargo run --release --example async_service -- [DIR] [--seconds N]
//! ```
//!
//! `--seconds N` sends the process a SIGTERM after N seconds (what CI does).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use writebehind::{Config, Error, WriteBehind};

const PAGES: u64 = 1_000;
const TASKS: u64 = 64;

fn page(i: u64) -> Vec<u8> {
    format!("views:/page/{i}").into_bytes()
}

/// Every page's views added up (reads through on a fresh start).
fn total(wb: &WriteBehind) -> Result<i64, Error> {
    let mut sum = 0;
    for i in 0..PAGES {
        if let Some(v) = wb.get(&page(i))? {
            sum += i64::from_le_bytes(v[..8].try_into().unwrap_or_default());
        }
    }
    Ok(sum)
}

/// One client task: a view of some page every millisecond or so, until the
/// shutdown; returns the views it had acknowledged.
async fn client(
    wb: Arc<WriteBehind>,
    id: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<i64, Error> {
    let mut acked = 0;
    let mut n = id;
    while !*stop.borrow() {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        wb.add_async(&page((n >> 33) % PAGES), 1).await?;
        acked += 1;
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_micros(500)) => {}
        }
    }
    Ok(acked)
}

async fn shutdown_signal(seconds: Option<u64>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    if let Some(s) = seconds {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(s)).await;
            // Through the real signal path, as a deploy's SIGTERM would.
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
        });
    }
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = std::env::temp_dir().join("writebehind-async-service");
    let mut seconds = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = Some(args.next().ok_or("--seconds needs a number")?.parse()?),
            _ => dir = PathBuf::from(arg),
        }
    }
    // Opening reads the directory: blocking work, off the runtime's threads.
    let open_dir = dir.clone();
    let (wb, before) = tokio::task::spawn_blocking(move || {
        let wb = WriteBehind::open(&open_dir, Config::default())?;
        let before = total(&wb)?;
        Ok::<_, Error>((Arc::new(wb), before))
    })
    .await??;
    println!("{}: {before} views so far", dir.display());

    let (stop_tx, stop_rx) = watch::channel(false);
    let clients: Vec<_> = (0..TASKS)
        .map(|id| tokio::spawn(client(Arc::clone(&wb), id, stop_rx.clone())))
        .collect();
    let syncer = {
        let (wb, mut stop) = (Arc::clone(&wb), stop_rx.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = every.tick() => {}
                }
                match tokio::time::timeout(Duration::from_secs(5), wb.sync_async()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("sync: {e}"),
                    Err(_) => {
                        eprintln!("sync: the store is slow: {:?}", wb.stats().last_store_error)
                    }
                }
            }
        })
    };

    shutdown_signal(seconds).await?;
    println!("signal received: shutting down");
    stop_tx.send(true)?;
    let mut acked = 0;
    for c in clients {
        acked += c.await??;
    }
    syncer.await?;
    wb.close_async().await?;
    drop(wb);
    println!("closed: {acked} views acknowledged this run");

    // The restart: every acknowledged view is there.
    let after = tokio::task::spawn_blocking(move || {
        let wb = WriteBehind::open(&dir, Config::default())?;
        let after = total(&wb)?;
        wb.close()?;
        Ok::<_, Error>(after)
    })
    .await??;
    if after != before + acked {
        return Err(format!("after the restart {after} views, not {before} + {acked}").into());
    }
    println!("restart check: {after} views = {before} + {acked}");
    Ok(())
}
