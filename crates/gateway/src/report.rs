//! Every invocation's REPORT, as Lambda writes one: whether it started cold, warm or after
//! waiting in the queue, how long the instance took to start (init) apart from how long the
//! function ran, and the status. It goes into the function's logs once the response body has
//! been sent (or the client went away), and the start kind into the response headers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use yun_activator::Temperature;
use yun_control_plane::body::{Body, BoxError};
use yun_telemetry::{LogEntry, LogSink, LogStream};

pub const START: &str = "x-yun-start";
pub const INIT_MS: &str = "x-yun-init-ms";

/// How an invocation came about, for its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via {
    /// `http`, `async`, `cron`, `queue`, `topic`, `function`, `invoke`.
    pub trigger: &'static str,
    /// Which attempt at an asynchronous invocation this is (1 = the first).
    pub attempt: u32,
}

impl Via {
    pub const HTTP: Via = Via { trigger: "http", attempt: 1 };
    pub const FUNCTION: Via = Via { trigger: "function", attempt: 1 };
    pub const INVOKE: Via = Via { trigger: "invoke", attempt: 1 };
}

/// Where the memory an invocation used is read from once it has ended.
pub(crate) enum Memory {
    Unknown,
    /// A wasm instance's linear memory, which its limiter tracks per request.
    Wasm(Arc<yun_runtime_wasm::RequestCtx>),
    /// What a process runtime measured (its cgroup's peak).
    Measured(yun_types::Used),
}

/// What the gateway says when it answers for the function (its error code and message), on
/// the response, for the invocation's record.
#[derive(Clone, Debug)]
pub(crate) struct Failure(pub String);

pub(crate) struct Report {
    /// Off only to measure what recording costs: then only the rollout's outcome counters
    /// (which steer traffic, not observe it) see the invocation.
    recording: bool,
    pub sink: Arc<dyn LogSink>,
    records: Option<Arc<yun_telemetry::Records>>,
    pub via: Via,
    /// Request body bytes the function was given.
    pub bytes_in: u64,
    pub error: Option<String>,
    pub memory: Memory,
    metrics: Arc<yun_telemetry::Metrics>,
    usage: Arc<yun_telemetry::Usage>,
    memory_bytes: u64,
    /// Response bytes sent so far.
    pub egress: u64,
    /// The W3C trace the invocation belongs to (empty: none).
    pub trace_id: String,
    /// The invocation's own span in it, and the caller's.
    pub span_id: String,
    pub parent_span_id: Option<String>,
    traces: Option<Arc<yun_traces::Exporter>>,
    /// Whose outcome counters this invocation's result goes into (the rollout controller
    /// judges a new revision by them).
    deployment: Arc<yun_activator::Deployment>,
    pub function: String,
    pub revision: u64,
    pub invocation_id: String,
    pub arrived: Instant,
    pub temperature: Option<Temperature>,
    pub status: u16,
}

impl Report {
    /// The report of one invocation of `deployment`'s revision, arrived now; `status` is what it
    /// says until the outcome is known.
    pub fn new(
        gateway: &crate::Gateway,
        deployment: &Arc<yun_activator::Deployment>,
        invocation_id: &str,
        status: u16,
    ) -> Self {
        let control = &gateway.control;
        Report {
            span_id: String::new(),
            parent_span_id: None,
            traces: gateway.traces.clone(),
            recording: control.recording(),
            sink: control.log_sink(),
            records: control.records().cloned(),
            via: Via::HTTP,
            bytes_in: 0,
            error: None,
            memory: Memory::Unknown,
            metrics: control.metrics().clone(),
            usage: control.usage().clone(),
            memory_bytes: deployment.revision.spec.limits.memory_bytes,
            egress: 0,
            trace_id: String::new(),
            deployment: deployment.clone(),
            function: deployment.revision.function.to_string(),
            revision: deployment.revision.number,
            invocation_id: invocation_id.to_string(),
            arrived: Instant::now(),
            temperature: None,
            status,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run time rounded up to whole milliseconds, as it is billed (and as `Usage` sums it).
fn billed_ms(d: Duration) -> u64 {
    ms(d).ceil() as u64
}

impl Report {
    /// How the invocation started (`warm`, `queued`, `cold`, `thawed`, `none`), how long its
    /// instance took to start or thaw, and how long it waited for one: what the REPORT line,
    /// the record, the metrics and the usage all derive from.
    fn start(&self) -> (&'static str, Option<Duration>, Duration) {
        match self.temperature {
            Some(Temperature::Warm) => ("warm", None, Duration::ZERO),
            Some(Temperature::Queued { waited }) => ("queued", None, waited),
            Some(Temperature::Cold { init, waited }) => ("cold", Some(init), waited),
            Some(Temperature::Thawed { thaw, waited }) => ("thawed", Some(thaw), waited),
            None => ("none", None, Duration::ZERO),
        }
    }

    /// How long the function ran of `total`: less any wait in the queue.
    fn run(&self, total: Duration) -> Duration {
        total.saturating_sub(self.start().2)
    }
}

impl Report {
    /// The REPORT line for an invocation that took `total` since arrival.
    fn line(&self, total: Duration, used: yun_types::Used) -> String {
        let (kind, init, waited) = self.start();
        let run = total.saturating_sub(waited);
        let mut line = format!(
            "REPORT Start: {kind} Duration: {:.2} ms Billed Duration: {} ms Memory Size: {} MB Total: {:.2} ms Status: {}",
            ms(run),
            billed_ms(run),
            self.memory_bytes >> 20,
            ms(total),
            self.status
        );
        if let Some(max) = used.max_memory_bytes {
            line.push_str(&format!(" Max Memory Used: {} MB", max.div_ceil(1 << 20)));
        }
        if let Some(cpu) = used.cpu_ms {
            line.push_str(&format!(" CPU: {cpu:.2} ms"));
        }
        if let Some(init) = init {
            line.push_str(&format!(" Init Duration: {:.2} ms", ms(init)));
        }
        if waited > Duration::ZERO {
            line.push_str(&format!(" Waited: {:.2} ms", ms(waited)));
        }
        if !self.trace_id.is_empty() {
            line.push_str(&format!(" Trace: {}", self.trace_id));
        }
        line
    }
}

impl Report {
    fn record(&self, now: u64, total: Duration, used: yun_types::Used) -> yun_telemetry::Record {
        let (start, init, waited) = self.start();
        let run = total.saturating_sub(waited);
        yun_telemetry::Record {
            id: self.invocation_id.clone(),
            function: self.function.clone(),
            revision: self.revision,
            trigger: self.via.trigger.into(),
            attempt: self.via.attempt,
            start_ms: now.saturating_sub(total.as_millis() as u64),
            start: start.into(),
            init_ms: init.map(ms),
            waited_ms: ms(waited),
            duration_ms: ms(run),
            billed_ms: billed_ms(run),
            memory_limit_bytes: self.memory_bytes,
            max_memory_bytes: used.max_memory_bytes,
            cpu_ms: used.cpu_ms,
            status: self.status,
            error: self.error.clone(),
            bytes_in: self.bytes_in,
            bytes_out: self.egress,
            trace_id: self.trace_id.clone(),
        }
    }
}

impl Report {
    /// The invocation as an OpenTelemetry span, named after the OpenTelemetry FaaS conventions
    /// (`faas.*` attributes, kind SERVER); `None` when it has no trace (a refused request).
    fn span(&self, now_ms: u64, total: Duration, used: yun_types::Used) -> Option<yun_traces::Span> {
        let trace_id = hex_array::<16>(&self.trace_id)?;
        let span_id = hex_array::<8>(&self.span_id)?;
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(now_ms * 1_000_000, |d| d.as_nanos() as u64);
        use yun_traces::Value::{Bool, Int, Str};
        let faas_trigger = match self.via.trigger {
            "http" => "http",
            "cron" => "timer",
            "async" | "queue" | "topic" => "pubsub",
            _ => "other",
        };
        let mut attributes = vec![
            ("faas.invocation_id", Str(self.invocation_id.clone())),
            ("faas.name", Str(self.function.clone())),
            ("faas.version", Str(self.revision.to_string())),
            ("faas.trigger", Str(faas_trigger.into())),
            ("faas.coldstart", Bool(matches!(self.temperature, Some(Temperature::Cold { .. })))),
            ("faas.max_memory", Int(self.memory_bytes as i64)),
            ("http.response.status_code", Int(i64::from(self.status))),
            ("yun.trigger", Str(self.via.trigger.into())),
            ("yun.attempt", Int(i64::from(self.via.attempt))),
            ("yun.billed_ms", Int(billed_ms(self.run(total)) as i64)),
        ];
        if let Some(max) = used.max_memory_bytes {
            attributes.push(("yun.max_memory_used", Int(max as i64)));
        }
        let error =
            self.error.clone().or_else(|| (self.status >= 500).then(|| format!("status {}", self.status)));
        Some(yun_traces::Span {
            trace_id,
            span_id,
            parent_span_id: self.parent_span_id.as_deref().and_then(hex_array::<8>),
            name: self.function.clone(),
            start_unix_nanos: end.saturating_sub(total.as_nanos() as u64),
            end_unix_nanos: end,
            error,
            attributes,
        })
    }
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl Drop for Report {
    fn drop(&mut self) {
        // A 5xx is the function's failure or the platform's on its behalf (trap, timeout,
        // overload); 4xx answers are the client's business.
        // One reading of the clock, so the REPORT line, the metrics and the usage agree.
        let elapsed = self.arrived.elapsed();
        self.deployment.outcomes.record(self.status < 500, elapsed);
        if !self.recording {
            return;
        }
        let init = self.start().1.map(|d| d.as_secs_f64());
        self.metrics.observe(yun_telemetry::Observation {
            labels: &self.deployment.metric_labels,
            status: self.status,
            seconds: elapsed.as_secs_f64(),
            init_seconds: init,
        });
        let run = self.run(elapsed);
        let now = yun_types::now_ms();
        let used = match &self.memory {
            Memory::Unknown => yun_types::Used::default(),
            Memory::Wasm(ctx) => {
                yun_types::Used { max_memory_bytes: Some(ctx.max_memory_bytes()), cpu_ms: None }
            }
            Memory::Measured(used) => *used,
        };
        // The same rounding as the REPORT line's Billed Duration, so the two always agree.
        self.usage.record(
            &self.function,
            now,
            yun_telemetry::Metered {
                run_ms: billed_ms(run) as f64,
                memory_bytes: self.memory_bytes,
                error: self.status >= 500,
                egress_bytes: self.egress,
                cpu_us: used.cpu_ms.map(|ms| (ms * 1000.0).round() as u64),
            },
        );
        let line = self.line(elapsed, used);
        if let Some(records) = &self.records {
            records.record(self.record(now, elapsed, used));
        }
        if let Some(traces) = &self.traces
            && let Some(span) = self.span(now, elapsed, used)
        {
            traces.export(span);
        }
        self.sink.emit(LogEntry {
            ts_ms: now,
            function: std::mem::take(&mut self.function),
            revision: self.revision,
            invocation_id: std::mem::take(&mut self.invocation_id),
            stream: LogStream::Platform,
            line,
        });
    }
}

/// Marks the response with how the invocation started and hands the report to its body, which
/// files it when it is done.
pub(crate) fn attach(mut response: http::Response<Body>, mut report: Report) -> http::Response<Body> {
    report.status = response.status().as_u16();
    if let Some(Failure(message)) = response.extensions_mut().remove::<Failure>() {
        report.error = Some(message);
    }
    let temperature = response.extensions_mut().remove::<Temperature>().or(report.temperature);
    report.temperature = temperature;
    let headers = response.headers_mut();
    match temperature {
        Some(Temperature::Warm) => {
            headers.insert(START, HeaderValue::from_static("warm"));
        }
        Some(Temperature::Queued { .. }) => {
            headers.insert(START, HeaderValue::from_static("queued"));
        }
        Some(Temperature::Cold { init, .. }) => {
            headers.insert(START, HeaderValue::from_static("cold"));
            if let Ok(v) = HeaderValue::from_str(&format!("{:.2}", ms(init))) {
                headers.insert(INIT_MS, v);
            }
        }
        Some(Temperature::Thawed { thaw, .. }) => {
            headers.insert(START, HeaderValue::from_static("thawed"));
            if let Ok(v) = HeaderValue::from_str(&format!("{:.2}", ms(thaw))) {
                headers.insert(INIT_MS, v);
            }
        }
        None => {}
    }
    response.map(|inner| ReportBody { inner, report: Some(report) }.boxed_unsync())
}

struct ReportBody {
    inner: Body,
    /// Filed when the body ends or is dropped, whichever comes first.
    report: Option<Report>,
}

impl http_body::Body for ReportBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.report.take();
            }
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if let Some(r) = self.report.as_mut() {
                    r.egress += n;
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
