//! The lifecycle policy of a revision's instances, plugged into wasmtime-wasi-http's
//! `ProxyHandler` (the same worker machinery `wasmtime serve` uses): how a store is built,
//! how many requests an instance serves, how long it may take, and how long it stays warm.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use yun_telemetry::LogStream;

use crate::host::{GuestOutput, Host, InstanceShared, Limiter, OutboundPolicy};
use crate::revision::{RequestCtx, RevisionConfig};

/// Resource handles (streams, fields, requests) one instance may hold: WASI host calls
/// allocate host memory outside the guest's linear memory, so they need their own cap.
const MAX_RESOURCES: usize = 16 * 1024;

pub(crate) struct RevisionHandler {
    pub pre: ProxyPre<Host>,
    pub engine: wasmtime::Engine,
    pub config: Arc<RevisionConfig>,
    pub env: Vec<(String, String)>,
    pub outbound: Arc<[String]>,
}

impl HandlerState for RevisionHandler {
    type StoreData = Host;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiration, Worker>> {
        let config = &self.config;
        let shared =
            Arc::new(InstanceShared::new(config.log_sink.clone(), config.function.clone(), config.revision));
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.env)
            .stdout(GuestOutput { shared: shared.clone(), stream: LogStream::Stdout })
            .stderr(GuestOutput { shared: shared.clone(), stream: LogStream::Stderr });
        let mut table = wasmtime::component::ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let host = Host {
            table,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy {
                allowed: self.outbound.clone(),
                local: config.local.clone(),
                function: config.function.clone(),
                shared: shared.clone(),
            },
            limiter: Limiter { memory_limit: config.memory_bytes, shared: shared.clone() },
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limiter);
        // Yield to Tokio at every epoch tick: a guest in a busy loop then shares its thread,
        // and the expiration below gets polled to enforce the deadline.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);
        let proxy =
            tokio::time::timeout(config.timeout, self.pre.instantiate_async(&mut store)).await.map_err(
                |_| wasmtime::format_err!("instantiation did not finish within the function's timeout"),
            )??;
        let max_requests = match config.mode {
            yun_types::InstanceMode::PerRequest => 1,
            yun_types::InstanceMode::Reuse => config.max_reuse,
        };
        Ok(Instance {
            store,
            proxy,
            view: wasmtime_wasi_http::WasiHttpView::http,
            expiration: Expiration {
                idle_timeout: config.idle_timeout,
                request_timeout: config.timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX / 4)),
            },
            state: Worker { shared, max_requests },
        })
    }
}

/// Ends a worker that stayed idle past the keep-warm period, or whose request overran.
pub(crate) struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, start: Instant) -> Poll<()> {
        let me = self.get_mut();
        let timeout = match status {
            WorkerStatus::Idle => me.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => me.request_timeout,
        };
        match start.checked_add(timeout) {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                if me.sleep.deadline() != deadline {
                    me.sleep.as_mut().reset(deadline);
                }
                me.sleep.as_mut().poll(cx)
            }
            None => Poll::Pending,
        }
    }
}

pub(crate) struct Worker {
    shared: Arc<InstanceShared>,
    max_requests: usize,
}

impl WorkerState for Worker {
    type StoreData = Host;
    type RequestData = Arc<RequestCtx>;

    fn should_accept_request(&self, concurrent_count: usize, total_count: usize) -> ShouldAccept {
        if total_count >= self.max_requests || self.shared.last_request_failed() {
            ShouldAccept::Never
        } else if concurrent_count >= 1 {
            // wasi:http 0.2 handlers run one request at a time per instance.
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, Host>,
        request: Arc<RequestCtx>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + 'static + Send + Sync>> {
        let deadline = tokio::time::Instant::from_std(request.deadline);
        self.shared.begin(request);
        Box::pin(tokio::time::sleep_until(deadline))
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        if let Err(error) = result
            && let Some(request) = self.shared.current_request()
        {
            // The error that killed the instance (a trap, a deadline) belongs to the request it
            // was serving: the caller reports its cause, and the full trace with backtrace goes
            // to the function's logs where its author will look.
            let cause = match error.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => format!("wasm trap: {trap}"),
                None => error.root_cause().to_string(),
            };
            self.shared.log_failure(&format!("{error:#}"));
            request.set_failure(cause);
        }
        self.shared.finish();
        drop(store);
    }
}
