//! String commands and key commands with Redis's replies and errors.

mod common;

use bytes::Bytes;
use common::{b, bs, open};
use yun_kv::*;

#[tokio::test]
async fn get_set_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    assert_eq!(db.get(b"k").await.unwrap(), None);
    db.set("k", "v1").await.unwrap();
    assert_eq!(db.get(b"k").await.unwrap(), Some(b("v1")));

    let nx = SetOptions { condition: SetCondition::IfAbsent, ..Default::default() };
    let xx = SetOptions { condition: SetCondition::IfExists, ..Default::default() };
    assert!(!db.set_with("k", "v2", nx).await.unwrap());
    assert_eq!(db.get(b"k").await.unwrap(), Some(b("v1")));
    assert!(db.set_with("k", "v2", xx).await.unwrap());
    assert!(!db.set_with("absent", "x", xx).await.unwrap());
    assert_eq!(db.get(b"absent").await.unwrap(), None);
    assert!(db.set_with("fresh", "x", nx).await.unwrap());

    // SET ... GET gives the old value, NX GET gives it without writing.
    assert_eq!(db.set_get("k", "v3", SetOptions::default()).await.unwrap(), Some(b("v2")));
    assert_eq!(db.set_get("k", "v4", nx).await.unwrap(), Some(b("v3")));
    assert_eq!(db.get(b"k").await.unwrap(), Some(b("v3")));
    assert_eq!(db.set_get("new", "n", SetOptions::default()).await.unwrap(), None);

    // Binary-safe keys and values, the empty key and value included.
    db.set(Bytes::from_static(b"\x00\xff"), Bytes::from_static(b"\r\n\x00")).await.unwrap();
    assert_eq!(db.get(b"\x00\xff").await.unwrap(), Some(Bytes::from_static(b"\r\n\x00")));
    db.set("", "").await.unwrap();
    assert_eq!(db.get(b"").await.unwrap(), Some(Bytes::new()));
}

#[tokio::test]
async fn wrong_type_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    db.rpush("list", bs(&["a"])).await.unwrap();
    let e = db.get(b"list").await.unwrap_err();
    assert!(matches!(e, KvError::WrongType));
    assert_eq!(e.redis_message(), "WRONGTYPE Operation against a key holding the wrong kind of value");
    assert!(matches!(db.incr("list").await, Err(KvError::WrongType)));
    assert!(matches!(db.append("list", "x").await, Err(KvError::WrongType)));
    assert!(matches!(db.strlen("list").await, Err(KvError::WrongType)));
    assert!(matches!(db.set_get("list", "x", SetOptions::default()).await, Err(KvError::WrongType)));
    // The failed SET ... GET did not write.
    assert_eq!(db.key_type("list").await.unwrap(), Some(KeyType::List));
    // A plain SET overwrites any type; MGET answers nil for non-strings.
    db.set("s", "1").await.unwrap();
    assert_eq!(db.mget(bs(&["s", "list", "none"])).await.unwrap(), vec![Some(b("1")), None, None]);
    db.set("list", "now a string").await.unwrap();
    assert_eq!(db.key_type("list").await.unwrap(), Some(KeyType::String));
    assert!(matches!(db.hset("s", vec![(b("f"), b("v"))]).await, Err(KvError::WrongType)));
    assert!(matches!(db.sadd("s", bs(&["m"])).await, Err(KvError::WrongType)));
    assert!(matches!(db.lrange("s", 0, -1).await, Err(KvError::WrongType)));
}

#[tokio::test]
async fn counters() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    assert_eq!(db.incr("n").await.unwrap(), 1);
    assert_eq!(db.incr_by("n", 41).await.unwrap(), 42);
    assert_eq!(db.decr("n").await.unwrap(), 41);
    assert_eq!(db.decr_by("n", 50).await.unwrap(), -9);
    assert_eq!(db.get(b"n").await.unwrap(), Some(b("-9")));
    db.set("n", "9223372036854775806").await.unwrap();
    assert_eq!(db.incr("n").await.unwrap(), i64::MAX);
    let e = db.incr("n").await.unwrap_err();
    assert_eq!(e.redis_message(), "ERR increment or decrement would overflow");
    assert_eq!(db.get(b"n").await.unwrap(), Some(b("9223372036854775807")));
    let e = db.decr_by("m", i64::MIN).await.unwrap_err();
    assert_eq!(e.redis_message(), "ERR decrement would overflow");
    for bad in ["abc", "1.5", " 1", "01", "", "99999999999999999999"] {
        db.set("x", bad).await.unwrap();
        let e = db.incr("x").await.unwrap_err();
        assert_eq!(e.redis_message(), "ERR value is not an integer or out of range", "{bad:?}");
    }
}

#[tokio::test]
async fn append_strlen_del_exists_rename() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    assert_eq!(db.append("a", "hello").await.unwrap(), 5);
    assert_eq!(db.append("a", " world").await.unwrap(), 11);
    assert_eq!(db.strlen("a").await.unwrap(), 11);
    assert_eq!(db.strlen("none").await.unwrap(), 0);
    db.mset(vec![(b("x"), b("1")), (b("y"), b("2"))]).await.unwrap();
    assert_eq!(db.exists(bs(&["a", "x", "x", "none"])).await.unwrap(), 3);
    assert_eq!(db.del(bs(&["x", "y", "none", "x"])).await.unwrap(), 2);
    assert!(!db.delete("x").await.unwrap());

    assert!(matches!(db.rename("none", "b").await, Err(KvError::NoSuchKey)));
    assert_eq!(KvError::NoSuchKey.redis_message(), "ERR no such key");
    db.set("dst", "old").await.unwrap();
    db.rename("a", "dst").await.unwrap();
    assert_eq!(db.get(b"a").await.unwrap(), None);
    assert_eq!(db.get(b"dst").await.unwrap(), Some(b("hello world")));
    db.rename("dst", "dst").await.unwrap();
    assert_eq!(db.get(b"dst").await.unwrap(), Some(b("hello world")));
    assert_eq!(db.key_type("none").await.unwrap(), None);
    assert_eq!(db.dbsize().await.unwrap(), 1);
}

#[tokio::test]
async fn limits() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(1));
    let config = Config { max_key_bytes: 8, max_value_bytes: 16, ..common::config(&clock) };
    let kv = Kv::open(dir.path(), config).unwrap();
    kv.create_store("app", false).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    assert!(matches!(db.set("123456789", "v").await, Err(KvError::KeyTooLarge { len: 9, max: 8 })));
    let e = db.set("k", "x".repeat(17)).await.unwrap_err();
    assert!(matches!(e, KvError::ValueTooLarge { len: 17, max: 16 }));
    assert_eq!(e.http_status(), 413);
    db.set("k", "x".repeat(16)).await.unwrap();
    assert!(matches!(db.append("k", "y").await, Err(KvError::ValueTooLarge { .. })));
    // An MSET with one oversized value writes nothing.
    let r = db.mset(vec![(b("a"), b("1")), (b("b"), Bytes::from("x".repeat(17)))]).await;
    assert!(matches!(r, Err(KvError::ValueTooLarge { .. })));
    assert_eq!(db.get(b"a").await.unwrap(), None);
    // A collection's encoded elements count: 4 bytes of length per element.
    assert_eq!(db.rpush("l", bs(&["123456789012"])).await.unwrap(), 1);
    assert!(matches!(db.rpush("l", bs(&["1"])).await, Err(KvError::ValueTooLarge { .. })));
    assert_eq!(db.llen("l").await.unwrap(), 1);
}

#[tokio::test]
async fn pipelines_run_in_order_and_fail_per_op() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    let ops = vec![
        Op::Set { key: b("k"), value: b("1"), options: SetOptions::default() },
        Op::IncrBy(b("k"), 5),
        Op::Get(b("k")),
        Op::RPush(b("k"), bs(&["x"])),
        Op::Append(b("k"), b("!")),
        Op::Get(b("k")),
        Op::Type(b("k")),
        Op::Expire {
            key: b("k"),
            expire: Expire::Seconds(10),
            condition: ExpireCondition::Always,
            command: "expire",
        },
        Op::Ttl(b("k")),
    ];
    let r = db.exec(ops).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap(), &Reply::Ok);
    assert_eq!(r[1].as_ref().unwrap(), &Reply::Int(6));
    assert_eq!(r[2].as_ref().unwrap(), &Reply::Bulk(b("6")));
    assert!(matches!(r[3], Err(KvError::WrongType)));
    assert_eq!(r[4].as_ref().unwrap(), &Reply::Int(2));
    assert_eq!(r[5].as_ref().unwrap(), &Reply::Bulk(b("6!")));
    assert_eq!(r[6].as_ref().unwrap(), &Reply::Status("string"));
    assert_eq!(r[7].as_ref().unwrap(), &Reply::Int(1));
    assert_eq!(r[8].as_ref().unwrap(), &Reply::Int(10));
    // A batch of reads only is served from memory.
    let r = db.exec(vec![Op::Get(b("k")), Op::Exists(bs(&["k", "z"])), Op::DbSize]).await.unwrap();
    assert_eq!(
        r.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![Reply::Bulk(b("6!")), Reply::Int(1), Reply::Int(1)]
    );
}

#[tokio::test]
async fn cas_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    assert!(db.cas("k", None, "a", None).await.unwrap());
    assert!(!db.cas("k", None, "b", None).await.unwrap());
    assert!(!db.cas("k", Some(b("x")), "b", None).await.unwrap());
    assert!(db.cas("k", Some(b("a")), "b", None).await.unwrap());
    assert_eq!(db.get(b"k").await.unwrap(), Some(b("b")));
    db.sadd("set", bs(&["m"])).await.unwrap();
    assert!(matches!(db.cas("set", Some(b("m")), "b", None).await, Err(KvError::WrongType)));

    let items = vec![
        SetItem { key: b("a"), value: b("1"), ttl: None },
        SetItem { key: b("b"), value: b("2"), ttl: Some(std::time::Duration::from_secs(5)) },
    ];
    db.set_many(items).await.unwrap();
    assert_eq!(db.mget(bs(&["a", "b", "c"])).await.unwrap(), vec![Some(b("1")), Some(b("2")), None]);
    assert_eq!(db.ttl("b").await.unwrap(), 5);
    assert_eq!(db.ttl("a").await.unwrap(), -1);
    let bad = vec![
        SetItem { key: b("c"), value: b("3"), ttl: None },
        SetItem { key: b("d"), value: b("4"), ttl: Some(std::time::Duration::ZERO) },
    ];
    assert!(matches!(db.set_many(bad).await, Err(KvError::InvalidExpireTime("set"))));
    assert_eq!(db.get(b"c").await.unwrap(), None, "all or nothing");
}
