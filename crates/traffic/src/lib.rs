//! The traffic policy of a function: how its requests split across its revisions, how a client
//! is kept on one revision, and how a gradual rollout from one revision to the next proceeds.
//!
//! - [`Split`]: a validated set of revisions with whole-percent shares, and [`Split::pick`],
//!   which chooses a revision for one request, at random or by a sticky key's stable bucket.
//! - [`Sticky`]: which request header or cookie holds a client's sticky key.
//! - [`Rollout`]: a stepwise move of traffic from one revision to another, advanced or rolled
//!   back by [`Rollout::tick`] from the new revision's observed errors and latency.
//! - [`Outcomes`] and [`WindowSummary`]: a lock-free per-invocation recorder and the mergeable
//!   summaries (counts and a latency histogram) it hands the rollout.
//!
//! This crate decides; it does not act. It routes no URLs (the router finds the function, this
//! crate only picks among its revisions), keeps nothing durable (a [`Rollout`] is a value the
//! caller stores), and reads no clocks: time comes in as `now_ms` arguments, so a rollout runs
//! the same in tests as in production. Apart from [`Outcomes`]' atomics and the random bucket
//! of an unkeyed [`Split::pick`], everything is a pure function of its inputs.
//!
//! Stickiness survives a rollout: the new revision is listed first and owns the lowest buckets,
//! so as its share grows, every key already on it stays there.

mod outcomes;
mod rollout;
mod split;
mod sticky;

pub use outcomes::{BUCKETS, MAX_LATENCY, Outcomes, WindowSummary};
pub use rollout::{Decision, MAX_STEPS, Rollout, RolloutError, RolloutSpec, RolloutStatus};
pub use split::{MAX_TARGETS, Split, SplitError, TrafficTarget, bucket};
pub use sticky::{Sticky, StickyError};

#[cfg(test)]
mod tests;
