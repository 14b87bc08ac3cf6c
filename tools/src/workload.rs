//! Workloads for `wb bench` and the criterion benches: the project's design, section
//! 6's standard workload (16-byte keys, 64-byte values, 100K keys, zipf 0.99
//! as in YCSB, or uniform) as a precomputed trace, so generating keys costs
//! nothing in a timed loop; and [`NullStore`], a store that keeps nothing, so
//! a bench can measure the cache and flusher alone.

use std::time::Duration;

use writebehind::RecordRef;
use writebehind::{Batch, Compaction, Completion, RecoveryReport, Store, StoreError, StoreInfo};

/// xorshift64*: small, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a nonzero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Key popularity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with this skew (YCSB uses 0.99).
    Zipf(f64),
}

/// Draws ranks `0..n` with zipfian popularity, by the method of Gray et al.,
/// "Quickly Generating Billion-Record Synthetic Databases" (SIGMOD 1994),
/// which YCSB's `ZipfianGenerator` also uses.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

impl Zipf {
    /// Ranks `0..n`, skew `theta` in (0, 1).
    pub fn new(n: u64, theta: f64) -> Self {
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(n);
        let zeta_2 = zeta(2);
        Self {
            n: n as f64,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta_n,
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n),
        }
    }

    /// One rank (0 is the most popular).
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        ((self.n * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64).min(self.n as u64 - 1)
    }
}

/// A precomputed trace of key indices and the key bytes they name.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Key bytes, `keys[i]` for index `i`.
    pub keys: Vec<Vec<u8>>,
    /// Indices into `keys`, in the order to use them.
    pub trace: Vec<u32>,
    /// The trace's key bytes back to back (`key_bytes` each), so a timed loop
    /// reads keys sequentially instead of chasing a pointer per key: the
    /// bench must not add a cache miss of its own to what it measures.
    trace_keys: Vec<u8>,
    key_bytes: usize,
    /// The value every put writes.
    pub value: Vec<u8>,
}

impl Workload {
    /// `key_count` keys of `key_bytes`, a trace of `len` draws from `dist`,
    /// values of `value_bytes`.
    pub fn new(
        key_count: u64,
        key_bytes: usize,
        value_bytes: usize,
        dist: Distribution,
        len: usize,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let keys: Vec<Vec<u8>> = (0..key_count)
            .map(|i| {
                let mut k = format!("k{i:0w$}", w = key_bytes.saturating_sub(1)).into_bytes();
                k.truncate(key_bytes.max(1));
                k
            })
            .collect();
        // Scatter ranks over key indices (a random permutation), so the hot
        // keys are not neighbours in any structure keyed by index.
        let mut perm: Vec<u32> = (0..key_count as u32).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let trace: Vec<u32> = match dist {
            Distribution::Uniform => (0..len)
                .map(|_| perm[(rng.next_u64() % key_count) as usize])
                .collect(),
            Distribution::Zipf(theta) => {
                let z = Zipf::new(key_count, theta);
                (0..len)
                    .map(|_| perm[z.sample(&mut rng) as usize])
                    .collect()
            }
        };
        let key_bytes = key_bytes.max(1);
        let mut trace_keys = Vec::with_capacity(trace.len() * key_bytes);
        for &i in &trace {
            trace_keys.extend_from_slice(&keys[i as usize]);
        }
        Self {
            keys,
            trace,
            trace_keys,
            key_bytes,
            value: (0..value_bytes).map(|i| i as u8).collect(),
        }
    }

    /// The project's standard workload (16-byte keys, 64-byte values).
    pub fn standard(dist: Distribution) -> Self {
        Self::new(100_000, 16, 64, dist, 1 << 20, 0x5EED)
    }

    /// The `i`-th key of the trace (wrapping).
    #[inline]
    pub fn key(&self, i: usize) -> &[u8] {
        let start = (i & (self.trace.len() - 1)) * self.key_bytes;
        &self.trace_keys[start..start + self.key_bytes]
    }
}

/// A store that completes every batch at once and keeps nothing.
#[derive(Debug, Default)]
pub struct NullStore {
    done: Vec<Completion>,
}

impl Store for NullStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("null")
    }
    fn recover(
        &mut self,
        _: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<RecoveryReport, writebehind::Error> {
        Ok(RecoveryReport::default())
    }
    fn submit(&mut self, batch: Batch) {
        self.done.push(Completion {
            batch,
            result: Ok(()),
        });
    }
    fn poll(&mut self, out: &mut Vec<Completion>, _: Duration) {
        out.append(&mut self.done);
    }
    fn in_flight(&self) -> usize {
        self.done.len()
    }
    fn compaction(&mut self) -> Option<&mut dyn Compaction> {
        None
    }
    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(100_000, 0.99);
        let mut rng = Rng::new(1);
        let mut top = 0;
        for _ in 0..100_000 {
            let r = z.sample(&mut rng);
            assert!(r < 100_000);
            if r < 10 {
                top += 1;
            }
        }
        // With theta 0.99 over 100K keys the 10 hottest take roughly a quarter.
        assert!(top > 15_000 && top < 40_000, "top-10 share {top}");
    }
}
