//! End-to-end: versions and traffic through the real `yun` binary on port 0. Splits hold their
//! proportions over 10,000 requests, sticky clients stay on one revision, tags have their own
//! URLs, every traffic change and rollback under constant load fails no request, and a gradual
//! rollout completes, or rolls back by itself when the new revision fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

/// Two revisions of `echo` that answer `?env=V` with `one` and `two`.
fn two_revisions(yun: &Yun, name: &str) {
    yun.deploy(name, "echo", &["--env", "V=one"]);
    yun.deploy(name, "echo", &["--env", "V=two"]);
}

fn describe(yun: &Yun, name: &str) -> Value {
    serde_json::from_str(&yun.cli_ok(&["describe", name, "--json"])).unwrap()
}

fn split_of(v: &Value) -> Vec<(u64, u64)> {
    v["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["revision"].as_u64().unwrap(), t["percent"].as_u64().unwrap()))
        .collect()
}

/// Which revision answered: the `x-yun-revision` header, checked against the body.
async fn call(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request reaches yun");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// `n` requests, `concurrency` at a time; counts of each body.
async fn tally(url: &str, n: usize, concurrency: usize) -> HashMap<String, usize> {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut seen: HashMap<String, usize> = HashMap::new();
            while next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                let (status, body) = call(&client, &url, &[]).await;
                assert_eq!(status, 200, "{body}");
                *seen.entry(body).or_default() += 1;
            }
            seen
        }));
    }
    let mut total: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

#[tokio::test]
async fn a_split_divides_10000_requests_within_tolerance_and_bad_splits_are_refused() {
    let yun = Yun::start(BIN);
    two_revisions(&yun, "split");
    let out = yun.cli_ok(&["traffic", "split", "1=90", "2=10"]);
    assert!(out.contains("revision 1 90%") && out.contains("revision 2 10%"), "{out}");
    assert_eq!(split_of(&describe(&yun, "split")), vec![(1, 90), (2, 10)]);

    let counts = tally(&format!("{}/fn/split/?env=V", yun.url()), 10_000, 16).await;
    let two = *counts.get("two").unwrap_or(&0) as f64 / 10_000.0;
    assert_eq!(counts.values().sum::<usize>(), 10_000);
    // 10% ± 1.5% is five standard deviations of a fair 10,000-draw binomial.
    assert!((0.085..=0.115).contains(&two), "revision 2 got {:.2}% of traffic: {counts:?}", two * 100.0);

    // Bad splits are refused with 400 and change nothing.
    for (args, needle) in [
        (vec!["1=90", "2=20"], "add up to 100"),
        (vec!["1=50", "7=50"], "revision 7 does not exist"),
        (vec!["1=abc"], "percentage"),
    ] {
        let mut cli = vec!["traffic", "split"];
        cli.extend(args.iter());
        let out = yun.cli(&cli);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/functions/split/traffic", yun.url()))
        .bearer_auth(yun.token())
        .json(&serde_json::json!({ "split": [{ "revision": 1, "percent": 60 }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(split_of(&describe(&yun, "split")), vec![(1, 90), (2, 10)]);
}

#[tokio::test]
async fn sticky_clients_stay_on_one_revision() {
    let yun = Yun::start(BIN);
    two_revisions(&yun, "sticky");
    yun.cli_ok(&["traffic", "sticky", "1=50", "2=50", "--sticky", "header:x-user"]);
    let client = reqwest::Client::new();
    let url = format!("{}/fn/sticky/?env=V", yun.url());
    let mut on_two = 0;
    for user in 0..200 {
        let id = format!("user-{user}");
        let (_, first) = call(&client, &url, &[("x-user", &id)]).await;
        for _ in 0..5 {
            let (status, again) = call(&client, &url, &[("x-user", &id)]).await;
            assert_eq!(status, 200);
            assert_eq!(again, first, "{id} moved between revisions");
        }
        on_two += usize::from(first == "two");
    }
    assert!((60..=140).contains(&on_two), "{on_two} of 200 users on revision 2 with a 50/50 split");

    // By cookie, too, among other cookies.
    yun.cli_ok(&["traffic", "sticky", "--sticky", "cookie:session"]);
    for user in 0..50 {
        let cookie = format!("theme=dark; session=s{user}; lang=en");
        let (_, first) = call(&client, &url, &[("cookie", &cookie)]).await;
        for _ in 0..3 {
            assert_eq!(call(&client, &url, &[("cookie", &cookie)]).await.1, first);
        }
    }
    let v = describe(&yun, "sticky");
    assert_eq!(v["sticky"], "cookie:session");
}

#[tokio::test]
async fn tags_have_their_own_urls() {
    let yun = Yun::start(BIN);
    two_revisions(&yun, "tagged");
    yun.cli_ok(&["tag", "tagged", "stable", "1"]);
    let client = reqwest::Client::new();
    for _ in 0..20 {
        assert_eq!(call(&client, &format!("{}/fn/tagged@stable/?env=V", yun.url()), &[]).await.1, "one");
        assert_eq!(call(&client, &format!("{}/fn/tagged/?env=V", yun.url()), &[]).await.1, "two");
    }
    let host = client
        .get(format!("{}/?env=V", yun.url()))
        .header("host", "stable.tagged.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(host.headers()["x-yun-revision"], "1");
    assert_eq!(host.text().await.unwrap(), "one");
    let v = describe(&yun, "tagged");
    assert_eq!(v["tags"]["stable"]["revision"], 1);
    assert!(v["tags"]["stable"]["url"].as_str().unwrap().ends_with("/fn/tagged@stable/"));

    let (status, body) = call(&client, &format!("{}/fn/tagged@nope/", yun.url()), &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("no tag nope"), "{body}");
    yun.cli_ok(&["tag", "tagged", "stable", "--rm"]);
    assert_eq!(call(&client, &format!("{}/fn/tagged@stable/", yun.url()), &[]).await.0, 404);
    let out = yun.cli(&["tag", "tagged", "stable", "9"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("revision 9 does not exist"));
}

/// Constant load from `workers` loops until stopped; returns (requests, failures as text).
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    fn start(url: String, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::new();
        let tasks = (0..workers)
            .map(|_| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut n, mut failures) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        match client.get(&url).send().await {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                            }
                            Ok(r) => failures.push(format!(
                                "{}: {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            )),
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                    (n, failures)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut total, mut failures) = (0, Vec::new());
        for t in self.tasks {
            let (n, f) = t.await.unwrap();
            total += n;
            failures.extend(f);
        }
        (total, failures)
    }
}

#[tokio::test]
async fn no_request_fails_during_traffic_changes_rollbacks_and_deploys() {
    let yun = Yun::start(BIN);
    two_revisions(&yun, "steady");
    let load = Load::start(format!("{}/fn/steady/?env=V", yun.url()), 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for step in [
        vec!["traffic", "steady", "1=50", "2=50"],
        vec!["traffic", "steady", "1=100"],
        vec!["traffic", "steady", "2=100"],
        vec!["rollback", "steady"],
        vec!["rollback", "steady", "--to", "2"],
        vec!["traffic", "steady", "1=10", "2=90", "--sticky", "header:x-u"],
        vec!["rollback", "steady"],
    ] {
        yun.cli_ok(&step);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    yun.deploy("steady", "echo", &["--env", "V=three"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    yun.cli_ok(&["rollback", "steady"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (total, failures) = load.finish().await;
    assert!(total > 100, "only {total} requests ran");
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // The last rollback went from revision 3 back to the one before it.
    let v = describe(&yun, "steady");
    assert_eq!(split_of(&v), vec![(2, 100)]);
    assert_eq!(v["previous_revision"], 3, "a second rollback would return to 3");
    let out = yun.cli_ok(&["revisions", "steady"]);
    assert!(out.contains("100%"), "{out}");
}

async fn wait_for_state(yun: &Yun, name: &str, state: &str, timeout: Duration) -> Value {
    let start = Instant::now();
    loop {
        let v = describe(yun, name);
        if v["rollout"]["state"] == state {
            return v;
        }
        assert!(start.elapsed() < timeout, "rollout never reached {state}: {}", v["rollout"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_gradual_rollout_steps_up_and_completes_without_failed_requests() {
    let yun = Yun::start(BIN);
    yun.deploy("gradual", "echo", &["--env", "V=one"]);
    let load = Load::start(format!("{}/fn/gradual/?env=V", yun.url()), 4);
    let out = yun.deploy("gradual", "echo", &["--env", "V=two", "--rollout", "3s"]);
    assert!(out.contains("rollout"), "{out}");
    let v = describe(&yun, "gradual");
    assert_eq!(v["rollout"]["state"], "progressing", "{}", v["rollout"]);
    let share = split_of(&v).iter().find(|(r, _)| *r == 2).map(|(_, p)| *p).unwrap();
    assert!(share < 100, "the new revision took all traffic at once: {share}%");

    let v = wait_for_state(&yun, "gradual", "completed", Duration::from_secs(15)).await;
    assert_eq!(split_of(&v), vec![(2, 100)]);
    assert_eq!(v["active_revision"], 2);
    let (total, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(v["rollout"]["observed"]["requests"].as_u64().unwrap() > 0, "{}", v["rollout"]);
    let logs = yun.cli_ok(&["logs", "gradual"]);
    assert!(logs.contains("ROLLOUT revision 2 completed"), "{logs}");
}

#[tokio::test]
async fn a_failing_new_revision_is_rolled_back_automatically() {
    let yun = Yun::start(BIN);
    yun.deploy("canary", "echo", &["--env", "V=one"]);
    // Revision 2's memory limit is too small for what requests ask of it: every one it serves
    // traps, while revision 1 serves them fine.
    let out = yun.deploy(
        "canary",
        "echo",
        &["--env", "V=two", "--memory", "8Mi", "--rollout", "60s", "--max-error-rate", "10%"],
    );
    assert!(out.contains("revision 2"), "{out}");
    let load = Load::start(format!("{}/fn/canary/?alloc_mb=16", yun.url()), 4);
    let v = wait_for_state(&yun, "canary", "rolled-back", Duration::from_secs(30)).await;
    let (total, failures) = load.finish().await;
    let reason = v["rollout"]["reason"].as_str().unwrap();
    assert!(reason.contains("error rate"), "{reason}");
    assert_eq!(split_of(&v), vec![(1, 100)], "traffic went back to revision 1");
    assert_eq!(v["active_revision"], 1);
    // Only the canary's share failed, and only until the rollback.
    assert!(
        !failures.is_empty() && (failures.len() as u64) < total / 2,
        "{} of {total} failed",
        failures.len()
    );
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let (status, body) = call(&client, &format!("{}/fn/canary/?alloc_mb=16", yun.url()), &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let logs = yun.cli_ok(&["logs", "canary"]);
    assert!(logs.contains("ROLLBACK revision 2 rolled back to revision 1"), "{logs}");
}

#[tokio::test]
async fn rollback_needs_somewhere_to_go() {
    let yun = Yun::start(BIN);
    yun.deploy("once", "echo", &[]);
    let out = yun.cli(&["rollback", "once"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no earlier revision"), "{out:?}");
    let out = yun.cli(&["rollback", "once", "--to", "5"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("revision 5 does not exist"));
    let out = yun.cli(&["rollback", "nobody"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no function named nobody"));
}
