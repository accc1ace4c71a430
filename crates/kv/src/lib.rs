//! yun's key-value engine: the durable stores behind the KV/cache service and the Redis
//! endpoint.
//!
//! A **store** (one per app, named like a bucket: 1-63 of `[a-z0-9-]`) holds databases 0..=15
//! (Redis's `SELECT`); keys and values are binary-safe bytes. Values are strings, hashes, lists
//! and sets with Redis's semantics (return values, `WRONGTYPE`, integer parsing and overflow,
//! expiry rules), so a Redis protocol layer maps commands onto [`Db`] one to one, and an HTTP
//! API uses the same handle (get/set with TTL, list by prefix, compare-and-swap, batches).
//!
//! It is not: the Redis wire protocol, an HTTP API, replication, eviction under memory
//! pressure (every key lives in memory), or pub/sub.
//!
//! # Reads, writes and group commit
//!
//! Every store is kept whole in memory (per database, 16 shards behind `RwLock`s); redb is the
//! durable copy, read only at open. Reads never wait for a commit or an fsync (at most, for
//! microseconds, for the writer's lock on one shard). Writes go
//! through one writer thread: it takes every queued operation, applies each to memory in order
//! (so INCR and compare-and-swap are atomic with no lost update), keeps taking work that
//! arrives within [`Config::group_commit`] of the group's start (default 200 µs; zero = commit
//! as soon as the queue is empty) up to [`Config::max_batch`] ops, then writes the final state
//! of every key the group touched into ONE redb transaction (as one record in the log table,
//! see below), commits it with `Durability::Immediate` (fsync), and only then answers every
//! caller of the group.
//! **Acknowledged means fsynced.** A write is visible to readers as soon as the writer applied
//! it, which can be up to one window plus an fsync before it is durable (like Redis with
//! `appendfsync everysec`, which also shows writes before they reach the disk). A batch from
//! one caller ([`Db::exec`], MSET, batch set) is in one group, so a crash never tears it. If a
//! commit fails, every caller of the group gets the error and memory is reloaded from disk.
//! [`Durability::None`] skips the per-group fsync (a pure cache; one durable commit a second).
//!
//! Expiry is absolute unix ms read from a [`Clock`]: an expired key is invisible at once (every
//! access checks), and the writer's periodic sweep deletes expired keys, a bounded number per
//! tick, through the same commit path.
//!
//! # Change stream
//!
//! A store created with `changes: true` appends one record per change ([`Change`]: a per-store
//! sequence number, database, key, set/delete/expire/flush, a string's new value) to an outbox
//! table in the same transaction as the change. Consumers read with [`Kv::changes`], wait with
//! [`Kv::watch_changes`], and [`Kv::ack`] what they processed; records every consumer acked,
//! or beyond [`Config::change_retention`] per store, are trimmed. Delivery is at least once,
//! in one total order per store. Off by default: it costs a B-tree insert per write (about
//! 15-35% of SET throughput in `examples/bench.rs`).
//!
//! # On disk
//!
//! One file, `kv.redb`, in the directory given to [`Kv::open`], with tables:
//! - `stores`: name → `[id u32 LE][created_ms u64 LE][changes u8]` (ids are never reused);
//! - `data`: `[store id u32 BE][db u8][key]` → `[type u8][expires_at u64 LE][payload]`, where
//!   type is 0 string / 1 hash / 2 list / 3 set, `expires_at` 0 means none, a string's payload
//!   is its bytes and a collection's is its elements as `[len u32 LE][bytes]` (a hash: field
//!   then value). A collection is rewritten whole when a group changes it, so very large
//!   collections make writes to them proportionally slower;
//! - `log`: record number → the final states a group left, each `[store id u32 LE][db u8]
//!   [key len u32 LE][key][entry len u32 LE, u32::MAX = removed][entry as in `data`]`. A commit
//!   then writes a few sequential pages instead of a B-tree leaf per key. Once the log names
//!   [`Config::checkpoint_keys`] keys or holds [`Config::checkpoint_bytes`] (and before a
//!   FLUSHDB, a store's deletion and at close) a checkpoint writes those keys' current state
//!   into `data` and empties `log`, in the same transaction as the group. Open loads `data`,
//!   then replays `log` in order;
//! - `changes`: (store id, seq) → `[kind u8][db u8][time u64][expires_at u64][has value u8]
//!   [key len u32][key][value]`; `seqs`: store id → last seq; `cursors`: (store id, consumer) →
//!   acked seq; `meta`: `next_store_id`.
//!
//! # Limits
//!
//! Keys up to [`DEFAULT_MAX_KEY_BYTES`] (64 KiB) and values (a string, or a collection's
//! encoded elements) up to [`DEFAULT_MAX_VALUE_BYTES`] (32 MiB) by default, both configurable;
//! past them a write fails with [`KvError::KeyTooLarge`] / [`KvError::ValueTooLarge`].
//!
//! # Measuring
//!
//! `cargo run --release -p yun-kv --example bench` drives 50 tasks of GET or SET (3-byte
//! values over 100k keys), one op per call or 16 (a pipeline), and prints ops/s with per-call
//! p50/p99/max for each durability setting; `WINDOWS_US=0,200,2000` compares windows.

mod clock;
mod engine;
mod error;
mod ops;
mod value;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    Change, ChangeKind, Config, DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES, Db, Durability, Kv, ListPage,
    ScanOptions, StoreInfo, validate_store_name,
};
pub use error::KvError;
pub use ops::{Expire, ExpireCondition, Op, Reply, SetCondition, SetItem, SetOptions};
pub use value::{DATABASES, KeyType};
