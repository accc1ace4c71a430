//! End-to-end: process functions (http, stdio) through the real `yun` binary on port 0, in its
//! sandbox, with the example apps from `examples/`.

use std::time::{Duration, Instant};

use serde_json::Value;
use yun_test_support::{Yun, repo_root};

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn example(dir: &str) -> String {
    repo_root().join("examples").join(dir).display().to_string()
}

fn deploy(yun: &Yun, name: &str, dir: &str, mode: &str, command: &str, flags: &[&str]) -> String {
    let dir = example(dir);
    let mut args =
        vec!["deploy", name, dir.as_str(), "--runtime", "process", "--mode", mode, "--command", command];
    args.extend_from_slice(flags);
    yun.cli_ok(&args)
}

async fn get(yun: &Yun, path: &str) -> reqwest::Response {
    client().get(format!("{}{path}", yun.url())).send().await.unwrap()
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    (status, body["error"].clone())
}

fn logs(yun: &Yun, name: &str) -> String {
    yun.cli_ok(&["logs", name, "--since", "10m"])
}

/// Polls the logs until `pred` holds: lines from a process reach the log store asynchronously.
async fn wait_logs(yun: &Yun, name: &str, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let l = logs(yun, name);
        if pred(&l) || start.elapsed() > Duration::from_secs(10) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn python_http_app_is_resident_and_proxied() {
    let yun = Yun::start(BIN);
    let out = deploy(&yun, "py", "python-http", "http", "python3 app.py", &[]);
    assert!(out.contains("deployed py revision 1"), "{out}");

    let resp = client()
        .post(format!("{}/fn/py/some/path?x=1&y=two", yun.url()))
        .header("x-custom", "abc")
        .body("hello body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-yun-invocation-id"));
    assert_eq!(resp.headers()["x-yun-revision"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "x=1&y=two");
    assert_eq!(v["body"], "hello body");
    assert_eq!(v["headers"]["x-custom"], "abc");
    assert_eq!(v["headers"]["x-forwarded-prefix"], "/fn/py");

    // Resident: the same process serves the next requests.
    let pid = v["pid"].clone();
    let again: Value = get(&yun, "/fn/py/").await.json().await.unwrap();
    assert_eq!(again["pid"], pid);
    let count = get(&yun, "/fn/py/?count=1").await.text().await.unwrap();
    assert_eq!(count, "3\n");

    // Host-based routing reaches it too.
    let resp = client().get(format!("{}/hi", yun.url())).header("host", "py.localhost").send().await.unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["path"], "/hi");

    // Its output is in the function's logs, tagged with the invocation.
    let resp = get(&yun, "/fn/py/?print=marker-line").await;
    let id = resp.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let l = wait_logs(&yun, "py", |l| l.contains("stderr: marker-line")).await;
    assert!(l.lines().any(|line| line.contains(&id) && line.ends_with("stdout: marker-line")), "{l}");
}

#[tokio::test]
async fn node_http_app_serves() {
    let yun = Yun::start(BIN);
    deploy(&yun, "node", "node-http", "http", "node server.js", &["--health", "/ready"]);
    let v: Value = get(&yun, "/fn/node/a/b?q=1").await.json().await.unwrap();
    assert_eq!(
        (v["runtime"].as_str(), v["path"].as_str(), v["query"].as_str()),
        (Some("node"), Some("/a/b"), Some("q=1"))
    );
}

#[tokio::test]
async fn shell_cgi_runs_once_per_request() {
    let yun = Yun::start(BIN);
    deploy(&yun, "sh", "shell-stdio", "stdio", "sh handler.sh", &[]);
    let resp = client()
        .post(format!("{}/fn/sh/p/q?status=201&a=b", yun.url()))
        .header("content-type", "text/plain")
        .header("user-agent", "yun-test")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-script"], "shell");
    let text = resp.text().await.unwrap();
    assert!(text.contains("method=POST path=/p/q query=status=201&a=b"), "{text}");
    assert!(text.contains("content_type=text/plain content_length=8"), "{text}");
    assert!(text.contains("user_agent=yun-test"), "{text}");
    assert!(text.contains("body=the body"), "{text}");

    let (code, err) = error_of(get(&yun, "/fn/sh/?fail=7").await).await;
    assert_eq!((code, err["code"].as_str()), (500, Some("function_error")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("code 7"), "{err}");
    let l = wait_logs(&yun, "sh", |l| l.contains("failing with 7")).await;
    assert!(l.contains("failing with 7"), "{l}");
}

#[tokio::test]
async fn a_looping_app_times_out_and_the_next_request_is_served() {
    let yun = Yun::start(BIN);
    deploy(&yun, "py", "python-http", "http", "python3 app.py", &["--timeout", "1s"]);
    assert_eq!(get(&yun, "/fn/py/").await.status(), 200);
    let start = Instant::now();
    let (code, err) = error_of(get(&yun, "/fn/py/?loop=1").await).await;
    let took = start.elapsed();
    assert_eq!((code, err["code"].as_str()), (504, Some("timeout")), "{err}");
    assert!(took >= Duration::from_millis(800) && took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(get(&yun, "/fn/py/").await.status(), 200, "a fresh instance serves");
}

#[tokio::test]
async fn a_memory_hog_is_killed_alone() {
    let yun = Yun::start(BIN);
    deploy(&yun, "py", "python-http", "http", "python3 app.py", &["--memory", "64Mi"]);
    deploy(&yun, "bystander", "python-http", "http", "python3 app.py", &[]);
    assert_eq!(get(&yun, "/fn/bystander/").await.status(), 200);
    let before: Value = get(&yun, "/fn/bystander/").await.json().await.unwrap();
    let (code, err) = error_of(get(&yun, "/fn/py/?hog_mb=256").await).await;
    assert_eq!((code, err["code"].as_str()), (500, Some("memory_limit_exceeded")), "{err}");
    let after: Value = get(&yun, "/fn/bystander/").await.json().await.unwrap();
    assert_eq!(before["pid"], after["pid"], "only the hog's instance was killed");
    assert_eq!(get(&yun, "/fn/py/").await.status(), 200);
}

#[tokio::test]
async fn a_crash_mid_request_is_a_prompt_502() {
    let yun = Yun::start(BIN);
    deploy(&yun, "py", "python-http", "http", "python3 app.py", &[]);
    assert_eq!(get(&yun, "/fn/py/").await.status(), 200);
    let start = Instant::now();
    let (code, err) = error_of(get(&yun, "/fn/py/?crash=1").await).await;
    assert_eq!((code, err["code"].as_str()), (502, Some("bad_gateway")), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    assert_eq!(get(&yun, "/fn/py/").await.status(), 200);
}

#[tokio::test]
async fn an_app_that_never_gets_ready_is_a_503_with_its_stderr_in_the_logs() {
    let yun = Yun::start(BIN);
    let dir = example("shell-stdio");
    yun.cli_ok(&[
        "deploy",
        "slow",
        &dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "echo still booting >&2; sleep 60",
        "--startup-timeout",
        "500ms",
    ]);
    let (code, err) = error_of(get(&yun, "/fn/slow/").await).await;
    assert_eq!((code, err["code"].as_str()), (503, Some("unavailable")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("still booting"), "{err}");
    let l = wait_logs(&yun, "slow", |l| l.contains("still booting")).await;
    assert!(l.contains("still booting"), "{l}");
}

#[tokio::test]
async fn idle_instances_are_stopped() {
    let yun = Yun::start(BIN);
    deploy(&yun, "py", "python-http", "http", "python3 app.py", &["--idle-timeout", "1s"]);
    assert_eq!(get(&yun, "/fn/py/?count=1").await.text().await.unwrap(), "1\n");
    assert_eq!(get(&yun, "/fn/py/?count=1").await.text().await.unwrap(), "2\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&yun, "/fn/py/?count=1").await.text().await.unwrap(), "1\n", "a new process after idling");
    let l = wait_logs(&yun, "py", |l| l.contains("scaled in")).await;
    assert!(l.contains("scaled in"), "{l}");
}

#[tokio::test]
async fn archives_are_unpacked_and_unsafe_ones_rejected() {
    let yun = Yun::start(BIN);
    let tmp = tempfile::tempdir().unwrap();

    // A zip made by a common tool deploys.
    let zip = tmp.path().join("code.zip");
    let status = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.write(sys.argv[2], 'handler.sh'); z.close()"])
        .arg(&zip)
        .arg(repo_root().join("examples/shell-stdio/handler.sh"))
        .status()
        .unwrap();
    assert!(status.success());
    let zip_s = zip.display().to_string();
    yun.cli_ok(&[
        "deploy",
        "z",
        &zip_s,
        "--runtime",
        "process",
        "--mode",
        "stdio",
        "--command",
        "sh handler.sh",
    ]);
    assert!(get(&yun, "/fn/z/x").await.text().await.unwrap().contains("path=/x"));

    // A tarball whose entry climbs out of the code directory is refused, and nothing is kept.
    let evil = tmp.path().join("evil.tar.gz");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import io, sys, tarfile\n\
t = tarfile.open(sys.argv[1], 'w:gz')\n\
data = b'owned'\n\
info = tarfile.TarInfo('../../escaped.txt'); info.size = len(data)\n\
t.addfile(info, io.BytesIO(data)); t.close()",
        ])
        .arg(&evil)
        .status()
        .unwrap();
    assert!(status.success());
    let codes_before = std::fs::read_dir(yun.data_dir().join("blobs/code")).unwrap().count();
    let out = yun.cli(&[
        "deploy",
        "evil",
        &evil.display().to_string(),
        "--runtime",
        "process",
        "--mode",
        "stdio",
        "--command",
        "true",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("archive was rejected"), "{stderr}");
    assert_eq!(std::fs::read_dir(yun.data_dir().join("blobs/code")).unwrap().count(), codes_before);
    assert_eq!(std::fs::read_dir(yun.data_dir().join("blobs/staging")).unwrap().count(), 0);
    assert!(
        !yun.data_dir().join("escaped.txt").exists() && !yun.data_dir().join("blobs/escaped.txt").exists()
    );
    assert_eq!(error_of(get(&yun, "/fn/evil/").await).await.0, 404);

    // A component is not code, nor code a component.
    let wasm = yun_test_support::guest("hello_rust").display().to_string();
    let out =
        yun.cli(&["deploy", "w", &wasm, "--runtime", "process", "--mode", "stdio", "--command", "true"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn process_functions_serve_again_after_a_restart() {
    let mut yun = Yun::start(BIN);
    deploy(&yun, "sh", "shell-stdio", "stdio", "sh handler.sh", &[]);
    deploy(&yun, "py", "python-http", "http", "python3 app.py", &[]);
    assert_eq!(get(&yun, "/fn/sh/").await.status(), 200);
    assert_eq!(get(&yun, "/fn/py/").await.status(), 200);
    assert!(yun.stop().success(), "a resident process does not hold up shutdown");
    let again = yun.restart();
    assert_eq!(get(&again, "/fn/py/").await.status(), 200);
    assert_eq!(get(&again, "/fn/sh/").await.status(), 200);
    let d = again.cli_ok(&["describe", "sh"]);
    assert!(d.contains("process"), "{d}");
}

#[tokio::test]
async fn escape_probes_are_denied() {
    let yun = Yun::start(BIN);
    deploy(&yun, "other", "shell-stdio", "stdio", "sh handler.sh", &[]);
    deploy(&yun, "probe", "probe", "stdio", "python3 probe.py", &[]);
    let describe: Value =
        serde_json::from_str(&yun.cli_ok(&["--json", "describe", "other"])).expect("describe --json");
    let digest =
        describe["revisions"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let others_code = yun.data_dir().join("blobs/code").join(digest);
    assert!(others_code.is_dir(), "{}", others_code.display());
    for (target, connect) in [
        (yun.data_dir().display().to_string(), yun.addr().to_string()),
        (others_code.display().to_string(), "1.1.1.1:53".to_string()),
    ] {
        let url = format!("{}/fn/probe/?list={target}&connect={connect}", yun.url());
        let resp = client().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        let results = v["results"].as_object().unwrap();
        for (probe, outcome) in results {
            let outcome = outcome.as_str().unwrap();
            if probe == "write_tmp" {
                assert!(!outcome.starts_with("denied"), "the function's own /tmp is writable: {outcome}");
            } else {
                assert!(
                    outcome.starts_with("denied"),
                    "{probe} was not denied: {outcome} ({target}, {connect})"
                );
            }
        }
        for probe in
            ["read_etc_shadow", "list_path", "mount_tmpfs", "ptrace_attach", "unshare_user_ns", "connect"]
        {
            assert!(results.contains_key(probe), "the probe ran {probe}");
        }
        assert_ne!(v["facts"]["uid"], 0, "functions never run as root");
    }
}

/// Instance cgroups of this test's functions (named after them) and processes inside them.
fn instance_leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in [
        "/sys/fs/cgroup/memory/yun",
        "/sys/fs/cgroup/pids/yun",
        "/sys/fs/cgroup/cpu/yun",
        "/sys/fs/cgroup/yun",
    ] {
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                found.push(format!("cgroup {root}/{name}"));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cg) = std::fs::read_to_string(entry.path().join("cgroup"))
            && cg.contains(&format!("/yun/{prefix}"))
        {
            found.push(format!("process {}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[tokio::test]
async fn nothing_leaks_after_requests_crashes_timeouts_and_fork_bombs() {
    let yun = Yun::start(BIN);
    deploy(&yun, "leakcheck-http", "python-http", "http", "python3 app.py", &["--timeout", "1s"]);
    deploy(&yun, "leakcheck-cgi", "shell-stdio", "stdio", "sh handler.sh", &[]);
    let dir = example("shell-stdio");
    yun.cli_ok(&[
        "deploy",
        "leakcheck-bomb",
        &dir,
        "--runtime",
        "process",
        "--mode",
        "stdio",
        "--timeout",
        "2s",
        "--command",
        "bomb() { bomb | bomb & }; bomb; sleep 1; echo; echo survived",
    ]);
    for _ in 0..3 {
        assert_eq!(get(&yun, "/fn/leakcheck-cgi/").await.status(), 200);
    }
    assert_eq!(get(&yun, "/fn/leakcheck-http/").await.status(), 200);
    assert_eq!(get(&yun, "/fn/leakcheck-http/?loop=1").await.status(), 504);
    assert_eq!(get(&yun, "/fn/leakcheck-http/?crash=1").await.status(), 502);
    assert_eq!(get(&yun, "/fn/leakcheck-http/?sleep_ms=10").await.status(), 200);
    // The fork bomb meets the pids limit; whatever it answers, the platform keeps serving.
    let bomb = get(&yun, "/fn/leakcheck-bomb/").await.status();
    assert!(bomb.is_success() || bomb.is_server_error(), "{bomb}");
    assert_eq!(get(&yun, "/healthz").await.status(), 200);
    assert_eq!(get(&yun, "/fn/leakcheck-cgi/").await.status(), 200);
    // Resident instances end with their function.
    yun.cli_ok(&["rm", "leakcheck-http"]);
    let start = Instant::now();
    let mut left = instance_leftovers("leakcheck-");
    while !left.is_empty() && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = instance_leftovers("leakcheck-");
    }
    assert!(left.is_empty(), "left behind: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&yun.data_dir().display().to_string()),
        "no sandbox mount is visible on the host"
    );
}

/// What a process function's run used is measured from its sandbox (cgroup): the instance's
/// peak memory and the CPU time of the run, in its invocation record and REPORT line; its trace
/// reaches a run-once process as `TRACEPARENT`.
#[tokio::test]
async fn process_runs_are_recorded_with_memory_cpu_and_trace() {
    let yun = Yun::start(BIN);
    deploy(&yun, "py", "python-http", "http", "python3 app.py", &[]);
    deploy(&yun, "sh", "shell-stdio", "stdio", "sh handler.sh", &[]);
    let resp = client().get(format!("{}/fn/py/", yun.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let py = resp.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let resp =
        client().get(format!("{}/fn/sh/", yun.url())).header("traceparent", parent).send().await.unwrap();
    let sh = resp.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let body = resp.text().await.unwrap();
    assert!(body.contains("traceparent=00-0af7651916cd43dd8448eb211c80319c-"), "{body}");

    let run = |id: &str| -> Option<Value> {
        let v: Value = serde_json::from_str(&yun.cli_ok(&["invocation", id, "--json"])).unwrap();
        v["runs"].as_array().and_then(|r| r.first().cloned())
    };
    let started = Instant::now();
    let (py, sh) = loop {
        if let (Some(a), Some(b)) = (run(&py), run(&sh)) {
            break (a, b);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no records");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A Python interpreter uses megabytes; the measurement is the sandbox's, not a guess.
    let peak = py["max_memory_bytes"].as_u64().unwrap_or(0);
    assert!(peak > 4 << 20 && peak <= py["memory_limit_bytes"].as_u64().unwrap(), "{py}");
    assert!(py["cpu_ms"].as_f64().is_some(), "{py}");
    assert!(sh["max_memory_bytes"].as_u64().unwrap_or(0) > 0, "{sh}");
    assert!(sh["cpu_ms"].as_f64().unwrap() > 0.0, "a shell that forks costs some CPU: {sh}");
    assert_eq!(sh["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    let logs = wait_logs(&yun, "py", |l| l.contains("Max Memory Used:")).await;
    assert!(logs.contains("CPU:"), "{logs}");
}
