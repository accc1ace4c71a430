//! Store management: names, create/list/delete, stats.

mod common;

use common::{b, bs, open};
use yun_kv::*;

#[tokio::test]
async fn names_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let (kv, _, _) = open(dir.path()).await;
    for bad in ["", "Shop", "a_b", "a.b", "a b", &"a".repeat(64), "ünï"] {
        assert!(matches!(kv.create_store(bad, false).await, Err(KvError::InvalidStoreName(_))), "{bad:?}");
    }
    for good in ["a", "shop", "my-app-2", "-", &"a".repeat(63)] {
        kv.create_store(good, false).await.unwrap();
    }
    assert!(matches!(kv.create_store("shop", false).await, Err(KvError::StoreExists(_))));
    assert!(matches!(kv.db("nope", 0), Err(KvError::NoSuchStore(_))));
}

#[tokio::test]
async fn create_list_delete_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let (kv, db, _) = open(dir.path()).await;
    kv.create_store("cache", false).await.unwrap();
    db.set("abc", "12345").await.unwrap();
    db.rpush("l", bs(&["x", "yy"])).await.unwrap();
    kv.db("app", 2).unwrap().set("k", "v").await.unwrap();
    let stores = kv.stores();
    assert_eq!(stores.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["app", "cache"]);
    let app = &stores[0];
    assert_eq!(app.keys, 3);
    // key + 9-byte header + payload: "abc"+5, "l"+(4+1)+(4+2), "k"+1.
    assert_eq!(app.bytes, (3 + 9 + 5) + (1 + 9 + 11) + (1 + 9 + 1));
    db.delete("l").await.unwrap();
    assert_eq!(kv.store_info("app").unwrap().bytes, (3 + 9 + 5) + (1 + 9 + 1));
    assert_eq!(kv.store_info("cache").unwrap().keys, 0);

    kv.delete_store("app").await.unwrap();
    assert!(matches!(db.get(b"abc").await, Err(KvError::NoSuchStore(_))));
    assert!(matches!(db.set("x", "y").await, Err(KvError::NoSuchStore(_))));
    assert!(matches!(kv.delete_store("app").await, Err(KvError::NoSuchStore(_))));
    // A new store of the same name starts empty.
    kv.create_store("app", false).await.unwrap();
    let fresh = kv.db("app", 0).unwrap();
    assert_eq!(fresh.get(b"abc").await.unwrap(), None);
    assert_eq!(kv.store_info("app").unwrap().bytes, 0);
    fresh.set("new", "1").await.unwrap();
    kv.close().await.unwrap();

    let kv = Kv::open(dir.path(), Config::default()).unwrap();
    assert_eq!(kv.stores().len(), 2);
    let db = kv.db("app", 0).unwrap();
    assert_eq!(db.get(b"abc").await.unwrap(), None, "the deleted store's keys are gone on disk");
    assert_eq!(db.get(b"new").await.unwrap(), Some(b("1")));
    assert_eq!(kv.db("app", 2).unwrap().dbsize().await.unwrap(), 0);
}

#[tokio::test]
async fn a_cache_without_fsync_still_persists_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config { durability: Durability::None, ..Config::default() };
    let kv = Kv::open(dir.path(), config()).unwrap();
    kv.create_store("cache", false).await.unwrap();
    let db = kv.db("cache", 0).unwrap();
    for i in 0..100 {
        db.set(format!("k{i}"), "v").await.unwrap();
    }
    kv.close().await.unwrap();
    let kv = Kv::open(dir.path(), config()).unwrap();
    assert_eq!(kv.db("cache", 0).unwrap().dbsize().await.unwrap(), 100);
    assert_eq!(kv.db("cache", 0).unwrap().get(b"k42").await.unwrap(), Some(b("v")));
}

#[tokio::test]
async fn dropping_every_handle_closes_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kv = Kv::open(dir.path(), Config::default()).unwrap();
        kv.create_store("app", false).await.unwrap();
        kv.db("app", 0).unwrap().set("k", "v").await.unwrap();
    }
    // The writer ends on its own once the last handle is gone; the file opens again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let kv = loop {
        match Kv::open(dir.path(), Config::default()) {
            Ok(kv) => break kv,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(kv.db("app", 0).unwrap().get(b"k").await.unwrap(), Some(b("v")));
}

#[test]
fn configs_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        Config { max_value_bytes: 2 << 30, ..Config::default() },
        Config { max_key_bytes: 2 << 20, ..Config::default() },
        Config { max_batch: 0, ..Config::default() },
    ] {
        assert!(matches!(Kv::open(dir.path(), config), Err(KvError::InvalidArgument(_))));
    }
}
