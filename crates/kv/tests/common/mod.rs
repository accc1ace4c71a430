#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use yun_kv::{Config, Db, Kv, ManualClock};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn bs(items: &[&str]) -> Vec<Bytes> {
    items.iter().map(|s| b(s)).collect()
}

pub fn config(clock: &Arc<ManualClock>) -> Config {
    Config {
        clock: clock.clone(),
        group_commit: Duration::ZERO,
        sweep_interval: Duration::from_millis(10),
        ..Config::default()
    }
}

/// A fresh engine with one store "app", its database 0, and the manual clock it reads.
pub async fn open(dir: &Path) -> (Kv, Db, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let kv = Kv::open(dir, config(&clock)).unwrap();
    kv.create_store("app", false).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    (kv, db, clock)
}
