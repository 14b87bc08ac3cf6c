//! What a `wb bench` run measures: the store behind the cache, the operation
//! mix, and the rest of the run's parameters.

use std::path::PathBuf;

use serde::Serialize;
use writebehind_workload::Distribution;

/// Which store the cache runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded file store.
    File,
    /// The file store behind `Throttled` at N batches per second.
    Slow(u32),
    /// In memory.
    Mem,
    /// Discards batches.
    Null,
    /// A PostgreSQL table (`PgStore`), by connection URL.
    Postgres(String),
}

impl StoreSpec {
    /// How the report names the store (no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(url) => format!("Postgres({})", crate::pg::redact(url)),
            other => format!("{other:?}"),
        }
    }
}

impl std::str::FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(Self::File),
            "mem" => Ok(Self::Mem),
            "null" => Ok(Self::Null),
            _ if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Ok(Self::Postgres(s.to_string()))
            }
            _ => match s.strip_prefix("slow:").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => Ok(Self::Slow(n)),
                _ => Err(format!(
                    "unknown store {s:?}: file, mem, null, slow:N or postgres://..."
                )),
            },
        }
    }
}

/// Operation mix, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    /// put of the workload value
    pub put: u32,
    /// add 1 to a counter key
    pub add: u32,
    /// delete
    pub delete: u32,
    /// get (reads through when the key is not in memory)
    pub get: u32,
}

/// One operation of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Put,
    Add,
    Delete,
    Get,
}

impl Mix {
    /// The op at trace position `pos` (deterministic from the position, so
    /// the cache and every baseline run the same sequence).
    #[inline]
    pub(crate) fn op_at(&self, pos: usize) -> Op {
        let r = ((pos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100;
        if r < u64::from(self.put) {
            Op::Put
        } else if r < u64::from(self.put + self.add) {
            Op::Add
        } else if r < u64::from(self.put + self.add + self.delete) {
            Op::Delete
        } else {
            Op::Get
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mix = Mix {
            put: 0,
            add: 0,
            delete: 0,
            get: 0,
        };
        for part in s.split(',') {
            let (name, pct) = part
                .split_once('=')
                .ok_or_else(|| format!("bad mix part {part:?}"))?;
            let pct: u32 = pct
                .parse()
                .map_err(|_| format!("bad percentage in {part:?}"))?;
            match name {
                "put" => mix.put = pct,
                "add" => mix.add = pct,
                "delete" => mix.delete = pct,
                "get" => mix.get = pct,
                _ => return Err(format!("unknown op {name:?}")),
            }
        }
        let total = mix
            .put
            .checked_add(mix.add)
            .and_then(|t| t.checked_add(mix.delete))
            .and_then(|t| t.checked_add(mix.get));
        if total != Some(100) {
            return Err("the mix must add up to 100".into());
        }
        Ok(mix)
    }
}

/// The key an `add` uses for workload key `k` (its own key space, so a put's
/// 64-byte value never meets a counter).
pub(crate) fn counter_key(k: &[u8]) -> Vec<u8> {
    let mut c = k.to_vec();
    c[0] = b'#';
    c
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    pub store: StoreSpec,
    pub dir: Option<PathBuf>,
    pub writers: usize,
    pub keys: u64,
    pub dist: Distribution,
    pub key_bytes: usize,
    pub value_bytes: usize,
    pub mix: Mix,
    pub seconds: f64,
    /// Open loop: operations per second per writer.
    pub rate: Option<u64>,
    pub pin: bool,
    pub baselines: bool,
    pub baseline_seconds: f64,
    pub progress: bool,
    pub label: &'static str,
    /// PostgreSQL store: the cache's table (emptied at the start; the
    /// per-update baseline uses `TABLE_per_update`).
    pub pg_table: String,
    /// `Config::batches_in_flight_max`, if not the default.
    pub batches_in_flight: Option<usize>,
    /// `Config::memory_bytes`, if given (`--memory`).
    pub memory_bytes: Option<u64>,
    /// `Config::durability` (`--durability`).
    pub durability: writebehind::Durability,
    /// The file store's engine (`--io-backend`).
    pub io_backend: writebehind::IoBackend,
}

impl Params {
    /// The core writer `t` is pinned to, if pinning: cores 0.. round robin,
    /// the last core left to the flusher (the cache's writers and the
    /// mutex+channel baseline's are placed alike).
    pub(crate) fn writer_core(&self, t: usize) -> Option<usize> {
        self.pin.then_some(t % cores().saturating_sub(1).max(1))
    }

    /// "open-loop" with a rate, else "closed-loop".
    pub(crate) fn mode(&self) -> &'static str {
        if self.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        }
    }
}

/// The cores this process may run on.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
