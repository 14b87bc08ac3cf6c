//! `--hgrm` and `--plot`: a run's latencies as HdrHistogram's percentile text
//! (one file per contender) and as an SVG plot of latency by percentile.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

/// Writes each run's histogram in HdrHistogram's percentile-distribution
/// text format (what its plotter and `HistogramLogAnalyzer` read): the first
/// run to `path`, each other to `path` with `-NAME` before the extension.
/// Returns the files written. (The hdrhistogram crate serializes only its
/// binary V2 format, which those tools read from interval logs, not this
/// text; this writes the text as Java's `outputPercentileDistribution`
/// does, with TotalCount cumulative.)
pub fn write_hgrm(path: &Path, runs: &[(String, &Histogram<u64>)]) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for (i, (name, h)) in runs.iter().enumerate() {
        let file = if i == 0 {
            path.to_owned()
        } else {
            sibling(path, name)
        };
        std::fs::write(&file, hgrm_text(name, h))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

/// `dir/stem-NAME.ext` beside `path`, NAME made safe for a file name.
fn sibling(path: &Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let stem = path
        .file_stem()
        .map_or("latency".into(), |s| s.to_string_lossy());
    let file = match path.extension() {
        Some(ext) => format!("{stem}-{safe}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{safe}"),
    };
    path.with_file_name(file)
}

/// One histogram's percentile text, values in microseconds.
fn hgrm_text(name: &str, h: &Histogram<u64>) -> String {
    let mut out = format!("# {name}\n       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut total = 0;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
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
            total,
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
    out
}

/// Writes an SVG latency-by-percentile plot (log scales) of the given runs,
/// with `what` (the run's description) under the title.
pub fn write_plot(
    path: &Path,
    what: &str,
    runs: &[(String, &Histogram<u64>)],
) -> Result<(), String> {
    let max_ns = runs
        .iter()
        .map(|(_, hist)| hist.max())
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    // The scale ends at the decade above the slowest run, so no curve runs
    // along the frame.
    let plot = Plot::new(10f64.powf(max_ns.log10().ceil()));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#,
        plot.w, plot.h
    );
    s.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    plot.titles(&mut s, what);
    plot.percentile_axis(&mut s);
    plot.latency_axis(&mut s);
    for (i, (name, hist)) in runs.iter().enumerate() {
        plot.curve(&mut s, i, name, hist);
    }
    s.push_str("</svg>");
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

/// The plot's geometry (pixels): the whole image, and the plot area inside
/// it (left, top, right, bottom); the legend sits right of the area.
struct Plot {
    w: f64,
    h: f64,
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
    /// The latency at the top of the scale.
    max_ns: f64,
}

/// The percentiles marked on the x axis, and their labels.
const PERCENTILES: [(f64, &str); 6] = [
    (0.0, "0%"),
    (0.9, "90%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (0.99999, "99.999%"),
];

impl Plot {
    const COLORS: [&'static str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];

    fn new(max_ns: f64) -> Self {
        Self {
            w: 1000.0,
            h: 560.0,
            left: 80.0,
            top: 80.0,
            right: 760.0,
            bottom: 490.0,
            max_ns,
        }
    }

    /// x of percentile `q` (log scale of 1 / (1 - q), up to 99.999%).
    fn x_of(&self, q: f64) -> f64 {
        let decades = (1.0 / (1.0 - q.min(0.99999))).log10() / 5.0;
        self.left + (self.right - self.left) * decades
    }

    /// y of a latency (log scale, 1 ns at the bottom).
    fn y_of(&self, ns: f64) -> f64 {
        let decades = ns.max(1.0).log10() / self.max_ns.log10();
        self.bottom - (self.bottom - self.top) * decades
    }

    /// The title, the run's description (wrapped to two lines) and the
    /// axis titles.
    fn titles(&self, s: &mut String, what: &str) {
        let _ = write!(
            s,
            r#"<text x="{}" y="24" font-size="16">Latency by percentile (log scales)</text>"#,
            self.left
        );
        for (i, line) in wrap(&escape(what), 150).iter().enumerate() {
            let _ = write!(
                s,
                r##"<text x="{}" y="{}" font-size="11" fill="#444">{line}</text>"##,
                self.left,
                44.0 + 14.0 * i as f64
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile (log scale of 1/(1-p))</text>"#,
            (self.left + self.right) / 2.0,
            self.bottom + 44.0
        );
        let (x, y) = (22.0, (self.top + self.bottom) / 2.0);
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" text-anchor="middle" transform="rotate(-90 {x} {y})">latency (log scale)</text>"#
        );
    }

    /// Vertical lines and labels at 0%, 90%, ... 99.999%.
    fn percentile_axis(&self, s: &mut String) {
        for (q, label) in PERCENTILES {
            let x = self.x_of(q);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                self.top,
                self.bottom,
                self.bottom + 18.0
            );
        }
    }

    /// Horizontal lines and labels at each decade of latency.
    fn latency_axis(&self, s: &mut String) {
        let mut decade = 1.0;
        while decade <= self.max_ns * 10.0 {
            let y = self.y_of(decade);
            if y >= self.top - 1.0 {
                let label = if decade >= 1e6 {
                    format!("{} ms", decade / 1e6)
                } else if decade >= 1e3 {
                    format!("{} us", decade / 1e3)
                } else {
                    format!("{decade} ns")
                };
                let _ = write!(
                    s,
                    r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                    self.left,
                    self.right,
                    self.left - 6.0,
                    y + 4.0
                );
            }
            decade *= 10.0;
        }
    }

    /// Run `i`'s latency by percentile, and its line in the legend (right
    /// of the plot area, so it covers no curve).
    fn curve(&self, s: &mut String, i: usize, name: &str, hist: &Histogram<u64>) {
        let color = Self::COLORS[i % Self::COLORS.len()];
        let mut points = String::new();
        for step in 0..=200 {
            let q = 1.0 - 10f64.powf(-5.0 * step as f64 / 200.0);
            let v = hist.value_at_quantile(q) as f64;
            let _ = write!(points, "{:.1},{:.1} ", self.x_of(q), self.y_of(v));
        }
        let y = self.top + 10.0 + 20.0 * i as f64;
        let x = self.right + 20.0;
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/><line x1="{x}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 24.0,
            x + 30.0,
            y + 4.0,
            escape(name)
        );
    }
}

/// `text` safe inside an SVG text element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` in lines of at most about `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let line = lines.last_mut().map_or(0, |l| l.len());
        if line > 0 && line + word.len() + 1 > width {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram() -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        for v in 1..=10_000u64 {
            h.record(v * 100).expect("in range");
        }
        h
    }

    #[test]
    fn hgrm_total_count_is_cumulative_and_ends_at_the_total() {
        let h = histogram();
        let text = hgrm_text("cache", &h);
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .skip(1)
            .map(|l| {
                l.split_whitespace()
                    .nth(2)
                    .expect("column")
                    .parse()
                    .expect("count")
            })
            .collect();
        assert!(
            counts.len() > 20,
            "a fine distribution: {} steps",
            counts.len()
        );
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "cumulative");
        assert_eq!(counts.last().copied(), Some(h.len()));
    }

    #[test]
    fn one_hgrm_file_per_run_and_plot_labels_are_round() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = (histogram(), histogram());
        let runs = [
            ("writebehind".to_string(), &a),
            ("mutex+channel".to_string(), &b),
        ];
        let files = write_hgrm(&dir.path().join("lat.hgrm"), &runs).expect("written");
        assert_eq!(files[1], dir.path().join("lat-mutex-channel.hgrm"));
        assert!(files.iter().all(|f| f.exists()));
        let svg = dir.path().join("lat.svg");
        write_plot(&svg, "a run <of> tests", &runs).expect("plotted");
        let svg = std::fs::read_to_string(svg).expect("read");
        assert!(svg.contains(">99.999%<") && !svg.contains("00000000"));
        assert!(svg.contains("a run &lt;of&gt; tests") && svg.contains("latency (log scale)"));
    }
}
