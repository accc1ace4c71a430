use chrono::{TimeZone, Utc};

use super::*;

/// Milliseconds since the epoch for a UTC date and time.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> u64 {
    let ms = Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("valid test date").timestamp_millis();
    u64::try_from(ms).expect("test dates are after 1970")
}

fn spec(expression: &str, timezone: Option<&str>, missed: Missed) -> ScheduleSpec {
    ScheduleSpec { expression: expression.to_string(), timezone: timezone.map(str::to_string), missed }
}

fn schedule(expression: &str) -> Schedule {
    Schedule::parse(&spec(expression, None, Missed::RunOnce)).expect("valid schedule")
}

fn zoned(expression: &str, tz: &str) -> Schedule {
    Schedule::parse(&spec(expression, Some(tz), Missed::RunOnce)).expect("valid schedule")
}

fn skip(expression: &str) -> Schedule {
    Schedule::parse(&spec(expression, None, Missed::Skip)).expect("valid schedule")
}

/// The first `n` ticks after `from`.
fn ticks(s: &Schedule, from: u64, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = from;
    for _ in 0..n {
        at = s.next_after(at).expect("schedule has a next tick");
        out.push(at);
    }
    out
}

fn parse_err(expression: &str) -> CronError {
    Schedule::parse(&spec(expression, None, Missed::RunOnce)).expect_err("expression should be rejected")
}

// ---- next_after: common patterns ----

#[test]
fn every_minute_is_strictly_after() {
    let s = schedule("* * * * *");
    let t = utc(2024, 5, 1, 10, 0, 0);
    // Exactly on a tick: the next one, not the same.
    assert_eq!(s.next_after(t), Some(utc(2024, 5, 1, 10, 1, 0)));
    // Between ticks, including sub-second offsets.
    assert_eq!(s.next_after(t + 1), Some(utc(2024, 5, 1, 10, 1, 0)));
    assert_eq!(s.next_after(t + 59_999), Some(utc(2024, 5, 1, 10, 1, 0)));
    assert_eq!(s.next_after(t - 1), Some(t));
}

#[test]
fn every_fifteen_minutes() {
    let s = schedule("*/15 * * * *");
    assert_eq!(
        ticks(&s, utc(2024, 5, 1, 10, 7, 0), 4),
        vec![
            utc(2024, 5, 1, 10, 15, 0),
            utc(2024, 5, 1, 10, 30, 0),
            utc(2024, 5, 1, 10, 45, 0),
            utc(2024, 5, 1, 11, 0, 0)
        ]
    );
}

#[test]
fn weekdays_at_nine_skip_the_weekend() {
    let s = schedule("0 9 * * MON-FRI");
    // 2024-05-03 is a Friday.
    assert_eq!(
        ticks(&s, utc(2024, 5, 3, 9, 0, 0), 2),
        vec![utc(2024, 5, 6, 9, 0, 0), utc(2024, 5, 7, 9, 0, 0)]
    );
    assert_eq!(schedule("0 9 * * 1-5").next_after(utc(2024, 5, 3, 9, 0, 0)), Some(utc(2024, 5, 6, 9, 0, 0)));
}

#[test]
fn lists_and_ranges() {
    let s = schedule("0,30 8-9 * * *");
    assert_eq!(
        ticks(&s, utc(2024, 5, 1, 0, 0, 0), 5),
        vec![
            utc(2024, 5, 1, 8, 0, 0),
            utc(2024, 5, 1, 8, 30, 0),
            utc(2024, 5, 1, 9, 0, 0),
            utc(2024, 5, 1, 9, 30, 0),
            utc(2024, 5, 2, 8, 0, 0)
        ]
    );
}

#[test]
fn month_names_and_last_day() {
    assert_eq!(schedule("0 0 1 JAN *").next_after(utc(2024, 5, 1, 0, 0, 0)), Some(utc(2025, 1, 1, 0, 0, 0)));
    assert_eq!(
        schedule("0 0 1 jul,dec *").next_after(utc(2024, 8, 1, 0, 0, 0)),
        Some(utc(2024, 12, 1, 0, 0, 0))
    );
    // L: last day of the month, including a leap February.
    assert_eq!(schedule("0 12 L * *").next_after(utc(2024, 2, 1, 0, 0, 0)), Some(utc(2024, 2, 29, 12, 0, 0)));
    assert_eq!(schedule("0 0 29 2 *").next_after(utc(2024, 3, 1, 0, 0, 0)), Some(utc(2028, 2, 29, 0, 0, 0)));
}

#[test]
fn day_of_month_or_day_of_week_unless_plus() {
    // Vixie semantics: the 13th OR any Friday. 2024-09-06 is a Friday, 2024-09-13 too.
    let either = schedule("0 0 13 * FRI");
    assert_eq!(
        ticks(&either, utc(2024, 9, 1, 0, 0, 0), 3),
        vec![utc(2024, 9, 6, 0, 0, 0), utc(2024, 9, 13, 0, 0, 0), utc(2024, 9, 20, 0, 0, 0)]
    );
    // `+`: only a Friday the 13th (after September 2024: December 2024, then June 2025).
    let both = schedule("0 0 13 * +FRI");
    assert_eq!(
        ticks(&both, utc(2024, 9, 1, 0, 0, 0), 3),
        vec![utc(2024, 9, 13, 0, 0, 0), utc(2024, 12, 13, 0, 0, 0), utc(2025, 6, 13, 0, 0, 0)]
    );
}

#[test]
fn nth_weekday() {
    // Second Tuesday of the month; in May 2024 that is the 14th.
    assert_eq!(
        schedule("0 10 * * TUE#2").next_after(utc(2024, 5, 1, 0, 0, 0)),
        Some(utc(2024, 5, 14, 10, 0, 0))
    );
    // Last Friday of May 2024 is the 31st.
    assert_eq!(
        schedule("0 10 * * 5L").next_after(utc(2024, 5, 1, 0, 0, 0)),
        Some(utc(2024, 5, 31, 10, 0, 0))
    );
}

#[test]
fn sunday_is_zero_and_seven() {
    // 2024-05-05 is a Sunday.
    let want = Some(utc(2024, 5, 5, 0, 0, 0));
    let from = utc(2024, 5, 1, 0, 0, 0);
    assert_eq!(schedule("0 0 * * 0").next_after(from), want);
    assert_eq!(schedule("0 0 * * 7").next_after(from), want);
    assert_eq!(schedule("0 0 * * SUN").next_after(from), want);
}

#[test]
fn shorthands() {
    let from = utc(2024, 5, 1, 10, 30, 0); // a Wednesday
    assert_eq!(schedule("@hourly").next_after(from), Some(utc(2024, 5, 1, 11, 0, 0)));
    assert_eq!(schedule("@daily").next_after(from), Some(utc(2024, 5, 2, 0, 0, 0)));
    assert_eq!(schedule("@weekly").next_after(from), Some(utc(2024, 5, 5, 0, 0, 0)));
    assert_eq!(schedule("@monthly").next_after(from), Some(utc(2024, 6, 1, 0, 0, 0)));
    assert_eq!(schedule("@yearly").next_after(from), Some(utc(2025, 1, 1, 0, 0, 0)));
    assert_eq!(schedule("@annually").next_after(from), Some(utc(2025, 1, 1, 0, 0, 0)));
    assert_eq!(schedule("@DAILY").next_after(from), Some(utc(2024, 5, 2, 0, 0, 0)));
}

#[test]
fn six_fields_put_seconds_first() {
    let s = schedule("*/10 * * * * *");
    let t = utc(2024, 5, 1, 10, 0, 0);
    assert_eq!(ticks(&s, t + 1, 3), vec![t + 10_000, t + 20_000, t + 30_000]);

    let s = schedule("30 0 12 * * *");
    assert_eq!(s.next_after(t), Some(utc(2024, 5, 1, 12, 0, 30)));

    // Five fields mean second 0, not every second.
    assert_eq!(schedule("0 12 * * *").next_after(t), Some(utc(2024, 5, 1, 12, 0, 0)));
}

#[test]
fn every_second() {
    let s = schedule("* * * * * *");
    let t = utc(2024, 5, 1, 10, 0, 0);
    assert_eq!(ticks(&s, t, 3), vec![t + 1000, t + 2000, t + 3000]);
    assert_eq!(s.next_after(t + 999), Some(t + 1000));
}

#[test]
fn next_after_far_future_is_none_not_a_panic() {
    let s = schedule("* * * * *");
    assert_eq!(s.next_after(u64::MAX), None);
}

// ---- time zones ----

#[test]
fn berlin_nine_oclock_follows_daylight_saving() {
    let s = zoned("0 9 * * *", "Europe/Berlin");
    // Winter: CET is UTC+1.
    assert_eq!(s.next_after(utc(2024, 1, 15, 0, 0, 0)), Some(utc(2024, 1, 15, 8, 0, 0)));
    // Summer: CEST is UTC+2.
    assert_eq!(s.next_after(utc(2024, 7, 15, 0, 0, 0)), Some(utc(2024, 7, 15, 7, 0, 0)));
}

#[test]
fn default_zone_is_utc() {
    let s = schedule("0 9 * * *");
    assert_eq!(s.next_after(utc(2024, 7, 15, 0, 0, 0)), Some(utc(2024, 7, 15, 9, 0, 0)));
    let explicit = zoned("0 9 * * *", "UTC");
    assert_eq!(explicit.next_after(utc(2024, 7, 15, 0, 0, 0)), Some(utc(2024, 7, 15, 9, 0, 0)));
}

#[test]
fn half_hour_offset_zone() {
    // India is UTC+5:30 all year.
    let s = zoned("0 9 * * *", "Asia/Kolkata");
    assert_eq!(s.next_after(utc(2024, 7, 15, 0, 0, 0)), Some(utc(2024, 7, 15, 3, 30, 0)));
}

#[test]
fn weekday_is_judged_in_the_schedules_zone() {
    // Monday 00:30 in Tokyo (UTC+9) is Sunday 15:30 UTC.
    let s = zoned("30 0 * * MON", "Asia/Tokyo");
    assert_eq!(s.next_after(utc(2024, 5, 1, 0, 0, 0)), Some(utc(2024, 5, 5, 15, 30, 0)));
}

// ---- daylight saving transitions (Europe/Berlin, 2024) ----

#[test]
fn spring_forward_fixed_time_runs_right_after_the_gap() {
    // On 2024-03-31 clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC); 02:30 never happens.
    // croner runs a fixed-time job at the first instant after the gap: 03:00 CEST.
    let s = zoned("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        ticks(&s, utc(2024, 3, 30, 12, 0, 0), 3),
        vec![
            utc(2024, 3, 31, 1, 0, 0), // 03:00 CEST, the gap's end
            utc(2024, 4, 1, 0, 30, 0), // 02:30 CEST
            utc(2024, 4, 2, 0, 30, 0),
        ]
    );
    // The day before: 02:30 CET.
    assert_eq!(s.next_after(utc(2024, 3, 29, 12, 0, 0)), Some(utc(2024, 3, 30, 1, 30, 0)));
}

#[test]
fn spring_forward_interval_job_skips_the_missing_hour() {
    // Every 30 minutes of wall clock time; 02:00 and 02:30 do not exist that night, so real
    // time runs on without a pause: 01:30 CET (00:30 UTC), then 03:00 CEST (01:00 UTC).
    let s = zoned("*/30 * * * *", "Europe/Berlin");
    assert_eq!(
        ticks(&s, utc(2024, 3, 31, 0, 0, 0), 3),
        vec![utc(2024, 3, 31, 0, 30, 0), utc(2024, 3, 31, 1, 0, 0), utc(2024, 3, 31, 1, 30, 0)]
    );
}

#[test]
fn fall_back_fixed_time_runs_once() {
    // On 2024-10-27 clocks go back from 03:00 CEST to 02:00 CET (01:00 UTC), so 02:30 happens
    // at 00:30 UTC and again at 01:30 UTC. A fixed-time job runs only the first time.
    let s = zoned("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        ticks(&s, utc(2024, 10, 26, 12, 0, 0), 2),
        vec![utc(2024, 10, 27, 0, 30, 0), utc(2024, 10, 28, 1, 30, 0)]
    );
    // Asking from between the two 02:30s does not produce the second one.
    assert_eq!(s.next_after(utc(2024, 10, 27, 0, 30, 0)), Some(utc(2024, 10, 28, 1, 30, 0)));
    assert_eq!(s.next_after(utc(2024, 10, 27, 1, 0, 0)), Some(utc(2024, 10, 28, 1, 30, 0)));
}

#[test]
fn fall_back_polling_through_the_night_fires_once() {
    // The way the platform uses it: poll every 10 seconds across the whole night, record what
    // fires. The repeated 02:30 must fire exactly once.
    let s = zoned("30 2 * * *", "Europe/Berlin");
    let mut last = None;
    let mut fired = Vec::new();
    let created = utc(2024, 10, 26, 20, 0, 0);
    let mut now = created;
    while now <= utc(2024, 10, 27, 6, 0, 0) {
        for tick in s.due(last, created, now) {
            fired.push(tick);
            last = Some(tick);
        }
        now += 10_000;
    }
    assert_eq!(fired, vec![utc(2024, 10, 27, 0, 30, 0)]);
}

#[test]
fn fall_back_interval_job_fires_on_every_real_instant() {
    // Every 30 wall clock minutes: 02:00 and 02:30 happen twice, as distinct instants, so
    // real time keeps a steady 30-minute beat and no instant repeats.
    let s = zoned("*/30 * * * *", "Europe/Berlin");
    assert_eq!(
        ticks(&s, utc(2024, 10, 26, 23, 45, 0), 5),
        vec![
            utc(2024, 10, 27, 0, 0, 0),  // 02:00 CEST
            utc(2024, 10, 27, 0, 30, 0), // 02:30 CEST
            utc(2024, 10, 27, 1, 0, 0),  // 02:00 CET
            utc(2024, 10, 27, 1, 30, 0), // 02:30 CET
            utc(2024, 10, 27, 2, 0, 0),  // 03:00 CET
        ]
    );
}

// ---- due ----

#[test]
fn due_on_time() {
    let s = schedule("0 * * * *");
    let tick = utc(2024, 5, 1, 10, 0, 0);
    let last = Some(utc(2024, 5, 1, 9, 0, 0));
    assert_eq!(s.due(last, 0, tick - 1), Vec::<u64>::new());
    assert_eq!(s.due(last, 0, tick), vec![tick]);
    assert_eq!(s.due(last, 0, tick + 400), vec![tick]);
    // Once recorded, it is not due again.
    assert_eq!(s.due(Some(tick), 0, tick + 400), Vec::<u64>::new());
}

#[test]
fn due_run_once_returns_only_the_latest_missed_tick() {
    let s = schedule("*/5 * * * *");
    let last = utc(2024, 5, 1, 10, 0, 0);
    // Down from 10:00 to 10:23: 10:05 .. 10:20 were missed; only 10:20 fires.
    assert_eq!(s.due(Some(last), 0, utc(2024, 5, 1, 10, 23, 0)), vec![utc(2024, 5, 1, 10, 20, 0)]);
    // Exactly on a later tick: that one.
    assert_eq!(s.due(Some(last), 0, utc(2024, 5, 1, 10, 25, 0)), vec![utc(2024, 5, 1, 10, 25, 0)]);
    // Then it carries on normally.
    let after = Some(utc(2024, 5, 1, 10, 25, 0));
    assert_eq!(s.due(after, 0, utc(2024, 5, 1, 10, 29, 0)), Vec::<u64>::new());
    assert_eq!(s.due(after, 0, utc(2024, 5, 1, 10, 30, 0)), vec![utc(2024, 5, 1, 10, 30, 0)]);
}

#[test]
fn due_after_long_downtime_finds_the_latest_second() {
    // A per-second schedule down for three years: the answer is the last whole second, and it
    // is found without walking ~10^8 ticks.
    let s = schedule("* * * * * *");
    let now = utc(2027, 5, 1, 10, 0, 0) + 1_234;
    assert_eq!(s.due(Some(utc(2024, 5, 1, 10, 0, 0)), 0, now), vec![utc(2027, 5, 1, 10, 0, 1)]);
    // A sparse schedule over the same stretch: the last 1st of January before `now`.
    let yearly = schedule("@yearly");
    assert_eq!(yearly.due(Some(utc(2024, 1, 1, 0, 0, 0)), 0, now), vec![utc(2027, 1, 1, 0, 0, 0)]);
}

#[test]
fn due_run_once_matches_a_brute_force_walk() {
    // For a range of outage lengths, `due` must equal the last tick found by stepping.
    let s = zoned("17 */7 * * 1-5", "Europe/Berlin");
    let last = utc(2024, 3, 20, 0, 0, 0);
    for hours in [1u64, 5, 30, 100, 333, 1000, 2500] {
        let now = last + hours * 3_600_000 + 12_345;
        let mut expected = None;
        let mut at = last;
        while let Some(t) = s.next_after(at).filter(|&t| t <= now) {
            expected = Some(t);
            at = t;
        }
        assert_eq!(s.due(Some(last), 0, now), expected.into_iter().collect::<Vec<_>>(), "outage of {hours}h");
    }
}

#[test]
fn due_skip_fires_nothing_that_was_missed() {
    let s = skip("*/5 * * * *");
    let last = Some(utc(2024, 5, 1, 10, 0, 0));
    assert_eq!(s.due(last, 0, utc(2024, 5, 1, 10, 23, 0)), Vec::<u64>::new());
    // A tick missed by a little more than the grace period is skipped too.
    let tick = utc(2024, 5, 1, 10, 5, 0);
    assert_eq!(s.due(last, 0, tick + GRACE_MS + 1), Vec::<u64>::new());
}

#[test]
fn due_skip_fires_a_tick_within_grace() {
    let s = skip("*/5 * * * *");
    let last = Some(utc(2024, 5, 1, 10, 0, 0));
    let tick = utc(2024, 5, 1, 10, 5, 0);
    assert_eq!(s.due(last, 0, tick), vec![tick]);
    assert_eq!(s.due(last, 0, tick + GRACE_MS), vec![tick]);
    // Several missed, the latest on time: that one fires, the older ones do not.
    let late = utc(2024, 5, 1, 10, 25, 0);
    assert_eq!(s.due(last, 0, late + 300), vec![late]);
}

#[test]
fn due_never_repeats_the_last_fired_tick() {
    let s = schedule("* * * * * *");
    let t = utc(2024, 5, 1, 10, 0, 0);
    assert_eq!(s.due(Some(t), 0, t), Vec::<u64>::new());
    assert_eq!(s.due(Some(t), 0, t + 999), Vec::<u64>::new());
    assert_eq!(s.due(Some(t), 0, t + 1000), vec![t + 1000]);
    // The caller's clock went backwards (or the record is ahead of it): nothing.
    assert_eq!(s.due(Some(t + 60_000), 0, t), Vec::<u64>::new());
}

#[test]
fn due_never_returns_the_future() {
    let s = schedule("0 0 1 1 *");
    let now = utc(2024, 6, 1, 0, 0, 0);
    assert_eq!(s.due(None, utc(2024, 2, 1, 0, 0, 0), now), Vec::<u64>::new());
    for due in s.due(None, 0, now) {
        assert!(due <= now);
    }
    assert_eq!(s.due(None, 0, now), vec![utc(2024, 1, 1, 0, 0, 0)]);
}

#[test]
fn new_schedule_fires_nothing_before_it_was_created() {
    let s = schedule("0 * * * *");
    let created = utc(2024, 5, 1, 10, 30, 0);
    // The 10:00 tick predates the schedule.
    assert_eq!(s.due(None, created, utc(2024, 5, 1, 10, 59, 0)), Vec::<u64>::new());
    assert_eq!(s.due(None, created, utc(2024, 5, 1, 11, 0, 0)), vec![utc(2024, 5, 1, 11, 0, 0)]);
    // Created exactly on a tick: that tick is not "after" creation.
    let on_tick = utc(2024, 5, 1, 10, 0, 0);
    assert_eq!(s.due(None, on_tick, on_tick + 500), Vec::<u64>::new());
    // A recorded tick older than creation does not let older ticks in.
    assert_eq!(s.due(Some(utc(2024, 5, 1, 8, 0, 0)), created, utc(2024, 5, 1, 10, 59, 0)), Vec::<u64>::new());
}

#[test]
fn new_schedule_with_run_once_catches_up_only_after_creation() {
    let s = schedule("*/10 * * * *");
    let created = utc(2024, 5, 1, 10, 1, 0);
    // Nothing recorded yet and the poller only looks at 10:45: the 10:40 tick fires.
    assert_eq!(s.due(None, created, utc(2024, 5, 1, 10, 45, 0)), vec![utc(2024, 5, 1, 10, 40, 0)]);
}

#[test]
fn polling_fires_every_tick_exactly_once_and_in_order() {
    let s = schedule("*/7 * * * * *");
    let created = utc(2024, 5, 1, 10, 0, 0) + 100;
    let mut last = None;
    let mut fired = Vec::new();
    let mut now = created;
    while now < created + 10 * 60_000 {
        for tick in s.due(last, created, now) {
            fired.push(tick);
            last = Some(tick);
        }
        now += 250;
    }
    let expected = ticks(&s, created, fired.len());
    assert_eq!(fired, expected);
    // Seconds 0,7,..,56: 9 a minute for 10 minutes, less 10:00:00, which predates creation.
    assert_eq!(fired.len(), 89);
    assert_eq!(fired.first(), Some(&utc(2024, 5, 1, 10, 0, 7)));
}

// ---- errors ----

fn assert_field_error(expression: &str, field: &str, needle: &str) {
    let err = parse_err(expression);
    assert_eq!(err.field(), field, "{expression:?}: {err}");
    let text = err.to_string();
    assert!(text.contains(needle), "{expression:?}: {text:?} should contain {needle:?}");
    if field != "expression" {
        assert!(text.contains(&format!("{field} field: ")), "{text:?}");
    }
}

#[test]
fn error_message_names_field_and_value() {
    assert_eq!(
        parse_err("61 * * * *").to_string(),
        "invalid cron expression \"61 * * * *\": minute field: 61 is out of range 0-59"
    );
    assert_eq!(
        parse_err("61 * * * *"),
        CronError::Expression {
            expression: "61 * * * *".to_string(),
            field: "minute".to_string(),
            message: "61 is out of range 0-59".to_string(),
        }
    );
}

#[test]
fn seconds_field_errors() {
    assert_field_error("60 * * * * *", "seconds", "60 is out of range 0-59");
    assert_field_error("*/0 * * * * *", "seconds", "step 0");
    assert_field_error("x * * * * *", "seconds", "\"X\" is not allowed");
}

#[test]
fn minute_field_errors() {
    assert_field_error("61 * * * *", "minute", "61 is out of range 0-59");
    assert_field_error("0 61 * * * *", "minute", "61 is out of range 0-59");
    assert_field_error("*/0 * * * *", "minute", "step 0 in \"*/0\" never advances");
    assert_field_error("5/10 * * * *", "minute", "write \"*/10\" or \"5-59/10\"");
    assert_field_error("50-10 * * * *", "minute", "range 50-10 runs backwards");
    assert_field_error("10-70/5 * * * *", "minute", "70 is out of range 0-59");
    assert_field_error("% * * * *", "minute", "\"%\" is not a valid value");
}

#[test]
fn hour_field_errors() {
    assert_field_error("0 24 * * *", "hour", "24 is out of range 0-23");
    assert_field_error("0 1,2,99 * * *", "hour", "99 is out of range 0-23");
    assert_field_error("0 L * * *", "hour", "\"L\" is not allowed");
}

#[test]
fn day_of_month_field_errors() {
    assert_field_error("0 0 0 * *", "day of month", "0 is out of range 1-31");
    assert_field_error("0 0 32 * *", "day of month", "32 is out of range 1-31");
    assert_field_error("0 0 MON * *", "day of month", "\"MON\" is not allowed");
    assert_field_error("0 0 40W * *", "day of month", "40 is out of range 1-31");
}

#[test]
fn month_field_errors() {
    assert_field_error("0 0 * 13 *", "month", "13 is out of range 1-12");
    assert_field_error("0 0 * 0 *", "month", "0 is out of range 1-12");
    assert_field_error("0 0 * FOO *", "month", "\"FOO\" is not allowed here; use 1-12 or JAN-DEC");
    // croner would read a weekday name anywhere (MON as 1, i.e. January); here it is an error.
    assert_field_error("0 0 * MON *", "month", "\"MON\" is not allowed");
    assert_field_error("0 0 * DEC-JAN *", "month", "range 12-1 runs backwards");
}

#[test]
fn day_of_week_field_errors() {
    assert_field_error("0 0 * * 8", "day of week", "8 is out of range 0-7");
    assert_field_error("0 0 * * MON#6", "day of week", "the nth weekday must be 1-5");
    assert_field_error("0 0 * * JAN", "day of week", "\"JAN\" is not allowed");
    assert_field_error("0 0 * * FRI-MON", "day of week", "range 5-1 runs backwards");
    // SUN ends a range as 7, so this is valid.
    assert!(Schedule::parse(&spec("0 0 * * MON-SUN", None, Missed::RunOnce)).is_ok());
}

#[test]
fn whole_expression_errors() {
    assert_field_error("", "expression", "it is empty");
    assert_field_error("   ", "expression", "it is empty");
    assert_field_error("* * * *", "expression", "it has 4 fields");
    assert_field_error("* * * * * * *", "expression", "it has 7 fields");
    assert_field_error("@every 5m", "expression", "unknown shorthand \"@every 5m\"");
    assert_field_error("@fortnightly", "expression", "@hourly");
    // No field prefix for whole-expression problems.
    assert_eq!(
        parse_err("* * * *").to_string(),
        "invalid cron expression \"* * * *\": it has 4 fields; expected 5 (minute hour day-of-month month \
         day-of-week) or 6 (seconds first)"
    );
}

#[test]
fn fields_without_values_are_rejected_where_they_are() {
    // croner takes these as matching nothing, which would surface as "never fires".
    assert_field_error("0 0 * * +", "day of week", "has no values");
    assert_field_error(", * * * *", "minute", "has no values");
    assert_field_error("0 0 W * *", "day of month", "\"W\" is missing a number");
}

#[test]
fn impossible_dates_are_rejected() {
    assert_field_error("0 0 30 2 *", "day of month", "never fire");
    assert_field_error("0 0 31 4,6,9,11 *", "day of month", "never fire");
    assert_field_error("0 0 31 2 +MON", "day of month", "never fire");
    // With OR semantics a weekday rescues it: every Monday in February.
    assert!(Schedule::parse(&spec("0 0 31 2 MON", None, Missed::RunOnce)).is_ok());
}

#[test]
fn unknown_time_zone() {
    let err = Schedule::parse(&spec("* * * * *", Some("Mars/Olympus"), Missed::RunOnce)).unwrap_err();
    assert_eq!(err, CronError::TimeZone("Mars/Olympus".to_string()));
    assert_eq!(err.field(), "timezone");
    assert_eq!(err.to_string(), "unknown time zone \"Mars/Olympus\": use an IANA name such as Europe/Berlin");

    // Names are case-sensitive; a near miss gets a suggestion.
    let err = Schedule::parse(&spec("* * * * *", Some("europe/berlin"), Missed::RunOnce)).unwrap_err();
    assert_eq!(err.to_string(), "unknown time zone \"europe/berlin\": did you mean \"Europe/Berlin\"?");

    let err = Schedule::parse(&spec("* * * * *", Some(""), Missed::RunOnce)).unwrap_err();
    assert_eq!(err.field(), "timezone");
}

#[test]
fn expression_errors_come_before_time_zone_errors() {
    let err = Schedule::parse(&spec("61 * * * *", Some("Mars/Olympus"), Missed::RunOnce)).unwrap_err();
    assert_eq!(err.field(), "minute");
}

// ---- spec, serde, traits ----

#[test]
fn spec_is_kept() {
    let given = spec("0 9 * * MON-FRI", Some("Europe/Berlin"), Missed::Skip);
    let s = Schedule::parse(&given).expect("valid");
    assert_eq!(s.spec(), &given);
}

#[test]
fn serde_defaults() {
    let parsed: ScheduleSpec = serde_json::from_str(r#"{"expression":"*/5 * * * *"}"#).expect("valid json");
    assert_eq!(parsed, spec("*/5 * * * *", None, Missed::RunOnce));
    assert_eq!(Missed::default(), Missed::RunOnce);
}

#[test]
fn serde_names_are_kebab_case() {
    let parsed: ScheduleSpec =
        serde_json::from_str(r#"{"expression":"@daily","timezone":"Europe/Berlin","missed":"skip"}"#)
            .expect("valid json");
    assert_eq!(parsed, spec("@daily", Some("Europe/Berlin"), Missed::Skip));
    assert_eq!(serde_json::to_string(&Missed::RunOnce).expect("serializes"), r#""run-once""#);
    assert!(serde_json::from_str::<ScheduleSpec>(r#"{"expression":"@daily","missed":"sometimes"}"#).is_err());
    assert!(serde_json::from_str::<ScheduleSpec>(r#"{"timezone":"UTC"}"#).is_err());
}

#[test]
fn serde_round_trip() {
    let original = spec("0 30 9 * * MON", Some("America/New_York"), Missed::RunOnce);
    let json = serde_json::to_string(&original).expect("serializes");
    assert_eq!(json, r#"{"expression":"0 30 9 * * MON","timezone":"America/New_York","missed":"run-once"}"#);
    assert_eq!(serde_json::from_str::<ScheduleSpec>(&json).expect("parses"), original);
}

#[test]
fn schedule_is_shareable() {
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync>() {}
    assert_traits::<Schedule>();
    let s = zoned("0 9 * * *", "Europe/Berlin");
    let copy = s.clone();
    assert_eq!(copy.next_after(0), s.next_after(0));
}
