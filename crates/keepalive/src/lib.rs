//! Keep-alive policies: how long a function's instance stays loaded once it goes idle, and when
//! to load it again ahead of the next request (pre-warming); plus [`sim`], a replay of invocation
//! traces in the Azure Functions 2019 format that compares the policies on cold starts and on the
//! memory held by idle instances.
//!
//! Two policies ([`PolicyKind`]):
//!
//! - **fixed**: keep the instance loaded for a fixed window after its last request ended (AWS
//!   Lambda and Azure Functions did this with 10 and 20 minutes).
//! - **adaptive**: the hybrid histogram policy of Shahrad et al., "Serverless in the Wild"
//!   (USENIX ATC 2020). Each function keeps a histogram of its idle times (1-minute bins over
//!   4 hours). When the histogram shows a pattern, the instance is unloaded as soon as it goes
//!   idle, loaded again at the 5th percentile of the idle times (minus a 10% margin) and kept
//!   until the 99th percentile (plus 10%); when the 5th percentile is under a minute it simply
//!   stays loaded until then. When the histogram shows no pattern — too few idle times, idle
//!   times spread evenly (coefficient of variation of the bin counts below a threshold), or
//!   mostly longer than its range — the fixed window applies.
//!
//! Two departures from the paper, both on [`AdaptiveConfig`]: where the paper forecasts
//! out-of-range idle times with ARIMA, and keeps an instance for the whole 4 hours when the
//! histogram shows no pattern, this policy uses the fixed window for both; and a memory guard
//! (on by default) uses the histogram's windows only when, replayed over the function's own
//! idle times, they hold the instance no longer than the fixed window would, or get more warm
//! starts for no more loaded time per warm start. Without it, a function with bursts and long
//! gaps between them stays loaded through the gaps (the 99th percentile is a gap): fewer cold
//! starts, but more memory than a fixed 10 minutes (see `EVALUATION.md`).
//!
//! What it is not: nothing here starts, stops or loads an instance, reads a clock or spawns a
//! task. The live pool owns one [`KeepAlive`] per function, reports when invocations start and
//! end, and applies [`KeepAlive::windows`] when the function goes idle; the simulator drives the
//! same type from a trace. Apart from [`sim`] reading trace files, the crate does no I/O.

mod histogram;
pub mod sim;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use histogram::IdleHistogram;

/// The fixed policy's usual window, and the adaptive policy's fallback: 10 minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Which policy a [`KeepAlive`] follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Fixed,
    Adaptive,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Fixed => "fixed",
            PolicyKind::Adaptive => "adaptive",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy name other than `fixed` or `adaptive`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown keep-alive policy {0:?}: expected fixed or adaptive")]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fixed" => Ok(PolicyKind::Fixed),
            "adaptive" => Ok(PolicyKind::Adaptive),
            other => Err(UnknownPolicy(other.to_owned())),
        }
    }
}

/// What the pool should do once a function goes idle (its last request finished).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// `ZERO`: keep the instance loaded from the moment it goes idle. Otherwise unload it at once
    /// and load it again this long after the function went idle.
    pub prewarm_after: Duration,
    /// How long the instance then stays loaded (from going idle if `prewarm_after` is zero, else
    /// from `prewarm_after`) before it is unloaded.
    pub keep_alive: Duration,
}

impl Windows {
    /// Keep loaded for `keep_alive` from going idle, no pre-warming.
    pub fn fixed(keep_alive: Duration) -> Self {
        Windows { prewarm_after: Duration::ZERO, keep_alive }
    }

    /// When the instance is unloaded, counted from going idle.
    pub fn unload_after(&self) -> Duration {
        self.prewarm_after.saturating_add(self.keep_alive)
    }

    /// Whether the instance is loaded `since_idle` after the function went idle, both ends of the
    /// loaded interval included: a request arriving then is a warm start.
    pub fn loaded_at(&self, since_idle: Duration) -> bool {
        since_idle >= self.prewarm_after && since_idle <= self.unload_after()
    }

    /// How long the instance is loaded during the first `idle_for` of the idle period.
    pub fn loaded_during(&self, idle_for: Duration) -> Duration {
        idle_for.min(self.unload_after()).saturating_sub(self.prewarm_after)
    }
}

/// The adaptive policy's parameters. [`Default`] is the paper's configuration, with the
/// departures described on `min_samples`, `max_out_of_range`, `fallback` and `memory_guard`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveConfig {
    /// Idle times up to this long are counted in the histogram (4 h). The histogram takes
    /// `range / bin` × 4 bytes (960 B by default), allocated once; at most 10,080 bins.
    pub range: Duration,
    /// Width of one bin (1 min; at least 1 ms).
    pub bin: Duration,
    /// The percentile of idle times that sets the pre-warm point (5).
    pub head_pct: f64,
    /// The percentile of idle times that sets the end of the keep-alive (99).
    pub tail_pct: f64,
    /// Safety margin (0.10): pre-warm at `(1 - margin) ×` the head bin's lower edge, unload at
    /// `(1 + margin) ×` the tail bin's upper edge. Clamped to 0..=0.9.
    pub margin: f64,
    /// The histogram is used once at least this many idle times were seen (10). The paper has no
    /// such floor; with a single idle time the coefficient of variation is already maximal, so
    /// without it the policy would bet on a pattern seen once.
    pub min_samples: u32,
    /// The histogram is used only when the coefficient of variation of its bin counts reaches
    /// this (2, as in the paper); idle times spread evenly over more than about a fifth of the
    /// bins fall below it.
    pub cv_threshold: f64,
    /// The histogram is not used when more than this fraction of idle times were longer than
    /// `range` (0.5, the paper's out-of-bounds threshold). The paper forecasts the next idle time
    /// with ARIMA then; this policy uses `fallback`.
    pub max_out_of_range: f64,
    /// The fixed window used while the histogram is not representative (10 min). The paper keeps
    /// the instance for the whole `range` instead, which costs far more memory on functions with
    /// no pattern.
    pub fallback: Duration,
    /// Use the histogram's windows only if they are no worse a use of memory than `fallback`
    /// (true): replayed over the idle times in the histogram, they hold the instance loaded no
    /// longer than `fallback` would, or they get more warm starts and spend no more loaded time
    /// per warm start than `fallback` does. The paper has no such check (false): its windows
    /// aim at 99% warm starts whatever the memory, which on a function with bursts and long
    /// gaps means staying loaded through the gaps.
    pub memory_guard: bool,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            range: Duration::from_secs(4 * 3600),
            bin: Duration::from_secs(60),
            head_pct: 5.0,
            tail_pct: 99.0,
            margin: 0.10,
            min_samples: 10,
            cv_threshold: 2.0,
            max_out_of_range: 0.5,
            fallback: DEFAULT_WINDOW,
            memory_guard: true,
        }
    }
}

/// The keep-alive state of one function (or one application, whatever the pool loads as a
/// unit): which policy, what it learned, and how many invocations are running.
#[derive(Clone, Debug)]
pub struct KeepAlive {
    policy: Policy,
    in_flight: u32,
    /// When the last invocation ended, if one did and none is running.
    idle_since: Option<Duration>,
}

#[derive(Clone, Debug)]
enum Policy {
    Fixed(Duration),
    Adaptive(Box<Adaptive>),
}

/// What a set of windows would have done over a history of idle times.
struct Replayed {
    loaded_ms: f64,
    warm: f64,
}

#[derive(Clone, Debug)]
struct Adaptive {
    config: AdaptiveConfig,
    histogram: IdleHistogram,
}

impl KeepAlive {
    /// Keep an idle instance loaded for `window`.
    pub fn fixed(window: Duration) -> Self {
        KeepAlive::with(Policy::Fixed(window))
    }

    /// The hybrid histogram policy.
    pub fn adaptive(config: AdaptiveConfig) -> Self {
        let histogram = IdleHistogram::new(millis(config.bin), millis(config.range));
        KeepAlive::with(Policy::Adaptive(Box::new(Adaptive { config, histogram })))
    }

    /// `kind` with its defaults: [`DEFAULT_WINDOW`] or [`AdaptiveConfig::default`].
    pub fn new(kind: PolicyKind) -> Self {
        match kind {
            PolicyKind::Fixed => KeepAlive::fixed(DEFAULT_WINDOW),
            PolicyKind::Adaptive => KeepAlive::adaptive(AdaptiveConfig::default()),
        }
    }

    fn with(policy: Policy) -> Self {
        KeepAlive { policy, in_flight: 0, idle_since: None }
    }

    pub fn kind(&self) -> PolicyKind {
        match self.policy {
            Policy::Fixed(_) => PolicyKind::Fixed,
            Policy::Adaptive(_) => PolicyKind::Adaptive,
        }
    }

    /// An invocation started at `at` (time since any fixed origin, so that the simulator and a
    /// live pool can both drive it). If none was running, the time since the last one ended is
    /// one idle time for the histogram. Concurrent invocations are counted: the function is idle
    /// only once all have ended.
    pub fn invocation_started(&mut self, at: Duration) {
        if self.in_flight == 0
            && let Some(since) = self.idle_since.take()
            && let Policy::Adaptive(adaptive) = &mut self.policy
        {
            adaptive.histogram.record(millis(at.saturating_sub(since)));
        }
        self.idle_since = None;
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// An invocation that started ended at `at`.
    pub fn invocation_ended(&mut self, at: Duration) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.idle_since = Some(at);
        }
    }

    /// The windows to apply now that the function went idle.
    pub fn windows(&self) -> Windows {
        match &self.policy {
            Policy::Fixed(window) => Windows::fixed(*window),
            Policy::Adaptive(adaptive) => adaptive.windows(),
        }
    }

    /// Whether the adaptive policy's windows now come from its histogram (it shows a pattern and
    /// the memory guard agrees), for `yun describe`; `false` for the fixed policy.
    pub fn representative(&self) -> bool {
        match &self.policy {
            Policy::Fixed(_) => false,
            Policy::Adaptive(adaptive) => adaptive.representative(),
        }
    }

    /// Idle times the adaptive policy has seen (in and out of its range); 0 for the fixed one.
    pub fn idle_times_seen(&self) -> u64 {
        match &self.policy {
            Policy::Fixed(_) => 0,
            Policy::Adaptive(adaptive) => adaptive.histogram.total(),
        }
    }

    /// Invocations running now, as reported.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
}

/// `fixed 10m`, `adaptive`, or `adaptive-paper` without the memory guard.
impl fmt::Display for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.policy {
            Policy::Fixed(window) => write!(f, "fixed {}", short_duration(*window)),
            Policy::Adaptive(a) if a.config.memory_guard => f.write_str("adaptive"),
            Policy::Adaptive(_) => f.write_str("adaptive-paper"),
        }
    }
}

impl Adaptive {
    /// The paper's test: enough idle times, not mostly out of range, concentrated bin counts.
    fn has_pattern(&self) -> bool {
        let h = &self.histogram;
        let total = h.total();
        total > 0
            && total >= u64::from(self.config.min_samples)
            && h.out_of_range() as f64 <= self.config.max_out_of_range * total as f64
            && h.in_range() > 0
            && h.cv() >= self.config.cv_threshold
    }

    /// Pre-warm at `(1 - margin) ×` the head bin's lower edge, unload at `(1 + margin) ×` the
    /// tail bin's upper edge.
    fn windows_for(&self, head: usize, tail: usize) -> Windows {
        let bin_ms = self.histogram.bin_ms() as f64;
        let margin = if self.config.margin.is_finite() { self.config.margin.clamp(0.0, 0.9) } else { 0.0 };
        let prewarm_ms = (head as f64 * bin_ms * (1.0 - margin)).round() as u64;
        let unload_ms = ((tail as f64 + 1.0) * bin_ms * (1.0 + margin)).round() as u64;
        Windows {
            prewarm_after: Duration::from_millis(prewarm_ms),
            keep_alive: Duration::from_millis(unload_ms.saturating_sub(prewarm_ms)),
        }
    }

    /// What `windows` would have done over the idle times in the histogram, each taken at its
    /// bin's middle and out-of-range ones as endless.
    fn replay_history(&self, windows: Windows) -> Replayed {
        let h = &self.histogram;
        let bin_ms = h.bin_ms() as f64;
        let prewarm = windows.prewarm_after.as_secs_f64() * 1000.0;
        let unload = windows.unload_after().as_secs_f64() * 1000.0;
        let mut replayed =
            Replayed { loaded_ms: h.out_of_range() as f64 * (unload - prewarm).max(0.0), warm: 0.0 };
        for (i, count) in h.counts().filter(|(_, count)| *count > 0) {
            let idle = (i as f64 + 0.5) * bin_ms;
            replayed.loaded_ms += f64::from(count) * (idle.min(unload) - prewarm).max(0.0);
            if prewarm <= idle && idle <= unload {
                replayed.warm += f64::from(count);
            }
        }
        replayed
    }

    /// The histogram's windows if they are to be used: the histogram shows a pattern, and (with
    /// `memory_guard`) the windows, replayed over its idle times, hold the instance no longer
    /// than the fallback would, or get more warm starts at no more loaded time per warm start.
    fn chosen(&self) -> Option<Windows> {
        if !self.has_pattern() {
            return None;
        }
        let h = &self.histogram;
        let head = h.percentile_bin(self.config.head_pct)?;
        let tail = h.percentile_bin(self.config.tail_pct)?.max(head);
        let windows = self.windows_for(head, tail);
        if !self.config.memory_guard {
            return Some(windows);
        }
        let mine = self.replay_history(windows);
        let fallback = self.replay_history(Windows::fixed(self.config.fallback));
        let cheaper = mine.loaded_ms <= fallback.loaded_ms;
        // loaded / warm no higher than the fallback's, without dividing by zero warm starts.
        let better_buy =
            mine.warm > fallback.warm && mine.loaded_ms * fallback.warm <= fallback.loaded_ms * mine.warm;
        (cheaper || better_buy).then_some(windows)
    }

    fn representative(&self) -> bool {
        self.chosen().is_some()
    }

    fn windows(&self) -> Windows {
        self.chosen().unwrap_or(Windows::fixed(self.config.fallback))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `10m`, `1h30m`, `90s`, `250ms`: for labels.
pub(crate) fn short_duration(d: Duration) -> String {
    let ms = millis(d);
    if ms == 0 {
        return "0s".to_owned();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn minutes(m: f64) -> Duration {
        Duration::from_secs_f64(m * 60.0)
    }

    /// Drives a policy with instant invocations separated by given idle times.
    struct Driver {
        p: KeepAlive,
        now: Duration,
    }

    impl Driver {
        fn new(mut p: KeepAlive) -> Self {
            p.invocation_started(Duration::ZERO);
            p.invocation_ended(Duration::ZERO);
            Driver { p, now: Duration::ZERO }
        }

        fn adaptive() -> Self {
            Driver::new(KeepAlive::adaptive(AdaptiveConfig::default()))
        }

        fn idle(&mut self, idle_times: impl IntoIterator<Item = Duration>) -> &mut Self {
            for idle in idle_times {
                self.now += idle;
                self.p.invocation_started(self.now);
                self.p.invocation_ended(self.now);
            }
            self
        }
    }

    #[test]
    fn policy_kind_parses_and_prints() {
        for kind in [PolicyKind::Fixed, PolicyKind::Adaptive] {
            assert_eq!(kind.as_str().parse::<PolicyKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(KeepAlive::new(kind).kind(), kind);
        }
        let err = "Fixed".parse::<PolicyKind>().unwrap_err();
        assert_eq!(err, UnknownPolicy("Fixed".into()));
        assert!(err.to_string().contains("expected fixed or adaptive"));
    }

    #[test]
    fn fixed_always_keeps_its_window() {
        let mut d = Driver::new(KeepAlive::fixed(10 * MIN));
        assert_eq!(d.p.windows(), Windows::fixed(10 * MIN));
        d.idle(std::iter::repeat_n(30 * MIN, 50));
        assert_eq!(d.p.windows(), Windows { prewarm_after: Duration::ZERO, keep_alive: 10 * MIN });
        assert!(!d.p.representative());
        assert_eq!(d.p.idle_times_seen(), 0);
        assert_eq!(d.p.to_string(), "fixed 10m");
    }

    #[test]
    fn adaptive_without_history_uses_the_fallback() {
        let p = KeepAlive::adaptive(AdaptiveConfig::default());
        assert!(!p.representative());
        assert_eq!(p.windows(), Windows::fixed(DEFAULT_WINDOW));
        let p = KeepAlive::adaptive(AdaptiveConfig { fallback: 3 * MIN, ..AdaptiveConfig::default() });
        assert_eq!(p.windows(), Windows::fixed(3 * MIN));
        assert_eq!(p.to_string(), "adaptive");
        let paper = AdaptiveConfig { memory_guard: false, ..AdaptiveConfig::default() };
        assert_eq!(KeepAlive::adaptive(paper).to_string(), "adaptive-paper");
    }

    #[test]
    fn a_periodic_function_is_prewarmed_before_its_period_with_margins() {
        let mut d = Driver::adaptive();
        // Every 30 minutes and a few seconds: all idle times in bin 30 ([30 min, 31 min)).
        d.idle((0..20).map(|i| 30 * MIN + Duration::from_secs(i)));
        assert!(d.p.representative());
        assert_eq!(d.p.idle_times_seen(), 20);
        // Pre-warm at 0.9 × 30 min = 27 min; unload at 1.1 × 31 min = 34.1 min.
        let w = d.p.windows();
        assert_eq!(w.prewarm_after, 27 * MIN);
        assert_eq!(w.unload_after(), ms(2_046_000));
        assert_eq!(w.keep_alive, ms(426_000));
        assert!(!w.loaded_at(26 * MIN) && w.loaded_at(27 * MIN) && w.loaded_at(30 * MIN));
        assert!(w.loaded_at(ms(2_046_000)) && !w.loaded_at(ms(2_046_001)));
        assert_eq!(w.loaded_during(30 * MIN), 3 * MIN);
        assert_eq!(w.loaded_during(60 * MIN), ms(426_000));
        assert_eq!(w.loaded_during(MIN), Duration::ZERO);
    }

    #[test]
    fn head_and_tail_percentiles_set_the_windows() {
        let mut d = Driver::adaptive();
        d.idle(std::iter::repeat_n(minutes(2.5), 5))
            .idle(std::iter::repeat_n(minutes(10.5), 94))
            .idle([minutes(50.5)]);
        // 100 idle times: head (5th) in bin 2 → 0.9 × 2 min; tail (99th) in bin 10 → 1.1 × 11 min.
        assert_eq!(d.p.windows(), Windows { prewarm_after: ms(108_000), keep_alive: ms(726_000 - 108_000) });
        // One more long one: the head (6th of 101) moves to bin 10, the tail (100th) to bin 50.
        d.idle([minutes(50.5)]);
        assert_eq!(d.p.windows(), Windows { prewarm_after: 9 * MIN, keep_alive: ms(3_366_000 - 540_000) });
    }

    #[test]
    fn short_idle_times_keep_the_instance_loaded_from_going_idle() {
        let mut d = Driver::adaptive();
        d.idle(std::iter::repeat_n(Duration::from_secs(20), 30)).idle([minutes(3.5)]);
        // Head in bin 0 → no pre-warming; tail (the 31st of 31) in bin 3 → 1.1 × 4 min.
        assert_eq!(d.p.windows(), Windows::fixed(ms(264_000)));
    }

    #[test]
    fn a_margin_of_zero_uses_the_bin_edges() {
        let mut d =
            Driver::new(KeepAlive::adaptive(AdaptiveConfig { margin: 0.0, ..AdaptiveConfig::default() }));
        d.idle(std::iter::repeat_n(minutes(45.2), 12));
        assert_eq!(d.p.windows(), Windows { prewarm_after: 45 * MIN, keep_alive: MIN });
    }

    #[test]
    fn too_few_idle_times_are_not_representative() {
        let config = AdaptiveConfig { min_samples: 5, ..AdaptiveConfig::default() };
        let mut d = Driver::new(KeepAlive::adaptive(config));
        d.idle(std::iter::repeat_n(30 * MIN, 4));
        assert!(!d.p.representative());
        assert_eq!(d.p.windows(), Windows::fixed(DEFAULT_WINDOW));
        d.idle([30 * MIN]);
        assert_eq!(d.p.idle_times_seen(), 5);
        assert!(d.p.representative());
        assert_eq!(d.p.windows().prewarm_after, 27 * MIN);
    }

    #[test]
    fn evenly_spread_idle_times_are_not_representative() {
        // One idle time in each of the 240 bins: no pattern (CV 0).
        let mut d = Driver::adaptive();
        d.idle((0..240).map(|m| minutes(m as f64 + 0.5)));
        assert!(!d.p.representative());
        assert_eq!(d.p.windows(), Windows::fixed(DEFAULT_WINDOW));
        // Evenly over 40 bins the CV is sqrt(240 / 40 - 1) ≈ 2.24: a pattern. Head (20th of
        // 400) in bin 1, tail (396th) in bin 39. (More memory than 10 minutes over these idle
        // times, but 390 warm starts instead of 100 at 19.6 rather than 35 min loaded each.)
        let over_40 = || (0..400).map(|i| minutes((i % 40) as f64 + 0.5));
        let mut d = Driver::adaptive();
        d.idle(over_40());
        assert!(d.p.representative());
        assert_eq!(d.p.windows(), Windows { prewarm_after: ms(54_000), keep_alive: ms(2_640_000 - 54_000) });
        // A stricter threshold rejects it.
        let mut d = Driver::new(KeepAlive::adaptive(AdaptiveConfig {
            cv_threshold: 2.5,
            ..AdaptiveConfig::default()
        }));
        d.idle(over_40());
        assert!(!d.p.representative());
    }

    #[test]
    fn the_memory_guard_refuses_to_stay_loaded_through_long_gaps() {
        // Bursts (85 idle times of 20 s) and 15 gaps of 60, 70, … 200 min: the 99th percentile
        // is the 190-min gap, so the paper's windows keep the instance loaded 210.1 min.
        let idle =
            || std::iter::repeat_n(Duration::from_secs(20), 85).chain((0..15).map(|k| (60 + 10 * k) * MIN));
        let paper = AdaptiveConfig { memory_guard: false, ..AdaptiveConfig::default() };
        let mut d = Driver::new(KeepAlive::adaptive(paper));
        d.idle(idle());
        assert!(d.p.representative());
        assert_eq!(d.p.windows(), Windows::fixed(ms(12_606_000)));
        // Over these idle times that is 2000 min loaded for 100 warm starts, against 192.5 min
        // for 85 with 10 minutes: 15 more warm starts at 121 min each. Refused.
        let mut d = Driver::adaptive();
        d.idle(idle());
        assert!(!d.p.representative());
        assert_eq!(d.p.windows(), Windows::fixed(DEFAULT_WINDOW));
    }

    #[test]
    fn idle_times_beyond_the_range_are_counted_apart() {
        let mut d = Driver::adaptive();
        // 10 within range (bin 20), 9 beyond 4 h: 9 of 19 out of range, under half.
        d.idle(std::iter::repeat_n(minutes(20.5), 10)).idle(std::iter::repeat_n(5 * 60 * MIN, 9));
        assert!(d.p.representative());
        // The percentiles are over the in-range idle times only: 0.9 × 20 min, 1.1 × 21 min.
        assert_eq!(d.p.windows(), Windows { prewarm_after: 18 * MIN, keep_alive: ms(1_386_000 - 1_080_000) });
        // 10 of 20 is still not more than half; 11 of 21 is.
        d.idle([5 * 60 * MIN]);
        assert!(d.p.representative());
        d.idle([5 * 60 * MIN]);
        assert!(!d.p.representative());
        assert_eq!(d.p.windows(), Windows::fixed(DEFAULT_WINDOW));
    }

    #[test]
    fn concurrent_invocations_make_one_idle_period() {
        let mut p = KeepAlive::adaptive(AdaptiveConfig { min_samples: 1, ..AdaptiveConfig::default() });
        let s = Duration::from_secs;
        p.invocation_started(s(0));
        p.invocation_started(s(1));
        assert_eq!(p.in_flight(), 2);
        p.invocation_ended(s(5));
        p.invocation_started(s(6)); // still busy: no idle time
        p.invocation_ended(s(8));
        p.invocation_ended(s(10));
        assert_eq!(p.idle_times_seen(), 0);
        p.invocation_started(s(10) + 12 * MIN);
        assert_eq!(p.idle_times_seen(), 1);
        p.invocation_ended(s(20) + 12 * MIN);
        // One idle time of 12 min: 0.9 × 12 min, 1.1 × 13 min.
        assert_eq!(p.windows(), Windows { prewarm_after: ms(648_000), keep_alive: ms(858_000 - 648_000) });
        // An unmatched end does not underflow.
        p.invocation_ended(s(10_000));
        p.invocation_ended(s(10_001));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut p = KeepAlive::adaptive(AdaptiveConfig::default());
        let size = std::mem::size_of_val(&p);
        let mut now = Duration::ZERO;
        for i in 0..200_000u64 {
            p.invocation_started(now);
            p.invocation_ended(now);
            now += Duration::from_secs(i % 20_000);
        }
        assert_eq!(p.idle_times_seen(), 199_999);
        let Policy::Adaptive(adaptive) = &p.policy else { unreachable!() };
        assert_eq!(adaptive.histogram.len(), 240);
        assert_eq!(std::mem::size_of_val(&p), size);
        // A huge configured range is capped.
        let p = KeepAlive::adaptive(AdaptiveConfig {
            range: Duration::from_secs(365 * 24 * 3600),
            bin: Duration::ZERO,
            ..AdaptiveConfig::default()
        });
        let Policy::Adaptive(adaptive) = &p.policy else { unreachable!() };
        assert_eq!(adaptive.histogram.len(), histogram::MAX_BINS);
    }

    #[test]
    fn short_durations_read_well() {
        assert_eq!(short_duration(10 * MIN), "10m");
        assert_eq!(short_duration(90 * MIN), "1h30m");
        assert_eq!(short_duration(Duration::from_secs(3601)), "1h1s");
        assert_eq!(short_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(short_duration(Duration::ZERO), "0s");
    }
}
