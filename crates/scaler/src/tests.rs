use std::time::Duration;

use crate::{Autoscaler, ConfigError, Decision, MAX_BUCKETS, ManualClock, Reason, ScalerConfig};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A scaler and a pool that gets whatever it asks for at once (unless a test pins `ready`).
struct Sim {
    clock: ManualClock,
    scaler: Autoscaler<ManualClock>,
    ready: u32,
}

impl Sim {
    fn new(config: ScalerConfig) -> Self {
        let clock = ManualClock::default();
        let scaler = Autoscaler::new(config, clock.clone());
        Self { clock, scaler, ready: 0 }
    }

    /// One second at `load`: the load is recorded, a second passes, then a decision is made and
    /// the pool follows it.
    fn second(&mut self, load: f64) -> Decision {
        self.scaler.record(load);
        self.clock.advance(secs(1));
        let d = self.scaler.decide(self.ready);
        self.ready = d.desired;
        d
    }

    /// `n` seconds at `load`; every decision made.
    fn run(&mut self, load: f64, n: u64) -> Vec<Decision> {
        (0..n).map(|_| self.second(load)).collect()
    }

    /// Like [`Sim::second`] with `ready` pinned: the pool cannot start or stop anything.
    fn second_at(&mut self, load: f64, ready: u32) -> Decision {
        self.scaler.record(load);
        self.clock.advance(secs(1));
        self.ready = ready;
        self.scaler.decide(ready)
    }

    /// Runs `load` until the scaler is out of panic and has asked for the same thing for a
    /// whole stable window.
    fn settle(&mut self, load: f64) -> Decision {
        self.run(load, 200);
        let d = self.second(load);
        assert!(!d.panicking, "still panicking after 200 s at a steady {load}: {d:?}");
        d
    }
}

fn desired(ds: &[Decision]) -> Vec<u32> {
    ds.iter().map(|d| d.desired).collect()
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6, "{a} is not {b}");
}

// ---- steady load and the stable window ----

#[test]
fn steady_load_of_ten_at_target_one_asks_for_ten() {
    let mut sim = Sim::new(ScalerConfig::default());
    let ds = sim.run(10.0, 180);
    assert!(ds.iter().all(|d| d.desired == 10), "{:?}", desired(&ds));
    let last = ds.last().unwrap();
    assert_eq!(last.reason, Reason::Stable);
    assert!(!last.panicking);
    assert_close(sim.scaler.stable_average(), 10.0);
    assert_close(sim.scaler.panic_average(), 10.0);
}

#[test]
fn the_target_divides_and_rounds_up() {
    for (load, target, want) in
        [(10.0, 2.5, 4), (10.0, 3.0, 4), (9.0, 3.0, 3), (0.5, 1.0, 1), (100.0, 0.7, 143)]
    {
        let cfg = ScalerConfig { target_concurrency: target, max_instances: 1000, ..ScalerConfig::default() };
        let mut sim = Sim::new(cfg);
        assert_eq!(sim.settle(load).desired, want, "load {load} target {target}");
    }
}

#[test]
fn a_burst_below_the_panic_threshold_is_averaged_over_the_stable_window() {
    let mut sim = Sim::new(ScalerConfig::default());
    assert_eq!(sim.settle(4.0).desired, 4);
    // 6 is 1.5 times what 4 instances carry: below the threshold of 2.
    let burst = sim.run(6.0, 5);
    let after = sim.run(4.0, 70);
    for d in burst.iter().chain(&after) {
        assert!(!d.panicking, "{d:?}");
        // The average of 55 s at 4 and 5 s at 6 is 4.17: one more instance, not two.
        assert!(d.desired <= 5, "{d:?}");
    }
    assert_eq!(burst.last().unwrap().desired, 5);
    assert_close(sim.scaler.stable_average(), 4.0);
    // Once the burst has left the stable window, back to 4 (at most one step of 60 s later).
    assert_eq!(after[..58].iter().map(|d| d.desired).min(), Some(5), "{:?}", desired(&after));
    assert_eq!(after.last().unwrap().desired, 4);
}

#[test]
fn a_burst_on_an_idle_baseline_panics_and_holds_until_a_stable_window_has_passed() {
    let cfg = ScalerConfig { min_instances: 1, ..ScalerConfig::default() };
    let mut sim = Sim::new(cfg);
    assert_eq!(sim.settle(1.0).desired, 1);
    let burst = sim.run(20.0, 6);
    assert!(burst[0].panicking, "{:?}", burst[0]);
    // A second of 20 in a 6 s panic window: (5 * 1 + 20) / 6 = 4.2 -> 5, while the stable
    // window alone would ask for 2.
    assert_eq!(burst[0].desired, 5);
    assert_eq!(burst.last().unwrap().desired, 20);
    let after = sim.run(1.0, 120);
    let held = after.iter().take_while(|d| d.panicking).count();
    assert!(after[..held].iter().all(|d| d.desired == 20 && d.reason == Reason::Panic));
    // The condition last held in the burst's first second: a second later 5 were ready, and
    // 7.3 over 5 is below the threshold. The panic ends a stable window after that second, 54 s
    // after the burst's last.
    assert_eq!(held, 54, "{:?}", desired(&after));
    // Then down, no faster than halving, to the baseline.
    let down = desired(&after[held..]);
    assert_eq!(down[..3], [10, 5, 2], "{down:?}");
    assert_eq!(*down.last().unwrap(), 1);
}

// ---- panic ----

#[test]
fn panic_starts_when_the_load_doubles_and_nothing_scales_down_until_it_ends() {
    let mut sim = Sim::new(ScalerConfig::default());
    assert_eq!(sim.settle(10.0).desired, 10);

    // Twice the load on the same 10 instances: panic once the 6 s window is all at 20.
    let mut ds: Vec<Decision> = (0..6).map(|_| sim.second_at(20.0, 10)).collect();
    assert!(ds[..5].iter().all(|d| !d.panicking), "{ds:?}");
    assert!(ds[5].panicking, "{ds:?}");
    assert_eq!(ds[5].desired, 20);
    assert_eq!(ds[5].reason, Reason::Panic);
    assert!(sim.scaler.panicking());

    // The load falls to 2 with 20 ready: the stable window asks for fewer, the panic holds 20.
    ds = (0..59).map(|_| sim.second_at(2.0, 20)).collect();
    assert!(ds.iter().all(|d| d.panicking && d.desired == 20), "{:?}", desired(&ds));
    // A stable window after the condition last held, the panic ends and scaling down starts,
    // limited to halving.
    let d = sim.second_at(2.0, 20);
    assert!(!d.panicking, "{d:?}");
    assert_eq!((d.desired, d.reason), (10, Reason::ScaleDownLimited));
    assert!(!sim.scaler.panicking());
}

#[test]
fn panicking_asks_for_the_most_asked_so_far() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.settle(10.0);
    // Rising to 40 and falling back to 25 while panicking: 40 is held.
    let mut last = None;
    for load in [40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 25.0, 25.0, 25.0, 25.0, 25.0, 25.0, 25.0] {
        last = Some(sim.second_at(load, 10));
    }
    let last = last.unwrap();
    assert!(last.panicking);
    assert_eq!(last.desired, 40);
}

#[test]
fn the_threshold_compares_the_unrounded_ask() {
    // 1.5 on one instance rounds up to an ask of 2, twice the ready instance, but carries only
    // 1.5 times its target.
    let mut sim = Sim::new(ScalerConfig { min_instances: 1, ..ScalerConfig::default() });
    sim.settle(1.0);
    let ds: Vec<Decision> = (0..30).map(|_| sim.second_at(1.5, 1)).collect();
    assert!(ds.iter().all(|d| !d.panicking && d.desired == 2), "{ds:?}");
    // 2.0 on one is exactly the threshold.
    let ds: Vec<Decision> = (0..6).map(|_| sim.second_at(2.0, 1)).collect();
    assert!(ds.last().unwrap().panicking, "{ds:?}");
}

#[test]
fn with_none_ready_the_threshold_counts_one_instance() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.scaler.record(1.0);
    sim.clock.advance(secs(1));
    assert!(!sim.scaler.decide(0).panicking);
    sim.scaler.record(2.0);
    sim.clock.advance(secs(10));
    let d = sim.scaler.decide(0);
    assert!(d.panicking, "{d:?}");
    assert_eq!(d.desired, 2);
}

// ---- scale to zero ----

fn short_window() -> ScalerConfig {
    ScalerConfig {
        stable_window: secs(10),
        panic_window: secs(1),
        scale_to_zero_grace: secs(30),
        ..ScalerConfig::default()
    }
}

#[test]
fn scale_to_zero_waits_for_the_grace_after_the_last_request() {
    let mut sim = Sim::new(short_window());
    sim.scaler.request_arrived();
    let first = sim.second(1.0);
    assert_eq!(first.desired, 1);
    // The request took a second; the averages forget it after the 10 s window, the grace keeps
    // the instance until 30 s after it arrived.
    let ds = sim.run(0.0, 40);
    for (i, d) in ds.iter().enumerate() {
        let since_request = i as u64 + 2;
        if since_request < 30 {
            assert_eq!(d.desired, 1, "{since_request} s after the request: {d:?}");
        } else {
            assert_eq!((d.desired, d.reason), (0, Reason::ScaleToZero), "{since_request} s: {d:?}");
        }
    }
    assert_eq!(ds[5].reason, Reason::Stable);
    assert_eq!(ds[20].reason, Reason::GraceHoldsOne);
}

#[test]
fn the_grace_holds_one_even_with_none_ready() {
    let mut sim = Sim::new(short_window());
    sim.scaler.request_arrived();
    assert_eq!(sim.scaler.decide(0).desired, 1);
    sim.clock.advance(secs(29));
    assert_eq!(
        sim.scaler.decide(0),
        Decision { desired: 1, panicking: false, reason: Reason::GraceHoldsOne }
    );
    sim.clock.advance(secs(1));
    assert_eq!(sim.scaler.decide(0).desired, 0);
}

#[test]
fn the_stable_window_outlasts_a_shorter_grace() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.scaler.request_arrived();
    sim.second(1.0);
    let ds = sim.run(0.0, 70);
    // 45 s after the request the grace is over but the request is still in the 60 s average.
    assert_eq!((ds[44].desired, ds[44].reason), (1, Reason::Stable));
    assert_eq!(ds.last().unwrap().desired, 0);
}

#[test]
fn a_revision_that_never_saw_a_request_may_be_at_zero_at_once() {
    let mut sim = Sim::new(ScalerConfig::default());
    assert_eq!(sim.scaler.decide(0), Decision { desired: 0, panicking: false, reason: Reason::ScaleToZero });
    // Nor is an instance that was started anyway kept for a grace.
    assert_eq!(sim.scaler.decide(1).desired, 0);
}

#[test]
fn a_request_at_zero_asks_for_an_instance_at_once() {
    let cfg = ScalerConfig { scale_to_zero_grace: Duration::ZERO, ..ScalerConfig::default() };
    let mut sim = Sim::new(cfg);
    sim.run(0.0, 600);
    assert_eq!(sim.ready, 0);
    sim.scaler.request_arrived();
    // No time passes and nothing is recorded: the averages cannot know yet.
    assert_eq!(
        sim.scaler.decide(0),
        Decision { desired: 1, panicking: false, reason: Reason::RequestArrived }
    );
    // It counts once: with no grace and nothing recorded, the next decision is zero again.
    assert_eq!(sim.scaler.decide(0).desired, 0);
}

#[test]
fn load_that_wakes_an_idle_revision_is_seen_at_its_size() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.settle(3.0);
    sim.run(0.0, 300);
    assert_eq!(sim.ready, 0);
    // 50 requests arrive and wait: the idle window is forgotten, not averaged in.
    sim.scaler.request_arrived();
    sim.scaler.record(50.0);
    let d = sim.scaler.decide(0);
    assert_eq!(d.desired, 50, "{d:?}");
    assert_close(sim.scaler.stable_average(), 50.0);
}

#[test]
fn a_short_idle_gap_is_averaged_not_forgotten() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.settle(10.0);
    sim.run(0.0, 30);
    sim.scaler.record(10.0);
    // 30 s at 10 and 30 s at 0 in the window.
    assert_close(sim.scaler.stable_average(), 5.0);
}

// ---- bounds and rate limits ----

#[test]
fn min_instances_are_kept_with_no_traffic() {
    let mut sim = Sim::new(ScalerConfig { min_instances: 2, ..ScalerConfig::default() });
    // Before anything is ever recorded.
    assert_eq!(sim.scaler.decide(0), Decision { desired: 2, panicking: false, reason: Reason::MinInstances });
    let ds = sim.run(0.0, 600);
    assert!(ds.iter().all(|d| d.desired == 2 && d.reason == Reason::MinInstances));
}

#[test]
fn max_instances_hold_under_huge_load() {
    let mut sim = Sim::new(ScalerConfig { max_instances: 7, ..ScalerConfig::default() });
    let ds = sim.run(1e6, 120);
    assert!(ds.iter().all(|d| d.desired == 7 && d.reason == Reason::MaxInstances), "{ds:?}");
    assert!(ds.last().unwrap().panicking);
    // Absurd samples do not overflow anything.
    sim.scaler.record(f64::INFINITY);
    sim.clock.advance(secs(1));
    assert_eq!(sim.scaler.decide(7).desired, 7);
}

#[test]
fn scale_up_is_limited_by_the_rate() {
    let cfg = ScalerConfig { max_scale_up_rate: 2.0, ..ScalerConfig::default() };
    let mut sim = Sim::new(cfg.clone());
    sim.scaler.record(100.0);
    sim.clock.advance(secs(1));
    let d = sim.scaler.decide(3);
    assert_eq!((d.desired, d.reason), (6, Reason::ScaleUpLimited));
    // From none ready, as from one.
    let mut sim = Sim::new(cfg.clone());
    sim.scaler.record(100.0);
    assert_eq!(
        sim.scaler.decide(0),
        Decision { desired: 2, panicking: true, reason: Reason::ScaleUpLimited }
    );
    // A pool that follows doubles each step until the ask is reached.
    let steps = desired(&sim.run(100.0, 10));
    assert_eq!(steps, [2, 4, 8, 16, 32, 64, 100, 100, 100, 100]);

    let mut sim = Sim::new(ScalerConfig { max_scale_up_rate: 1.5, ..cfg });
    sim.scaler.record(100.0);
    sim.clock.advance(secs(1));
    assert_eq!(sim.scaler.decide(3).desired, 5);
}

#[test]
fn scale_down_is_limited_by_the_rate() {
    let mut sim = Sim::new(ScalerConfig::default());
    assert_eq!(sim.settle(10.0).desired, 10);
    for _ in 0..61 {
        sim.second_at(0.0, 10);
    }
    assert_close(sim.scaler.stable_average(), 0.0);
    // From 10 ready at rate 2: not below 5 in one step, however many times it is asked.
    for _ in 0..3 {
        assert_eq!(
            sim.scaler.decide(10),
            Decision { desired: 5, panicking: false, reason: Reason::ScaleDownLimited }
        );
    }
    assert_eq!(desired(&sim.run(0.0, 4)), [5, 2, 1, 0]);

    let mut sim = Sim::new(ScalerConfig { max_scale_down_rate: 4.0, ..ScalerConfig::default() });
    sim.settle(10.0);
    sim.run(0.0, 70);
    assert_eq!(sim.ready, 0);
    let mut sim = Sim::new(ScalerConfig { max_scale_down_rate: 4.0, ..ScalerConfig::default() });
    sim.settle(10.0);
    for _ in 0..61 {
        sim.second_at(0.0, 10);
    }
    assert_eq!(sim.scaler.decide(10).desired, 2);
}

#[test]
fn bounds_beat_the_rate_limits() {
    let cfg = ScalerConfig { max_scale_up_rate: 2.0, min_instances: 8, ..ScalerConfig::default() };
    let mut sim = Sim::new(cfg);
    assert_eq!(sim.scaler.decide(0).desired, 8);
    let mut sim = Sim::new(ScalerConfig::default());
    sim.settle(10.0);
    sim.scaler.set_config(ScalerConfig { max_instances: 3, ..ScalerConfig::default() });
    assert_eq!(
        sim.scaler.decide(10),
        Decision { desired: 3, panicking: false, reason: Reason::MaxInstances }
    );
}

// ---- configuration changes ----

#[test]
fn set_config_takes_effect_on_the_next_decision() {
    let mut sim = Sim::new(ScalerConfig::default());
    assert_eq!(sim.settle(10.0).desired, 10);

    let faster_down = ScalerConfig { max_scale_down_rate: 100.0, ..ScalerConfig::default() };
    sim.scaler.set_config(ScalerConfig { target_concurrency: 5.0, ..faster_down.clone() });
    assert_eq!(sim.scaler.config().target_concurrency, 5.0);
    assert_eq!(sim.scaler.decide(10).desired, 2);

    sim.scaler.set_config(ScalerConfig { min_instances: 20, max_instances: 30, ..faster_down.clone() });
    assert_eq!(sim.scaler.decide(10).desired, 20);

    // A shorter window keeps the newest history; a longer one keeps all of it.
    sim.scaler.set_config(ScalerConfig { stable_window: secs(30), ..faster_down.clone() });
    assert_close(sim.scaler.stable_average(), 10.0);
    assert_eq!(sim.scaler.decide(10).desired, 10);
    sim.scaler.set_config(ScalerConfig { stable_window: secs(120), ..faster_down.clone() });
    assert_close(sim.scaler.stable_average(), 10.0);
    assert_eq!(sim.scaler.window().bucket_count(), 121);

    // A new tick restarts the history from the standing level.
    sim.scaler.set_config(ScalerConfig { tick: millis(500), ..faster_down });
    assert_close(sim.scaler.stable_average(), 10.0);
    assert_eq!(sim.scaler.window().bucket_count(), 121);
    sim.scaler.record(0.0);
    sim.clock.advance(secs(10));
    assert_close(sim.scaler.stable_average(), 0.0);
}

#[test]
fn a_new_target_ends_a_panic() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.settle(10.0);
    for _ in 0..6 {
        sim.second_at(30.0, 10);
    }
    assert!(sim.scaler.panicking());
    sim.scaler.set_config(ScalerConfig { target_concurrency: 10.0, ..ScalerConfig::default() });
    assert!(!sim.scaler.panicking());
    let d = sim.scaler.decide(10);
    // 30 over a target of 10 is 3 instances, which 10 ready carry: no panic, and down to 5.
    assert_eq!((d.desired, d.panicking), (5, false));
}

#[test]
fn a_grace_change_applies_to_the_last_request() {
    let mut sim = Sim::new(short_window());
    sim.scaler.request_arrived();
    sim.clock.advance(secs(20));
    assert_eq!(sim.scaler.decide(1).desired, 1);
    sim.scaler.set_config(ScalerConfig { scale_to_zero_grace: secs(10), ..short_window() });
    assert_eq!(sim.scaler.decide(1).desired, 0);
}

// ---- averaging ----

#[test]
fn a_young_revision_is_averaged_over_its_age() {
    let mut sim = Sim::new(ScalerConfig::default());
    // Made long before its first sample: that time is no history either.
    sim.clock.advance(secs(300));
    assert_eq!(sim.scaler.stable_average(), 0.0);
    assert_eq!(sim.scaler.decide(0).desired, 0);
    sim.scaler.record(10.0);
    assert_close(sim.scaler.stable_average(), 10.0);
    sim.clock.advance(secs(5));
    // Not 10 * 5 / 60.
    assert_close(sim.scaler.stable_average(), 10.0);
    assert_eq!(sim.scaler.decide(10).desired, 10);
    sim.scaler.record(0.0);
    sim.clock.advance(secs(5));
    assert_close(sim.scaler.stable_average(), 5.0);
    assert_close(sim.scaler.panic_average(), 10.0 / 6.0);
}

#[test]
fn a_value_holds_until_the_next_and_is_weighted_by_time() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.scaler.record(0.0);
    sim.clock.advance(secs(60));
    // Recorded once, on change: a minute with no samples still counts 8 throughout.
    sim.scaler.record(8.0);
    sim.clock.advance(secs(120));
    assert_close(sim.scaler.stable_average(), 8.0);
    // Many samples in a short time do not outweigh a long one: 100 for 100 ms, then 0.
    for _ in 0..100 {
        sim.scaler.record(100.0);
        sim.clock.advance(millis(1));
    }
    sim.scaler.record(8.0);
    sim.clock.advance(millis(900));
    sim.scaler.record(8.0);
    let stable = sim.scaler.stable_average();
    assert!(stable > 8.0 && stable < 10.0, "{stable}");
    // Calling on a ticker gives what calling on change gave.
    let mut ticker = Sim::new(ScalerConfig::default());
    ticker.scaler.record(0.0);
    ticker.clock.advance(secs(60));
    for _ in 0..120 {
        ticker.scaler.record(8.0);
        ticker.clock.advance(secs(1));
    }
    assert_close(ticker.scaler.stable_average(), 8.0);
}

#[test]
fn a_tick_is_split_by_time_within_it() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.scaler.record(0.0);
    sim.clock.advance(secs(10));
    sim.scaler.record(10.0);
    sim.clock.advance(millis(500));
    sim.scaler.record(0.0);
    sim.clock.advance(millis(500));
    // 5 request-seconds over the 6 s panic window.
    assert_close(sim.scaler.panic_average(), 5.0 / 6.0);
}

#[test]
fn a_window_is_exactly_its_length() {
    let mut sim = Sim::new(ScalerConfig::default());
    sim.scaler.record(6.0);
    sim.clock.advance(secs(100));
    sim.scaler.record(0.0);
    sim.clock.advance(millis(250));
    // The panic window reaches 250 ms into the current tick, so 5.75 s at 6 and 250 ms at 0.
    assert_close(sim.scaler.panic_average(), 5.75 * 6.0 / 6.0);
    // Not aligned with the ticks at all.
    sim.clock.advance(millis(2_300));
    assert_close(sim.scaler.panic_average(), 3.45 * 6.0 / 6.0);
}

#[test]
fn memory_is_bounded() {
    let mut sim = Sim::new(ScalerConfig::default());
    let buckets = sim.scaler.window().bucket_count();
    let capacity = sim.scaler.window().bucket_capacity();
    assert_eq!(buckets, 61);
    let mut seed = 7u64;
    for _ in 0..100_000 {
        sim.scaler.record((lcg(&mut seed) % 50) as f64);
        sim.clock.advance(millis(100));
        if one_in(&mut seed, 10) {
            sim.scaler.decide(10);
        }
    }
    // A long silence, and a clock far in the future.
    sim.clock.advance(secs(86_400 * 365));
    sim.scaler.record(1.0);
    sim.scaler.decide(1);
    assert_eq!(sim.scaler.window().bucket_count(), buckets);
    assert_eq!(sim.scaler.window().bucket_capacity(), capacity);

    // However the window and the tick are configured.
    let cfg =
        ScalerConfig { stable_window: secs(86_400), tick: Duration::from_nanos(1), ..Default::default() };
    assert!(cfg.validate().is_err());
    let sim = Sim::new(cfg);
    assert!(sim.scaler.window().bucket_count() as u64 <= MAX_BUCKETS + 1);
}

#[test]
fn time_going_backwards_stands_still() {
    let mut sim = Sim::new(ScalerConfig::default());
    let start = crate::Clock::now(&sim.clock);
    sim.scaler.record(4.0);
    sim.clock.advance(secs(10));
    sim.scaler.record(4.0);
    sim.clock.set(start);
    sim.scaler.record(2.0);
    let d = sim.scaler.decide(4);
    assert_eq!(d.desired, 4);
    sim.clock.set(start + secs(20));
    assert_close(sim.scaler.stable_average(), 3.0);
}

// ---- configuration ----

#[test]
fn the_default_config_is_valid_and_knatives() {
    let cfg = ScalerConfig::default();
    assert_eq!(cfg.validate(), Ok(()));
    assert_eq!(cfg.stable_window, secs(60));
    assert_eq!(cfg.panic_window, secs(6));
    assert_eq!(cfg.panic_threshold, 2.0);
    assert_eq!(cfg.max_scale_down_rate, 2.0);
}

#[test]
fn invalid_configs_are_named() {
    let d = ScalerConfig::default;
    let cases = [
        (ScalerConfig { target_concurrency: 0.0, ..d() }, ConfigError::TargetConcurrency(0.0)),
        (ScalerConfig { target_concurrency: -1.0, ..d() }, ConfigError::TargetConcurrency(-1.0)),
        (ScalerConfig { max_instances: 0, ..d() }, ConfigError::MaxInstancesZero),
        (
            ScalerConfig { min_instances: 5, max_instances: 4, ..d() },
            ConfigError::MinAboveMax { min: 5, max: 4 },
        ),
        (ScalerConfig { tick: Duration::ZERO, ..d() }, ConfigError::ZeroTick),
        (
            ScalerConfig { panic_window: millis(500), ..d() },
            ConfigError::PanicWindowBelowTick { panic_window: millis(500), tick: secs(1) },
        ),
        (
            ScalerConfig { panic_window: secs(61), ..d() },
            ConfigError::PanicWindowAboveStable { panic_window: secs(61), stable_window: secs(60) },
        ),
        (
            ScalerConfig { stable_window: secs(7200), ..d() },
            ConfigError::TooManyBuckets { stable_window: secs(7200), tick: secs(1) },
        ),
        (ScalerConfig { panic_threshold: 1.0, ..d() }, ConfigError::PanicThreshold(1.0)),
        (ScalerConfig { panic_threshold: f64::INFINITY, ..d() }, ConfigError::PanicThreshold(f64::INFINITY)),
        (ScalerConfig { max_scale_up_rate: 0.5, ..d() }, ConfigError::ScaleUpRate(0.5)),
        (ScalerConfig { max_scale_up_rate: 1.0, ..d() }, ConfigError::ScaleUpRate(1.0)),
        (ScalerConfig { max_scale_down_rate: 1.0, ..d() }, ConfigError::ScaleDownRate(1.0)),
    ];
    for (cfg, err) in cases {
        assert_eq!(cfg.validate(), Err(err.clone()), "{cfg:?}");
        assert!(!err.to_string().is_empty());
    }
    assert!(matches!(
        ScalerConfig { target_concurrency: f64::NAN, ..d() }.validate(),
        Err(ConfigError::TargetConcurrency(_))
    ));
    // Edges that are valid.
    for cfg in [
        ScalerConfig { min_instances: 4, max_instances: 4, ..d() },
        ScalerConfig { panic_window: secs(60), ..d() },
        ScalerConfig { panic_window: secs(1), ..d() },
        ScalerConfig { stable_window: secs(3600), ..d() },
        ScalerConfig { max_scale_up_rate: 1.01, max_scale_down_rate: 1.01, ..d() },
        ScalerConfig { scale_to_zero_grace: Duration::ZERO, ..d() },
    ] {
        assert_eq!(cfg.validate(), Ok(()), "{cfg:?}");
    }
}

#[test]
fn an_invalid_config_is_made_safe_not_obeyed() {
    let cfg = ScalerConfig {
        target_concurrency: 0.0,
        stable_window: Duration::ZERO,
        panic_window: secs(600),
        panic_threshold: f64::NAN,
        min_instances: 9,
        max_instances: 0,
        max_scale_up_rate: -1.0,
        max_scale_down_rate: 0.0,
        tick: Duration::ZERO,
        ..ScalerConfig::default()
    };
    assert!(cfg.validate().is_err());
    let mut sim = Sim::new(cfg.clone());
    // (Debug, since NaN is not equal to itself.)
    assert_eq!(format!("{:?}", sim.scaler.config()), format!("{cfg:?}"));
    for d in sim.run(50.0, 30) {
        assert_eq!(d.desired, 1, "max 0 acts as 1: {d:?}");
    }
    sim.scaler.record(f64::NAN);
    sim.scaler.record(-3.0);
    sim.clock.advance(secs(5));
    assert!(sim.scaler.stable_average().is_finite());
}

#[test]
fn reasons_have_names() {
    assert_eq!(Reason::GraceHoldsOne.as_str(), "grace_holds_one");
    assert_eq!(Reason::ScaleDownLimited.to_string(), "scale_down_limited");
}

#[test]
fn manual_clock_clones_share_the_time() {
    use crate::Clock;
    let a = ManualClock::default();
    let b = a.clone();
    let t0 = a.now();
    b.advance(secs(3));
    assert_eq!(a.now() - t0, secs(3));
    a.set(t0);
    assert_eq!(b.now(), t0);
    let shared = std::sync::Arc::new(a.clone());
    assert_eq!(shared.now(), t0);
    let system = crate::SystemClock;
    assert!(system.now() <= crate::SystemClock.now());
}

// ---- properties, over pseudo-random runs ----

fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

fn one_in(state: &mut u64, n: u64) -> bool {
    lcg(state).is_multiple_of(n)
}

fn random_config(seed: &mut u64) -> ScalerConfig {
    let tick = millis([100, 250, 500, 1000][(lcg(seed) % 4) as usize]);
    let stable = tick * (6 + (lcg(seed) % 120) as u32);
    let panic = (tick * (1 + (lcg(seed) % 12) as u32)).min(stable);
    let max = 1 + (lcg(seed) % 50) as u32;
    let min = if one_in(seed, 3) { (lcg(seed) % u64::from(max + 1)) as u32 } else { 0 };
    let cfg = ScalerConfig {
        target_concurrency: 0.25 + (lcg(seed) % 400) as f64 / 40.0,
        stable_window: stable,
        panic_window: panic,
        panic_threshold: 1.1 + (lcg(seed) % 40) as f64 / 10.0,
        min_instances: min,
        max_instances: max,
        max_scale_up_rate: 1.1 + (lcg(seed) % 30) as f64 / 3.0,
        max_scale_down_rate: 1.1 + (lcg(seed) % 30) as f64 / 6.0,
        scale_to_zero_grace: millis(lcg(seed) % 40_000),
        tick,
    };
    assert_eq!(cfg.validate(), Ok(()), "{cfg:?}");
    cfg
}

#[test]
fn decisions_stay_within_the_bounds_and_the_rate_limits() {
    let mut seed = 0x5eed;
    for _ in 0..200 {
        let cfg = random_config(&mut seed);
        let mut sim = Sim::new(cfg.clone());
        let mut load = 0.0;
        let mut max_load: f64 = 0.0;
        let mut previous: Option<Decision> = None;
        for _ in 0..400 {
            if one_in(&mut seed, 8) {
                load = match lcg(&mut seed) % 4 {
                    0 => 0.0,
                    1 => (lcg(&mut seed) % 5) as f64,
                    2 => (lcg(&mut seed) % 100) as f64 / 3.0,
                    _ => (lcg(&mut seed) % 1000) as f64,
                };
                max_load = max_load.max(load);
            }
            if one_in(&mut seed, 5) {
                sim.scaler.request_arrived();
            }
            sim.scaler.record(load);
            sim.clock.advance(millis(1 + lcg(&mut seed) % 3000));
            // The pool lags: sometimes it gets there, sometimes part of the way, sometimes not.
            let ready = match lcg(&mut seed) % 3 {
                0 => sim.ready,
                1 => previous.map_or(0, |d| d.desired),
                _ => (lcg(&mut seed) % u64::from(cfg.max_instances + 1)) as u32,
            };
            sim.ready = ready;
            let d = sim.scaler.decide(ready);

            assert!(d.desired >= cfg.min_instances && d.desired <= cfg.max_instances, "{cfg:?} {d:?}");
            let up_to = (f64::from(ready.max(1)) * cfg.max_scale_up_rate).ceil() as u32;
            let down_to = (f64::from(ready) / cfg.max_scale_down_rate).floor() as u32;
            if d.desired > up_to.max(cfg.min_instances) {
                // Only a panic holding what it asked for before, when it had more ready.
                let held = previous.is_some_and(|p| p.panicking && p.desired >= d.desired);
                assert!(d.panicking && held, "{cfg:?} ready {ready}: {previous:?} then {d:?}");
            }
            assert!(d.desired >= down_to.min(cfg.max_instances), "{cfg:?} ready {ready}: {d:?}");
            if let Some(p) = previous
                && p.panicking
                && d.panicking
            {
                assert!(d.desired >= p.desired, "scaled down while panicking: {p:?} then {d:?}");
            }
            for avg in [sim.scaler.stable_average(), sim.scaler.panic_average()] {
                assert!((0.0..=max_load + 1e-6).contains(&avg), "{avg} outside 0..={max_load}");
            }
            assert_eq!(d.panicking, sim.scaler.panicking());
            previous = Some(d);
        }
    }
}

#[test]
fn a_steady_load_converges_to_its_ask() {
    let mut seed = 0xc0ffee;
    for _ in 0..200 {
        let cfg = random_config(&mut seed);
        let load = (lcg(&mut seed) % 2000) as f64 / 7.0;
        let mut sim = Sim::new(cfg.clone());
        // Two stable windows settle the averages and end any panic; the rest is for the rate
        // limits to walk there.
        let steps = 2 * cfg.stable_window.as_secs() + 40;
        let ds = sim.run(load, steps);
        let ask = ((load / cfg.target_concurrency) - 1e-9).ceil().max(0.0) as u32;
        let want = ask.clamp(cfg.min_instances, cfg.max_instances);
        let last = ds.last().unwrap();
        assert_eq!(last.desired, want, "{cfg:?} load {load}: {:?}", desired(&ds[ds.len() - 10..]));
        // Held at max_instances by more load than they carry, a revision stays in panic.
        if load / cfg.target_concurrency / f64::from(want.max(1)) < cfg.panic_threshold {
            assert!(!last.panicking, "{cfg:?} load {load}");
        }
    }
}
