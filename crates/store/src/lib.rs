//! Durable state: function and revision metadata in an embedded ACID database, and uploaded
//! artifacts as content-addressed files.
//!
//! The control plane writes here; the invocation path never reads from here (it serves from
//! the in-memory routing table the control plane fills). A distributed backend can replace
//! [`RedbStore`] by implementing [`MetadataStore`]. This crate does not validate or compile
//! wasm; it stores bytes whose digest it is told.

mod blobs;

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use yun_types::{Digest, Function, FunctionName, Revision, RevisionSpec, ScaleSpec};

pub use blobs::{BlobStore, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Db(String),
    #[error("metadata store holds a record it cannot read: {0}")]
    Corrupt(String),
    #[error("no function named {0}")]
    NoFunction(FunctionName),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// Function and revision metadata. Every mutating call returns only once its change is durable.
pub trait MetadataStore: Send + Sync + 'static {
    /// Appends a new revision to `name` (creating the function on first deploy) and routes
    /// traffic to it, in one transaction.
    fn create_revision(
        &self,
        name: &FunctionName,
        spec: RevisionSpec,
        now_ms: u64,
    ) -> Result<(Function, Revision), StoreError>;
    fn function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError>;
    fn functions(&self) -> Result<Vec<Function>, StoreError>;
    fn revision(&self, name: &FunctionName, number: u64) -> Result<Option<Revision>, StoreError>;
    fn revisions(&self, name: &FunctionName) -> Result<Vec<Revision>, StoreError>;
    /// Removes the function and all its revisions; returns whether it existed.
    fn delete_function(&self, name: &FunctionName) -> Result<bool, StoreError>;
    /// Every artifact some revision still points at, for garbage collection.
    fn referenced_artifacts(&self) -> Result<BTreeSet<Digest>, StoreError>;
    /// Replaces the function's scaling settings; `None` if there is no such function.
    fn set_scale(
        &self,
        name: &FunctionName,
        scale: ScaleSpec,
        now_ms: u64,
    ) -> Result<Option<Function>, StoreError>;
}

const FUNCTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("functions");
const REVISIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("revisions");

/// [`MetadataStore`] on redb: a single-file, copy-on-write B-tree that fsyncs on commit.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        // Create the tables up front so read transactions never meet a missing table.
        let txn = db.begin_write()?;
        txn.open_table(FUNCTIONS)?;
        txn.open_table(REVISIONS)?;
        txn.commit()?;
        Ok(Self { db })
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata records always serialize")
}

impl MetadataStore for RedbStore {
    fn create_revision(
        &self,
        name: &FunctionName,
        spec: RevisionSpec,
        now_ms: u64,
    ) -> Result<(Function, Revision), StoreError> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut functions = txn.open_table(FUNCTIONS)?;
            let mut revisions = txn.open_table(REVISIONS)?;
            let existing: Option<Function> = match functions.get(name.as_str())? {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
            let number = existing.as_ref().map_or(1, |f| f.latest_revision + 1);
            let function = Function {
                name: name.clone(),
                latest_revision: number,
                active_revision: number,
                created_at_ms: existing.as_ref().map_or(now_ms, |f| f.created_at_ms),
                updated_at_ms: now_ms,
                scale: existing.as_ref().map(|f| f.scale.clone()).unwrap_or_default(),
            };
            let revision = Revision { function: name.clone(), number, spec, created_at_ms: now_ms };
            revisions.insert((name.as_str(), number), encode(&revision).as_slice())?;
            functions.insert(name.as_str(), encode(&function).as_slice())?;
            (function, revision)
        };
        txn.commit()?;
        Ok(result)
    }

    fn function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FUNCTIONS)?;
        table.get(name.as_str())?.map(|v| decode(v.value())).transpose()
    }

    fn functions(&self) -> Result<Vec<Function>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FUNCTIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn revision(&self, name: &FunctionName, number: u64) -> Result<Option<Revision>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REVISIONS)?;
        table.get((name.as_str(), number))?.map(|v| decode(v.value())).transpose()
    }

    fn revisions(&self, name: &FunctionName) -> Result<Vec<Revision>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REVISIONS)?;
        let mut out = Vec::new();
        for entry in table.range((name.as_str(), 0)..=(name.as_str(), u64::MAX))? {
            let (_, v) = entry?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn delete_function(&self, name: &FunctionName) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = {
            let mut functions = txn.open_table(FUNCTIONS)?;
            let mut revisions = txn.open_table(REVISIONS)?;
            let existed = functions.remove(name.as_str())?.is_some();
            revisions.retain_in((name.as_str(), 0)..=(name.as_str(), u64::MAX), |_, _| false)?;
            existed
        };
        txn.commit()?;
        Ok(existed)
    }

    fn set_scale(
        &self,
        name: &FunctionName,
        scale: ScaleSpec,
        now_ms: u64,
    ) -> Result<Option<Function>, StoreError> {
        let txn = self.db.begin_write()?;
        let updated = {
            let mut functions = txn.open_table(FUNCTIONS)?;
            let existing: Option<Function> = match functions.get(name.as_str())? {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
            match existing {
                None => None,
                Some(mut function) => {
                    function.scale = scale;
                    function.updated_at_ms = now_ms;
                    functions.insert(name.as_str(), encode(&function).as_slice())?;
                    Some(function)
                }
            }
        };
        txn.commit()?;
        Ok(updated)
    }

    fn referenced_artifacts(&self) -> Result<BTreeSet<Digest>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REVISIONS)?;
        let mut out = BTreeSet::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            let revision: Revision = decode(v.value())?;
            out.insert(revision.spec.artifact);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use yun_types::{InstanceMode, Limits};

    fn spec(byte: char) -> RevisionSpec {
        RevisionSpec {
            artifact: Digest::parse(&byte.to_string().repeat(64)).unwrap(),
            limits: Limits::default(),
            env: BTreeMap::new(),
            allow_outbound: vec![],
            private: false,
            instance: InstanceMode::Reuse,
            process: None,
        }
    }

    #[test]
    fn revisions_count_up_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let hello = FunctionName::new("hello").unwrap();
        {
            let store = RedbStore::open(&path).unwrap();
            let (f, r) = store.create_revision(&hello, spec('a'), 1).unwrap();
            assert_eq!((f.latest_revision, r.number), (1, 1));
            let (f, r) = store.create_revision(&hello, spec('b'), 2).unwrap();
            assert_eq!((f.active_revision, r.number, f.created_at_ms), (2, 2, 1));
        }
        let store = RedbStore::open(&path).unwrap();
        let revs = store.revisions(&hello).unwrap();
        assert_eq!(revs.iter().map(|r| r.number).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(store.function(&hello).unwrap().unwrap().active_revision, 2);
    }

    #[test]
    fn scale_survives_reopen_and_later_deploys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let hello = FunctionName::new("hello").unwrap();
        let scale = ScaleSpec { max_instances: Some(3), ..ScaleSpec::default() };
        {
            let store = RedbStore::open(&path).unwrap();
            assert_eq!(store.set_scale(&hello, scale.clone(), 1).unwrap(), None, "no such function yet");
            store.create_revision(&hello, spec('a'), 1).unwrap();
            assert_eq!(store.set_scale(&hello, scale.clone(), 2).unwrap().unwrap().scale, scale);
            store.create_revision(&hello, spec('b'), 3).unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.function(&hello).unwrap().unwrap().scale, scale);
    }

    #[test]
    fn delete_removes_revisions_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        let a = FunctionName::new("a").unwrap();
        let ab = FunctionName::new("ab").unwrap();
        store.create_revision(&a, spec('1'), 1).unwrap();
        store.create_revision(&ab, spec('2'), 1).unwrap();
        assert_eq!(store.referenced_artifacts().unwrap().len(), 2);
        assert!(store.delete_function(&a).unwrap());
        assert!(!store.delete_function(&a).unwrap());
        assert!(store.revisions(&a).unwrap().is_empty());
        // A name that is a prefix of another must not take the other's revisions with it.
        assert_eq!(store.revisions(&ab).unwrap().len(), 1);
        assert_eq!(store.referenced_artifacts().unwrap().len(), 1);
        assert_eq!(store.functions().unwrap().len(), 1);
    }
}
