//! The mapping from our spans to OTLP's protobuf messages.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as otlp;
use prost::Message;

use crate::{Span, Value};

/// The instrumentation scope every span is reported under.
pub(crate) const SCOPE_NAME: &str = "yun";

pub(crate) fn resource(service_name: &str) -> Resource {
    Resource {
        attributes: vec![key_value("service.name".to_owned(), Value::Str(service_name.to_owned()))],
        ..Default::default()
    }
}

/// One request body for `spans`, which it empties (the strings move into the message).
pub(crate) fn encode(resource: &Resource, spans: &mut Vec<Span>) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans: spans.drain(..).map(span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    request.encode_to_vec()
}

fn span(span: Span) -> otlp::Span {
    // The parent came in a `traceparent`, so it lives in another process: OTLP lets us say so
    // (bits 8 and 9), which backends use to tell a service's entry span from an internal one.
    let flags = if span.parent_span_id.is_some() {
        otlp::SpanFlags::ContextHasIsRemoteMask as u32 | otlp::SpanFlags::ContextIsRemoteMask as u32
    } else {
        otlp::SpanFlags::ContextHasIsRemoteMask as u32
    };
    otlp::Span {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id: span.parent_span_id.map(|id| id.to_vec()).unwrap_or_default(),
        flags,
        name: span.name,
        kind: otlp::span::SpanKind::Server as i32,
        start_time_unix_nano: span.start_unix_nanos,
        end_time_unix_nano: span.end_unix_nanos,
        attributes: span
            .attributes
            .into_iter()
            .map(|(key, value)| key_value(key.to_owned(), value))
            .collect(),
        // No status is UNSET: an invocation that did not fail says nothing more than that.
        status: span
            .error
            .map(|message| otlp::Status { message, code: otlp::status::StatusCode::Error as i32 }),
        ..Default::default()
    }
}

fn key_value(key: String, value: Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Int(i) => any_value::Value::IntValue(i),
        Value::Double(d) => any_value::Value::DoubleValue(d),
        Value::Bool(b) => any_value::Value::BoolValue(b),
    };
    KeyValue { key, value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}
