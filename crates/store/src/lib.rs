//! Durable state: function, revision, route and (sealed) secret metadata in an embedded ACID
//! database, and uploaded artifacts as content-addressed files.
//!
//! The control plane writes here; the invocation path never reads from here (it serves from
//! the in-memory routing table the control plane fills). A distributed backend can replace
//! [`RedbStore`] by implementing [`MetadataStore`]. This crate does not validate or compile
//! wasm; it stores bytes whose digest it is told.

mod blobs;

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use yun_router::RouteSpec;
use yun_types::{Digest, ErrorCode, Function, FunctionName, Revision, RevisionSpec};

pub use blobs::{BlobStore, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Db(String),
    #[error("metadata store holds a record it cannot read: {0}")]
    Corrupt(String),
    #[error("no function named {0}")]
    NoFunction(FunctionName),
    #[error("{}", .0.message)]
    Rejected(Rejected),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Why an edit refused a change; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejected {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejected { code, message: message.into() }
    }
}

/// A change to a function, made inside the store's transaction: it sees the committed state and
/// either edits it or refuses, and the store writes all of it or none.
pub type Edit<'a> = &'a mut dyn FnMut(&mut Function) -> Result<(), Rejected>;

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// A secret as stored: only its sealed bytes (crates/secrets seals and opens them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub name: String,
    #[serde(with = "hex_bytes")]
    pub sealed: Vec<u8>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord").field("name", &self.name).finish_non_exhaustive()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// Function, revision, route and secret metadata. Every mutating call returns only once its
/// change is durable.
pub trait MetadataStore: Send + Sync + 'static {
    /// Appends a new revision to `name` (creating the function on first deploy), then lets
    /// `edit` route traffic (it sees `latest_revision` already pointing at the new revision), in
    /// one transaction: a refused edit leaves no revision behind.
    fn create_revision(
        &self,
        name: &FunctionName,
        spec: RevisionSpec,
        now_ms: u64,
        edit: Edit<'_>,
    ) -> Result<(Function, Revision), StoreError>;
    /// Changes an existing function in one transaction; `None` if there is no such function.
    fn update_function(
        &self,
        name: &FunctionName,
        now_ms: u64,
        edit: Edit<'_>,
    ) -> Result<Option<Function>, StoreError>;
    fn function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError>;
    fn functions(&self) -> Result<Vec<Function>, StoreError>;
    fn revision(&self, name: &FunctionName, number: u64) -> Result<Option<Revision>, StoreError>;
    fn revisions(&self, name: &FunctionName) -> Result<Vec<Revision>, StoreError>;
    /// Removes the function and all its revisions; returns whether it existed.
    fn delete_function(&self, name: &FunctionName) -> Result<bool, StoreError>;
    /// Every artifact some revision still points at, for garbage collection.
    fn referenced_artifacts(&self) -> Result<BTreeSet<Digest>, StoreError>;
    fn routes(&self) -> Result<Vec<RouteSpec>, StoreError>;
    /// Adds the route, or replaces the one with the same host and path.
    fn put_route(&self, route: &RouteSpec) -> Result<(), StoreError>;
    fn delete_route(&self, host: Option<&str>, path: &str) -> Result<bool, StoreError>;
    fn secret(&self, name: &str) -> Result<Option<SecretRecord>, StoreError>;
    fn secrets(&self) -> Result<Vec<SecretRecord>, StoreError>;
    fn put_secret(&self, record: &SecretRecord) -> Result<(), StoreError>;
    fn delete_secret(&self, name: &str) -> Result<bool, StoreError>;
}

const FUNCTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("functions");
const REVISIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("revisions");
/// Keyed by (host or "", path pattern): the identity a route is replaced or removed by.
const ROUTES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("routes");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");

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
        txn.open_table(ROUTES)?;
        txn.open_table(SECRETS)?;
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
        edit: Edit<'_>,
    ) -> Result<(Function, Revision), StoreError> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut functions = txn.open_table(FUNCTIONS)?;
            let mut revisions = txn.open_table(REVISIONS)?;
            let mut function: Function = match functions.get(name.as_str())? {
                Some(v) => decode(v.value())?,
                None => Function::new(name.clone(), now_ms),
            };
            let number = function.latest_revision + 1;
            function.latest_revision = number;
            function.updated_at_ms = now_ms;
            edit(&mut function).map_err(StoreError::Rejected)?;
            let revision = Revision { function: name.clone(), number, spec, created_at_ms: now_ms };
            revisions.insert((name.as_str(), number), encode(&revision).as_slice())?;
            functions.insert(name.as_str(), encode(&function).as_slice())?;
            (function, revision)
        };
        // A refused edit returned above: dropping the transaction aborts it.
        txn.commit()?;
        Ok(result)
    }

    fn update_function(
        &self,
        name: &FunctionName,
        now_ms: u64,
        edit: Edit<'_>,
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
                    edit(&mut function).map_err(StoreError::Rejected)?;
                    function.updated_at_ms = now_ms;
                    functions.insert(name.as_str(), encode(&function).as_slice())?;
                    Some(function)
                }
            }
        };
        txn.commit()?;
        Ok(updated)
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

    fn routes(&self) -> Result<Vec<RouteSpec>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ROUTES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn put_route(&self, route: &RouteSpec) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(ROUTES)?;
            let host = route.host.as_deref().unwrap_or("");
            table.insert((host, route.path.as_str()), encode(route).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn delete_route(&self, host: Option<&str>, path: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(ROUTES)?.remove((host.unwrap_or(""), path))?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    fn secret(&self, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SECRETS)?;
        table.get(name)?.map(|v| decode(v.value())).transpose()
    }

    fn secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SECRETS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn put_secret(&self, record: &SecretRecord) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(SECRETS)?.insert(record.name.as_str(), encode(record).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(SECRETS)?.remove(name)?.is_some();
        txn.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use yun_types::{InstanceMode, Limits, ScaleSpec};

    fn spec(byte: char) -> RevisionSpec {
        RevisionSpec {
            artifact: Digest::parse(&byte.to_string().repeat(64)).unwrap(),
            limits: Limits::default(),
            env: BTreeMap::new(),
            allow_outbound: vec![],
            private: false,
            instance: InstanceMode::Reuse,
            process: None,
            secrets: BTreeMap::new(),
            buckets: vec![],
            kv: vec![],
            sql: vec![],
        }
    }

    /// What a plain deploy does: all traffic to the new revision.
    fn route_new(f: &mut Function) -> Result<(), Rejected> {
        let n = f.latest_revision;
        f.route_all_to(n);
        Ok(())
    }

    #[test]
    fn revisions_count_up_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let hello = FunctionName::new("hello").unwrap();
        {
            let store = RedbStore::open(&path).unwrap();
            let (f, r) = store.create_revision(&hello, spec('a'), 1, &mut route_new).unwrap();
            assert_eq!((f.latest_revision, r.number, f.previous_revision), (1, 1, None));
            let (f, r) = store.create_revision(&hello, spec('b'), 2, &mut route_new).unwrap();
            assert_eq!((f.active_revision, r.number, f.created_at_ms), (2, 2, 1));
            assert_eq!(f.previous_revision, Some(1));
        }
        let store = RedbStore::open(&path).unwrap();
        let revs = store.revisions(&hello).unwrap();
        assert_eq!(revs.iter().map(|r| r.number).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(store.function(&hello).unwrap().unwrap().active_revision, 2);
    }

    #[test]
    fn a_refused_edit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        let hello = FunctionName::new("hello").unwrap();
        store.create_revision(&hello, spec('a'), 1, &mut route_new).unwrap();
        let refuse = |_: &mut Function| Err(Rejected::new(ErrorCode::BadRequest, "no"));
        let err = store.create_revision(&hello, spec('b'), 2, &mut { refuse }).unwrap_err();
        assert!(matches!(err, StoreError::Rejected(ref r) if r.message == "no"), "{err}");
        assert_eq!(store.revisions(&hello).unwrap().len(), 1, "the refused revision is not stored");
        let err = store
            .update_function(&hello, 3, &mut |f| {
                f.active_revision = 99;
                Err(Rejected::new(ErrorCode::Conflict, "changed my mind"))
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Rejected(_)));
        let f = store.function(&hello).unwrap().unwrap();
        assert_eq!((f.latest_revision, f.active_revision, f.updated_at_ms), (1, 1, 1));
    }

    #[test]
    fn scale_and_tags_survive_reopen_and_later_deploys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let hello = FunctionName::new("hello").unwrap();
        let scale = ScaleSpec { max_instances: Some(3), ..ScaleSpec::default() };
        {
            let store = RedbStore::open(&path).unwrap();
            let set = |f: &mut Function| {
                f.scale = scale.clone();
                f.tags.insert("prod".into(), 1);
                Ok(())
            };
            assert_eq!(store.update_function(&hello, 1, &mut { set }).unwrap(), None, "no such function yet");
            store.create_revision(&hello, spec('a'), 1, &mut route_new).unwrap();
            assert_eq!(store.update_function(&hello, 2, &mut { set }).unwrap().unwrap().scale, scale);
            store.create_revision(&hello, spec('b'), 3, &mut route_new).unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let f = store.function(&hello).unwrap().unwrap();
        assert_eq!(f.scale, scale);
        assert_eq!(f.tags.get("prod"), Some(&1));
    }

    #[test]
    fn delete_removes_revisions_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        let a = FunctionName::new("a").unwrap();
        let ab = FunctionName::new("ab").unwrap();
        store.create_revision(&a, spec('1'), 1, &mut route_new).unwrap();
        store.create_revision(&ab, spec('2'), 1, &mut route_new).unwrap();
        assert_eq!(store.referenced_artifacts().unwrap().len(), 2);
        assert!(store.delete_function(&a).unwrap());
        assert!(!store.delete_function(&a).unwrap());
        assert!(store.revisions(&a).unwrap().is_empty());
        // A name that is a prefix of another must not take the other's revisions with it.
        assert_eq!(store.revisions(&ab).unwrap().len(), 1);
        assert_eq!(store.referenced_artifacts().unwrap().len(), 1);
        assert_eq!(store.functions().unwrap().len(), 1);
    }

    #[test]
    fn routes_are_keyed_by_host_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let route = |host: Option<&str>, path: &str, function: &str| RouteSpec {
            host: host.map(str::to_string),
            path: path.to_string(),
            function: function.to_string(),
            tag: None,
        };
        {
            let store = RedbStore::open(&path).unwrap();
            store.put_route(&route(None, "/api/*", "a")).unwrap();
            store.put_route(&route(Some("x.example.com"), "/api/*", "b")).unwrap();
            store.put_route(&route(None, "/api/*", "c")).unwrap(); // replaces the first
        }
        let store = RedbStore::open(&path).unwrap();
        let mut functions: Vec<String> = store.routes().unwrap().into_iter().map(|r| r.function).collect();
        functions.sort();
        assert_eq!(functions, ["b", "c"]);
        assert!(store.delete_route(Some("x.example.com"), "/api/*").unwrap());
        assert!(!store.delete_route(Some("x.example.com"), "/api/*").unwrap());
        assert_eq!(store.routes().unwrap().len(), 1);
    }

    #[test]
    fn secrets_round_trip_and_debug_hides_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        let record =
            SecretRecord { name: "db".into(), sealed: vec![1, 2, 255], created_at_ms: 1, updated_at_ms: 2 };
        store.put_secret(&record).unwrap();
        assert_eq!(store.secret("db").unwrap(), Some(record.clone()));
        assert_eq!(store.secrets().unwrap().len(), 1);
        assert!(!format!("{record:?}").contains("255"));
        assert!(store.delete_secret("db").unwrap());
        assert_eq!(store.secret("db").unwrap(), None);
    }
}
