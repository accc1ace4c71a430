//! Hashes, lists and sets with Redis's replies; an emptied collection is no key.

mod common;

use common::{b, bs, open};
use yun_kv::*;

#[tokio::test]
async fn hashes() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    assert_eq!(db.hset("h", vec![(b("a"), b("1")), (b("b"), b("2"))]).await.unwrap(), 2);
    assert_eq!(db.hset("h", vec![(b("a"), b("10")), (b("c"), b("3"))]).await.unwrap(), 1);
    assert_eq!(db.hget("h", "a").await.unwrap(), Some(b("10")));
    assert_eq!(db.hget("h", "zz").await.unwrap(), None);
    assert_eq!(db.hget("none", "a").await.unwrap(), None);
    assert_eq!(db.hmget("h", bs(&["a", "x", "c"])).await.unwrap(), vec![Some(b("10")), None, Some(b("3"))]);
    assert_eq!(db.hmget("none", bs(&["a"])).await.unwrap(), vec![None]);
    assert_eq!(db.hgetall("h").await.unwrap(), vec![(b("a"), b("10")), (b("b"), b("2")), (b("c"), b("3"))]);
    assert_eq!(db.hlen("h").await.unwrap(), 3);
    assert_eq!(db.hincrby("h", "a", -15).await.unwrap(), -5);
    assert_eq!(db.hincrby("h", "new", 7).await.unwrap(), 7);
    assert_eq!(db.hincrby("h2", "f", 1).await.unwrap(), 1);
    let e = db.hincrby("h", "b", i64::MAX).await.unwrap_err();
    assert_eq!(e.redis_message(), "ERR increment or decrement would overflow");
    db.hset("h", vec![(b("s"), b("x"))]).await.unwrap();
    assert_eq!(
        db.hincrby("h", "s", 1).await.unwrap_err().redis_message(),
        "ERR hash value is not an integer"
    );
    assert_eq!(db.hdel("h", bs(&["a", "b", "nope"])).await.unwrap(), 2);
    assert_eq!(db.hdel("none", bs(&["a"])).await.unwrap(), 0);
    assert_eq!(db.hdel("h", bs(&["c", "new", "s"])).await.unwrap(), 3);
    assert_eq!(db.key_type("h").await.unwrap(), None, "an emptied hash is gone");
    assert_eq!(db.hgetall("h").await.unwrap(), vec![]);
}

#[tokio::test]
async fn lists() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    assert_eq!(db.rpush("l", bs(&["a", "b"])).await.unwrap(), 2);
    assert_eq!(db.lpush("l", bs(&["x", "y"])).await.unwrap(), 4);
    assert_eq!(db.lrange("l", 0, -1).await.unwrap(), bs(&["y", "x", "a", "b"]));
    assert_eq!(db.lrange("l", -2, 100).await.unwrap(), bs(&["a", "b"]));
    assert_eq!(db.lrange("l", 2, 1).await.unwrap(), bs(&[]));
    assert_eq!(db.lrange("none", 0, -1).await.unwrap(), bs(&[]));
    assert_eq!(db.llen("l").await.unwrap(), 4);
    assert_eq!(db.lpop("l").await.unwrap(), Some(b("y")));
    assert_eq!(db.rpop("l").await.unwrap(), Some(b("b")));
    assert_eq!(db.lpop_count("l", 0).await.unwrap(), Some(vec![]));
    assert_eq!(db.rpop_count("l", 10).await.unwrap(), Some(bs(&["a", "x"])));
    assert_eq!(db.key_type("l").await.unwrap(), None, "an emptied list is gone");
    assert_eq!(db.lpop("l").await.unwrap(), None);
    assert_eq!(db.lpop_count("l", 2).await.unwrap(), None);
    assert_eq!(db.llen("l").await.unwrap(), 0);
    // A pipelined pop answers as Redis: the null array for a missing key with a count.
    let r = db.exec(vec![Op::LPop(b("l"), Some(1)), Op::RPop(b("l"), None)]).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap(), &Reply::NilArray);
    assert_eq!(r[1].as_ref().unwrap(), &Reply::Nil);
    assert!(matches!(db.lpush("l", vec![]).await, Err(KvError::InvalidArgument(_))));
    assert!(matches!(db.sadd("s", vec![]).await, Err(KvError::InvalidArgument(_))));
    assert!(matches!(db.hset("h", vec![]).await, Err(KvError::InvalidArgument(_))));
    assert_eq!(db.exists(bs(&["l", "s", "h"])).await.unwrap(), 0, "no empty collections");
}

#[tokio::test]
async fn sets() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    assert_eq!(db.sadd("s", bs(&["b", "a", "b"])).await.unwrap(), 2);
    assert_eq!(db.sadd("s", bs(&["a", "c"])).await.unwrap(), 1);
    assert_eq!(db.smembers("s").await.unwrap(), bs(&["a", "b", "c"]));
    assert!(db.sismember("s", "a").await.unwrap());
    assert!(!db.sismember("s", "z").await.unwrap());
    assert!(!db.sismember("none", "a").await.unwrap());
    assert_eq!(db.scard("s").await.unwrap(), 3);
    assert_eq!(db.srem("s", bs(&["a", "z"])).await.unwrap(), 1);
    assert_eq!(db.srem("none", bs(&["a"])).await.unwrap(), 0);
    assert_eq!(db.srem("s", bs(&["b", "c"])).await.unwrap(), 2);
    assert_eq!(db.exists(bs(&["s"])).await.unwrap(), 0, "an emptied set is gone");
    assert_eq!(db.smembers("s").await.unwrap(), bs(&[]));
}

#[tokio::test]
async fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (kv, db, _) = open(dir.path()).await;
        db.set("s", "v").await.unwrap();
        db.hset("h", vec![(b("f"), b("v"))]).await.unwrap();
        db.rpush("l", bs(&["1", "2", "3"])).await.unwrap();
        db.sadd("set", bs(&["m1", "m2"])).await.unwrap();
        db.set_ttl("t", "x", std::time::Duration::from_secs(100)).await.unwrap();
        let db3 = kv.db("app", 3).unwrap();
        db3.set("other", "db").await.unwrap();
        db.set("gone", "x").await.unwrap();
        db.delete("gone").await.unwrap();
        kv.close().await.unwrap();
        assert!(matches!(db.set("late", "x").await, Err(KvError::Closed)));
    }
    let (kv, db, _) = {
        let clock = std::sync::Arc::new(ManualClock::new(1_700_000_000_000));
        let kv = Kv::open(dir.path(), common::config(&clock)).unwrap();
        let db = kv.db("app", 0).unwrap();
        (kv, db, clock)
    };
    assert_eq!(db.get(b"s").await.unwrap(), Some(b("v")));
    assert_eq!(db.hgetall("h").await.unwrap(), vec![(b("f"), b("v"))]);
    assert_eq!(db.lrange("l", 0, -1).await.unwrap(), bs(&["1", "2", "3"]));
    assert_eq!(db.smembers("set").await.unwrap(), bs(&["m1", "m2"]));
    assert_eq!(db.ttl("t").await.unwrap(), 100);
    assert_eq!(db.get(b"gone").await.unwrap(), None);
    assert_eq!(db.dbsize().await.unwrap(), 5);
    assert_eq!(kv.db("app", 3).unwrap().get(b"other").await.unwrap(), Some(b("db")));
    assert_eq!(kv.db("app", 1).unwrap().dbsize().await.unwrap(), 0);
}
