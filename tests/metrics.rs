//! End-to-end: `/metrics` through the real `yun` binary on port 0. Invocations, errors,
//! throttles, durations and cold starts per function and revision, instances and queues, in an
//! exposition Prometheus's own `promtool` accepts; the admin token guards it unless
//! `--metrics-public`.

use std::io::Write;
use std::process::{Command, Stdio};

use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

async fn scrape(yun: &Yun, token: bool) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{}/metrics", yun.url()));
    if token {
        req = req.bearer_auth(yun.token());
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `promtool check metrics` reads the exposition on stdin; it exits non-zero on a format error.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package `prometheus`; .ci/run installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool refused the exposition:\n{report}\n{text}");
    // Lint findings (naming, missing HELP) are printed without failing: there must be none.
    assert!(report.trim().is_empty(), "promtool found problems:\n{report}");
}

#[tokio::test]
async fn metrics_count_invocations_per_function_and_revision_in_a_valid_exposition() {
    let yun = Yun::start(BIN);
    yun.deploy("counted", "echo", &[]);
    yun.cli_ok(&["queue", "create", "jobs"]);
    yun.cli_ok(&["queue", "send", "jobs", "x"]);
    let client = reqwest::Client::new();
    for path in ["/", "/", "/", "/?status=503"] {
        client.get(format!("{}/fn/counted{path}", yun.url())).send().await.unwrap();
    }
    assert_eq!(scrape(&yun, false).await.0, 401, "the admin token guards /metrics by default");
    let (status, text) = scrape(&yun, true).await;
    assert_eq!(status, 200);
    for line in [
        r#"faas_invocations_total{function="counted",revision="1"} 4"#,
        r#"faas_errors_total{function="counted",revision="1"} 1"#,
        r#"faas_invoke_duration_seconds_count{function="counted",revision="1"} 4"#,
        r#"yun_queue_messages{queue="jobs",state="visible"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
    assert!(text.contains("yun_instances{"), "{text}");
    assert!(text.contains("yun_resident_memory_bytes"), "{text}");
    promtool_accepts(&text);

    // A removed function's series go with it.
    yun.cli_ok(&["rm", "counted"]);
    let (_, text) = scrape(&yun, true).await;
    assert!(!text.contains(r#"function="counted""#), "{text}");
}

#[tokio::test]
async fn metrics_can_be_public_and_count_cold_starts() {
    let yun = Yun::start_with_args(BIN, &["--metrics-public"]);
    let dir = yun_test_support::repo_root().join("examples/python-http").display().to_string();
    yun.cli_ok(&[
        "deploy",
        "cold",
        &dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "python3 app.py",
    ]);
    reqwest::get(format!("{}/fn/cold/", yun.url())).await.unwrap();
    let (status, text) = scrape(&yun, false).await;
    assert_eq!(status, 200);
    assert!(text.contains(r#"faas_coldstarts_total{function="cold",revision="1"} 1"#), "{text}");
    assert!(text.contains(r#"faas_init_duration_seconds_count{function="cold",revision="1"} 1"#), "{text}");
    promtool_accepts(&text);
}

/// Usage is exact: its billed milliseconds are the REPORT lines' Billed Durations summed, its
/// memory-time those times the memory limit; and it survives a restart.
#[tokio::test]
async fn usage_is_metered_exactly_and_survives_a_restart() {
    let mut yun = Yun::start(BIN);
    yun.deploy("metered", "echo", &["--memory", "64Mi"]);
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let r = client.get(format!("{}/fn/metered/?sleep_ms=20&size=1000", yun.url())).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 1000);
    }
    // The REPORT lines are written once each response ends; give them a moment to be flushed.
    let mut billed = 0u64;
    for _ in 0..50 {
        let logs = yun.cli_ok(&["logs", "metered"]);
        let reports: Vec<u64> = logs
            .lines()
            .filter_map(|l| l.split("Billed Duration: ").nth(1)?.split(' ').next()?.parse().ok())
            .collect();
        if reports.len() == 10 {
            billed = reports.iter().sum();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(billed >= 200, "ten REPORT lines with at least 20 ms each, got {billed} ms");
    let check = |yun: &Yun| {
        let v: serde_json::Value = serde_json::from_str(&yun.cli_ok(&["usage", "--json"])).unwrap();
        let row =
            v["usage"].as_array().unwrap().iter().find(|r| r["function"] == "metered").cloned().unwrap();
        assert_eq!(row["requests"], 10.0, "{row}");
        assert_eq!(row["billed_ms"].as_f64().unwrap() as u64, billed, "{row}");
        assert_eq!(row["gb_seconds"].as_f64().unwrap(), (64 * billed) as f64 / 1024.0 / 1000.0, "{row}");
        assert_eq!(row["egress_bytes"], 10_000.0, "{row}");
    };
    check(&yun);
    assert!(yun.stop().success());
    let yun = yun.restart();
    check(&yun);
    let out = yun.cli_ok(&["usage"]);
    assert!(out.contains("metered") && out.contains("USD"), "{out}");
}

/// W3C trace context: a caller's trace reaches the function (as its parent), the response and
/// the REPORT line name it; a malformed `traceparent` starts a new trace instead of failing.
#[tokio::test]
async fn a_traceparent_is_continued_into_the_function_and_recorded() {
    let yun = Yun::start(BIN);
    yun.deploy("traced", "echo", &[]);
    let client = reqwest::Client::new();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r =
        client.get(format!("{}/fn/traced/", yun.url())).header("traceparent", parent).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-yun-trace-id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let seen = r.headers()["x-echo-req-traceparent"].to_str().unwrap().to_string();
    assert!(
        seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !seen.contains("00f067aa0ba902b7"),
        "{seen}"
    );
    let r = client
        .get(format!("{}/fn/traced/", yun.url()))
        .header("traceparent", "not-a-trace")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "a malformed traceparent is not an error");
    let fresh = r.headers()["x-yun-trace-id"].to_str().unwrap().to_string();
    assert_eq!(fresh.len(), 32);
    let mut found = false;
    for _ in 0..50 {
        if yun.cli_ok(&["logs", "traced"]).contains("Trace: 4bf92f3577b34da6a3ce929d0e0e4736") {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "the REPORT line names the trace");
}

/// `yun invocation ID`: any invocation's REPORT and log lines, and an asynchronous one's status;
/// all attempts of a stored event share its id.
#[tokio::test]
async fn one_invocation_shows_its_report_and_logs_whatever_triggered_it() {
    let yun = Yun::start(BIN);
    yun.deploy("inspected", "echo", &["--memory", "64Mi"]);
    let client = reqwest::Client::new();
    let r = client.get(format!("{}/fn/inspected/?print=look-at-me", yun.url())).send().await.unwrap();
    let id = r.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let show = |id: &str| -> serde_json::Value {
        serde_json::from_str(&yun.cli_ok(&["invocation", id, "--json"])).unwrap()
    };
    let mut v = serde_json::Value::Null;
    for _ in 0..50 {
        v = show(&id);
        if !v["runs"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(v["function"], "inspected");
    let run = &v["runs"][0];
    assert_eq!(
        (run["status"].as_u64(), run["memory_limit_bytes"].as_u64()),
        (Some(200), Some(64 << 20)),
        "{v}"
    );
    assert!(run["billed_ms"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!((run["trigger"].as_str(), run["attempt"].as_u64()), (Some("http"), Some(1)), "{v}");
    assert!(v["logs"].to_string().contains("look-at-me"), "{v}");

    // An asynchronous one: its status, and its delivery's REPORT under the same id.
    let r = client
        .post(format!("{}/fn/inspected/?print=later", yun.url()))
        .header("x-yun-invocation-type", "event")
        .send()
        .await
        .unwrap();
    let event: serde_json::Value = r.json().await.unwrap();
    let event = event["invocation_id"].as_str().unwrap().to_string();
    let mut v = serde_json::Value::Null;
    for _ in 0..100 {
        v = show(&event);
        if v["async"]["status"] == "succeeded" && !v["runs"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(v["async"]["status"], "succeeded", "{v}");
    assert!(v["logs"].to_string().contains("later"), "{v}");
    let human = yun.cli_ok(&["invocation", &event]);
    assert!(human.contains("run:") && human.contains("async:"), "{human}");
    assert_eq!(v["runs"][0]["trigger"], "async", "{v}");

    let out = yun.cli(&["invocation", "0190a0b0-0000-7000-8000-000000000000"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no invocation"), "{out:?}");
}

/// `yun logs` filters by revision, invocation and text, and follows as server-sent events.
#[tokio::test]
async fn logs_filter_and_stream_as_server_sent_events() {
    let yun = Yun::start(BIN);
    yun.deploy("chatty", "echo", &[]);
    let client = reqwest::Client::new();
    let r = client.get(format!("{}/fn/chatty/?print=alpha-line", yun.url())).send().await.unwrap();
    let first = r.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    yun.deploy("chatty", "echo", &[]);
    client.get(format!("{}/fn/chatty/?print=beta-line", yun.url())).send().await.unwrap();
    let mut ok = false;
    for _ in 0..50 {
        let rev2 = yun.cli_ok(&["logs", "chatty", "--revision", "2"]);
        if rev2.contains("beta-line") {
            assert!(!rev2.contains("alpha-line"), "{rev2}");
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "revision 2's line never showed");
    let grep = yun.cli_ok(&["logs", "chatty", "--grep", "alpha"]);
    assert!(grep.contains("alpha-line") && !grep.contains("beta-line") && !grep.contains("REPORT"), "{grep}");
    let one = yun.cli_ok(&["logs", "chatty", "--invocation", &first]);
    assert!(one.contains("alpha-line") && !one.contains("beta-line"), "{one}");

    // Server-sent events, following: a line printed after connecting arrives as an event.
    let mut stream = client
        .get(format!("{}/v1/functions/chatty/logs?follow=true&contains=gamma", yun.url()))
        .bearer_auth(yun.token())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let sent = std::time::Instant::now();
    client.get(format!("{}/fn/chatty/?print=gamma-line", yun.url())).send().await.unwrap();
    let mut got = String::new();
    while !got.contains("gamma-line") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
            .await
            .expect("the follower saw the line within 10 s")
            .unwrap()
            .expect("the stream stays open");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(got.starts_with("data: {"), "{got}");
    println!("a printed line reached the follower {:?} after the request", sent.elapsed());
}
