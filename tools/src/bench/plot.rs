//! `--hgrm` and `--plot`: a run's latencies as HdrHistogram's percentile text
//! and as an SVG plot of latency by percentile.

use std::fmt::Write;
use std::path::Path;

use hdrhistogram::Histogram;

/// Writes `h` in HdrHistogram's percentile-distribution text format.
pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> Result<(), String> {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    for v in h.iter_quantiles(1) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:.2}", 1.0 / (1.0 - q))
        } else {
            "inf".into()
        };
        let _ = writeln!(
            out,
            "{:12.3} {:14.12} {:10} {:>14}",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(out, "# values in microseconds");
    std::fs::write(path, out).map_err(|e| e.to_string())
}

/// Writes an SVG latency-by-percentile plot (log scales) of the given runs.
pub fn write_plot(path: &Path, runs: &[(String, &Histogram<u64>)]) -> Result<(), String> {
    let max_ns = runs
        .iter()
        .map(|(_, hist)| hist.max())
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let plot = Plot::new(max_ns);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#,
        plot.w, plot.h
    );
    let _ = write!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="30" font-size="15">wb bench: latency by percentile (log scales)</text>"#,
        plot.m
    );
    plot.percentile_axis(&mut s);
    plot.latency_axis(&mut s);
    for (i, (name, hist)) in runs.iter().enumerate() {
        plot.curve(&mut s, i, name, hist);
    }
    s.push_str("</svg>");
    std::fs::write(path, s).map_err(|e| e.to_string())
}

/// The plot's geometry: width, height, margin (pixels), and the latency at
/// the top of its scale.
struct Plot {
    w: f64,
    h: f64,
    m: f64,
    max_ns: f64,
}

impl Plot {
    const COLORS: [&'static str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

    fn new(max_ns: f64) -> Self {
        Self {
            w: 900.0,
            h: 520.0,
            m: 70.0,
            max_ns,
        }
    }

    /// x of percentile `q` (log scale of 1 / (1 - q), up to 99.999%).
    fn x_of(&self, q: f64) -> f64 {
        let (w, m) = (self.w, self.m);
        m + (w - 2.0 * m) * ((1.0 / (1.0 - q.min(0.99999))).log10() / 5.0)
    }

    /// y of a latency (log scale, 1 ns at the bottom).
    fn y_of(&self, ns: f64) -> f64 {
        let (h, m) = (self.h, self.m);
        h - m - (h - 2.0 * m) * (ns.max(1.0).log10() / self.max_ns.log10())
    }

    /// Vertical lines and labels at 0%, 90%, ... 99.999%.
    fn percentile_axis(&self, s: &mut String) {
        let (h, m) = (self.h, self.m);
        for q in [0.0, 0.9, 0.99, 0.999, 0.9999, 0.99999] {
            let x = self.x_of(q);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{m}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}%</text>"##,
                h - m,
                h - m + 18.0,
                q * 100.0
            );
        }
    }

    /// Horizontal lines and labels at each decade of latency.
    fn latency_axis(&self, s: &mut String) {
        let (w, m) = (self.w, self.m);
        let mut decade = 1.0;
        while decade <= self.max_ns * 10.0 {
            let y = self.y_of(decade);
            if y >= m - 1.0 {
                let label = if decade >= 1e6 {
                    format!("{} ms", decade / 1e6)
                } else if decade >= 1e3 {
                    format!("{} us", decade / 1e3)
                } else {
                    format!("{decade} ns")
                };
                let _ = write!(
                    s,
                    r##"<line x1="{m}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                    w - m,
                    m - 6.0,
                    y + 4.0
                );
            }
            decade *= 10.0;
        }
    }

    /// Run `i`'s latency by percentile, and its name in the legend.
    fn curve(&self, s: &mut String, i: usize, name: &str, hist: &Histogram<u64>) {
        let color = Self::COLORS[i % Self::COLORS.len()];
        let mut points = String::new();
        for step in 0..=200 {
            let q = 1.0 - 10f64.powf(-5.0 * step as f64 / 200.0);
            let v = hist.value_at_quantile(q) as f64;
            let _ = write!(points, "{:.1},{:.1} ", self.x_of(q), self.y_of(v));
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/><text x="{:.1}" y="{:.1}" fill="{color}">{name}</text>"#,
            self.w - self.m - 160.0,
            self.m + 16.0 * (i as f64 + 1.0)
        );
    }
}
