//! The exporter against a real (if small) collector: a hyper server on 127.0.0.1 that decodes
//! what it gets with the OpenTelemetry project's own message types.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1 as otlp;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Config, Exporter, Span, TraceError, Value};

struct Received {
    path: String,
    headers: HeaderMap,
    body: ExportTraceServiceRequest,
}

type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
type Responder = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    count: watch::Receiver<usize>,
}

impl Collector {
    /// `respond` gets each request's index (from 0) and answers it, whenever it likes.
    async fn start(respond: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Collector {
        Self::start_with(respond, None).await
    }

    async fn start_with(
        respond: impl Fn(usize) -> Reply + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = watch::channel(0);
        let count_tx = Arc::new(count_tx);
        let respond: Responder = Arc::new(respond);
        let store = received.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (store, count_tx, respond) = (store.clone(), count_tx.clone(), respond.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (store, count_tx, respond) = (store.clone(), count_tx.clone(), respond.clone());
                        async move {
                            let path = request.uri().path().to_owned();
                            let headers = request.headers().clone();
                            let bytes = request.into_body().collect().await?.to_bytes();
                            let body = ExportTraceServiceRequest::decode(bytes).unwrap();
                            let index = {
                                let mut store = store.lock().unwrap();
                                store.push(Received { path, headers, body });
                                store.len() - 1
                            };
                            count_tx.send_replace(index + 1);
                            Ok::<_, hyper::Error>(respond(index).await)
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else { return };
                            http.serve_connection(TokioIo::new(stream), service).await
                        }
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                    };
                });
            }
        });
        Collector { addr, received, count }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_for_requests(&mut self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), self.count.wait_for(|c| *c >= n))
            .await
            .expect("the collector got the requests in time")
            .unwrap();
    }

    fn spans(&self) -> Vec<otlp::Span> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .flat_map(|r| r.body.resource_spans.iter())
            .flat_map(|r| r.scope_spans.iter())
            .flat_map(|s| s.spans.iter().cloned())
            .collect()
    }

    fn batch_sizes(&self) -> Vec<usize> {
        let received = self.received.lock().unwrap();
        received.iter().map(|r| r.body.resource_spans[0].scope_spans[0].spans.len()).collect()
    }
}

fn status(code: StatusCode) -> Reply {
    Box::pin(async move {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = code;
        response
    })
}

fn ok(_: usize) -> Reply {
    status(StatusCode::OK)
}

fn config(endpoint: String) -> Config {
    Config {
        endpoint,
        headers: vec![("x-api-key".into(), "k3y".into())],
        service_name: "yun-test".into(),
        max_batch: 100,
        interval: Duration::from_millis(20),
        max_queue: 10_000,
    }
}

fn span(i: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&i.to_be_bytes());
    trace_id[15] = 0xaa;
    Span {
        trace_id,
        span_id: (i + 1).to_be_bytes(),
        parent_span_id: i.is_multiple_of(2).then_some([0xbb; 8]),
        name: format!("GET /fn/f{i}"),
        start_unix_nanos: 1_700_000_000_000_000_000 + i,
        end_unix_nanos: 1_700_000_000_000_500_000 + i,
        error: i.is_multiple_of(3).then(|| format!("trap {i}")),
        attributes: vec![
            ("faas.name", Value::Str(format!("f{i}"))),
            ("http.response.status_code", Value::Int(200 + i as i64)),
            ("yun.cold", Value::Bool(i % 2 == 1)),
            ("yun.queue_seconds", Value::Double(0.25)),
        ],
    }
}

/// A port nobody listens on: bound, then closed.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn the_collector_gets_every_field() {
    let mut collector = Collector::start(ok).await;
    let exporter = Exporter::start(config(collector.endpoint())).unwrap();
    for i in 0..4 {
        exporter.export(span(i));
    }
    collector.wait_for_requests(1).await;
    exporter.shutdown().await;
    assert_eq!(exporter.exported(), 4);
    assert_eq!(exporter.dropped(), 0);

    let received = collector.received.lock().unwrap();
    assert_eq!(received.len(), 1, "four spans within the interval are one request");
    let request = &received[0];
    assert_eq!(request.path, "/v1/traces");
    assert_eq!(request.headers["content-type"], "application/x-protobuf");
    assert_eq!(request.headers["x-api-key"], "k3y");

    let resource_spans = &request.body.resource_spans;
    assert_eq!(resource_spans.len(), 1);
    let resource = resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(resource.attributes.len(), 1);
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(
        resource.attributes[0].value.as_ref().unwrap().value,
        Some(any_value::Value::StringValue("yun-test".into()))
    );
    let scope_spans = &resource_spans[0].scope_spans;
    assert_eq!(scope_spans.len(), 1);
    assert_eq!(scope_spans[0].scope.as_ref().unwrap().name, "yun");
    drop(received);

    let spans = collector.spans();
    assert_eq!(spans.len(), 4);
    for (i, got) in spans.iter().enumerate() {
        let want = span(i as u64);
        assert_eq!(got.trace_id, want.trace_id);
        assert_eq!(got.span_id, want.span_id);
        match want.parent_span_id {
            Some(parent) => {
                assert_eq!(got.parent_span_id, parent);
                assert_eq!(got.flags, 0x300, "a remote parent");
            }
            None => {
                assert!(got.parent_span_id.is_empty());
                assert_eq!(got.flags, 0x100, "a root: known not to have a remote parent");
            }
        }
        assert_eq!(got.name, want.name);
        assert_eq!(got.kind, otlp::span::SpanKind::Server as i32);
        assert_eq!(got.start_time_unix_nano, want.start_unix_nanos);
        assert_eq!(got.end_time_unix_nano, want.end_unix_nanos);
        match &want.error {
            Some(message) => {
                let status = got.status.as_ref().unwrap();
                assert_eq!(status.code, otlp::status::StatusCode::Error as i32);
                assert_eq!(&status.message, message);
            }
            None => assert_eq!(got.status, None, "UNSET"),
        }
        let attributes: Vec<_> = got
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_ref().unwrap().value.clone().unwrap()))
            .collect();
        assert_eq!(
            attributes,
            [
                ("faas.name", any_value::Value::StringValue(format!("f{i}"))),
                ("http.response.status_code", any_value::Value::IntValue(200 + i as i64)),
                ("yun.cold", any_value::Value::BoolValue(i % 2 == 1)),
                ("yun.queue_seconds", any_value::Value::DoubleValue(0.25)),
            ]
        );
    }
}

#[tokio::test]
async fn batches_hold_at_most_max_batch() {
    let mut collector = Collector::start(ok).await;
    let exporter = Exporter::start(Config {
        // The interval is long: only full batches and the shutdown flush send anything.
        interval: Duration::from_secs(3600),
        ..config(collector.endpoint())
    })
    .unwrap();
    for i in 0..250 {
        exporter.export(span(i));
    }
    collector.wait_for_requests(2).await;
    exporter.shutdown().await;
    assert_eq!(collector.batch_sizes(), [100, 100, 50]);
    assert_eq!(exporter.exported(), 250);
    let ids: Vec<_> = collector.spans().into_iter().map(|s| s.span_id).collect();
    let want: Vec<_> = (0..250).map(|i| span(i).span_id.to_vec()).collect();
    assert_eq!(ids, want, "every span once, in order");
}

#[tokio::test(start_paused = true)]
async fn a_part_batch_goes_after_the_interval() {
    let mut collector = Collector::start(ok).await;
    let exporter =
        Exporter::start(Config { interval: Duration::from_secs(5), ..config(collector.endpoint()) }).unwrap();
    let started = tokio::time::Instant::now();
    exporter.export(span(0));
    exporter.export(span(1));
    collector.wait_for_requests(1).await;
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(collector.batch_sizes(), [2]);
    exporter.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_collector_that_is_down_costs_spans_not_time() {
    let exporter = Exporter::start(Config { max_batch: 10, ..config(closed_port().await) }).unwrap();
    let started = std::time::Instant::now();
    for i in 0..1000 {
        exporter.export(span(i));
    }
    assert!(started.elapsed() < Duration::from_millis(100), "export does not wait: {:?}", started.elapsed());
    // Every batch fails its attempts and is dropped; with the clock paused the backoff is free.
    tokio::time::timeout(Duration::from_secs(600), async {
        while exporter.dropped() < 1000 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("all dropped");
    assert_eq!(exporter.dropped(), 1000);
    assert_eq!(exporter.exported(), 0);
    exporter.shutdown().await;
    exporter.export(span(0));
    assert_eq!(exporter.dropped(), 1001, "after shutdown spans are dropped");
}

#[tokio::test]
async fn a_failed_batch_is_retried() {
    let mut collector =
        Collector::start(|i| status(if i == 0 { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }))
            .await;
    let exporter = Exporter::start(config(collector.endpoint())).unwrap();
    for i in 0..3 {
        exporter.export(span(i));
    }
    collector.wait_for_requests(2).await;
    exporter.shutdown().await;
    assert_eq!(collector.batch_sizes(), [3, 3], "the same batch, twice");
    assert_eq!(exporter.exported(), 3);
    assert_eq!(exporter.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_error_is_not_retried() {
    let mut collector = Collector::start(|_| status(StatusCode::UNAUTHORIZED)).await;
    let exporter = Exporter::start(config(collector.endpoint())).unwrap();
    exporter.export(span(0));
    collector.wait_for_requests(1).await;
    exporter.shutdown().await;
    assert_eq!(collector.batch_sizes(), [1]);
    assert_eq!(exporter.dropped(), 1);
}

#[tokio::test]
async fn rejected_spans_of_a_partial_success_are_dropped() {
    let mut collector = Collector::start(|_| {
        Box::pin(async {
            let body = ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: 2,
                    error_message: "too old".into(),
                }),
            };
            Response::new(Full::new(Bytes::from(body.encode_to_vec())))
        })
    })
    .await;
    let exporter = Exporter::start(config(collector.endpoint())).unwrap();
    for i in 0..5 {
        exporter.export(span(i));
    }
    collector.wait_for_requests(1).await;
    exporter.shutdown().await;
    assert_eq!(exporter.exported(), 3);
    assert_eq!(exporter.dropped(), 2);
}

#[tokio::test]
async fn a_full_queue_drops_the_rest() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let mut collector = Collector::start(move |_| {
        let gate = held.clone();
        Box::pin(async move {
            let _ = gate.acquire().await;
            status(StatusCode::OK).await
        })
    })
    .await;
    let exporter = Exporter::start(Config { max_queue: 10, ..config(collector.endpoint()) }).unwrap();
    for i in 0..100 {
        exporter.export(span(i));
    }
    assert_eq!(exporter.dropped(), 90);
    // The ten are now with the stalled collector, and still count against the queue.
    collector.wait_for_requests(1).await;
    for i in 100..150 {
        exporter.export(span(i));
    }
    assert_eq!(exporter.dropped(), 140);
    gate.add_permits(100);
    exporter.shutdown().await;
    assert_eq!(collector.batch_sizes(), [10]);
    assert_eq!(exporter.exported(), 10);
    assert_eq!(exporter.dropped(), 140);
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_a_stalled_collector() {
    let mut collector = Collector::start(|_| Box::pin(std::future::pending())).await;
    let exporter = Exporter::start(config(collector.endpoint())).unwrap();
    for i in 0..7 {
        exporter.export(span(i));
    }
    collector.wait_for_requests(1).await;
    let started = tokio::time::Instant::now();
    exporter.shutdown().await;
    assert!(started.elapsed() <= Duration::from_secs(6));
    assert_eq!(exporter.exported(), 0);
    assert_eq!(exporter.dropped(), 7);
}

#[tokio::test]
async fn dropping_the_exporter_still_sends_what_it_holds() {
    let mut collector = Collector::start(ok).await;
    let exporter =
        Exporter::start(Config { interval: Duration::from_secs(3600), ..config(collector.endpoint()) })
            .unwrap();
    exporter.export(span(0));
    drop(exporter);
    collector.wait_for_requests(1).await;
    assert_eq!(collector.batch_sizes(), [1]);
}

#[tokio::test]
async fn https_with_a_trusted_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    // A self-signed, non-CA certificate for 127.0.0.1 (valid until 2126), made for this test:
    // openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 36500 -nodes
    //   -subj /CN=yun-traces-test -addext subjectAltName=IP:127.0.0.1
    //   -addext basicConstraints=critical,CA:FALSE -keyout key.pem -out cert.pem
    let cert = CertificateDer::from_pem_slice(include_bytes!("testdata/cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut collector =
        Collector::start_with(ok, Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let endpoint = format!("https://{}", collector.addr);
    let exporter = Exporter::start_with_tls(config(endpoint), Some(client)).unwrap();
    exporter.export(span(0));
    collector.wait_for_requests(1).await;
    exporter.shutdown().await;
    assert_eq!(exporter.exported(), 1);

    // And with the default roots the same collector is not trusted.
    let exporter = Exporter::start(config(format!("https://{}", collector.addr))).unwrap();
    exporter.export(span(1));
    exporter.shutdown().await;
    assert_eq!(exporter.dropped(), 1);
    assert_eq!(collector.batch_sizes(), [1]);
}

#[test]
fn start_needs_a_runtime_and_a_sane_config() {
    let err = Exporter::start(config("http://127.0.0.1:4318".into())).err().unwrap();
    assert!(matches!(err, TraceError::NoRuntime), "{err}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    for bad in [
        Config { max_batch: 0, ..config("http://127.0.0.1:4318".into()) },
        Config { max_queue: 0, ..config("http://127.0.0.1:4318".into()) },
        Config { interval: Duration::ZERO, ..config("http://127.0.0.1:4318".into()) },
    ] {
        assert!(matches!(Exporter::start(bad), Err(TraceError::Config(_))));
    }
    let err = Exporter::start(config("ftp://collector".into())).err().unwrap();
    assert!(matches!(err, TraceError::Endpoint { .. }), "{err}");
    let bad_header =
        Config { headers: vec![("bad header".into(), "v".into())], ..config("http://127.0.0.1:4318".into()) };
    assert!(matches!(Exporter::start(bad_header), Err(TraceError::Headers { .. })));
}
