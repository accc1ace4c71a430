//! Object storage through yun's own API (`/v1/storage/...`, the admin token): buckets, objects
//! streamed in and out (what `yun storage` uses), and the access keys S3 clients sign with.
//! Also the two loops that join the object store to the rest: the relay that turns its committed
//! changes (its outbox) into storage-trigger invocations, and the sampler that meters stored
//! bytes into usage.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::Response;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use yun_storage::{KeyScope, ObjectStore, PutMeta, StorageError};
use yun_types::{ErrorCode, Trigger, now_ms};

use crate::api::ObjectQuery;
use crate::body::{Body, BoxError};
use crate::{ApiError, ApiResult, ControlPlane, bad, body, internal, read_json_body};

/// The object store and how clients reach its S3 API.
pub struct Storage {
    pub store: Arc<ObjectStore>,
    pub keys: Arc<yun_storage::Keys>,
    /// The S3 endpoint, as clients should use it (`http://127.0.0.1:9000`).
    pub s3_url: String,
    /// Where the S3 API listens (functions in a sandbox reach it through a relay).
    pub s3_addr: std::net::SocketAddr,
    pub region: String,
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// How often stored bytes are sampled into usage.
const SAMPLE_EVERY: Duration = Duration::from_secs(30);

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let code = match e.status() {
            404 => ErrorCode::NotFound,
            409 | 412 => ErrorCode::Conflict,
            400 | 416 => ErrorCode::BadRequest,
            _ => {
                tracing::error!("object store: {e}");
                ErrorCode::Internal
            }
        };
        ApiError::new(code, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// Buckets the key may use; every bucket when absent.
    #[serde(default)]
    buckets: Option<Vec<String>>,
    #[serde(default)]
    read_only: bool,
}

impl ControlPlane {
    fn storage(&self) -> Result<&Storage, ApiError> {
        self.storage.as_ref().ok_or_else(|| {
            ApiError::new(ErrorCode::Unavailable, "object storage is off (yun up --s3-listen off)")
        })
    }

    pub(crate) fn list_buckets(&self) -> ApiResult {
        let s = self.storage()?;
        let buckets: Vec<_> = s
            .store
            .buckets()?
            .into_iter()
            .map(|b| json!({ "name": b.name, "created_ms": b.created_ms, "objects": b.objects, "bytes": b.bytes }))
            .collect();
        Ok(body::json(200, &json!({ "buckets": buckets, "s3_url": s.s3_url, "region": s.region })))
    }

    pub(crate) async fn create_bucket(&self, bucket: &str) -> ApiResult {
        let store = self.storage()?.store.clone();
        let b = bucket.to_string();
        store.create_bucket(&b).await?;
        Ok(body::json(201, &json!({ "bucket": bucket })))
    }

    pub(crate) async fn delete_bucket(&self, bucket: &str) -> ApiResult {
        let store = self.storage()?.store.clone();
        let _changing = self.changes.lock().await;
        let users: Vec<String> = self
            .store
            .functions()?
            .into_iter()
            .filter(|f| {
                f.triggers.iter().any(|t| matches!(t, Trigger::Storage { bucket: b, .. } if b == bucket))
            })
            .map(|f| f.name.to_string())
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("bucket {bucket} triggers {}: remove those triggers first", users.join(", ")),
            ));
        }
        let b = bucket.to_string();
        store.delete_bucket(&b).await?;
        Ok(body::json(200, &json!({ "deleted": bucket })))
    }

    pub(crate) fn list_objects(&self, bucket: &str, q: &ObjectQuery) -> ApiResult {
        let listing = self.storage()?.store.list(
            bucket,
            &q.prefix,
            q.delimiter.as_deref(),
            q.start_after.as_deref(),
            q.max,
        )?;
        let objects: Vec<_> = listing
            .objects
            .iter()
            .map(|o| {
                json!({
                    "key": o.key,
                    "size": o.size,
                    "etag": o.etag,
                    "last_modified_ms": o.last_modified_ms,
                    "content_type": o.meta.content_type,
                })
            })
            .collect();
        Ok(body::json(
            200,
            &json!({
                "bucket": bucket,
                "objects": objects,
                "common_prefixes": listing.common_prefixes,
                "truncated": listing.truncated,
                "next_start_after": listing.next_start_after,
            }),
        ))
    }

    /// Streams the request body into the object: nothing is visible until all of it is on disk.
    pub(crate) async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<String>,
        incoming: Body,
    ) -> ApiResult {
        let store = self.storage()?.store.clone();
        let stream = http_body_util::BodyStream::new(incoming).filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok::<_, BoxError>),
                Err(e) => Some(Err(e)),
            }
        });
        let mut meta = PutMeta::default();
        meta.meta.content_type = content_type;
        let info = store.put(bucket, key, Box::pin(stream), meta).await?;
        Ok(body::json(200, &json!({ "bucket": bucket, "key": key, "size": info.size, "etag": info.etag })))
    }

    pub(crate) async fn get_object(&self, bucket: &str, key: &str) -> ApiResult {
        let store = self.storage()?.store.clone();
        let (info, stream) = store.get(bucket, key, None).await?;
        let frames =
            stream.map(|chunk| chunk.map(http_body::Frame::data).map_err(|e| Box::new(e) as BoxError));
        let mut response = Response::builder()
            .status(200)
            .header(http::header::CONTENT_LENGTH, info.size)
            .header(http::header::ETAG, format!("\"{}\"", info.etag))
            .header("x-yun-last-modified-ms", info.last_modified_ms);
        if let Some(ct) = &info.meta.content_type {
            response = response.header(http::header::CONTENT_TYPE, ct.as_str());
        }
        response
            .body(http_body_util::StreamBody::new(frames).boxed_unsync())
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
    }

    pub(crate) async fn delete_object(&self, bucket: &str, key: &str) -> ApiResult {
        let store = self.storage()?.store.clone();
        let existed = store.delete(bucket, key).await?;
        Ok(body::json(200, &json!({ "bucket": bucket, "key": key, "deleted": existed })))
    }

    pub(crate) fn list_storage_keys(&self) -> ApiResult {
        let keys: Vec<_> = self
            .storage()?
            .keys
            .list()?
            .into_iter()
            .map(|k| {
                json!({
                    "access_key_id": k.id,
                    "buckets": k.scope.buckets,
                    "read_only": k.scope.read_only,
                    "created_ms": k.created_ms,
                })
            })
            .collect();
        Ok(body::json(200, &json!({ "keys": keys })))
    }

    pub(crate) async fn create_storage_key(&self, incoming: Body) -> ApiResult {
        let s = self.storage()?;
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let new: NewKey = if bytes.is_empty() {
            NewKey { buckets: None, read_only: false }
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid key request: {e}")))?
        };
        if let Some(buckets) = &new.buckets {
            for b in buckets {
                yun_storage::validate_bucket_name(b)?;
            }
        }
        let keys = s.keys.clone();
        let scope = KeyScope { buckets: new.buckets, read_only: new.read_only };
        let key = tokio::task::spawn_blocking(move || keys.create(scope)).await.map_err(internal)??;
        Ok(body::json(
            201,
            &json!({
                "access_key_id": key.id,
                "secret_access_key": key.secret,
                "buckets": key.scope.buckets,
                "read_only": key.scope.read_only,
                "s3_url": s.s3_url,
                "region": s.region,
            }),
        ))
    }

    pub(crate) async fn delete_storage_key(&self, id: &str) -> ApiResult {
        let keys = self.storage()?.keys.clone();
        let i = id.to_string();
        let removed = tokio::task::spawn_blocking(move || keys.remove(&i)).await.map_err(internal)??;
        if !removed {
            return Err(ApiError::new(ErrorCode::NotFound, format!("no access key {id}")));
        }
        Ok(body::json(200, &json!({ "deleted": id })))
    }

    /// The S3 endpoint and a key for one function revision, scoped to the buckets it declared
    /// (read-write): made once, under a name derived from the revision, and kept.
    pub fn storage_access(
        &self,
        function: &str,
        revision: u64,
        buckets: &[String],
    ) -> Option<yun_types::local::StorageAccess> {
        use sha2::Digest as _;
        let s = self.storage.as_ref()?;
        let digest = sha2::Sha256::digest(format!("{function}/{revision}").as_bytes());
        let id = format!("AKYNF{}", hex_upper(&digest[..8]));
        let scope = KeyScope { buckets: Some(buckets.to_vec()), read_only: false };
        match s.keys.ensure(&id, scope) {
            Ok(key) => Some(yun_types::local::StorageAccess {
                endpoint: s.s3_addr,
                access_key_id: key.id,
                secret_access_key: key.secret.unwrap_or_default(),
                region: s.region.clone(),
            }),
            Err(e) => {
                tracing::error!(function, revision, "making the function's storage key failed: {e}");
                None
            }
        }
    }

    /// Whether a revision `function` routes to (its split or a tag) declared `bucket`: functions
    /// reach only the buckets they were deployed with, through the S3 API and through yun's own.
    pub(crate) fn function_uses_bucket(&self, function: &str, bucket: &str) -> bool {
        self.declared(function, |s| &s.buckets).iter().any(|b| b == bucket)
    }

    /// What the revisions of `function` that take traffic declare (buckets, stores,
    /// databases), newest revision's first.
    pub(crate) fn declared(
        &self,
        function: &str,
        pick: impl Fn(&yun_types::RevisionSpec) -> &Vec<String>,
    ) -> Vec<String> {
        let Ok(name) = yun_types::FunctionName::new(function) else { return vec![] };
        let Ok(Some(f)) = self.store.function(&name) else { return vec![] };
        let mut out: Vec<String> = Vec::new();
        for n in f.routed_revisions().into_iter().rev() {
            if let Ok(Some(r)) = self.store.revision(&name, n) {
                for s in pick(&r.spec) {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
            }
        }
        out
    }

    /// The store or database `name` means for `function`: `name` itself if the function declared
    /// it; with no name, or `default` (as Spin's default database), its first declared one.
    pub(crate) fn resolve_declared(
        &self,
        function: &str,
        name: Option<&str>,
        pick: impl Fn(&yun_types::RevisionSpec) -> &Vec<String>,
    ) -> Option<String> {
        let declared = self.declared(function, pick);
        match name {
            Some(n) if declared.iter().any(|d| d == n) => Some(n.to_owned()),
            None | Some("default") => declared.into_iter().next(),
            Some(_) => None,
        }
    }

    /// The functions whose latest revision declares `name` (so it cannot be deleted under them).
    pub(crate) fn functions_declaring(
        &self,
        pick: impl Fn(&yun_types::RevisionSpec) -> &Vec<String>,
        name: &str,
    ) -> Result<Vec<String>, ApiError> {
        let mut users = Vec::new();
        for f in self.store.functions()? {
            if self.declared(f.name.as_str(), &pick).iter().any(|s| s == name) {
                users.push(f.name.to_string());
            }
        }
        Ok(users)
    }

    /// A storage trigger must name a bucket that exists.
    pub(crate) fn check_storage_trigger(&self, trigger: &Trigger) -> Result<(), ApiError> {
        let Trigger::Storage { bucket, .. } = trigger else { return Ok(()) };
        self.storage()?.store.bucket(bucket)?;
        Ok(())
    }

    /// Starts the relay from the store's outbox to the storage triggers, and the sampler of
    /// stored bytes. Both end with the server.
    pub fn spawn_storage_tasks(self: &Arc<Self>) {
        let Some(storage) = &self.storage else { return };
        let (store, region) = (storage.store.clone(), storage.region.clone());
        let waker = store.event_waker();
        let triggers = self.triggers.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                // Everything in the outbox is relayed, then dropped from it: at least once,
                // in commit order. A failure leaves it for the next round.
                let s = store.clone();
                let batch = match tokio::task::spawn_blocking(move || s.events(0, 256)).await {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => {
                        tracing::warn!("reading storage events failed: {e}");
                        Vec::new()
                    }
                    Err(_) => return,
                };
                let mut done = None;
                for e in &batch {
                    let change = yun_triggers::ObjectChange {
                        event: e.kind.name().to_string(),
                        bucket: e.bucket.clone(),
                        key: e.key.clone(),
                        size: e.size,
                        etag: e.etag.clone(),
                        sequencer: e.sequencer.clone(),
                        time_ms: e.time_ms,
                    };
                    match triggers.object_changed(&change, &region).await {
                        Ok(_) => done = Some(e.seq),
                        Err(err) => {
                            tracing::warn!(
                                bucket = e.bucket,
                                key = e.key,
                                "a storage event could not be stored: {err}"
                            );
                            break;
                        }
                    }
                }
                if let Some(seq) = done {
                    let s = store.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.ack_events(seq)).await {
                        tracing::warn!("acknowledging storage events failed: {e}");
                    }
                }
                if batch.len() == 256 && done.is_some() {
                    continue;
                }
                tokio::select! {
                    _ = waker.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        });

        let (store, usage) = (storage.store.clone(), self.usage.clone());
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut last = now_ms();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                let now = now_ms();
                match store.usage() {
                    Ok(buckets) => {
                        for (bucket, bytes, _) in buckets {
                            usage.record_stored(&format!("bucket:{bucket}"), now, bytes, now - last);
                        }
                    }
                    Err(e) => tracing::warn!("reading storage usage failed: {e}"),
                }
                last = now;
            }
        });
    }
}
