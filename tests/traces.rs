//! End-to-end: OTLP export of invocation spans through the real `yun` binary on port 0, to a
//! collector played by this test (a real HTTP server decoding the OTLP protobuf it is sent).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

type Got = Arc<Mutex<Vec<(String, Span)>>>;

/// A collector on 127.0.0.1:0 keeping every span it is sent, with its `service.name`.
async fn collector() -> (String, Got) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Got = Arc::default();
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let keep = keep.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let keep = keep.clone();
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        assert_eq!(req.headers()["x-api-key"], "secret");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let export = ExportTraceServiceRequest::decode(body).unwrap();
                        for rs in export.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|a| a.key == "service.name")
                                .and_then(|a| a.value.as_ref()?.value.clone());
                            let service = match service {
                                Some(Any::StringValue(s)) => s,
                                _ => String::new(),
                            };
                            for ss in rs.scope_spans {
                                for span in ss.spans {
                                    keep.lock().unwrap().push((service.clone(), span));
                                }
                            }
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                            bytes_of(&opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default()),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), got)
}

fn bytes_of(m: &impl Message) -> bytes::Bytes {
    bytes::Bytes::from(m.encode_to_vec())
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()?.value.as_ref())
}

#[tokio::test]
async fn every_invocation_is_a_span_in_the_callers_trace() {
    let (endpoint, got) = collector().await;
    let yun =
        Yun::start_with_args(BIN, &["--otlp-endpoint", &endpoint, "--otlp-headers", "x-api-key=secret"]);
    yun.deploy("spanned", "echo", &[]);
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = reqwest::Client::new()
        .get(format!("{}/fn/spanned/", yun.url()))
        .header("traceparent", parent)
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let seen = r.headers()["x-echo-req-traceparent"].to_str().unwrap().to_string();
    let failing =
        reqwest::Client::new().get(format!("{}/fn/spanned/?trap=1", yun.url())).send().await.unwrap();
    assert_eq!(failing.status().as_u16(), 500);

    let started = Instant::now();
    let spans = loop {
        let spans = got.lock().unwrap().clone();
        if spans.len() >= 2 {
            break spans;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the collector got {} spans", spans.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (service, span) = spans
        .iter()
        .find(|(_, s)| attr(s, "faas.invocation_id") == Some(&Any::StringValue(id.clone())))
        .expect("a span of the invocation");
    assert_eq!(service, "yun");
    assert_eq!(span.name, "spanned");
    assert_eq!(hex(&span.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&span.parent_span_id), "b7ad6b7169203331");
    // The function saw this span as its parent.
    assert_eq!(seen, format!("00-0af7651916cd43dd8448eb211c80319c-{}-01", hex(&span.span_id)));
    assert_eq!(attr(span, "faas.trigger"), Some(&Any::StringValue("http".into())));
    assert_eq!(attr(span, "http.response.status_code"), Some(&Any::IntValue(200)));
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    let failed =
        spans.iter().find(|(_, s)| attr(s, "http.response.status_code") == Some(&Any::IntValue(500)));
    let status = failed.expect("a span of the failed invocation").1.status.clone().unwrap();
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert!(status.message.starts_with("function_error:"), "{}", status.message);
}

#[tokio::test]
async fn a_collector_that_is_down_does_not_fail_invocations_and_a_bad_endpoint_is_refused() {
    let yun = Yun::start_with_args(BIN, &["--otlp-endpoint", "http://127.0.0.1:9"]);
    yun.deploy("alone", "echo", &[]);
    for _ in 0..20 {
        let r = reqwest::Client::new().get(format!("{}/fn/alone/", yun.url())).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let out = std::process::Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--otlp-endpoint", "grpc://collector:4317"])
        .env("YUN_DATA_DIR", yun.data_dir().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--otlp-endpoint") && err.contains("grpc"), "{err}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
