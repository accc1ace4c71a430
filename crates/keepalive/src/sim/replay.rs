//! Replaying a trace against a policy.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write;
use std::time::Duration;

use super::trace::{App, Trace};
use crate::{KeepAlive, PolicyKind, Windows};

const MINUTE: Duration = Duration::from_secs(60);

/// Where in its minute an invocation of the trace starts (the trace only has per-minute counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arrivals {
    /// All of a minute's invocations start at its first instant (and run side by side). The
    /// default: the trace has no finer resolution, so the only idle times the policies see are
    /// those it contains, between the minutes with invocations.
    #[default]
    MinuteStart,
    /// `n` invocations of a minute start at `(i + ½) / n` of it, i = 0..n: evenly spread. This
    /// invents `n - 1` idle times shorter than a minute per minute, which fill the histogram's
    /// first bin.
    Spread,
}

/// How to replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimConfig {
    pub arrivals: Arrivals,
    /// Invocations before this point train the policies but are not counted, nor is memory
    /// held before it (ZERO: count everything).
    pub warmup: Duration,
}

/// The outcome of one application.
#[derive(Clone, Debug, PartialEq)]
pub struct AppReport {
    pub name: String,
    pub invocations: u64,
    pub cold_starts: u64,
    /// Memory × time loaded while not executing, in GB-s (1 GB = 1024 MB).
    pub wasted_gb_s: f64,
    /// Idle periods (from the end of an execution with none left running, to the next start or
    /// the end of the trace).
    pub idle_periods: u64,
    /// Of these, those whose windows came from the adaptive policy's histogram.
    pub histogram_periods: u64,
}

impl AppReport {
    pub fn cold_pct(&self) -> f64 {
        pct(self.cold_starts, self.invocations)
    }
}

/// The outcome of one policy over a whole trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// `fixed 10m`, `adaptive`, `adaptive-paper` (the policy's `Display`).
    pub policy: String,
    pub kind: PolicyKind,
    pub invocations: u64,
    pub cold_starts: u64,
    /// Memory × time loaded while not executing, in GB-s (1 GB = 1024 MB).
    pub wasted_gb_s: f64,
    pub idle_periods: u64,
    pub histogram_periods: u64,
    /// One per application of the trace, in its order.
    pub apps: Vec<AppReport>,
}

impl Report {
    pub fn cold_pct(&self) -> f64 {
        pct(self.cold_starts, self.invocations)
    }

    /// The `percentile`-th percentile (nearest rank) of the applications' cold-start percentages,
    /// over the applications with at least one counted invocation; the paper's headline metric is
    /// the 75th. 0 when there are none.
    pub fn app_cold_pct(&self, percentile: f64) -> f64 {
        let mut v: Vec<f64> =
            self.apps.iter().filter(|a| a.invocations > 0).map(AppReport::cold_pct).collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        let rank = (percentile.clamp(0.0, 100.0) / 100.0 * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

/// Replays `trace` with one clone of `policy` per application (pass a fresh policy: whatever it
/// already learned is where every application starts).
///
/// The model:
/// - An application is loaded, kept alive and charged as one instance, as in the paper, whose
///   policy is per application: its functions share it, and it runs any number of invocations at
///   once (scaling out is not modelled).
/// - An invocation is warm if the application is executing, or idle with its instance loaded
///   ([`Windows::loaded_at`]); otherwise cold, including the application's first. A cold start
///   does not delay the execution.
/// - Each invocation runs for its function's average duration (`run.csv`).
/// - Wasted memory is the application's memory (`mem.csv`) × the time its instance is loaded but
///   executing nothing, up to the end of the trace.
pub fn simulate(trace: &Trace, policy: &KeepAlive, config: &SimConfig) -> Report {
    let trace_end = MINUTE * u32::try_from(trace.minutes).unwrap_or(u32::MAX);
    let apps: Vec<AppReport> =
        trace.apps.iter().map(|app| replay_app(app, policy.clone(), config, trace_end)).collect();
    Report {
        policy: policy.to_string(),
        kind: policy.kind(),
        invocations: apps.iter().map(|a| a.invocations).sum(),
        cold_starts: apps.iter().map(|a| a.cold_starts).sum(),
        wasted_gb_s: apps.iter().map(|a| a.wasted_gb_s).sum(),
        idle_periods: apps.iter().map(|a| a.idle_periods).sum(),
        histogram_periods: apps.iter().map(|a| a.histogram_periods).sum(),
        apps,
    }
}

struct AppState {
    policy: KeepAlive,
    config: SimConfig,
    running: BinaryHeap<Reverse<Duration>>,
    /// When the application went idle and the windows chosen then.
    idle: Option<(Duration, Windows)>,
    wasted: Duration,
    report: AppReport,
}

impl AppState {
    fn finish_until(&mut self, t: Duration) {
        while let Some(&Reverse(end)) = self.running.peek() {
            if end > t {
                break;
            }
            self.running.pop();
            self.policy.invocation_ended(end);
            if self.running.is_empty() {
                let windows = self.policy.windows();
                self.idle = Some((end, windows));
                if end >= self.config.warmup {
                    self.report.idle_periods += 1;
                    if self.policy.representative() {
                        self.report.histogram_periods += 1;
                    }
                }
            }
        }
    }

    /// Charges the loaded time of the idle period that ends at `until`.
    fn close_idle(&mut self, until: Duration) {
        if let Some((since, windows)) = self.idle.take() {
            let loaded_from = since.saturating_add(windows.prewarm_after).max(self.config.warmup);
            let loaded_until = since.saturating_add(windows.unload_after()).min(until);
            self.wasted += loaded_until.saturating_sub(loaded_from);
        }
    }

    fn start(&mut self, t: Duration, duration: Duration) {
        // Neither running nor idle: it never ran, a cold start.
        let warm = !self.running.is_empty()
            || self.idle.is_some_and(|(since, windows)| windows.loaded_at(t.saturating_sub(since)));
        self.close_idle(t);
        self.policy.invocation_started(t);
        self.running.push(Reverse(t.saturating_add(duration)));
        if t >= self.config.warmup {
            self.report.invocations += 1;
            self.report.cold_starts += u64::from(!warm);
        }
    }
}

fn replay_app(app: &App, policy: KeepAlive, config: &SimConfig, trace_end: Duration) -> AppReport {
    let mut state = AppState {
        policy,
        config: *config,
        running: BinaryHeap::new(),
        idle: None,
        wasted: Duration::ZERO,
        report: AppReport {
            name: app.name.clone(),
            invocations: 0,
            cold_starts: 0,
            wasted_gb_s: 0.0,
            idle_periods: 0,
            histogram_periods: 0,
        },
    };
    let minutes = app.functions.iter().map(|f| f.per_minute.len()).max().unwrap_or(0);
    let mut arrivals: Vec<(Duration, Duration)> = Vec::new();
    for minute in 0..minutes {
        // This minute's invocations of all the application's functions, in time order (stable:
        // ties keep the functions' order).
        arrivals.clear();
        let minute_start = MINUTE * u32::try_from(minute).unwrap_or(u32::MAX);
        for function in &app.functions {
            let count = function.per_minute.get(minute).copied().unwrap_or(0);
            for i in 0..count {
                let offset = match config.arrivals {
                    Arrivals::Spread => {
                        let nanos =
                            MINUTE.as_nanos() as u64 * (2 * u64::from(i) + 1) / (2 * u64::from(count));
                        Duration::from_nanos(nanos)
                    }
                    Arrivals::MinuteStart => Duration::ZERO,
                };
                arrivals.push((minute_start + offset, function.duration));
            }
        }
        arrivals.sort_by_key(|a| a.0);
        for &(t, duration) in &arrivals {
            state.finish_until(t);
            state.start(t, duration);
        }
    }
    state.finish_until(Duration::MAX);
    state.close_idle(trace_end);
    let mut report = state.report;
    report.wasted_gb_s = state.wasted.as_secs_f64() * app.memory_mb / 1024.0;
    report
}

/// A table of reports, one row each, with the ratios to `fixed 10m` if it is among them.
pub fn table(reports: &[Report]) -> String {
    let baseline = reports.iter().find(|r| r.kind == PolicyKind::Fixed && r.policy == "fixed 10m");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:>11} {:>11} {:>8} {:>14} {:>13} {:>10} {:>10}",
        "policy",
        "invocations",
        "cold starts",
        "cold %",
        "p75 app cold %",
        "wasted GB-s",
        "cold/10m",
        "waste/10m"
    );
    for r in reports {
        let ratio = |mine: f64, base: f64| match baseline {
            Some(_) if base > 0.0 => format!("{:.3}", mine / base),
            _ => "-".to_owned(),
        };
        let (cold_ratio, waste_ratio) = match baseline {
            Some(b) => (ratio(r.cold_pct(), b.cold_pct()), ratio(r.wasted_gb_s, b.wasted_gb_s)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "{:<14} {:>11} {:>11} {:>7.2}% {:>13.2}% {:>13.0} {:>10} {:>10}",
            r.policy,
            r.invocations,
            r.cold_starts,
            r.cold_pct(),
            r.app_cold_pct(75.0),
            r.wasted_gb_s,
            cold_ratio,
            waste_ratio
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AdaptiveConfig;

    const HEADER: &str = "HashFunction,HashApp,HashOwner,minute_1,minute_2,minute_3,minute_4,minute_5,\
                          minute_6,minute_7,minute_8,minute_9,minute_10";

    /// A 10-minute trace; `functions` are (function, app, Average ms, 10 counts); every app has
    /// 1024 MB so that GB-s are seconds.
    fn trace(functions: &[(&str, &str, u32, [u32; 10])]) -> Trace {
        let mut inv = format!("{HEADER}\n");
        let mut run = "HashFunction,HashApp,HashOwner,Average\n".to_owned();
        let mut mem = "HashApp,HashOwner,AverageAllocatedMb\n".to_owned();
        let mut apps = vec![];
        for (f, a, ms, counts) in functions {
            let counts: Vec<String> = counts.iter().map(u32::to_string).collect();
            inv.push_str(&format!("{f},{a},o,{}\n", counts.join(",")));
            run.push_str(&format!("{f},{a},o,{ms}\n"));
            if !apps.contains(a) {
                mem.push_str(&format!("{a},o,1024\n"));
                apps.push(*a);
            }
        }
        Trace::from_readers(inv.as_bytes(), run.as_bytes(), mem.as_bytes()).unwrap()
    }

    const SPREAD: SimConfig = SimConfig { arrivals: Arrivals::Spread, warmup: Duration::ZERO };

    fn fixed(trace: &Trace, minutes: u64, config: SimConfig) -> Report {
        simulate(trace, &KeepAlive::fixed(Duration::from_secs(60 * minutes)), &config)
    }

    #[test]
    fn fixed_windows_count_cold_starts_and_idle_memory_exactly() {
        // Starts at 30 s and 210 s (middle of minutes 1 and 4), 1 s each; the trace ends at 600 s.
        let t = trace(&[("f", "a", 1000, [1, 0, 0, 1, 0, 0, 0, 0, 0, 0])]);
        let one = fixed(&t, 1, SPREAD);
        // Idle 179 s > 60 s: cold again; loaded 60 s after each end (the last ends at 211 s).
        assert_eq!((one.invocations, one.cold_starts, one.wasted_gb_s), (2, 2, 120.0));
        assert_eq!(one.cold_pct(), 100.0);
        let five = fixed(&t, 5, SPREAD);
        // Warm second start; loaded the whole 179 s, then 300 s after the last end.
        assert_eq!((five.cold_starts, five.wasted_gb_s), (1, 479.0));
        assert_eq!(five.idle_periods, 2);
        assert_eq!(five.histogram_periods, 0);
        // The trace's end cuts the last idle period: 600 - 211 = 389 s.
        let hour = fixed(&t, 60, SPREAD);
        assert_eq!((hour.cold_starts, hour.wasted_gb_s), (1, 179.0 + 389.0));
    }

    #[test]
    fn arrivals_can_start_with_their_minute() {
        let t = trace(&[("f", "a", 1000, [1, 0, 0, 1, 0, 0, 0, 0, 0, 0])]);
        let config = SimConfig::default();
        assert_eq!(config.arrivals, Arrivals::MinuteStart);
        let r = fixed(&t, 5, config);
        // Starts at 0 s and 180 s: idle 179 s, then 600 - 181 = 419 s > 300 s.
        assert_eq!((r.cold_starts, r.wasted_gb_s), (1, 479.0));
        let r = fixed(&t, 10, config);
        assert_eq!((r.cold_starts, r.wasted_gb_s), (1, 179.0 + 419.0));
    }

    #[test]
    fn invocations_within_a_minute_spread_and_overlap() {
        // 4 starts in minute 1 at 7.5, 22.5, 37.5, 52.5 s; each runs 20 s, so they overlap: one
        // cold start, never idle until 72.5 s.
        let t = trace(&[("f", "a", 20_000, [4, 0, 0, 0, 0, 0, 0, 0, 0, 0])]);
        let r = fixed(&t, 1, SPREAD);
        assert_eq!((r.invocations, r.cold_starts, r.idle_periods, r.wasted_gb_s), (4, 1, 1, 60.0));
    }

    #[test]
    fn functions_of_one_app_share_its_instance() {
        // f1 at 30 s, f2 (same app) at 90 s: warm with a 1-minute window (idle 59 s).
        let shared = trace(&[
            ("f1", "a", 1000, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("f2", "a", 1000, [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ]);
        let r = fixed(&shared, 1, SPREAD);
        assert_eq!((r.invocations, r.cold_starts, r.wasted_gb_s), (2, 1, 59.0 + 60.0));
        assert_eq!(r.apps.len(), 1);
        // In two apps, both are cold and both are charged.
        let apart = trace(&[
            ("f1", "a", 1000, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("f2", "b", 1000, [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ]);
        let r = fixed(&apart, 1, SPREAD);
        assert_eq!((r.invocations, r.cold_starts, r.wasted_gb_s), (2, 2, 120.0));
        assert_eq!(r.app_cold_pct(75.0), 100.0);
    }

    #[test]
    fn memory_is_charged_per_app() {
        let inv = "HashFunction,HashApp,HashOwner,minute_1,minute_2\nf,a,o,1,0\n";
        let run = "HashFunction,HashApp,HashOwner,Average\nf,a,o,0\n";
        let mem = "HashApp,HashOwner,AverageAllocatedMb\na,o,512\n";
        let t = Trace::from_readers(inv.as_bytes(), run.as_bytes(), mem.as_bytes()).unwrap();
        // Ends at 30 s; the trace ends at 120 s: 60 s × 0.5 GB.
        assert_eq!(fixed(&t, 1, SPREAD).wasted_gb_s, 30.0);
    }

    #[test]
    fn adaptive_prewarming_is_cold_before_and_warm_inside_the_window() {
        // Invocations at minutes 1, 3, 5, 7, 9 (starts at 30 s + 2 min × k), 0 ms each: idle
        // times of 120 s, bin 2. With min_samples 2, the third idle period on uses the histogram:
        // pre-warm at 0.9 × 2 min = 108 s, unload at 1.1 × 3 min = 198 s.
        let t = trace(&[("f", "a", 0, [1, 0, 1, 0, 1, 0, 1, 0, 1, 0])]);
        let config =
            AdaptiveConfig { min_samples: 2, fallback: Duration::from_secs(60), ..Default::default() };
        let r = simulate(&t, &KeepAlive::adaptive(config), &SPREAD);
        // Cold: the first, the second and the third (60 s fallback, idle 120 s); warm: the last two.
        assert_eq!((r.invocations, r.cold_starts), (5, 3));
        // Loaded: 60 + 60 (fallback), 12 + 12 (from 108 s to 120 s), then 198 - 108 = 90 s but
        // the trace ends 30 s after the last start: 0.
        assert_eq!(r.wasted_gb_s, 60.0 + 60.0 + 12.0 + 12.0);
        assert_eq!((r.idle_periods, r.histogram_periods), (5, 3));
        // A histogram with the pre-warm point past the idle time: cold and nothing charged.
        let late = AdaptiveConfig { min_samples: 2, margin: 0.0, ..config };
        let t = trace(&[("f", "a", 0, [1, 0, 1, 0, 1, 1, 0, 0, 0, 0])]);
        let r = simulate(&t, &KeepAlive::adaptive(late), &SPREAD);
        // Starts at 30, 150, 270, 330 s. Idle 120 s twice (fallback: cold, 60 s loaded each),
        // then 60 s with pre-warm at 2 min: cold, nothing loaded. Then head bin 1, tail bin 2:
        // loaded from 330 + 60 to 330 + 180 s, within the trace.
        assert_eq!(r.cold_starts, 4);
        assert_eq!(r.wasted_gb_s, 60.0 + 60.0 + 0.0 + 120.0);
    }

    #[test]
    fn warmup_trains_but_is_not_counted() {
        let t = trace(&[("f", "a", 1000, [1, 0, 0, 1, 0, 0, 1, 0, 0, 0])]);
        // Starts at 30, 210, 390 s. Counting from 300 s: only the third start, warm with 5 min,
        // and memory from 300 s: 390 - 300, then 300 s after 391 s, cut at 600 s: 209.
        let config = SimConfig { warmup: Duration::from_secs(300), ..SPREAD };
        let r = fixed(&t, 5, config);
        assert_eq!((r.invocations, r.cold_starts, r.wasted_gb_s), (1, 0, 90.0 + 209.0));
        assert_eq!(r.idle_periods, 1);
    }

    #[test]
    fn app_percentiles_use_the_nearest_rank() {
        let app = |cold| AppReport {
            name: String::new(),
            invocations: 100,
            cold_starts: cold,
            wasted_gb_s: 0.0,
            idle_periods: 0,
            histogram_periods: 0,
        };
        let mut apps: Vec<AppReport> = [40, 10, 30, 20].into_iter().map(app).collect();
        apps.push(AppReport { invocations: 0, ..app(0) });
        let r = Report {
            policy: "fixed 10m".into(),
            kind: PolicyKind::Fixed,
            invocations: 400,
            cold_starts: 100,
            wasted_gb_s: 1.0,
            idle_periods: 0,
            histogram_periods: 0,
            apps,
        };
        assert_eq!(r.app_cold_pct(75.0), 30.0);
        assert_eq!(r.app_cold_pct(50.0), 20.0);
        assert_eq!(r.app_cold_pct(100.0), 40.0);
        assert_eq!(r.app_cold_pct(0.0), 10.0);
        let text = table(&[r]);
        assert!(text.lines().nth(1).unwrap().contains("25.00%"), "{text}");
        assert!(text.lines().nth(1).unwrap().trim_end().ends_with("1.000      1.000"), "{text}");
    }
}
