//! The Runtime API over real HTTP, with the test playing the runtime: the protocol's happy path
//! and the error cases a misbehaving runtime can cause.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;
use yun_lambda::{FunctionMeta, Invocation, InvokeRequest, MAX_PAYLOAD_SIZE, RuntimeApi, RuntimeError};

struct Server {
    api: Arc<RuntimeApi>,
    base: String,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

async fn server() -> Server {
    let api = RuntimeApi::new(FunctionMeta::new("fake"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/2018-06-01/runtime", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(api.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Server { api, base, client: reqwest::Client::new(), _stop: stop }
}

fn deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30)
}

async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

impl Server {
    async fn next(&self) -> reqwest::Response {
        self.client.get(format!("{}/invocation/next", self.base)).send().await.unwrap()
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        json(self.client.post(format!("{}{path}", self.base)).body(body).send().await.unwrap()).await
    }

    /// Starts an invocation in the background.
    fn invoke(&self, request: InvokeRequest) -> tokio::task::JoinHandle<Result<Invocation, RuntimeError>> {
        let api = self.api.clone();
        tokio::spawn(async move { api.invoke_with(request).await })
    }
}

#[tokio::test]
async fn next_carries_the_invocation_and_response_completes_it() {
    let s = server().await;
    let mut request = InvokeRequest::new("req-1", deadline(), Bytes::from_static(br#"{"x":1}"#));
    request.client_context = Some(r#"{"custom":{"a":"b"}}"#.into());
    request.cognito_identity = Some(r#"{"cognitoIdentityId":"id"}"#.into());
    let expected_deadline = request.deadline.duration_since(UNIX_EPOCH).unwrap().as_millis().to_string();
    let invocation = s.invoke(request);

    let next = s.next().await;
    assert_eq!(next.status(), 200);
    s.api.ready().await.unwrap();
    let h = next.headers().clone();
    assert_eq!(h["lambda-runtime-aws-request-id"], "req-1");
    assert_eq!(h["lambda-runtime-deadline-ms"], expected_deadline.as_str());
    assert_eq!(
        h["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:yun-local-1:000000000000:function:fake"
    );
    assert!(h["lambda-runtime-trace-id"].to_str().unwrap().starts_with("Root=1-"));
    assert_eq!(h["lambda-runtime-client-context"], r#"{"custom":{"a":"b"}}"#);
    assert_eq!(h["lambda-runtime-cognito-identity"], r#"{"cognitoIdentityId":"id"}"#);
    assert_eq!(next.bytes().await.unwrap(), r#"{"x":1}"#);

    // A second /next before answering is a state error, not a second event.
    let (status, body) = json(s.next().await).await;
    assert_eq!((status, body["errorType"].as_str()), (403, Some("InvalidStateTransition")));

    let (status, body) = s.post("/invocation/req-1/response", r#"{"ok":true}"#).await;
    assert_eq!((status, body), (202, serde_json::json!({"status": "OK"})));
    let outcome = invocation.await.unwrap().unwrap();
    assert_eq!(outcome, Invocation::Response(Bytes::from_static(br#"{"ok":true}"#)));

    // Answering twice: nothing is in flight any more.
    let (status, body) = s.post("/invocation/req-1/response", "{}").await;
    assert_eq!((status, body["errorType"].as_str()), (403, Some("InvalidStateTransition")));
}

#[tokio::test]
async fn wrong_request_id_is_400_and_the_right_one_still_works() {
    let s = server().await;
    let invocation = s.invoke(InvokeRequest::new("right", deadline(), Bytes::from_static(b"{}")));
    assert_eq!(s.next().await.status(), 200);

    let (status, body) = s.post("/invocation/wrong/response", "{}").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        serde_json::json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
    );
    let (status, _) = s.post("/invocation/wrong/error", "{}").await;
    assert_eq!(status, 400);

    let error = r#"{"errorMessage":"bad","errorType":"ValueError","stackTrace":[]}"#;
    let response = s
        .client
        .post(format!("{}/invocation/right/error", s.base))
        .header("Lambda-Runtime-Function-Error-Type", "Unhandled")
        .body(error)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    match invocation.await.unwrap().unwrap() {
        Invocation::Error { error_type, body } => {
            assert_eq!(error_type, "ValueError");
            assert_eq!(body, error);
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_response_is_413_and_the_caller_gets_a_function_error() {
    let s = server().await;
    let invocation = s.invoke(InvokeRequest::new("big", deadline(), Bytes::from_static(b"{}")));
    assert_eq!(s.next().await.status(), 200);
    let (status, body) = s.post("/invocation/big/response", vec![b'x'; MAX_PAYLOAD_SIZE + 1]).await;
    assert_eq!(status, 413);
    assert_eq!(body["errorType"], "RequestEntityTooLarge");
    match invocation.await.unwrap().unwrap() {
        Invocation::Error { error_type, body } => {
            assert_eq!(error_type, "Function.ResponseSizeTooLarge");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");
        }
        other => panic!("expected an error, got {other:?}"),
    }

    // Exactly at the limit is fine, and the instance carries on.
    let invocation = s.invoke(InvokeRequest::new("edge", deadline(), Bytes::from_static(b"{}")));
    assert_eq!(s.next().await.status(), 200);
    let (status, _) = s.post("/invocation/edge/response", vec![b'y'; MAX_PAYLOAD_SIZE]).await;
    assert_eq!(status, 202);
    match invocation.await.unwrap().unwrap() {
        Invocation::Response(body) => assert_eq!(body.len(), MAX_PAYLOAD_SIZE),
        other => panic!("{other:?}"),
    }

    let too_big = Bytes::from(vec![b' '; MAX_PAYLOAD_SIZE + 1]);
    assert!(matches!(s.api.invoke("e", deadline(), too_big).await, Err(RuntimeError::EventTooLarge { .. })));
}

#[tokio::test]
async fn init_error_fails_ready_and_later_calls() {
    let s = server().await;
    let ready = {
        let api = s.api.clone();
        tokio::spawn(async move { api.ready().await })
    };
    let error = r#"{"errorMessage":"No module named 'nope'","errorType":"Runtime.ImportModuleError","stackTrace":[]}"#;
    let (status, _) = s.post("/init/error", error).await;
    assert_eq!(status, 202);
    let err = ready.await.unwrap().unwrap_err();
    assert_eq!(err.error_type, "Runtime.ImportModuleError");
    assert_eq!(err.message, "No module named 'nope'");
    assert_eq!(err.body, error);

    let (status, body) = s.post("/init/error", error).await;
    assert_eq!((status, body["errorType"].as_str()), (403, Some("InvalidStateTransition")));
    let (status, _) = json(s.next().await).await;
    assert_eq!(status, 403);
    let outcome = s.api.invoke("late", deadline(), Bytes::from_static(b"{}")).await;
    assert!(
        matches!(outcome, Err(RuntimeError::InitFailed(ref e)) if e.error_type == "Runtime.ImportModuleError")
    );
}

#[tokio::test]
async fn init_error_after_ready_is_refused() {
    let s = server().await;
    let invocation = s.invoke(InvokeRequest::new("a", deadline(), Bytes::from_static(b"{}")));
    assert_eq!(s.next().await.status(), 200);
    let (status, _) = s.post("/init/error", "{}").await;
    assert_eq!(status, 403);
    assert_eq!(s.post("/invocation/a/response", "1").await.0, 202);
    assert_eq!(invocation.await.unwrap().unwrap(), Invocation::Response(Bytes::from_static(b"1")));
}

#[tokio::test]
async fn one_invocation_at_a_time_and_abandoning_a_queued_one() {
    let s = server().await;
    // Queued (no runtime has asked yet): a second one is refused.
    let first = s.api.invoke("one", deadline(), Bytes::from_static(b"1"));
    let mut first = Box::pin(first);
    assert!(tokio::time::timeout(Duration::from_millis(50), &mut first).await.is_err());
    assert_eq!(s.api.invoke("two", deadline(), Bytes::from_static(b"2")).await, Err(RuntimeError::Busy));
    // Give up on the first before the runtime took it: it is withdrawn.
    drop(first);

    let third = s.invoke(InvokeRequest::new("three", deadline(), Bytes::from_static(b"3")));
    let next = s.next().await;
    assert_eq!(next.headers()["lambda-runtime-aws-request-id"], "three");
    assert_eq!(s.post("/invocation/three/response", "\"done\"").await.0, 202);
    assert_eq!(third.await.unwrap().unwrap(), Invocation::Response(Bytes::from_static(b"\"done\"")));
}

#[tokio::test]
async fn next_long_polls_until_an_invocation_arrives() {
    let s = server().await;
    let base = s.base.clone();
    let poll = tokio::spawn(async move { reqwest::get(format!("{base}/invocation/next")).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!poll.is_finished());
    s.api.ready().await.unwrap();
    let invocation = s.invoke(InvokeRequest::new("late", deadline(), Bytes::from_static(b"{}")));
    let next = poll.await.unwrap();
    assert_eq!(next.headers()["lambda-runtime-aws-request-id"], "late");
    assert_eq!(s.post("/invocation/late/response", "null").await.0, 202);
    invocation.await.unwrap().unwrap();
}

#[tokio::test]
async fn terminate_releases_everyone() {
    let s = server().await;
    let invocation = s.invoke(InvokeRequest::new("t", deadline(), Bytes::from_static(b"{}")));
    assert_eq!(s.next().await.status(), 200);
    s.api.terminate("process exited with status 137");
    assert_eq!(
        invocation.await.unwrap(),
        Err(RuntimeError::Terminated("process exited with status 137".into()))
    );
    assert_eq!(json(s.next().await).await.0, 500);
    assert!(matches!(s.api.invoke("u", deadline(), Bytes::new()).await, Err(RuntimeError::Terminated(_))));

    // Before ready: ready() fails with an exit error.
    let s = server().await;
    s.api.terminate("exited with status 1");
    let err = s.api.ready().await.unwrap_err();
    assert_eq!(err.error_type, "Runtime.ExitError");
}

#[tokio::test]
async fn bad_routes_and_ids() {
    let s = server().await;
    let (status, _) = s.post("/invocation/next", "").await;
    assert_eq!(status, 405);
    let response = s.client.get(format!("{}/nothing", s.base)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    for id in ["", "a/b", "with space"] {
        assert!(matches!(
            s.api.invoke(id, deadline(), Bytes::new()).await,
            Err(RuntimeError::InvalidRequestId(_))
        ));
    }
}
