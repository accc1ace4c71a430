//! Real, unmodified Lambda functions against the Runtime API: the Rust examples built with the
//! official `lambda_runtime` / `lambda_http` crates, and the Python example run by AWS's
//! `awslambdaric`, each started as a process with the environment `FunctionMeta::env` gives.
//!
//! The Rust examples are built once per test process (`cargo build --release` of
//! examples/lambda-rust into examples/target). awslambdaric is installed from PyPI into
//! examples/lambda-python/.deps once; if pip cannot install it the Python tests are skipped with
//! a loud message, since that is a machine problem, not a yun one.

mod common;

use std::path::Path;
use std::process::Stdio;

use bytes::Bytes;
use common::{Instance, python_deps, repo_root, rust_examples};
use serde_json::{Value, json};
use tokio::process::Command;
use yun_lambda::{FunctionMeta, Invocation, RuntimeError, http_to_event, result_to_http};

fn response_json(outcome: Result<Invocation, RuntimeError>) -> Value {
    match outcome {
        Ok(Invocation::Response(body)) => serde_json::from_slice(&body).unwrap(),
        other => panic!("expected a response, got {other:?}"),
    }
}

fn error_of(outcome: Result<Invocation, RuntimeError>) -> (String, Value) {
    match outcome {
        Ok(Invocation::Error { error_type, body }) => (error_type, serde_json::from_slice(&body).unwrap()),
        other => panic!("expected a function error, got {other:?}"),
    }
}

/// An HTTP request through the Function URL mapping and back.
async fn http_roundtrip(
    instance: &Instance,
    request: http::Request<Bytes>,
    id: &str,
) -> http::Response<Bytes> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let event = http_to_event(&parts, &path, &body, Some("127.0.0.1".parse().unwrap()), id);
    match instance.invoke_bytes(id, event).await {
        Ok(Invocation::Response(payload)) => result_to_http(&payload).unwrap(),
        other => panic!("expected a response, got {other:?}"),
    }
}

#[tokio::test]
async fn rust_lambda_runtime_json_in_json_out_and_errors() {
    let bin = rust_examples().join("hello-lambda");
    let meta = FunctionMeta::new("hello-lambda");
    let arn = meta.arn();
    let mut instance = Instance::start(meta, &mut Command::new(&bin)).await;
    instance.ready().await.unwrap();

    let out = response_json(instance.invoke("r-1", json!({"name": "yun"})).await);
    assert_eq!(out, json!({"hello": "yun", "requestId": "r-1", "functionArn": arn}));

    let (error_type, body) = error_of(instance.invoke("r-2", json!({"name": "x", "fail": true})).await);
    // lambda_runtime names the error by the Rust type it was returned as (here
    // `&alloc::boxed::Box<dyn core::error::Error + …>`), in AWS just the same.
    assert!(!error_type.is_empty());
    assert_eq!(body["errorMessage"], "refused: x");
    assert_eq!(body["errorType"], error_type.as_str());

    // The runtime carries on after a failed invocation, as in AWS.
    let out = response_json(instance.invoke("r-3", json!({})).await);
    assert_eq!(out["hello"], "world");
    assert_eq!(out["requestId"], "r-3");
}

#[tokio::test]
async fn rust_lambda_http_through_function_url_mapping() {
    let bin = rust_examples().join("hello-lambda-http");
    let mut instance = Instance::start(FunctionMeta::new("hello-lambda-http"), &mut Command::new(&bin)).await;
    instance.ready().await.unwrap();

    let request = http::Request::get("http://fn.yun.local/some/path?name=yun&x=1")
        .header("host", "fn.yun.local")
        .header("user-agent", "test")
        .body(Bytes::new())
        .unwrap();
    let response = http_roundtrip(&instance, request, "h-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "Hello from lambda_http, path=/some/path, name=yun");
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(response.headers()["x-method"], "GET");
    assert_eq!(response.headers()["set-cookie"], "visited=yes; Path=/");

    let request = http::Request::post("http://fn.yun.local/p")
        .header("content-type", "application/octet-stream")
        .body(Bytes::from_static(&[0, 159, 146, 150]))
        .unwrap();
    let response = http_roundtrip(&instance, request, "h-2").await;
    assert_eq!(response.body(), "Hello from lambda_http, path=/p");
    assert_eq!(response.headers()["x-method"], "POST");
}

#[tokio::test]
async fn rust_runtime_that_exits_at_init_is_an_init_error() {
    let bin = rust_examples().join("hello-lambda");
    // lambda_runtime panics at start without AWS_LAMBDA_FUNCTION_NAME: a runtime that dies
    // before ever asking for work.
    let mut command = Command::new(&bin);
    command.stderr(Stdio::null());
    let mut instance =
        Instance::start_without(FunctionMeta::new("broken"), &mut command, &["AWS_LAMBDA_FUNCTION_NAME"])
            .await;

    let err = instance.ready().await.unwrap_err();
    assert_eq!(err.error_type, "Runtime.ExitError");
    assert!(err.message.contains("exited"), "{}", err.message);
    assert!(matches!(instance.invoke("never", json!({})).await, Err(RuntimeError::Terminated(_))));
}

fn python_command(deps: &Path, code: &Path, handler: &str) -> Command {
    let mut command = Command::new("python3");
    command
        .args(["-m", "awslambdaric", handler])
        .current_dir(code)
        .env("PYTHONPATH", deps)
        // Keep awslambdaric's log lines off the test output.
        .stderr(Stdio::null());
    command
}

fn python_meta(handler: &str) -> FunctionMeta {
    let mut meta = FunctionMeta::new("hello-python");
    meta.handler = Some(handler.to_owned());
    meta.runtime = Some("python3.11".to_owned());
    meta
}

#[tokio::test]
async fn python_awslambdaric_json_errors_and_http() {
    let Some(deps) = python_deps() else { return };
    let code = repo_root().join("examples/lambda-python");
    let meta = python_meta("app.handler");
    let arn = meta.arn();
    let mut instance = Instance::start(meta, &mut python_command(deps, &code, "app.handler")).await;
    instance.ready().await.unwrap();

    let out = response_json(instance.invoke("p-1", json!({"name": "yun"})).await);
    assert_eq!(out["hello"], "yun");
    assert_eq!(out["requestId"], "p-1");
    assert_eq!(out["functionArn"], arn.as_str());
    let remaining = out["remainingMs"].as_i64().unwrap();
    assert!(remaining > 20_000 && remaining <= 30_000, "{remaining}");

    let (error_type, body) = error_of(instance.invoke("p-2", json!({"fail": true})).await);
    assert_eq!(error_type, "ValueError");
    assert_eq!(body["errorMessage"], "asked to fail");
    assert!(body["stackTrace"].is_array());

    let request = http::Request::post("http://fn.yun.local/greet?name=py")
        .header("content-type", "text/plain")
        .header("cookie", "a=b")
        .body(Bytes::from_static(b"payload"))
        .unwrap();
    let response = http_roundtrip(&instance, request, "p-3").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "Hello from Python, POST /greet, name=py, body=payload");
    assert_eq!(response.headers()["set-cookie"], "lang=python; Path=/");

    // Binary request bodies arrive base64-encoded and the handler decodes them.
    let request = http::Request::put("http://fn.yun.local/bin")
        .header("content-type", "application/octet-stream")
        .body(Bytes::from_static(b"raw"))
        .unwrap();
    let response = http_roundtrip(&instance, request, "p-4").await;
    assert_eq!(response.body(), "Hello from Python, PUT /bin, name=world, body=raw");
}

#[tokio::test]
async fn python_import_failure_is_posted_as_init_error() {
    let Some(deps) = python_deps() else { return };
    let code = tempfile::tempdir().unwrap();
    std::fs::write(code.path().join("broken.py"), "raise RuntimeError('boom at import')\n").unwrap();
    let mut instance = Instance::start(
        python_meta("broken.handler"),
        &mut python_command(deps, code.path(), "broken.handler"),
    )
    .await;
    let err = instance.ready().await.unwrap_err();
    // awslambdaric reports the exception the import raised, by its class name.
    assert_eq!(err.error_type, "RuntimeError", "{err:?}");
    assert!(err.message.contains("boom at import"), "{err:?}");
    assert!(matches!(instance.invoke("never", json!({})).await, Err(RuntimeError::InitFailed(_))));

    // A handler that does not exist is an init error too.
    let mut instance = Instance::start(
        python_meta("app.nope"),
        &mut python_command(deps, &repo_root().join("examples/lambda-python"), "app.nope"),
    )
    .await;
    let err = instance.ready().await.unwrap_err();
    assert_eq!(err.error_type, "Runtime.HandlerNotFound", "{err:?}");
}
