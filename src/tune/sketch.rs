//! Usage statistics in bounded memory: a relative-error quantile sketch (the `DDSketch`
//! idea: logarithmic buckets, so every quantile is within 1 % of a true sample value) plus the
//! exact count, minimum, maximum and time span. No series is ever kept whole: a sketch of
//! a year of samples is as small as one of a minute (about 1,400 buckets of 4 bytes at most
//! for values from 0.001 to 10^9, 2,100 to the cap of 10^15; a container's usage typically
//! fills a few dozen).

use serde::{Deserialize, Serialize};

/// Relative accuracy of quantiles: 1 %.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Values at or below this (0.001 millicores or bytes) count as zero.
const MIN_VALUE: f64 = 1e-3;
/// Values above this are counted in the top bucket (their maximum stays exact).
const MAX_VALUE: f64 = 1e15;

/// `ln(gamma)` with `gamma = (1 + a) / (1 - a)` = 1.0202...; bucket `i` holds values in
/// `(gamma^(i-1), gamma^i]`. Written out: `ln` is not a `const fn`, and this is the hot path.
const LN_GAMMA: f64 = 0.020_000_666_706_669_435;
/// `1 / ln(gamma)`.
const INV_LN_GAMMA: f64 = 49.998_333_288_886_78;

/// A stream of non-negative values, summarised: count, sum, min, max and quantiles within
/// [`RELATIVE_ACCURACY`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// The bucket index of `counts[0]`.
    offset: i32,
    counts: Vec<u32>,
    zeros: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Sketch {
    /// An empty sketch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value. Negative and non-finite values are ignored (usage is never negative;
    /// a broken sample must not poison the rest).
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        self.sum += value;
        if value <= MIN_VALUE {
            self.zeros += 1;
            return;
        }
        let index = Self::index(value.min(MAX_VALUE));
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        } else if index < self.offset {
            let grow = usize::try_from(self.offset - index).unwrap_or(0);
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        } else {
            let needed = usize::try_from(index - self.offset).unwrap_or(0) + 1;
            if needed > self.counts.len() {
                self.counts.resize(needed, 0);
            }
        }
        let slot = usize::try_from(index - self.offset).unwrap_or(0);
        self.counts[slot] = self.counts[slot].saturating_add(1);
    }

    /// Folds another sketch into this one (the result is the sketch of both streams).
    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
        self.zeros += other.zeros;
        for (slot, &count) in other.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let index = other.offset + i32::try_from(slot).unwrap_or(i32::MAX);
            if self.counts.is_empty() {
                self.offset = index;
                self.counts.push(0);
            } else if index < self.offset {
                let grow = usize::try_from(self.offset - index).unwrap_or(0);
                self.counts.splice(0..0, std::iter::repeat_n(0, grow));
                self.offset = index;
            }
            let at = usize::try_from(index - self.offset).unwrap_or(0);
            if at >= self.counts.len() {
                self.counts.resize(at + 1, 0);
            }
            self.counts[at] = self.counts[at].saturating_add(count);
        }
    }

    #[allow(clippy::cast_possible_truncation)]
    fn index(value: f64) -> i32 {
        // Values are clamped to (MIN_VALUE, MAX_VALUE], so the index is within +-1,800. The
        // ceiling by hand: `f64::ceil` is a library call on baseline x86-64.
        let exact = value.ln() * INV_LN_GAMMA;
        let truncated = exact as i32;
        if exact > f64::from(truncated) {
            truncated + 1
        } else {
            truncated
        }
    }

    /// The value that stands for bucket `index`: the point of least relative error.
    fn value(index: i32) -> f64 {
        let gamma = LN_GAMMA.exp();
        2.0 * (f64::from(index) * LN_GAMMA).exp() / (1.0 + gamma)
    }

    /// How many values were added.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value added (0 when empty).
    #[must_use]
    pub fn min(&self) -> f64 {
        self.min
    }

    /// The largest value added, exactly (0 when empty).
    #[must_use]
    pub fn max(&self) -> f64 {
        self.max
    }

    /// The mean of the values added (0 when empty).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The `q`-quantile (0 to 1) by rank: the value at rank `ceil(q * count)`, within 1 %,
    /// clamped to the exact minimum and maximum. `None` when empty.
    #[must_use]
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        if q <= 0.0 {
            return Some(self.min);
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        // The nearest-rank definition: the smallest value with at least q of the values at or
        // below it.
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        if rank <= self.zeros {
            return Some(self.min.max(0.0));
        }
        let mut seen = self.zeros;
        for (slot, &count) in self.counts.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                let index = self.offset + i32::try_from(slot).unwrap_or(i32::MAX);
                return Some(Self::value(index).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Bytes of heap this sketch holds.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are exact by design: extremes, merges
mod tests {
    use super::*;

    fn exact(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((q * values.len() as f64).ceil() as usize).max(1);
        values[rank - 1]
    }

    #[test]
    fn quantiles_are_within_the_relative_accuracy_of_the_true_ones() {
        let mut rng = fastrand::Rng::with_seed(7);
        for scale in [0.5, 250.0, 3e9] {
            let mut values: Vec<f64> = (0..20_000)
                .map(|_| scale * (0.2 + rng.f64() * rng.f64() * 4.0))
                .collect();
            let mut sketch = Sketch::new();
            for &v in &values {
                sketch.add(v);
            }
            for q in [0.01, 0.5, 0.9, 0.95, 0.99, 0.999] {
                let want = exact(&mut values, q);
                let got = sketch.quantile(q).unwrap();
                assert!(
                    (got - want).abs() <= want * RELATIVE_ACCURACY * 1.000_001,
                    "q{q} at scale {scale}: {got} vs {want}"
                );
            }
            assert_eq!(sketch.count(), 20_000);
            assert_eq!(sketch.max(), values.iter().copied().fold(0.0, f64::max));
            assert!(sketch.heap_bytes() < 4096, "{}", sketch.heap_bytes());
        }
    }

    #[test]
    fn the_written_out_constants_are_the_accuracy_s() {
        let ln_gamma = ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln();
        assert!((LN_GAMMA - ln_gamma).abs() < 1e-15);
        assert!((INV_LN_GAMMA - 1.0 / ln_gamma).abs() < 1e-11);
        // Bucket edges land in the bucket they close.
        for index in [-300, -1, 0, 1, 7, 900] {
            let edge = (f64::from(index) * LN_GAMMA).exp();
            assert!((Sketch::index(edge) - index).abs() <= 1, "{index}");
            assert_eq!(Sketch::index(edge * 1.000_001), index + 1);
        }
    }

    #[test]
    fn merging_gives_the_sketch_of_both_streams() {
        let (mut a, mut b, mut both) = (Sketch::new(), Sketch::new(), Sketch::new());
        for i in 0..1000 {
            let value = f64::from(i) * 1.7;
            if i % 3 == 0 { &mut a } else { &mut b }.add(value);
            both.add(value);
        }
        a.merge(&b);
        assert_eq!(a.count(), both.count());
        for q in [0.0, 0.1, 0.5, 0.95, 1.0] {
            assert_eq!(a.quantile(q), both.quantile(q), "q{q}");
        }
        let mut empty = Sketch::new();
        empty.merge(&a);
        assert_eq!(empty.quantile(0.95), a.quantile(0.95));
    }

    #[test]
    fn zeros_garbage_and_empty_sketches_are_handled() {
        let mut sketch = Sketch::new();
        assert_eq!(sketch.quantile(0.95), None);
        for value in [f64::NAN, -1.0, f64::INFINITY] {
            sketch.add(value);
        }
        assert_eq!(sketch.count(), 0);
        for _ in 0..96 {
            sketch.add(0.0);
        }
        for _ in 0..4 {
            sketch.add(100.0);
        }
        assert_eq!(sketch.quantile(0.95), Some(0.0));
        assert!((sketch.quantile(0.97).unwrap() - 100.0).abs() <= 1.0);
        assert_eq!(sketch.quantile(1.0), Some(100.0));
        sketch.add(1e300);
        assert_eq!(sketch.max(), 1e300);
        assert!(sketch.heap_bytes() < 16_384);
    }
}
