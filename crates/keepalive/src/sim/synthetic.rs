//! Synthetic traces in the Azure Functions 2019 format, from a seed: for tests, and to try the
//! policies without the real trace.
//!
//! The generator is a 64-bit linear congruential generator (Knuth's MMIX constants; the high bits
//! are used): not for statistics, but deterministic everywhere, with no dependency.

use std::fmt::Write;

use super::trace::{Trace, TraceError};

/// A deterministic pseudo-random sequence.
#[derive(Clone, Debug)]
pub struct Lcg {
    state: u64,
}

impl Lcg {
    pub fn new(seed: u64) -> Self {
        let mut lcg = Lcg { state: seed ^ 0x9e37_79b9_7f4a_7c15 };
        lcg.next_u32();
        lcg
    }

    pub fn next_u32(&mut self) -> u32 {
        self.state =
            self.state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.state >> 32) as u32
    }

    /// Uniform in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(n)) >> 32) as u32
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        lo + self.below(hi - lo + 1)
    }
}

/// When an application is invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Once every `every` minutes (from a random phase), each invocation moved by a uniform
    /// `-jitter..=jitter` minutes: a timer.
    Periodic { every: u32, jitter: u32 },
    /// `per_minute` invocations in every minute.
    Steady { per_minute: u32 },
    /// Bursts of `length` minutes with `1..=per_minute` invocations in each, separated by quiet
    /// gaps of `gap_min..=gap_max` minutes.
    Bursty { gap_min: u32, gap_max: u32, length: u32, per_minute: u32 },
    /// `count` invocations at uniformly random minutes.
    Rare { count: u32 },
}

impl Pattern {
    fn name(&self) -> &'static str {
        match self {
            Pattern::Periodic { .. } => "periodic",
            Pattern::Steady { .. } => "steady",
            Pattern::Bursty { .. } => "bursty",
            Pattern::Rare { .. } => "rare",
        }
    }
}

/// One application of a synthetic trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub pattern: Pattern,
    /// The application's invocations go to this many functions (at least one), at random.
    pub functions: u32,
    /// Every function's `Average` execution time.
    pub duration_ms: u32,
    pub memory_mb: u32,
}

impl AppSpec {
    /// One function of 1 s and 256 MB.
    pub fn new(pattern: Pattern) -> Self {
        AppSpec { pattern, functions: 1, duration_ms: 1000, memory_mb: 256 }
    }
}

/// The three files of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticTrace {
    pub inv: String,
    pub run: String,
    pub mem: String,
}

impl SyntheticTrace {
    pub fn trace(&self) -> Result<Trace, TraceError> {
        Trace::from_readers(self.inv.as_bytes(), self.run.as_bytes(), self.mem.as_bytes())
    }
}

/// A trace of `minutes` minutes with the given applications. Application `i` is `app<i>-<pattern>`
/// (function `app<i>-<pattern>-f<j>`), all owned by `synthetic`.
pub fn generate(seed: u64, minutes: usize, apps: &[AppSpec]) -> SyntheticTrace {
    let mut rng = Lcg::new(seed);
    let minutes_u32 = u32::try_from(minutes).unwrap_or(u32::MAX);
    let mut inv = String::from("HashFunction,HashApp,HashOwner");
    for m in 1..=minutes {
        let _ = write!(inv, ",minute_{m}");
    }
    inv.push('\n');
    let mut run = String::from("HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum\n");
    let mut mem = String::from("HashApp,HashOwner,SampleCount,AverageAllocatedMb\n");
    for (i, spec) in apps.iter().enumerate() {
        let app = format!("app{i:03}-{}", spec.pattern.name());
        let functions = spec.functions.max(1);
        let mut counts = vec![vec![0u32; minutes]; functions as usize];
        let mut add = |rng: &mut Lcg, minute: u32, n: u32| {
            if let Some(slot) = usize::try_from(minute).ok().filter(|m| *m < minutes) {
                for _ in 0..n {
                    counts[rng.below(functions) as usize][slot] += 1;
                }
            }
        };
        match spec.pattern {
            Pattern::Periodic { every, jitter } => {
                let every = every.max(1);
                let mut base = rng.below(every);
                while base < minutes_u32.saturating_add(jitter) {
                    let shift = i64::from(rng.between(0, 2 * jitter)) - i64::from(jitter);
                    if let Ok(minute) = u32::try_from(i64::from(base) + shift) {
                        add(&mut rng, minute, 1);
                    }
                    base += every;
                }
            }
            Pattern::Steady { per_minute } => {
                for minute in 0..minutes_u32 {
                    add(&mut rng, minute, per_minute);
                }
            }
            Pattern::Bursty { gap_min, gap_max, length, per_minute } => {
                let mut start = rng.below(gap_max.max(1));
                while start < minutes_u32 {
                    for minute in start..start.saturating_add(length.max(1)) {
                        let n = rng.between(1, per_minute.max(1));
                        add(&mut rng, minute, n);
                    }
                    start = start.saturating_add(length.max(1)).saturating_add(rng.between(gap_min, gap_max));
                }
            }
            Pattern::Rare { count } => {
                for _ in 0..count {
                    let minute = rng.below(minutes_u32);
                    add(&mut rng, minute, 1);
                }
            }
        }
        for (j, per_minute) in counts.iter().enumerate() {
            let function = format!("{app}-f{j}");
            let _ = write!(inv, "{function},{app},synthetic");
            for c in per_minute {
                let _ = write!(inv, ",{c}");
            }
            inv.push('\n');
            let total: u64 = per_minute.iter().map(|c| u64::from(*c)).sum();
            let ms = spec.duration_ms;
            let _ = writeln!(run, "{function},{app},synthetic,{total},{ms},{ms},{ms}");
        }
        let _ = writeln!(mem, "{app},synthetic,{minutes},{}", spec.memory_mb);
    }
    SyntheticTrace { inv, run, mem }
}

/// `apps` applications of random patterns (seeded): 30% periodic timers (every 5 to 120 min,
/// jitter up to 2 min), 20% steady (1 to 20 a minute), 25% bursty (bursts of 1 to 10 min every
/// 20 min to 5 h), 25% rare (1 to 6 a trace); 1 to 3 functions of 50 ms to 30 s; 128 MB to 1 GB.
pub fn mixed(seed: u64, apps: usize, minutes: usize) -> SyntheticTrace {
    let mut rng = Lcg::new(seed.wrapping_add(1));
    let specs: Vec<AppSpec> = (0..apps)
        .map(|_| {
            let pattern = match rng.below(100) {
                0..30 => Pattern::Periodic { every: rng.between(5, 120), jitter: rng.below(3) },
                30..50 => Pattern::Steady { per_minute: rng.between(1, 20) },
                50..75 => Pattern::Bursty {
                    gap_min: rng.between(20, 60),
                    gap_max: rng.between(60, 300),
                    length: rng.between(1, 10),
                    per_minute: rng.between(1, 5),
                },
                _ => Pattern::Rare { count: rng.between(1, 6) },
            };
            AppSpec {
                pattern,
                functions: rng.between(1, 3),
                duration_ms: [50, 200, 1000, 5000, 30_000][rng.below(5) as usize],
                memory_mb: rng.between(128, 1024),
            }
        })
        .collect();
    generate(seed, minutes, &specs)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sim::{SimConfig, simulate};
    use crate::{AdaptiveConfig, KeepAlive};

    const DAY: usize = 24 * 60;

    #[test]
    fn the_generator_is_deterministic() {
        let mut a = Lcg::new(7);
        let mut b = Lcg::new(7);
        let xs: Vec<u32> = (0..100).map(|_| a.below(10)).collect();
        assert_eq!(xs, (0..100).map(|_| b.below(10)).collect::<Vec<_>>());
        assert!((0..10).all(|d| xs.contains(&d)), "{xs:?}");
        assert_ne!(Lcg::new(8).next_u32(), Lcg::new(7).next_u32());
        assert_eq!(mixed(3, 20, DAY), mixed(3, 20, DAY));
        assert_ne!(mixed(3, 20, DAY), mixed(4, 20, DAY));
        assert!((0..1000).all(|_| (5..=9).contains(&a.between(5, 9))));
    }

    #[test]
    fn patterns_produce_what_they_say() {
        let specs = [
            AppSpec::new(Pattern::Periodic { every: 30, jitter: 0 }),
            AppSpec::new(Pattern::Steady { per_minute: 3 }),
            AppSpec { functions: 2, ..AppSpec::new(Pattern::Rare { count: 5 }) },
            AppSpec::new(Pattern::Bursty { gap_min: 100, gap_max: 100, length: 4, per_minute: 2 }),
        ];
        let trace = generate(1, DAY, &specs).trace().unwrap();
        assert_eq!(trace.minutes, DAY);
        assert_eq!(trace.apps.len(), 4);
        let periodic = &trace.apps[0].functions[0].per_minute;
        let minutes: Vec<usize> = (0..DAY).filter(|m| periodic[*m] > 0).collect();
        assert_eq!(minutes.len(), 48);
        assert!(minutes.windows(2).all(|w| w[1] - w[0] == 30), "{minutes:?}");
        assert!(trace.apps[1].functions[0].per_minute.iter().all(|c| *c == 3));
        let rare = &trace.apps[2];
        assert_eq!(rare.functions.len(), 2);
        assert_eq!(rare.functions.iter().flat_map(|f| &f.per_minute).sum::<u32>(), 5);
        let bursty = &trace.apps[3].functions[0].per_minute;
        let active: Vec<usize> = (0..DAY).filter(|m| bursty[*m] > 0).collect();
        assert!(active.windows(2).all(|w| w[1] - w[0] == 1 || w[1] - w[0] == 101), "{active:?}");
        assert!(bursty.iter().all(|c| *c <= 2));
        assert_eq!(trace.apps[0].memory_mb, 256.0);
        assert_eq!(trace.apps[0].functions[0].duration, Duration::from_secs(1));
        assert_eq!((trace.defaulted_durations, trace.defaulted_memory), (0, 0));
    }

    #[test]
    fn a_timer_every_30_minutes_is_cold_under_10_minutes_and_prewarmed_by_the_histogram() {
        let spec = AppSpec::new(Pattern::Periodic { every: 30, jitter: 1 });
        let trace = generate(42, 3 * DAY, &[spec]).trace().unwrap();
        let config = SimConfig::default();
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let fixed_10 = simulate(&trace, &KeepAlive::fixed(minutes(10)), &config);
        let fixed_30 = simulate(&trace, &KeepAlive::fixed(minutes(30)), &config);
        let adaptive = simulate(&trace, &KeepAlive::adaptive(AdaptiveConfig::default()), &config);
        assert_eq!(fixed_10.invocations, 144);
        assert_eq!(fixed_10.cold_pct(), 100.0);
        // The histogram needs 10 idle times first; then every start is pre-warmed.
        assert!(adaptive.cold_starts <= 11, "{adaptive:?}");
        assert!(adaptive.cold_pct() < 8.0);
        // Loaded from 0.9 × the shortest idle time on: about 6 minutes a period, against 10, or
        // about 30 for a 30-minute window, which still misses the periods stretched by jitter.
        assert!(
            adaptive.wasted_gb_s < 0.65 * fixed_10.wasted_gb_s,
            "{} {}",
            adaptive.wasted_gb_s,
            fixed_10.wasted_gb_s
        );
        assert!(
            adaptive.wasted_gb_s < 0.25 * fixed_30.wasted_gb_s,
            "{} {}",
            adaptive.wasted_gb_s,
            fixed_30.wasted_gb_s
        );
        assert!(fixed_30.cold_starts > 4 * adaptive.cold_starts);
        assert!(adaptive.histogram_periods >= adaptive.idle_periods - 11);
    }

    #[test]
    fn adaptive_beats_fixed_10_minutes_on_mixed_traces() {
        let (mut fixed_cold, mut adaptive_cold, mut fixed_waste, mut adaptive_waste) = (0, 0, 0.0, 0.0);
        for seed in 1..=6 {
            let trace = mixed(seed, 50, DAY).trace().unwrap();
            let fixed = simulate(&trace, &KeepAlive::fixed(Duration::from_secs(600)), &SimConfig::default());
            let adaptive =
                simulate(&trace, &KeepAlive::adaptive(AdaptiveConfig::default()), &SimConfig::default());
            assert_eq!(adaptive.invocations, fixed.invocations);
            assert!(adaptive.cold_starts < fixed.cold_starts, "seed {seed}: {adaptive:?} {fixed:?}");
            assert!(adaptive.app_cold_pct(75.0) <= fixed.app_cold_pct(75.0), "seed {seed}");
            fixed_cold += fixed.cold_starts;
            adaptive_cold += adaptive.cold_starts;
            fixed_waste += fixed.wasted_gb_s;
            adaptive_waste += adaptive.wasted_gb_s;
        }
        // Not every seed wastes less: the guard may buy warm starts with memory, at no more
        // memory per warm start than 10 minutes pays. Over the six, both are lower.
        assert!((adaptive_cold as f64) < 0.8 * fixed_cold as f64, "{adaptive_cold} {fixed_cold}");
        assert!(adaptive_waste < 0.97 * fixed_waste, "{adaptive_waste} {fixed_waste}");
    }

    #[test]
    fn without_the_memory_guard_bursts_keep_the_instance_loaded_through_the_gaps() {
        // Bursts of 3 minutes with 1 to 5 invocations each, 30 to 200 minutes apart.
        let bursty = AppSpec::new(Pattern::Bursty { gap_min: 30, gap_max: 200, length: 3, per_minute: 5 });
        let trace = generate(5, 2 * DAY, &[bursty]).trace().unwrap();
        let config = SimConfig::default();
        let fixed = simulate(&trace, &KeepAlive::fixed(Duration::from_secs(600)), &config);
        let paper = AdaptiveConfig { memory_guard: false, ..AdaptiveConfig::default() };
        let paper = simulate(&trace, &KeepAlive::adaptive(paper), &config);
        let guarded = simulate(&trace, &KeepAlive::adaptive(AdaptiveConfig::default()), &config);
        assert!(paper.wasted_gb_s > 3.0 * fixed.wasted_gb_s, "{} {}", paper.wasted_gb_s, fixed.wasted_gb_s);
        assert!(paper.cold_starts < fixed.cold_starts);
        assert_eq!(guarded.wasted_gb_s, fixed.wasted_gb_s);
        assert_eq!(guarded.cold_starts, fixed.cold_starts);
        assert_eq!(guarded.histogram_periods, 0);
    }
}
