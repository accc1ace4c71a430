//! Gradual rollouts: moving traffic from one revision to another in steps, rolling back on
//! evidence that the new one is worse.

use serde::{Deserialize, Serialize};

use crate::outcomes::WindowSummary;
use crate::split::Split;

/// Gradual rollout settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    /// The whole rollout, at least 1 s.
    pub duration_ms: u64,
    /// The new revision's share goes `100/steps`, `2*100/steps`, ... 100 (rounded), one step per
    /// `duration_ms / steps`.
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// The fraction (not percent) of the new revision's invocations that may fail.
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// The highest p99 latency of the new revision, if latency is judged at all.
    #[serde(default)]
    pub max_p99_ms: Option<u64>,
    /// No judgement on fewer results than this: a handful of requests says little.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
}

fn default_steps() -> u32 {
    10
}
fn default_max_error_rate() -> f64 {
    0.05
}
fn default_min_requests() -> u64 {
    20
}

/// The most steps a rollout may have: shares are whole percents, so more would repeat them.
pub const MAX_STEPS: u32 = 100;

/// What is wrong with a rollout's settings.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum RolloutError {
    #[error("a rollout must last at least 1 s, not {0} ms")]
    Duration(u64),
    #[error("a rollout needs 1 to {MAX_STEPS} steps, not {0}")]
    Steps(u32),
    #[error("the max error rate is a fraction from 0 to 1 (0.05 is 5%), not {0}")]
    ErrorRate(f64),
    #[error("the max p99 latency must be more than 0 ms")]
    P99Zero,
    #[error("a rollout moves traffic between two revisions, but both are revision {0}")]
    SameRevision(u64),
}

impl RolloutSpec {
    /// `duration_ms` with the defaults: 10 steps, 5% errors, no latency limit, 20 requests.
    pub fn new(duration_ms: u64) -> Self {
        RolloutSpec {
            duration_ms,
            steps: default_steps(),
            max_error_rate: default_max_error_rate(),
            max_p99_ms: None,
            min_requests: default_min_requests(),
        }
    }

    pub fn validate(&self) -> Result<(), RolloutError> {
        if self.duration_ms < 1000 {
            return Err(RolloutError::Duration(self.duration_ms));
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return Err(RolloutError::Steps(self.steps));
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(RolloutError::ErrorRate(self.max_error_rate));
        }
        if self.max_p99_ms == Some(0) {
            return Err(RolloutError::P99Zero);
        }
        Ok(())
    }

    /// Steps as the schedule uses them: an invalid count acts as the nearest valid one.
    fn step_count(&self) -> u64 {
        u64::from(self.steps.clamp(1, MAX_STEPS))
    }

    /// The new revision's share in step `k` (1-based), rounded half up.
    fn step_percent(&self, k: u64) -> u8 {
        let steps = self.step_count();
        let k = k.clamp(1, steps);
        ((k * 200 + steps) / (2 * steps)) as u8
    }

    /// The step (1-based) reached `elapsed_ms` into the rollout.
    fn step_at(&self, elapsed_ms: u64) -> u64 {
        let steps = self.step_count();
        if elapsed_ms >= self.duration_ms {
            return steps;
        }
        let done = u128::from(elapsed_ms) * u128::from(steps) / u128::from(self.duration_ms);
        (done as u64 + 1).min(steps)
    }

    /// How long after the start step `k` (1-based) begins.
    fn step_start_ms(&self, k: u64) -> u64 {
        let steps = u128::from(self.step_count());
        let num = u128::from(k.saturating_sub(1)) * u128::from(self.duration_ms);
        num.div_ceil(steps) as u64
    }
}

/// One gradual rollout from revision `from` to revision `to`.
///
/// The rollout is a value: the caller keeps it (durably, if it must survive restarts), calls
/// [`Rollout::tick`] with the time and the new revision's results, and routes by
/// [`Rollout::split`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub from: u64,
    pub to: u64,
    pub spec: RolloutSpec,
    pub started_ms: u64,
    /// The new revision's current share: 0 once rolled back, 100 once completed.
    pub percent: u8,
    pub status: RolloutStatus,
    /// Results of `to` seen since the rollout began (accumulated across ticks, for the decision).
    pub observed: WindowSummary,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RolloutStatus {
    Progressing,
    Completed { at_ms: u64 },
    RolledBack { at_ms: u64, reason: String },
}

/// What one [`Rollout::tick`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Unchanged,
    Advanced { percent: u8 },
    Completed,
    RolledBack { reason: String },
}

impl Rollout {
    /// Starts at the first step (the new revision's share is the first step's, e.g. 10%).
    ///
    /// The spec is taken as given (check it with [`RolloutSpec::validate`] and
    /// [`Rollout::check`]); an invalid field acts as the nearest valid value, so nothing here
    /// panics or divides by zero.
    pub fn start(from: u64, to: u64, spec: RolloutSpec, now_ms: u64) -> Rollout {
        let percent = spec.step_percent(1);
        Rollout {
            from,
            to,
            spec,
            started_ms: now_ms,
            percent,
            status: RolloutStatus::Progressing,
            observed: WindowSummary::default(),
        }
    }

    /// Checks the spec and that the rollout is between two revisions.
    pub fn check(from: u64, to: u64, spec: &RolloutSpec) -> Result<(), RolloutError> {
        if from == to {
            return Err(RolloutError::SameRevision(to));
        }
        spec.validate()
    }

    /// The split this rollout implies now: `to` first (so sticky clients that moved to the new
    /// revision stay there as its share grows), then `from`. Completed: all to `to`; rolled
    /// back: all to `from`.
    pub fn split(&self) -> Split {
        match self.status {
            RolloutStatus::Progressing => Split::pair(self.to, self.percent, self.from),
            RolloutStatus::Completed { .. } => Split::single(self.to),
            RolloutStatus::RolledBack { .. } => Split::single(self.from),
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(self.status, RolloutStatus::Progressing)
    }

    /// When the next step (or the completion) is due, so a controller can sleep until then;
    /// `None` once final. Rollback can come at any tick that brings results.
    pub fn next_change_ms(&self) -> Option<u64> {
        if self.is_final() {
            return None;
        }
        let steps = self.spec.step_count();
        let after = match (1..=steps).find(|&k| self.spec.step_percent(k) > self.percent) {
            Some(k) => self.spec.step_start_ms(k),
            None => self.spec.duration_ms,
        };
        Some(self.started_ms.saturating_add(after))
    }

    /// One controller tick: folds in the new revision's results since the last tick
    /// (`window`), then decides.
    ///
    /// - Rolls back when, with at least `min_requests` observed in all, the error rate exceeds
    ///   `max_error_rate` or the p99 latency exceeds `max_p99_ms`. The p99 is a bucket's upper
    ///   bound, so it errs (by at most ~6%) towards rolling back.
    /// - Otherwise completes once the full duration has passed. A rollout that saw fewer than
    ///   `min_requests` results completes too: there is no evidence against the new revision,
    ///   and holding the rollout would strand a rarely called function between revisions.
    /// - Otherwise advances to the step the elapsed time has reached (never back: a clock that
    ///   went backwards leaves the share where it is).
    ///
    /// A rollback or completion is final: later ticks change nothing and return `Unchanged`.
    pub fn tick(&mut self, now_ms: u64, window: &WindowSummary) -> Decision {
        if self.is_final() {
            return Decision::Unchanged;
        }
        self.observed.merge(window);
        if let Some(reason) = self.verdict() {
            self.status = RolloutStatus::RolledBack { at_ms: now_ms, reason: reason.clone() };
            self.percent = 0;
            return Decision::RolledBack { reason };
        }
        let elapsed = now_ms.saturating_sub(self.started_ms);
        if elapsed >= self.spec.duration_ms {
            self.status = RolloutStatus::Completed { at_ms: now_ms };
            self.percent = 100;
            return Decision::Completed;
        }
        let percent = self.spec.step_percent(self.spec.step_at(elapsed));
        if percent > self.percent {
            self.percent = percent;
            Decision::Advanced { percent }
        } else {
            Decision::Unchanged
        }
    }

    /// Why the new revision is judged unhealthy, if it is.
    fn verdict(&self) -> Option<String> {
        let seen = &self.observed;
        if seen.requests < self.spec.min_requests.max(1) {
            return None;
        }
        let mut reasons = Vec::new();
        let rate = seen.error_rate();
        if rate > self.spec.max_error_rate {
            reasons.push(format!(
                "error rate {:.1}% over {} requests exceeds {:.1}%",
                rate * 100.0,
                seen.requests,
                self.spec.max_error_rate * 100.0
            ));
        }
        if let (Some(max), Some(p99)) = (self.spec.max_p99_ms, seen.p99_ms())
            && p99 > max as f64
        {
            reasons.push(format!("p99 latency {p99:.1} ms over {} requests exceeds {max} ms", seen.requests));
        }
        if reasons.is_empty() { None } else { Some(reasons.join("; ")) }
    }
}
