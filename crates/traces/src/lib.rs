//! Invocation spans and their export over OTLP to an OpenTelemetry collector, when one is
//! configured.
//!
//! [`Exporter`] takes finished spans without blocking, buffers a bounded number of them and
//! sends them in batches from a background task as OTLP/HTTP protobuf (`http://` or `https://`,
//! the latter with rustls and the Mozilla roots), retrying a collector that fails for a moment and
//! dropping (and counting) what it cannot deliver. [`parse_headers`] reads
//! `OTEL_EXPORTER_OTLP_HEADERS`.
//!
//! This crate sends finished spans; it does not decide trace ids (the gateway does, from the
//! caller's `traceparent`), measure anything, sample, or keep spans once sent or dropped. It
//! speaks OTLP/HTTP with protobuf only: no gRPC, no JSON.

use std::time::Duration;

mod export;
mod headers;
mod wire;

#[cfg(test)]
mod tests;

pub use export::Exporter;
pub use headers::parse_headers;

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
    #[error("invalid OTLP headers: {reason}")]
    Headers { reason: String },
    #[error("invalid trace export config: {0}")]
    Config(&'static str),
    #[error("the trace exporter must be started inside a tokio runtime")]
    NoRuntime,
    #[error("TLS setup for the OTLP exporter failed: {0}")]
    Tls(String),
}
