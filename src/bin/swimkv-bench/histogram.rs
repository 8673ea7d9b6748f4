//! HDR-style log-bucketed latency histogram (microseconds) and the percentiles every
//! report shows.
//!
//! Invariants: values below 2^8 µs have exact buckets; above that a bucket spans at most
//! 1/128 of its lower bound and is reported by its midpoint, so a reported percentile is
//! off by at most 0.4 %. Buckets are contiguous and cover `0..=MAX_TRACKED`; larger
//! values are clamped to `MAX_TRACKED`. Reported percentiles are clamped to the recorded
//! `[min, max]`, and an empty histogram reports all zeros. Merging is exact (counts add).

/// Bits of linear sub-buckets per power of two: values below 2^8 µs are exact, above that
/// a bucket spans at most 1/128 of its value and is reported by its midpoint (≤ 0.4 %).
const SUB_BITS: u32 = 8;
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;
/// Values are clamped to 2^40 - 1 µs (about 12 days).
const MAX_TRACKED: u64 = (1 << 40) - 1;
const BUCKETS: usize = bucket_index(MAX_TRACKED) + 1;

/// Bucket of a value (µs).
const fn bucket_index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = v.ilog2();
    let shift = msb - (SUB_BITS - 1);
    let mantissa = v >> shift; // in [HALF, SUB)
    (SUB + (shift as u64 - 1) * HALF + (mantissa - HALF)) as usize
}

/// Smallest and largest value falling in bucket `i`.
fn bucket_bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, i);
    }
    let j = i - SUB;
    let shift = j / HALF + 1;
    let low = (j % HALF + HALF) << shift;
    (low, low + (1 << shift) - 1)
}

/// HDR-style log-bucketed latency histogram in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    pub(crate) total: u64,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            min: u64::MAX,
        }
    }
}

/// The percentiles every report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Percentiles {
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
}

impl Histogram {
    /// Records one value (µs).
    pub(crate) fn record(&mut self, micros: u64) {
        let v = micros.min(MAX_TRACKED);
        if let Some(c) = self.counts.get_mut(bucket_index(v)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
    }

    /// Adds every value of `other`.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    /// Value at percentile `p` (0..=100): the smallest recorded value v such that at least
    /// p % of the values are ≤ v, up to bucket precision. 0 when empty.
    fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bucket_bounds(i);
                return (low + (high - low) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// p50, p90, p99, p99.9 and max.
    pub(crate) fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50: self.percentile(50.0),
            p90: self.percentile(90.0),
            p99: self.percentile(99.0),
            p999: self.percentile(99.9),
            max: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{bucket_bounds, bucket_index, Histogram, Percentiles, BUCKETS, MAX_TRACKED};

    #[test]
    fn histogram_buckets_are_contiguous_and_tight() {
        let mut prev_high = None;
        for i in 0..BUCKETS {
            let (low, high) = bucket_bounds(i);
            assert_eq!(bucket_index(low), i);
            assert_eq!(bucket_index(high), i);
            if let Some(p) = prev_high {
                assert_eq!(low, p + 1);
            }
            assert!((high - low) as f64 <= low as f64 / 128.0 + 1.0);
            prev_high = Some(high);
        }
        assert_eq!(prev_high, Some(MAX_TRACKED));
    }

    #[test]
    fn percentiles_are_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (p, expected) in [
            (50.0, 50_000.0),
            (90.0, 90_000.0),
            (99.0, 99_000.0),
            (99.9, 99_900.0),
        ] {
            let got = h.percentile(p) as f64;
            assert!(
                (got - expected).abs() <= expected * 0.01,
                "p{p}: got {got}, expected {expected}"
            );
        }
        let p = h.percentiles();
        assert_eq!(p.max, 100_000);
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
    }

    #[test]
    fn percentiles_exact_for_small_values_and_merge() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in 1..=50 {
            a.record(v);
        }
        for v in 51..=100 {
            b.record(v);
        }
        a.merge(&b);
        assert_eq!(a.percentile(50.0), 50);
        assert_eq!(a.percentile(90.0), 90);
        assert_eq!(a.percentile(99.0), 99);
        assert_eq!(a.percentile(100.0), 100);
        assert_eq!(a.percentile(0.0), 1);
        assert_eq!(Histogram::default().percentiles(), Percentiles::default());
        let mut single = Histogram::default();
        single.record(123_456);
        assert_eq!(single.percentile(50.0), 123_456);
    }
}
