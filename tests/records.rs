//! End-to-end: invocation records through the real `yun` binary on port 0. Every trigger leaves
//! one (HTTP, asynchronous, cron, queue, topic, another function, the Lambda Invoke API), with
//! its durations, billed time, memory limit and peak, bytes and trace; they can be filtered,
//! survive a restart, and are bounded per function.

use std::time::{Duration, Instant};

use serde_json::Value;
use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn invocations(yun: &Yun, function: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["invocations", function, "--json", "--limit", "1000"];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&yun.cli_ok(&args)).unwrap();
    v["invocations"].as_array().cloned().unwrap_or_default()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_trigger<'a>(rows: &'a [Value], trigger: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["trigger"] == trigger)
}

#[tokio::test]
async fn every_trigger_leaves_a_record_with_what_the_run_cost() {
    let yun = Yun::start(BIN);
    yun.deploy("rec", "echo", &["--memory", "64Mi"]);
    yun.deploy("caller", "echo", &[]);
    let client = reqwest::Client::new();
    let url = yun.url();

    // HTTP: a body in, a body out, a trace, memory grown by the function.
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = client
        .post(format!("{url}/fn/rec/?alloc_mb=8"))
        .header("traceparent", parent)
        .body("0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let http_id = r.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let http_out = r.bytes().await.unwrap().len() as u64;

    // Asynchronous.
    let r =
        client.post(format!("{url}/fn/rec/")).header("x-yun-invocation-type", "event").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // Another function calling it through yun, in the caller's trace.
    let caller_trace = "00-11111111111111111111111111111111-2222222222222222-01";
    let r = client
        .get(format!("{url}/fn/caller/?fetch=http://yun.internal/fn/rec/"))
        .header("traceparent", caller_trace)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    // The Lambda Invoke API.
    let r = client
        .post(format!("{url}/2015-03-31/functions/rec/invocations"))
        .bearer_auth(yun.token())
        .body(r#"{"k":"v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A queue, a topic and a schedule.
    yun.cli_ok(&["queue", "create", "work"]);
    yun.cli_ok(&["trigger", "add", "rec", "from-work", "--queue", "work"]);
    yun.cli_ok(&["queue", "send", "work", "job"]);
    yun.cli_ok(&["topic", "create", "news"]);
    yun.cli_ok(&["topic", "subscribe", "news", "function:rec"]);
    yun.cli_ok(&["topic", "publish", "news", "story"]);
    yun.cli_ok(&["trigger", "add", "rec", "tick", "--cron", "* * * * * *"]);

    let all = ["http", "async", "function", "invoke", "queue", "topic", "cron"];
    let mut rows = Vec::new();
    wait_for("a record of every trigger", || {
        rows = invocations(&yun, "rec", &[]);
        all.iter().all(|t| by_trigger(&rows, t).is_some())
    })
    .await;
    yun.cli_ok(&["trigger", "rm", "rec", "tick"]);

    let http = rows.iter().find(|r| r["id"] == http_id.as_str()).unwrap();
    assert_eq!(http["trigger"], "http");
    assert_eq!(http["status"], "succeeded");
    assert_eq!(http["http_status"], 200);
    assert_eq!(http["revision"], 1);
    // A deploy loads the code, so the first request may already find it warm.
    match http["start"].as_str() {
        Some("cold") => assert!(http["init_ms"].as_f64().unwrap() > 0.0, "{http}"),
        Some("warm") => assert!(http["init_ms"].is_null(), "{http}"),
        other => panic!("start {other:?}: {http}"),
    }
    assert_eq!(http["memory_limit_bytes"], 64u64 << 20);
    let peak = http["max_memory_bytes"].as_u64().unwrap();
    assert!((8 << 20..=64 << 20).contains(&peak), "8 MiB allocated, peak {peak}");
    assert_eq!(http["bytes_in"], 10);
    assert_eq!(http["bytes_out"], http_out);
    assert_eq!(http["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    let billed = http["billed_ms"].as_u64().unwrap();
    let duration = http["duration_ms"].as_f64().unwrap();
    assert_eq!(billed, duration.ceil() as u64, "{http}");

    // The call from the other function went on in the caller's trace.
    let called = by_trigger(&rows, "function").unwrap();
    assert_eq!(called["trace_id"], "11111111111111111111111111111111", "{called}");
    assert_eq!(by_trigger(&rows, "invoke").unwrap()["bytes_in"], 9);
    let queued = by_trigger(&rows, "async").unwrap();
    assert_eq!(
        (queued["status"].as_str(), queued["attempt"].as_u64()),
        (Some("succeeded"), Some(1)),
        "{queued}"
    );

    // Filters: by trigger, by time, by status.
    let crons = invocations(&yun, "rec", &["--trigger", "cron"]);
    assert!(!crons.is_empty() && crons.iter().all(|r| r["trigger"] == "cron"));
    assert!(invocations(&yun, "rec", &["--status", "failed"]).is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let recent = invocations(&yun, "rec", &["--since", "1s"]);
    assert!(recent.iter().all(|r| r["trigger"] == "cron"), "only the last ticks are that recent: {recent:?}");

    // The human table and the single view.
    let table = yun.cli_ok(&["invocations", "rec"]);
    assert!(table.contains("TRIGGER") && table.contains(&http_id) && table.contains("invoke"), "{table}");
    let one = yun.cli_ok(&["invocation", &http_id]);
    assert!(one.contains("by http") && one.contains("10 bytes in") && one.contains("max used"), "{one}");
}

#[tokio::test]
async fn failures_are_recorded_with_their_error_and_records_survive_a_restart() {
    let mut yun = Yun::start_with_args(BIN, &["--records-max", "20"]);
    yun.deploy("shaky", "echo", &["--memory", "32Mi", "--timeout", "1s"]);
    let client = reqwest::Client::new();
    let url = yun.url();
    let trap = client.get(format!("{url}/fn/shaky/?trap=1")).send().await.unwrap();
    assert_eq!(trap.status().as_u16(), 500);
    let trap = trap.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let bomb = client.get(format!("{url}/fn/shaky/?alloc_mb=100")).send().await.unwrap();
    let bomb = bomb.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let slow = client.get(format!("{url}/fn/shaky/?loop=1")).send().await.unwrap();
    assert_eq!(slow.status().as_u16(), 504);
    let slow = slow.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let mut failed = Vec::new();
    wait_for("three failed records", || {
        failed = invocations(&yun, "shaky", &["--status", "failed"]);
        failed.len() == 3
    })
    .await;
    let error_of =
        |id: &str| failed.iter().find(|r| r["id"] == id).unwrap()["error"].as_str().unwrap().to_string();
    assert!(error_of(&trap).starts_with("function_error:"), "{failed:?}");
    assert!(error_of(&bomb).starts_with("memory_limit_exceeded:"), "{failed:?}");
    assert!(error_of(&slow).starts_with("timeout:"), "{failed:?}");
    let slow_row = failed.iter().find(|r| r["id"] == slow.as_str()).unwrap();
    assert!(slow_row["duration_ms"].as_f64().unwrap() >= 1000.0, "{slow_row}");

    // Bounded: 30 more runs keep the newest 20.
    for _ in 0..30 {
        client.get(format!("{url}/fn/shaky/")).send().await.unwrap();
    }
    wait_for("the records to be trimmed to 20", || invocations(&yun, "shaky", &[]).len() == 20).await;
    assert!(invocations(&yun, "shaky", &["--status", "failed"]).is_empty(), "the oldest went first");

    assert!(yun.stop().success());
    let yun = yun.restart();
    assert_eq!(invocations(&yun, "shaky", &[]).len(), 20, "records survive a restart");

    // Unknown ids are a 404; removing the function removes its records.
    let r = client
        .get(format!("{}/v1/invocations/0190a0b0-0000-7000-8000-000000000000", yun.url()))
        .bearer_auth(yun.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    yun.cli_ok(&["rm", "shaky"]);
    yun.deploy("shaky", "echo", &[]);
    assert!(invocations(&yun, "shaky", &[]).is_empty(), "a new function of the same name starts clean");
}
