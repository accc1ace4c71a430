//! End-to-end: events through the real `yun` binary on port 0. An asynchronous invocation is
//! answered 202 once stored and runs later; failures are retried, then dead-lettered and sent
//! to their destination, and can be sent back; queues deliver at least once under a visibility
//! timeout, dead-letter after max receives, keep FIFO order; a queue trigger reports partial
//! failures and isolates a poison message; a cron schedule wakes a function scaled to zero;
//! and every acknowledged event survives `kill -9` of yun, round after round.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use yun_test_support::{Yun, repo_root};

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn api(yun: &Yun, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("{}{path}", yun.url())).bearer_auth(yun.token())
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn logs(yun: &Yun, function: &str) -> String {
    yun.cli_ok(&["logs", function])
}

fn invocations(yun: &Yun, function: &str, status: Option<&str>) -> Vec<Value> {
    let mut args = vec!["invocations", function, "--json"];
    if let Some(s) = status {
        args.extend(["--status", s]);
    }
    let v: Value = serde_json::from_str(&yun.cli_ok(&args)).unwrap();
    v["invocations"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_async_invocation_is_stored_then_runs_with_its_cloudevent() {
    let yun = Yun::start(BIN);
    yun.deploy("later", "echo", &[]);
    let r = reqwest::Client::new()
        .post(format!("{}/fn/later/some/path?print=ran-async", yun.url()))
        .header("x-yun-invocation-type", "event")
        .header("x-custom", "kept")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.headers()["x-yun-invocation-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["invocation_id"], id.as_str());
    wait_until("the event to run", Duration::from_secs(10), || async {
        invocations(&yun, "later", Some("succeeded")).iter().any(|r| r["id"] == id.as_str())
    })
    .await;
    wait_until("its log line", Duration::from_secs(5), || async {
        logs(&yun, "later").contains("ran-async")
    })
    .await;
    // The CLI does the same.
    let out = yun.cli_ok(&["invoke", "later", "--async", "--path", "/?print=from-cli"]);
    assert!(out.contains("invocation_id"), "{out}");
    wait_until("the CLI's event", Duration::from_secs(10), || async {
        logs(&yun, "later").contains("from-cli")
    })
    .await;
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_sent_to_their_destination_and_redriven() {
    let yun = Yun::start(BIN);
    yun.deploy("flaky", "echo", &[]);
    yun.cli_ok(&["queue", "create", "outcomes"]);
    yun.cli_ok(&[
        "async",
        "flaky",
        "--max-attempts",
        "3",
        "--retry-delay",
        "100ms",
        "--on-failure",
        "queue:outcomes",
    ]);
    let (status, v) = call(
        api(&yun, reqwest::Method::POST, "/fn/flaky/?status=503").header("x-yun-invocation-type", "event"),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let id = v["invocation_id"].as_str().unwrap().to_string();
    wait_until("the event to fail for good", Duration::from_secs(15), || async {
        invocations(&yun, "flaky", Some("failed")).iter().any(|r| r["id"] == id.as_str())
    })
    .await;
    let record =
        invocations(&yun, "flaky", Some("failed")).into_iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(record["attempts"], 3, "{record}");
    assert_eq!(record["last_status"], 503);

    // Its outcome reached the destination queue, in Lambda's destination shape.
    let (_, got) = call(
        api(&yun, reqwest::Method::POST, "/v1/queues/outcomes/receive").json(&json!({ "wait_ms": 5000 })),
    )
    .await;
    let outcome: Value = serde_json::from_str(got["messages"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(outcome["requestContext"]["requestId"], id.as_str());
    assert_eq!(outcome["responseContext"]["statusCode"], 503);

    // A 4xx is the function refusing the event: not retried.
    let (_, v) = call(
        api(&yun, reqwest::Method::POST, "/fn/flaky/?status=400").header("x-yun-invocation-type", "event"),
    )
    .await;
    let refused = v["invocation_id"].as_str().unwrap().to_string();
    wait_until("the refused event", Duration::from_secs(10), || async {
        invocations(&yun, "flaky", Some("failed"))
            .iter()
            .any(|r| r["id"] == refused.as_str() && r["attempts"] == 1)
    })
    .await;

    // Redrive: the dead letters go back and are tried again (and fail again).
    let out = yun.cli_ok(&["dlq", "redrive", "flaky"]);
    assert!(out.contains("2 dead-lettered events"), "{out}");
    wait_until("the redriven events to be tried", Duration::from_secs(15), || async {
        let (_, q) =
            call(api(&yun, reqwest::Method::POST, "/v1/queues/outcomes/receive").json(&json!({ "max": 10 })))
                .await;
        !q["messages"].as_array().unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn queues_deliver_at_least_once_dead_letter_and_keep_fifo_order() {
    let yun = Yun::start(BIN);
    yun.cli_ok(&["queue", "create", "dead"]);
    yun.cli_ok(&["queue", "create", "jobs", "--visibility", "1s", "--max-receives", "2", "--dlq", "dead"]);
    let id = yun.cli_ok(&["queue", "send", "jobs", "job-1"]).trim().to_string();
    let recv = |wait: &str| {
        let v: Value =
            serde_json::from_str(&yun.cli_ok(&["queue", "receive", "jobs", "--wait", wait, "--json"]))
                .unwrap();
        v["messages"].as_array().cloned().unwrap_or_default()
    };
    let first = recv("0s");
    assert_eq!((first[0]["id"].as_str(), first[0]["receive_count"].as_u64()), (Some(id.as_str()), Some(1)));
    assert!(recv("0s").is_empty(), "a received message is invisible until its timeout");
    let second = recv("3s");
    assert_eq!(second[0]["receive_count"], 2, "redelivered after the visibility timeout");
    // A stale receipt deletes nothing; the third receive moves it to the dead-letter queue.
    yun.cli_ok(&["queue", "delete", "jobs", first[0]["receipt"].as_str().unwrap()]);
    assert!(recv("3s").is_empty(), "past max receives the message is dead-lettered, not delivered");
    let dead: Value = serde_json::from_str(&yun.cli_ok(&["queue", "receive", "dead", "--json"])).unwrap();
    assert_eq!(dead["messages"][0]["body"], "job-1");

    // FIFO: order per group, a group in flight holds its later messages back.
    yun.cli_ok(&["queue", "create", "ordered", "--fifo"]);
    for (body, group) in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("a3", "a")] {
        yun.cli_ok(&["queue", "send", "ordered", body, "--group", group, "--dedup-id", body]);
    }
    yun.cli_ok(&["queue", "send", "ordered", "a1", "--group", "a", "--dedup-id", "a1"]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let v: Value = serde_json::from_str(
            &yun.cli_ok(&["queue", "receive", "ordered", "--max", "10", "--delete", "--json"]),
        )
        .unwrap();
        seen.extend(
            v["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_string()),
        );
    }
    let a: Vec<&String> = seen.iter().filter(|b| b.starts_with('a')).collect();
    assert_eq!(a, ["a1", "a2", "a3"], "group a in order, deduplicated: {seen:?}");
    assert_eq!(seen.len(), 4);

    // Bad input.
    assert_eq!(
        call(api(&yun, reqwest::Method::POST, "/v1/queues/nope/messages").json(&json!({ "body": "x" })))
            .await
            .0,
        404
    );
    let big = "x".repeat(300 * 1024);
    assert_eq!(
        call(api(&yun, reqwest::Method::POST, "/v1/queues/jobs/messages").json(&json!({ "body": big })))
            .await
            .0,
        413
    );
    assert_eq!(call(api(&yun, reqwest::Method::PUT, "/v1/queues/yun.fn.x")).await.0, 400);

    // A long poll returns as soon as a message arrives.
    let started = Instant::now();
    let poll = tokio::spawn({
        let req =
            api(&yun, reqwest::Method::POST, "/v1/queues/jobs/receive").json(&json!({ "wait_ms": 15000 }));
        async move { call(req).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    yun.cli_ok(&["queue", "send", "jobs", "wake-up"]);
    let (_, v) = poll.await.unwrap();
    assert_eq!(v["messages"][0]["body"], "wake-up");
    assert!(started.elapsed() < Duration::from_secs(5), "the long poll waited {:?}", started.elapsed());
}

#[tokio::test]
async fn a_topic_fans_out_to_queues_and_functions() {
    let yun = Yun::start(BIN);
    yun.deploy("listener", "echo", &[]);
    yun.cli_ok(&["queue", "create", "audit"]);
    yun.cli_ok(&["topic", "create", "orders"]);
    yun.cli_ok(&["topic", "subscribe", "orders", "queue:audit"]);
    yun.cli_ok(&["topic", "subscribe", "orders", "function:listener"]);
    let out = yun.cli_ok(&["topic", "publish", "orders", "order-42"]);
    assert!(out.contains("2 deliveries"), "{out}");
    let got: Value = serde_json::from_str(&yun.cli_ok(&["queue", "receive", "audit", "--json"])).unwrap();
    assert_eq!(got["messages"][0]["body"], "order-42");
    wait_until("the subscribed function to run", Duration::from_secs(10), || async {
        !invocations(&yun, "listener", Some("succeeded")).is_empty()
    })
    .await;
    let out = yun.cli(&["topic", "subscribe", "orders", "queue:missing"]);
    assert!(!out.status.success());
    assert_eq!(
        call(api(&yun, reqwest::Method::POST, "/v1/topics/nope/publish").json(&json!({ "body": "x" })))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_queue_trigger_retries_failed_records_alone_and_isolates_a_poison_message() {
    let yun = Yun::start(BIN);
    let dir = repo_root().join("examples/queue-consumer").display().to_string();
    yun.cli_ok(&[
        "deploy",
        "consumer",
        &dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "python3 app.py",
    ]);
    yun.cli_ok(&["queue", "create", "poisoned"]);
    yun.cli_ok(&[
        "queue",
        "create",
        "work",
        "--visibility",
        "2s",
        "--max-receives",
        "2",
        "--dlq",
        "poisoned",
    ]);
    let batch: Vec<Value> =
        ["m1", "m2", "poison", "m3", "m4", "fail"].iter().map(|b| json!({ "body": b })).collect();
    let (status, _) = call(
        api(&yun, reqwest::Method::POST, "/v1/queues/work/messages").json(&json!({ "messages": batch })),
    )
    .await;
    assert_eq!(status, 201);
    yun.cli_ok(&[
        "trigger",
        "add",
        "consumer",
        "work",
        "--queue",
        "work",
        "--batch-size",
        "10",
        "--window",
        "200ms",
    ]);

    wait_until(
        "every good message processed and the bad ones dead-lettered",
        Duration::from_secs(30),
        || async {
            let logs = logs(&yun, "consumer");
            let processed = ["m1", "m2", "m3", "m4"].iter().all(|m| logs.contains(&format!("processed {m}")));
            let (_, q) = call(api(&yun, reqwest::Method::GET, "/v1/queues/poisoned")).await;
            processed && q["stats"]["visible"] == 2
        },
    )
    .await;
    let dead: Value =
        serde_json::from_str(&yun.cli_ok(&["queue", "receive", "poisoned", "--max", "10", "--json"]))
            .unwrap();
    let mut bodies: Vec<&str> =
        dead["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    bodies.sort();
    assert_eq!(bodies, ["fail", "poison"]);
    let logs = logs(&yun, "consumer");
    assert!(logs.contains("failed on a poison message"), "{logs}");
    let (_, q) = call(api(&yun, reqwest::Method::GET, "/v1/queues/work")).await;
    assert_eq!((q["stats"]["visible"].as_u64(), q["stats"]["in_flight"].as_u64()), (Some(0), Some(0)), "{q}");

    // The queue cannot be removed while a function consumes it.
    assert_eq!(call(api(&yun, reqwest::Method::DELETE, "/v1/queues/work")).await.0, 409);
}

#[tokio::test]
async fn a_cron_schedule_wakes_a_function_at_zero_and_bad_schedules_name_their_field() {
    let yun = Yun::start(BIN);
    let dir = repo_root().join("examples/python-http").display().to_string();
    yun.cli_ok(&[
        "deploy",
        "ticker",
        &dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "python3 app.py",
    ]);
    let out = yun.cli(&["trigger", "add", "ticker", "bad", "--cron", "61 * * * *"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("minute field"), "{err}");
    let out =
        yun.cli(&["trigger", "add", "ticker", "tz", "--cron", "* * * * *", "--timezone", "Mars/Olympus"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown time zone"));

    // Every second; the function has never run, so the first tick starts it cold.
    yun.cli_ok(&["trigger", "add", "ticker", "every-second", "--cron", "* * * * * *"]);
    wait_until("two ticks to run", Duration::from_secs(15), || async {
        invocations(&yun, "ticker", Some("succeeded")).len() >= 2
    })
    .await;
    let logs = logs(&yun, "ticker");
    assert!(logs.contains("Start: cold"), "the first tick started the function from zero: {logs}");
    let ls = yun.cli_ok(&["trigger", "ls", "ticker"]);
    assert!(ls.contains("every-second"), "{ls}");
    yun.cli_ok(&["trigger", "rm", "ticker", "every-second"]);
    let settled = invocations(&yun, "ticker", None).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(invocations(&yun, "ticker", None).len() <= settled + 1, "the schedule kept firing after removal");
}

/// The checker's side of the durability test: a tiny HTTP server the function calls with each
/// event's id, counting what it sees.
async fn recorder() -> (u16, Arc<Mutex<HashMap<String, usize>>>) {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let s = s.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(id) = head.split_whitespace().nth(1).and_then(|p| p.strip_prefix("/hit/")) {
                    *s.lock().unwrap().entry(id.to_string()).or_default() += 1;
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn every_acknowledged_event_survives_kill_9_round_after_round() {
    let rounds: usize = std::env::var("YUN_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    kill_rounds(rounds).await;
}

/// The same for longer: `cargo test --test events -- --ignored`.
#[tokio::test]
#[ignore]
async fn every_acknowledged_event_survives_200_kill_9_rounds() {
    kill_rounds(200).await;
}

async fn kill_rounds(rounds: usize) {
    let (port, seen) = recorder().await;
    let mut yun = Yun::start(BIN);
    let outbound = format!("127.0.0.1:{port}");
    yun.deploy("sink", "echo", &["--allow-outbound", &outbound]);
    let mut acked: HashSet<String> = HashSet::new();
    let mut sent_ids: HashSet<String> = HashSet::new();
    let mut sent = 0usize;
    for round in 0..rounds {
        // Events go in from several clients while yun delivers the earlier ones; yun is killed
        // at a random moment in the middle of it.
        let url = yun.url();
        let stop_after = Duration::from_millis(100 + fastrand::u64(..400));
        let started = Instant::now();
        let mut clients = Vec::new();
        for c in 0..4 {
            let (url, port) = (url.clone(), port);
            clients.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut mine = Vec::new();
                let mut n = 0;
                while started.elapsed() < stop_after + Duration::from_millis(200) {
                    // Once yun is gone, stop: the round is over for this client.
                    let id = format!("r{round}-c{c}-{n}");
                    n += 1;
                    let r = client
                        .post(format!("{url}/fn/sink/?fetch=http://127.0.0.1:{port}/hit/{id}"))
                        .header("x-yun-invocation-type", "event")
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().as_u16() == 202 => mine.push((id, true)),
                        Ok(_) => mine.push((id, false)),
                        Err(_) => {
                            mine.push((id, false));
                            break;
                        }
                    }
                }
                mine
            }));
        }
        tokio::time::sleep(stop_after).await;
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(yun.pid() as i32, libc::SIGKILL) };
        let _ = yun.wait(Duration::from_secs(10));
        for c in clients {
            for (id, ok) in c.await.unwrap() {
                sent += 1;
                sent_ids.insert(id.clone());
                if ok {
                    acked.insert(id);
                }
            }
        }
        yun = yun.restart();
    }
    wait_until("every acknowledged event to be delivered", Duration::from_secs(120), || async {
        let seen = seen.lock().unwrap();
        acked.iter().all(|id| seen.contains_key(id))
    })
    .await;
    let seen = seen.lock().unwrap();
    let lost: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    // An event whose 202 was lost to the kill may still run; one nobody sent never may.
    let unexpected: Vec<&String> = seen.keys().filter(|id| !sent_ids.contains(*id)).collect();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    println!(
        "{rounds} rounds: {sent} sent, {} acknowledged, {} delivered, {} lost, {} unexpected, {duplicated} delivered more than once",
        acked.len(),
        seen.len(),
        lost.len(),
        unexpected.len()
    );
    assert!(lost.is_empty(), "acknowledged events were lost: {lost:?}");
    assert!(unexpected.is_empty(), "events nobody sent were delivered: {unexpected:?}");
    assert!(acked.len() >= rounds, "too few events were acknowledged to test anything: {}", acked.len());
}

#[tokio::test]
async fn functions_invoke_functions_and_use_queues_from_inside_with_scoped_rights() {
    let yun = Yun::start(BIN);
    yun.deploy("callee", "echo", &["--private"]);
    yun.deploy("caller", "echo", &[]);
    yun.cli_ok(&["queue", "create", "inbox"]);
    let get = |path: String| async move {
        let r = reqwest::get(path).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    // A wasm guest reaches yun at yun.internal, in-process, without an outbound allow-list, and
    // as its function: a private function answers it, the management API does not.
    let (status, body) =
        get(format!("{}/fn/caller/?fetch=http://yun.internal/fn/callee/%3Fprint%3Dchained", yun.url())).await;
    assert_eq!((status, body.trim()), (200, "upstream status 200"), "{body}");
    wait_until("the callee's log line", Duration::from_secs(5), || async {
        logs(&yun, "callee").contains("chained")
    })
    .await;
    let (_, body) = get(format!("{}/fn/caller/?fetch=http://yun.internal/v1/queues/inbox", yun.url())).await;
    assert_eq!(body.trim(), "upstream status 200", "a function may look at a queue");
    let (_, body) = get(format!("{}/fn/caller/?fetch=http://yun.internal/v1/functions", yun.url())).await;
    assert_eq!(body.trim(), "upstream status 401", "a function may not use the management API");

    // A process function, through YUN_API and its scoped YUN_TOKEN, from inside its sandbox.
    let dir = repo_root().join("examples/chain-python").display().to_string();
    yun.cli_ok(&[
        "deploy",
        "py",
        &dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "python3 app.py",
    ]);
    let (_, body) = get(format!("{}/fn/py/?queue=inbox&body=from-python", yun.url())).await;
    assert!(body.starts_with("201"), "{body}");
    let got: Value = serde_json::from_str(&yun.cli_ok(&["queue", "receive", "inbox", "--json"])).unwrap();
    assert_eq!(got["messages"][0]["body"], "from-python");
    let (_, body) = get(format!("{}/fn/py/?call=callee", yun.url())).await;
    assert!(body.starts_with("200"), "{body}");
    let (_, body) = get(format!("{}/fn/py/?admin=1", yun.url())).await;
    assert!(body.starts_with("401"), "{body}");
}

/// Every record ends in its outcome, however fast the dispatcher takes the event after it is
/// stored (a record written after the message once overwrote outcomes with `queued`).
#[tokio::test]
async fn every_async_invocation_record_ends_in_its_outcome() {
    let yun = Yun::start(BIN);
    yun.deploy("fast", "echo", &[]);
    let client = reqwest::Client::new();
    let mut sends = Vec::new();
    for _ in 0..200 {
        let req = client.post(format!("{}/fn/fast/", yun.url())).header("x-yun-invocation-type", "event");
        sends.push(tokio::spawn(async move { req.send().await.unwrap().status().as_u16() }));
    }
    for s in sends {
        assert_eq!(s.await.unwrap(), 202);
    }
    wait_until("all 200 to succeed", Duration::from_secs(30), || async {
        let v: Value = serde_json::from_str(&yun.cli_ok(&[
            "invocations",
            "fast",
            "--status",
            "succeeded",
            "--limit",
            "1000",
            "--json",
        ]))
        .unwrap();
        v["invocations"].as_array().unwrap().len() == 200
    })
    .await;
    assert!(invocations(&yun, "fast", Some("queued")).is_empty());
}
