//! What invocations did: a lock-free recorder and the mergeable summaries it hands out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Latencies below `2^SUB_BITS` µs get a bucket each; above, each power of two is cut into
/// `2^SUB_BITS` equal buckets, so a bucket is at most 1/16 (6.25%) of its lower bound wide.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

/// The longest latency told apart: 15 minutes, the longest an invocation may run. Longer ones
/// are counted in the last bucket.
pub const MAX_LATENCY: Duration = Duration::from_secs(15 * 60);

/// How many latency buckets a histogram has at most.
pub const BUCKETS: usize = bucket_of(MAX_LATENCY.as_micros() as u64) + 1;

/// The bucket of a latency in whole microseconds.
const fn bucket_of(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros();
    let shift = msb - SUB_BITS;
    // The top SUB_BITS + 1 bits: SUB..2*SUB, the first of them always set.
    let top = us >> shift;
    (shift as u64 * SUB + top) as usize
}

/// The smallest latency in µs beyond bucket `b` (its exclusive upper bound).
fn bucket_end_us(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b + 1;
    }
    let shift = b / SUB - 1;
    let top = SUB + b % SUB;
    (top + 1) << shift
}

/// What a batch of invocations did.
///
/// `histogram[i]` counts the invocations whose latency fell in bucket `i` (log-linear in
/// microseconds; see [`Outcomes`]). Trailing empty buckets are left out, so a summary of fast
/// invocations stays short. Two summaries add up exactly with [`WindowSummary::merge`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSummary {
    pub requests: u64,
    pub errors: u64,
    pub histogram: Vec<u64>,
}

impl WindowSummary {
    pub fn merge(&mut self, other: &WindowSummary) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        if self.histogram.len() < other.histogram.len() {
            self.histogram.resize(other.histogram.len(), 0);
        }
        for (mine, theirs) in self.histogram.iter_mut().zip(&other.histogram) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The fraction of requests that failed, 0 when there were none.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.errors as f64 / self.requests as f64 }
    }

    /// The 99th percentile latency in ms: see [`WindowSummary::quantile_ms`].
    pub fn p99_ms(&self) -> Option<f64> {
        self.quantile_ms(0.99)
    }

    /// The latency in ms that a fraction `q` (0..=1) of requests did not exceed, as the upper
    /// bound of its bucket: never below the true value, and at most ~6.25% above it (1 µs at
    /// the bottom). `None` when no latencies were recorded or `q` is not a number.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if q.is_nan() {
            return None;
        }
        let total: u64 = self.histogram.iter().fold(0u64, |sum, &n| sum.saturating_add(n));
        if total == 0 {
            return None;
        }
        // The rank of the wanted latency among the sorted latencies, 1-based.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (b, &n) in self.histogram.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen >= rank {
                return Some(bucket_end_us(b) as f64 / 1000.0);
            }
        }
        None
    }
}

/// Lock-free recorder of invocation outcomes, called once per invocation on the hot path.
///
/// Latencies are counted in log-linear buckets from 1 µs to [`MAX_LATENCY`] with at most 6.25%
/// relative error. Successes and failures have histograms of their own, so one invocation is one
/// relaxed add to one counter: a [`WindowSummary`] from [`Outcomes::take`] can never count a
/// request without its latency, or an error without its request, however records and takes
/// interleave.
pub struct Outcomes {
    ok: Box<[AtomicU64]>,
    failed: Box<[AtomicU64]>,
}

impl Default for Outcomes {
    fn default() -> Self {
        let buckets = || (0..BUCKETS).map(|_| AtomicU64::new(0)).collect();
        Outcomes { ok: buckets(), failed: buckets() }
    }
}

impl Outcomes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one invocation.
    pub fn record(&self, ok: bool, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let b = bucket_of(us).min(BUCKETS - 1);
        let counts = if ok { &self.ok } else { &self.failed };
        counts[b].fetch_add(1, Ordering::Relaxed);
    }

    /// Everything recorded since the previous take, resetting the counts. Each counter is
    /// swapped with zero, so under concurrent `record`s every result lands in exactly one take.
    pub fn take(&self) -> WindowSummary {
        let mut errors = 0u64;
        let mut histogram: Vec<u64> = self
            .ok
            .iter()
            .zip(self.failed.iter())
            .map(|(ok, failed)| {
                let failed = failed.swap(0, Ordering::Relaxed);
                errors += failed;
                ok.swap(0, Ordering::Relaxed) + failed
            })
            .collect();
        let used = histogram.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
        histogram.truncate(used);
        let requests = histogram.iter().sum();
        WindowSummary { requests, errors, histogram }
    }
}

#[cfg(test)]
pub(crate) fn bucket_range_us(latency_us: u64) -> (u64, u64) {
    let b = bucket_of(latency_us);
    let start = if b == 0 { 0 } else { bucket_end_us(b - 1) };
    (start, bucket_end_us(b))
}
