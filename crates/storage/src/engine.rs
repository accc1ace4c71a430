//! The object store: bucket and object metadata in redb, bodies as blobs (`blobs.rs`).
//!
//! Every change is one redb transaction (fsynced at commit) that names only blobs already
//! durable on disk, so a reader sees an object whole or not at all, and a crash leaves at most
//! a blob no record names, which the next open sweeps. The same transaction appends the change
//! to the event outbox, so no committed change can lose its event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::Stream;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::StorageError;
use crate::blobs::{BlobBackend, BlobStream, Blobs, FsBlobs, Staged, new_bucket_id};
use crate::checksum::{self, ChecksumAlgorithm, Checksums};
use crate::keys::{self, Keys};

const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

const EVENT_SEQ: &str = "event_seq";

/// S3's limit for one PutObject or UploadPart body.
pub const MAX_PUT_SIZE: u64 = 5 << 30;
/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PARTS: u32 = 10_000;
const MAX_KEY_BYTES: usize = 1024;

/// The metadata stored with an object and returned with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// As the client sent it (an HTTP date).
    pub expires: Option<String>,
    /// `x-amz-meta-*`, names without the prefix, lowercase.
    #[serde(default)]
    pub user: BTreeMap<String, String>,
}

/// What a PUT carries besides its body.
#[derive(Debug, Clone, Default)]
pub struct PutMeta {
    pub meta: ObjectMeta,
    /// Checksums the client declared: verified against the body, and stored.
    pub checksums: Checksums,
    /// A checksum to compute and store even if the client declared no value.
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// `Content-MD5`, base64.
    pub content_md5: Option<String>,
    /// The write happens only if the current object's ETag matches (412 otherwise, 404 if none).
    pub if_match: Option<String>,
    /// `*`: only if no object has the key; an ETag: only if the current one differs.
    pub if_none_match: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    FullObject,
    Composite,
}

impl ChecksumType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Without quotes: hex MD5, or `<hex>-N` for a multipart object.
    pub etag: String,
    pub last_modified_ms: u64,
    pub meta: ObjectMeta,
    pub checksums: Checksums,
    pub checksum_type: Option<ChecksumType>,
    /// How many parts a multipart object was assembled from.
    pub parts: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: u64,
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// When truncated: pass as `start_after` to continue (the last key or common prefix).
    pub next_start_after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Copy,
    CompleteMultipartUpload,
    Delete,
}

impl EventKind {
    /// S3's event name without `s3:`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Put => "ObjectCreated:Put",
            EventKind::Copy => "ObjectCreated:Copy",
            EventKind::CompleteMultipartUpload => "ObjectCreated:CompleteMultipartUpload",
            EventKind::Delete => "ObjectRemoved:Delete",
        }
    }
}

/// One committed change, from the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEvent {
    pub seq: u64,
    pub kind: EventKind,
    pub bucket: String,
    pub key: String,
    /// Absent for a removal, as in S3's notifications.
    pub size: Option<u64>,
    /// Without quotes; absent for a removal.
    pub etag: Option<String>,
    pub time_ms: u64,
    /// Hex, fixed width: orders the changes of a key as strings, as S3's does.
    pub sequencer: String,
}

/// Conditional request headers of a read (GET, HEAD, a copy's source).
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since_ms: Option<u64>,
    pub if_unmodified_since_ms: Option<u64>,
}

impl Conditions {
    /// RFC 9110's order: If-Match, else If-Unmodified-Since (412); If-None-Match, else
    /// If-Modified-Since (304). HTTP dates have whole seconds, so compare in seconds.
    pub fn check(&self, info: &ObjectInfo) -> Result<(), StorageError> {
        let modified_s = info.last_modified_ms / 1000;
        if let Some(m) = &self.if_match {
            if !etag_matches(m, &info.etag) {
                return Err(StorageError::PreconditionFailed);
            }
        } else if let Some(t) = self.if_unmodified_since_ms
            && modified_s > t / 1000
        {
            return Err(StorageError::PreconditionFailed);
        }
        if let Some(m) = &self.if_none_match {
            if etag_matches(m, &info.etag) {
                return Err(StorageError::NotModified);
            }
        } else if let Some(t) = self.if_modified_since_ms
            && modified_s <= t / 1000
        {
            return Err(StorageError::NotModified);
        }
        Ok(())
    }
}

/// `*`, or a comma-separated list of (possibly weak, quoted) ETags.
fn etag_matches(condition: &str, etag: &str) -> bool {
    condition.split(',').map(str::trim).any(|c| {
        let c = c.strip_prefix("W/").unwrap_or(c);
        c == "*" || c.trim_matches('"') == etag
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksums: Checksums,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: u64,
    pub meta: ObjectMeta,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    pub checksum_type: Option<ChecksumType>,
}

/// One entry of CompleteMultipartUpload's list.
#[derive(Debug, Clone, Default)]
pub struct CompletePart {
    pub number: u32,
    pub etag: String,
    pub checksums: Checksums,
}

#[derive(Serialize, Deserialize)]
struct BucketRecord {
    id: String,
    created_ms: u64,
    objects: u64,
    bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct ObjectRecord {
    blob: String,
    size: u64,
    etag: String,
    modified_ms: u64,
    meta: ObjectMeta,
    checksums: Checksums,
    checksum_type: Option<ChecksumType>,
    parts: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct UploadRecord {
    bucket: String,
    bucket_id: String,
    key: String,
    initiated_ms: u64,
    meta: ObjectMeta,
    algorithm: Option<ChecksumAlgorithm>,
    checksum_type: Option<ChecksumType>,
}

#[derive(Serialize, Deserialize)]
struct PartRecord {
    blob: String,
    size: u64,
    etag: String,
    modified_ms: u64,
    checksums: Checksums,
}

/// The conditions of a write, checked inside its commit, against what is committed then.
#[derive(Debug, Clone, Default)]
struct WriteCondition {
    if_match: Option<String>,
    if_none_match: Option<String>,
}

impl WriteCondition {
    fn check(&self, key: &str, current: Option<&ObjectRecord>) -> Result<(), StorageError> {
        if let Some(m) = &self.if_match {
            match current {
                None => return Err(StorageError::NoSuchKey(key.to_owned())),
                Some(c) if !etag_matches(m, &c.etag) => return Err(StorageError::PreconditionFailed),
                Some(_) => {}
            }
        }
        if let (Some(m), Some(c)) = (&self.if_none_match, current)
            && etag_matches(m, &c.etag)
        {
            return Err(StorageError::PreconditionFailed);
        }
        Ok(())
    }
}

/// A clonable handle on one store directory.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    blobs: Blobs,
    waker: Arc<Notify>,
}

/// The parts' blobs one after another, as one body. A hand-written stream: built from stream
/// combinators and async blocks, the S3 trait's future fails rustc's `Send` check for every
/// lifetime.
struct Pieces {
    inner: Arc<Inner>,
    bucket_id: String,
    left: std::collections::VecDeque<(String, u64)>,
    opening: Option<futures::future::BoxFuture<'static, io::Result<BlobStream>>>,
    current: Option<BlobStream>,
}

impl futures::Stream for Pieces {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<io::Result<Bytes>>> {
        use std::task::{Poll, ready};
        loop {
            if let Some(current) = self.current.as_mut() {
                match ready!(current.as_mut().poll_next(cx)) {
                    Some(item) => return Poll::Ready(Some(item)),
                    None => self.current = None,
                }
            }
            if let Some(opening) = self.opening.as_mut() {
                let opened = ready!(opening.as_mut().poll(cx));
                self.opening = None;
                match opened {
                    Ok(stream) => self.current = Some(stream),
                    Err(e) => {
                        self.left.clear();
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                continue;
            }
            let Some((blob, size)) = self.left.pop_front() else { return Poll::Ready(None) };
            let (inner, bucket_id) = (self.inner.clone(), self.bucket_id.clone());
            self.opening = Some(Box::pin(async move { inner.blobs.read(&bucket_id, &blob, 0, size).await }));
        }
    }
}

/// Redb commits fsync: off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StorageError::Io(io::Error::other(e)))?
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// S3's rules ([`yun_types::is_bucket_name`], which yun.toml is checked against too).
pub fn validate_bucket_name(name: &str) -> Result<(), StorageError> {
    if yun_types::is_bucket_name(name) {
        Ok(())
    } else {
        Err(StorageError::InvalidBucketName(name.to_owned()))
    }
}

/// Any UTF-8 of 1 to 1024 bytes is a key: keys live only in redb, never in paths.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::InvalidKey(format!("the key is longer than {MAX_KEY_BYTES} bytes")));
    }
    Ok(())
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StorageError> {
    Ok(serde_json::from_slice(bytes)?)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    Ok(serde_json::to_vec(v)?)
}

fn info(bucket: &str, key: &str, r: ObjectRecord) -> ObjectInfo {
    ObjectInfo {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: r.size,
        etag: r.etag,
        last_modified_ms: r.modified_ms,
        meta: r.meta,
        checksums: r.checksums,
        checksum_type: r.checksum_type,
        parts: r.parts,
    }
}

fn upload_info(upload_id: &str, r: UploadRecord) -> UploadInfo {
    UploadInfo {
        upload_id: upload_id.to_owned(),
        bucket: r.bucket,
        key: r.key,
        initiated_ms: r.initiated_ms,
        meta: r.meta,
        checksum_algorithm: r.algorithm,
        checksum_type: r.checksum_type,
    }
}

fn write_txn(db: &Database) -> Result<WriteTransaction, StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    Ok(txn)
}

fn append_event(
    txn: &WriteTransaction,
    kind: EventKind,
    bucket: &str,
    key: &str,
    created: Option<(u64, &str)>,
    time_ms: u64,
) -> Result<(), StorageError> {
    let mut counters = txn.open_table(COUNTERS)?;
    let seq = counters.get(EVENT_SEQ)?.map(|v| v.value()).unwrap_or(0) + 1;
    counters.insert(EVENT_SEQ, seq)?;
    let event = ObjectEvent {
        seq,
        kind,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: created.map(|c| c.0),
        etag: created.map(|c| c.1.to_owned()),
        time_ms,
        sequencer: format!("{seq:016X}"),
    };
    txn.open_table(EVENTS)?.insert(seq, encode(&event)?.as_slice())?;
    Ok(())
}

/// Adjusts a bucket's counters by an object's arrival (`+`) and departure (`-`).
fn account(
    txn: &WriteTransaction,
    bucket: &str,
    added: Option<u64>,
    removed: Option<u64>,
) -> Result<(), StorageError> {
    let mut buckets = txn.open_table(BUCKETS)?;
    let mut rec: BucketRecord = match buckets.get(bucket)? {
        Some(v) => decode(v.value())?,
        None => return Err(StorageError::NoSuchBucket(bucket.to_owned())),
    };
    if let Some(size) = added {
        rec.objects += 1;
        rec.bytes += size;
    }
    if let Some(size) = removed {
        rec.objects = rec.objects.saturating_sub(1);
        rec.bytes = rec.bytes.saturating_sub(size);
    }
    buckets.insert(bucket, encode(&rec)?.as_slice())?;
    Ok(())
}

/// Result of a commit: the blobs it made unreferenced, to remove now that it is durable.
type Garbage = Vec<(String, String)>;

impl ObjectStore {
    /// Opens (creating if missing) the store at `root`: `root/objects.redb`, with bodies as
    /// files under `root/blobs/` ([`FsBlobs`]).
    pub async fn open(root: &Path) -> Result<ObjectStore, StorageError> {
        std::fs::create_dir_all(root)?;
        let blobs = FsBlobs::open(root)?;
        ObjectStore::open_with(root, Arc::new(blobs)).await
    }

    /// Opens the store with its metadata in `root/objects.redb` and bodies in `backend`, then
    /// sweeps what a crash left: blobs no record names, buckets' leftovers.
    pub async fn open_with(root: &Path, backend: Arc<dyn BlobBackend>) -> Result<ObjectStore, StorageError> {
        std::fs::create_dir_all(root)?;
        let db = Database::create(root.join("objects.redb"))?;
        let txn = write_txn(&db)?;
        txn.open_table(BUCKETS)?;
        txn.open_table(OBJECTS)?;
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(COUNTERS)?;
        keys::create_tables(&txn)?;
        txn.commit()?;
        let store = ObjectStore {
            inner: Arc::new(Inner {
                db: Arc::new(db),
                blobs: Blobs::new(backend),
                waker: Arc::new(Notify::new()),
            }),
        };
        let swept = store.sweep().await?;
        if swept > 0 {
            tracing::info!("object store: removed {swept} orphaned blobs");
        }
        Ok(store)
    }

    async fn sweep(&self) -> Result<usize, StorageError> {
        let live = self.live()?;
        self.inner.blobs.sweep(&live).await
    }

    /// Every blob a record names, by bucket id.
    fn live(&self) -> Result<HashMap<String, HashSet<String>>, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let mut live: HashMap<String, HashSet<String>> = HashMap::new();
        let mut id_of = HashMap::new();
        for row in txn.open_table(BUCKETS)?.iter()? {
            let (name, v) = row?;
            let rec: BucketRecord = decode(v.value())?;
            id_of.insert(name.value().to_owned(), rec.id.clone());
            live.entry(rec.id).or_default();
        }
        for row in txn.open_table(OBJECTS)?.iter()? {
            let (k, v) = row?;
            let rec: ObjectRecord = decode(v.value())?;
            if let Some(id) = id_of.get(k.value().0) {
                live.entry(id.clone()).or_default().insert(rec.blob);
            }
        }
        let uploads = txn.open_table(UPLOADS)?;
        for row in txn.open_table(PARTS)?.iter()? {
            let (k, v) = row?;
            let rec: PartRecord = decode(v.value())?;
            if let Some(u) = uploads.get(k.value().0)? {
                let up: UploadRecord = decode(u.value())?;
                live.entry(up.bucket_id).or_default().insert(rec.blob);
            }
        }
        Ok(live)
    }

    /// Access keys, kept in the same database.
    pub fn keys(&self) -> Keys {
        Keys::new(self.inner.db.clone())
    }

    /// Notified (one permit is kept) after every commit that appended an event.
    pub fn event_waker(&self) -> Arc<Notify> {
        self.inner.waker.clone()
    }

    fn bucket_id(&self, bucket: &str) -> Result<String, StorageError> {
        let txn = self.inner.db.begin_read()?;
        match txn.open_table(BUCKETS)?.get(bucket)? {
            Some(v) => Ok(decode::<BucketRecord>(v.value())?.id),
            None => Err(StorageError::NoSuchBucket(bucket.to_owned())),
        }
    }

    /// Runs a commit off the async threads (it fsyncs), then removes what it freed.
    async fn commit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<(T, Garbage, bool), StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        let (out, garbage) = tokio::task::spawn_blocking(move || {
            let (out, garbage, evented) = f(&inner.db)?;
            if evented {
                inner.waker.notify_one();
            }
            Ok::<_, StorageError>((out, garbage))
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))??;
        for (bucket_id, blob) in garbage {
            self.inner.blobs.remove(&bucket_id, &blob).await;
        }
        Ok(out)
    }

    // ---- buckets ----

    pub async fn create_bucket(&self, name: &str) -> Result<(), StorageError> {
        validate_bucket_name(name)?;
        let id = new_bucket_id();
        // The bucket's room first: a crash before the commit leaves an empty room the sweep
        // removes.
        self.inner.blobs.create_bucket(&id).await?;
        let (db, name_, id_) = (self.inner.db.clone(), name.to_owned(), id.clone());
        let created = blocking(move || {
            let txn = write_txn(&db)?;
            {
                let mut buckets = txn.open_table(BUCKETS)?;
                if buckets.get(name_.as_str())?.is_some() {
                    return Ok(false);
                }
                let rec = BucketRecord { id: id_, created_ms: now_ms(), objects: 0, bytes: 0 };
                buckets.insert(name_.as_str(), encode(&rec)?.as_slice())?;
            }
            txn.commit()?;
            Ok(true)
        })
        .await?;
        if !created {
            self.inner.blobs.remove_bucket(&id).await;
            return Err(StorageError::BucketExists(name.to_owned()));
        }
        Ok(())
    }

    /// Refuses a bucket with objects; aborts its multipart uploads.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), StorageError> {
        let (db, name) = (self.inner.db.clone(), name.to_owned());
        let id = blocking(move || {
            let name = name.as_str();
            let txn = write_txn(&db)?;
            let id = {
                let mut buckets = txn.open_table(BUCKETS)?;
                let rec: BucketRecord = match buckets.get(name)? {
                    Some(v) => decode(v.value())?,
                    None => return Err(StorageError::NoSuchBucket(name.to_owned())),
                };
                let objects = txn.open_table(OBJECTS)?;
                if let Some(row) = objects.range((name, "")..)?.next() {
                    let (k, _) = row?;
                    if k.value().0 == name {
                        return Err(StorageError::BucketNotEmpty(name.to_owned()));
                    }
                }
                buckets.remove(name)?;
                rec.id
            };
            {
                let mut uploads = txn.open_table(UPLOADS)?;
                let mut parts = txn.open_table(PARTS)?;
                let mut gone = Vec::new();
                for row in uploads.iter()? {
                    let (k, v) = row?;
                    let up: UploadRecord = decode(v.value())?;
                    if up.bucket == name {
                        gone.push(k.value().to_owned());
                    }
                }
                for upload in gone {
                    uploads.remove(upload.as_str())?;
                    parts.retain_in((upload.as_str(), 0)..=(upload.as_str(), u32::MAX), |_, _| false)?;
                }
            }
            txn.commit()?;
            Ok(id)
        })
        .await?;
        self.inner.blobs.remove_bucket(&id).await;
        Ok(())
    }

    pub fn buckets(&self) -> Result<Vec<BucketInfo>, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let mut out = Vec::new();
        for row in txn.open_table(BUCKETS)?.iter()? {
            let (k, v) = row?;
            let rec: BucketRecord = decode(v.value())?;
            out.push(BucketInfo {
                name: k.value().to_owned(),
                created_ms: rec.created_ms,
                objects: rec.objects,
                bytes: rec.bytes,
            });
        }
        Ok(out)
    }

    pub fn bucket(&self, name: &str) -> Result<BucketInfo, StorageError> {
        let txn = self.inner.db.begin_read()?;
        match txn.open_table(BUCKETS)?.get(name)? {
            Some(v) => {
                let rec: BucketRecord = decode(v.value())?;
                Ok(BucketInfo {
                    name: name.to_owned(),
                    created_ms: rec.created_ms,
                    objects: rec.objects,
                    bytes: rec.bytes,
                })
            }
            None => Err(StorageError::NoSuchBucket(name.to_owned())),
        }
    }

    /// Bytes and objects stored per bucket, for metering.
    pub fn usage(&self) -> Result<Vec<(String, u64, u64)>, StorageError> {
        Ok(self.buckets()?.into_iter().map(|b| (b.name, b.bytes, b.objects)).collect())
    }

    // ---- objects ----

    /// Streams a body into a durable blob of `bucket` that nothing names yet, computing MD5
    /// and `algorithms` (CRC64NVME when none, as S3 does by default).
    pub(crate) async fn stage<S, E>(
        &self,
        bucket: &str,
        body: S,
        mut algorithms: Vec<ChecksumAlgorithm>,
        max: u64,
    ) -> Result<Staged, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let bucket_id = self.bucket_id(bucket)?;
        if algorithms.is_empty() {
            algorithms.push(ChecksumAlgorithm::Crc64Nvme);
        }
        algorithms.sort_by_key(|a| *a as u8);
        algorithms.dedup();
        self.inner.blobs.write(&bucket_id, body, algorithms, max).await
    }

    /// Writes `body` as `key`, replacing any object there once the body is durable.
    pub async fn put<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        meta: PutMeta,
    ) -> Result<ObjectInfo, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        validate_key(key)?;
        let staged = self.stage(bucket, body, put_algorithms(&meta), MAX_PUT_SIZE).await?;
        self.finish_put(bucket, key, staged, meta).await
    }

    /// Verifies a staged body against `meta`'s digests and commits it as `key`.
    pub(crate) async fn finish_put(
        &self,
        bucket: &str,
        key: &str,
        staged: Staged,
        meta: PutMeta,
    ) -> Result<ObjectInfo, StorageError> {
        validate_key(key)?;
        checksum::verify_md5(meta.content_md5.as_deref(), &staged.digests.md5)?;
        checksum::verify(&meta.checksums, &staged.digests.checksums)?;
        let etag = hex::encode(staged.digests.md5);
        let record = ObjectRecord {
            blob: staged.id.clone(),
            size: staged.size,
            etag,
            modified_ms: now_ms(),
            meta: meta.meta,
            checksums: staged.digests.checksums.clone(),
            checksum_type: Some(ChecksumType::FullObject),
            parts: None,
        };
        let cond = WriteCondition { if_match: meta.if_match, if_none_match: meta.if_none_match };
        self.commit_object(bucket, key, staged, record, cond, EventKind::Put, None).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        mut staged: Staged,
        record: ObjectRecord,
        cond: WriteCondition,
        kind: EventKind,
        completes_upload: Option<String>,
    ) -> Result<ObjectInfo, StorageError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.commit(move |db| {
            let txn = write_txn(db)?;
            let mut garbage = Vec::new();
            let old = {
                let buckets = txn.open_table(BUCKETS)?;
                let rec: BucketRecord = match buckets.get(bucket.as_str())? {
                    Some(v) => decode(v.value())?,
                    None => return Err(StorageError::NoSuchBucket(bucket.clone())),
                };
                // The bucket was deleted and made anew while the body was being written.
                if rec.id != staged.bucket_id {
                    return Err(StorageError::NoSuchBucket(bucket.clone()));
                }
                let mut objects = txn.open_table(OBJECTS)?;
                let old: Option<ObjectRecord> = match objects.get((bucket.as_str(), key.as_str()))? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                cond.check(&key, old.as_ref())?;
                objects.insert((bucket.as_str(), key.as_str()), encode(&record)?.as_slice())?;
                old
            };
            if let Some(upload) = &completes_upload {
                let mut uploads = txn.open_table(UPLOADS)?;
                if uploads.remove(upload.as_str())?.is_none() {
                    return Err(StorageError::NoSuchUpload(upload.clone()));
                }
                let mut parts = txn.open_table(PARTS)?;
                let mut doomed = Vec::new();
                for row in parts.range((upload.as_str(), 0)..=(upload.as_str(), u32::MAX))? {
                    let (k, v) = row?;
                    let p: PartRecord = decode(v.value())?;
                    doomed.push(k.value().1);
                    garbage.push((staged.bucket_id.clone(), p.blob));
                }
                for n in doomed {
                    parts.remove((upload.as_str(), n))?;
                }
            }
            account(&txn, &bucket, Some(record.size), old.as_ref().map(|o| o.size))?;
            let time = record.modified_ms;
            append_event(&txn, kind, &bucket, &key, Some((record.size, &record.etag)), time)?;
            txn.commit()?;
            staged.keep();
            if let Some(old) = old {
                garbage.push((staged.bucket_id.clone(), old.blob));
            }
            Ok((info(&bucket, &key, record), garbage, true))
        })
        .await
    }

    pub(crate) fn lookup(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectInfo, String, String), StorageError> {
        let txn = self.inner.db.begin_read()?;
        let bucket_id = match txn.open_table(BUCKETS)?.get(bucket)? {
            Some(v) => decode::<BucketRecord>(v.value())?.id,
            None => return Err(StorageError::NoSuchBucket(bucket.to_owned())),
        };
        match txn.open_table(OBJECTS)?.get((bucket, key))? {
            Some(v) => {
                let rec: ObjectRecord = decode(v.value())?;
                let blob = rec.blob.clone();
                Ok((info(bucket, key, rec), bucket_id, blob))
            }
            None => Err(StorageError::NoSuchKey(key.to_owned())),
        }
    }

    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo, StorageError> {
        Ok(self.lookup(bucket, key)?.0)
    }

    /// The object and a stream of its bytes (of `range`, clamped to its size, if given).
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<(ObjectInfo, BlobStream), StorageError> {
        let (info, stream, _) = self
            .get_with(bucket, key, &Conditions::default(), |info| match &range {
                None => Ok(None),
                Some(r) if r.start >= info.size && !(r.start == 0 && info.size == 0) => {
                    Err(StorageError::InvalidRange)
                }
                Some(r) => Ok(Some(r.start..r.end.min(info.size))),
            })
            .await?;
        Ok((info, stream))
    }

    /// A GET with its conditions checked and its range resolved against the object it finds.
    pub async fn get_with(
        &self,
        bucket: &str,
        key: &str,
        conditions: &Conditions,
        range: impl Fn(&ObjectInfo) -> Result<Option<Range<u64>>, StorageError>,
    ) -> Result<(ObjectInfo, BlobStream, Option<Range<u64>>), StorageError> {
        // An overwrite may remove the blob between the lookup and the open: look again.
        let mut tries = 0;
        loop {
            let (info, bucket_id, blob) = self.lookup(bucket, key)?;
            conditions.check(&info)?;
            let r = range(&info)?;
            let (start, len) = match &r {
                Some(r) => (r.start, r.end.saturating_sub(r.start)),
                None => (0, info.size),
            };
            match self.inner.blobs.read(&bucket_id, &blob, start, len).await {
                Ok(stream) => return Ok((info, stream, r)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether an object was there to delete.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<bool, StorageError> {
        let mut r = self.delete_many(bucket, vec![key.to_owned()]).await?;
        r.pop().unwrap_or(Ok(false))
    }

    /// Deletes `keys` in one commit; per key, whether it existed.
    pub async fn delete_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Result<bool, StorageError>>, StorageError> {
        let bucket = bucket.to_owned();
        self.commit(move |db| {
            let txn = write_txn(db)?;
            let bucket_id = match txn.open_table(BUCKETS)?.get(bucket.as_str())? {
                Some(v) => decode::<BucketRecord>(v.value())?.id,
                None => return Err(StorageError::NoSuchBucket(bucket.clone())),
            };
            let mut garbage = Vec::new();
            let mut results = Vec::with_capacity(keys.len());
            let now = now_ms();
            let mut evented = false;
            for key in &keys {
                if let Err(e) = validate_key(key) {
                    results.push(Err(e));
                    continue;
                }
                let removed = txn
                    .open_table(OBJECTS)?
                    .remove((bucket.as_str(), key.as_str()))?
                    .map(|v| decode::<ObjectRecord>(v.value()))
                    .transpose()?;
                match removed {
                    Some(rec) => {
                        account(&txn, &bucket, None, Some(rec.size))?;
                        append_event(&txn, EventKind::Delete, &bucket, key, None, now)?;
                        garbage.push((bucket_id.clone(), rec.blob));
                        evented = true;
                        results.push(Ok(true));
                    }
                    None => results.push(Ok(false)),
                }
            }
            txn.commit()?;
            Ok((results, garbage, evented))
        })
        .await
    }

    /// Keys of `bucket` under `prefix` in byte order, after `start_after`, at most `max`
    /// entries (objects and common prefixes together).
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<Listing, StorageError> {
        let txn = self.inner.db.begin_read()?;
        if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
            return Err(StorageError::NoSuchBucket(bucket.to_owned()));
        }
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let objects = txn.open_table(OBJECTS)?;
        let start = match start_after {
            Some(s) if s > prefix => s,
            _ => prefix,
        };
        let mut out = Listing::default();
        let mut count = 0;
        let mut last: Option<String> = None;
        for row in objects.range((bucket, start)..)? {
            let (k, v) = row?;
            let (b, key) = k.value();
            if b != bucket || !key.starts_with(prefix) {
                break;
            }
            if start_after.is_some_and(|s| key <= s) {
                continue;
            }
            if let Some(d) = delimiter
                && let Some(i) = key[prefix.len()..].find(d)
            {
                let cp = &key[..prefix.len() + i + d.len()];
                // Resuming after this common prefix: its keys were rolled up already.
                if start_after.is_some_and(|s| cp <= s) || out.common_prefixes.last().is_some_and(|l| l == cp)
                {
                    continue;
                }
                if count == max {
                    out.truncated = true;
                    break;
                }
                out.common_prefixes.push(cp.to_owned());
                last = Some(cp.to_owned());
                count += 1;
                continue;
            }
            if count == max {
                out.truncated = true;
                break;
            }
            let rec: ObjectRecord = decode(v.value())?;
            out.objects.push(info(bucket, key, rec));
            last = Some(key.to_owned());
            count += 1;
        }
        if out.truncated {
            out.next_start_after = last.or_else(|| start_after.map(str::to_owned));
        }
        Ok(out)
    }

    /// Copies `src` to `dst`: the source's metadata unless `meta` replaces it.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        meta: Option<ObjectMeta>,
        source_conditions: &Conditions,
        put: PutMeta,
    ) -> Result<ObjectInfo, StorageError> {
        validate_key(dst_key)?;
        let (src, stream, _) = self.get_with(src_bucket, src_key, source_conditions, |_| Ok(None)).await?;
        let mut algorithms: Vec<_> = src.checksums.algorithms().collect();
        algorithms.extend(put.checksum_algorithm);
        let staged = self.stage(dst_bucket, stream, algorithms, u64::MAX).await?;
        let record = ObjectRecord {
            blob: staged.id.clone(),
            size: staged.size,
            etag: hex::encode(staged.digests.md5),
            modified_ms: now_ms(),
            meta: meta.unwrap_or(src.meta),
            checksums: staged.digests.checksums.clone(),
            checksum_type: Some(ChecksumType::FullObject),
            parts: None,
        };
        let cond = WriteCondition { if_match: put.if_match, if_none_match: put.if_none_match };
        self.commit_object(dst_bucket, dst_key, staged, record, cond, EventKind::Copy, None).await
    }

    // ---- events ----

    /// Events after `after_seq`, oldest first, at most `max`.
    pub fn events(&self, after_seq: u64, max: usize) -> Result<Vec<ObjectEvent>, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for row in table.range(after_seq.saturating_add(1)..)?.take(max) {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// Drops the delivered events, up to and including `up_to_seq`.
    pub fn ack_events(&self, up_to_seq: u64) -> Result<(), StorageError> {
        let txn = write_txn(&self.inner.db)?;
        txn.open_table(EVENTS)?.retain_in(..=up_to_seq, |_, _| false)?;
        txn.commit()?;
        Ok(())
    }

    // ---- multipart uploads ----

    pub fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        checksum_algorithm: Option<ChecksumAlgorithm>,
        checksum_type: Option<ChecksumType>,
    ) -> Result<String, StorageError> {
        validate_key(key)?;
        if checksum_type == Some(ChecksumType::FullObject)
            && checksum_algorithm.is_some_and(|a| !a.full_object_capable())
        {
            return Err(StorageError::InvalidArgument("FULL_OBJECT checksums need a CRC algorithm".into()));
        }
        let checksum_type = checksum_algorithm.map(|_| checksum_type.unwrap_or(ChecksumType::Composite));
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let txn = write_txn(&self.inner.db)?;
        {
            let bucket_id = match txn.open_table(BUCKETS)?.get(bucket)? {
                Some(v) => decode::<BucketRecord>(v.value())?.id,
                None => return Err(StorageError::NoSuchBucket(bucket.to_owned())),
            };
            let rec = UploadRecord {
                bucket: bucket.to_owned(),
                bucket_id,
                key: key.to_owned(),
                initiated_ms: now_ms(),
                meta,
                algorithm: checksum_algorithm,
                checksum_type,
            };
            txn.open_table(UPLOADS)?.insert(upload_id.as_str(), encode(&rec)?.as_slice())?;
        }
        txn.commit()?;
        Ok(upload_id)
    }

    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<UploadInfo, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let up = txn
            .open_table(UPLOADS)?
            .get(upload_id)?
            .map(|v| decode::<UploadRecord>(v.value()))
            .transpose()?;
        match up {
            Some(up) if up.bucket == bucket && up.key == key => Ok(upload_info(upload_id, up)),
            _ => Err(StorageError::NoSuchUpload(upload_id.to_owned())),
        }
    }

    /// The checksums to compute for a part: the upload's algorithm and whatever the client sent.
    pub(crate) fn part_algorithms(upload: &UploadInfo, expected: &Checksums) -> Vec<ChecksumAlgorithm> {
        let mut algs: Vec<_> = expected.algorithms().collect();
        algs.extend(upload.checksum_algorithm);
        algs
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part<S, E>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: S,
        expected: Checksums,
        content_md5: Option<String>,
    ) -> Result<PartInfo, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let upload = self.upload(bucket, key, upload_id)?;
        check_part_number(number)?;
        let staged =
            self.stage(bucket, body, Self::part_algorithms(&upload, &expected), MAX_PUT_SIZE).await?;
        self.finish_part(&upload, number, staged, expected, content_md5).await
    }

    pub(crate) async fn finish_part(
        &self,
        upload: &UploadInfo,
        number: u32,
        mut staged: Staged,
        expected: Checksums,
        content_md5: Option<String>,
    ) -> Result<PartInfo, StorageError> {
        check_part_number(number)?;
        checksum::verify_md5(content_md5.as_deref(), &staged.digests.md5)?;
        checksum::verify(&expected, &staged.digests.checksums)?;
        let rec = PartRecord {
            blob: staged.id.clone(),
            size: staged.size,
            etag: hex::encode(staged.digests.md5),
            modified_ms: now_ms(),
            checksums: staged.digests.checksums.clone(),
        };
        let upload_id = upload.upload_id.clone();
        self.commit(move |db| {
            let txn = write_txn(db)?;
            let old = {
                let up = txn
                    .open_table(UPLOADS)?
                    .get(upload_id.as_str())?
                    .map(|v| decode::<UploadRecord>(v.value()))
                    .transpose()?;
                match up {
                    Some(up) if up.bucket_id == staged.bucket_id => {}
                    _ => return Err(StorageError::NoSuchUpload(upload_id.clone())),
                }
                let mut parts = txn.open_table(PARTS)?;
                parts
                    .insert((upload_id.as_str(), number), encode(&rec)?.as_slice())?
                    .map(|v| decode::<PartRecord>(v.value()))
                    .transpose()?
            };
            txn.commit()?;
            staged.keep();
            let garbage = old.map(|o| (staged.bucket_id.clone(), o.blob)).into_iter().collect();
            let info = PartInfo {
                number,
                size: rec.size,
                etag: rec.etag,
                last_modified_ms: rec.modified_ms,
                checksums: rec.checksums,
            };
            Ok((info, garbage, false))
        })
        .await
    }

    /// UploadPartCopy: a range of an existing object becomes a part.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        src_bucket: &str,
        src_key: &str,
        range: Option<Range<u64>>,
        source_conditions: &Conditions,
    ) -> Result<PartInfo, StorageError> {
        let upload = self.upload(bucket, key, upload_id)?;
        check_part_number(number)?;
        let (_, stream, _) = self
            .get_with(src_bucket, src_key, source_conditions, |info| match &range {
                None => Ok(None),
                Some(r) if r.end > info.size || r.start >= r.end => Err(StorageError::InvalidRange),
                Some(r) => Ok(Some(r.clone())),
            })
            .await?;
        let staged = self
            .stage(bucket, stream, Self::part_algorithms(&upload, &Checksums::default()), MAX_PUT_SIZE)
            .await?;
        self.finish_part(&upload, number, staged, Checksums::default(), None).await
    }

    /// Parts after `after`, in order, at most `max`; and whether more follow.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(UploadInfo, Vec<PartInfo>, bool), StorageError> {
        let upload = self.upload(bucket, key, upload_id)?;
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(PARTS)?;
        let mut parts = Vec::new();
        let mut truncated = false;
        for row in table.range((upload_id, after.saturating_add(1))..=(upload_id, u32::MAX))? {
            if parts.len() == max {
                truncated = true;
                break;
            }
            let (k, v) = row?;
            let p: PartRecord = decode(v.value())?;
            parts.push(PartInfo {
                number: k.value().1,
                size: p.size,
                etag: p.etag,
                last_modified_ms: p.modified_ms,
                checksums: p.checksums,
            });
        }
        Ok((upload, parts, truncated))
    }

    /// Uploads in progress in `bucket` under `prefix`, by key then id, after the markers.
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> Result<(Vec<UploadInfo>, bool), StorageError> {
        self.bucket(bucket)?;
        let txn = self.inner.db.begin_read()?;
        let mut all = Vec::new();
        for row in txn.open_table(UPLOADS)?.iter()? {
            let (k, v) = row?;
            let up: UploadRecord = decode(v.value())?;
            if up.bucket == bucket && up.key.starts_with(prefix) {
                all.push(upload_info(k.value(), up));
            }
        }
        all.sort_by(|a, b| {
            (&a.key, a.initiated_ms, &a.upload_id).cmp(&(&b.key, b.initiated_ms, &b.upload_id))
        });
        let mut out: Vec<UploadInfo> = all
            .into_iter()
            .filter(|u| match key_marker {
                None => true,
                Some(km) => match upload_id_marker {
                    Some(um) if u.key == km => u.upload_id.as_str() > um,
                    _ => u.key.as_str() > km,
                },
            })
            .collect();
        let truncated = out.len() > max;
        out.truncate(max);
        Ok((out, truncated))
    }

    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        self.upload(bucket, key, upload_id)?;
        let upload_id = upload_id.to_owned();
        self.commit(move |db| {
            let txn = write_txn(db)?;
            let mut garbage = Vec::new();
            {
                let up = txn
                    .open_table(UPLOADS)?
                    .remove(upload_id.as_str())?
                    .map(|v| decode::<UploadRecord>(v.value()))
                    .transpose()?;
                let Some(up) = up else { return Err(StorageError::NoSuchUpload(upload_id.clone())) };
                let mut parts = txn.open_table(PARTS)?;
                for row in parts.range((upload_id.as_str(), 0)..=(upload_id.as_str(), u32::MAX))? {
                    let (_, v) = row?;
                    garbage.push((up.bucket_id.clone(), decode::<PartRecord>(v.value())?.blob));
                }
                parts.retain_in((upload_id.as_str(), 0)..=(upload_id.as_str(), u32::MAX), |_, _| false)?;
            }
            txn.commit()?;
            Ok(((), garbage, false))
        })
        .await
    }

    /// Assembles the listed parts into the object, in one commit that also ends the upload.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        list: &[CompletePart],
        full_object: Checksums,
        if_match: Option<String>,
        if_none_match: Option<String>,
    ) -> Result<ObjectInfo, StorageError> {
        let upload = self.upload(bucket, key, upload_id)?;
        if list.is_empty() {
            return Err(StorageError::InvalidArgument("the list of parts is empty".into()));
        }
        let stored: BTreeMap<u32, PartRecord> = {
            let txn = self.inner.db.begin_read()?;
            let table = txn.open_table(PARTS)?;
            let mut m = BTreeMap::new();
            for row in table.range((upload_id, 0)..=(upload_id, u32::MAX))? {
                let (k, v) = row?;
                m.insert(k.value().1, decode::<PartRecord>(v.value())?);
            }
            m
        };
        if list.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(StorageError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(list.len());
        for (i, want) in list.iter().enumerate() {
            let Some(p) = stored.get(&want.number) else {
                return Err(StorageError::InvalidPart(format!("part {} was not uploaded", want.number)));
            };
            if want.etag.trim_matches('"') != p.etag {
                return Err(StorageError::InvalidPart(format!("part {}'s ETag does not match", want.number)));
            }
            for alg in want.checksums.algorithms() {
                if want.checksums.get(alg) != p.checksums.get(alg) {
                    return Err(StorageError::InvalidPart(format!(
                        "part {}'s {} does not match",
                        want.number,
                        alg.as_str()
                    )));
                }
            }
            if i + 1 < list.len() && p.size < MIN_PART_SIZE {
                return Err(StorageError::EntityTooSmall);
            }
            chosen.push(p);
        }
        let etag = checksum::multipart_etag(&chosen.iter().map(|p| p.etag.as_str()).collect::<Vec<_>>());
        let (algorithms, checksum_type) = match (upload.checksum_algorithm, upload.checksum_type) {
            (Some(a), Some(ChecksumType::FullObject)) => (vec![a], ChecksumType::FullObject),
            (Some(_), _) => (vec![], ChecksumType::Composite),
            (None, _) => (vec![ChecksumAlgorithm::Crc64Nvme], ChecksumType::FullObject),
        };
        let bucket_id = upload_bucket_id(&self.inner.db, upload_id)?;
        let pieces: Vec<(String, u64)> = chosen.iter().map(|p| (p.blob.clone(), p.size)).collect();
        let body = Pieces {
            inner: self.inner.clone(),
            bucket_id,
            left: pieces.into(),
            opening: None,
            current: None,
        };
        let staged = self.stage(bucket, body, algorithms, u64::MAX).await?;
        let checksums = match (upload.checksum_algorithm, checksum_type) {
            (Some(a), ChecksumType::Composite) => {
                let values: Option<Vec<&str>> = chosen.iter().map(|p| p.checksums.get(a)).collect();
                let mut c = Checksums::default();
                c.set(a, values.and_then(|v| checksum::composite(a, &v)));
                c
            }
            _ => {
                checksum::verify(&full_object, &staged.digests.checksums)?;
                staged.digests.checksums.clone()
            }
        };
        let record = ObjectRecord {
            blob: staged.id.clone(),
            size: staged.size,
            etag,
            modified_ms: now_ms(),
            meta: upload.meta.clone(),
            checksums,
            checksum_type: Some(checksum_type),
            parts: Some(list.len() as u32),
        };
        let cond = WriteCondition { if_match, if_none_match };
        self.commit_object(
            bucket,
            key,
            staged,
            record,
            cond,
            EventKind::CompleteMultipartUpload,
            Some(upload_id.to_owned()),
        )
        .await
    }
}

fn upload_bucket_id(db: &Database, upload_id: &str) -> Result<String, StorageError> {
    let txn = db.begin_read()?;
    let up =
        txn.open_table(UPLOADS)?.get(upload_id)?.map(|v| decode::<UploadRecord>(v.value())).transpose()?;
    up.map(|u| u.bucket_id).ok_or_else(|| StorageError::NoSuchUpload(upload_id.to_owned()))
}

fn check_part_number(n: u32) -> Result<(), StorageError> {
    if (1..=MAX_PARTS).contains(&n) {
        Ok(())
    } else {
        Err(StorageError::InvalidArgument(format!("part numbers are 1 to {MAX_PARTS}")))
    }
}

/// A PUT computes what it was told to verify plus what it was asked to store.
pub(crate) fn put_algorithms(meta: &PutMeta) -> Vec<ChecksumAlgorithm> {
    let mut algs: Vec<_> = meta.checksums.algorithms().collect();
    algs.extend(meta.checksum_algorithm);
    algs
}
