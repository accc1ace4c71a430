//! How an event becomes the HTTP request a function receives: a CloudEvents 1.0 envelope in
//! HTTP binary mode (`ce-*` headers, the payload as the body), and how a stored asynchronous
//! request is kept and replayed.
//!
//! The binary mode is six headers (spec: cloudevents/spec `http-protocol-binding.md` §3.1); they
//! are written here rather than through `cloudevents-sdk`, whose HTTP binding would bring its
//! own HTTP stack versions for what is a handful of header names.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};

/// Message attributes the platform sets; a publisher's own attributes never start with this.
pub const ATTR_PREFIX: &str = "yun.";
pub const ATTR_KIND: &str = "yun.kind";
pub const ATTR_METHOD: &str = "yun.method";
pub const ATTR_URI: &str = "yun.uri";
pub const ATTR_HEADERS: &str = "yun.headers";
pub const ATTR_SOURCE: &str = "yun.source";
pub const ATTR_TYPE: &str = "yun.type";
pub const ATTR_ID: &str = "yun.id";

/// What a stored event is, so the dispatcher knows how to deliver it.
pub const KIND_REQUEST: &str = "request";
pub const KIND_EVENT: &str = "event";

/// The CloudEvents attributes of one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEvent {
    pub id: String,
    /// A URI reference naming what produced it: `/yun/queues/orders`, `/yun/cron/report/nightly`.
    pub source: String,
    /// Reverse-DNS, e.g. `dev.yun.cron.tick`.
    pub kind: String,
    /// RFC 3339.
    pub time: String,
    pub subject: Option<String>,
}

pub const TYPE_INVOCATION: &str = "dev.yun.invocation";
pub const TYPE_CRON: &str = "dev.yun.cron.tick";
pub const TYPE_QUEUE_BATCH: &str = "dev.yun.queue.batch";
pub const TYPE_TOPIC: &str = "dev.yun.topic.message";
pub const TYPE_DESTINATION: &str = "dev.yun.invocation.result";
pub const TYPE_STORAGE: &str = "dev.yun.storage.object";

/// RFC 3339 in UTC with milliseconds, as CloudEvents' `time` wants.
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl CloudEvent {
    /// Adds the `ce-*` headers to `req` (binary mode: the body is the event's data as it is).
    pub fn apply<B>(&self, req: &mut Request<B>) {
        let h = req.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        set("ce-specversion", "1.0");
        set("ce-id", &self.id);
        set("ce-source", &self.source);
        set("ce-type", &self.kind);
        set("ce-time", &self.time);
        if let Some(s) = &self.subject {
            set("ce-subject", s);
        }
    }
}

/// An HTTP request kept for later: what `POST /fn/NAME/...` with
/// `x-yun-invocation-type: event` asked for, replayed as it came. The body is the message body;
/// the rest travels in its attributes.
pub fn store_request(method: &Method, uri: &str, headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let kept: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !skip_header(name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let mut attrs = BTreeMap::new();
    attrs.insert(ATTR_KIND.to_string(), KIND_REQUEST.to_string());
    attrs.insert(ATTR_METHOD.to_string(), method.as_str().to_string());
    attrs.insert(ATTR_URI.to_string(), uri.to_string());
    attrs.insert(ATTR_HEADERS.to_string(), serde_json::to_string(&kept).expect("strings serialize"));
    attrs
}

/// Headers that describe the original connection or ask for the asynchronous call itself;
/// replaying them would be wrong (a body's length is the stored body's, not the header's).
fn skip_header(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "content-length"
            | "transfer-encoding"
            | "expect"
            | "keep-alive"
            | "upgrade"
            | "authorization"
            | "x-yun-invocation-type"
            | "te"
            | "trailer"
            | "proxy-authorization"
    )
}

/// The request to deliver for a stored message: the replayed request for a stored HTTP
/// request, else a `POST /` whose body is the event's data.
pub fn request_for(attributes: &BTreeMap<String, String>, body: Bytes) -> Request<Bytes> {
    let kind = attributes.get(ATTR_KIND).map(String::as_str);
    let mut builder = Request::builder();
    if kind == Some(KIND_REQUEST) {
        let method = attributes.get(ATTR_METHOD).and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        builder = builder
            .method(method.unwrap_or(Method::POST))
            .uri(attributes.get(ATTR_URI).map_or("/", String::as_str));
        let headers: Vec<(String, String)> =
            attributes.get(ATTR_HEADERS).and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
    } else {
        builder = builder.method(Method::POST).uri("/");
        if let Some(ct) = attributes.get("content-type") {
            builder = builder.header(http::header::CONTENT_TYPE, ct);
        }
    }
    builder.body(body.clone()).unwrap_or_else(|_| {
        // A stored URI or header that no longer parses: deliver the body to `/`.
        Request::builder().method(Method::POST).uri("/").body(body).expect("a plain request builds")
    })
}

/// The delay before attempt `attempt + 1` (attempt counts from 1): `base` doubling per attempt,
/// capped at 5 minutes, with ±50 % jitter so retries of many events do not arrive together.
pub fn backoff_ms(base_ms: u64, attempt: u32, jitter: f64) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(5 * 60_000);
    ((capped as f64) * (0.5 + jitter.clamp(0.0, 1.0))) as u64
}

/// What a function said about a batch: the records it failed (Lambda's `batchItemFailures`
/// response), or `None` when the body is not such a report (then the status decides).
pub fn batch_item_failures(body: &[u8]) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Report {
        batch_item_failures: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        item_identifier: String,
    }
    let report: Report = serde_json::from_slice(body).ok()?;
    Some(report.batch_item_failures.into_iter().map(|i| i.item_identifier).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_request_replays_as_it_came_without_connection_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-custom", "1".parse().unwrap());
        headers.insert("host", "example".parse().unwrap());
        headers.insert("content-length", "5".parse().unwrap());
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        headers.insert("x-yun-invocation-type", "event".parse().unwrap());
        let attrs = store_request(&Method::PUT, "/a/b?x=1", &headers);
        let req = request_for(&attrs, Bytes::from_static(b"hello"));
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri(), "/a/b?x=1");
        assert_eq!(req.headers()["content-type"], "application/json");
        assert_eq!(req.headers()["x-custom"], "1");
        assert_eq!(req.headers()["host"], "example");
        for gone in ["content-length", "authorization", "x-yun-invocation-type"] {
            assert!(!req.headers().contains_key(gone), "{gone} was replayed");
        }
        assert_eq!(req.body(), "hello");
    }

    #[test]
    fn other_events_are_posted_to_the_root_with_their_envelope() {
        let mut attrs = BTreeMap::new();
        attrs.insert("content-type".to_string(), "text/plain".to_string());
        let mut req = request_for(&attrs, Bytes::from_static(b"tick"));
        let ce = CloudEvent {
            id: "1".into(),
            source: "/yun/cron/f/nightly".into(),
            kind: TYPE_CRON.into(),
            time: rfc3339(0),
            subject: None,
        };
        ce.apply(&mut req);
        assert_eq!((req.method().as_str(), req.uri().path()), ("POST", "/"));
        assert_eq!(req.headers()["ce-specversion"], "1.0");
        assert_eq!(req.headers()["ce-type"], "dev.yun.cron.tick");
        assert_eq!(req.headers()["ce-time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(req.headers()["content-type"], "text/plain");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(backoff_ms(1000, 1, 0.5), 1000);
        assert_eq!(backoff_ms(1000, 2, 0.5), 2000);
        assert_eq!(backoff_ms(1000, 3, 0.5), 4000);
        assert_eq!(backoff_ms(1000, 2, 0.0), 1000);
        assert_eq!(backoff_ms(1000, 2, 1.0), 3000);
        assert_eq!(backoff_ms(1000, 40, 0.5), 300_000);
    }

    #[test]
    fn batch_item_failures_are_read_from_lambdas_shape() {
        let body = br#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]}"#;
        assert_eq!(batch_item_failures(body), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(batch_item_failures(br#"{"batchItemFailures":[]}"#), Some(vec![]));
        assert_eq!(batch_item_failures(b"ok"), None);
    }
}
