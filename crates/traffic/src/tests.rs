use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::outcomes::bucket_range_us;
use crate::split::fnv1a64;
use crate::*;

fn t(revision: u64, percent: u8) -> TrafficTarget {
    TrafficTarget::new(revision, percent)
}

fn split(items: &[(u64, u8)]) -> Split {
    Split::new(items.iter().map(|&(r, p)| t(r, p)).collect()).expect("valid split")
}

// ---- Split validation ----

#[test]
fn split_keeps_order_and_answers_questions() {
    let s = split(&[(4, 10), (3, 90)]);
    assert_eq!(s.targets(), &[t(4, 10), t(3, 90)]);
    assert_eq!(s.revisions().collect::<Vec<_>>(), vec![4, 3]);
    assert_eq!(s.percent_of(3), 90);
    assert_eq!(s.percent_of(4), 10);
    assert_eq!(s.percent_of(5), 0);
    assert_eq!(s.to_string(), "4=10 3=90");
    assert_eq!(Split::single(7).targets(), &[t(7, 100)]);
}

#[test]
fn split_refuses_bad_sums() {
    assert_eq!(Split::new(vec![t(3, 90), t(4, 20)]), Err(SplitError::Sum(110)));
    assert_eq!(Split::new(vec![t(3, 50)]), Err(SplitError::Sum(50)));
    assert_eq!(Split::new(vec![t(3, 0)]), Err(SplitError::Sum(0)));
    assert_eq!(SplitError::Sum(110).to_string(), "traffic percentages must add up to 100, got 110");
}

#[test]
fn split_refuses_duplicates_empty_and_oversized_shares() {
    assert_eq!(Split::new(vec![t(3, 50), t(3, 50)]), Err(SplitError::Duplicate(3)));
    // Even a zero share is a second mention, so the intent is unclear.
    assert_eq!(Split::new(vec![t(3, 100), t(3, 0)]), Err(SplitError::Duplicate(3)));
    assert_eq!(Split::new(vec![]), Err(SplitError::Empty));
    assert_eq!(Split::new(vec![t(3, 200)]), Err(SplitError::Percent { revision: 3, percent: 200 }));
}

#[test]
fn split_drops_zero_shares() {
    let s = split(&[(3, 0), (4, 100), (5, 0)]);
    assert_eq!(s.targets(), &[t(4, 100)]);
    assert_eq!(s, Split::single(4));
}

#[test]
fn split_refuses_too_many_targets() {
    let twenty: Vec<_> = (1..=20).map(|r| t(r, 5)).collect();
    assert_eq!(Split::new(twenty), Err(SplitError::TooMany(20)));
    let mut sixteen: Vec<_> = (1..=15).map(|r| t(r, 6)).collect();
    sixteen.push(t(16, 10));
    assert_eq!(Split::new(sixteen).map(|s| s.targets().len()), Ok(16));
    // Zero shares do not count towards the limit.
    let mut padded: Vec<_> = (1..=20).map(|r| t(r, 0)).collect();
    padded.push(t(100, 100));
    assert_eq!(Split::new(padded), Ok(Split::single(100)));
}

#[test]
fn split_check_known() {
    let s = split(&[(3, 90), (4, 10)]);
    assert_eq!(s.check_known(|r| r == 3 || r == 4), Ok(()));
    assert_eq!(s.check_known(|r| r == 3), Err(SplitError::UnknownRevision(4)));
    assert_eq!(SplitError::UnknownRevision(4).to_string(), "revision 4 does not exist");
}

#[test]
fn parse_args_reads_the_cli_form() {
    assert_eq!(Split::parse_args(&["3=90", "4=10"]), Ok(split(&[(3, 90), (4, 10)])));
    assert_eq!(Split::parse_args(&[String::from("7=100")]), Ok(Split::single(7)));
    assert_eq!(Split::parse_args(&["3=90 4=10"]), Ok(split(&[(3, 90), (4, 10)])));
    assert_eq!(Split::parse_args(&["3=90%,4=10%"]), Ok(split(&[(3, 90), (4, 10)])));
    assert_eq!("3=90 4=10".parse::<Split>(), Ok(split(&[(3, 90), (4, 10)])));
    let s = split(&[(3, 90), (4, 10)]);
    assert_eq!(s.to_string().parse::<Split>(), Ok(s));
}

#[test]
fn parse_args_refuses_bad_items() {
    for bad in ["3=abc", "3", "=5", "3=", "abc=5", "+3=100", "3=-1", "3=9x", "3==100"] {
        assert_eq!(Split::parse_args(&[bad]), Err(SplitError::Syntax(bad.to_owned())), "{bad}");
    }
    assert_eq!(Split::parse_args(&["3=101"]), Err(SplitError::Percent { revision: 3, percent: 101 }));
    assert_eq!(Split::parse_args(&["3=90", "4=20"]), Err(SplitError::Sum(110)));
    assert_eq!(Split::parse_args(&["3=50", "3=50"]), Err(SplitError::Duplicate(3)));
    assert_eq!(Split::parse_args::<&str>(&[]), Err(SplitError::Empty));
    assert_eq!(Split::parse_args(&[" "]), Err(SplitError::Empty));
    assert_eq!(
        SplitError::Syntax("3=abc".into()).to_string(),
        "`3=abc` is not REVISION=PERCENT (for example `3=90`)"
    );
}

// ---- pick ----

#[test]
fn random_picks_follow_the_split() {
    let s = split(&[(3, 90), (4, 10)]);
    let n = 10_000;
    let fours = (0..n).filter(|_| s.pick(None) == 4).count();
    // 10% ± 1.5%: five standard deviations of a binomial(10 000, 0.1).
    assert!((850..=1150).contains(&fours), "{fours} of {n} picks went to the 10% revision");
    assert!((0..1000).all(|_| Split::single(9).pick(None) == 9));
}

#[test]
fn random_picks_reach_every_target() {
    let s = split(&[(1, 25), (2, 25), (3, 25), (4, 25)]);
    let mut counts = [0usize; 5];
    for _ in 0..10_000 {
        counts[s.pick(None) as usize] += 1;
    }
    for (r, &c) in counts.iter().enumerate().skip(1) {
        assert!((2300..=2700).contains(&c), "revision {r} got {c} of 10000");
    }
}

#[test]
fn a_sticky_key_always_lands_on_the_same_revision() {
    let s = split(&[(3, 50), (4, 50)]);
    for i in 0..100 {
        let key = format!("user-{i}");
        let first = s.pick(Some(key.as_bytes()));
        assert!((0..50).all(|_| s.pick(Some(key.as_bytes())) == first), "{key} moved");
    }
}

#[test]
fn distinct_sticky_keys_spread_per_the_split() {
    let s = split(&[(3, 90), (4, 10)]);
    let fours = (0..10_000).filter(|i| s.pick(Some(format!("user-{i}").as_bytes())) == 4).count();
    assert!((800..=1200).contains(&fours), "{fours} of 10000 keys on the 10% revision");
    // Short keys that differ only in their last byte spread too (raw FNV's weak spot).
    let mut buckets = [0usize; 100];
    for i in 0..10_000u32 {
        buckets[usize::from(bucket(&i.to_le_bytes()))] += 1;
    }
    assert!(buckets.iter().all(|&n| (50..=150).contains(&n)), "uneven buckets: {buckets:?}");
}

#[test]
fn buckets_go_to_targets_in_order() {
    let s = split(&[(4, 10), (3, 90)]);
    assert_eq!(s.revision_for_bucket(0), 4);
    assert_eq!(s.revision_for_bucket(9), 4);
    assert_eq!(s.revision_for_bucket(10), 3);
    assert_eq!(s.revision_for_bucket(99), 3);
    assert_eq!(s.revision_for_bucket(255), 3);
}

#[test]
fn the_sticky_hash_is_pinned() {
    // FNV-1a 64 reference values: a change here is a change of algorithm.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    // Pinned buckets: if these change, every sticky client in every deployment moves.
    assert_eq!(bucket(b"user-42"), PINNED_USER_42);
    assert_eq!(bucket(b""), PINNED_EMPTY);
    assert_eq!(bucket(b"session-abcdef"), PINNED_SESSION);
}

const PINNED_USER_42: u8 = 63;
const PINNED_EMPTY: u8 = 93;
const PINNED_SESSION: u8 = 99;

// ---- Sticky ----

#[test]
fn sticky_parse_and_display_round_trip() {
    let h = Sticky::parse("header:X-User-Id").expect("header");
    assert_eq!(h, Sticky::Header("x-user-id".into()));
    assert_eq!(h.to_string(), "header:x-user-id");
    assert_eq!(Sticky::parse(&h.to_string()), Ok(h));
    let c = Sticky::parse("cookie:Session").expect("cookie");
    assert_eq!(c, Sticky::Cookie("Session".into()), "cookie names are case-sensitive");
    assert_eq!(c.to_string(), "cookie:Session");
    assert_eq!(c.to_string().parse::<Sticky>(), Ok(c));
    assert_eq!(Sticky::parse("HEADER:x-a"), Ok(Sticky::Header("x-a".into())));
}

#[test]
fn sticky_refuses_bad_names() {
    for bad in ["x-user-id", "query:x", "", ":x"] {
        assert_eq!(Sticky::parse(bad), Err(StickyError::Syntax(bad.into())), "{bad}");
    }
    for bad in ["header:", "header:bad name", "header:x:y", "header:é"] {
        assert!(matches!(Sticky::parse(bad), Err(StickyError::HeaderName(_))), "{bad}");
    }
    for bad in ["cookie:", "cookie:a;b", "cookie:a=b", "cookie:a b", "cookie:\"s\"", "cookie:a\tb"] {
        assert!(matches!(Sticky::parse(bad), Err(StickyError::CookieName(_))), "{bad}");
    }
    assert_eq!(Sticky::parse("header:Cookie"), Err(StickyError::WholeCookieHeader));
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in pairs {
        map.append(name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn sticky_header_key() {
    let s = Sticky::parse("header:x-user-id").expect("sticky");
    assert_eq!(s.key(&headers(&[("x-user-id", "alice")])), Some(&b"alice"[..]));
    assert_eq!(s.key(&headers(&[("x-user-id", "alice"), ("x-user-id", "bob")])), Some(&b"alice"[..]));
    assert_eq!(s.key(&headers(&[("x-other", "alice")])), None);
    assert_eq!(s.key(&headers(&[("x-user-id", "")])), None);
    assert_eq!(s.key(&HeaderMap::new()), None);
}

#[test]
fn sticky_cookie_key() {
    let s = Sticky::parse("cookie:session").expect("sticky");
    assert_eq!(s.key(&headers(&[("cookie", "session=xyz")])), Some(&b"xyz"[..]));
    assert_eq!(s.key(&headers(&[("cookie", "a=1; session=xyz; b=2")])), Some(&b"xyz"[..]));
    assert_eq!(s.key(&headers(&[("cookie", "a=1;session=xyz")])), Some(&b"xyz"[..]));
    assert_eq!(s.key(&headers(&[("cookie", " a=1 ;\t session = xyz ; b=2")])), Some(&b"xyz"[..]));
    assert_eq!(s.key(&headers(&[("cookie", "session=\"xyz\"")])), Some(&b"xyz"[..]));
    assert_eq!(s.key(&headers(&[("cookie", "session=a=b")])), Some(&b"a=b"[..]));
    // Several Cookie headers (HTTP/2 may split them): searched in order.
    assert_eq!(s.key(&headers(&[("cookie", "a=1"), ("cookie", "session=xyz")])), Some(&b"xyz"[..]));
    assert_eq!(s.key(&headers(&[("cookie", "session=one"), ("cookie", "session=two")])), Some(&b"one"[..]));
    // Names match whole and case-sensitively.
    assert_eq!(s.key(&headers(&[("cookie", "sessionid=1; my-session=2; Session=3")])), None);
    assert_eq!(s.key(&headers(&[("cookie", "session")])), None);
    assert_eq!(s.key(&headers(&[("cookie", "session=")])), None);
    assert_eq!(s.key(&headers(&[("cookie", "session=\"\"")])), None);
    assert_eq!(s.key(&headers(&[("x-session", "session=xyz")])), None);
    assert_eq!(s.key(&HeaderMap::new()), None);
}

#[test]
fn sticky_serde_shape_and_validation() {
    let h = Sticky::Header("x-user-id".into());
    let json = serde_json::to_string(&h).expect("serialize");
    assert_eq!(json, r#"{"kind":"header","name":"x-user-id"}"#);
    assert_eq!(serde_json::from_str::<Sticky>(&json).expect("deserialize"), h);
    let c: Sticky = serde_json::from_str(r#"{"kind":"cookie","name":"session"}"#).expect("cookie");
    assert_eq!(c, Sticky::Cookie("session".into()));
    let upper: Sticky = serde_json::from_str(r#"{"kind":"header","name":"X-User-Id"}"#).expect("upper");
    assert_eq!(upper, h, "header names are lowercased on the way in");
    assert!(serde_json::from_str::<Sticky>(r#"{"kind":"cookie","name":"a;b"}"#).is_err());
    assert!(serde_json::from_str::<Sticky>(r#"{"kind":"query","name":"a"}"#).is_err());
}

// ---- Rollout ----

const MIN: u64 = 60_000;
const T0: u64 = 1_700_000_000_000;

fn summary(ok: u64, failed: u64, latency: Duration) -> WindowSummary {
    let o = Outcomes::new();
    (0..ok).for_each(|_| o.record(true, latency));
    (0..failed).for_each(|_| o.record(false, latency));
    o.take()
}

fn healthy() -> WindowSummary {
    summary(10, 0, Duration::from_millis(5))
}

#[test]
fn rollout_spec_defaults_and_validation() {
    let spec = RolloutSpec::new(10 * MIN);
    assert_eq!(
        spec,
        RolloutSpec {
            duration_ms: 600_000,
            steps: 10,
            max_error_rate: 0.05,
            max_p99_ms: None,
            min_requests: 20
        }
    );
    assert_eq!(spec.validate(), Ok(()));
    assert_eq!(RolloutSpec::new(999).validate(), Err(RolloutError::Duration(999)));
    assert_eq!(RolloutSpec { steps: 0, ..spec.clone() }.validate(), Err(RolloutError::Steps(0)));
    assert_eq!(RolloutSpec { steps: 101, ..spec.clone() }.validate(), Err(RolloutError::Steps(101)));
    assert_eq!(
        RolloutSpec { max_error_rate: 5.0, ..spec.clone() }.validate(),
        Err(RolloutError::ErrorRate(5.0))
    );
    assert!(RolloutSpec { max_error_rate: f64::NAN, ..spec.clone() }.validate().is_err());
    assert_eq!(RolloutSpec { max_p99_ms: Some(0), ..spec.clone() }.validate(), Err(RolloutError::P99Zero));
    assert_eq!(Rollout::check(3, 3, &spec), Err(RolloutError::SameRevision(3)));
    assert_eq!(Rollout::check(3, 4, &spec), Ok(()));
    let parsed: RolloutSpec = serde_json::from_str(r#"{"duration_ms":600000}"#).expect("defaults");
    assert_eq!(parsed, spec);
}

#[test]
fn rollout_follows_the_schedule() {
    let mut r = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    assert_eq!(r.percent, 10);
    assert_eq!(r.split(), split(&[(4, 10), (3, 90)]));
    assert_eq!(r.next_change_ms(), Some(T0 + MIN));
    assert_eq!(r.tick(T0, &healthy()), Decision::Unchanged);
    assert_eq!(r.tick(T0 + MIN - 1, &healthy()), Decision::Unchanged);
    for step in 2..=10u8 {
        let at = T0 + u64::from(step - 1) * MIN;
        assert_eq!(r.tick(at, &healthy()), Decision::Advanced { percent: step * 10 }, "step {step}");
        assert_eq!(r.percent, step * 10);
        assert_eq!(r.tick(at + 1, &healthy()), Decision::Unchanged);
        let next = if step == 10 { T0 + 10 * MIN } else { at + MIN };
        assert_eq!(r.next_change_ms(), Some(next), "step {step}");
    }
    assert_eq!(r.split(), Split::single(4));
    assert_eq!(r.status, RolloutStatus::Progressing);
    assert_eq!(r.tick(T0 + 10 * MIN, &healthy()), Decision::Completed);
    assert_eq!(r.status, RolloutStatus::Completed { at_ms: T0 + 10 * MIN });
    assert_eq!(r.percent, 100);
    assert_eq!(r.split(), Split::single(4));
    assert_eq!(r.next_change_ms(), None);
    assert_eq!(r.observed.requests, 21 * 10, "every tick's results are kept");
}

#[test]
fn rollout_jumps_steps_after_a_long_gap() {
    let mut r = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    assert_eq!(r.tick(T0 + 5 * MIN + 30_000, &healthy()), Decision::Advanced { percent: 60 });
    // A clock that went backwards does not take traffic away again.
    assert_eq!(r.tick(T0 + MIN, &healthy()), Decision::Unchanged);
    assert_eq!(r.percent, 60);
    let mut late = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    assert_eq!(late.tick(T0 + 20 * MIN, &healthy()), Decision::Completed);
}

#[test]
fn rollout_rounds_uneven_steps() {
    let spec = RolloutSpec { steps: 3, ..RolloutSpec::new(3000) };
    let mut r = Rollout::start(1, 2, spec, 0);
    assert_eq!(r.percent, 33);
    assert_eq!(r.tick(1000, &healthy()), Decision::Advanced { percent: 67 });
    assert_eq!(r.tick(2000, &healthy()), Decision::Advanced { percent: 100 });
    assert_eq!(r.tick(3000, &healthy()), Decision::Completed);
    let one = Rollout::start(1, 2, RolloutSpec { steps: 1, ..RolloutSpec::new(3000) }, 0);
    assert_eq!(one.percent, 100);
}

#[test]
fn rollout_rolls_back_on_errors_once_enough_are_seen() {
    let mut r = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    // 19 results, all failures: fewer than min_requests (20), so no judgement yet.
    assert_eq!(r.tick(T0 + 1000, &summary(0, 19, Duration::from_millis(5))), Decision::Unchanged);
    assert_eq!(r.status, RolloutStatus::Progressing);
    assert_eq!(r.percent, 10);
    // The 20th result makes the accumulated 19/20 judgeable.
    let reason = "error rate 95.0% over 20 requests exceeds 5.0%".to_owned();
    assert_eq!(
        r.tick(T0 + 2000, &summary(1, 0, Duration::from_millis(5))),
        Decision::RolledBack { reason: reason.clone() }
    );
    assert_eq!(r.status, RolloutStatus::RolledBack { at_ms: T0 + 2000, reason });
    assert_eq!(r.percent, 0);
    assert_eq!(r.split(), Split::single(3));
}

#[test]
fn rollout_reason_has_the_figures() {
    let mut r = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    assert_eq!(
        r.tick(T0 + 1000, &summary(35, 5, Duration::from_millis(5))),
        Decision::RolledBack { reason: "error rate 12.5% over 40 requests exceeds 5.0%".into() }
    );
}

#[test]
fn rollout_tolerates_errors_within_the_limit() {
    let mut r = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    // Exactly 5%: the limit is exceeded only above it.
    assert_eq!(
        r.tick(T0 + MIN, &summary(95, 5, Duration::from_millis(5))),
        Decision::Advanced { percent: 20 }
    );
    assert_eq!(r.tick(T0 + 10 * MIN, &summary(100, 0, Duration::from_millis(5))), Decision::Completed);
}

#[test]
fn rollout_rolls_back_on_p99() {
    let spec = RolloutSpec { max_p99_ms: Some(500), ..RolloutSpec::new(10 * MIN) };
    let mut fast = Rollout::start(3, 4, spec.clone(), T0);
    assert_eq!(
        fast.tick(T0 + MIN, &summary(100, 0, Duration::from_millis(400))),
        Decision::Advanced { percent: 20 }
    );

    let mut slow = Rollout::start(3, 4, spec.clone(), T0);
    let mut window = summary(98, 0, Duration::from_millis(100));
    window.merge(&summary(2, 0, Duration::from_millis(900)));
    let Decision::RolledBack { reason } = slow.tick(T0 + 1000, &window) else {
        panic!("a p99 of 900 ms against a 500 ms limit must roll back: {:?}", slow.status);
    };
    assert!(reason.starts_with("p99 latency 9"), "{reason}");
    assert!(reason.ends_with(" ms over 100 requests exceeds 500 ms"), "{reason}");

    // Slow and failing: both reasons.
    let mut both = Rollout::start(3, 4, spec, T0);
    let Decision::RolledBack { reason } = both.tick(T0, &summary(50, 50, Duration::from_secs(2))) else {
        panic!("must roll back");
    };
    assert!(reason.starts_with("error rate 50.0% over 100 requests exceeds 5.0%; p99 latency "), "{reason}");
}

#[test]
fn rollout_final_states_are_final() {
    let mut back = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    assert!(matches!(back.tick(T0, &summary(0, 40, Duration::ZERO)), Decision::RolledBack { .. }));
    let frozen = back.clone();
    assert_eq!(back.tick(T0 + 5 * MIN, &summary(1000, 0, Duration::ZERO)), Decision::Unchanged);
    assert_eq!(back.tick(T0 + 20 * MIN, &healthy()), Decision::Unchanged);
    assert_eq!(back, frozen);
    assert_eq!(back.split(), Split::single(3));

    let mut done = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    assert_eq!(done.tick(T0 + 10 * MIN, &healthy()), Decision::Completed);
    let frozen = done.clone();
    assert_eq!(done.tick(T0 + 11 * MIN, &summary(0, 1000, Duration::ZERO)), Decision::Unchanged);
    assert_eq!(done, frozen);
    assert_eq!(done.split(), Split::single(4));
}

#[test]
fn rollout_between_one_revision_is_harmless() {
    let r = Rollout::start(5, 5, RolloutSpec::new(10 * MIN), T0);
    assert_eq!(r.split(), Split::single(5));
}

#[test]
fn stickiness_is_monotone_as_a_rollout_grows() {
    let mut r = Rollout::start(3, 4, RolloutSpec::new(10 * MIN), T0);
    let keys: Vec<String> = (0..2000).map(|i| format!("client-{i}")).collect();
    let on_new =
        |r: &Rollout| -> Vec<bool> { keys.iter().map(|k| r.split().pick(Some(k.as_bytes())) == 4).collect() };
    let mut before = on_new(&r);
    let share = before.iter().filter(|&&b| b).count();
    assert!((100..=300).contains(&share), "{share} of 2000 on the new revision at 10%");
    for at in [MIN, 4 * MIN, 9 * MIN, 10 * MIN] {
        r.tick(T0 + at, &healthy());
        let now = on_new(&r);
        for (i, (&was, &is)) in before.iter().zip(&now).enumerate() {
            assert!(!was || is, "client-{i} left the new revision at {}%", r.percent);
        }
        before = now;
    }
    assert!(before.iter().all(|&b| b));
}

// ---- Outcomes and WindowSummary ----

#[test]
fn outcomes_record_and_take() {
    let o = Outcomes::new();
    assert_eq!(o.take(), WindowSummary::default());
    for i in 0..10 {
        o.record(i % 4 != 0, Duration::from_millis(i));
    }
    let w = o.take();
    assert_eq!((w.requests, w.errors), (10, 3));
    assert_eq!(w.histogram.iter().sum::<u64>(), 10);
    assert_eq!(w.histogram.last().copied(), Some(1), "trailing empty buckets are trimmed");
    assert_eq!(w.error_rate(), 0.3);
    assert_eq!(o.take(), WindowSummary::default(), "take resets");
    // Beyond the range: counted, in the last bucket.
    o.record(true, Duration::from_secs(3600));
    let w = o.take();
    assert_eq!(w.requests, 1);
    assert_eq!(w.histogram.len(), BUCKETS);
}

#[test]
fn concurrent_records_are_each_taken_once() {
    let o = Arc::new(Outcomes::new());
    let writing = Arc::new(AtomicBool::new(true));
    let per_thread = 200_000u64;
    let writers: Vec<_> = (0..4u64)
        .map(|id| {
            let o = Arc::clone(&o);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    o.record(i % 7 != 0, Duration::from_micros((i * 37 + id) % 5_000_000));
                }
            })
        })
        .collect();
    let taker = {
        let o = Arc::clone(&o);
        let writing = Arc::clone(&writing);
        std::thread::spawn(move || {
            let mut total = WindowSummary::default();
            let mut takes = 0u32;
            while writing.load(Ordering::Relaxed) {
                let w = o.take();
                assert!(w.errors <= w.requests, "a take counted an error without its request: {w:?}");
                total.merge(&w);
                takes += 1;
            }
            (total, takes)
        })
    };
    for w in writers {
        w.join().expect("writer");
    }
    writing.store(false, Ordering::Relaxed);
    let (mut total, takes) = taker.join().expect("taker");
    total.merge(&o.take());
    assert!(takes > 1, "the taker must have run while writers wrote");
    let errors_per_thread = per_thread.div_ceil(7);
    assert_eq!(total.requests, 4 * per_thread);
    assert_eq!(total.errors, 4 * errors_per_thread);
    assert_eq!(total.histogram.iter().sum::<u64>(), 4 * per_thread);
}

#[test]
fn buckets_are_log_linear_with_bounded_error() {
    let mut us = 0u64;
    while us < MAX_LATENCY.as_micros() as u64 {
        let (start, end) = bucket_range_us(us);
        assert!(start <= us && us < end, "{us} µs outside its bucket {start}..{end}");
        if start >= 16 {
            assert!((end - start) * 16 <= start, "bucket {start}..{end} wider than 6.25%");
        } else {
            assert_eq!(end - start, 1);
        }
        us = us * 21 / 20 + 1;
    }
    const { assert!(BUCKETS < 500) };
}

#[test]
fn quantiles_within_bucket_error() {
    let o = Outcomes::new();
    for ms in 1..=1000 {
        o.record(true, Duration::from_millis(ms));
    }
    let w = o.take();
    let within = |got: Option<f64>, truth: f64| {
        let got = got.expect("a quantile");
        assert!(got >= truth && got <= truth * 1.0625, "{got} ms for a true {truth} ms");
    };
    within(w.p99_ms(), 990.0);
    within(w.quantile_ms(0.5), 500.0);
    within(w.quantile_ms(0.0), 1.0);
    within(w.quantile_ms(1.0), 1000.0);
    within(w.quantile_ms(7.0), 1000.0);
    assert_eq!(w.quantile_ms(f64::NAN), None);
    assert_eq!(WindowSummary::default().p99_ms(), None);
    assert_eq!(WindowSummary::default().error_rate(), 0.0);

    // Small latencies get exact microsecond buckets.
    let o = Outcomes::new();
    o.record(true, Duration::from_micros(5));
    assert_eq!(o.take().p99_ms(), Some(0.006));
    o.record(true, Duration::from_nanos(300));
    assert_eq!(o.take().p99_ms(), Some(0.001));
}

#[test]
fn summaries_merge_exactly() {
    let latencies = [3u64, 40, 700, 12_000, 250_000];
    let together = Outcomes::new();
    let (a, b) = (Outcomes::new(), Outcomes::new());
    for (i, &us) in latencies.iter().enumerate() {
        together.record(i != 2, Duration::from_micros(us));
        let half = if i % 2 == 0 { &a } else { &b };
        half.record(i != 2, Duration::from_micros(us));
    }
    let together = together.take();
    let (mut a, b) = (a.take(), b.take());
    assert_ne!(a.histogram.len(), b.histogram.len());
    let mut b_then_a = b.clone();
    b_then_a.merge(&a);
    a.merge(&b);
    assert_eq!(a, together);
    assert_eq!(b_then_a, together);
    assert_eq!((a.requests, a.errors), (5, 1));
}

// ---- serde ----

#[test]
fn split_serde_round_trip_and_validation() {
    let s = split(&[(4, 10), (3, 90)]);
    let json = serde_json::to_string(&s).expect("serialize");
    assert_eq!(json, r#"[{"revision":4,"percent":10},{"revision":3,"percent":90}]"#);
    assert_eq!(serde_json::from_str::<Split>(&json).expect("deserialize"), s);
    let bad = serde_json::from_str::<Split>(r#"[{"revision":4,"percent":10},{"revision":3,"percent":80}]"#);
    let err = bad.expect_err("a sum of 90 must be refused").to_string();
    assert!(err.contains("traffic percentages must add up to 100, got 90"), "{err}");
    assert!(serde_json::from_str::<Split>("[]").is_err());
    let dropped: Split = serde_json::from_str(r#"[{"revision":4,"percent":0},{"revision":3,"percent":100}]"#)
        .expect("zero share");
    assert_eq!(dropped, Split::single(3));
}

#[test]
fn rollout_serde_round_trip() {
    let spec = RolloutSpec { max_p99_ms: Some(250), ..RolloutSpec::new(10 * MIN) };
    let mut r = Rollout::start(3, 4, spec, T0);
    r.tick(T0 + 2 * MIN, &summary(10, 0, Duration::from_millis(20)));
    let json = serde_json::to_string(&r).expect("serialize");
    assert!(json.contains(r#""status":{"state":"progressing"}"#), "{json}");
    assert_eq!(serde_json::from_str::<Rollout>(&json).expect("deserialize"), r);

    r.tick(T0 + 3 * MIN, &summary(0, 30, Duration::from_millis(20)));
    let json = serde_json::to_string(&r).expect("serialize");
    assert!(json.contains(r#""state":"rolled-back""#), "{json}");
    let back: Rollout = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, r);
    assert_eq!(back.split(), Split::single(3));

    let done = RolloutStatus::Completed { at_ms: 5 };
    let json = serde_json::to_string(&done).expect("serialize");
    assert_eq!(json, r#"{"state":"completed","at_ms":5}"#);
    assert_eq!(serde_json::from_str::<RolloutStatus>(&json).expect("deserialize"), done);
}
