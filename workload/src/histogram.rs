//! The latency histogram every bench records into.

use hdrhistogram::Histogram;

/// An empty histogram of 1 ns .. 100 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 100_000_000_000, 3) {
        Ok(h) => h,
        Err(e) => panic!("histogram bounds are constants: {e}"),
    }
}
