//! A wasm revision behind a pool. Its one pool instance is the revision's code in memory (the
//! deserialized component and its `InstancePre`), whose concurrency is the cap on wasm instances
//! running the function's requests at once. Scaling it to zero unloads the code; the next
//! request loads it again from the precompiled artifact on disk.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime_wasi_http::WasiBody;
use yun_pool::{AcquireError, Factory, Instance, Pool, PoolConfig, Start, Stats};
use yun_runtime_wasm::{
    CompileError, CompileSandbox, InvokeError, InvokeErrorKind, LoadedRevision, RequestCtx, RevisionConfig,
    Runtime,
};
use yun_store::BlobStore;
use yun_telemetry::Counters;
use yun_types::{Digest, Revision, ScaleSettings};

use crate::ActivateError;

/// Compiles an upload into the code cache, in the isolated compiler. On success the
/// precompiled code for `digest` is in place; on failure nothing is.
pub(crate) async fn precompile(
    runtime: &Runtime,
    blobs: &BlobStore,
    sandbox: &CompileSandbox,
    counters: &Counters,
    wasm: &Path,
    digest: &Digest,
) -> Result<(), CompileError> {
    let dest = blobs.compiled_path(runtime.fingerprint(), digest);
    let dir = dest.parent().expect("compiled paths have a parent");
    std::fs::create_dir_all(dir).map_err(|e| CompileError::Internal(e.to_string()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", digest.hex(), std::process::id()));
    let result = sandbox.compile(wasm, &tmp).await;
    if result.is_ok() {
        Counters::incr(&counters.compilations);
        let persisted = std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &dest))
            .and_then(|()| std::fs::File::open(dir)?.sync_all());
        if let Err(e) = persisted {
            let _ = std::fs::remove_file(&tmp);
            return Err(CompileError::Internal(format!("storing compiled code: {e}")));
        }
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Loads a revision's code: the pool's factory.
pub(crate) struct Loader {
    pub runtime: Arc<Runtime>,
    pub blobs: BlobStore,
    pub sandbox: CompileSandbox,
    pub counters: Arc<Counters>,
    pub revision: Revision,
    pub config: Arc<RevisionConfig>,
}

pub struct Loaded {
    revision: LoadedRevision,
    unloaded: AtomicBool,
}

impl Instance for Loaded {
    fn alive(&self) -> bool {
        !self.unloaded.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        // The code leaves memory when the last request on it drops its lease.
        self.unloaded.store(true, Ordering::Relaxed);
    }
}

impl Factory for Loader {
    type Instance = Loaded;
    type Error = Arc<ActivateError>;

    async fn start(&self, _why: Start) -> Result<Loaded, Arc<ActivateError>> {
        self.load().await.map_err(Arc::new)
    }
}

impl Loader {
    async fn load(&self) -> Result<Loaded, ActivateError> {
        let revision = &self.revision;
        let digest = &revision.spec.artifact;
        let cwasm = self.blobs.compiled_path(self.runtime.fingerprint(), digest);
        let mut compiled_now = false;
        if !cwasm.exists() {
            let wasm = self.blobs.artifact_path(digest);
            if !wasm.exists() {
                return Err(ActivateError::MissingArtifact(digest.clone()));
            }
            tracing::info!(function = %revision.function, revision = revision.number, "no precompiled code for this engine; compiling");
            precompile(&self.runtime, &self.blobs, &self.sandbox, &self.counters, &wasm, digest).await?;
            compiled_now = true;
        }
        let (runtime, config) = (self.runtime.clone(), self.config.clone());
        // Deserializing maps the file and links it: blocking work, off the async threads.
        let loaded = tokio::task::spawn_blocking(move || LoadedRevision::load(&runtime, &cwasm, config))
            .await
            .map_err(|e| ActivateError::Load(e.to_string()))?
            .map_err(|e| ActivateError::Load(e.to_string()))?;
        if !compiled_now {
            Counters::incr(&self.counters.compiled_cache_hits);
        }
        tracing::debug!(function = %revision.function, revision = revision.number, "revision loaded");
        Ok(Loaded { revision: loaded, unloaded: AtomicBool::new(false) })
    }
}

/// A wasm revision ready to take requests.
pub struct WasmRevision {
    pool: Pool<Loader>,
}

fn pool_config(s: &ScaleSettings) -> PoolConfig {
    PoolConfig {
        concurrency: s.max_instances,
        min_instances: u32::from(s.min_instances > 0),
        max_instances: 1,
        max_queue: s.max_queue as usize,
        queue_timeout: Duration::from_millis(s.queue_timeout_ms),
        // Unloaded code costs nothing to keep out of memory and milliseconds to bring back.
        freeze_for: Duration::ZERO,
        max_starting: 1,
    }
}

impl WasmRevision {
    pub(crate) fn new(loader: Loader, settings: &ScaleSettings) -> Self {
        Self { pool: Pool::new(loader, pool_config(settings)) }
    }

    pub fn config(&self) -> &RevisionConfig {
        &self.pool.factory().config
    }

    pub fn stats(&self) -> Stats {
        self.pool.stats()
    }

    pub(crate) fn set_scale(&self, settings: &ScaleSettings) {
        self.pool.set_config(pool_config(settings));
    }

    pub(crate) fn spawn_scaler<P: yun_pool::Policy>(&self, policy: P, tick: Duration) {
        self.pool.spawn_scaler(policy, tick);
    }

    pub(crate) fn stop(&self) {
        self.pool.stop();
    }

    /// Loads the code now, so the first request finds it in memory.
    pub(crate) async fn prewarm(&self) -> Result<(), ActivateError> {
        match self.pool.acquire("").await {
            Ok(_lease) => Ok(()),
            Err(AcquireError::Start(e)) => Err(ActivateError::Load(e.to_string())),
            Err(e) => Err(ActivateError::Load(acquire_error(e).message)),
        }
    }

    /// Runs one request on a wasm instance of this revision, loading the code first if it is
    /// not in memory; the response carries how the request found it (a [`yun_pool::Temperature`]
    /// in its extensions).
    pub async fn invoke(
        &self,
        request: http::Request<WasiBody>,
        ctx: Arc<RequestCtx>,
    ) -> Result<http::Response<WasiBody>, InvokeError> {
        let lease = self.pool.acquire(&ctx.invocation_id).await.map_err(acquire_error)?;
        let temperature = lease.temperature();
        let mut response = lease.revision.invoke(request, ctx).await?;
        response.extensions_mut().insert(temperature);
        Ok(response)
    }
}

fn acquire_error(e: AcquireError<Arc<ActivateError>>) -> InvokeError {
    match e {
        AcquireError::Overloaded { waiting } => InvokeError {
            kind: InvokeErrorKind::Overloaded,
            message: format!(
                "the function runs as many instances as its maximum allows and {waiting} requests are \
                 already waiting: retry later"
            ),
        },
        AcquireError::QueueTimeout(waited) => InvokeError {
            kind: InvokeErrorKind::Unavailable,
            message: format!("no instance of the function became free within {waited:?}: retry later"),
        },
        AcquireError::Start(e) => InvokeError {
            kind: match *e {
                ActivateError::ProcessesDisabled(_) => InvokeErrorKind::Unavailable,
                _ => InvokeErrorKind::Internal,
            },
            message: format!("the function could not be loaded: {e}"),
        },
        AcquireError::Stopped => InvokeError {
            kind: InvokeErrorKind::Unavailable,
            message: "this revision no longer serves".to_string(),
        },
    }
}
