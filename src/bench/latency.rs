//! Latencies: recorded in HDR histograms at microsecond resolution, summarised in
//! milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The longest latency recorded as it is: an hour, in microseconds. Longer ones are recorded
/// as an hour.
const HIGHEST_US: u64 = 3_600_000_000;

/// An HDR histogram of latencies, 1 µs to an hour at three significant digits (every value
/// within 0.1 %), in fixed memory (~200 KB) however many are recorded. One per worker and
/// verb; merged at the end.
#[derive(Debug, Clone)]
pub struct Recorder(Histogram<u64>);

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts: 1 <= low, high >= 2 * low,
        // 3 significant figures.
        Self(
            Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
        )
    }

    /// Records one latency (below 1 µs counts as 0, above an hour as an hour).
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency in microseconds.
    pub fn record_us(&mut self, micros: u64) {
        self.0.saturating_record(micros.min(HIGHEST_US));
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: the addition cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// How many latencies were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The summary: count, min, mean, percentiles and max.
    #[must_use]
    pub fn summary(&self) -> Latency {
        let h = &self.0;
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |micros: u64| micros_to_ms(micros);
        Latency {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[allow(clippy::cast_precision_loss)] // microseconds below an hour are exact in an f64
fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// A latency distribution, in milliseconds (microsecond resolution).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// How many were measured.
    pub count: u64,
    /// The fastest.
    pub min_ms: f64,
    /// The mean.
    pub mean_ms: f64,
    /// The median.
    pub p50_ms: f64,
    /// The 90th percentile.
    pub p90_ms: f64,
    /// The 95th percentile.
    pub p95_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

/// A duration in milliseconds as people read it: `850µs`, `12.3ms`, `1.20s`.
#[must_use]
pub fn format_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "-".into();
    }
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 10.0 {
        format!("{ms:.2}ms")
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}
