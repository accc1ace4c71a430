use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn open() -> (tempfile::TempDir, EventStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("events.redb")).unwrap();
    (dir, store)
}

fn cfg(f: impl FnOnce(&mut QueueConfig)) -> QueueConfig {
    let mut c = QueueConfig::default();
    f(&mut c);
    c
}

fn msg(body: &str) -> NewMessage {
    NewMessage::new(body)
}

fn bodies(got: &[Received]) -> Vec<String> {
    got.iter().map(|r| String::from_utf8(r.body.clone()).unwrap()).collect()
}

fn total(s: QueueStats) -> u64 {
    s.visible + s.in_flight + s.delayed
}

#[test]
fn visibility_timeout_redelivers() {
    let (_d, s) = open();
    s.create_queue("q", cfg(|c| c.visibility_ms = 1000), 0).unwrap();
    let id = s.send_one("q", &msg("a").attribute("k", "v"), 5).unwrap();
    let first = s.receive("q", 1, None, 10).unwrap();
    assert_eq!(first.len(), 1);
    let r = &first[0];
    assert_eq!((r.id.as_str(), r.receive_count, r.sent_ms, r.first_received_ms), (id.as_str(), 1, 5, 10));
    assert_eq!(r.attributes.get("k").map(String::as_str), Some("v"));
    assert_eq!(r.group, None);
    assert!(s.receive("q", 1, None, 1009).unwrap().is_empty());
    assert_eq!(s.stats("q", 1009).unwrap().in_flight, 1);
    assert_eq!(s.next_change_ms("q").unwrap(), Some(1010));
    let again = s.receive("q", 1, None, 1010).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].receive_count, again[0].first_received_ms), (2, 10));
    assert_ne!(again[0].receipt, r.receipt);
    // A per-receive visibility overrides the queue's.
    let third = s.receive("q", 1, Some(50), 2010).unwrap();
    assert_eq!(third[0].receive_count, 3);
    assert!(s.receive("q", 1, None, 2059).unwrap().is_empty());
    assert_eq!(s.receive("q", 1, None, 2060).unwrap().len(), 1);
}

#[test]
fn stale_receipt_does_not_delete() {
    let (_d, s) = open();
    s.create_queue("q", cfg(|c| c.visibility_ms = 100), 0).unwrap();
    s.send_one("q", &msg("a"), 0).unwrap();
    let old = s.receive("q", 1, None, 0).unwrap().remove(0).receipt;
    let new = s.receive("q", 1, None, 100).unwrap().remove(0).receipt;
    assert!(!s.delete("q", &old).unwrap());
    assert!(!s.change_visibility("q", &old, 0, 100).unwrap());
    assert_eq!(s.stats("q", 100).unwrap().in_flight, 1);
    assert!(s.delete("q", &new).unwrap());
    assert!(!s.delete("q", &new).unwrap());
    assert_eq!(total(s.stats("q", 100).unwrap()), 0);
    assert!(matches!(s.delete("q", "nonsense"), Err(EventError::Invalid(_))));
    assert!(matches!(s.delete("nope", &new), Err(EventError::NoQueue(_))));
}

#[test]
fn delete_batch_answers_per_receipt() {
    let (_d, s) = open();
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    s.send("q", &[msg("a"), msg("b")], 0).unwrap();
    let got = s.receive("q", 10, None, 0).unwrap();
    let receipts: Vec<String> = got.iter().map(|r| r.receipt.clone()).collect();
    let mut with_dup = receipts.clone();
    with_dup.push(receipts[0].clone());
    assert_eq!(s.delete_batch("q", &with_dup).unwrap(), vec![true, true, false]);
    assert!(matches!(s.delete_batch("q", &[]), Err(EventError::Invalid(_))));
    assert_eq!(total(s.stats("q", 0).unwrap()), 0);
}

#[test]
fn max_receives_moves_to_dlq_and_redrive_brings_back() {
    let (_d, s) = open();
    s.create_queue("dead", QueueConfig::default(), 0).unwrap();
    let c = cfg(|c| {
        c.visibility_ms = 10;
        c.max_receives = 2;
        c.dlq = Some("dead".into());
    });
    s.create_queue("q", c, 0).unwrap();
    let id = s.send_one("q", &msg("poison"), 1).unwrap();
    s.send_one("q", &msg("fine"), 2).unwrap();
    assert_eq!(bodies(&s.receive("q", 1, None, 100).unwrap()), ["poison"]);
    assert_eq!(s.receive("q", 1, None, 200).unwrap()[0].receive_count, 2);
    // The third receive dead-letters it and delivers the next message instead.
    let got = s.receive("q", 10, None, 300).unwrap();
    assert_eq!(bodies(&got), ["fine"]);
    assert_eq!(total(s.stats("q", 300).unwrap()), 1);
    let dead = s.receive("dead", 10, None, 400).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id.as_str(), dead[0].receive_count, dead[0].sent_ms), (id.as_str(), 1, 1));
    assert_eq!(dead[0].first_received_ms, 400);

    assert_eq!(s.redrive("dead", "q", 500).unwrap(), 1);
    assert_eq!(total(s.stats("dead", 500).unwrap()), 0);
    // The stale receipt from the DLQ is dead.
    assert!(!s.delete("dead", &dead[0].receipt).unwrap());
    let back = s.receive("q", 10, Some(1000), 500).unwrap();
    let poison = back.iter().find(|r| r.id == id).unwrap();
    assert_eq!((poison.receive_count, poison.sent_ms), (1, 1));
    assert_eq!(s.redrive("dead", "q", 600).unwrap(), 0);
    assert!(matches!(s.redrive("q", "q", 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.redrive("nope", "q", 0), Err(EventError::NoQueue(_))));
}

#[test]
fn max_receives_without_dlq_keeps_delivering() {
    let (_d, s) = open();
    s.create_queue("q", cfg(|c| c.max_receives = 1), 0).unwrap();
    s.send_one("q", &msg("a"), 0).unwrap();
    for n in 1..=4u32 {
        let got = s.receive("q", 1, Some(0), u64::from(n)).unwrap();
        assert_eq!(got[0].receive_count, n);
    }
}

#[test]
fn queue_definitions_are_checked() {
    let (_d, s) = open();
    let info = s.create_queue("q", QueueConfig::default(), 7).unwrap();
    assert_eq!(s.create_queue("q", QueueConfig::default(), 9).unwrap(), info);
    let other = cfg(|c| c.visibility_ms = 1);
    let e = s.create_queue("q", other.clone(), 9).unwrap_err();
    assert!(matches!(e, EventError::Exists(_)) && e.status() == 409, "{e}");
    assert!(matches!(s.create_queue("yun.fn.x", QueueConfig::default(), 0), Err(EventError::Invalid(_))));
    s.create_internal_queue(&function_queue("x"), QueueConfig::default(), 0).unwrap();
    for bad in ["", "a b", "ü", &"x".repeat(81)] {
        assert!(
            matches!(s.create_queue(bad, QueueConfig::default(), 0), Err(EventError::Invalid(_))),
            "{bad}"
        );
    }
    s.create_queue(&"x".repeat(80), QueueConfig::default(), 0).unwrap();
    s.create_queue("a.b-c_D9", QueueConfig::default(), 0).unwrap();
    let dlq_to = |d: &str| cfg(|c| c.dlq = Some(d.into()));
    assert!(matches!(s.create_queue("r", dlq_to("missing"), 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.create_queue("r", dlq_to("r"), 0), Err(EventError::Invalid(_))));
    s.create_queue("f", cfg(|c| c.fifo = true), 0).unwrap();
    assert!(matches!(s.create_queue("r", dlq_to("f"), 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.create_queue("r", cfg(|c| c.max_receives = 0), 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.create_queue("r", cfg(|c| c.max_message_bytes = 0), 0), Err(EventError::Invalid(_))));
    s.create_queue("r", dlq_to("q"), 0).unwrap();
    // q -> r would close a cycle r -> q -> r.
    assert!(matches!(s.update_queue("q", dlq_to("r")), Err(EventError::Invalid(_))));
    assert!(matches!(s.update_queue("q", cfg(|c| c.fifo = true)), Err(EventError::Invalid(_))));
    assert_eq!(s.update_queue("q", other.clone()).unwrap().config, other);
    let e = s.delete_queue("q").unwrap_err();
    assert!(matches!(e, EventError::InUse(_)), "{e}");
    assert!(s.delete_queue("r").unwrap());
    assert!(s.delete_queue("q").unwrap());
    assert!(!s.delete_queue("q").unwrap());
    assert!(s.queue("q").unwrap().is_none());
    let names: Vec<String> = s.queues().unwrap().into_iter().map(|q| q.name).collect();
    assert!(names.contains(&"f".to_string()) && names.contains(&"yun.fn.x".to_string()));
}

#[test]
fn delete_queue_takes_its_messages() {
    let (_d, s) = open();
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    s.send("q", &[msg("a"), msg("b")], 0).unwrap();
    s.receive("q", 1, None, 0).unwrap();
    assert!(s.delete_queue("q").unwrap());
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    assert_eq!(total(s.stats("q", 0).unwrap()), 0);
    assert!(s.receive("q", 10, None, 100_000).unwrap().is_empty());
    assert_eq!(s.next_change_ms("q").unwrap(), None);
}

#[test]
fn fifo_order_per_group() {
    let (_d, s) = open();
    s.create_queue("f", cfg(|c| c.fifo = true), 0).unwrap();
    let send = |body: &str, g: &str| s.send_one("f", &msg(body).group(g), 0).unwrap();
    send("a1", "a");
    send("b1", "b");
    send("a2", "a");
    send("b2", "b");
    send("a3", "a");
    let got = s.receive("f", 10, Some(100), 0).unwrap();
    assert_eq!(bodies(&got), ["a1", "b1"]);
    assert_eq!(got[0].group.as_deref(), Some("a"));
    // Both groups have a message in flight: nothing more, though a2, b2, a3 are visible.
    assert!(s.receive("f", 10, None, 1).unwrap().is_empty());
    assert_eq!(s.stats("f", 1).unwrap().visible, 3);
    assert!(s.delete("f", &got[0].receipt).unwrap());
    let next = s.receive("f", 10, Some(100), 2).unwrap();
    assert_eq!(bodies(&next), ["a2"]);
    // b1's timeout passes: b1 again (not b2), and a2 is still in flight.
    let redelivered = s.receive("f", 10, Some(100), 100).unwrap();
    assert_eq!(bodies(&redelivered), ["b1"]);
    assert_eq!(redelivered[0].receive_count, 2);
    assert!(s.change_visibility("f", &next[0].receipt, 0, 101).unwrap());
    let a2 = s.receive("f", 10, Some(100), 101).unwrap();
    assert_eq!(bodies(&a2), ["a2"]);
    assert_eq!(a2[0].receive_count, 2);
    assert!(s.delete("f", &a2[0].receipt).unwrap());
    assert!(s.delete("f", &redelivered[0].receipt).unwrap());
    assert_eq!(bodies(&s.receive("f", 10, None, 102).unwrap()), ["b2", "a3"]);
}

#[test]
fn fifo_dead_lettering_keeps_group_order() {
    let (_d, s) = open();
    s.create_queue("fd", cfg(|c| c.fifo = true), 0).unwrap();
    let c = cfg(|c| {
        c.fifo = true;
        c.max_receives = 1;
        c.dlq = Some("fd".into());
    });
    s.create_queue("f", c, 0).unwrap();
    s.send("f", &[msg("1").group("g"), msg("2").group("g"), msg("3").group("g")], 0).unwrap();
    assert_eq!(bodies(&s.receive("f", 10, Some(0), 0).unwrap()), ["1"]);
    // 1 goes to the DLQ, and 2 (now the head) is delivered in the same receive.
    assert_eq!(bodies(&s.receive("f", 10, Some(0), 1).unwrap()), ["2"]);
    assert_eq!(bodies(&s.receive("f", 10, Some(0), 2).unwrap()), ["3"]);
    assert!(s.receive("f", 10, Some(0), 3).unwrap().is_empty());
    assert_eq!(bodies(&s.receive("fd", 10, Some(0), 4).unwrap()), ["1"]);
    assert_eq!(s.redrive("fd", "f", 5).unwrap(), 3);
    assert_eq!(bodies(&s.receive("f", 10, Some(0), 6).unwrap()), ["1"]);
}

#[test]
fn groups_and_dedup_ids_follow_fifo_ness() {
    let (_d, s) = open();
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    s.create_queue("f", cfg(|c| c.fifo = true), 0).unwrap();
    assert!(matches!(s.send_one("f", &msg("x"), 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.send_one("q", &msg("x").group("g"), 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.send_one("q", &msg("x").dedup_id("d"), 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.send_one("f", &msg("x").group("a b"), 0), Err(EventError::Invalid(_))));
    assert_eq!(total(s.stats("q", 0).unwrap()) + total(s.stats("f", 0).unwrap()), 0);
}

#[test]
fn dedup_within_five_minutes_and_after() {
    let (_d, s) = open();
    s.create_queue("f", cfg(|c| c.fifo = true), 0).unwrap();
    let m = msg("x").group("g").dedup_id("d1");
    let first = s.send_one("f", &m, 1000).unwrap();
    assert_eq!(s.send_one("f", &m, 1000 + DEDUP_WINDOW_MS - 1).unwrap(), first);
    assert_eq!(s.stats("f", 2000).unwrap().visible, 1);
    // Within one batch too.
    let batch =
        s.send("f", &[msg("y").group("g").dedup_id("d2"), msg("z").group("g").dedup_id("d2")], 2000).unwrap();
    assert_eq!(batch[0], batch[1]);
    assert_eq!(s.stats("f", 2000).unwrap().visible, 2);
    let later = s.send_one("f", &m, 1000 + DEDUP_WINDOW_MS).unwrap();
    assert_ne!(later, first);
    assert_eq!(s.stats("f", 1000 + DEDUP_WINDOW_MS).unwrap().visible, 3);
    // The new send opened a new window.
    assert_eq!(s.send_one("f", &m, 1000 + DEDUP_WINDOW_MS + 10).unwrap(), later);
}

#[test]
fn delays() {
    let (_d, s) = open();
    s.create_queue("q", cfg(|c| c.delay_ms = 5000), 0).unwrap();
    s.send_one("q", &msg("late"), 0).unwrap();
    s.send_one("q", &msg("now").delay_ms(0), 0).unwrap();
    assert_eq!(bodies(&s.receive("q", 10, None, 0).unwrap()), ["now"]);
    let st = s.stats("q", 10).unwrap();
    assert_eq!((st.visible, st.in_flight, st.delayed, st.oldest_age_ms), (0, 1, 1, Some(10)));
    assert!(s.receive("q", 10, None, 4999).unwrap().is_empty());
    assert_eq!(s.next_change_ms("q").unwrap(), Some(5000));
    assert_eq!(bodies(&s.receive("q", 10, None, 5000).unwrap()), ["late"]);
    assert!(matches!(s.send_one("q", &msg("x").delay_ms(MAX_DELAY_MS + 1), 0), Err(EventError::Invalid(_))));
}

#[test]
fn batch_limits_and_order() {
    let (_d, s) = open();
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    let eleven: Vec<NewMessage> = (0..11).map(|i| msg(&i.to_string())).collect();
    assert!(matches!(s.send("q", &eleven, 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.send("q", &[], 0), Err(EventError::Invalid(_))));
    let ids = s.send("q", &eleven[..10], 0).unwrap();
    assert_eq!(ids.len(), 10);
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 10);
    assert!(matches!(s.receive("q", 0, None, 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.receive("q", 11, None, 0), Err(EventError::Invalid(_))));
    assert!(matches!(s.receive("q", 1, Some(MAX_VISIBILITY_MS + 1), 0), Err(EventError::Invalid(_))));
    assert_eq!(bodies(&s.receive("q", 3, None, 0).unwrap()), ["0", "1", "2"]);
    assert_eq!(bodies(&s.receive("q", 10, None, 0).unwrap()), ["3", "4", "5", "6", "7", "8", "9"]);
    assert!(matches!(s.send_one("nope", &msg("x"), 0), Err(EventError::NoQueue(_))));
}

#[test]
fn sizes() {
    let (_d, s) = open();
    s.create_queue("q", cfg(|c| c.max_message_bytes = 100), 0).unwrap();
    s.send_one("q", &NewMessage::new(vec![0u8; 100]), 0).unwrap();
    let e = s.send_one("q", &NewMessage::new(vec![0u8; 101]), 0).unwrap_err();
    assert!(matches!(e, EventError::TooLarge { bytes: 101, max: 100 }), "{e}");
    assert_eq!(e.status(), 413);
    // Attributes count, and one bad message refuses the whole batch.
    let with_attr = NewMessage::new(vec![0u8; 96]).attribute("ab", "cde");
    assert!(matches!(s.send("q", &[msg("ok"), with_attr], 0), Err(EventError::TooLarge { bytes: 101, .. })));
    assert_eq!(s.stats("q", 0).unwrap().visible, 1);
    s.create_queue("big", QueueConfig::default(), 0).unwrap();
    s.send_one("big", &NewMessage::new(vec![7u8; DEFAULT_MAX_MESSAGE_BYTES]), 0).unwrap();
    assert_eq!(s.receive("big", 1, None, 0).unwrap()[0].body, vec![7u8; DEFAULT_MAX_MESSAGE_BYTES]);
    assert!(s.send_one("big", &NewMessage::new(vec![7u8; DEFAULT_MAX_MESSAGE_BYTES + 1]), 0).is_err());
}

#[test]
fn retention_drops_expired_messages() {
    let (_d, s) = open();
    s.create_queue("q", cfg(|c| c.retention_ms = 1000), 0).unwrap();
    s.send_one("q", &msg("old"), 0).unwrap();
    s.send_one("q", &msg("new"), 500).unwrap();
    assert_eq!(s.stats("q", 999).unwrap().visible, 2);
    assert_eq!(s.stats("q", 1000).unwrap().visible, 1);
    assert_eq!(bodies(&s.receive("q", 10, None, 1000).unwrap()), ["new"]);
    // Gone from the file, not just hidden: at an earlier clock it would still count.
    assert_eq!(s.stats("q", 0).unwrap().in_flight, 1);
    assert_eq!(total(s.stats("q", 0).unwrap()), 1);
}

#[test]
fn purge_empties_the_queue() {
    let (_d, s) = open();
    s.create_queue("f", cfg(|c| c.fifo = true), 0).unwrap();
    s.send("f", &[msg("1").group("g"), msg("2").group("g")], 0).unwrap();
    s.receive("f", 1, None, 0).unwrap();
    assert_eq!(s.purge("f").unwrap(), 2);
    assert_eq!(total(s.stats("f", 0).unwrap()), 0);
    s.send_one("f", &msg("3").group("g"), 1).unwrap();
    assert_eq!(bodies(&s.receive("f", 10, None, 1).unwrap()), ["3"]);
}

#[test]
fn topics_fan_out_in_one_transaction() {
    let (_d, s) = open();
    s.create_queue("q1", QueueConfig::default(), 0).unwrap();
    s.create_queue("q2", QueueConfig::default(), 0).unwrap();
    s.create_queue("small", cfg(|c| c.max_message_bytes = 4), 0).unwrap();
    s.create_queue("f", cfg(|c| c.fifo = true), 0).unwrap();
    let t = s.create_topic("t", 3).unwrap();
    assert_eq!(s.create_topic("t", 9).unwrap(), t);
    assert!(matches!(s.create_topic("yun.t", 0), Err(EventError::Invalid(_))));
    assert_eq!(s.publish("t", b"dropped", &BTreeMap::new(), 0).unwrap().1, 0);
    assert!(s.subscribe("t", Subscription::Queue("q1".into())).unwrap());
    assert!(s.subscribe("t", Subscription::Queue("q2".into())).unwrap());
    assert!(!s.subscribe("t", Subscription::Queue("q2".into())).unwrap());
    assert!(s.subscribe("t", Subscription::Function("fn1".into())).unwrap());
    assert!(matches!(s.subscribe("t", Subscription::Queue("f".into())), Err(EventError::Invalid(_))));
    assert!(matches!(s.subscribe("t", Subscription::Queue("nope".into())), Err(EventError::NoQueue(_))));
    assert!(matches!(s.subscribe("nope", Subscription::Queue("q1".into())), Err(EventError::NoTopic(_))));
    assert!(matches!(s.subscribe("t", Subscription::Function("a b".into())), Err(EventError::Invalid(_))));

    let attrs = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let (id, n) = s.publish("t", b"hello", &attrs, 10).unwrap();
    assert_eq!(n, 3);
    let fq = function_queue("fn1");
    assert_eq!(s.queue(&fq).unwrap().unwrap().config, QueueConfig::default());
    for q in ["q1", "q2", fq.as_str()] {
        let got = s.receive(q, 10, None, 10).unwrap();
        assert_eq!(got.len(), 1, "{q}");
        assert_eq!(
            (got[0].id.as_str(), got[0].body.as_slice(), &got[0].attributes),
            (id.as_str(), &b"hello"[..], &attrs)
        );
    }
    // Too large for one subscriber: no subscriber gets it.
    assert!(s.subscribe("t", Subscription::Queue("small".into())).unwrap());
    assert!(matches!(s.publish("t", b"hello", &BTreeMap::new(), 20), Err(EventError::TooLarge { .. })));
    for q in ["q1", "q2", fq.as_str(), "small"] {
        assert!(s.receive(q, 10, None, 20).unwrap().is_empty(), "{q}");
    }
    assert!(matches!(s.publish("nope", b"x", &BTreeMap::new(), 0), Err(EventError::NoTopic(_))));

    assert!(matches!(s.delete_queue("q1"), Err(EventError::InUse(_))));
    assert!(s.unsubscribe("t", &Subscription::Queue("q1".into())).unwrap());
    assert!(!s.unsubscribe("t", &Subscription::Queue("q1".into())).unwrap());
    assert!(s.delete_queue("q1").unwrap());
    assert_eq!(s.topic("t").unwrap().unwrap().subscriptions.len(), 3);
    assert_eq!(s.topics().unwrap().len(), 1);
    assert!(s.delete_topic("t").unwrap());
    assert!(!s.delete_topic("t").unwrap());
    assert!(s.delete_queue("q2").unwrap());
}

fn record(id: &str, function: &str, status: InvocationStatus, created_ms: u64) -> InvocationRecord {
    InvocationRecord {
        id: id.into(),
        function: function.into(),
        status,
        attempts: 1,
        created_ms,
        updated_ms: created_ms,
        last_error: None,
        last_status: None,
    }
}

#[test]
fn invocation_records_bounded_and_filtered() {
    let (_d, s) = open();
    let s = s.with_invocation_limit(3);
    use InvocationStatus::*;
    for (i, st) in [Succeeded, Failed, Succeeded, Failed, Queued].into_iter().enumerate() {
        s.put_invocation(&record(&format!("f{i}"), "f", st, i as u64)).unwrap();
    }
    s.put_invocation(&record("g0", "g", Failed, 0)).unwrap();
    let ids = |v: Vec<InvocationRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.invocations("f", None, 10).unwrap()), ["f4", "f3", "f2"]);
    assert!(s.invocation("f0").unwrap().is_none() && s.invocation("f1").unwrap().is_none());
    assert_eq!(ids(s.invocations("f", Some(Failed), 10).unwrap()), ["f3"]);
    assert_eq!(ids(s.invocations("f", None, 2).unwrap()), ["f4", "f3"]);
    assert_eq!(ids(s.invocations("g", None, 10).unwrap()), ["g0"]);
    // Updating a record (same id) does not count twice.
    let mut f4 = record("f4", "f", Failed, 4);
    f4.attempts = 3;
    f4.last_error = Some("boom".into());
    f4.last_status = Some(500);
    s.put_invocation(&f4).unwrap();
    assert_eq!(s.invocation("f4").unwrap().unwrap(), f4);
    assert_eq!(ids(s.invocations("f", Some(Failed), 10).unwrap()), ["f4", "f3"]);
    assert_eq!(ids(s.invocations("f", None, 10).unwrap()), ["f4", "f3", "f2"]);
    s.put_invocation(&record("f5", "f", DeadLettered, 5)).unwrap();
    assert_eq!(ids(s.invocations("f", None, 10).unwrap()), ["f5", "f4", "f3"]);
    assert_eq!(s.delete_invocations("f").unwrap(), 3);
    assert!(s.invocations("f", None, 10).unwrap().is_empty());
    assert_eq!(ids(s.invocations("g", None, 10).unwrap()), ["g0"]);
    // A prefix of another function's name does not leak into it.
    s.put_invocation(&record("x", "g2", Failed, 1)).unwrap();
    assert_eq!(ids(s.invocations("g", None, 10).unwrap()), ["g0"]);
    assert!(matches!(s.put_invocation(&record("", "f", Failed, 0)), Err(EventError::Invalid(_))));
    assert_eq!("dead-lettered".parse::<InvocationStatus>().unwrap(), DeadLettered);
    assert_eq!("failed".parse::<InvocationStatus>().unwrap(), Failed);
    assert!("nope".parse::<InvocationStatus>().is_err());
    assert_eq!(serde_json::to_string(&DeadLettered).unwrap(), "\"dead_lettered\"");
}

#[test]
fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let (kept, taken) = {
        let s = EventStore::open(&path).unwrap();
        s.create_queue("q", cfg(|c| c.visibility_ms = 1000), 0).unwrap();
        s.create_topic("t", 0).unwrap();
        s.subscribe("t", Subscription::Queue("q".into())).unwrap();
        s.put_invocation(&record("i", "f", InvocationStatus::Running, 1)).unwrap();
        let taken = s.send_one("q", &msg("taken"), 0).unwrap();
        let kept = s.send_one("q", &msg("kept"), 1).unwrap();
        assert_eq!(s.receive("q", 1, None, 10).unwrap()[0].id, taken);
        (kept, taken)
    };
    let s = EventStore::open(&path).unwrap();
    assert_eq!(s.queue("q").unwrap().unwrap().config.visibility_ms, 1000);
    assert_eq!(s.topic("t").unwrap().unwrap().subscriptions, [Subscription::Queue("q".into())]);
    assert_eq!(s.invocation("i").unwrap().unwrap().status, InvocationStatus::Running);
    let now = s.receive("q", 10, None, 500).unwrap();
    assert_eq!(now.iter().map(|r| &r.id).collect::<Vec<_>>(), [&kept]);
    let later = s.receive("q", 10, None, 1010).unwrap();
    assert_eq!((later.len(), later[0].id.as_str(), later[0].receive_count), (1, taken.as_str(), 2));
    // Sequence numbers keep counting after reopen: a new message sorts after the old ones.
    s.send_one("q", &msg("newest"), 1020).unwrap();
    assert_eq!(bodies(&s.receive("q", 10, Some(0), 5000).unwrap()), ["taken", "kept", "newest"]);
}

#[test]
fn cron_ticks_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    {
        let s = EventStore::open(&path).unwrap();
        s.create_queue("q", QueueConfig::default(), 0).unwrap();
        assert_eq!(s.cron_cursor("f/a").unwrap(), None);
        assert!(s.fire_cron("f/a", 1000, "q", &msg("t1000"), 1001).unwrap());
        assert!(!s.fire_cron("f/a", 1000, "q", &msg("again"), 1002).unwrap());
        assert!(!s.fire_cron("f/a", 900, "q", &msg("older"), 1003).unwrap());
        // A failed send leaves the cursor where it was.
        assert!(matches!(s.fire_cron("f/a", 2000, "nope", &msg("x"), 2001), Err(EventError::NoQueue(_))));
        assert_eq!(s.cron_cursor("f/a").unwrap(), Some(1000));
        assert!(s.fire_cron("f/b", 5, "q", &msg("b5"), 6).unwrap());
        assert!(s.fire_cron("f2/a", 5, "q", &msg("f2"), 6).unwrap());
    }
    let s = EventStore::open(&path).unwrap();
    assert!(!s.fire_cron("f/a", 1000, "q", &msg("after reopen"), 3000).unwrap());
    assert!(s.fire_cron("f/a", 2000, "q", &msg("t2000"), 3000).unwrap());
    assert_eq!(bodies(&s.receive("q", 10, None, 3000).unwrap()), ["t1000", "b5", "f2", "t2000"]);
    assert_eq!(s.delete_cron_cursors("f/").unwrap(), 2);
    assert_eq!(s.cron_cursor("f/a").unwrap(), None);
    assert_eq!(s.cron_cursor("f2/a").unwrap(), Some(5));
}

#[test]
fn errors_map_to_http_statuses() {
    let cases = [
        (EventError::NoQueue("q".into()), 404),
        (EventError::NoTopic("t".into()), 404),
        (EventError::Exists("x".into()), 409),
        (EventError::InUse("x".into()), 409),
        (EventError::Invalid("x".into()), 400),
        (EventError::TooLarge { bytes: 2, max: 1 }, 413),
        (EventError::Db("x".into()), 500),
        (EventError::Corrupt("x".into()), 500),
    ];
    for (e, status) in cases {
        assert_eq!(e.status(), status, "{e}");
    }
}

#[test]
fn serde_shapes() {
    let c: QueueConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, QueueConfig::default());
    let c: QueueConfig = serde_json::from_str(r#"{"fifo": true, "dlq": "d"}"#).unwrap();
    assert!(c.fifo && c.dlq.as_deref() == Some("d") && c.visibility_ms == 30_000);
    assert!(serde_json::from_str::<QueueConfig>(r#"{"visibility": 1}"#).is_err());
    assert_eq!(serde_json::to_string(&Subscription::Queue("x".into())).unwrap(), r#"{"queue":"x"}"#);
    let f: Subscription = serde_json::from_str(r#"{"function":"f"}"#).unwrap();
    assert_eq!(f, Subscription::Function("f".into()));
    assert_eq!(function_queue("f"), "yun.fn.f");
    assert_eq!(function_dlq("f"), "yun.fn.f.dlq");
}

// --- The async wrapper, on tokio's paused clock. ---

fn paused_queues(store: EventStore) -> Queues {
    let start = tokio::time::Instant::now();
    Queues::with_clock(Arc::new(store), move || start.elapsed().as_millis() as u64)
}

#[tokio::test(start_paused = true)]
async fn long_poll_returns_when_a_message_arrives() {
    let (_d, s) = open();
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    let queues = paused_queues(s);
    let sender = queues.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        sender.send("q", vec![msg("hi")]).await.unwrap();
    });
    let start = tokio::time::Instant::now();
    let got = queues.receive_wait("q", 10, None, Duration::from_secs(20)).await.unwrap();
    assert_eq!(bodies(&got), ["hi"]);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(4), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn long_poll_returns_empty_after_the_wait() {
    let (_d, s) = open();
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    let queues = paused_queues(s);
    let start = tokio::time::Instant::now();
    let got = queues.receive_wait("q", 10, None, Duration::from_secs(5)).await.unwrap();
    assert!(got.is_empty());
    assert!(start.elapsed() >= Duration::from_secs(5), "{:?}", start.elapsed());
    let e = queues.receive_wait("q", 10, None, Duration::from_secs(21)).await.unwrap_err();
    assert!(matches!(e, EventError::Invalid(_)));
    assert!(matches!(
        queues.receive_wait("nope", 1, None, Duration::ZERO).await,
        Err(EventError::NoQueue(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn long_poll_wakes_when_a_delay_or_timeout_ends() {
    let (_d, s) = open();
    s.create_queue("q", cfg(|c| c.visibility_ms = 4000), 0).unwrap();
    let queues = paused_queues(s);
    queues.send("q", vec![msg("later").delay_ms(2000)]).await.unwrap();
    let start = tokio::time::Instant::now();
    let got = queues.receive_wait("q", 1, None, Duration::from_secs(20)).await.unwrap();
    assert_eq!(bodies(&got), ["later"]);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100), "{waited:?}");
    // Not deleted: it comes back when its visibility timeout ends.
    let got = queues.receive_wait("q", 1, None, Duration::from_secs(20)).await.unwrap();
    assert_eq!(got[0].receive_count, 2);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(6) && waited < Duration::from_millis(6100), "{waited:?}");
    // change_visibility wakes a waiter too.
    let receipt = got[0].receipt.clone();
    let other = queues.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(other.change_visibility("q", &receipt, 0).await.unwrap());
    });
    let before = tokio::time::Instant::now();
    let got = queues.receive_wait("q", 1, None, Duration::from_secs(20)).await.unwrap();
    assert_eq!(got[0].receive_count, 3);
    assert!(before.elapsed() < Duration::from_millis(1100), "{:?}", before.elapsed());
}

// --- Random operations against a simple model. ---

#[derive(Clone, Debug)]
struct ModelMsg {
    id: String,
    group: Option<String>,
    visible_at: u64,
    receive_count: u32,
    generation: u64,
}

struct Model {
    fifo: bool,
    max_receives: u32,
    visibility: u64,
    main: Vec<ModelMsg>,
    dlq: Vec<ModelMsg>,
    /// Every delivery gets a new generation, as every receive makes a new receipt.
    deliveries: u64,
    dead_lettered: usize,
}

impl Model {
    fn eligible(&self, i: usize) -> bool {
        !self.fifo || !self.main[..i].iter().any(|m| m.group == self.main[i].group)
    }

    /// The ids and receive counts delivered.
    fn receive(&mut self, max: usize, visibility: Option<u64>, now: u64) -> Vec<(String, u32, u64)> {
        let mut out = Vec::new();
        let mut i = 0;
        while out.len() < max && i < self.main.len() {
            if !(self.eligible(i) && self.main[i].visible_at <= now) {
                i += 1;
                continue;
            }
            if self.main[i].receive_count >= self.max_receives {
                self.dead_lettered += 1;
                let mut m = self.main.remove(i);
                m.receive_count = 0;
                m.visible_at = now;
                // Receipts from before the move no longer match.
                m.generation = 0;
                self.dlq.push(m);
                continue;
            }
            let m = &mut self.main[i];
            m.receive_count += 1;
            self.deliveries += 1;
            m.generation = self.deliveries;
            m.visible_at = now + visibility.unwrap_or(self.visibility);
            out.push((m.id.clone(), m.receive_count, m.generation));
            i += 1;
        }
        out
    }

    fn find(&self, id: &str, generation: u64) -> Option<usize> {
        self.main.iter().position(|m| m.id == id && m.generation == generation)
    }

    fn stats(&self, now: u64) -> (u64, u64, u64) {
        let mut s = (0, 0, 0);
        for m in &self.main {
            if m.visible_at <= now {
                s.0 += 1;
            } else if m.receive_count > 0 {
                s.1 += 1;
            } else {
                s.2 += 1;
            }
        }
        s
    }

    fn earliest_invisible(&self, now: u64) -> Option<u64> {
        (0..self.main.len())
            .filter(|&i| self.eligible(i) && self.main[i].visible_at > now)
            .map(|i| self.main[i].visible_at)
            .min()
    }

    fn any_receivable(&self, now: u64) -> bool {
        (0..self.main.len()).any(|i| self.eligible(i) && self.main[i].visible_at <= now)
    }
}

/// How often the interesting paths ran, so the loop is known to exercise them.
#[derive(Default, Debug)]
struct Coverage {
    delivered: usize,
    redelivered: usize,
    dead_lettered: usize,
    redriven: usize,
    deleted: usize,
    stale: usize,
    changed: usize,
}

fn run_model(seed: u64, fifo: bool, steps: usize, cov: &mut Coverage) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (_d, s) = open();
    let visibility = 1000;
    let max_receives = 3;
    s.create_queue("dlq", cfg(|c| c.fifo = fifo), 0).unwrap();
    let c = cfg(|c| {
        c.fifo = fifo;
        c.visibility_ms = visibility;
        c.max_receives = max_receives;
        c.dlq = Some("dlq".into());
    });
    s.create_queue("q", c, 0).unwrap();
    let mut model = Model {
        fifo,
        max_receives,
        visibility,
        main: Vec::new(),
        dlq: Vec::new(),
        deliveries: 0,
        dead_lettered: 0,
    };
    // (store receipt, message id, generation in the model)
    let mut receipts: Vec<(String, String, u64)> = Vec::new();
    let mut now = 0u64;
    for step in 0..steps {
        let ctx = format!("seed {seed} fifo {fifo} step {step} now {now}");
        match rng.u8(0..100) {
            0..=29 => {
                let n = rng.usize(1..=3);
                let mut batch = Vec::new();
                for _ in 0..n {
                    let mut m = msg("m");
                    if fifo {
                        m = m.group(["a", "b", "c"][rng.usize(0..3)]);
                    }
                    if rng.bool() {
                        m = m.delay_ms(rng.u64(0..2000));
                    }
                    batch.push(m);
                }
                let ids = s.send("q", &batch, now).unwrap();
                for (id, m) in ids.into_iter().zip(&batch) {
                    model.main.push(ModelMsg {
                        id,
                        group: m.group.clone(),
                        visible_at: now + m.delay_ms.unwrap_or(0),
                        receive_count: 0,
                        generation: 0,
                    });
                }
            }
            30..=54 => {
                let max = rng.usize(1..=10);
                let vis = if rng.bool() { Some(rng.u64(0..3000)) } else { None };
                let got = s.receive("q", max, vis, now).unwrap();
                let want = model.receive(max, vis, now);
                let got_ids: Vec<(String, u32)> =
                    got.iter().map(|r| (r.id.clone(), r.receive_count)).collect();
                let want_ids: Vec<(String, u32)> = want.iter().map(|w| (w.0.clone(), w.1)).collect();
                assert_eq!(got_ids, want_ids, "{ctx}");
                cov.delivered += got.len();
                cov.redelivered += got.iter().filter(|r| r.receive_count > 1).count();
                for (r, w) in got.iter().zip(&want) {
                    receipts.push((r.receipt.clone(), w.0.clone(), w.2));
                }
            }
            55..=69 if !receipts.is_empty() => {
                let (receipt, id, generation) = receipts[rng.usize(0..receipts.len())].clone();
                let want = model.find(&id, generation).map(|i| model.main.remove(i)).is_some();
                assert_eq!(s.delete("q", &receipt).unwrap(), want, "{ctx}");
                if want {
                    cov.deleted += 1;
                } else {
                    cov.stale += 1;
                }
            }
            70..=79 if !receipts.is_empty() => {
                let (receipt, id, generation) = receipts[rng.usize(0..receipts.len())].clone();
                let vis = if rng.bool() { 0 } else { rng.u64(0..3000) };
                let want = match model.find(&id, generation) {
                    Some(i) => {
                        model.main[i].visible_at = now + vis;
                        true
                    }
                    None => false,
                };
                assert_eq!(s.change_visibility("q", &receipt, vis, now).unwrap(), want, "{ctx}");
                cov.changed += usize::from(want);
            }
            80..=82 => {
                let moved = std::mem::take(&mut model.dlq);
                assert_eq!(s.redrive("dlq", "q", now).unwrap(), moved.len() as u64, "{ctx}");
                cov.redriven += moved.len();
                for mut m in moved {
                    m.receive_count = 0;
                    m.visible_at = now;
                    model.main.push(m);
                }
            }
            _ => now += rng.u64(0..1500),
        }
        let st = s.stats("q", now).unwrap();
        assert_eq!((st.visible, st.in_flight, st.delayed), model.stats(now), "{ctx}");
        assert_eq!(total(s.stats("dlq", now).unwrap()), model.dlq.len() as u64, "{ctx}");
        match s.next_change_ms("q").unwrap() {
            Some(at) if at <= now => assert!(model.any_receivable(now), "{ctx}"),
            other => assert_eq!(other, model.earliest_invisible(now), "{ctx}"),
        }
    }
    cov.dead_lettered += model.dead_lettered;
}

fn assert_covered(cov: &Coverage) {
    let counts = [
        cov.delivered,
        cov.redelivered,
        cov.dead_lettered,
        cov.redriven,
        cov.deleted,
        cov.stale,
        cov.changed,
    ];
    assert!(counts.iter().all(|&n| n > 0), "the random loop missed a path: {cov:?}");
}

#[test]
fn random_operations_match_a_model_standard() {
    let mut cov = Coverage::default();
    for seed in 0..6 {
        run_model(seed, false, 300, &mut cov);
    }
    assert_covered(&cov);
}

#[test]
fn random_operations_match_a_model_fifo() {
    let mut cov = Coverage::default();
    for seed in 100..106 {
        run_model(seed, true, 300, &mut cov);
    }
    assert_covered(&cov);
}

#[test]
fn delete_with_record_settles_a_message_and_its_record_in_one_step() {
    let (_dir, s) = open();
    s.create_queue("q", QueueConfig::default(), 0).unwrap();
    s.send("q", &[NewMessage::new("x")], 0).unwrap();
    let got = s.receive("q", 1, None, 1).unwrap();
    let record = InvocationRecord {
        id: "inv-1".into(),
        function: "f".into(),
        status: InvocationStatus::Succeeded,
        attempts: 1,
        created_ms: 0,
        updated_ms: 2,
        last_error: None,
        last_status: Some(200),
    };
    assert!(s.delete_with_record("q", &got[0].receipt, &record).unwrap());
    assert_eq!(s.stats("q", 3).unwrap().in_flight, 0, "the message is gone");
    assert_eq!(s.invocation("inv-1").unwrap(), Some(record.clone()));
    // A stale receipt deletes nothing, but the record is still written.
    let again = InvocationRecord { updated_ms: 5, ..record };
    assert!(!s.delete_with_record("q", &got[0].receipt, &again).unwrap());
    assert_eq!(s.invocation("inv-1").unwrap().unwrap().updated_ms, 5);
}
