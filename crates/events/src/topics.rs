//! Topics: a publish writes a copy of the message into every subscribed queue, in one
//! transaction, so either every subscriber has it or none does.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::queues::{MsgTables, check_attributes, check_size, load_queue};
use crate::{
    DEFAULT_MAX_MESSAGE_BYTES, EventError, EventStore, QUEUES, QueueConfig, QueueInfo, Result, check_name,
    check_not_reserved, decode, encode, function_queue,
};

const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(TOPICS)?;
    Ok(())
}

/// Where a topic delivers: a queue, or a function's internal queue ([`function_queue`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subscription {
    Queue(String),
    Function(String),
}

impl Subscription {
    /// The queue a publish writes into for this subscription.
    pub fn queue_name(&self) -> String {
        match self {
            Subscription::Queue(q) => q.clone(),
            Subscription::Function(f) => function_queue(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub subscriptions: Vec<Subscription>,
    pub created_ms: u64,
}

fn load_topic(table: &impl ReadableTable<&'static str, &'static [u8]>, name: &str) -> Result<TopicInfo> {
    match table.get(name)? {
        Some(v) => decode(v.value()),
        None => Err(EventError::NoTopic(name.to_string())),
    }
}

/// A topic that has `queue` as a queue subscription, if any.
pub(crate) fn subscribing_topic(txn: &WriteTransaction, queue: &str) -> Result<Option<String>> {
    let topics = txn.open_table(TOPICS)?;
    for entry in topics.iter()? {
        let topic: TopicInfo = decode(entry?.1.value())?;
        if topic.subscriptions.iter().any(|s| matches!(s, Subscription::Queue(q) if q == queue)) {
            return Ok(Some(topic.name));
        }
    }
    Ok(None)
}

impl EventStore {
    /// Creates a topic, or returns the existing one.
    pub fn create_topic(&self, name: &str, now_ms: u64) -> Result<TopicInfo> {
        check_name("topic", name)?;
        check_not_reserved("topic", name)?;
        let txn = self.db.begin_write()?;
        let info = {
            let mut topics = txn.open_table(TOPICS)?;
            if let Some(v) = topics.get(name)? {
                return decode(v.value());
            }
            let info = TopicInfo { name: name.to_string(), subscriptions: Vec::new(), created_ms: now_ms };
            topics.insert(name, encode(&info).as_slice())?;
            info
        };
        txn.commit()?;
        Ok(info)
    }

    /// Deletes a topic and its subscriptions (not the subscribed queues); returns whether it
    /// existed.
    pub fn delete_topic(&self, name: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(TOPICS)?.remove(name)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    pub fn topic(&self, name: &str) -> Result<Option<TopicInfo>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TOPICS)?;
        table.get(name)?.map(|v| decode(v.value())).transpose()
    }

    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TOPICS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Adds a subscription; returns `false` if the topic already had it. A queue subscription
    /// needs an existing standard queue (a publish has no message group for a FIFO one); a
    /// function subscription's queue is made at the first publish that needs it.
    pub fn subscribe(&self, topic: &str, subscription: Subscription) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let added = {
            let mut topics = txn.open_table(TOPICS)?;
            let mut info = load_topic(&topics, topic)?;
            match &subscription {
                Subscription::Queue(q) => {
                    let queue = load_queue(&txn.open_table(QUEUES)?, q)?;
                    if queue.config.fifo {
                        return Err(EventError::Invalid(format!(
                            "queue {q} is FIFO; topics deliver to standard queues only"
                        )));
                    }
                }
                Subscription::Function(f) => {
                    check_name("function queue", &function_queue(f)).map_err(|_| {
                        EventError::Invalid(format!("{f:?} is not a function name a topic can deliver to"))
                    })?;
                }
            }
            if info.subscriptions.contains(&subscription) {
                false
            } else {
                info.subscriptions.push(subscription);
                topics.insert(topic, encode(&info).as_slice())?;
                true
            }
        };
        txn.commit()?;
        Ok(added)
    }

    /// Removes a subscription; returns whether the topic had it.
    pub fn unsubscribe(&self, topic: &str, subscription: &Subscription) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut topics = txn.open_table(TOPICS)?;
            let mut info = load_topic(&topics, topic)?;
            let before = info.subscriptions.len();
            info.subscriptions.retain(|s| s != subscription);
            let removed = info.subscriptions.len() != before;
            if removed {
                topics.insert(topic, encode(&info).as_slice())?;
            }
            removed
        };
        txn.commit()?;
        Ok(removed)
    }

    /// Writes a copy of the message into every subscribed queue in one transaction (a function
    /// subscription's queue is created with the default configuration if missing); returns the
    /// message id (shared by all copies) and the number of copies. A topic without subscribers
    /// accepts the message and keeps nothing. Too large for any subscriber: nothing is written.
    pub fn publish(
        &self,
        topic: &str,
        body: &[u8],
        attributes: &BTreeMap<String, String>,
        now_ms: u64,
    ) -> Result<(String, usize)> {
        check_attributes(attributes)?;
        check_size(body, attributes, DEFAULT_MAX_MESSAGE_BYTES)?;
        let id = uuid::Uuid::new_v4().to_string();
        let txn = self.db.begin_write()?;
        let targets = {
            let info = load_topic(&txn.open_table(TOPICS)?, topic)?;
            let mut queues = txn.open_table(QUEUES)?;
            let mut t = MsgTables::open(&txn)?;
            let mut targets = Vec::with_capacity(info.subscriptions.len());
            for sub in &info.subscriptions {
                let name = sub.queue_name();
                let queue = match (load_queue(&queues, &name), sub) {
                    (Err(EventError::NoQueue(_)), Subscription::Function(_)) => {
                        let created = QueueInfo {
                            name: name.clone(),
                            config: QueueConfig::default(),
                            created_ms: now_ms,
                        };
                        queues.insert(name.as_str(), encode(&created).as_slice())?;
                        created
                    }
                    (other, _) => other?,
                };
                if queue.config.fifo {
                    return Err(EventError::Invalid(format!(
                        "topic {topic} delivers to FIFO queue {name}, which needs a message group"
                    )));
                }
                check_size(body, attributes, queue.config.max_message_bytes)?;
                let meta = crate::queues::new_meta(&id, attributes, None, now_ms, queue.config.delay_ms);
                t.append(&name, false, &meta, body, now_ms)?;
                targets.push(name);
            }
            targets
        };
        txn.commit()?;
        for q in &targets {
            self.wake(q);
        }
        Ok((id, targets.len()))
    }
}
