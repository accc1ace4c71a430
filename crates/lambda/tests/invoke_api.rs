//! The Invoke API helpers against the real client: a small Invoke API server built from
//! `yun_lambda::invoke_api` in front of the real `hello-lambda` instance, driven by boto3.
//!
//! boto3 is used from the machine if importable, else installed from PyPI into
//! examples/lambda-python/.deps/boto3; if neither works the test is skipped loudly.

mod common;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{Instance, repo_root, rust_examples};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::process::Command;
use yun_lambda::invoke_api::{self, ApiError, InvocationType, LogType};
use yun_lambda::{FunctionMeta, InvokeRequest, RuntimeApi, RuntimeError};

/// Extra PYTHONPATH for boto3: `Some(None)` when the machine has it, `None` when it cannot be had.
fn boto3_path() -> Option<&'static Option<PathBuf>> {
    static PATH: OnceLock<Option<Option<PathBuf>>> = OnceLock::new();
    PATH.get_or_init(|| {
        let importable = |path: Option<&PathBuf>| {
            let mut command = std::process::Command::new("python3");
            command.args(["-c", "import boto3"]);
            if let Some(path) = path {
                command.env("PYTHONPATH", path);
            }
            command.output().is_ok_and(|out| out.status.success())
        };
        if importable(None) {
            return Some(None);
        }
        let target = repo_root().join("examples/lambda-python/.deps/boto3");
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&target)
            .arg("boto3")
            .status()
            .is_ok_and(|status| status.success());
        if installed && importable(Some(&target)) {
            return Some(Some(target));
        }
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPING the boto3 Invoke API test: boto3 is not importable and pip\n\
             !!! could not install it into {}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
            target.display()
        );
        None
    })
    .as_ref()
}

/// The Invoke API as the platform would serve it, for the one function `hello`.
async fn handle(
    api: Arc<RuntimeApi>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let request_id = format!("inv-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let (parts, body) = request.into_parts();
    let response = match invoke(&api, &parts, body, &request_id).await {
        Ok(response) => response,
        Err(err) => err.to_response(&request_id),
    };
    response.map(Full::new)
}

async fn invoke(
    api: &Arc<RuntimeApi>,
    parts: &http::request::Parts,
    body: hyper::body::Incoming,
    request_id: &str,
) -> Result<http::Response<Bytes>, ApiError> {
    let params = invoke_api::parse_invoke(parts)?;
    if params.function_name != api.meta().name {
        let mut missing = api.meta().clone();
        missing.name = params.function_name.clone();
        return Err(ApiError::ResourceNotFound(missing.arn()));
    }
    let payload = body.collect().await.map_err(|e| ApiError::Service(e.to_string()))?.to_bytes();
    invoke_api::check_payload(params.invocation_type, &payload)?;
    let mut request = InvokeRequest::new(
        request_id,
        SystemTime::now() + api.meta().timeout,
        invoke_api::event_bytes(payload),
    );
    request.client_context = params.client_context;
    match params.invocation_type {
        InvocationType::DryRun => {
            return Ok(invoke_api::accepted_response(InvocationType::DryRun, request_id));
        }
        InvocationType::Event => {
            let api = api.clone();
            tokio::spawn(async move { api.invoke_with(request).await });
            return Ok(invoke_api::accepted_response(InvocationType::Event, request_id));
        }
        InvocationType::RequestResponse => {}
    }
    let outcome = match api.invoke_with(request).await {
        Ok(outcome) => outcome,
        Err(RuntimeError::Busy) => return Err(ApiError::TooManyRequests),
        Err(err) => return Err(ApiError::Service(err.to_string())),
    };
    // Stands in for the instance's captured log.
    let log = format!("START RequestId: {request_id}\nEND RequestId: {request_id}\n");
    let tail = (params.log_type == LogType::Tail).then_some(log.as_bytes());
    Ok(invoke_api::invocation_response(&outcome, "$LATEST", tail, request_id))
}

const CLIENT: &str = r#"
import base64, json, sys
import boto3
from botocore.config import Config

client = boto3.client(
    "lambda", endpoint_url=sys.argv[1], region_name="yun-local-1",
    aws_access_key_id="test", aws_secret_access_key="test",
    config=Config(retries={"max_attempts": 1}),
)
out = {}
r = client.invoke(FunctionName="hello", Payload=json.dumps({"name": "boto"}))
out["ok"] = {"status": r["StatusCode"], "version": r.get("ExecutedVersion"),
             "error": r.get("FunctionError"), "payload": json.loads(r["Payload"].read())}
r = client.invoke(FunctionName="hello", Payload=json.dumps({"fail": True}), LogType="Tail")
out["failed"] = {"status": r["StatusCode"], "error": r.get("FunctionError"),
                 "payload": json.loads(r["Payload"].read()),
                 "log": base64.b64decode(r["LogResult"]).decode()}
arn = "arn:aws:lambda:yun-local-1:000000000000:function:hello"
r = client.invoke(FunctionName=arn, Payload=b"", ClientContext=base64.b64encode(b'{"custom":{}}').decode())
out["by_arn"] = json.loads(r["Payload"].read())
out["dry_run"] = client.invoke(FunctionName="hello", InvocationType="DryRun")["StatusCode"]
try:
    client.invoke(FunctionName="nope", Payload=b"{}")
    out["missing"] = "no exception"
except client.exceptions.ResourceNotFoundException as e:
    out["missing"] = e.response["Error"]["Message"]
try:
    client.invoke(FunctionName="hello", Payload=b"{not json")
    out["bad_json"] = "no exception"
except client.exceptions.InvalidRequestContentException as e:
    out["bad_json"] = e.response["Error"]["Code"]
out["event"] = client.invoke(FunctionName="hello", InvocationType="Event", Payload=b"{}")["StatusCode"]
print(json.dumps(out))
"#;

#[tokio::test]
async fn boto3_invokes_a_real_function() {
    let Some(boto3) = boto3_path() else { return };
    let bin = rust_examples().join("hello-lambda");
    let mut instance = Instance::start(FunctionMeta::new("hello"), &mut Command::new(&bin)).await;
    instance.ready().await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let api = instance.api.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let api = api.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(handle(api, request).await) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });

    let mut client = Command::new("python3");
    client.args(["-c", CLIENT, &endpoint]);
    if let Some(path) = boto3 {
        client.env("PYTHONPATH", path);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), client.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "boto3 client failed: {}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(out["ok"]["status"], 200);
    assert_eq!(out["ok"]["version"], "$LATEST");
    assert_eq!(out["ok"]["error"], Value::Null);
    assert_eq!(out["ok"]["payload"]["hello"], "boto");
    assert!(out["ok"]["payload"]["requestId"].as_str().unwrap().starts_with("inv-"));

    assert_eq!(out["failed"]["status"], 200);
    assert_eq!(out["failed"]["error"], "Unhandled");
    assert_eq!(out["failed"]["payload"]["errorMessage"], "refused: world");
    assert!(out["failed"]["log"].as_str().unwrap().starts_with("START RequestId: inv-"));

    assert_eq!(out["by_arn"]["hello"], "world");
    assert_eq!(out["dry_run"], 204);
    assert_eq!(out["missing"], "Function not found: arn:aws:lambda:yun-local-1:000000000000:function:nope");
    assert_eq!(out["bad_json"], "InvalidRequestContentException");
    assert_eq!(out["event"], 202);
}
