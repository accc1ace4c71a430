//! End-to-end: unmodified AWS Lambda functions (Rust `lambda_runtime` and `lambda_http`, Python
//! with `awslambdaric`) deployed to the real `yun` binary, called over HTTP (as a Function URL)
//! and through the Lambda Invoke API with boto3.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use yun_test_support::{Yun, copy_into, lambda_rust_examples, pip_target, repo_root};

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A code directory holding one Rust example binary as `bootstrap`, as Lambda's custom
/// runtimes expect.
fn rust_code(bin: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(lambda_rust_examples().join(bin), dir.path().join("bootstrap")).unwrap();
    dir
}

fn deploy_lambda(yun: &Yun, name: &str, dir: &Path, command: &str, extra: &[&str]) {
    let dir = dir.display().to_string();
    let mut args =
        vec!["deploy", name, dir.as_str(), "--runtime", "process", "--mode", "lambda", "--command", command];
    args.extend_from_slice(extra);
    let out = yun.cli_ok(&args);
    assert!(out.contains(&format!("deployed {name} revision 1")), "{out}");
}

/// Runs a boto3 script against yun; it prints one JSON document.
fn boto3(yun: &Yun, script: &str) -> Value {
    let deps = pip_target("boto3", &["boto3"]);
    let prelude = format!(
        "import base64, json, boto3\n\
         from botocore.config import Config\n\
         c = boto3.client('lambda', endpoint_url='{}', region_name='yun-local-1', aws_access_key_id='yun', \
         aws_secret_access_key='yun', config=Config(retries={{'max_attempts': 0}}))\n",
        yun.url()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("PYTHONPATH", &deps)
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3 script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_lambda_runtime_function_through_boto3_and_http() {
    let yun = Yun::start(BIN);
    let code = rust_code("hello-lambda");
    deploy_lambda(&yun, "hello", code.path(), "./bootstrap", &[]);

    let v = boto3(
        &yun,
        "r = c.invoke(FunctionName='hello', Payload=json.dumps({'name': 'yun'}), LogType='Tail')\n\
         print(json.dumps({'status': r['StatusCode'], 'version': r['ExecutedVersion'], \
         'error': r.get('FunctionError'), 'payload': json.loads(r['Payload'].read()), \
         'has_log': 'LogResult' in r, \
         'log': base64.b64decode(r.get('LogResult', '')).decode()}))",
    );
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["version"], "1", "{v}");
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(v["payload"]["hello"], "yun", "{v}");
    assert_eq!(v["has_log"], true, "LogType=Tail returns the invocation's log: {v}");
    // As Lambda's, the tail ends with the invocation's REPORT line.
    let log = v["log"].as_str().unwrap();
    assert!(log.contains("REPORT Start: ") && log.contains("Status: 200"), "{log}");

    // A function error comes back as AWS reports it.
    let v = boto3(
        &yun,
        "r = c.invoke(FunctionName='hello', Payload=json.dumps({'fail': True}))\n\
         print(json.dumps({'status': r['StatusCode'], 'error': r.get('FunctionError'), \
         'payload': json.loads(r['Payload'].read())}))",
    );
    assert_eq!((v["status"].as_u64(), v["error"].as_str()), (Some(200), Some("Unhandled")), "{v}");
    assert!(v["payload"]["errorMessage"].is_string(), "{v}");

    // Asynchronous invocation is accepted, and an unknown function is AWS's exception.
    let v = boto3(
        &yun,
        "r = c.invoke(FunctionName='hello', InvocationType='Event', Payload=b'{}')\n\
         try:\n    c.invoke(FunctionName='nope', Payload=b'{}')\n    missing = 'no exception'\n\
         except c.exceptions.ResourceNotFoundException as e:\n    missing = 'ResourceNotFoundException'\n\
         print(json.dumps({'status': r['StatusCode'], 'missing': missing}))",
    );
    assert_eq!(
        (v["status"].as_u64(), v["missing"].as_str()),
        (Some(202), Some("ResourceNotFoundException")),
        "{v}"
    );

    // Called over HTTP it gets a Function URL event; a result without statusCode is JSON.
    let resp = client().get(format!("{}/fn/hello/", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().contains("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_lambda_http_function_serves_http() {
    let yun = Yun::start(BIN);
    let code = rust_code("hello-lambda-http");
    deploy_lambda(&yun, "web", code.path(), "./bootstrap", &[]);
    let resp = client().get(format!("{}/fn/web/some/path?name=yun", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("path=/some/path"), "{text}");
    assert!(text.contains("yun"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_awslambdaric_function_through_http_and_boto3() {
    let yun = Yun::start(BIN);
    let code = tempfile::tempdir().unwrap();
    copy_into(&repo_root().join("examples/lambda-python/app.py"), &code.path().join("app.py"));
    copy_into(&pip_target("awslambdaric", &["awslambdaric"]), code.path());
    deploy_lambda(
        &yun,
        "py",
        code.path(),
        "python3 -m awslambdaric app.handler",
        &["--handler", "app.handler"],
    );

    let resp =
        client().post(format!("{}/fn/py/hi?name=yun", yun.url())).body("the body").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("lang=python"))
    );
    let text = resp.text().await.unwrap();
    assert_eq!(text, "Hello from Python, POST /hi, name=yun, body=the body");

    let v = boto3(
        &yun,
        "r = c.invoke(FunctionName='py', Payload=json.dumps({'name': 'boto'}))\n\
         print(json.dumps({'status': r['StatusCode'], 'payload': json.loads(r['Payload'].read())}))",
    );
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["payload"]["hello"], "boto", "{v}");
    assert!(v["payload"]["functionArn"].as_str().unwrap().ends_with(":function:py"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_invokes_wasm_and_http_functions_too() {
    let yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &[]);
    let v = boto3(
        &yun,
        "r = c.invoke(FunctionName='echo', Payload=json.dumps({'k': 'v'}))\n\
         print(json.dumps({'status': r['StatusCode'], 'payload': r['Payload'].read().decode()}))",
    );
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["payload"], r#"{"k": "v"}"#, "{v}");
}
