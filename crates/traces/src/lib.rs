//! Invocation spans and their export over OTLP to an OpenTelemetry collector, when one is
//! configured.
//!
//! This crate sends finished spans; it does not decide trace ids (the gateway does, from the
//! caller's `traceparent`), measure anything or keep spans.

use std::time::Duration;

/// One finished span: an invocation, as the gateway saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's span, when the request carried a valid `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Set when the invocation failed: the span's status is then ERROR with this message.
    pub error: Option<String>,
    pub attributes: Vec<(&'static str, Value)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The collector's OTLP/HTTP endpoint: a base (`http://host:4318`, `/v1/traces` is added)
    /// or the full traces URL.
    pub endpoint: String,
    /// Extra request headers (for example an API key), as `OTEL_EXPORTER_OTLP_HEADERS` gives them.
    pub headers: Vec<(String, String)>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Spans per export request, at most.
    pub max_batch: usize,
    /// How long a span may wait for its batch to fill.
    pub interval: Duration,
    /// Spans buffered while the collector is slow or away; more are dropped (and counted).
    pub max_queue: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("invalid OTLP endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
}
