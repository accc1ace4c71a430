//! End-to-end: declarative apps, custom routes and secrets through the real `yun` binary on
//! port 0. `yun apply` creates what yun.toml declares, reports no change the second time,
//! updates what changed, prunes what it no longer names, and refuses an invalid manifest with
//! its file, line and column while changing nothing; routes take the longest match and refuse
//! conflicts naming both; a secret reaches its function but never an API response or a log.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use yun_test_support::{Yun, guest};

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("yun.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn apply(yun: &Yun, manifest: &str, flags: &[&str]) -> String {
    let mut args = vec!["apply", "-f", manifest];
    args.extend_from_slice(flags);
    yun.cli_ok(&args)
}

fn json(yun: &Yun, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&yun.cli_ok(&args)).unwrap()
}

async fn get(url: String, host: Option<&str>) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.text().await.unwrap(), headers)
}

fn app(echo: &str, memory: &str) -> String {
    format!(
        r#"
[app]
name = "shop"

[functions.users]
source = "{echo}"
memory = "{memory}"
env = {{ V = "users" }}
tags = {{ stable = "latest" }}

[functions.orders]
source = "{echo}"
env = {{ V = "orders" }}

[functions.orders.scale]
max = 5

[[routes]]
path = "/api/users/*"
function = "users"

[[routes]]
path = "/api/*"
function = "orders"
"#
    )
}

#[tokio::test]
async fn apply_creates_then_reports_no_change_then_updates_and_prunes() {
    let yun = Yun::start(BIN);
    let dir = tempfile::tempdir().unwrap();
    let echo = guest("echo").display().to_string();
    let manifest = write(dir.path(), &app(&echo, "128Mi"));

    let dry = apply(&yun, &manifest, &["--dry-run"]);
    assert!(dry.contains("+ function users") && dry.contains("would change"), "{dry}");
    assert!(json(&yun, &["ls"])["functions"].as_array().unwrap().is_empty(), "a dry run changed something");

    let first = apply(&yun, &manifest, &[]);
    assert!(first.contains("+ function orders") && first.contains("+ function users"), "{first}");
    assert!(first.contains("+ route /api/users/* -> users"), "{first}");
    let second = apply(&yun, &manifest, &[]);
    assert!(second.contains("no changes"), "a second apply changed something: {second}");

    // Routes: the longest match wins, and the function sees the full path.
    let (status, body, _) = get(format!("{}/api/users/42?env=V", yun.url()), None).await;
    assert_eq!((status, body.as_str()), (200, "users"));
    let (_, body, _) = get(format!("{}/api/orders/7?env=V", yun.url()), None).await;
    assert_eq!(body, "orders");
    let (_, _, headers) = get(format!("{}/api/users/42", yun.url()), None).await;
    assert_eq!(headers["x-echo-path"], "/api/users/42");
    let orders = json(&yun, &["describe", "orders"]);
    assert_eq!(orders["scale"]["set"]["max_instances"], 5);
    assert_eq!(json(&yun, &["describe", "users"])["tags"]["stable"]["revision"], 1);

    // A change makes a new revision of that function only.
    let manifest = write(dir.path(), &app(&echo, "256Mi"));
    let third = apply(&yun, &manifest, &[]);
    assert!(third.contains("~ function users: new revision 2 (memory changed)"), "{third}");
    assert!(!third.contains("function orders"), "{third}");
    let users = json(&yun, &["describe", "users"]);
    assert_eq!(users["active_revision"], 2);
    assert_eq!(users["tags"]["stable"]["revision"], 2, "stable = \"latest\" follows the new revision");

    // Without --prune, what the manifest no longer names stays; with it, it goes.
    let only_users = format!(
        "[functions.users]\nsource = \"{echo}\"\nmemory = \"256Mi\"\nenv = {{ V = \"users\" }}\ntags = {{ stable = \"latest\" }}\n\n[[routes]]\npath = \"/api/users/*\"\nfunction = \"users\"\n"
    );
    let manifest = write(dir.path(), &only_users);
    assert!(apply(&yun, &manifest, &[]).contains("no changes"));
    let pruned = apply(&yun, &manifest, &["--prune"]);
    assert!(pruned.contains("- function orders") && pruned.contains("- route /api/* -> orders"), "{pruned}");
    assert_eq!(json(&yun, &["ls"])["functions"].as_array().unwrap().len(), 1);
    let (status, _, _) = get(format!("{}/api/orders/7", yun.url()), None).await;
    assert_eq!(status, 404);
    assert!(apply(&yun, &manifest, &["--prune"]).contains("no changes"));
}

#[tokio::test]
async fn an_invalid_manifest_is_refused_with_its_place_and_changes_nothing() {
    let yun = Yun::start(BIN);
    let dir = tempfile::tempdir().unwrap();
    let echo = guest("echo").display().to_string();
    let manifest = write(dir.path(), &format!("[functions.a]\nsource = \"{echo}\"\nmemroy = \"1Gi\"\n"));
    let out = yun.cli(&["apply", "-f", &manifest]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("yun.toml:3:1") && err.contains("functions.a.memroy") && err.contains("unknown field"),
        "{err}"
    );

    let manifest =
        write(dir.path(), &format!("[functions.a]\nsource = \"{echo}\"\ntraffic = {{ latest = 60 }}\n"));
    let err = String::from_utf8_lossy(&yun.cli(&["apply", "-f", &manifest]).stderr).to_string();
    assert!(err.contains("yun.toml:3:") && err.contains("100"), "{err}");

    // Checked by the server before anything is written: one good function and one naming a
    // secret that does not exist leave nothing behind.
    let manifest = write(
        dir.path(),
        &format!(
            "[functions.good]\nsource = \"{echo}\"\n\n[functions.bad]\nsource = \"{echo}\"\nsecrets = [\"MISSING\"]\n"
        ),
    );
    let err = String::from_utf8_lossy(&yun.cli(&["apply", "-f", &manifest]).stderr).to_string();
    assert!(err.contains("secret MISSING is not set"), "{err}");
    assert!(
        json(&yun, &["ls"])["functions"].as_array().unwrap().is_empty(),
        "a refused apply created functions"
    );
}

#[tokio::test]
async fn route_conflicts_name_both_routes_and_reserved_paths_are_refused() {
    let yun = Yun::start(BIN);
    yun.deploy("a", "echo", &[]);
    yun.deploy("b", "echo", &[]);
    yun.cli_ok(&["route", "add", "/users/{id}", "a"]);
    let out = yun.cli(&["route", "add", "/users/{name}", "b"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("/users/{name} -> b") && err.contains("/users/{id} -> a"), "{err}");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/routes", yun.url()))
        .bearer_auth(yun.token())
        .json(&serde_json::json!({ "path": "/users/{x}", "function": "b" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);

    let err = String::from_utf8_lossy(&yun.cli(&["route", "add", "/v1/things", "a"]).stderr).to_string();
    assert!(err.contains("/v1/"), "{err}");
    let err = String::from_utf8_lossy(&yun.cli(&["route", "add", "/x/*", "nobody"]).stderr).to_string();
    assert!(err.contains("no function named nobody"), "{err}");

    // Host routes, and removal.
    yun.cli_ok(&["route", "add", "/*", "b", "--host", "api.example.com"]);
    let (_, _, h) = get(format!("{}/anything", yun.url()), Some("api.example.com")).await;
    assert_eq!(h["x-echo-path"], "/anything");
    let (_, _, h) = get(format!("{}/users/7", yun.url()), None).await;
    assert_eq!(h["x-yun-revision"], "1");
    let routes = yun.cli_ok(&["route", "ls"]);
    assert!(routes.contains("api.example.com/* -> b") && routes.contains("/users/{id} -> a"), "{routes}");
    yun.cli_ok(&["route", "rm", "/users/{id}"]);
    assert_eq!(get(format!("{}/users/7", yun.url()), None).await.0, 404);

    // Routes survive a restart; removing a function removes its routes.
    let mut yun = yun;
    assert!(yun.stop().success());
    let yun = yun.restart();
    assert_eq!(get(format!("{}/x", yun.url()), Some("api.example.com")).await.0, 200);
    let rm = yun.cli_ok(&["rm", "b", "--json"]);
    assert!(rm.contains("api.example.com/* -> b"), "{rm}");
    assert_eq!(get(format!("{}/x", yun.url()), Some("api.example.com")).await.0, 404);
}

fn set_secret(yun: &Yun, name: &str, value: &str) {
    let mut child = Command::new(BIN)
        .args(["secret", "set", name])
        .env("YUN_URL", yun.url())
        .env("YUN_DATA_DIR", yun.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(value));
}

#[tokio::test]
async fn a_secret_reaches_its_function_but_no_response_or_log() {
    let yun = Yun::start(BIN);
    let value = "hunter2-a4f9c1d7e3";
    set_secret(&yun, "db-password", value);
    let out = yun.cli(&["deploy", "app", guest("echo").to_str().unwrap(), "--secret", "NOPE"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret NOPE is not set"));
    yun.deploy("app", "echo", &["--secret", "DB_PASSWORD=db-password"]);

    let (status, body, _) = get(format!("{}/fn/app/?env=DB_PASSWORD", yun.url()), None).await;
    assert_eq!((status, body.as_str()), (200, value));
    // A guest that prints it does not leak it into the logs.
    let (status, _, _) = get(format!("{}/fn/app/?print=password%3D{value}", yun.url()), None).await;
    assert_eq!(status, 200);
    let logs = yun.cli_ok(&["logs", "app"]);
    assert!(logs.contains("password=[secret:db-password]"), "{logs}");

    // Not in any API response, CLI output, or the data directory in the clear.
    for args in [
        vec!["describe", "app", "--json"],
        vec!["revisions", "app", "--json"],
        vec!["secret", "ls", "--json"],
        vec!["ls", "--json"],
        vec!["logs", "app", "--json"],
    ] {
        let out = yun.cli_ok(&args);
        assert!(!out.contains(value), "{args:?} printed the secret: {out}");
    }
    let ls = json(&yun, &["secret", "ls"]);
    assert_eq!(ls["secrets"][0]["name"], "db-password");
    assert_eq!(ls["secrets"][0]["used_by"][0], "app");
    for entry in walk(yun.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{} holds the secret in the clear",
            entry.display()
        );
    }

    // Rotating it reaches the function without a deploy; removing it in use is refused.
    set_secret(&yun, "db-password", "rotated-9b8c7d6e");
    let (_, body, _) = get(format!("{}/fn/app/?env=DB_PASSWORD", yun.url()), None).await;
    assert_eq!(body, "rotated-9b8c7d6e");
    let out = yun.cli(&["secret", "rm", "db-password"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by app"), "{out:?}");

    // After a restart the function still gets it (the key is the data directory's).
    let mut yun = yun;
    assert!(yun.stop().success());
    let yun = yun.restart();
    let (_, body, _) = get(format!("{}/fn/app/?env=DB_PASSWORD", yun.url()), None).await;
    assert_eq!(body, "rotated-9b8c7d6e");
    yun.cli_ok(&["rm", "app"]);
    yun.cli_ok(&["secret", "rm", "db-password"]);
    assert!(json(&yun, &["secret", "ls"])["secrets"].as_array().unwrap().is_empty());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The README's yun.toml examples are what a newcomer copies: they must be valid.
#[test]
fn the_readme_manifest_examples_are_valid() {
    let readme = std::fs::read_to_string(yun_test_support::repo_root().join("README.md")).unwrap();
    let blocks: Vec<&str> =
        readme.split("```toml\n").skip(1).map(|rest| &rest[..rest.find("```").unwrap()]).collect();
    assert!(blocks.len() >= 2, "the README has its yun.toml examples");
    let first = yun_manifest::parse(blocks[0], Path::new("yun.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first.functions.len(), first.routes.len()), (2, 1));
    for block in &blocks[1..] {
        // Later examples extend the first one's functions.
        let text = format!("{}\n{block}", blocks[0]);
        yun_manifest::parse(&text, Path::new("yun.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

/// `yun new` then `yun deploy` with no arguments, in the app's directory: what the README
/// promises a newcomer.
#[tokio::test]
async fn deploy_without_arguments_deploys_the_app_in_the_current_directory() {
    let yun = Yun::start(BIN);
    let dir = tempfile::tempdir().unwrap();
    yun.cli_ok(&[
        "new",
        "greeter",
        "--template",
        "python",
        "--dir",
        dir.path().join("greeter").to_str().unwrap(),
    ]);
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path().join("greeter"))
            .env("YUN_URL", yun.url())
            .env("YUN_DATA_DIR", yun.data_dir())
            .output()
            .unwrap()
    };
    let out = run(&["deploy"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("+ function greeter"), "{out:?}");
    let (status, body, _) = get(format!("{}/fn/greeter/hi", yun.url()), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from greeter!"), "{body}");
    let again = run(&["deploy"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("no changes"), "{again:?}");
}

/// Queues, topics, asynchronous settings and triggers are part of the app too.
#[tokio::test]
async fn apply_declares_queues_topics_and_triggers() {
    let yun = Yun::start(BIN);
    let dir = tempfile::tempdir().unwrap();
    let echo = guest("echo").display().to_string();
    let text = format!(
        r#"
[queues.jobs]
visibility = "5s"
max_receives = 3
dlq = "jobs-dead"

[queues.jobs-dead]

[topics.news]
subscribers = ["queue:jobs"]

[functions.worker]
source = "{echo}"

[functions.worker.async]
max_attempts = 2
on_failure = "queue:jobs-dead"

[[functions.worker.triggers]]
id = "jobs"
queue = "jobs"
batch_size = 5

[[functions.worker.triggers]]
id = "hourly"
cron = "0 * * * *"
"#
    );
    let manifest = write(dir.path(), &text);
    let first = apply(&yun, &manifest, &[]);
    assert!(first.contains("+ queue jobs") && first.contains("+ topic news"), "{first}");
    assert!(apply(&yun, &manifest, &[]).contains("no changes"), "a second apply changed something");
    let worker = json(&yun, &["describe", "worker"]);
    assert_eq!(worker["triggers"].as_array().unwrap().len(), 2);
    assert_eq!(worker["async"]["max_attempts"], 2);

    // The trigger consumes what the topic fans out.
    yun.cli_ok(&["topic", "publish", "news", "hello"]);
    let start = std::time::Instant::now();
    loop {
        let q = json(&yun, &["queue", "describe", "jobs"]);
        if q["stats"]["visible"] == 0 && q["stats"]["in_flight"] == 0 {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(15), "the trigger never consumed: {q}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A trigger on a queue nobody declares is refused before anything changes.
    let bad = text.replace("queue = \"jobs\"", "queue = \"nope\"");
    let manifest = write(dir.path(), &bad);
    let out = yun.cli(&["apply", "-f", &manifest]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("queue nope, which does not exist"), "{out:?}");
}
