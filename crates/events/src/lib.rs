//! Durable events for yun: SQS-like queues (standard and FIFO, visibility timeouts, dead-letter
//! queues, delays, deduplication), topics that fan a message out to queues, and the records of
//! asynchronous invocations, all in one embedded redb file (`data_dir/events.redb`).
//!
//! Every mutating call returns only once its transaction is committed, and redb fsyncs on
//! commit: whatever a caller acknowledges to its sender after a call returns survives a crash.
//! Delivery is at least once; a consumer deletes what it has handled with the receipt it got.
//!
//! This crate does not invoke functions, speak HTTP or know cron: the platform's dispatcher
//! drives it. The synchronous API ([`EventStore`]) takes the time as `now_ms` arguments so tests
//! drive a fake clock; [`Queues`] wraps it for async callers (wall clock, long polling).
//!
//! It also keeps fire-once cursors for scheduled sends ([`EventStore::fire_cron`]): opaque keys,
//! no cron expressions.
//!
//! Names (queues and topics) are 1..=80 characters of `[A-Za-z0-9_.-]`; FIFO-ness is a
//! configuration flag, not a name suffix. Names starting with [`INTERNAL_PREFIX`] are reserved
//! for the platform's own queues ([`function_queue`], [`function_dlq`]), made with
//! [`EventStore::create_internal_queue`].

mod cursors;
mod invocations;
mod queues;
mod topics;
mod wait;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use invocations::{InvocationRecord, InvocationStatus};
pub use topics::{Subscription, TopicInfo};
pub use wait::{MAX_WAIT, Queues};

/// Prefix of the names reserved for the platform's internal queues.
pub const INTERNAL_PREFIX: &str = "yun.";
/// Most messages one `send`, `receive` or `delete_batch` handles.
pub const MAX_BATCH: usize = 10;
/// How long a FIFO deduplication id is remembered after the send that introduced it.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Longest visibility timeout (SQS's limit).
pub const MAX_VISIBILITY_MS: u64 = 12 * 60 * 60 * 1000;
/// Longest delay of a message or a queue (SQS's limit).
pub const MAX_DELAY_MS: u64 = 15 * 60 * 1000;
/// Longest retention period (SQS's limit).
pub const MAX_RETENTION_MS: u64 = 14 * 24 * 60 * 60 * 1000;
/// The largest `max_message_bytes` a queue may be configured with.
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 1024 * 1024;
/// Default (and topic) message size limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Default number of invocation records kept per function.
pub const DEFAULT_INVOCATION_LIMIT: usize = 10_000;
/// Longest name of a queue or topic.
pub const MAX_NAME_LEN: usize = 80;

/// The internal queue a function's asynchronous invocations wait in.
pub fn function_queue(function: &str) -> String {
    format!("{INTERNAL_PREFIX}fn.{function}")
}

/// The dead-letter queue of [`function_queue`].
pub fn function_dlq(function: &str) -> String {
    format!("{INTERNAL_PREFIX}fn.{function}.dlq")
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("no queue named {0}")]
    NoQueue(String),
    #[error("no topic named {0}")]
    NoTopic(String),
    /// The name is taken by a queue or topic with a different configuration.
    #[error("{0}")]
    Exists(String),
    /// The queue is another queue's dead-letter queue or a topic's subscriber.
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Invalid(String),
    #[error("message is {bytes} bytes (body and attributes); the queue accepts at most {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("event store: {0}")]
    Db(String),
    #[error("event store holds a record it cannot read: {0}")]
    Corrupt(String),
}

impl EventError {
    /// The HTTP status an API answering with this error should use.
    pub fn status(&self) -> u16 {
        match self {
            EventError::NoQueue(_) | EventError::NoTopic(_) => 404,
            EventError::Exists(_) | EventError::InUse(_) => 409,
            EventError::Invalid(_) => 400,
            EventError::TooLarge { .. } => 413,
            EventError::Db(_) | EventError::Corrupt(_) => 500,
        }
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for EventError {
            fn from(e: $t) -> Self { EventError::Db(e.to_string()) }
        }
    )*};
}
db_err!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

pub type Result<T, E = EventError> = std::result::Result<T, E>;

/// How a queue behaves. Every field has a default, so `{}` is a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// How long a received message stays invisible to other receivers (≤ 12 h).
    pub visibility_ms: u64,
    /// A message already received this often goes to `dlq` at its next receive instead of
    /// being delivered; without a `dlq` it is delivered on (1..=1000).
    pub max_receives: u32,
    /// Dead-letter queue: must exist, must not be this queue, same FIFO-ness.
    pub dlq: Option<String>,
    /// FIFO: every message has a group; within a group, delivery is in send order and one at a
    /// time.
    pub fifo: bool,
    /// Delay of messages sent without their own (≤ 15 min).
    pub delay_ms: u64,
    /// Messages older than this (since they entered this queue) are dropped (1 ms..=14 days).
    pub retention_ms: u64,
    /// Largest body plus attributes (keys and values) accepted (1..=1 MiB).
    pub max_message_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility_ms: 30_000,
            max_receives: 5,
            dlq: None,
            fifo: false,
            delay_ms: 0,
            retention_ms: 4 * 24 * 60 * 60 * 1000,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl QueueConfig {
    /// Checks the ranges of the fields (not whether `dlq` exists: the store does that).
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(EventError::Invalid(m));
        if self.visibility_ms > MAX_VISIBILITY_MS {
            return invalid(format!("visibility_ms must be at most {MAX_VISIBILITY_MS} (12 hours)"));
        }
        if !(1..=1000).contains(&self.max_receives) {
            return invalid("max_receives must be between 1 and 1000".into());
        }
        if self.delay_ms > MAX_DELAY_MS {
            return invalid(format!("delay_ms must be at most {MAX_DELAY_MS} (15 minutes)"));
        }
        if !(1..=MAX_RETENTION_MS).contains(&self.retention_ms) {
            return invalid(format!("retention_ms must be between 1 and {MAX_RETENTION_MS} (14 days)"));
        }
        if !(1..=MAX_MESSAGE_BYTES_LIMIT).contains(&self.max_message_bytes) {
            return invalid(format!("max_message_bytes must be between 1 and {MAX_MESSAGE_BYTES_LIMIT}"));
        }
        if let Some(dlq) = &self.dlq {
            check_name("dead-letter queue", dlq)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    pub config: QueueConfig,
    pub created_ms: u64,
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    pub body: Vec<u8>,
    /// Overrides the queue's `delay_ms` (≤ 15 min).
    pub delay_ms: Option<u64>,
    /// Required on FIFO queues, refused on standard ones.
    pub group: Option<String>,
    /// FIFO only: a second send with the same id within [`DEDUP_WINDOW_MS`] stores nothing and
    /// returns the first message's id.
    pub dedup_id: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

impl NewMessage {
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        NewMessage { body: body.into(), ..Default::default() }
    }
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }
    pub fn delay_ms(mut self, delay_ms: u64) -> Self {
        self.delay_ms = Some(delay_ms);
        self
    }
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    /// Deletes the message or changes its visibility; only the receipt of the latest delivery
    /// does.
    pub receipt: String,
    pub body: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub group: Option<String>,
    /// Deliveries so far, this one included.
    pub receive_count: u32,
    /// When the message was first sent (kept through dead-lettering and redrive).
    pub sent_ms: u64,
    /// When it was first delivered from the queue it is in now.
    pub first_received_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Receivable now (for FIFO: including messages waiting behind their group's head).
    pub visible: u64,
    /// Received and not yet visible again.
    pub in_flight: u64,
    /// Not received yet and still within their delay.
    pub delayed: u64,
    /// Age of the message that entered the queue first.
    pub oldest_age_ms: Option<u64>,
}

/// Checks a queue or topic name; `what` names it in the error.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
        return Err(EventError::Invalid(format!(
            "{what} name {name:?} must be 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ - ."
        )));
    }
    Ok(())
}

pub(crate) fn check_not_reserved(what: &str, name: &str) -> Result<()> {
    if name.starts_with(INTERNAL_PREFIX) {
        return Err(EventError::Invalid(format!(
            "{what} names starting with {INTERNAL_PREFIX:?} are reserved for the platform"
        )));
    }
    Ok(())
}

pub(crate) const QUEUES: TableDefinition<&str, &[u8]> = TableDefinition::new("queues");
/// Counters; "seq" numbers messages in send order across all queues.
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// The event store on redb. Blocking: each call is one transaction (writes fsync on commit).
pub struct EventStore {
    db: Database,
    invocation_limit: usize,
    /// Long pollers of each queue, woken after a commit that may have made a message receivable.
    notifiers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl EventStore {
    /// Opens (creating if missing) the store in the file at `path`.
    pub fn open(path: &Path) -> Result<EventStore> {
        let db = Database::create(path)?;
        // Create the tables up front so read transactions never meet a missing table.
        let txn = db.begin_write()?;
        txn.open_table(QUEUES)?;
        txn.open_table(COUNTERS)?;
        queues::create_tables(&txn)?;
        cursors::create_tables(&txn)?;
        topics::create_tables(&txn)?;
        invocations::create_tables(&txn)?;
        txn.commit()?;
        Ok(EventStore { db, invocation_limit: DEFAULT_INVOCATION_LIMIT, notifiers: Mutex::default() })
    }

    /// Keeps at most `limit` invocation records per function (at least 1).
    pub fn with_invocation_limit(mut self, limit: usize) -> Self {
        self.invocation_limit = limit.max(1);
        self
    }

    /// The [`Notify`] that commits making a message receivable in `queue` wake (with
    /// `notify_waiters`; enable the `Notified` before checking the queue).
    pub fn notifier(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.notifiers.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(queue.to_string()).or_default().clone()
    }

    pub(crate) fn wake(&self, queue: &str) {
        let map = self.notifiers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(queue) {
            n.notify_waiters();
        }
    }

    pub(crate) fn forget_notifier(&self, queue: &str) {
        let mut map = self.notifiers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.remove(queue) {
            // Waiters see the queue gone at their next receive.
            n.notify_waiters();
        }
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| EventError::Corrupt(e.to_string()))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("event records always serialize")
}

/// The smallest string greater than every string equal to `s`: with it, `(s, ..)..(after(s), ..)`
/// ranges over exactly the composite keys whose first part is `s`.
pub(crate) fn after(s: &str) -> String {
    format!("{s}\0")
}

#[cfg(test)]
mod tests;
