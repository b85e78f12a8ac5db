//! A latency histogram cheap enough to sit on the hot path of the burst mode:
//! a fixed array of atomic counters in log-linear buckets (exact below 128 µs,
//! then 64 buckets per power of two, so any reported value is within 1.6% of
//! the true one). Recording is two relaxed atomic adds and never allocates;
//! many tasks record into one shared histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (2^6): the precision of the histogram.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are counted exactly.
const LINEAR: u64 = 2 * SUB;
/// Powers of two above `LINEAR` we cover: up to 2^47 µs, far beyond any run.
const OCTAVES: usize = 40;
const BUCKETS: usize = LINEAR as usize + OCTAVES * SUB as usize;

pub struct Histogram {
    counts: Box<[AtomicU64]>,
    total: AtomicU64,
    max: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn record(&self, elapsed: Duration) {
        self.record_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_micros(&self, micros: u64) {
        self.counts[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(micros, Ordering::Relaxed);
        self.max.fetch_max(micros, Ordering::Relaxed);
    }

    /// Adds every count of `other` to this one.
    pub fn merge(&self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter().zip(other.counts.iter()) {
            let n = theirs.load(Ordering::Relaxed);
            if n > 0 {
                mine.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.total
            .fetch_add(other.total.load(Ordering::Relaxed), Ordering::Relaxed);
        self.sum.fetch_add(other.sum.load(Ordering::Relaxed), Ordering::Relaxed);
        self.max.fetch_max(other.max.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The value at quantile `q` (0..=1), in microseconds; 0 when empty.
    pub fn quantile_micros(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen >= rank {
                return representative(index).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }

    pub fn max_micros(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn mean_micros(&self) -> u64 {
        self.sum.load(Ordering::Relaxed).checked_div(self.count()).unwrap_or(0)
    }

    /// p50/p95/p99/max in milliseconds, for reports.
    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: self.count(),
            p50_ms: ms(self.quantile_micros(0.50)),
            p95_ms: ms(self.quantile_micros(0.95)),
            p99_ms: ms(self.quantile_micros(0.99)),
            max_ms: ms(self.max_micros()),
            mean_ms: ms(self.mean_micros()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros(); // >= SUB_BITS + 1
    let shift = exponent - SUB_BITS;
    let sub = (micros >> shift) - SUB;
    let octave = (exponent - SUB_BITS - 1) as usize;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    LINEAR as usize + octave * SUB as usize + sub as usize
}

/// The middle of a bucket's range.
fn representative(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let octave = (index - LINEAR) / SUB;
    let sub = (index - LINEAR) % SUB;
    let shift = octave + 1;
    let low = (SUB + sub) << shift;
    let width = 1u64 << shift;
    low + width / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let h = Histogram::new();
        for v in [1, 5, 5, 100] {
            h.record_micros(v);
        }
        assert_eq!(h.quantile_micros(0.5), 5);
        assert_eq!(h.quantile_micros(1.0), 100);
        assert_eq!(h.max_micros(), 100);
    }

    #[test]
    fn large_values_stay_within_two_percent() {
        for v in [129u64, 1_000, 12_345, 999_999, 30_000_000] {
            let h = Histogram::new();
            h.record_micros(v);
            let got = representative(bucket_of(v)) as f64;
            assert!((got - v as f64).abs() / (v as f64) < 0.02, "{v} -> {got}");
            assert_eq!(h.quantile_micros(0.5), v.min(got as u64));
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record_micros(v);
        }
        let p99 = h.quantile_micros(0.99) as f64;
        assert!((p99 - 9_900.0).abs() < 9_900.0 * 0.02, "{p99}");
        let p50 = h.quantile_micros(0.50) as f64;
        assert!((p50 - 5_000.0).abs() < 5_000.0 * 0.02, "{p50}");
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_max() {
        let a = Histogram::new();
        let b = Histogram::new();
        a.record_micros(10);
        b.record_micros(20_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.max_micros(), 20_000);
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        assert_eq!(Histogram::new().summary(), LatencySummary::default());
    }
}
