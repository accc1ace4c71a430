//! The autoscaler policy of one function revision, after Knative's KPA: how many instances the
//! revision should have, from the concurrency it is observed to carry.
//!
//! This crate decides; it does not act. It starts, stops and counts no instances (the pool
//! does), measures nothing (the caller [`Autoscaler::record`]s what it sees) and keeps no time
//! of its own: it is pure, does no I/O, spawns no threads and never sleeps. The time comes from
//! a [`Clock`], so tests drive it with a [`ManualClock`].
//!
//! # The rules, in the order they apply
//!
//! 1. **Averages.** The observed concurrency is averaged over a stable window (60 s) and a
//!    panic window (6 s), time-weighted, kept in a ring of per-tick buckets. A recorded value
//!    holds until the next, so a tick with no sample counts the standing level (0 only once 0
//!    was recorded), and recording on every change or on a ticker give the same averages. An
//!    average covers the window, or only the time since the first sample when that is shorter:
//!    a revision a few seconds old is averaged over those seconds, not diluted by a window of
//!    time before it existed. After a whole stable window with nothing in flight the history
//!    is forgotten the same way, so the load that wakes an idle revision is seen at its size.
//! 2. **Ask.** `ceil(average / target_concurrency)` for each window.
//! 3. **Panic.** The revision panics when the panic window's unrounded ask is at least
//!    `panic_threshold` times the ready instances (counting one when none is ready). While
//!    panicking it asks for the larger of both windows' asks. The panic ends once a whole
//!    stable window has passed since the condition last held, by which time the burst is in
//!    the stable average. Not panicking, the stable ask stands.
//! 4. **Rate limits**, against the ready instances (one when none is ready, so from zero at most
//!    `ceil(max_scale_up_rate)`): at most `ceil(ready * max_scale_up_rate)`, at least
//!    `floor(ready / max_scale_down_rate)`.
//! 5. **Panic hold.** While panicking, never less than the most asked since the panic began,
//!    even above the rate limit when ready instances were lost: no scaling down in a panic.
//! 6. **Bounds.** Clamped to `[min_instances, max_instances]`; these beat the rate limits and
//!    the panic hold.
//! 7. **Scale to zero.** When the ask is 0 (so `min_instances` is 0), one instance is still asked
//!    for if a request arrived since the previous decision (it must not wait for the averages)
//!    or within `scale_to_zero_grace`, whether or not an instance is ready: a request may be
//!    waiting for the instance it caused to start. A revision that never saw a request has no
//!    grace.
//!
//! [`ScalerConfig::validate`] says what is wrong with a configuration; the scaler itself refuses
//! none, each invalid field acting as the nearest valid value (or its default), so it never
//! divides by zero, panics or grows its memory past [`MAX_BUCKETS`] buckets.
//!
//! Decisions count only ready instances; a caller with instances starting decides itself
//! whether they count towards [`Decision::desired`].

mod autoscaler;
mod clock;
mod config;
mod window;

pub use autoscaler::{Autoscaler, Decision, Reason};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, MAX_BUCKETS, ScalerConfig};

#[cfg(test)]
mod tests;
