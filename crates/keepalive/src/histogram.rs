//! The adaptive policy's memory of one function: a range-limited histogram of idle times.

/// At most this many bins (a week of one-minute bins, 40 KiB), whatever the configuration asks for:
/// the histogram is allocated once and never grows.
pub(crate) const MAX_BINS: usize = 7 * 24 * 60;

/// Idle times (end of the last execution to the start of the next), counted in fixed-width bins
/// over `[0, bins × bin_ms)`; longer ones are only counted as out of range.
#[derive(Clone, Debug)]
pub(crate) struct IdleHistogram {
    bin_ms: u64,
    /// Allocated once at construction; counts saturate by halving every bin (see `record`).
    bins: Box<[u32]>,
    in_range: u64,
    out_of_range: u64,
}

impl IdleHistogram {
    /// `bin_ms` ≥ 1; the number of bins is `range_ms / bin_ms` rounded up, within 1..=[`MAX_BINS`].
    pub(crate) fn new(bin_ms: u64, range_ms: u64) -> Self {
        let bin_ms = bin_ms.max(1);
        let bins = usize::try_from(range_ms.div_ceil(bin_ms)).unwrap_or(MAX_BINS).clamp(1, MAX_BINS);
        IdleHistogram { bin_ms, bins: vec![0; bins].into_boxed_slice(), in_range: 0, out_of_range: 0 }
    }

    pub(crate) fn bin_ms(&self) -> u64 {
        self.bin_ms
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bins.len()
    }

    pub(crate) fn in_range(&self) -> u64 {
        self.in_range
    }

    pub(crate) fn out_of_range(&self) -> u64 {
        self.out_of_range
    }

    pub(crate) fn total(&self) -> u64 {
        self.in_range + self.out_of_range
    }

    pub(crate) fn record(&mut self, idle_ms: u64) {
        let index = idle_ms / self.bin_ms;
        let Some(slot) = usize::try_from(index).ok().filter(|i| *i < self.bins.len()) else {
            self.out_of_range = self.out_of_range.saturating_add(1);
            return;
        };
        if self.bins[slot] == u32::MAX {
            self.halve();
        }
        self.bins[slot] += 1;
        self.in_range += 1;
    }

    /// Halves every count (rounding up, so no observed bin vanishes): the shape, and so the
    /// percentiles and the coefficient of variation, stay about the same while the counts stay
    /// within `u32`. Older history weighs half as much afterwards.
    fn halve(&mut self) {
        for count in self.bins.iter_mut() {
            *count = count.div_ceil(2);
        }
        self.in_range = self.bins.iter().map(|c| u64::from(*c)).sum();
        self.out_of_range = self.out_of_range.div_ceil(2);
    }

    /// `(bin index, count)` for every bin.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.bins.iter().copied().enumerate()
    }

    /// The index of the bin holding the `pct`-th percentile of the in-range idle times: the first
    /// bin at which the cumulative count reaches `pct`% of them (nearest rank). `None` when empty.
    pub(crate) fn percentile_bin(&self, pct: f64) -> Option<usize> {
        if self.in_range == 0 {
            return None;
        }
        let rank = ((pct.clamp(0.0, 100.0) * self.in_range as f64) / 100.0).ceil().max(1.0) as u64;
        let mut cumulative = 0u64;
        for (i, count) in self.bins.iter().enumerate() {
            cumulative += u64::from(*count);
            if cumulative >= rank {
                return Some(i);
            }
        }
        Some(self.bins.len() - 1)
    }

    /// The coefficient of variation (population standard deviation over mean) of the bin counts:
    /// high when the idle times gather in a few bins (a pattern), near 0 when they spread evenly.
    /// 0 when empty.
    pub(crate) fn cv(&self) -> f64 {
        if self.in_range == 0 {
            return 0.0;
        }
        let n = self.bins.len() as f64;
        let mean = self.in_range as f64 / n;
        let variance = self.bins.iter().map(|c| (f64::from(*c) - mean).powi(2)).sum::<f64>() / n;
        variance.sqrt() / mean
    }

    #[cfg(test)]
    pub(crate) fn set_bin(&mut self, index: usize, count: u32) {
        self.in_range = self.in_range - u64::from(self.bins[index]) + u64::from(count);
        self.bins[index] = count;
    }

    #[cfg(test)]
    pub(crate) fn bin(&self, index: usize) -> u32 {
        self.bins[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_range_rounded_up_and_are_capped() {
        assert_eq!(IdleHistogram::new(60_000, 4 * 3_600_000).len(), 240);
        assert_eq!(IdleHistogram::new(60_000, 61_000).len(), 2);
        assert_eq!(IdleHistogram::new(0, 10).len(), 10, "a zero bin is one millisecond");
        assert_eq!(IdleHistogram::new(60_000, 0).len(), 1);
        assert_eq!(IdleHistogram::new(1, u64::MAX).len(), MAX_BINS);
    }

    #[test]
    fn values_land_in_their_bin_or_out_of_range() {
        let mut h = IdleHistogram::new(60_000, 4 * 3_600_000);
        h.record(0);
        h.record(59_999);
        h.record(60_000);
        h.record(4 * 3_600_000 - 1);
        h.record(4 * 3_600_000);
        h.record(u64::MAX);
        assert_eq!((h.bin(0), h.bin(1), h.bin(239)), (2, 1, 1));
        assert_eq!((h.in_range(), h.out_of_range(), h.total()), (4, 2, 6));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut h = IdleHistogram::new(60_000, 4 * 3_600_000);
        assert_eq!(h.percentile_bin(5.0), None);
        for (bin, count) in [(2, 5), (10, 94), (50, 1)] {
            for _ in 0..count {
                h.record(bin * 60_000 + 30_000);
            }
        }
        // 100 values: the 5th is in bin 2, the 99th in bin 10, the 100th in bin 50.
        assert_eq!(h.percentile_bin(5.0), Some(2));
        assert_eq!(h.percentile_bin(99.0), Some(10));
        assert_eq!(h.percentile_bin(100.0), Some(50));
        assert_eq!(h.percentile_bin(0.0), Some(2));
        // 101 values: the 5th percentile is now the 6th value, the 99th the 100th.
        h.record(50 * 60_000);
        assert_eq!(h.percentile_bin(5.0), Some(10));
        assert_eq!(h.percentile_bin(99.0), Some(50));
    }

    #[test]
    fn cv_separates_a_pattern_from_noise() {
        let mut concentrated = IdleHistogram::new(60_000, 4 * 3_600_000);
        let mut spread = concentrated.clone();
        for i in 0..240 {
            concentrated.record(30 * 60_000);
            spread.record(i * 60_000);
        }
        // All in one of n bins: CV = sqrt(n - 1).
        assert!((concentrated.cv() - 239f64.sqrt()).abs() < 1e-9, "{}", concentrated.cv());
        assert!(spread.cv().abs() < 1e-9, "{}", spread.cv());
        // Evenly over b of n bins: CV = sqrt(n / b - 1); 2 at b = 48.
        let mut over_48 = IdleHistogram::new(60_000, 4 * 3_600_000);
        for i in 0..48 * 3 {
            over_48.record((i % 48) * 60_000);
        }
        assert!((over_48.cv() - 2.0).abs() < 1e-9, "{}", over_48.cv());
        assert_eq!(IdleHistogram::new(60_000, 60_000).cv(), 0.0);
    }

    #[test]
    fn a_full_bin_halves_the_histogram_instead_of_overflowing() {
        let mut h = IdleHistogram::new(60_000, 4 * 3_600_000);
        h.set_bin(3, u32::MAX);
        h.set_bin(7, 3);
        h.record(5_000);
        h.record(5_000);
        h.out_of_range = 5;
        h.record(3 * 60_000);
        assert_eq!(h.bin(3), u32::MAX / 2 + 1 + 1);
        assert_eq!((h.bin(7), h.bin(0)), (2, 1));
        assert_eq!(h.in_range(), u64::from(h.bin(3)) + 2 + 1);
        assert_eq!(h.out_of_range(), 3);
        assert_eq!(h.len(), 240);
    }
}
