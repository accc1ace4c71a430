//! Cron schedules for yun: parsing a cron expression in a time zone, finding the next tick, and
//! deciding which ticks are due at a given moment.
//!
//! This crate is pure. It never reads the clock and does no I/O: time comes in as milliseconds
//! since the Unix epoch (UTC), and it neither stores when a schedule last fired nor invokes
//! anything. The caller records the tick it fired and hands it back to [`Schedule::due`].
//!
//! ```
//! use yun_cron::{Missed, Schedule, ScheduleSpec};
//!
//! let spec = ScheduleSpec {
//!     expression: "0 9 * * MON-FRI".to_string(),
//!     timezone: Some("Europe/Berlin".to_string()),
//!     missed: Missed::RunOnce,
//! };
//! let schedule = Schedule::parse(&spec)?;
//! let created_ms = 1_704_067_200_000; // 2024-01-01T00:00:00Z, a Monday
//! // 09:00 in Berlin is 08:00 UTC in winter.
//! let first = schedule.next_after(created_ms).expect("a next tick");
//! assert_eq!(first, created_ms + 8 * 3_600_000);
//! // The poller asks what is due; it records what it fires and passes it back next time.
//! assert_eq!(schedule.due(None, created_ms, first + 200), vec![first]);
//! assert!(schedule.due(Some(first), created_ms, first + 400).is_empty());
//! # Ok::<(), yun_cron::CronError>(())
//! ```
//!
//! # Syntax
//!
//! Standard 5-field cron (`minute hour day-of-month month day-of-week`), or 6 fields with
//! seconds first. Names (`JAN`-`DEC`, `SUN`-`SAT`) are accepted in their own field, as are
//! `L`, `W`, `#` and a leading `+` on the weekday field (day of month AND day of week; without it
//! a day matches when either does, as in Vixie cron). Shorthands: `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@hourly`. There is no `@every`: croner does not support it.
//!
//! # Daylight saving time
//!
//! Schedules run on the wall clock of their time zone, following croner's rules:
//! - A *fixed-time* job (one value each for seconds, minutes and hours, e.g. `30 2 * * *`) whose
//!   time falls into a spring-forward gap runs at the first instant after the gap: on
//!   2024-03-31 in Europe/Berlin, 02:30 does not exist and the job runs at 03:00 CEST.
//! - A fixed-time job whose time occurs twice on the fall-back day runs once, at the first
//!   occurrence (CEST).
//! - An *interval* job (any wildcard, step, range or list in seconds, minutes or hours) skips
//!   wall clock times in a gap and runs on both occurrences of a repeated time, because each is
//!   a real, distinct instant (`*/30 * * * *` keeps firing every 30 real minutes).
//!
//! No instant is ever returned twice: [`Schedule::due`] only returns ticks after the last one
//! fired.

mod expr;

use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// How late a tick may be and still count as on time for [`Missed::Skip`].
pub const GRACE_MS: u64 = 1000;

/// A schedule as a user writes it (e.g. in a manifest or an API request).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The cron expression, e.g. `"0 9 * * MON-FRI"`.
    pub expression: String,
    /// An IANA time zone name such as `Europe/Berlin`; `None` means UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// What to do about ticks that passed while nothing was watching.
    #[serde(default)]
    pub missed: Missed,
}

/// What to do about ticks that were missed (downtime, a slow poller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// After downtime, fire the most recent missed tick once (default), then carry on.
    #[default]
    RunOnce,
    /// Fire none of the missed ticks.
    Skip,
}

/// Why a [`ScheduleSpec`] was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CronError {
    /// The expression is invalid; `field` is the cron field at fault (`"minute"`, `"hour"`,
    /// `"day of month"`, `"month"`, `"day of week"`, `"seconds"`), or `"expression"` when the
    /// problem is the expression as a whole (field count, unknown shorthand).
    #[error("invalid cron expression {expression:?}: {}", field_message(field, message))]
    Expression { expression: String, field: String, message: String },
    /// The time zone is not a known IANA name; holds the name as given.
    #[error("unknown time zone {name:?}: {hint}", name = .0, hint = timezone_hint(.0))]
    TimeZone(String),
}

impl CronError {
    /// The cron field name for [`CronError::Expression`] (or `"expression"`), `"timezone"` for
    /// [`CronError::TimeZone`]: where a UI should point the user.
    pub fn field(&self) -> &str {
        match self {
            CronError::Expression { field, .. } => field,
            CronError::TimeZone(_) => "timezone",
        }
    }
}

fn field_message(field: &str, message: &str) -> String {
    if field == "expression" { message.to_string() } else { format!("{field} field: {message}") }
}

fn timezone_hint(name: &str) -> String {
    // Names are case-sensitive in chrono-tz; a near miss is worth pointing at.
    let wanted = name.trim();
    match chrono_tz::TZ_VARIANTS.iter().find(|tz| tz.name().eq_ignore_ascii_case(wanted)) {
        Some(tz) => format!("did you mean {:?}?", tz.name()),
        None => "use an IANA name such as Europe/Berlin".to_string(),
    }
}

/// A parsed, validated schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    spec: ScheduleSpec,
    cron: croner::Cron,
    tz: Tz,
}

/// 2000-01-01T00:00:00Z: where parsing looks for a first tick. Without a year field every
/// schedule repeats within the 400-year Gregorian cycle, so one with no tick after this moment
/// has none at all.
const PROBE_FROM_SECS: i64 = 946_684_800;

impl Schedule {
    /// Standard 5-field cron, or 6 fields with seconds first; names (MON, JAN) and
    /// @hourly/@daily/@weekly/@monthly/@yearly/@annually; a time zone by IANA name (default UTC).
    ///
    /// Also rejects expressions that can never fire, such as `0 0 30 2 *`.
    pub fn parse(spec: &ScheduleSpec) -> Result<Schedule, CronError> {
        let cron = expr::parse(&spec.expression)?;
        let tz = match &spec.timezone {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| CronError::TimeZone(name.clone()))?,
        };
        let schedule = Schedule { spec: spec.clone(), cron, tz };
        if schedule.next_after_secs(PROBE_FROM_SECS).is_none() {
            return Err(CronError::Expression {
                expression: spec.expression.clone(),
                field: "day of month".to_string(),
                message: "no date matches it in the months the month field allows (such as 30 February), \
                          so the schedule would never fire"
                    .to_string(),
            });
        }
        Ok(schedule)
    }

    /// The first tick strictly after `after_ms`. `None` only past the year 5000 (croner's limit).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        // Ticks fall on whole seconds, so "after this second" is "after this millisecond".
        self.next_after_secs(i64::try_from(after_ms / 1000).ok()?)
    }

    fn next_after_secs(&self, after_secs: i64) -> Option<u64> {
        let start = DateTime::from_timestamp(after_secs, 0)?.with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }

    /// The ticks to fire at `now_ms`, given the last tick fired (`None`: the schedule is new;
    /// then only ticks after `created_ms` count). Never returns a tick <= `last_fired_ms` or
    /// <= `created_ms` (so no tick ever fires twice), never a tick > `now_ms`. With
    /// [`Missed::RunOnce`] and several ticks missed, returns only the latest of them; with
    /// [`Missed::Skip`], returns only a tick that is on time (`now_ms - tick <= GRACE_MS`).
    ///
    /// At most one tick is returned; the caller fires it and passes it back as `last_fired_ms`.
    pub fn due(&self, last_fired_ms: Option<u64>, created_ms: u64, now_ms: u64) -> Vec<u64> {
        // A tick from before the schedule existed never counts, whatever the caller recorded.
        let after = last_fired_ms.map_or(created_ms, |last| last.max(created_ms));
        let Some(latest) = self.latest_tick(after, now_ms) else {
            return Vec::new();
        };
        match self.spec.missed {
            Missed::RunOnce => vec![latest],
            Missed::Skip if now_ms - latest <= GRACE_MS => vec![latest],
            Missed::Skip => Vec::new(),
        }
    }

    /// The latest tick in `(after, until]`.
    fn latest_tick(&self, after: u64, until: u64) -> Option<u64> {
        let first = self.next_after(after).filter(|&t| t <= until)?;
        if self.next_after(first).is_none_or(|t| t > until) {
            return Some(first);
        }
        // Several ticks were missed; walking them could take millions of steps (a per-second
        // schedule after a week down), so bisect instead. `next_after` only moves forward as
        // its argument does: `lo` always has a tick in (lo, until], `hi` never has one in
        // (hi, until]. Once they are within a second, (lo, hi] holds exactly one whole-second
        // tick, the latest.
        let has_tick_by_until = |x: u64| self.next_after(x).is_some_and(|t| t <= until);
        let (mut lo, mut hi) = (first, until);
        while hi - lo > 1000 {
            let mid = lo + (hi - lo) / 2;
            if has_tick_by_until(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.next_after(lo).filter(|&t| t > after && t <= until)
    }

    /// The spec this schedule was parsed from.
    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }
}
