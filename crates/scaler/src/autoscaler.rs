use crate::clock::Clock;
use crate::config::{ScalerConfig, buckets};
use crate::window::Window;

/// Averages within this (relative) distance above a whole number round down to it: an average of
/// exactly 10 computed as 10.000000000002 must ask for 10 instances, not 11.
const ROUNDING_SLACK: f64 = 1e-9;

/// What the scaler asks for now, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// How many instances the revision should have. The caller starts or stops instances to get
    /// there; instances still starting are the caller's to count against it.
    pub desired: u32,
    pub panicking: bool,
    pub reason: Reason,
}

/// The rule that set [`Decision::desired`]: the last one in the order the rules apply
/// (averages, rate limits, panic hold, instance bounds, scale to zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The stable window's average over the target.
    Stable,
    /// Panicking: the larger of both windows' asks, or the most asked since the panic began,
    /// since a panicking revision does not scale down.
    Panic,
    /// The ask was above `ceil(ready * max_scale_up_rate)`.
    ScaleUpLimited,
    /// The ask was below `floor(ready / max_scale_down_rate)`.
    ScaleDownLimited,
    MinInstances,
    MaxInstances,
    /// Nothing to serve and no request within the grace: no instances.
    ScaleToZero,
    /// The averages ask for none, but a request arrived within the scale-to-zero grace.
    GraceHoldsOne,
    /// A request arrived since the last decision and the averages do not ask for an instance
    /// yet (they are made of the past); it needs one now.
    RequestArrived,
}

impl Reason {
    /// A short stable name, for status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Stable => "stable",
            Reason::Panic => "panic",
            Reason::ScaleUpLimited => "scale_up_limited",
            Reason::ScaleDownLimited => "scale_down_limited",
            Reason::MinInstances => "min_instances",
            Reason::MaxInstances => "max_instances",
            Reason::ScaleToZero => "scale_to_zero",
            Reason::GraceHoldsOne => "grace_holds_one",
            Reason::RequestArrived => "request_arrived",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug)]
struct Panic {
    /// The last decision at which the panic condition held; the panic ends a stable window later.
    last_over: u64,
    /// The most instances asked for since the panic began.
    most: u32,
}

/// The autoscaler of one revision. See the crate documentation for the rules.
#[derive(Debug)]
pub struct Autoscaler<C: Clock> {
    /// As given, for [`Autoscaler::config`].
    config: ScalerConfig,
    /// What the arithmetic uses: `config` made valid.
    effective: ScalerConfig,
    clock: C,
    window: Window,
    panic: Option<Panic>,
    last_request: Option<u64>,
    request_since_decision: bool,
}

impl<C: Clock> Autoscaler<C> {
    /// A scaler with no history. An invalid `config` (see [`ScalerConfig::validate`]) is not
    /// refused: each invalid field acts as the nearest valid value, or its default.
    pub fn new(config: ScalerConfig, clock: C) -> Self {
        let effective = config.sanitized();
        let window = Window::new(clock.now(), effective.tick, ring_len(&effective), effective.stable_window);
        Self {
            config,
            effective,
            clock,
            window,
            panic: None,
            last_request: None,
            request_since_decision: false,
        }
    }

    pub fn config(&self) -> &ScalerConfig {
        &self.config
    }

    /// Replaces the configuration; the next [`Autoscaler::decide`] uses it. The history is kept
    /// (resized to the new stable window) unless the tick changes, which restarts it from the
    /// current level. A change of target or panic threshold ends a panic: the instances it held
    /// were counted against the old ones.
    pub fn set_config(&mut self, config: ScalerConfig) {
        let effective = config.sanitized();
        let now = self.now();
        if effective.tick != self.effective.tick {
            self.window.retick(now, effective.tick, ring_len(&effective));
        } else {
            self.window.resize(now, ring_len(&effective));
        }
        self.window.set_forget_after(effective.stable_window);
        if effective.target_concurrency != self.effective.target_concurrency
            || effective.panic_threshold != self.effective.panic_threshold
        {
            self.panic = None;
        }
        self.effective = effective;
        self.config = config;
    }

    /// The observed concurrency from now on: requests in flight on instances plus requests
    /// waiting for one. The value holds until the next call, so call on every change, on a
    /// ticker, or both. Negative and NaN values count as 0.
    pub fn record(&mut self, concurrency: f64) {
        let now = self.now();
        self.window.record(now, concurrency);
    }

    /// A request arrived. It starts the scale-to-zero grace again, and the next decision asks
    /// for at least one instance whatever the averages say.
    pub fn request_arrived(&mut self) {
        self.last_request = Some(self.now());
        self.request_since_decision = true;
    }

    /// The decision for now, given how many instances are ready to serve.
    pub fn decide(&mut self, ready: u32) -> Decision {
        let now = self.now();
        let cfg = &self.effective;
        let target = cfg.target_concurrency;
        let stable_avg = self.window.average(now, cfg.stable_window);
        let panic_avg = self.window.average(now, cfg.panic_window);
        // With none ready, the limits and the threshold count one, as Knative does: a revision
        // at zero compares its ask with the first instance it is about to get.
        let basis = f64::from(ready.max(1));

        // The threshold compares the unrounded ask: rounded up, any load above the target of a
        // single instance would read as twice its capacity.
        let over_threshold = panic_avg / target / basis >= cfg.panic_threshold;
        match &mut self.panic {
            Some(p) if over_threshold => p.last_over = now,
            None if over_threshold => self.panic = Some(Panic { last_over: now, most: 0 }),
            Some(p) if now.saturating_sub(p.last_over) >= nanos(cfg.stable_window) => self.panic = None,
            _ => {}
        }

        let (mut desired, mut reason) = match self.panic {
            Some(_) => (instances(stable_avg, target).max(instances(panic_avg, target)), Reason::Panic),
            None => (instances(stable_avg, target), Reason::Stable),
        };

        let up_to = as_count((basis * cfg.max_scale_up_rate).ceil());
        let down_to = as_count((f64::from(ready) / cfg.max_scale_down_rate).floor());
        if desired > up_to {
            (desired, reason) = (up_to, Reason::ScaleUpLimited);
        } else if desired < down_to {
            (desired, reason) = (down_to, Reason::ScaleDownLimited);
        }

        // After the rate limits: a panicking revision that has lost ready instances gets back all
        // it had asked for at once.
        if let Some(p) = &mut self.panic {
            if desired < p.most {
                (desired, reason) = (p.most, Reason::Panic);
            }
            p.most = desired;
        }

        // The operator's bounds come last and beat the rate limits: a lowered max applies at once.
        if desired > cfg.max_instances {
            (desired, reason) = (cfg.max_instances, Reason::MaxInstances);
        } else if desired < cfg.min_instances {
            (desired, reason) = (cfg.min_instances, Reason::MinInstances);
        }

        let request_since_decision = std::mem::take(&mut self.request_since_decision);
        if desired == 0 {
            let in_grace =
                self.last_request.is_some_and(|at| now.saturating_sub(at) < nanos(cfg.scale_to_zero_grace));
            // Within the grace one instance is asked for even when none is ready: the request
            // that started the grace may still be waiting for the instance it caused to start,
            // and asking for none would stop that start.
            reason = if request_since_decision {
                Reason::RequestArrived
            } else if in_grace {
                Reason::GraceHoldsOne
            } else {
                Reason::ScaleToZero
            };
            if reason != Reason::ScaleToZero {
                desired = 1;
            }
        }

        Decision { desired, panicking: self.panic.is_some(), reason }
    }

    /// Whether the last decision was made in panic mode.
    pub fn panicking(&self) -> bool {
        self.panic.is_some()
    }

    /// The average concurrency over the stable window, as of now.
    pub fn stable_average(&self) -> f64 {
        self.window.average(self.now(), self.effective.stable_window)
    }

    /// The average concurrency over the panic window, as of now.
    pub fn panic_average(&self) -> f64 {
        self.window.average(self.now(), self.effective.panic_window)
    }

    fn now(&self) -> u64 {
        self.window.offset(self.clock.now())
    }

    #[cfg(test)]
    pub(crate) fn window(&self) -> &Window {
        &self.window
    }
}

/// The window's ticks and one more: the bucket a window begins in is partly inside it.
fn ring_len(config: &ScalerConfig) -> u64 {
    buckets(config.stable_window, config.tick) + 1
}

/// Instances needed to carry `load` at `target` each.
fn instances(load: f64, target: f64) -> u32 {
    let ask = load / target;
    as_count((ask - ask.max(1.0) * ROUNDING_SLACK).ceil())
}

fn as_count(v: f64) -> u32 {
    // `as` saturates, and turns NaN into 0.
    v.max(0.0) as u32
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
