//! Access keys for the S3 API, kept in the store's database: an id and a secret (what SigV4
//! signs with), scoped to some buckets or all, read-only or read-write.

use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::engine::now_ms;

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("access_keys");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StorageError> {
    txn.open_table(KEYS)?;
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScope {
    /// `None`: every bucket, including ones made later.
    pub buckets: Option<Vec<String>>,
    pub read_only: bool,
}

impl KeyScope {
    pub fn allows_bucket(&self, bucket: &str) -> bool {
        self.buckets.as_ref().is_none_or(|b| b.iter().any(|x| x == bucket))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// 20 characters, like AWS's `AKIA...`.
    pub id: String,
    /// 40 characters; present only when the key is created (and to the S3 layer).
    pub secret: Option<String>,
    pub scope: KeyScope,
    pub created_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    secret: String,
    scope: KeyScope,
    created_ms: u64,
}

/// The access keys of one store (`ObjectStore::keys`).
#[derive(Clone)]
pub struct Keys {
    db: Arc<Database>,
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `n` characters from a power-of-two alphabet, so each byte's low bits pick one unbiased.
fn random_string(alphabet: &[u8], n: usize) -> Result<String, StorageError> {
    debug_assert!(alphabet.len().is_power_of_two());
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?;
    Ok(bytes.iter().map(|b| alphabet[*b as usize % alphabet.len()] as char).collect())
}

impl Keys {
    pub(crate) fn new(db: Arc<Database>) -> Keys {
        Keys { db }
    }

    pub fn create(&self, scope: KeyScope) -> Result<AccessKey, StorageError> {
        if let Some(buckets) = &scope.buckets {
            for b in buckets {
                crate::engine::validate_bucket_name(b)?;
            }
        }
        let id = format!("AKYN{}", random_string(ID_ALPHABET, 16)?);
        let secret = random_string(SECRET_ALPHABET, 40)?;
        let rec = KeyRecord { secret: secret.clone(), scope: scope.clone(), created_ms: now_ms() };
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(KEYS)?.insert(id.as_str(), serde_json::to_vec(&rec)?.as_slice())?;
        txn.commit()?;
        Ok(AccessKey { id, secret: Some(secret), scope, created_ms: rec.created_ms })
    }

    /// The key named `id`, made with `scope` if there is none yet (with its secret): the key a
    /// platform component hands out under a name of its own (a function revision's).
    pub fn ensure(&self, id: &str, scope: KeyScope) -> Result<AccessKey, StorageError> {
        if let Some(existing) = self.get(id)? {
            return Ok(existing);
        }
        if let Some(buckets) = &scope.buckets {
            for b in buckets {
                crate::engine::validate_bucket_name(b)?;
            }
        }
        let secret = random_string(SECRET_ALPHABET, 40)?;
        let rec = KeyRecord { secret: secret.clone(), scope: scope.clone(), created_ms: now_ms() };
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(KEYS)?.insert(id, serde_json::to_vec(&rec)?.as_slice())?;
        txn.commit()?;
        Ok(AccessKey { id: id.to_string(), secret: Some(secret), scope, created_ms: rec.created_ms })
    }

    /// Every key, secrets omitted.
    pub fn list(&self) -> Result<Vec<AccessKey>, StorageError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in txn.open_table(KEYS)?.iter()? {
            let (k, v) = row?;
            let rec: KeyRecord = serde_json::from_slice(v.value())?;
            out.push(AccessKey {
                id: k.value().to_owned(),
                secret: None,
                scope: rec.scope,
                created_ms: rec.created_ms,
            });
        }
        Ok(out)
    }

    /// Whether the key existed.
    pub fn remove(&self, id: &str) -> Result<bool, StorageError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let existed = txn.open_table(KEYS)?.remove(id)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    /// The key with its secret, for verifying signatures.
    pub fn get(&self, id: &str) -> Result<Option<AccessKey>, StorageError> {
        let txn = self.db.begin_read()?;
        let Some(v) = txn.open_table(KEYS)?.get(id)? else { return Ok(None) };
        let rec: KeyRecord = serde_json::from_slice(v.value())?;
        Ok(Some(AccessKey {
            id: id.to_owned(),
            secret: Some(rec.secret),
            scope: rec.scope,
            created_ms: rec.created_ms,
        }))
    }
}
