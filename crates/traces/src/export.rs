//! The exporter: a bounded hand-off on the invocation path, a background task that batches and
//! POSTs, retries and gives up.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::{Config, Span, TraceError, wire};

/// One attempt, connection included. OTLP's own default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries after the first attempt; with the backoff below a batch is given up after about 1.4 s
/// of waiting, so an outage costs spans rather than an ever-growing backlog.
const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long `shutdown` lets the flush take before abandoning what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// At most one warning per this long: a collector that is down fails every batch.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// A collector's answer is a small protobuf; anything bigger is not worth reading.
const MAX_RESPONSE: usize = 64 * 1024;

/// Sends spans to an OTLP/HTTP collector from a background task.
///
/// [`export`](Self::export) never waits: spans beyond `max_queue` (counting the batch being sent)
/// are dropped, as are batches the collector still refuses after a few retries, and both are
/// counted in [`dropped`](Self::dropped). Dropping the exporter without
/// [`shutdown`](Self::shutdown) still sends what is queued, once, in the background.
pub struct Exporter {
    tx: mpsc::UnboundedSender<Span>,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    max_queue: usize,
    /// Spans accepted and not yet exported or dropped: queued ones and the batch in flight.
    /// The channel itself is unbounded, this is its bound.
    held: AtomicUsize,
    dropped: AtomicU64,
    exported: AtomicU64,
    /// Set by `shutdown` and on drop: no more spans, no more retries.
    closing: AtomicBool,
    stop: Notify,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

impl Exporter {
    /// Checks the configuration and starts the background task on the current tokio runtime.
    /// Nothing is sent, nor the collector contacted, until the first span.
    pub fn start(config: Config) -> Result<Exporter, TraceError> {
        Self::start_with_tls(config, None)
    }

    /// `tls` replaces the Mozilla roots (tests use their own certificate authority).
    pub(crate) fn start_with_tls(
        config: Config,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Exporter, TraceError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TraceError::NoRuntime)?;
        if config.max_batch == 0 {
            return Err(TraceError::Config("max_batch must be at least 1"));
        }
        if config.max_queue == 0 {
            return Err(TraceError::Config("max_queue must be at least 1"));
        }
        if config.interval.is_zero() {
            return Err(TraceError::Config("the batch interval must be more than zero"));
        }
        let uri = traces_uri(&config.endpoint)?;
        let headers = header_map(&config.headers)?;
        let client = client(tls)?;

        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            max_queue: config.max_queue,
            held: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            stop: Notify::new(),
        });
        let worker = Worker {
            rx,
            shared: shared.clone(),
            client,
            uri,
            headers,
            resource: wire::resource(&config.service_name),
            max_batch: config.max_batch,
            interval: config.interval,
            warnings: Warnings::default(),
        };
        let task = runtime.spawn(worker.run());
        Ok(Exporter { tx, shared, task: Mutex::new(Some(task)) })
    }

    /// Hands a finished span over for export. Never blocks: when the buffer is full, or after
    /// `shutdown`, the span is dropped and counted.
    pub fn export(&self, span: Span) {
        let shared = &*self.shared;
        if shared.closing.load(Relaxed) {
            shared.dropped.fetch_add(1, Relaxed);
            return;
        }
        if shared.held.fetch_add(1, Relaxed) >= shared.max_queue {
            shared.held.fetch_sub(1, Relaxed);
            shared.dropped.fetch_add(1, Relaxed);
            return;
        }
        if self.tx.send(span).is_err() {
            // The task is gone (it only ends on shutdown, or by panicking).
            shared.held.fetch_sub(1, Relaxed);
            shared.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Spans given up: over `max_queue`, refused by the collector, or left at shutdown.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.shared.exported.load(Relaxed)
    }

    /// Sends what is buffered (once each, no retries) and stops the task; whatever is not sent
    /// within a few seconds is dropped. Spans exported afterwards are dropped. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Relaxed);
        self.shared.stop.notify_one();
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(mut task) = task else { return };
        if timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
        // An abandoned flush, or a span that slipped in as `closing` was being set.
        let left = self.shared.held.swap(0, Relaxed);
        self.shared.dropped.fetch_add(left as u64, Relaxed);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // The channel closing ends the task after one last send; this keeps that send from
        // retrying for long after nobody is interested.
        self.shared.closing.store(true, Relaxed);
    }
}

/// `<endpoint>/v1/traces`, unless the endpoint already is the traces URL.
fn traces_uri(endpoint: &str) -> Result<Uri, TraceError> {
    let invalid =
        |reason: &str| TraceError::Endpoint { endpoint: endpoint.to_owned(), reason: reason.to_owned() };
    let uri: Uri = endpoint.trim().parse().map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    let scheme = match uri.scheme_str() {
        Some("http") | Some("https") => uri.scheme().cloned().expect("a scheme"),
        Some(_) => {
            return Err(invalid(
                "the scheme must be http or https (this is OTLP/HTTP; gRPC is not supported)",
            ));
        }
        None => return Err(invalid("it needs a scheme: http://HOST:4318 or https://HOST")),
    };
    let Some(authority) = uri.authority().cloned() else {
        return Err(invalid("it has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(invalid(
            "credentials in the URL are not sent; give them as headers (OTEL_EXPORTER_OTLP_HEADERS)",
        ));
    }
    let base = uri.path().trim_end_matches('/');
    let mut path = if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") };
    if let Some(query) = uri.query() {
        path = format!("{path}?{query}");
    }
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| invalid(&e.to_string()))
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, TraceError> {
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        let invalid =
            |what: &str| TraceError::Headers { reason: format!("{name:?}: not a valid header {what}") };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| invalid("value"))?;
        // These are usually API keys: keep them out of debug output.
        value.set_sensitive(true);
        map.append(name, value);
    }
    map.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    Ok(map)
}

fn client(tls: Option<rustls::ClientConfig>) -> Result<HttpClient, TraceError> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    // The provider is named rather than taken from rustls' process default, which is ambiguous
    // (and panics) if anything ever enables a second one.
    let builder = match tls {
        Some(tls) => builder.with_tls_config(tls),
        None => builder
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| TraceError::Tls(e.to_string()))?,
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build(connector))
}

struct Worker {
    rx: mpsc::UnboundedReceiver<Span>,
    shared: Arc<Shared>,
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    resource: Resource,
    max_batch: usize,
    interval: Duration,
    warnings: Warnings,
}

impl Worker {
    async fn run(mut self) {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                () = self.shared.stop.notified() => break,
                n = self.rx.recv_many(&mut batch, self.max_batch) => if n == 0 { break },
            }
            // The interval runs from the batch's first span, so none waits longer than that.
            let deadline = Instant::now() + self.interval;
            let mut stopping = false;
            while batch.len() < self.max_batch {
                let room = self.max_batch - batch.len();
                tokio::select! {
                    biased;
                    () = self.shared.stop.notified() => { stopping = true; break }
                    n = self.rx.recv_many(&mut batch, room) => if n == 0 { stopping = true; break },
                    () = sleep_until(deadline) => break,
                }
            }
            self.send(&mut batch).await;
            if stopping {
                break;
            }
        }
        // The flush: what is queued now, without waiting for more.
        loop {
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            self.send(&mut batch).await;
        }
    }

    /// Sends `batch` (emptying it), retrying while that may help, and counts the outcome.
    async fn send(&mut self, batch: &mut Vec<Span>) {
        let spans = batch.len();
        let body = Bytes::from(wire::encode(&self.resource, batch));
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        let outcome = loop {
            match self.attempt(body.clone()).await {
                Ok(rejected) => break Ok(rejected),
                Err(failure) if failure.retry && retries < RETRIES && !self.shared.closing.load(Relaxed) => {
                    tracing::debug!(reason = %failure.reason, retries, "OTLP trace export failed; retrying");
                    sleep(backoff).await;
                    backoff *= 2;
                    retries += 1;
                }
                Err(failure) => break Err(failure.reason),
            }
        };
        match outcome {
            Ok((rejected, message)) => {
                let rejected = rejected.min(spans);
                self.shared.exported.fetch_add((spans - rejected) as u64, Relaxed);
                if rejected > 0 {
                    self.shared.dropped.fetch_add(rejected as u64, Relaxed);
                    let reason = format!("the collector rejected {rejected} of them: {message}");
                    self.warnings.warn(&self.uri, rejected, &reason);
                }
            }
            Err(reason) => {
                self.shared.dropped.fetch_add(spans as u64, Relaxed);
                self.warnings.warn(&self.uri, spans, &reason);
            }
        }
        self.shared.held.fetch_sub(spans, Relaxed);
    }

    /// One POST. Ok is the collector's partial-success count of rejected spans, and its message.
    async fn attempt(&self, body: Bytes) -> Result<(usize, String), Failure> {
        let mut request =
            Request::post(self.uri.clone()).body(Full::new(body)).expect("a request from a checked URI");
        *request.headers_mut() = self.headers.clone();
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| Failure::retry(chain(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(Failure {
                    retry: retryable(status),
                    reason: format!("the collector answered {status}"),
                });
            }
            // A 2xx is a success even if its body cannot be read: the spans arrived.
            let rejected = match Limited::new(response.into_body(), MAX_RESPONSE).collect().await {
                Ok(body) => ExportTraceServiceResponse::decode(body.to_bytes())
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| (usize::try_from(p.rejected_spans).unwrap_or(0), p.error_message))
                    .unwrap_or_default(),
                Err(_) => Default::default(),
            };
            Ok(rejected)
        };
        timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| Failure::retry(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())))?
    }
}

struct Failure {
    retry: bool,
    reason: String,
}

impl Failure {
    fn retry(reason: String) -> Failure {
        Failure { retry: true, reason }
    }
}

/// A busy or broken collector may recover; a 4xx other than these (a bad key, a wrong path)
/// will answer the same the next time.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// hyper's errors say "client error (Connect)"; the cause ("connection refused") is in the chain.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    batches: u64,
    spans: u64,
}

impl Warnings {
    fn warn(&mut self, uri: &Uri, spans: usize, reason: &str) {
        self.batches += 1;
        self.spans += spans as u64;
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < WARN_EVERY) {
            return;
        }
        tracing::warn!(
            endpoint = %uri,
            batches = self.batches,
            spans = self.spans,
            "OTLP trace export dropped spans (counts since the last such warning): {reason}"
        );
        self.last = Some(now);
        self.batches = 0;
        self.spans = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::traces_uri;

    #[test]
    fn traces_path_is_added_unless_present() {
        let uri = |s: &str| traces_uri(s).unwrap().to_string();
        assert_eq!(uri("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(uri("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(uri("https://otlp.example/otlp"), "https://otlp.example/otlp/v1/traces");
        assert_eq!(uri("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        assert_eq!(uri("http://c:4318/v1/traces/"), "http://c:4318/v1/traces");
        assert_eq!(uri("http://c/x?tenant=a"), "http://c/x/v1/traces?tenant=a");
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (endpoint, says) in [
            ("collector:4317", "scheme"),
            ("grpc://collector:4317", "gRPC is not supported"),
            ("localhost", "scheme"),
            ("http://user:pw@c:4318", "headers"),
            ("http:///v1/traces", "invalid"),
        ] {
            let err = traces_uri(endpoint).unwrap_err().to_string();
            assert!(err.contains(says), "{endpoint}: {err}");
        }
    }
}
