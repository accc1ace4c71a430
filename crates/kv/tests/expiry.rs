//! Expiry with a manual clock: lazy invisibility, TTL replies, EXPIRE rules, the sweep; and
//! one test in real time.

mod common;

use std::time::Duration;

use common::{b, bs, open};
use yun_kv::*;

fn px(ms: i64) -> SetOptions {
    SetOptions { expire: Some(Expire::Millis(ms)), ..Default::default() }
}

#[tokio::test]
async fn expired_keys_are_invisible_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, clock) = open(dir.path()).await;
    db.set_with("k", "v", px(1500)).await.unwrap();
    db.hset("h", vec![(b("f"), b("v"))]).await.unwrap();
    db.expire("h", Expire::Millis(1000), ExpireCondition::Always).await.unwrap();
    assert_eq!(db.pttl("k").await.unwrap(), 1500);
    assert_eq!(db.ttl("k").await.unwrap(), 2, "TTL rounds as Redis does");
    clock.advance(Duration::from_millis(1000));
    assert_eq!(db.hget("h", "f").await.unwrap(), None);
    assert_eq!(db.ttl("h").await.unwrap(), -2);
    assert_eq!(db.get(b"k").await.unwrap(), Some(b("v")));
    clock.advance(Duration::from_millis(500));
    assert_eq!(db.get(b"k").await.unwrap(), None);
    assert_eq!(db.exists(bs(&["k", "h"])).await.unwrap(), 0);
    assert_eq!(db.pttl("k").await.unwrap(), -2);
    // Writes see it absent too: NX succeeds, INCR starts from zero.
    let nx = SetOptions { condition: SetCondition::IfAbsent, ..Default::default() };
    assert!(db.set_with("k", "new", nx).await.unwrap());
    assert_eq!(db.ttl("k").await.unwrap(), -1);
}

#[tokio::test]
async fn set_expiry_options() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, clock) = open(dir.path()).await;
    let now = 1_700_000_000_000i64;
    let ex = |s| SetOptions { expire: Some(Expire::Seconds(s)), ..Default::default() };
    db.set_with("k", "v", ex(10)).await.unwrap();
    assert_eq!(db.ttl("k").await.unwrap(), 10);
    // KEEPTTL keeps it, a plain SET clears it.
    db.set_with("k", "v2", SetOptions { keep_ttl: true, ..Default::default() }).await.unwrap();
    assert_eq!(db.ttl("k").await.unwrap(), 10);
    db.set("k", "v3").await.unwrap();
    assert_eq!(db.ttl("k").await.unwrap(), -1);
    let at = |ms| SetOptions { expire: Some(Expire::AtMillis(ms)), ..Default::default() };
    db.set_with("k", "v", at(now + 2500)).await.unwrap();
    assert_eq!(db.pttl("k").await.unwrap(), 2500);
    let exat = SetOptions { expire: Some(Expire::AtSeconds(now / 1000 + 7)), ..Default::default() };
    db.set_with("k", "v", exat).await.unwrap();
    assert_eq!(db.ttl("k").await.unwrap(), 7);
    // An absolute time in the past: SET succeeds and leaves no key.
    assert!(db.set_with("k", "v", at(now - 1)).await.unwrap());
    assert_eq!(db.get(b"k").await.unwrap(), None);
    for bad in [ex(0), ex(-1), px(0), at(0), ex(i64::MAX), px(i64::MAX)] {
        let e = db.set_with("k", "v", bad).await.unwrap_err();
        assert_eq!(e.redis_message(), "ERR invalid expire time in 'set' command", "{bad:?}");
    }
    clock.advance(Duration::from_secs(1));
}

#[tokio::test]
async fn expire_persist_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    let always = ExpireCondition::Always;
    assert!(!db.expire("none", Expire::Seconds(10), always).await.unwrap());
    db.set("k", "v").await.unwrap();
    assert!(!db.persist("k").await.unwrap());
    assert!(db.expire("k", Expire::Seconds(100), ExpireCondition::Nx).await.unwrap());
    assert!(!db.expire("k", Expire::Seconds(50), ExpireCondition::Nx).await.unwrap());
    assert!(!db.expire("k", Expire::Seconds(50), ExpireCondition::Gt).await.unwrap());
    assert!(db.expire("k", Expire::Seconds(200), ExpireCondition::Gt).await.unwrap());
    assert!(db.expire("k", Expire::Seconds(20), ExpireCondition::Lt).await.unwrap());
    assert!(db.expire("k", Expire::Seconds(30), ExpireCondition::Xx).await.unwrap());
    assert_eq!(db.ttl("k").await.unwrap(), 30);
    assert!(db.persist("k").await.unwrap());
    assert_eq!(db.ttl("k").await.unwrap(), -1);
    assert!(!db.expire("k", Expire::Seconds(30), ExpireCondition::Xx).await.unwrap());
    assert!(
        !db.expire("k", Expire::Seconds(30), ExpireCondition::Gt).await.unwrap(),
        "no expiry is infinite"
    );
    assert!(db.expire("k", Expire::Seconds(30), ExpireCondition::Lt).await.unwrap());
    // Values keep their expiry through INCR, APPEND and RENAME.
    db.set_with("n", "1", px(5000)).await.unwrap();
    db.incr("n").await.unwrap();
    db.append("n", "0").await.unwrap();
    db.rename("n", "m").await.unwrap();
    assert_eq!(db.pttl("m").await.unwrap(), 5000);
    assert_eq!(db.get(b"m").await.unwrap(), Some(b("20")));
    // A time in the past deletes the key and answers 1.
    assert!(db.expire("m", Expire::Seconds(-1), always).await.unwrap());
    assert_eq!(db.get(b"m").await.unwrap(), None);
    db.set("k", "v").await.unwrap();
    assert!(db.expire("k", Expire::AtSeconds(1), always).await.unwrap());
    assert_eq!(db.exists(bs(&["k"])).await.unwrap(), 0);
    db.set("k", "v").await.unwrap();
    let e = db.expire("k", Expire::Seconds(i64::MAX), always).await.unwrap_err();
    assert_eq!(e.redis_message(), "ERR invalid expire time in 'expire' command");
    let e = db.expire("k", Expire::Millis(i64::MAX), always).await.unwrap_err();
    assert_eq!(e.redis_message(), "ERR invalid expire time in 'pexpire' command");
}

#[tokio::test]
async fn the_sweep_deletes_expired_keys_through_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(1_000_000));
    let config = Config { sweep_batch: 7, ..common::config(&clock) };
    let kv = Kv::open(dir.path(), config).unwrap();
    kv.create_store("app", true).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    for i in 0..20 {
        db.set_with(format!("k{i}"), "v", px(100 + i)).await.unwrap();
    }
    db.set("forever", "v").await.unwrap();
    assert_eq!(db.dbsize().await.unwrap(), 21);
    clock.advance(Duration::from_secs(1));
    // DBSIZE counts keys not yet swept, as Redis does; the sweep takes 7 per tick.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while db.dbsize().await.unwrap() > 1 {
        assert!(std::time::Instant::now() < deadline, "the sweep did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let info = kv.store_info("app").unwrap();
    assert_eq!(info.keys, 1);
    // Each swept key left an expire record, oldest expiry first (readable once committed:
    // memory shows the deletion a commit earlier).
    let mut changes = kv.changes("app", 0, 100).unwrap();
    while changes.len() < 41 {
        assert!(std::time::Instant::now() < deadline, "the sweep's last commit did not come");
        tokio::time::sleep(Duration::from_millis(5)).await;
        changes = kv.changes("app", 0, 100).unwrap();
    }
    let expired: Vec<_> =
        changes.iter().filter(|c| c.kind == ChangeKind::Expire).map(|c| c.key.clone()).collect();
    assert_eq!(expired, (0..20).map(|i| b(&format!("k{i}"))).collect::<Vec<_>>());
    kv.close().await.unwrap();
    // And they are gone on disk.
    let kv = Kv::open(dir.path(), common::config(&clock)).unwrap();
    assert_eq!(kv.db("app", 0).unwrap().dbsize().await.unwrap(), 1);
}

#[tokio::test]
async fn real_time_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { sweep_interval: Duration::from_millis(20), ..Config::default() };
    let kv = Kv::open(dir.path(), config).unwrap();
    kv.create_store("app", false).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    db.set_ttl("short", "v", Duration::from_millis(150)).await.unwrap();
    db.set("long", "v").await.unwrap();
    assert_eq!(db.get(b"short").await.unwrap(), Some(b("v")));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(db.get(b"short").await.unwrap(), None);
    assert_eq!(db.dbsize().await.unwrap(), 1, "swept, not just hidden");
}
