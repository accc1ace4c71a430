//! The host side of one instance: the store data, what the guest may reach (WASI proxy
//! interfaces, outbound HTTP by allow-list), how much memory it may take, and where its
//! stdout/stderr lines go.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use yun_telemetry::{LogEntry, LogSink, LogStream};

use crate::revision::RequestCtx;

pub(crate) struct Host {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: OutboundPolicy,
    pub limiter: Limiter,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// WASI p2 plus wasi:http. Components built with Rust's standard library import
/// `wasi:cli/environment`, `exit` and `terminal-*` beyond the strict proxy world, so those must
/// link too. Filesystem and sockets link but reach nothing: no directory is preopened and the
/// context grants no network.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    // yun's own interfaces: linked for every guest, used by those that import them.
    crate::storage::add_to_linker(&mut linker)?;
    crate::keyvalue::add_to_linker(&mut linker)?;
    crate::sqlite::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Outbound HTTP is denied unless the destination host is on the function's allow-list; yun's
/// own API (`http://yun.internal/`) is always reachable, served in-process.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

pub(crate) struct OutboundPolicy {
    pub allowed: Arc<[String]>,
    pub local: Option<Arc<dyn yun_types::local::LocalApi>>,
    /// Who is calling, for the local API's scoped rights.
    pub function: Arc<str>,
    /// Which request the instance serves, whose trace its outbound calls continue.
    pub shared: Arc<InstanceShared>,
}

impl OutboundPolicy {
    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.allowed.iter().any(|rule| {
            if rule == "*" {
                return true;
            }
            let (rule_host, rule_port) = match rule.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().ok()),
                None => (rule.as_str(), None),
            };
            if rule_port.is_some() && rule_port != port {
                return false;
            }
            match rule_host.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == rule_host.to_ascii_lowercase(),
            }
        })
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let _ = fut;
        let mut request = request;
        // The invocation's W3C trace goes on into what the function calls (another function,
        // or a service), unless the guest sent a trace context of its own.
        if !request.headers().contains_key(TRACEPARENT)
            && let Some(trace) = self.shared.current_request().and_then(|r| r.traceparent().cloned())
        {
            request.headers_mut().insert(TRACEPARENT, trace);
        }
        if request.uri().host() == Some(yun_types::local::LOCAL_HOST)
            && let Some(local) = self.local.clone()
        {
            let caller = self.function.clone();
            return Box::new(async move {
                use http_body_util::BodyExt;
                let (parts, body) = request.into_parts();
                let body = http_body_util::Limited::new(body, yun_types::local::MAX_LOCAL_BODY)
                    .collect()
                    .await
                    .map_err(|e| {
                        wasmtime_wasi_http::Error::InternalError(Some(format!("reading the request: {e}")))
                    })?
                    .to_bytes();
                let mut request = http::Request::from_parts(parts, body);
                // The guest acts as its function: it gets that function's scoped rights.
                if !request.headers().contains_key(http::header::AUTHORIZATION)
                    && let Ok(v) =
                        http::HeaderValue::from_str(&format!("Bearer {}", local.token_for(&caller)))
                {
                    request.headers_mut().insert(http::header::AUTHORIZATION, v);
                }
                let response = local.call(&caller, request).await;
                let response = response
                    .map(|b| http_body_util::Full::new(b).map_err(|never| match never {}).boxed_unsync());
                Ok((response, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>))
            });
        }
        let uri = request.uri();
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        let allowed = uri.host().is_some_and(|h| self.allows(h, port));
        Box::new(async move {
            if !allowed {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// Grows of linear memory beyond the function's limit trap (rather than return -1, which most
/// guest allocators turn into an opaque abort), and the request is marked so the caller can say
/// `memory_limit_exceeded`.
pub(crate) struct Limiter {
    pub memory_limit: u64,
    pub shared: Arc<InstanceShared>,
}

const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let used = self.shared.memory.load(std::sync::atomic::Ordering::Relaxed);
        let after = used + (desired - current) as u64;
        if after > self.memory_limit {
            self.shared.mark_memory_exceeded();
            return Err(wasmtime::format_err!(
                "memory limit exceeded: growing linear memory to {} MiB would pass the function's limit of {} MiB",
                after >> 20,
                self.memory_limit >> 20
            ));
        }
        self.shared.memory.store(after, std::sync::atomic::Ordering::Relaxed);
        if let Some(req) = &self.shared.lock().request {
            req.note_memory(after);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Longest line kept as one log entry; longer output is split.
const MAX_LINE: usize = 16 * 1024;
/// Log bytes one invocation may write; the rest is dropped with a note, so a chatty guest
/// cannot fill the disk or slow every other function's logging.
const MAX_LOG_BYTES_PER_INVOCATION: u64 = 1024 * 1024;

/// State an instance shares with its host-side helpers: the request it is serving now, and
/// partial output lines.
pub(crate) struct InstanceShared {
    pub sink: Arc<dyn LogSink>,
    pub function: Arc<str>,
    pub revision: u64,
    /// Linear memory the instance has, in bytes (its limiter grows it; requests read it).
    pub memory: std::sync::atomic::AtomicU64,
    current: Mutex<Current>,
}

#[derive(Default)]
struct Current {
    request: Option<Arc<RequestCtx>>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    logged: u64,
    truncated: bool,
}

impl InstanceShared {
    pub fn new(sink: Arc<dyn LogSink>, function: Arc<str>, revision: u64) -> Self {
        Self {
            sink,
            function,
            revision,
            memory: std::sync::atomic::AtomicU64::new(0),
            current: Mutex::new(Current::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attributes everything the instance does from now on to `request`.
    pub fn begin(&self, request: Arc<RequestCtx>) {
        let mut cur = self.lock();
        self.flush_partial(&mut cur);
        request.note_memory(self.memory.load(std::sync::atomic::Ordering::Relaxed));
        cur.request = Some(request);
        cur.logged = 0;
        cur.truncated = false;
    }

    pub fn current_request(&self) -> Option<Arc<RequestCtx>> {
        self.lock().request.clone()
    }

    pub fn last_request_failed(&self) -> bool {
        self.lock().request.as_ref().is_some_and(|r| r.failed())
    }

    /// Records why the instance died in the function's stderr log, attributed to its request.
    pub fn log_failure(&self, detail: &str) {
        let mut cur = self.lock();
        for line in detail.lines() {
            self.emit(&mut cur, LogStream::Stderr, format!("[yun] {line}").as_bytes());
        }
    }

    pub fn finish(&self) {
        let mut cur = self.lock();
        self.flush_partial(&mut cur);
    }

    fn mark_memory_exceeded(&self) {
        if let Some(req) = &self.lock().request {
            req.mark_memory_exceeded();
        }
    }

    fn flush_partial(&self, cur: &mut Current) {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let buf = std::mem::take(match stream {
                LogStream::Stdout => &mut cur.stdout,
                LogStream::Stderr | LogStream::Platform => &mut cur.stderr,
            });
            if !buf.is_empty() {
                self.emit(cur, stream, &buf);
            }
        }
    }

    fn write(&self, stream: LogStream, bytes: &[u8]) {
        let mut cur = self.lock();
        let mut buf = std::mem::take(match stream {
            LogStream::Stdout => &mut cur.stdout,
            LogStream::Stderr | LogStream::Platform => &mut cur.stderr,
        });
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + pos];
            self.emit(&mut cur, stream, line);
            start += pos + 1;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.emit(&mut cur, stream, &rest);
            rest = tail;
        }
        *match stream {
            LogStream::Stdout => &mut cur.stdout,
            LogStream::Stderr | LogStream::Platform => &mut cur.stderr,
        } = rest;
    }

    fn emit(&self, cur: &mut Current, stream: LogStream, line: &[u8]) {
        if cur.truncated {
            return;
        }
        cur.logged += line.len() as u64 + 1;
        let text = if cur.logged > MAX_LOG_BYTES_PER_INVOCATION {
            cur.truncated = true;
            "[yun] log output of this invocation exceeded 1 MiB; the rest was dropped".to_string()
        } else {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            String::from_utf8_lossy(line).into_owned()
        };
        let invocation_id = cur.request.as_ref().map_or_else(|| "-".to_string(), |r| r.invocation_id.clone());
        self.sink.emit(LogEntry {
            ts_ms: yun_types::now_ms(),
            function: self.function.to_string(),
            revision: self.revision,
            invocation_id,
            stream,
            line: text,
        });
    }
}

/// A guest's stdout or stderr, line-buffered into the log sink.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    pub shared: Arc<InstanceShared>,
    pub stream: LogStream,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.shared.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.shared.write(self.stream, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> OutboundPolicy {
        OutboundPolicy {
            allowed: rules.iter().map(|s| s.to_string()).collect(),
            local: None,
            function: "f".into(),
            shared: Arc::new(InstanceShared::new(Arc::new(Collect(Mutex::new(vec![]))), "f".into(), 1)),
        }
    }

    #[test]
    fn outbound_allow_list() {
        assert!(!policy(&[]).allows("example.com", Some(443)));
        assert!(policy(&["example.com"]).allows("Example.COM", Some(443)));
        assert!(!policy(&["example.com"]).allows("evil-example.com", Some(443)));
        assert!(policy(&["example.com:8080"]).allows("example.com", Some(8080)));
        assert!(!policy(&["example.com:8080"]).allows("example.com", Some(80)));
        assert!(policy(&["*.example.com"]).allows("api.example.com", Some(80)));
        assert!(!policy(&["*.example.com"]).allows("example.com", Some(80)));
        assert!(policy(&["*"]).allows("anything", None));
        assert!(policy(&["127.0.0.1"]).allows("127.0.0.1", Some(9)));
    }

    struct Collect(Mutex<Vec<LogEntry>>);
    impl LogSink for Collect {
        fn emit(&self, entry: LogEntry) {
            self.0.lock().unwrap().push(entry);
        }
    }

    #[test]
    fn output_is_split_into_lines_per_request() {
        let sink = Arc::new(Collect(Mutex::new(vec![])));
        let shared = InstanceShared::new(sink.clone(), "f".into(), 3);
        shared.begin(Arc::new(RequestCtx::new("a".into(), std::time::Instant::now())));
        shared.write(LogStream::Stdout, b"one\ntw");
        shared.write(LogStream::Stdout, b"o\r\nthree");
        shared.begin(Arc::new(RequestCtx::new("b".into(), std::time::Instant::now())));
        shared.write(LogStream::Stderr, b"err\n");
        shared.finish();
        let got: Vec<(String, String)> =
            sink.0.lock().unwrap().iter().map(|e| (e.invocation_id.clone(), e.line.clone())).collect();
        let want = [("a", "one"), ("a", "two"), ("a", "three"), ("b", "err")];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn chatty_invocations_are_capped() {
        let sink = Arc::new(Collect(Mutex::new(vec![])));
        let shared = InstanceShared::new(sink.clone(), "f".into(), 1);
        shared.begin(Arc::new(RequestCtx::new("a".into(), std::time::Instant::now())));
        let line = vec![b'x'; 1000];
        for _ in 0..2000 {
            shared.write(LogStream::Stdout, &line);
            shared.write(LogStream::Stdout, b"\n");
        }
        let entries = sink.0.lock().unwrap();
        assert!(entries.len() < 1100);
        assert!(entries.last().unwrap().line.contains("exceeded 1 MiB"));
    }
}
