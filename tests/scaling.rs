//! End-to-end: elastic scaling through the real `yun` binary on port 0. Process functions scale
//! from zero to several sandboxed instances under a burst and back to zero when idle, keep
//! their min instances, respect their max, refuse overload with 429/503 and Retry-After; wasm
//! functions unload when idle and reload on the next request; every invocation says whether it
//! started cold.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use yun_test_support::{Yun, repo_root};

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

fn deploy_py(yun: &Yun, name: &str) {
    let dir = repo_root().join("examples/python-http").display().to_string();
    yun.cli_ok(&[
        "deploy",
        name,
        &dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "python3 app.py",
    ]);
}

/// Running instances of `function`: sandboxes (each has cgroups of its own, named after the
/// revision) in which the app's interpreter runs. A spare sandbox made ahead of need has no app
/// process yet and does not count.
fn instances(function: &str) -> usize {
    let prefix = format!("/yun/{function}-r");
    let mut groups = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "python3" {
            continue;
        }
        let cgroups = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if let Some(group) =
            cgroups.lines().find_map(|l| l.split_once(&prefix).map(|(_, rest)| rest.to_string()))
        {
            groups.insert(group);
        }
    }
    groups.len()
}

async fn wait_for(what: &str, timeout: Duration, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn describe(yun: &Yun, name: &str) -> Value {
    serde_json::from_str(&yun.cli_ok(&["describe", name, "--json"])).unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_burst_at_zero_scales_out_within_max_and_returns_to_zero_when_idle() {
    let yun = Yun::start(BIN);
    deploy_py(&yun, "burst");
    yun.cli_ok(&["scale", "burst", "--max", "6", "--idle", "2s"]);
    assert_eq!(instances("burst"), 0, "nothing runs before the first request");

    let url = format!("{}/fn/burst/?sleep_ms=300", yun.url());
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(instances("burst"), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let responses = futures::future::join_all((0..50).map(|_| {
        let url = url.clone();
        async move { client().get(url).send().await.unwrap() }
    }))
    .await;
    watcher.abort();
    let mut starts: HashMap<String, usize> = HashMap::new();
    for r in &responses {
        assert_eq!(r.status(), 200, "every request of the burst is served");
        let start = r.headers()["x-yun-start"].to_str().unwrap().to_string();
        *starts.entry(start).or_default() += 1;
    }
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(starts.get("cold").copied().unwrap_or(0) >= 2, "several instances started: {starts:?}");
    assert!(starts.get("queued").copied().unwrap_or(0) > 0, "the rest waited for them: {starts:?}");
    assert!((2..=6).contains(&peak), "instances at the peak: {peak} (max 6)");
    let d = describe(&yun, "burst");
    assert!(d["scale"]["instances"]["ready"].as_u64().unwrap() >= 2, "{d}");

    // No requests for longer than the keep-alive: back to zero processes.
    wait_for("scale to zero", Duration::from_secs(20), || instances("burst") == 0).await;
    let d = describe(&yun, "burst");
    assert_eq!(d["scale"]["instances"]["current"], 0, "{d}");
    // And up again on the next request.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-yun-start"], "cold");
    assert!(r.headers().contains_key("x-yun-init-ms"));
}

#[tokio::test]
async fn min_instances_start_without_traffic_and_serve_warm() {
    let yun = Yun::start(BIN);
    deploy_py(&yun, "provisioned");
    let out = yun.cli_ok(&["scale", "provisioned", "--min", "2", "--idle", "1s"]);
    assert!(out.contains("min 2"), "{out}");
    wait_for("two provisioned instances ready", Duration::from_secs(15), || {
        describe(&yun, "provisioned")["scale"]["instances"]["ready"] == 2
    })
    .await;
    assert_eq!(instances("provisioned"), 2);
    let r = client().get(format!("{}/fn/provisioned/", yun.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-yun-start"], "warm", "a provisioned instance took the first request");
    // Well past the keep-alive, both are still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(instances("provisioned"), 2);
    // They come back after a restart too.
    let mut yun = yun;
    yun.stop();
    wait_for("instances gone with the server", Duration::from_secs(15), || instances("provisioned") == 0)
        .await;
    let again = yun.restart();
    wait_for("provisioned again after a restart", Duration::from_secs(15), || instances("provisioned") == 2)
        .await;
    drop(again);
}

#[tokio::test]
async fn overload_gets_429_or_503_with_retry_after_and_memory_stays_bounded() {
    let yun = Yun::start(BIN);
    deploy_py(&yun, "narrow");
    yun.cli_ok(&["scale", "narrow", "--max", "1", "--queue", "2", "--queue-timeout", "1s"]);
    let base = yun.url();
    // Warm the one instance, then keep it busy.
    assert_eq!(client().get(format!("{base}/fn/narrow/")).send().await.unwrap().status(), 200);
    let busy = tokio::spawn({
        let url = format!("{base}/fn/narrow/?sleep_ms=4000");
        async move { client().get(url).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(yun.pid());
    // 2 wait (and time out: 503); the others find the queue full (429), at once.
    let started = Instant::now();
    let responses = futures::future::join_all((0..300).map(|_| {
        let url = format!("{base}/fn/narrow/");
        async move {
            let r = client().get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let body: Value = r.json().await.unwrap();
            (status, retry, body)
        }
    }))
    .await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, retry, body) in &responses {
        *by_status.entry(*status).or_default() += 1;
        assert!(matches!(status, 429 | 503), "{status} {body}");
        assert!(retry.is_some(), "{status} carries Retry-After");
        let code = body["error"]["code"].as_str().unwrap();
        assert_eq!(code, if *status == 429 { "too_many_requests" } else { "unavailable" }, "{body}");
    }
    // Two wait at a time; a request sent after a waiter timed out may take its place.
    let (waited, refused) =
        (by_status.get(&503).copied().unwrap_or(0), by_status.get(&429).copied().unwrap_or(0));
    assert!((2..=10).contains(&waited) && waited + refused == 300, "{by_status:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "refusals are fast: {:?}", started.elapsed());
    assert_eq!(instances("narrow"), 1, "max instances respected");
    let rss_after = rss_kib(yun.pid());
    assert!(rss_after < rss_before + 64 * 1024, "RSS {rss_before} KiB -> {rss_after} KiB");
    assert_eq!(busy.await.unwrap(), 200, "the busy request was not disturbed");
    assert_eq!(client().get(format!("{base}/fn/narrow/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn no_request_fails_under_steady_load_while_scaling_down() {
    let yun = Yun::start(BIN);
    deploy_py(&yun, "steady");
    // A short stable window, so the autoscaler forgets the burst within the test.
    yun.cli_ok(&["scale", "steady", "--max", "5", "--idle", "1s", "--window", "6s"]);
    let url = format!("{}/fn/steady/?sleep_ms=50", yun.url());
    // A burst brings up several instances...
    let burst = futures::future::join_all((0..25).map(|_| {
        let url = url.clone();
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    }))
    .await;
    assert!(burst.iter().all(|s| *s == 200), "{burst:?}");
    let peak = instances("steady");
    assert!(peak >= 2, "the burst started several instances: {peak}");
    // ...then one client keeps calling for longer than the keep-alive, while the autoscaler
    // retires the instances it no longer needs.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut served = 0;
    let c = reqwest::Client::new();
    while Instant::now() < deadline {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {served} during scale-down: {}", r.text().await.unwrap());
        served += 1;
    }
    assert!(served > 20, "{served}");
    let now = instances("steady");
    assert!(now < peak && now >= 1, "scaled down from {peak} to {now} under a load of one");
}

#[tokio::test]
async fn wasm_revisions_unload_when_idle_and_report_cold_and_warm_starts() {
    let yun = Yun::start(BIN);
    yun.deploy("echo", "echo", &[]);
    let url = format!("{}/fn/echo/", yun.url());
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-yun-start"], "warm", "a deploy loads the code");
    yun.cli_ok(&["scale", "echo", "--idle", "1s"]);
    wait_for("the code unloaded", Duration::from_secs(10), || {
        describe(&yun, "echo")["scale"]["loaded"] == false
    })
    .await;
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-yun-start"], "cold", "reloaded from the precompiled code");
    let id = r.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let init: f64 = r.headers()["x-yun-init-ms"].to_str().unwrap().parse().unwrap();
    assert!(init > 0.0);
    // The REPORT of that invocation is in the logs, with its start kind and init duration.
    let start = Instant::now();
    let report = loop {
        let logs = yun.cli_ok(&["logs", "echo", "--since", "10m"]);
        if let Some(line) = logs.lines().find(|l| l.contains(&id) && l.contains("REPORT")) {
            break line.to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no REPORT for {id}:\n{logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(report.contains("Start: cold") && report.contains("Init Duration:"), "{report}");
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-yun-start"], "warm");
}

#[tokio::test]
async fn wasm_max_instances_caps_concurrency_and_overflow_is_refused() {
    let yun = Yun::start(BIN);
    yun.deploy("capped", "echo", &["--timeout", "2s"]);
    yun.cli_ok(&["scale", "capped", "--max", "1", "--queue", "0"]);
    let base = yun.url();
    let looping = tokio::spawn({
        let url = format!("{base}/fn/capped/?loop=1");
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client().get(format!("{base}/fn/capped/")).send().await.unwrap();
    assert_eq!(r.status(), 429, "the one instance allowed is busy and nothing may wait");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(looping.await.unwrap(), 504);
    assert_eq!(client().get(format!("{base}/fn/capped/")).send().await.unwrap().status(), 200);
    let err = yun.cli(&["scale", "capped", "--concurrency", "4"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("one request at a time"));
    let err = yun.cli(&["scale", "capped", "--min", "5", "--max", "2"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("must not exceed"));
}

#[tokio::test]
async fn a_scaled_in_instance_freezes_and_thaws_for_the_next_request() {
    let yun = Yun::start(BIN);
    deploy_py(&yun, "freezer");
    yun.cli_ok(&["scale", "freezer", "--idle", "1s", "--freeze", "60s"]);
    let url = format!("{}/fn/freezer/?count=1", yun.url());
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-yun-start"], "cold");
    assert_eq!(r.text().await.unwrap(), "1\n");
    wait_for("the instance frozen", Duration::from_secs(10), || {
        describe(&yun, "freezer")["scale"]["instances"]["frozen"] == 1
    })
    .await;
    // Its processes are stopped by the kernel's freezer, and still there.
    let frozen_groups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/freezer/yun")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("freezer-r"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("freezer.state")).unwrap_or_default().trim() == "FROZEN"
        })
        .collect();
    if std::path::Path::new("/sys/fs/cgroup/freezer").exists() {
        assert_eq!(frozen_groups.len(), 1, "one frozen instance cgroup");
    }
    assert_eq!(instances("freezer"), 1, "its process still exists");
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-yun-start"], "thawed");
    assert!(r.headers().contains_key("x-yun-init-ms"));
    assert_eq!(r.text().await.unwrap(), "2\n", "the same process, with its memory, served again");
    let d = describe(&yun, "freezer");
    assert_eq!(d["scale"]["instances"]["frozen"], 0, "{d}");
    // Removing the function takes frozen instances with it.
    wait_for("frozen again", Duration::from_secs(10), || {
        describe(&yun, "freezer")["scale"]["instances"]["frozen"] == 1
    })
    .await;
    yun.cli_ok(&["rm", "freezer"]);
    wait_for("no process left", Duration::from_secs(15), || instances("freezer") == 0).await;
}
