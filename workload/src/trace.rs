//! The project's standard workload (16-byte keys, 64-byte values, 100K keys,
//! zipf 0.99 as in YCSB, or uniform) as a precomputed trace, so generating
//! keys costs nothing in a timed loop.

use crate::{Distribution, Rng, Zipf};

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
