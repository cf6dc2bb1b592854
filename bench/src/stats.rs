//! [`Latency`]: an HDR histogram of durations in microseconds.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::BenchError;

/// Highest recordable latency: two minutes, in microseconds.
const MAX_MICROS: u64 = 120_000_000;

/// Latencies in microseconds, 3 significant figures.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Latency {
    /// An empty histogram.
    ///
    /// # Errors
    /// [`BenchError::Histogram`] (never with these fixed bounds).
    pub fn new() -> Result<Self, BenchError> {
        Ok(Self {
            histogram: Histogram::new_with_bounds(1, MAX_MICROS, 3)?,
        })
    }

    /// Records `d` (clamped into the histogram's range).
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS);
        self.histogram
            .saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Number of values recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The value at quantile `q` (0.0..=1.0); zero when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.histogram.value_at_quantile(q))
    }

    /// The median.
    #[must_use]
    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    #[must_use]
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// The largest value.
    #[must_use]
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.histogram.max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_recorded_values() {
        let mut a = Latency::new().expect("fixed bounds are valid");
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        let mut b = Latency::new().expect("fixed bounds are valid");
        b.record(Duration::from_secs(1));
        a.merge(&b);
        assert_eq!(a.count(), 101);
        let p50 = a.p50().as_micros();
        assert!((50_000..=51_100).contains(&p50), "p50 = {p50}us");
        assert!(a.max() >= Duration::from_millis(999));
    }
}
