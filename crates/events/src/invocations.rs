//! Records of asynchronous invocations, so an operator can list a function's recent (failed,
//! dead-lettered, ...) invocations. Bounded per function: the oldest are dropped on write.

use std::fmt;
use std::str::FromStr;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::{EventError, EventStore, Result, after, decode, encode};

const INVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("invocations");
/// (function, created_ms, id): a function's records in creation order.
const BY_FUNCTION: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("invocations_by_function");
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("invocation_counts");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(INVOCATIONS)?;
    txn.open_table(BY_FUNCTION)?;
    txn.open_table(COUNTS)?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    DeadLettered,
}

impl InvocationStatus {
    pub const ALL: [InvocationStatus; 5] = [
        InvocationStatus::Queued,
        InvocationStatus::Running,
        InvocationStatus::Succeeded,
        InvocationStatus::Failed,
        InvocationStatus::DeadLettered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvocationStatus::Queued => "queued",
            InvocationStatus::Running => "running",
            InvocationStatus::Succeeded => "succeeded",
            InvocationStatus::Failed => "failed",
            InvocationStatus::DeadLettered => "dead_lettered",
        }
    }
}

impl fmt::Display for InvocationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvocationStatus {
    type Err = EventError;
    /// Accepts the snake_case names, and `dead-lettered`.
    fn from_str(s: &str) -> Result<Self> {
        let normal = s.to_ascii_lowercase().replace('-', "_");
        InvocationStatus::ALL.into_iter().find(|st| st.as_str() == normal).ok_or_else(|| {
            EventError::Invalid(format!(
                "unknown invocation status {s:?}; expected one of queued, running, succeeded, failed, dead_lettered"
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    pub id: String,
    pub function: String,
    pub status: InvocationStatus,
    pub attempts: u32,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// HTTP status of the last attempt, if it got that far.
    #[serde(default)]
    pub last_status: Option<u16>,
}

impl EventStore {
    /// Inserts or replaces (by id) an invocation record; if the function then has more than the
    /// limit, its oldest records (by `created_ms`) are dropped in the same transaction.
    pub fn put_invocation(&self, record: &InvocationRecord) -> Result<()> {
        if record.id.is_empty() || record.function.is_empty() {
            return Err(EventError::Invalid("an invocation record needs an id and a function".into()));
        }
        let txn = self.db.begin_write()?;
        self.put_invocation_in(&txn, record)?;
        txn.commit()?;
        Ok(())
    }

    /// [`Self::put_invocation`] inside a transaction the caller commits.
    pub(crate) fn put_invocation_in(
        &self,
        txn: &redb::WriteTransaction,
        record: &InvocationRecord,
    ) -> Result<()> {
        {
            let mut records = txn.open_table(INVOCATIONS)?;
            let mut index = txn.open_table(BY_FUNCTION)?;
            let mut counts = txn.open_table(COUNTS)?;
            let old: Option<InvocationRecord> =
                records.get(record.id.as_str())?.map(|v| decode(v.value())).transpose()?;
            if let Some(old) = old {
                index.remove((old.function.as_str(), old.created_ms, old.id.as_str()))?;
                add_count(&mut counts, &old.function, -1)?;
            }
            records.insert(record.id.as_str(), encode(record).as_slice())?;
            index.insert((record.function.as_str(), record.created_ms, record.id.as_str()), ())?;
            let mut count = add_count(&mut counts, &record.function, 1)?;
            let f = record.function.as_str();
            let end = after(f);
            while count > self.invocation_limit as u64 {
                let oldest = match index.range((f, 0, "")..(end.as_str(), 0, ""))?.next() {
                    Some(entry) => {
                        let (k, _) = entry?;
                        let (_, created, id) = k.value();
                        (created, id.to_string())
                    }
                    None => break,
                };
                index.remove((f, oldest.0, oldest.1.as_str()))?;
                records.remove(oldest.1.as_str())?;
                count = add_count(&mut counts, f, -1)?;
            }
        }
        Ok(())
    }

    pub fn invocation(&self, id: &str) -> Result<Option<InvocationRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INVOCATIONS)?;
        table.get(id)?.map(|v| decode(v.value())).transpose()
    }

    /// A function's records, newest (by `created_ms`) first, optionally only those in `status`;
    /// at most `limit`.
    pub fn invocations(
        &self,
        function: &str,
        status: Option<InvocationStatus>,
        limit: usize,
    ) -> Result<Vec<InvocationRecord>> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(INVOCATIONS)?;
        let index = txn.open_table(BY_FUNCTION)?;
        let end = after(function);
        let mut out = Vec::new();
        for entry in index.range((function, 0, "")..(end.as_str(), 0, ""))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry?;
            let id = k.value().2;
            let Some(v) = records.get(id)? else {
                return Err(EventError::Corrupt(format!("invocation index names {id}, which is missing")));
            };
            let record: InvocationRecord = decode(v.value())?;
            if status.is_none_or(|s| s == record.status) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Drops every record of a function (when it is deleted); returns how many.
    pub fn delete_invocations(&self, function: &str) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let n = {
            let mut records = txn.open_table(INVOCATIONS)?;
            let mut index = txn.open_table(BY_FUNCTION)?;
            let end = after(function);
            let mut keys = Vec::new();
            for entry in index.range((function, 0, "")..(end.as_str(), 0, ""))? {
                let (k, _) = entry?;
                let (_, created, id) = k.value();
                keys.push((created, id.to_string()));
            }
            for (created, id) in &keys {
                index.remove((function, *created, id.as_str()))?;
                records.remove(id.as_str())?;
            }
            txn.open_table(COUNTS)?.remove(function)?;
            keys.len() as u64
        };
        txn.commit()?;
        Ok(n)
    }
}

fn add_count(counts: &mut redb::Table<'_, &'static str, u64>, function: &str, delta: i64) -> Result<u64> {
    let current = counts.get(function)?.map(|v| v.value()).unwrap_or(0);
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        counts.remove(function)?;
    } else {
        counts.insert(function, next)?;
    }
    Ok(next)
}
