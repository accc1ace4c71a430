//! The policy the activator gives every revision's pool: the autoscaler (crates/scaler) decides
//! how many instances the load needs, the keep-alive policy (crates/keepalive) decides how long
//! the last of them stays warm once the function is idle, and when to pre-warm one again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use yun_keepalive::{KeepAlive, PolicyKind};
use yun_pool::{Policy, Stats};
use yun_scaler::{Autoscaler, Clock, ScalerConfig};
use yun_types::{KeepAliveKind, ScaleSettings};

/// How often a pool's policy runs.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// Tokio's clock, so tests that pause time drive the autoscaler too.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// What `yun describe` shows of a revision's scaling.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PolicyView {
    pub panicking: bool,
    pub stable_concurrency: f64,
    pub panic_concurrency: f64,
    /// Adaptive keep-alive: whether the idle-time histogram is used yet.
    pub keep_alive_learned: bool,
    pub keep_alive_ms: u64,
    pub prewarm_after_ms: u64,
}

pub(crate) struct ScalePolicy {
    settings: Arc<Mutex<ScaleSettings>>,
    applied: ScaleSettings,
    autoscaler: Autoscaler<TokioClock>,
    keep_alive: KeepAlive,
    origin: Instant,
    /// The last arrival the policy has accounted for.
    seen_request: Option<Instant>,
    busy: bool,
    /// When the function last became idle (or was installed).
    idle_since: Instant,
    /// The keep-alive ran out since the function went idle.
    expired: bool,
    view: Arc<Mutex<PolicyView>>,
}

fn scaler_config(s: &ScaleSettings) -> ScalerConfig {
    ScalerConfig {
        target_concurrency: f64::from(s.concurrency.max(1)),
        min_instances: s.min_instances,
        max_instances: s.max_instances.max(1),
        // The last instance is the keep-alive policy's to stop, not the averages'.
        scale_to_zero_grace: Duration::ZERO,
        stable_window: Duration::from_millis(s.window_ms),
        // A tenth of the stable window, as Knative's default, and never under a tick.
        panic_window: Duration::from_millis((s.window_ms / 10).max(1_000)),
        ..ScalerConfig::default()
    }
}

fn keep_alive(s: &ScaleSettings) -> KeepAlive {
    let window = Duration::from_millis(s.idle_ms);
    match s.keep_alive {
        KeepAliveKind::Fixed => KeepAlive::fixed(window),
        KeepAliveKind::Adaptive => KeepAlive::adaptive(yun_keepalive::AdaptiveConfig {
            fallback: window,
            ..yun_keepalive::AdaptiveConfig::default()
        }),
    }
}

impl ScalePolicy {
    pub(crate) fn new(settings: Arc<Mutex<ScaleSettings>>, view: Arc<Mutex<PolicyView>>) -> Self {
        let applied = settings.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let now = Instant::now();
        Self {
            autoscaler: Autoscaler::new(scaler_config(&applied), TokioClock),
            keep_alive: keep_alive(&applied),
            applied,
            settings,
            origin: now,
            seen_request: None,
            busy: false,
            idle_since: now,
            expired: false,
            view,
        }
    }

    fn refresh_settings(&mut self) {
        let current = self.settings.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if current == self.applied {
            return;
        }
        self.autoscaler.set_config(scaler_config(&current));
        let kind = match current.keep_alive {
            KeepAliveKind::Fixed => PolicyKind::Fixed,
            KeepAliveKind::Adaptive => PolicyKind::Adaptive,
        };
        if kind != self.keep_alive.kind() || current.idle_ms != self.applied.idle_ms {
            self.keep_alive = keep_alive(&current);
        }
        self.applied = current;
    }
}

impl Policy for ScalePolicy {
    fn desired(&mut self, stats: &Stats, now: Instant) -> u32 {
        self.refresh_settings();
        let load = stats.in_flight + stats.waiting;
        // The average since the last tick, not the load at this instant: a burst shorter than a
        // tick must still be seen, and a request that happens to be in flight at the tick must
        // not count as a whole tick of load.
        self.autoscaler.record(stats.average_load);
        let at = |t: Instant| t.saturating_duration_since(self.origin);
        // Requests that came and went between two ticks count as activity too.
        if stats.last_request != self.seen_request {
            self.seen_request = stats.last_request;
            self.expired = false;
            self.autoscaler.request_arrived();
            if !self.busy {
                let arrived = stats.last_request.unwrap_or(now);
                self.keep_alive.invocation_started(at(arrived));
                self.busy = true;
            }
        }
        if self.busy && load == 0 {
            self.keep_alive.invocation_ended(at(now));
            self.busy = false;
            self.idle_since = now;
            self.expired = false;
        } else if !self.busy && load > 0 {
            self.keep_alive.invocation_started(at(now));
            self.busy = true;
            self.expired = false;
        }
        let decision = self.autoscaler.decide(stats.ready);
        let windows = self.keep_alive.windows();
        let desired = if load > 0 {
            decision.desired.max(1)
        } else if !self.expired
            && stats.last_request.is_some()
            && windows.loaded_at(now.saturating_duration_since(self.idle_since))
        {
            // Idle but within the keep-alive: scale in as the averages say, keeping one warm.
            decision.desired.max(1)
        } else {
            // Once the keep-alive has run out, it stays out until the next request: a longer
            // window set later must not bring back an instance already let go.
            if now.saturating_duration_since(self.idle_since) > windows.unload_after() {
                self.expired = true;
            }
            0
        };
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = PolicyView {
            panicking: decision.panicking,
            stable_concurrency: self.autoscaler.stable_average(),
            panic_concurrency: self.autoscaler.panic_average(),
            keep_alive_learned: self.keep_alive.representative(),
            keep_alive_ms: u64::try_from(windows.keep_alive.as_millis()).unwrap_or(u64::MAX),
            prewarm_after_ms: u64::try_from(windows.prewarm_after.as_millis()).unwrap_or(u64::MAX),
        };
        desired.max(self.applied.min_instances)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(idle_ms: u64, kind: KeepAliveKind) -> ScaleSettings {
        ScaleSettings {
            min_instances: 0,
            max_instances: 10,
            concurrency: 1,
            idle_ms,
            keep_alive: kind,
            max_queue: 10,
            queue_timeout_ms: 1000,
            freeze_ms: 0,
            window_ms: 60_000,
        }
    }

    fn stats(ready: u32, in_flight: u32, last_request: Option<Instant>) -> Stats {
        Stats {
            ready,
            starting: 0,
            frozen: 0,
            in_flight,
            waiting: 0,
            desired: ready,
            average_load: f64::from(in_flight),
            last_request,
            config: yun_pool::PoolConfig::default(),
        }
    }

    fn policy(s: ScaleSettings) -> (ScalePolicy, Arc<Mutex<ScaleSettings>>) {
        let shared = Arc::new(Mutex::new(s));
        (ScalePolicy::new(shared.clone(), Arc::default()), shared)
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_one_warm_for_the_fixed_window_after_the_last_request_then_zero() {
        let (mut p, _) = policy(settings(2_000, KeepAliveKind::Fixed));
        let t0 = Instant::now();
        assert_eq!(p.desired(&stats(1, 1, Some(t0)), Instant::now()), 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 1, "idle, inside the window");
        tokio::time::advance(Duration::from_millis(1_600)).await;
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 0, "window over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_between_ticks_restarts_the_window() {
        let (mut p, _) = policy(settings(2_000, KeepAliveKind::Fixed));
        assert_eq!(p.desired(&stats(0, 0, None), Instant::now()), 0, "never called: nothing to keep warm");
        tokio::time::advance(Duration::from_millis(1_800)).await;
        let arrived = Instant::now();
        tokio::time::advance(Duration::from_millis(100)).await;
        // It came and went before this tick saw it in flight.
        assert_eq!(p.desired(&stats(1, 0, Some(arrived)), Instant::now()), 1);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(p.desired(&stats(1, 0, Some(arrived)), Instant::now()), 1, "window counts from then");
    }

    #[tokio::test(start_paused = true)]
    async fn load_asks_for_instances_and_min_instances_are_kept() {
        let (mut p, shared) = policy(settings(1_000, KeepAliveKind::Fixed));
        let now = Instant::now();
        assert_eq!(p.desired(&stats(1, 8, Some(now)), Instant::now()), 8);
        shared.lock().unwrap().min_instances = 2;
        // The load ends; long after, only the min instances are asked for.
        p.desired(&stats(8, 0, Some(now)), Instant::now());
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(p.desired(&stats(2, 0, Some(now)), Instant::now()), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_between_two_ticks_counts_through_its_average() {
        let (mut p, _) = policy(settings(60_000, KeepAliveKind::Fixed));
        let t0 = Instant::now();
        let mut s = stats(1, 0, Some(t0));
        // Nothing in flight at the tick, but 10 on average since the last one.
        s.average_load = 10.0;
        assert_eq!(p.desired(&s, Instant::now()), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_window_set_after_the_keep_alive_ran_out_does_not_bring_an_instance_back() {
        let (mut p, shared) = policy(settings(1_000, KeepAliveKind::Fixed));
        let t0 = Instant::now();
        assert_eq!(p.desired(&stats(1, 1, Some(t0)), Instant::now()), 1);
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 0);
        shared.lock().unwrap().idle_ms = 600_000;
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(p.desired(&stats(0, 0, Some(t0)), Instant::now()), 0);
        // The next request starts over.
        let t1 = Instant::now();
        assert_eq!(p.desired(&stats(0, 1, Some(t1)), Instant::now()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn settings_changes_apply_at_the_next_tick() {
        let (mut p, shared) = policy(settings(60_000, KeepAliveKind::Fixed));
        let t0 = Instant::now();
        assert_eq!(p.desired(&stats(1, 1, Some(t0)), Instant::now()), 1);
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 1);
        shared.lock().unwrap().idle_ms = 1_000;
        assert_eq!(p.desired(&stats(1, 0, Some(t0)), Instant::now()), 0);
    }
}
