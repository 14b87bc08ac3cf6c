//! Key popularity: uniform, or zipfian by the method YCSB uses.

use crate::Rng;

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
