//! The control plane: the `/v1` management API that deploys, describes and removes functions,
//! divides their traffic among revisions (splits, tags, rollouts, rollbacks), maps custom
//! routes, keeps secrets, reconciles whole apps (`yun apply`), serves logs, and keeps the
//! activator's routing table and the live router in step with the store.
//!
//! It is never on the invocation path: the gateway serves functions from the activator's
//! in-memory table and the live router, which the control plane updates after each durable
//! change. It does not run guests and does not decide which function a URL addresses (the
//! router crate does, from the routes the control plane gives it).

pub mod api;
mod apply;
pub mod auth;
pub mod body;
mod events;
mod kv;
mod routes;
mod secrets;
mod sql;
mod storage;
mod traffic;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use yun_activator::Activator;
use yun_runtime_wasm::CompileError;
use yun_store::{BlobStore, MetadataStore, Rejected, StoreError};
use yun_telemetry::{Counters, LogStore};
use yun_types::{Digest, ErrorCode, Function, FunctionName, Revision, RevisionSpec, ScaleSpec, now_ms};

pub use api::{ApiError, Command, ROUTES};
pub use apply::{AppSpec, FunctionSpec, RevisionRef};
pub use auth::Auth;
use body::Body;
use body::Body as Incoming;
pub use routes::LiveRouter;
pub use storage::Storage;
pub use yun_secrets::Keyring;

/// Limits on what the management API accepts.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    pub max_artifact_bytes: u64,
    pub max_json_bytes: usize,
    /// What an uploaded code archive may unpack to.
    pub archive: yun_archive::Caps,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_artifact_bytes: 256 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            archive: yun_archive::Caps::default(),
        }
    }
}

pub struct ControlPlane {
    store: Arc<dyn MetadataStore>,
    blobs: BlobStore,
    activator: Arc<Activator>,
    logs: Arc<LogStore>,
    counters: Arc<Counters>,
    auth: Auth,
    public_url: String,
    limits: ApiLimits,
    shutdown: tokio::sync::watch::Receiver<bool>,
    keyring: Keyring,
    router: Arc<LiveRouter>,
    triggers: Arc<yun_triggers::Triggers>,
    metrics: Arc<yun_telemetry::Metrics>,
    usage: Arc<yun_telemetry::Usage>,
    records: Option<Arc<yun_telemetry::Records>>,
    recording: bool,
    storage: Option<Storage>,
    kv: Option<yun_kv::Kv>,
    sql: Option<yun_sql::Sql>,
    metrics_public: bool,
    data_dir: std::path::PathBuf,
    /// Held by every change, so two changes never interleave their read-check-write (two routes
    /// claiming one path, a traffic change racing a rollout step).
    changes: tokio::sync::Mutex<()>,
    /// Rollouts in progress as the controller last saw them (their results gathered since).
    rollouts: std::sync::Mutex<std::collections::HashMap<String, yun_types::Rollout>>,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Rejected(r) = e {
            return ApiError::new(r.code, r.message);
        }
        tracing::error!("store error: {e}");
        ApiError::new(ErrorCode::Internal, e.to_string())
    }
}

impl From<ApiError> for Rejected {
    fn from(e: ApiError) -> Self {
        Rejected::new(e.code, e.message)
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

type ApiResult = Result<Response<Body>, ApiError>;

pub struct ControlPlaneParts {
    pub store: Arc<dyn MetadataStore>,
    pub blobs: BlobStore,
    pub activator: Arc<Activator>,
    pub logs: Arc<LogStore>,
    pub counters: Arc<Counters>,
    pub auth: Auth,
    /// The base URL functions are reachable at, as users should type it.
    pub public_url: String,
    pub limits: ApiLimits,
    /// Flips to `true` when the server shuts down, ending long-lived responses (`logs -f`).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Seals and opens the secrets.
    pub keyring: Keyring,
    /// Where the gateway reads the routes in force.
    pub router: Arc<LiveRouter>,
    /// Asynchronous invocations, queue consumers and schedules.
    pub triggers: Arc<yun_triggers::Triggers>,
    /// What `/metrics` shows.
    pub metrics: Arc<yun_telemetry::Metrics>,
    /// Metered use, per function and day.
    pub usage: Arc<yun_telemetry::Usage>,
    /// One record per invocation; `None` when recording is off.
    pub records: Option<Arc<yun_telemetry::Records>>,
    /// Whether invocations are recorded at all (REPORT lines, metrics, usage, records).
    pub recording: bool,
    /// The object store, unless it is off.
    pub storage: Option<Storage>,
    /// The key-value stores, unless they are off.
    pub kv: Option<yun_kv::Kv>,
    /// The SQL databases, unless they are off.
    pub sql: Option<yun_sql::Sql>,
    /// `/metrics` without the admin token (for a Prometheus on a trusted network).
    pub metrics_public: bool,
    /// Where the stores' files are, for their sizes.
    pub data_dir: std::path::PathBuf,
}

impl ControlPlane {
    pub fn new(p: ControlPlaneParts) -> Self {
        Self {
            store: p.store,
            blobs: p.blobs,
            activator: p.activator,
            logs: p.logs,
            counters: p.counters,
            auth: p.auth,
            public_url: p.public_url.trim_end_matches('/').to_string(),
            limits: p.limits,
            shutdown: p.shutdown,
            keyring: p.keyring,
            router: p.router,
            triggers: p.triggers,
            metrics: p.metrics,
            usage: p.usage,
            records: p.records,
            recording: p.recording,
            storage: p.storage,
            kv: p.kv,
            sql: p.sql,
            metrics_public: p.metrics_public,
            data_dir: p.data_dir,
            changes: tokio::sync::Mutex::new(()),
            rollouts: Default::default(),
        }
    }

    pub fn triggers(&self) -> &Arc<yun_triggers::Triggers> {
        &self.triggers
    }

    pub fn metrics(&self) -> &Arc<yun_telemetry::Metrics> {
        &self.metrics
    }

    pub fn usage(&self) -> &Arc<yun_telemetry::Usage> {
        &self.usage
    }

    /// Whether invocations are recorded (off only to measure what recording costs).
    pub fn recording(&self) -> bool {
        self.recording
    }

    /// Where invocation records go, unless recording is off.
    pub fn records(&self) -> Option<&Arc<yun_telemetry::Records>> {
        self.records.as_ref()
    }

    /// `GET /v1/usage?since_days=N`: metered use per function and UTC day.
    fn usage_view(&self, query: Option<&str>) -> ApiResult {
        let mut since_days = 30u32;
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "since_days" => {
                    since_days = v.parse().map_err(|_| bad(format!("invalid since_days: {v:?}")))?
                }
                _ => return Err(bad(format!("unknown query parameter {k:?}"))),
            }
        }
        let today = yun_telemetry::day_of(now_ms());
        let rows: Vec<_> = self
            .usage
            .rows(today.saturating_sub(since_days))
            .into_iter()
            .map(|(function, day, r)| {
                json!({
                    "function": function,
                    "day": day_text(day),
                    "requests": r.requests,
                    "errors": r.errors,
                    "billed_ms": r.billed_ms,
                    "mib_ms": r.mib_ms,
                    "gb_seconds": r.gb_seconds(),
                    "egress_bytes": r.egress_bytes,
                    "cpu_ms": r.cpu_us as f64 / 1000.0,
                })
            })
            .collect();
        let stored: Vec<_> = self
            .usage
            .stored(today.saturating_sub(since_days))
            .into_iter()
            .map(|(store, day, byte_hours)| {
                json!({
                    "store": store,
                    "day": day_text(day),
                    "byte_hours": byte_hours,
                    // A month is 730 hours in AWS's pricing.
                    "gb_months": byte_hours / f64::from(1u32 << 30) / 730.0,
                })
            })
            .collect();
        Ok(body::json(200, &json!({ "usage": rows, "stored": stored })))
    }

    /// `GET /metrics`: the Prometheus exposition, with the gauges of state read now.
    pub fn serve_metrics(&self, headers: &http::HeaderMap) -> Response<Body> {
        if !self.metrics_public && !self.auth.check(headers) {
            return body::error(
                ErrorCode::Unauthorized,
                "/metrics needs `Authorization: Bearer <admin token>` (or start yun with --metrics-public)",
            );
        }
        let m = &self.metrics;
        m.instances.clear();
        for service in self.activator.services() {
            for d in service.deployments() {
                let Some(stats) = d.stats() else { continue };
                let labels = |state: &str| yun_telemetry::InstanceLabels {
                    function: d.revision.function.to_string(),
                    revision: d.revision.number.to_string(),
                    state: state.to_string(),
                };
                for (state, n) in [
                    ("ready", stats.ready),
                    ("starting", stats.starting),
                    ("desired", stats.desired),
                    ("frozen", stats.frozen),
                    ("in_flight", stats.in_flight),
                    ("queued", stats.waiting),
                ] {
                    m.instances.get_or_create(&labels(state)).set(n as i64);
                }
            }
        }
        m.queue_messages.clear();
        let events = self.triggers.queues().store();
        let now = now_ms();
        if let Ok(queues) = events.queues() {
            for q in queues {
                let Ok(stats) = events.stats(&q.name, now) else { continue };
                for (state, n) in
                    [("visible", stats.visible), ("in_flight", stats.in_flight), ("delayed", stats.delayed)]
                {
                    let labels =
                        yun_telemetry::QueueLabels { queue: q.name.clone(), state: state.to_string() };
                    m.queue_messages.get_or_create(&labels).set(n as i64);
                }
            }
        }
        for (store, file) in
            [("metadata", "meta.redb"), ("events", "events.redb"), ("records", "records.redb")]
        {
            let size = std::fs::metadata(self.data_dir.join(file)).map_or(0, |m| m.len());
            m.store_bytes
                .get_or_create(&yun_telemetry::StoreLabels { store: store.to_string() })
                .set(size as i64);
        }
        m.resident_bytes.set(resident_bytes() as i64);
        Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, yun_telemetry::Metrics::CONTENT_TYPE)
            .body(body::full(m.encode()))
            .expect("valid response")
    }

    /// The routes in force, for the gateway.
    pub fn router(&self) -> &LiveRouter {
        &self.router
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn log_store(&self) -> &LogStore {
        &self.logs
    }

    /// Where yun's own lines about invocations go (the function's logs).
    pub fn log_sink(&self) -> Arc<dyn yun_telemetry::LogSink> {
        self.logs.clone()
    }

    /// Puts every function's routing back into the activator and the custom routes back into
    /// the router after a restart, and removes artifacts nothing refers to (uploads whose deploy
    /// never finished).
    pub async fn restore(&self) -> Result<usize, StoreError> {
        let functions = self.store.functions()?;
        for function in &functions {
            // Provisioned instances come back with the server; the rest wait for requests.
            if let Err(e) = self.publish(function, false).await {
                tracing::error!(function = %function.name, "cannot serve after the restart: {}", e.message);
            }
        }
        let routes = self.store.routes()?;
        match yun_router::Routes::new(routes) {
            Ok(routes) => self.router.set(routes),
            Err(e) => tracing::error!("the stored routes do not load: {e}"),
        }
        let referenced = self.store.referenced_artifacts()?;
        for digest in self.blobs.artifacts()? {
            if !referenced.contains(&digest) {
                self.blobs.remove_artifact(&digest)?;
            }
        }
        self.blobs.prune_compiled_except(self.activator.runtime().fingerprint())?;
        Ok(functions.len())
    }

    /// Makes the activator route `function` as its record says, with a deployment for every
    /// revision its traffic or tags name. With `warm`, deployments that are new are brought up
    /// (code loaded, min instances started) before traffic moves to them, so a traffic change
    /// under load meets no cold start it could have avoided; without, only their min instances
    /// start, in the background.
    pub(crate) async fn publish(&self, function: &Function, warm: bool) -> Result<(), ApiError> {
        let mut revisions = Vec::new();
        for n in function.routed_revisions() {
            let revision = self.store.revision(&function.name, n)?.ok_or_else(|| {
                ApiError::new(ErrorCode::Internal, format!("revision {n} of {} is missing", function.name))
            })?;
            let secrets = self.resolve_secrets(&revision.spec)?;
            revisions.push((revision, secrets));
        }
        let prepared = self.activator.prepare(function, revisions);
        for deployment in &prepared.fresh {
            if warm {
                // A failure here is reported by the first request, which tries again.
                if let Err(e) = self.activator.prewarm(deployment).await {
                    tracing::warn!(function = %function.name, "revision {} did not load: {e}", deployment.revision.number);
                }
            } else if deployment.scale().min_instances > 0 {
                let (activator, deployment) = (self.activator.clone(), deployment.clone());
                tokio::spawn(async move {
                    if let Err(e) = activator.prewarm(&deployment).await {
                        tracing::warn!(function = %deployment.revision.function, "min instances did not start: {e}");
                    }
                });
            }
        }
        self.activator.commit(prepared);
        self.configure_triggers(function)?;
        Ok(())
    }

    pub fn function_url(&self, name: &FunctionName) -> String {
        format!("{}/fn/{name}/", self.public_url)
    }

    /// Serves one management request. Never panics on client input; every failure is a JSON
    /// error with the right status.
    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let command = match api::parse(req.method(), req.uri().path(), req.uri().query()) {
            Ok(c) => c,
            Err(e) => return body::error(e.code, e.message),
        };
        let admin = self.auth.check(req.headers());
        // A function's scoped token may use queues and topics, nothing that changes the platform.
        let caller =
            (!admin && command.open_to_functions()).then(|| self.auth.function_of(req.headers())).flatten();
        let as_function = caller.is_some();
        let mut command = command;
        if let Some(function) = &caller {
            type Pick = fn(&yun_types::RevisionSpec) -> &Vec<String>;
            let wanted: Option<(String, &str, Pick)> = match (command.kv_store(), command.sql_db()) {
                (Some(store), _) => Some((store.to_owned(), "--kv", |s| &s.kv)),
                (None, Some(db)) => Some((db.to_owned(), "--sql", |s| &s.sql)),
                (None, None) => None,
            };
            if let Some((name, flag, pick)) = wanted {
                match self.resolve_declared(function, Some(&name), pick) {
                    Some(store) if store != name => command.rename_store(store),
                    Some(_) => {}
                    None => {
                        return body::error(
                            ErrorCode::Forbidden,
                            format!("function {function} was not deployed with {flag} {name}"),
                        );
                    }
                }
            }
        }
        if let (Some(function), Some(bucket)) = (&caller, command.bucket())
            && !self.function_uses_bucket(function, bucket)
        {
            return body::error(
                ErrorCode::Unauthorized,
                format!("function {function} was not deployed with --bucket {bucket}"),
            );
        }
        if !admin && !as_function {
            let message = if req.headers().contains_key(http::header::AUTHORIZATION) {
                "the bearer token is not valid"
            } else {
                "this API needs `Authorization: Bearer <token>` (the admin token is in the data directory's admin-token file)"
            };
            return body::error(ErrorCode::Unauthorized, message);
        }
        let result = match command {
            Command::Status => Ok(self.status()),
            Command::UploadArtifact => self.upload(req.into_body()).await,
            Command::ListFunctions => self.list().await,
            Command::DescribeFunction(name) => self.describe(&name).await,
            Command::DeleteFunction(name) => self.delete(&name).await,
            Command::ListRevisions(name) => self.revisions(&name).await,
            Command::CreateRevision(name) => {
                let query = req.uri().query().map(str::to_string);
                self.create_revision(&name, query.as_deref(), req.into_body()).await
            }
            Command::Logs(name, mut query) => {
                let accept =
                    req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
                query.sse |= accept.contains("text/event-stream");
                self.logs(&name, query).await
            }
            Command::SetScale(name) => self.set_scale(&name, req.into_body()).await,
            Command::SetTraffic(name) => self.set_traffic(&name, req.into_body()).await,
            Command::Rollback(name) => self.rollback(&name, req.into_body()).await,
            Command::SetTag(name, tag) => self.set_tag(&name, &tag, req.into_body()).await,
            Command::DeleteTag(name, tag) => self.delete_tag(&name, &tag).await,
            Command::ListRoutes => self.list_routes(),
            Command::AddRoute => self.add_route(req.into_body()).await,
            Command::DeleteRoute { host, path } => self.delete_route(host.as_deref(), &path).await,
            Command::ListSecrets => self.list_secrets(),
            Command::SetSecret(name) => self.set_secret(&name, req.into_body()).await,
            Command::DeleteSecret(name) => self.delete_secret(&name).await,
            Command::Apply { dry_run, prune } => self.apply(req.into_body(), dry_run, prune).await,
            Command::SetAsync(name) => self.set_async(&name, req.into_body()).await,
            Command::AddTrigger(name) => self.add_trigger(&name, req.into_body()).await,
            Command::DeleteTrigger(name, id) => self.delete_trigger(&name, &id).await,
            Command::ListInvocations(name) => self.list_invocations(&name, req.uri().query()),
            Command::RedriveFunction(name) => self.redrive_function(&name).await,
            Command::Invocation(id) => self.invocation(&id),
            Command::ListQueues => self.list_queues(),
            Command::CreateQueue(q) => self.create_queue(&q, req.into_body()).await,
            Command::DescribeQueue(q) => self.describe_queue(&q),
            Command::DeleteQueue(q) => self.delete_queue(&q).await,
            Command::SendMessages(q) => self.send_messages(&q, req.into_body()).await,
            Command::ReceiveMessages(q) => self.receive_messages(&q, req.into_body()).await,
            Command::DeleteMessages(q) => self.delete_messages(&q, req.into_body()).await,
            Command::ChangeVisibility(q) => self.change_visibility(&q, req.into_body()).await,
            Command::PurgeQueue(q) => self.purge_queue(&q),
            Command::RedriveQueue(q) => self.redrive_queue(&q, req.into_body()).await,
            Command::ListTopics => self.list_topics(),
            Command::CreateTopic(t) => self.create_topic(&t),
            Command::DeleteTopic(t) => self.delete_topic(&t),
            Command::Subscribe(t) => self.subscribe(&t, req.into_body()).await,
            Command::Unsubscribe(t) => self.unsubscribe(&t, req.into_body()).await,
            Command::Publish(t) => self.publish_topic(&t, req.into_body()).await,
            Command::Usage => self.usage_view(req.uri().query()),
            Command::ListBuckets => self.list_buckets(),
            Command::CreateBucket(b) => self.create_bucket(&b).await,
            Command::DeleteBucket(b) => self.delete_bucket(&b).await,
            Command::ListObjects(b, q) => self.list_objects(&b, &q),
            Command::PutObject(b, k) => {
                let content_type = req
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                self.put_object(&b, &k, content_type, req.into_body()).await
            }
            Command::GetObject(b, k) => self.get_object(&b, &k).await,
            Command::DeleteObject(b, k) => self.delete_object(&b, &k).await,
            Command::ListStorageKeys => self.list_storage_keys(),
            Command::CreateStorageKey => self.create_storage_key(req.into_body()).await,
            Command::DeleteStorageKey(id) => self.delete_storage_key(&id).await,
            Command::ListKvStores => self.list_kv_stores(),
            Command::CreateKvStore(s) => self.create_kv_store(&s, req.into_body()).await,
            Command::DeleteKvStore(s) => self.delete_kv_store(&s).await,
            Command::KvKeys(s, q) => self.kv_keys(&s, &q).await,
            Command::KvGet(s, k) => self.kv_get(&s, &k).await,
            Command::KvPut(s, p) => self.kv_put(&s, &p, req.into_body()).await,
            Command::KvDelete(s, k) => self.kv_delete(&s, &k).await,
            Command::KvIncr(s, k, by) => self.kv_incr(&s, &k, by).await,
            Command::KvCas(s, db) => self.kv_cas(&s, db, req.into_body()).await,
            Command::KvBatch(s, db) => self.kv_batch(&s, db, req.into_body()).await,
            Command::ListDatabases => self.list_databases().await,
            Command::SqlExecute(d) => self.sql_execute(&d, req.into_body()).await,
            Command::SqlSchema(d) => self.sql_schema(&d).await,
            Command::DeleteDatabase(d) => self.delete_database(&d).await,
        };
        result.unwrap_or_else(|e| body::error(e.code, e.message))
    }

    fn status(&self) -> Response<Body> {
        body::json(
            200,
            &json!({
                "version": env!("CARGO_PKG_VERSION"),
                "engine": self.activator.runtime().fingerprint(),
                "counters": self.counters.snapshot(),
            }),
        )
    }

    /// Streams the upload to a staging file while hashing it, compiles it in the isolated
    /// compiler, and only then moves it into the content-addressed store.
    async fn upload(&self, mut incoming: Incoming) -> ApiResult {
        // Removed on every early return; once committed it has been renamed away.
        let staging = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(self.blobs.staging_dir())
            .map_err(internal)?
            .into_temp_path();
        let mut file = tokio::fs::OpenOptions::new().write(true).open(&staging).await.map_err(internal)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        // The first bytes tell a code archive from a component.
        let mut head = Vec::with_capacity(yun_archive::DETECT_LEN);
        while let Some(frame) = incoming.frame().await {
            let frame = frame
                .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("reading the upload: {e}")))?;
            if let Ok(data) = frame.into_data() {
                size += data.len() as u64;
                if size > self.limits.max_artifact_bytes {
                    return Err(ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!(
                            "the artifact is larger than the limit of {} MiB",
                            self.limits.max_artifact_bytes >> 20
                        ),
                    ));
                }
                hasher.update(&data);
                if head.len() < yun_archive::DETECT_LEN {
                    let take = (yun_archive::DETECT_LEN - head.len()).min(data.len());
                    head.extend_from_slice(&data[..take]);
                }
                file.write_all(&data).await.map_err(internal)?;
            }
        }
        file.sync_all().await.map_err(internal)?;
        drop(file);
        if size == 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidComponent,
                "the upload is empty: send the component's bytes as the request body",
            ));
        }
        let digest = Digest::parse(&hex::encode(hasher.finalize())).expect("sha256 hex is a digest");
        if yun_archive::detect(&head).is_some() {
            return self.unpack(staging, digest, size).await;
        }
        let fingerprint = self.activator.runtime().fingerprint().to_string();
        if self.blobs.has_artifact(&digest) && self.blobs.compiled_path(&fingerprint, &digest).exists() {
            return Ok(body::json(
                200,
                &json!({ "digest": digest, "size": size, "kind": "component", "existed": true }),
            ));
        }
        self.activator.precompile(&staging, &digest).await.map_err(|e| match e {
            CompileError::Invalid(m) | CompileError::ResourceLimit(m) => {
                ApiError::new(ErrorCode::InvalidComponent, m)
            }
            CompileError::Internal(m) => ApiError::new(ErrorCode::Internal, m),
        })?;
        self.blobs.commit_artifact(&staging, &digest).map_err(internal)?;
        Ok(body::json(201, &json!({ "digest": digest, "size": size, "kind": "component", "existed": false })))
    }

    /// Unpacks an uploaded code archive (of a process function) into its content-addressed,
    /// read-only directory. A rejected archive leaves nothing behind.
    async fn unpack(&self, archive: tempfile::TempPath, digest: Digest, size: u64) -> ApiResult {
        if self.blobs.has_code(&digest) {
            return Ok(body::json(
                200,
                &json!({ "digest": digest, "size": size, "kind": "code", "existed": true }),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("code-")
            .tempdir_in(self.blobs.staging_dir())
            .map_err(internal)?;
        let caps = self.limits.archive;
        let (dir, summary) = tokio::task::spawn_blocking(move || {
            let summary = yun_archive::extract(&archive, dir.path(), caps).map_err(|e| {
                ApiError::new(ErrorCode::InvalidArchive, format!("the archive was rejected: {e}"))
            })?;
            yun_archive::seal(dir.path()).map_err(internal)?;
            drop(archive);
            Ok::<_, ApiError>((dir, summary))
        })
        .await
        .map_err(internal)??;
        let blobs = self.blobs.clone();
        let d = digest.clone();
        tokio::task::spawn_blocking(move || blobs.commit_code(&dir.keep(), &d))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(body::json(
            201,
            &json!({ "digest": digest, "size": size, "kind": "code", "existed": false, "files": summary.files, "unpacked_bytes": summary.bytes }),
        ))
    }

    async fn create_revision(
        &self,
        name: &FunctionName,
        query: Option<&str>,
        incoming: Incoming,
    ) -> ApiResult {
        let rollout = traffic::parse_rollout_query(query)?;
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let spec: RevisionSpec = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid revision spec: {e}")))?;
        self.check_spec(&spec)?;
        let _changing = self.changes.lock().await;
        let store = self.store.clone();
        let n = name.clone();
        let now = now_ms();
        let (function, revision) = tokio::task::spawn_blocking(move || {
            store.create_revision(&n, spec, now, &mut |f| {
                traffic::route_new_revision(f, rollout.clone(), now);
                Ok(())
            })
        })
        .await
        .map_err(internal)??;
        // Load now (and start min instances) so the first request is warm; a failure here is
        // reported by that request.
        self.publish(&function, true).await?;
        Ok(body::json(201, &self.revision_view(&function, &revision)))
    }

    /// Everything about a revision spec the server can check before storing it.
    pub(crate) fn check_spec(&self, spec: &RevisionSpec) -> Result<(), ApiError> {
        spec.validate().map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
        if !self.blobs.has_artifact(&spec.artifact) {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("artifact {} has not been uploaded (POST it to /v1/artifacts first)", spec.artifact),
            ));
        }
        if spec.process.is_some()
            && let Err(why) = self.activator.process_runtime()
        {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("process functions are disabled on this server: {why}"),
            ));
        }
        match (&spec.process, self.blobs.has_code(&spec.artifact)) {
            (Some(_), false) => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "artifact {} is a wasm component, not code for a process function",
                        spec.artifact
                    ),
                ));
            }
            (None, true) => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("artifact {} is a code archive: deploy it as a process function", spec.artifact),
                ));
            }
            _ => {}
        }
        for bucket in &spec.buckets {
            yun_storage::validate_bucket_name(bucket)?;
        }
        for name in spec.kv.iter().chain(&spec.sql) {
            if !yun_types::is_store_name(name) {
                return Err(bad(format!(
                    "{name:?} is not a store or database name: 1 to 63 lowercase letters, digits and hyphens"
                )));
            }
        }
        for secret in spec.secrets.values() {
            if self.store.secret(secret)?.is_none() {
                return Err(bad(format!(
                    "secret {secret} is not set: set it first with `yun secret set {secret}`"
                )));
            }
        }
        Ok(())
    }

    fn revision_view(&self, function: &Function, revision: &Revision) -> serde_json::Value {
        json!({
            "function": function.name,
            "revision": revision.number,
            "digest": revision.spec.artifact,
            "url": self.function_url(&function.name),
            "created_at_ms": revision.created_at_ms,
            "limits": revision.spec.limits,
            "runtime": if revision.spec.process.is_some() { "process" } else { "wasm" },
            "instance": revision.spec.instance,
            "process": revision.spec.process,
            "private": revision.spec.private,
            "allow_outbound": revision.spec.allow_outbound,
            "buckets": revision.spec.buckets,
            "kv": revision.spec.kv,
            "sql": revision.spec.sql,
            // Values stay out of API responses: they may hold credentials.
            "env": revision.spec.env.keys().collect::<Vec<_>>(),
            "secrets": revision.spec.secrets,
            "traffic_percent": function.split().percent_of(revision.number),
            "tags": function.tags.iter().filter(|(_, n)| **n == revision.number).map(|(t, _)| t).collect::<Vec<_>>(),
        })
    }

    async fn list(&self) -> ApiResult {
        let store = self.store.clone();
        let functions = tokio::task::spawn_blocking(move || store.functions()).await.map_err(internal)??;
        let mut out = Vec::new();
        for f in functions {
            let digest = self.store.revision(&f.name, f.active_revision)?.map(|r| r.spec.artifact);
            out.push(json!({
                "name": f.name,
                "active_revision": f.active_revision,
                "latest_revision": f.latest_revision,
                "traffic": f.split(),
                "digest": digest,
                "url": self.function_url(&f.name),
                "updated_at_ms": f.updated_at_ms,
            }));
        }
        Ok(body::json(200, &json!({ "functions": out })))
    }

    fn require(&self, name: &FunctionName) -> Result<Function, ApiError> {
        self.store
            .function(name)?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no function named {name}")))
    }

    async fn describe(&self, name: &FunctionName) -> ApiResult {
        let function = self.require(name)?;
        let revisions: Vec<_> =
            self.store.revisions(name)?.iter().map(|r| self.revision_view(&function, r)).collect();
        Ok(body::json(
            200,
            &json!({
                "name": function.name,
                "url": self.function_url(name),
                "active_revision": function.active_revision,
                "latest_revision": function.latest_revision,
                "created_at_ms": function.created_at_ms,
                "updated_at_ms": function.updated_at_ms,
                "previous_revision": function.previous_revision,
                "traffic": function.split(),
                "sticky": function.sticky.as_ref().map(|s| s.to_string()),
                "tags": self.tags_view(&function),
                "rollout": traffic::rollout_view(function.rollout.as_ref()),
                "async": function.asynchronous,
                "triggers": function.triggers,
                "scale": self.scale_view(&function),
                "revisions": revisions,
            }),
        ))
    }

    /// The function's scaling settings (what was set and what applies) and its instances now.
    fn scale_view(&self, function: &Function) -> serde_json::Value {
        let Some(deployment) =
            self.activator.lookup(function.name.as_str()).and_then(|s| s.primary().cloned())
        else {
            return json!({ "set": function.scale });
        };
        let wasm = deployment.revision.spec.process.is_none();
        let stats = deployment.stats();
        let view = deployment.policy_view();
        // A wasm revision's pool holds its loaded code; its requests in flight are the wasm
        // instances running.
        let (current, ready, starting, desired) = match (&stats, wasm) {
            (None, _) => (0, 0, 0, 0),
            (Some(s), true) => (s.in_flight, s.in_flight, 0, s.in_flight),
            (Some(s), false) => (s.ready + s.starting, s.ready, s.starting, s.desired),
        };
        json!({
            "set": function.scale,
            "settings": deployment.scale(),
            "instances": {
                "current": current,
                "ready": ready,
                "starting": starting,
                "desired": desired,
                "frozen": stats.as_ref().map_or(0, |s| s.frozen),
                "in_flight": stats.as_ref().map_or(0, |s| s.in_flight),
                "queued": stats.as_ref().map_or(0, |s| s.waiting),
            },
            "loaded": stats.as_ref().is_some_and(|s| s.ready > 0),
            "autoscaler": view,
        })
    }

    async fn set_scale(&self, name: &FunctionName, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let patch: ScaleSpec = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid scale settings: {e}")))?;
        let function = self.require(name)?;
        let revision = self.store.revision(name, function.active_revision)?.ok_or_else(|| {
            ApiError::new(ErrorCode::Internal, format!("function {name} has no active revision"))
        })?;
        if revision.spec.process.is_none() && patch.freeze_ms.is_some_and(|f| f > 0) {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "freezing applies to process functions: an idle wasm revision is unloaded instead",
            ));
        }
        if revision.spec.process.is_none() && patch.concurrency.is_some_and(|c| c != 1) {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "a wasm instance serves one request at a time: cap concurrent instances with max instead \
                 of concurrency",
            ));
        }
        let mut scale = function.scale.clone();
        scale.merge(&patch);
        scale
            .validate(&yun_activator::scale_defaults(&revision))
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
        let _changing = self.changes.lock().await;
        let s = scale.clone();
        let updated = self
            .update_record(name, move |f| {
                f.scale = s.clone();
                Ok(())
            })
            .await?;
        self.activator.set_scale(name.as_str(), &scale);
        if let Some(service) = self.activator.lookup(name.as_str()) {
            for deployment in service.deployments() {
                if deployment.scale().min_instances > 0
                    && let Err(e) = self.activator.prewarm(deployment).await
                {
                    tracing::warn!(function = %name, "min instances did not start: {e}");
                }
            }
        }
        Ok(body::json(200, &json!({ "name": name, "scale": self.scale_view(&updated) })))
    }

    async fn revisions(&self, name: &FunctionName) -> ApiResult {
        let function = self.require(name)?;
        let revisions: Vec<_> =
            self.store.revisions(name)?.iter().map(|r| self.revision_view(&function, r)).collect();
        Ok(body::json(200, &json!({ "revisions": revisions })))
    }

    async fn delete(&self, name: &FunctionName) -> ApiResult {
        let _changing = self.changes.lock().await;
        self.delete_locked(name).await
    }

    /// Removes a function with everything it owns; the caller holds the change lock.
    pub(crate) async fn delete_locked(&self, name: &FunctionName) -> ApiResult {
        let revisions = self.store.revisions(name)?;
        let store = self.store.clone();
        let n = name.clone();
        let existed =
            tokio::task::spawn_blocking(move || store.delete_function(&n)).await.map_err(internal)??;
        if !existed {
            return Err(ApiError::new(ErrorCode::NotFound, format!("no function named {name}")));
        }
        self.activator.remove(name.as_str());
        self.metrics.forget(name.as_str(), revisions.iter().map(|r| r.number).max().unwrap_or(0));
        self.triggers.remove(name.as_str()).map_err(ApiError::from)?;
        let routes_removed = self.remove_routes_of(name)?;
        self.rollouts.lock().unwrap_or_else(|p| p.into_inner()).remove(name.as_str());
        self.logs.remove(name.as_str()).map_err(internal)?;
        if let Some(records) = &self.records {
            records.delete_function(name.as_str()).map_err(internal)?;
        }
        // Only this function's artifacts are candidates: an artifact uploaded for a deploy that
        // is still in flight must not be collected.
        let referenced = self.store.referenced_artifacts()?;
        let candidates: BTreeSet<Digest> = revisions.into_iter().map(|r| r.spec.artifact).collect();
        let mut removed = Vec::new();
        for digest in candidates.difference(&referenced) {
            self.blobs.remove_artifact(digest).map_err(internal)?;
            removed.push(digest.clone());
        }
        Ok(body::json(
            200,
            &json!({ "deleted": name, "artifacts_removed": removed, "routes_removed": routes_removed }),
        ))
    }

    async fn logs(&self, name: &FunctionName, query: api::LogQuery) -> ApiResult {
        self.require(name)?;
        let live = query.follow.then(|| self.logs.subscribe());
        let history = self.logs.read(name.as_str(), query.since_ms, query.limit).map_err(internal)?;
        let last_ts = history.last().map_or(query.since_ms, |e| e.ts_ms);
        let sse = query.sse;
        let frame = move |e: &yun_telemetry::LogEntry| {
            let json = serde_json::to_vec(e).expect("entries serialize");
            let mut out = Vec::with_capacity(json.len() + 8);
            if sse {
                // One event per line; JSON has no raw newlines, so one `data:` field holds it.
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
                out.extend_from_slice(b"\n\n");
            } else {
                out.extend_from_slice(&json);
                out.push(b'\n');
            }
            out
        };
        let mut lines = Vec::new();
        for entry in history.iter().filter(|e| query.matches(e)) {
            lines.extend_from_slice(&frame(entry));
        }
        let head = futures::stream::once(futures::future::ready(Ok::<_, body::BoxError>(Frame::data(
            Bytes::from(lines),
        ))));
        let content_type = if sse { "text/event-stream" } else { "application/x-ndjson" };
        let Some(rx) = live else {
            return Ok(stream_response(content_type, StreamBody::new(head).boxed_unsync()));
        };
        let function = name.to_string();
        let shutdown = self.shutdown.clone();
        let query = std::sync::Arc::new(query);
        let tail = futures::stream::unfold((rx, shutdown), move |(mut rx, mut shutdown)| {
            let function = function.clone();
            let query = query.clone();
            async move {
                loop {
                    let entry = tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => return None,
                        r = rx.recv() => r,
                    };
                    match entry {
                        Ok(e) if e.function == function && e.ts_ms >= last_ts && query.matches(&e) => {
                            return Some((Ok(Frame::data(Bytes::from(frame(&e)))), (rx, shutdown)));
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(stream_response(content_type, StreamBody::new(head.chain(tail)).boxed_unsync()))
    }
}

/// `YYYY-MM-DD` of a day since the Unix epoch.
fn day_text(day: u32) -> String {
    // Civil-from-days (Howard Hinnant's algorithm): a few lines of integer arithmetic, where a
    // date crate would be a dependency for one conversion.
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// This process's resident memory, from `/proc/self/statm` (pages).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

fn stream_response(content_type: &'static str, body: Body) -> Response<Body> {
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("valid response")
}

async fn read_json_body(mut incoming: Incoming, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(frame) = incoming.frame().await {
        let frame =
            frame.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the JSON body is larger than {max} bytes"),
                ));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("internal error: {e}");
    ApiError::new(ErrorCode::Internal, e.to_string())
}
