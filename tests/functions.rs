//! End-to-end: the real `yun` binary on port 0, driven over HTTP and through its CLI, with
//! guest components built from `examples/`.

use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn status(yun: &Yun) -> Value {
    client()
        .get(format!("{}/v1/status", yun.url()))
        .bearer_auth(yun.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    (status, body["error"].clone())
}

#[tokio::test]
async fn deploy_then_invoke_through_http_and_cli() {
    let yun = Yun::start(BIN);
    let out = yun.deploy("hello", "hello_rust", &[]);
    assert!(out.contains("deployed hello revision 1"), "{out}");
    assert!(out.contains("sha256:"), "{out}");
    assert!(out.contains(&format!("{}/fn/hello/", yun.url())), "{out}");

    let resp = client().get(format!("{}/fn/hello/any/path?x=1", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-yun-revision"], "1");
    assert!(!resp.headers()["x-yun-invocation-id"].is_empty());
    assert_eq!(resp.text().await.unwrap(), "Hello, world!\n");

    assert_eq!(yun.cli_ok(&["invoke", "hello", "--path", "/p"]), "Hello, world!\n");

    // A second deploy is a new immutable revision, and traffic moves to it.
    let out = yun.deploy("hello", "echo", &[]);
    assert!(out.contains("deployed hello revision 2"), "{out}");
    let resp = client().get(format!("{}/fn/hello/x", yun.url())).send().await.unwrap();
    assert_eq!(resp.headers()["x-yun-revision"], "2");
    assert_eq!(resp.headers()["x-echo-path"], "/x");

    let ls = yun.cli_ok(&["ls"]);
    assert!(ls.contains("hello") && ls.contains("2"), "{ls}");
    let describe = yun.cli_ok(&["describe", "hello"]);
    assert!(describe.contains("memory 128 MiB") && describe.contains("timeout 30000 ms"), "{describe}");
    let json: Value = serde_json::from_str(&yun.cli_ok(&["describe", "hello", "--json"])).unwrap();
    assert_eq!(json["revisions"].as_array().unwrap().len(), 2);
    assert_eq!(json["active_revision"], 2);
}

#[tokio::test]
async fn request_and_response_pass_through_with_5_mib_bodies() {
    let yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &[]);
    let body: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let resp = client()
        .put(format!("{}/fn/echo/some/path?a=1&b=two", yun.url()))
        .header("x-custom", "value 1")
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-echo-method"], "PUT");
    assert_eq!(h["x-echo-path"], "/some/path");
    assert_eq!(h["x-echo-query"], "a=1&b=two");
    assert_eq!(h["x-echo-req-x-custom"], "value 1");
    assert_eq!(h["content-type"], "application/octet-stream");
    let got = resp.bytes().await.unwrap();
    assert_eq!(got.len(), body.len());
    assert_eq!(Sha256::digest(&got), Sha256::digest(&body));

    // Status and headers chosen by the function come out unchanged; a big body streams out.
    let resp =
        client().get(format!("{}/fn/echo/?status=418&set-header=x-a:b", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.headers()["x-a"], "b");
    let resp = client().get(format!("{}/fn/echo/?size=5242880", yun.url())).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), 5 * 1024 * 1024);

    // The CLI sends a body and headers too.
    let out = yun.cli_ok(&["invoke", "echo", "-X", "POST", "-d", "from cli", "-H", "x-k: v", "--include"]);
    assert!(
        out.contains("x-echo-method: POST") && out.contains("x-echo-req-x-k: v") && out.ends_with("from cli"),
        "{out}"
    );
}

#[tokio::test]
async fn host_based_routing_and_configurable_base_domain() {
    let yun = Yun::start_with_args(BIN, &["--base-domain", "fn.test"]);
    yun.deploy("echo", "echo", &[]);
    let resp = client()
        .get(format!("{}/deep/path?q=1", yun.url()))
        .header("host", "echo.fn.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-echo-path"], "/deep/path");
    assert_eq!(resp.headers()["x-echo-query"], "q=1");
    let resp = client().get(format!("{}/", yun.url())).header("host", "nope.fn.test").send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn restart_serves_again_without_recompiling() {
    let mut yun = Yun::start(BIN);
    yun.deploy("hello", "hello_rust", &[]);
    assert_eq!(status(&yun).await["counters"]["compilations"], 1);
    assert!(yun.stop().success());

    let again = yun.restart();
    let resp = client().get(format!("{}/fn/hello/", again.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "Hello, world!\n");
    let counters = &status(&again).await["counters"];
    assert_eq!(counters["compilations"], 0, "a restart must load precompiled code, not compile");
    assert_eq!(counters["compiled_cache_hits"], 1);
}

#[tokio::test]
async fn invalid_uploads_are_rejected_and_nothing_is_stored() {
    let yun = Yun::start(BIN);
    let echo = std::fs::read(yun_test_support::guest("echo")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random bytes", b"this is not wasm at all".to_vec(), "magic"),
        ("truncated component", echo[..echo.len() / 2].to_vec(), "invalid component"),
        ("core module", b"\0asm\x01\0\0\0".to_vec(), "core WebAssembly module"),
        ("component without handler", b"\0asm\x0d\0\x01\0".to_vec(), "wasi:http/incoming-handler"),
        ("empty", Vec::new(), "empty"),
    ];
    for (what, bytes, needle) in cases {
        let resp = client()
            .post(format!("{}/v1/artifacts", yun.url()))
            .bearer_auth(yun.token())
            .body(bytes)
            .send()
            .await
            .unwrap();
        let (code, err) = error_of(resp).await;
        assert_eq!(code, 400, "{what}: {err}");
        assert_eq!(err["code"], "invalid_component", "{what}");
        assert!(err["message"].as_str().unwrap().contains(needle), "{what}: {err}");
    }
    let blobs = yun.data_dir().join("blobs");
    for dir in ["artifacts", "staging"] {
        assert_eq!(std::fs::read_dir(blobs.join(dir)).unwrap().count(), 0, "{dir} must stay empty");
    }
    // The CLI reports the same in one line and fails.
    let bad = yun.data_dir().join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0").unwrap();
    let out = yun.cli(&["deploy", "bad", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("core WebAssembly module"), "{stderr}");
    assert!(yun.cli_ok(&["ls"]).contains("no functions"));
}

#[tokio::test]
async fn guest_failures_map_to_clear_errors_and_the_platform_keeps_serving() {
    let yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &["--timeout", "2s", "--memory", "32Mi"]);
    let url = |q: &str| format!("{}/fn/echo/?{q}", yun.url());

    let resp = client().get(url("trap=1")).send().await.unwrap();
    let id = resp.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let (code, err) = error_of(resp).await;
    assert_eq!((code, err["code"].as_str()), (500, Some("function_error")));
    assert_eq!(err["invocation_id"], id.as_str());
    assert!(err["message"].as_str().unwrap().contains("unreachable"), "{err}");

    let started = Instant::now();
    let (code, err) = error_of(client().get(url("loop=1")).send().await.unwrap()).await;
    let took = started.elapsed();
    assert_eq!((code, err["code"].as_str()), (504, Some("timeout")));
    assert!(took >= Duration::from_millis(1600) && took <= Duration::from_millis(2400), "took {took:?}");

    let (code, err) = error_of(client().get(url("alloc_mb=64")).send().await.unwrap()).await;
    assert_eq!((code, err["code"].as_str()), (500, Some("memory_limit_exceeded")), "{err}");

    // Within the limit the same function allocates fine, and ordinary requests still work.
    let resp = client().get(url("alloc_mb=8")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client().post(url("")).body("still alive").send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "still alive");
}

#[tokio::test]
async fn body_limits_give_413() {
    let yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &["--max-body", "1Mi"]);
    let url = format!("{}/fn/echo/", yun.url());
    // A declared length over the limit is refused before any of the body is read (a client
    // that waits, like curl with `Expect: 100-continue`, never sends it).
    let head =
        format!("POST /fn/echo/ HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n\r\n", yun.addr(), 2 << 20);
    let mut tcp = std::net::TcpStream::connect(yun.addr()).unwrap();
    std::io::Write::write_all(&mut tcp, head.as_bytes()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = vec![0u8; 4096];
    let n = std::io::Read::read(&mut tcp, &mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("payload_too_large"), "{reply}");
    // A client that sends the whole body without waiting sees the 413 too, not a broken pipe.
    let (code, err) = error_of(client().post(&url).body(vec![0u8; 2 << 20]).send().await.unwrap()).await;
    assert_eq!((code, err["code"].as_str()), (413, Some("payload_too_large")));
    // Without a Content-Length the limit is enforced while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..32).map(|_| Ok(vec![1u8; 64 * 1024])).collect();
    let stream = futures::stream::iter(chunks);
    let resp = client().post(&url).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(client().post(&url).body("small").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn unknown_functions_and_removed_functions_are_404() {
    let yun = Yun::start(BIN);
    let (code, err) = error_of(client().get(format!("{}/fn/nope/", yun.url())).send().await.unwrap()).await;
    assert_eq!((code, err["code"].as_str()), (404, Some("not_found")));

    yun.deploy("gone", "hello_rust", &[]);
    assert_eq!(std::fs::read_dir(yun.data_dir().join("blobs/artifacts")).unwrap().count(), 1);
    assert!(yun.cli_ok(&["rm", "gone"]).contains("removed gone"));
    let resp = client().get(format!("{}/fn/gone/", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        std::fs::read_dir(yun.data_dir().join("blobs/artifacts")).unwrap().count(),
        0,
        "artifact garbage-collected"
    );
    let out = yun.cli(&["describe", "gone"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no function named gone"));
}

#[tokio::test]
async fn management_api_needs_the_token_and_private_functions_too() {
    let yun = Yun::start(BIN);
    let api = format!("{}/v1/functions", yun.url());
    let (code, err) = error_of(client().get(&api).send().await.unwrap()).await;
    assert_eq!((code, err["code"].as_str()), (401, Some("unauthorized")));
    let (code, _) = error_of(client().get(&api).bearer_auth("yun_wrong").send().await.unwrap()).await;
    assert_eq!(code, 401);
    assert_eq!(client().get(&api).bearer_auth(yun.token()).send().await.unwrap().status(), 200);
    let out = yun.cli(&["ls", "--token", "wrong"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not valid"));

    yun.deploy("secret", "hello_rust", &["--private"]);
    let fn_url = format!("{}/fn/secret/", yun.url());
    assert_eq!(client().get(&fn_url).send().await.unwrap().status(), 401);
    assert_eq!(client().get(&fn_url).bearer_auth("nope").send().await.unwrap().status(), 401);
    assert_eq!(client().get(&fn_url).bearer_auth(yun.token()).send().await.unwrap().status(), 200);
    yun.deploy("open", "hello_rust", &[]);
    assert_eq!(client().get(format!("{}/fn/open/", yun.url())).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn five_hundred_concurrent_requests_all_succeed() {
    let yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &[]);
    let client = client();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let client = client.clone();
        let url = format!("{}/fn/echo/{i}", yun.url());
        tasks.push(tokio::spawn(async move {
            let resp = client.post(url).body(format!("request {i}")).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(body, format!("request {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let mut yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &[]);
    let url = format!("{}/fn/echo/?print=started&sleep_ms=1500", yun.url());
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                client().post(url).body(format!("slow {i}")).send().await.unwrap().text().await.unwrap()
            })
        })
        .collect();
    // Signal only once all three are inside the function (each printed before sleeping).
    let deadline = Instant::now() + Duration::from_secs(20);
    while yun.cli_ok(&["logs", "echo"]).matches("stdout: started").count() < 3 {
        assert!(Instant::now() < deadline, "requests never reached the function");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    yun.terminate();
    for (i, t) in in_flight.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), format!("slow {i}"));
    }
    let status = yun.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn instance_modes_reuse_or_isolate() {
    let yun = Yun::start(BIN);
    yun.deploy("fresh", "echo", &["--instance", "per-request"]);
    yun.deploy("warm", "echo", &["--instance", "reuse"]);
    let count = |name: &str| {
        let url = format!("{}/fn/{name}/?counter=1", yun.url());
        async move { client().get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!((count("fresh").await, count("fresh").await), ("1\n".into(), "1\n".into()));
    assert_eq!((count("warm").await, count("warm").await), ("1\n".into(), "2\n".into()));
    // An instance that trapped is discarded, never reused.
    client().get(format!("{}/fn/warm/?trap=1", yun.url())).send().await.unwrap();
    assert_eq!(count("warm").await, "1\n");
    assert_eq!(count("warm").await, "2\n");
    // So is one that returned without a response: its state may be what broke it.
    let resp = client().get(format!("{}/fn/warm/?no_response=1", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "function_error", "{body}");
    assert_eq!(count("warm").await, "1\n");
}

#[tokio::test]
async fn env_and_outbound_policy() {
    let yun = Yun::start(BIN);
    yun.deploy("closed", "echo", &["--env", "GREETING=hi there"]);
    let resp = client().get(format!("{}/fn/closed/?env=GREETING", yun.url())).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "hi there");

    let target = format!("{}/healthz", yun.url());
    let resp = client().get(format!("{}/fn/closed/?fetch={target}", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("HttpRequestDenied"));

    yun.deploy("open", "echo", &["--allow-outbound", "127.0.0.1"]);
    let resp = client().get(format!("{}/fn/open/?fetch={target}", yun.url())).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "upstream status 200\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_guest_lines_with_their_invocation_id() {
    let yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &[]);
    let resp = client().get(format!("{}/fn/echo/?print=marker-line", yun.url())).send().await.unwrap();
    let id = resp.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let logs = yun.cli_ok(&["logs", "echo", "--since", "10m"]);
    let stdout_line =
        logs.lines().find(|l| l.ends_with("stdout: marker-line")).unwrap_or_else(|| panic!("{logs}"));
    assert!(stdout_line.contains(&id) && stdout_line.contains("echo@1"), "{stdout_line}");
    assert!(logs.lines().any(|l| l.contains(&id) && l.ends_with("stderr: stderr: marker-line")), "{logs}");

    // A trap's cause lands in the logs of its invocation.
    let resp = client().get(format!("{}/fn/echo/?trap=1", yun.url())).send().await.unwrap();
    let trap_id = resp.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let logs = yun.cli_ok(&["logs", "echo"]);
    assert!(logs.lines().any(|l| l.contains(&trap_id) && l.contains("echo was asked to trap")), "{logs}");

    // Following streams lines written after it started.
    let mut follow = std::process::Command::new(BIN)
        .args(["logs", "echo", "-f", "--since", "1s"])
        .env("YUN_URL", yun.url())
        .env("YUN_DATA_DIR", yun.data_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The follower may not be connected yet when a line is written, so keep writing until one
    // arrives (bounded), rather than guessing how long it takes to connect.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        client().get(format!("{}/fn/echo/?print=followed-line", yun.url())).send().await.unwrap();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            if line.ends_with("stdout: followed-line") {
                seen = true;
                break;
            }
        }
    }
    follow.kill().unwrap();
    let _ = follow.wait();
    assert!(seen, "logs -f never showed a line written while following");
}

#[tokio::test]
async fn unknown_api_routes_and_methods() {
    let yun = Yun::start(BIN);
    let c = client();
    let (code, _) =
        error_of(c.get(format!("{}/v1/nothing", yun.url())).bearer_auth(yun.token()).send().await.unwrap())
            .await;
    assert_eq!(code, 404);
    let (code, err) =
        error_of(c.put(format!("{}/v1/status", yun.url())).bearer_auth(yun.token()).send().await.unwrap())
            .await;
    assert_eq!((code, err["code"].as_str()), (405, Some("method_not_allowed")));
    let (code, err) = error_of(
        c.post(format!("{}/v1/functions/x/revisions", yun.url()))
            .bearer_auth(yun.token())
            .body(r#"{"artifact":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, err["code"].as_str()), (400, Some("bad_request")));
    assert!(err["message"].as_str().unwrap().contains("has not been uploaded"));
}

#[tokio::test]
async fn compiling_an_upload_is_bounded_in_memory_and_time() {
    for (flags, needle) in [
        // Beyond what the loaded binary maps: far too little to compile echo.
        (["--compile-memory", "2Mi"], "exceeded the compiler's limits"),
        (["--compile-timeout", "1ms"], "took longer than"),
    ] {
        let yun = Yun::start_with_args(BIN, &flags);
        let path = yun_test_support::guest("echo");
        let out = yun.cli(&["deploy", "echo", path.to_str().unwrap()]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
        assert_eq!(std::fs::read_dir(yun.data_dir().join("blobs/artifacts")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(yun.data_dir().join("blobs/staging")).unwrap().count(), 0);
        let health = client().get(format!("{}/healthz", yun.url())).send().await.unwrap();
        assert_eq!(health.status(), 200, "the platform keeps serving");
    }
}
