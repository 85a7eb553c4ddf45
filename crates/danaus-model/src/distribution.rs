//! Distributions: bucketers, bucket counts, moments and exemplars.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Timestamp;

/// How values map to buckets. Every bucketer has an underflow bucket below
/// its first bound and an overflow bucket at or above its last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucketer {
    /// Strictly increasing bounds `b0 < b1 < …`: buckets `(-inf, b0)`,
    /// `[b0, b1)`, …, `[b_last, +inf)`.
    Explicit {
        /// The bounds.
        bounds: Vec<f64>,
    },
    /// `num_finite` buckets of equal `width` starting at `offset`.
    Linear {
        /// Number of finite buckets.
        num_finite: u32,
        /// Bucket width (> 0).
        width: f64,
        /// Lower bound of the first finite bucket.
        offset: f64,
    },
    /// `num_finite` buckets with bounds `scale * growth^i`.
    Exponential {
        /// Number of finite buckets.
        num_finite: u32,
        /// Ratio between successive bounds (> 1).
        growth: f64,
        /// First bound (> 0).
        scale: f64,
    },
}

/// Largest number of buckets a distribution may have.
pub const MAX_BUCKETS: usize = 10_000;

impl Bucketer {
    /// Number of buckets including underflow and overflow.
    pub fn num_buckets(&self) -> usize {
        match self {
            Bucketer::Explicit { bounds } => bounds.len() + 1,
            Bucketer::Linear { num_finite, .. } | Bucketer::Exponential { num_finite, .. } => *num_finite as usize + 2,
        }
    }

    /// Lower bound of bucket `i` (`-inf` for the underflow bucket).
    pub fn lower_bound(&self, i: usize) -> f64 {
        if i == 0 {
            return f64::NEG_INFINITY;
        }
        match self {
            Bucketer::Explicit { bounds } => bounds.get(i - 1).copied().unwrap_or(f64::INFINITY),
            Bucketer::Linear { width, offset, .. } => offset + width * (i - 1) as f64,
            Bucketer::Exponential { growth, scale, .. } => scale * growth.powi(i as i32 - 1),
        }
    }

    /// Upper bound (exclusive) of bucket `i` (`+inf` for the overflow bucket).
    pub fn upper_bound(&self, i: usize) -> f64 {
        if i + 1 >= self.num_buckets() {
            f64::INFINITY
        } else {
            self.lower_bound(i + 1)
        }
    }

    /// The bucket `value` falls into.
    pub fn bucket_for(&self, value: f64) -> usize {
        let n = self.num_buckets();
        // Bounds are increasing, so binary search over lower bounds.
        let (mut lo, mut hi) = (0usize, n - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.lower_bound(mid) <= value {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidDistribution(m));
        match self {
            Bucketer::Explicit { bounds } => {
                if bounds.iter().any(|b| !b.is_finite()) {
                    return bad("explicit bounds must be finite".into());
                }
                if let Some(w) = bounds.windows(2).position(|w| w[0] >= w[1]) {
                    return bad(format!(
                        "explicit bounds must be strictly increasing: bound {} ({}) >= bound {} ({})",
                        w,
                        bounds[w],
                        w + 1,
                        bounds[w + 1]
                    ));
                }
            }
            Bucketer::Linear { width, offset, .. } => {
                if !(width.is_finite() && *width > 0.0 && offset.is_finite()) {
                    return bad(format!("linear bucketer needs a finite width > 0 and a finite offset, got width={width} offset={offset}"));
                }
            }
            Bucketer::Exponential { growth, scale, num_finite } => {
                if !(growth.is_finite() && *growth > 1.0 && scale.is_finite() && *scale > 0.0) {
                    return bad(format!(
                        "exponential bucketer needs growth > 1 and scale > 0, got growth={growth} scale={scale}"
                    ));
                }
                if !scale.mul_add(growth.powi(*num_finite as i32), 0.0).is_finite() {
                    return bad(format!(
                        "exponential bucketer overflows: scale {scale} * growth {growth}^{num_finite} is not finite"
                    ));
                }
            }
        }
        if self.num_buckets() > MAX_BUCKETS {
            return bad(format!("{} buckets is more than the limit of {MAX_BUCKETS}", self.num_buckets()));
        }
        Ok(())
    }

    fn same_as(&self, other: &Bucketer) -> bool {
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        match (self, other) {
            (Bucketer::Explicit { bounds: a }, Bucketer::Explicit { bounds: b }) => bits(a) == bits(b),
            (a, b) => a == b,
        }
    }
}

/// A sample value recorded with the bucket it landed in, linking to a trace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Exemplar {
    /// The sampled value.
    pub value: f64,
    /// When it was sampled.
    pub time: Timestamp,
    /// Trace id (16 bytes in W3C trace context, but any length is kept).
    #[serde(default)]
    pub trace_id: Vec<u8>,
    /// Span id.
    #[serde(default)]
    pub span_id: Vec<u8>,
    /// Free-form attachments.
    #[serde(default)]
    pub attachments: BTreeMap<String, String>,
}

/// A bucketed distribution of values with its moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// How values map to buckets.
    pub bucketer: Bucketer,
    /// One count per bucket (`bucketer.num_buckets()` of them).
    pub bucket_counts: Vec<u64>,
    /// Number of values; equals the sum of `bucket_counts`.
    pub count: u64,
    /// Mean of the values (0 when `count` is 0).
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub sum_of_squared_deviation: f64,
    /// At most one exemplar per bucket, as `(bucket index, exemplar)` sorted
    /// by bucket.
    #[serde(default)]
    pub exemplars: Vec<(u32, Exemplar)>,
}

impl Distribution {
    /// An empty distribution over `bucketer`.
    pub fn empty(bucketer: Bucketer) -> Self {
        let n = bucketer.num_buckets();
        Self {
            bucketer,
            bucket_counts: vec![0; n],
            count: 0,
            mean: 0.0,
            sum_of_squared_deviation: 0.0,
            exemplars: Vec::new(),
        }
    }

    /// Builds a distribution from raw values (Welford's algorithm).
    pub fn from_values(bucketer: Bucketer, values: &[f64]) -> Self {
        let mut d = Self::empty(bucketer);
        for &v in values {
            d.record(v);
        }
        d
    }

    /// Adds one value.
    pub fn record(&mut self, v: f64) {
        let b = self.bucketer.bucket_for(v);
        self.bucket_counts[b] += 1;
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.sum_of_squared_deviation += delta * (v - self.mean);
    }

    /// Sum of the values.
    pub fn sum(&self) -> f64 {
        self.mean * self.count as f64
    }

    /// Variance of the values (population).
    pub fn variance(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_of_squared_deviation / self.count as f64
        }
    }

    /// Checks internal consistency.
    pub fn validate(&self) -> Result<()> {
        self.bucketer.validate()?;
        let bad = |m: String| Err(Error::InvalidDistribution(m));
        if self.bucket_counts.len() != self.bucketer.num_buckets() {
            return bad(format!(
                "{} bucket counts for a bucketer with {} buckets",
                self.bucket_counts.len(),
                self.bucketer.num_buckets()
            ));
        }
        let sum = self.bucket_counts.iter().try_fold(0u64, |a, &c| a.checked_add(c));
        if sum != Some(self.count) {
            return bad(format!("count {} does not equal the sum of bucket counts ({sum:?})", self.count));
        }
        if !self.mean.is_finite() || !self.sum_of_squared_deviation.is_finite() {
            return bad("mean and sum_of_squared_deviation must be finite".into());
        }
        if self.sum_of_squared_deviation < 0.0 {
            return bad(format!("sum_of_squared_deviation {} is negative", self.sum_of_squared_deviation));
        }
        let mut last = None;
        for (b, _) in &self.exemplars {
            if *b as usize >= self.bucket_counts.len() {
                return bad(format!("exemplar for bucket {b} but there are {} buckets", self.bucket_counts.len()));
            }
            if last.is_some_and(|l| l >= *b) {
                return bad("exemplars must be sorted by bucket, at most one per bucket".into());
            }
            last = Some(*b);
        }
        Ok(())
    }

    /// Merges two distributions over the same bucketer. Counts add exactly;
    /// mean and sum of squared deviations combine with Chan et al.'s
    /// parallel formula; per bucket the newer exemplar wins.
    pub fn merge(&self, other: &Distribution) -> Result<Distribution> {
        if !self.bucketer.same_as(&other.bucketer) {
            return Err(Error::InvalidDistribution(format!(
                "cannot merge distributions with different bucketers ({:?} and {:?})",
                self.bucketer, other.bucketer
            )));
        }
        let count = self.count + other.count;
        let (mean, ssd) = if count == 0 {
            (0.0, 0.0)
        } else {
            let (na, nb, n) = (self.count as f64, other.count as f64, count as f64);
            let mean = (na * self.mean + nb * other.mean) / n;
            let delta = other.mean - self.mean;
            let ssd = self.sum_of_squared_deviation + other.sum_of_squared_deviation + delta * delta * (na * nb / n);
            (mean, ssd)
        };
        let bucket_counts = self.bucket_counts.iter().zip(&other.bucket_counts).map(|(a, b)| a + b).collect();
        let mut exemplars: BTreeMap<u32, Exemplar> = BTreeMap::new();
        for (b, e) in self.exemplars.iter().chain(&other.exemplars) {
            match exemplars.get(b) {
                Some(cur) if exemplar_rank(cur) >= exemplar_rank(e) => {}
                _ => {
                    exemplars.insert(*b, e.clone());
                }
            }
        }
        Ok(Distribution {
            bucketer: self.bucketer.clone(),
            bucket_counts,
            count,
            mean,
            sum_of_squared_deviation: ssd,
            exemplars: exemplars.into_iter().collect(),
        })
    }

    /// Bit-exact equality (see [`crate::Value::same_as`]).
    pub fn same_as(&self, other: &Distribution) -> bool {
        self.bucketer.same_as(&other.bucketer)
            && self.bucket_counts == other.bucket_counts
            && self.count == other.count
            && self.mean.to_bits() == other.mean.to_bits()
            && self.sum_of_squared_deviation.to_bits() == other.sum_of_squared_deviation.to_bits()
            && self.exemplars == other.exemplars
    }

    /// Estimates the `p`-th percentile (0..=100) by linear interpolation
    /// inside the bucket that holds it.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.count == 0 || !p.is_finite() {
            return f64::NAN;
        }
        let rank = (p.clamp(0.0, 100.0) / 100.0) * self.count as f64;
        let mut seen = 0.0;
        for (i, &c) in self.bucket_counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let next = seen + c as f64;
            if next >= rank {
                let (lo, hi) = (self.bucketer.lower_bound(i), self.bucketer.upper_bound(i));
                return match (lo.is_finite(), hi.is_finite()) {
                    (true, true) => lo + (hi - lo) * ((rank - seen) / c as f64),
                    (false, true) => hi,
                    (true, false) => lo,
                    (false, false) => self.mean,
                };
            }
            seen = next;
        }
        self.bucketer.lower_bound(self.bucket_counts.len() - 1)
    }
}

/// Total order used to pick the surviving exemplar deterministically, so
/// merge stays commutative.
fn exemplar_rank(e: &Exemplar) -> (Timestamp, u64, &[u8], &[u8]) {
    (e.time, e.value.to_bits(), &e.trace_id, &e.span_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bucketer() -> Bucketer {
        Bucketer::Exponential { num_finite: 20, growth: 2.0, scale: 1.0 }
    }

    #[test]
    fn buckets_and_bounds() {
        let b = Bucketer::Explicit { bounds: vec![1.0, 2.0, 5.0] };
        assert_eq!(b.num_buckets(), 4);
        assert_eq!(b.bucket_for(0.5), 0);
        assert_eq!(b.bucket_for(1.0), 1);
        assert_eq!(b.bucket_for(4.9), 2);
        assert_eq!(b.bucket_for(5.0), 3);
        assert_eq!(b.bucket_for(f64::INFINITY), 3);
        let l = Bucketer::Linear { num_finite: 3, width: 10.0, offset: 0.0 };
        assert_eq!(l.bucket_for(-1.0), 0);
        assert_eq!(l.bucket_for(0.0), 1);
        assert_eq!(l.bucket_for(29.9), 3);
        assert_eq!(l.bucket_for(30.0), 4);
        assert!(Bucketer::Explicit { bounds: vec![2.0, 1.0] }.validate().is_err());
        assert!(Bucketer::Exponential { num_finite: 3, growth: 1.0, scale: 1.0 }.validate().is_err());
    }

    #[test]
    fn moments_match_direct_computation() {
        let vals = [1.0, 2.0, 3.0, 4.0, 100.0];
        let d = Distribution::from_values(bucketer(), &vals);
        d.validate().unwrap();
        assert_eq!(d.count, 5);
        assert!((d.mean - 22.0).abs() < 1e-12);
        let ssd: f64 = vals.iter().map(|v| (v - 22.0) * (v - 22.0)).sum();
        assert!((d.sum_of_squared_deviation - ssd).abs() < 1e-9);
        assert!(d.percentile(50.0) >= 2.0 && d.percentile(50.0) <= 4.0);
    }

    #[test]
    fn merge_refuses_different_bucketers() {
        let a = Distribution::from_values(bucketer(), &[1.0]);
        let b = Distribution::from_values(Bucketer::Explicit { bounds: vec![1.0] }, &[1.0]);
        assert!(a.merge(&b).unwrap_err().to_string().contains("different bucketers"));
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    fn arb_dist() -> impl Strategy<Value = Distribution> {
        (prop::collection::vec(-1e6f64..1e6, 0..40), prop::option::of((0i64..1000, -1e3f64..1e3))).prop_map(
            |(vals, ex)| {
                let mut d = Distribution::from_values(bucketer(), &vals);
                if let Some((t, v)) = ex {
                    let b = d.bucketer.bucket_for(v) as u32;
                    d.exemplars.push((b, Exemplar { value: v, time: t, ..Default::default() }));
                }
                d
            },
        )
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_dist(), b in arb_dist()) {
            let ab = a.merge(&b).unwrap();
            let ba = b.merge(&a).unwrap();
            prop_assert!(ab.same_as(&ba), "{ab:?} != {ba:?}");
            ab.validate().unwrap();
        }

        #[test]
        fn merge_is_associative(a in arb_dist(), b in arb_dist(), c in arb_dist()) {
            let l = a.merge(&b).unwrap().merge(&c).unwrap();
            let r = a.merge(&b.merge(&c).unwrap()).unwrap();
            prop_assert_eq!(&l.bucket_counts, &r.bucket_counts);
            prop_assert_eq!(l.count, r.count);
            prop_assert_eq!(&l.exemplars, &r.exemplars);
            prop_assert!(close(l.mean, r.mean), "{} vs {}", l.mean, r.mean);
            prop_assert!(close(l.sum_of_squared_deviation, r.sum_of_squared_deviation));
        }

        #[test]
        fn merge_equals_recording_everything(xs in prop::collection::vec(-1e6f64..1e6, 0..40), ys in prop::collection::vec(-1e6f64..1e6, 0..40)) {
            let merged = Distribution::from_values(bucketer(), &xs).merge(&Distribution::from_values(bucketer(), &ys)).unwrap();
            let all: Vec<f64> = xs.iter().chain(&ys).copied().collect();
            let direct = Distribution::from_values(bucketer(), &all);
            prop_assert_eq!(&merged.bucket_counts, &direct.bucket_counts);
            prop_assert!(close(merged.mean, direct.mean));
            prop_assert!((merged.sum_of_squared_deviation - direct.sum_of_squared_deviation).abs() <= 1e-6 * (1.0 + direct.sum_of_squared_deviation));
        }
    }
}
