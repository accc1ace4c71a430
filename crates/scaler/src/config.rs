use std::time::Duration;

/// The most buckets one window may need. It bounds the memory of a revision's scaler whatever
/// the configuration: an hour-long stable window (Knative's upper limit) at the default tick.
pub const MAX_BUCKETS: u64 = 3600;

/// How one revision scales. [`ScalerConfig::default`] is Knative's defaults, except
/// `max_instances`, which Knative leaves unbounded and a single host cannot.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalerConfig {
    /// Requests in flight per instance the scaler aims for. This is the effective target: a
    /// caller that wants headroom below a hard per-instance limit passes `limit * utilization`
    /// (Knative's 70% of container concurrency would be `0.7 * concurrency`).
    pub target_concurrency: f64,
    /// The window of the average that decides in the normal (stable) mode.
    pub stable_window: Duration,
    /// The shorter window that detects bursts.
    pub panic_window: Duration,
    /// Panic when the panic window asks for at least this many times the ready instances.
    pub panic_threshold: f64,
    /// Instances kept whatever the traffic.
    pub min_instances: u32,
    pub max_instances: u32,
    /// One decision asks for at most `ceil(ready * max_scale_up_rate)` instances.
    pub max_scale_up_rate: f64,
    /// One decision asks for at least `floor(ready / max_scale_down_rate)` instances.
    pub max_scale_down_rate: f64,
    /// The last instance is kept until no request has arrived for this long.
    pub scale_to_zero_grace: Duration,
    /// The granularity of the windowed averages: one bucket per tick.
    pub tick: Duration,
}

impl Default for ScalerConfig {
    fn default() -> Self {
        Self {
            target_concurrency: 1.0,
            stable_window: Duration::from_secs(60),
            panic_window: Duration::from_secs(6),
            panic_threshold: 2.0,
            min_instances: 0,
            max_instances: 100,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            scale_to_zero_grace: Duration::from_secs(30),
            tick: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("target concurrency must be a number above 0, not {0}")]
    TargetConcurrency(f64),
    #[error("max instances must be at least 1")]
    MaxInstancesZero,
    #[error("min instances ({min}) is above max instances ({max})")]
    MinAboveMax { min: u32, max: u32 },
    #[error("the tick must be longer than zero")]
    ZeroTick,
    #[error("the panic window ({panic_window:?}) must be at least one tick ({tick:?})")]
    PanicWindowBelowTick { panic_window: Duration, tick: Duration },
    #[error("the panic window ({panic_window:?}) is longer than the stable window ({stable_window:?})")]
    PanicWindowAboveStable { panic_window: Duration, stable_window: Duration },
    #[error(
        "a stable window of {stable_window:?} at a tick of {tick:?} needs more than {MAX_BUCKETS} buckets"
    )]
    TooManyBuckets { stable_window: Duration, tick: Duration },
    #[error("the panic threshold must be a number above 1, not {0}")]
    PanicThreshold(f64),
    #[error("the max scale-up rate must be a number above 1, not {0}")]
    ScaleUpRate(f64),
    #[error("the max scale-down rate must be a number above 1, not {0}")]
    ScaleDownRate(f64),
}

impl ScalerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.target_concurrency.is_finite() && self.target_concurrency > 0.0) {
            return Err(ConfigError::TargetConcurrency(self.target_concurrency));
        }
        if self.max_instances == 0 {
            return Err(ConfigError::MaxInstancesZero);
        }
        if self.min_instances > self.max_instances {
            return Err(ConfigError::MinAboveMax { min: self.min_instances, max: self.max_instances });
        }
        if self.tick.is_zero() {
            return Err(ConfigError::ZeroTick);
        }
        // A bucket wider than the panic window would make that window a coarser stable window.
        if self.panic_window < self.tick {
            return Err(ConfigError::PanicWindowBelowTick {
                panic_window: self.panic_window,
                tick: self.tick,
            });
        }
        if self.panic_window > self.stable_window {
            return Err(ConfigError::PanicWindowAboveStable {
                panic_window: self.panic_window,
                stable_window: self.stable_window,
            });
        }
        if buckets(self.stable_window, self.tick) > MAX_BUCKETS {
            return Err(ConfigError::TooManyBuckets { stable_window: self.stable_window, tick: self.tick });
        }
        // At a threshold of 1 a revision at exactly its target would panic, and so never scale down.
        if !(self.panic_threshold.is_finite() && self.panic_threshold > 1.0) {
            return Err(ConfigError::PanicThreshold(self.panic_threshold));
        }
        // At a rate of 1 a revision could never grow past one instance, or never shrink.
        if !(self.max_scale_up_rate.is_finite() && self.max_scale_up_rate > 1.0) {
            return Err(ConfigError::ScaleUpRate(self.max_scale_up_rate));
        }
        if !(self.max_scale_down_rate.is_finite() && self.max_scale_down_rate > 1.0) {
            return Err(ConfigError::ScaleDownRate(self.max_scale_down_rate));
        }
        Ok(())
    }

    /// The configuration the arithmetic runs on: each invalid field replaced by the nearest
    /// valid value (or the default where there is none), so a bad config cannot make the policy
    /// divide by zero, panic or allocate without bound. A valid config comes back unchanged.
    pub(crate) fn sanitized(&self) -> ScalerConfig {
        let d = ScalerConfig::default();
        let above_one = |v: f64, default: f64| if v.is_finite() && v > 1.0 { v } else { default };
        let mut c = self.clone();
        if !(c.target_concurrency.is_finite() && c.target_concurrency > 0.0) {
            c.target_concurrency = d.target_concurrency;
        }
        c.panic_threshold = above_one(c.panic_threshold, d.panic_threshold);
        c.max_scale_up_rate = above_one(c.max_scale_up_rate, d.max_scale_up_rate);
        c.max_scale_down_rate = above_one(c.max_scale_down_rate, d.max_scale_down_rate);
        c.max_instances = c.max_instances.max(1);
        c.min_instances = c.min_instances.min(c.max_instances);
        if c.tick.is_zero() {
            c.tick = d.tick;
        }
        c.stable_window = c.stable_window.max(c.tick);
        if buckets(c.stable_window, c.tick) > MAX_BUCKETS {
            c.tick = div_ceil(c.stable_window, MAX_BUCKETS);
        }
        c.panic_window = c.panic_window.clamp(c.tick, c.stable_window);
        c
    }
}

/// How many ticks a window spans, rounded up so the window is never shorter than asked.
pub(crate) fn buckets(window: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    u64::try_from(window.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX).max(1)
}

fn div_ceil(d: Duration, by: u64) -> Duration {
    let nanos = d.as_nanos().div_ceil(u128::from(by.max(1)));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
