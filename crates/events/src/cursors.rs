//! Fire-once markers for scheduled sends: the dispatcher's cron loop asks to send a tick's
//! message only if that tick (or a later one) has not been sent for the schedule yet, and the
//! message and the marker commit together, so a crash between them can neither lose the tick
//! nor send it twice. The crate knows nothing of cron expressions; a key is opaque to it.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::{EventStore, NewMessage, Result};

/// Schedule key -> the latest tick sent (ms).
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cron_cursors");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(CURSORS)?;
    Ok(())
}

impl EventStore {
    /// Sends `message` to `queue` and records `tick_ms` as `key`'s latest tick, in one
    /// transaction; does nothing and returns `false` if `key` already has a tick at or after
    /// `tick_ms`.
    pub fn fire_cron(
        &self,
        key: &str,
        tick_ms: u64,
        queue: &str,
        message: &NewMessage,
        now_ms: u64,
    ) -> Result<bool> {
        let txn = self.db.begin_write()?;
        {
            let mut cursors = txn.open_table(CURSORS)?;
            if cursors.get(key)?.is_some_and(|v| v.value() >= tick_ms) {
                return Ok(false);
            }
            cursors.insert(key, tick_ms)?;
        }
        crate::queues::send_in(&txn, queue, std::slice::from_ref(message), now_ms)?;
        txn.commit()?;
        self.wake(queue);
        Ok(true)
    }

    /// The latest tick [`EventStore::fire_cron`] sent for `key`.
    pub fn cron_cursor(&self, key: &str) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CURSORS)?;
        Ok(table.get(key)?.map(|v| v.value()))
    }

    /// Forgets the cursors of every key starting with `prefix` (a removed function's
    /// schedules); returns how many.
    pub fn delete_cron_cursors(&self, prefix: &str) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let n = {
            let mut cursors = txn.open_table(CURSORS)?;
            let mut keys = Vec::new();
            for entry in cursors.range(prefix..)? {
                let key = entry?.0.value().to_string();
                if !key.starts_with(prefix) {
                    break;
                }
                keys.push(key);
            }
            for key in &keys {
                cursors.remove(key.as_str())?;
            }
            keys.len() as u64
        };
        txn.commit()?;
        Ok(n)
    }
}
