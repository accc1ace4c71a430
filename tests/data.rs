//! End-to-end: the key-value stores and SQL databases through the real `yun` binary. The HTTP
//! API and `yun kv` / `yun sql` as a user drives them, what survives a restart, bad input, and a
//! process function reaching exactly the stores it was deployed with.

use std::time::Duration;

use serde_json::{Value, json};
use yun_test_support::{Yun, repo_root};

const BIN: &str = env!("CARGO_BIN_EXE_yun");

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(yun: &Yun) -> Api {
        Api { http: reqwest::Client::new(), base: yun.url(), token: yun.token() }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let (status, bytes) = self.send(method, path, Some(serde_json::to_vec(&body).unwrap())).await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_through_the_api_and_the_cli_survives_a_restart() {
    use reqwest::Method;
    let yun = Yun::start(BIN);
    let api = Api::new(&yun);

    // The CLI: a store comes with its first write.
    yun.cli_ok(&["kv", "set", "shop", "greeting", "hello world"]);
    assert_eq!(yun.cli_ok(&["kv", "get", "shop", "greeting"]).trim(), "hello world");
    assert_eq!(yun.cli_ok(&["kv", "incr", "shop", "visits", "--by", "5"]).trim(), "5");
    assert_eq!(yun.cli_ok(&["kv", "incr", "shop", "visits", "--by", "-2"]).trim(), "3");
    yun.cli_ok(&["kv", "set", "shop", "other", "x", "--db", "3"]);
    let missing = yun.cli(&["kv", "get", "shop", "other"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such key"), "{missing:?}");
    assert_eq!(yun.cli_ok(&["kv", "get", "shop", "other", "--db", "3"]).trim(), "x");
    let ls = yun.cli_ok(&["kv", "ls"]);
    assert!(ls.contains("shop"), "{ls}");

    // Conditional writes: 412 when the condition does not hold, and nothing changes.
    let (s, _) = api.send(Method::PUT, "/v1/kv/shop/key?key=once&if=absent", Some(b"first".to_vec())).await;
    assert_eq!(s, 200);
    let (s, body) =
        api.send(Method::PUT, "/v1/kv/shop/key?key=once&if=absent", Some(b"second".to_vec())).await;
    assert_eq!(s, 412, "{}", String::from_utf8_lossy(&body));
    let (s, body) = api.send(Method::GET, "/v1/kv/shop/key?key=once", None).await;
    assert_eq!((s, body.as_slice()), (200, b"first".as_slice()));
    let (s, _) = api.send(Method::PUT, "/v1/kv/shop/key?key=nobody&if=present", Some(b"x".to_vec())).await;
    assert_eq!(s, 412);

    // Binary keys and values go in and out unchanged.
    let (s, _) =
        api.send(Method::PUT, "/v1/kv/shop/key?key=bin%00%FF%2F", Some(vec![0, 159, 146, 150, 255])).await;
    assert_eq!(s, 200);
    let (_, body) = api.send(Method::GET, "/v1/kv/shop/key?key=bin%00%FF%2F", None).await;
    assert_eq!(body, [0, 159, 146, 150, 255]);

    // Compare and swap.
    let (_, v) = api
        .json(Method::POST, "/v1/kv/shop/cas", json!({"key": "lock", "expected": null, "value": "a"}))
        .await;
    assert_eq!(v, json!({"swapped": true, "current": "a"}));
    let (_, v) = api
        .json(Method::POST, "/v1/kv/shop/cas", json!({"key": "lock", "expected": null, "value": "b"}))
        .await;
    assert_eq!(v, json!({"swapped": false, "current": "a"}));
    let (_, v) = api
        .json(
            Method::POST,
            "/v1/kv/shop/cas",
            json!({"key": "lock", "expected": "a", "value": {"base64": "AP8="}}),
        )
        .await;
    assert_eq!(v, json!({"swapped": true, "current": {"base64": "AP8="}}));

    // Batches: all of a set, then a get of each, then a delete.
    let items: Vec<Value> =
        (0..5).map(|i| json!({"key": format!("item/{i}"), "value": format!("v{i}")})).collect();
    let (s, v) = api.json(Method::POST, "/v1/kv/shop/batch", json!({"set": items})).await;
    assert_eq!((s, v["stored"].clone()), (200, json!(5)));
    let (_, v) =
        api.json(Method::POST, "/v1/kv/shop/batch", json!({"get": ["item/0", "item/4", "item/9"]})).await;
    assert_eq!(v["values"], json!(["v0", "v4", null]));
    let (s, v) = api
        .json(
            Method::POST,
            "/v1/kv/shop/batch",
            json!({"set": [{"key": "ok", "value": "1"}, {"key": "bad", "value": 7}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = api.send(Method::GET, "/v1/kv/shop/key?key=ok", None).await;
    assert_eq!(s, 404, "a rejected batch stores nothing");

    // Listing by prefix, a page at a time.
    let (_, page) = api.json(Method::GET, "/v1/kv/shop/keys?prefix=item/&limit=2", json!(null)).await;
    assert_eq!(page["keys"], json!(["item/0", "item/1"]));
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page) = api
        .json(Method::GET, &format!("/v1/kv/shop/keys?prefix=item/&limit=10&after={next}"), json!(null))
        .await;
    assert_eq!(page["keys"], json!(["item/2", "item/3", "item/4"]));
    assert_eq!(page["next"], Value::Null);
    let keys = yun.cli_ok(&["kv", "keys", "shop", "item/"]);
    assert_eq!(keys.lines().count(), 5, "{keys}");

    // A time to live, in real time.
    yun.cli_ok(&["kv", "set", "shop", "session", "s1", "--ttl", "1s"]);
    let (_, body) = api.send(Method::GET, "/v1/kv/shop/key?key=session", None).await;
    assert_eq!(body, b"s1");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (s, _) = api.send(Method::GET, "/v1/kv/shop/key?key=session", None).await;
    assert_eq!(s, 404, "expired");

    // Bad input: a clear error, and the server keeps serving.
    let (s, body) = api.send(Method::PUT, "/v1/kv/shop/key?key=huge", Some(vec![b'x'; 33 << 20])).await;
    assert_eq!(s, 413, "{}", String::from_utf8_lossy(&body));
    let (s, body) = api.send(Method::POST, "/v1/kv/shop/incr?key=greeting", None).await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("not an integer"));
    let (s, _) = api.send(Method::GET, "/v1/kv/Bad_Name/key?key=a", None).await;
    assert_eq!(s, 400);
    let (s, _) = api.send(Method::GET, "/v1/kv/shop/key?key=a&db=16", None).await;
    assert_eq!(s, 400);
    let (s, _) = api.send(Method::GET, "/v1/kv/nowhere/key?key=a", None).await;
    assert_eq!(s, 404);
    let wrong = reqwest::Client::new()
        .get(format!("{}/v1/kv/shop/key?key=greeting", yun.url()))
        .bearer_auth("yun_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // Everything acknowledged is there after a restart.
    drop(api);
    let mut yun = yun;
    yun.stop();
    let yun = yun.restart();
    assert_eq!(yun.cli_ok(&["kv", "get", "shop", "greeting"]).trim(), "hello world");
    assert_eq!(yun.cli_ok(&["kv", "get", "shop", "visits"]).trim(), "3");
    assert_eq!(yun.cli_ok(&["kv", "get", "shop", "item/4"]).trim(), "v4");
    let api = Api::new(&yun);
    let (_, body) = api.send(Method::GET, "/v1/kv/shop/key?key=bin%00%FF%2F", None).await;
    assert_eq!(body, [0, 159, 146, 150, 255]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_through_the_cli_and_the_api() {
    use reqwest::Method;
    let yun = Yun::start(BIN);
    let api = Api::new(&yun);
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations.sql");
    std::fs::write(
        &migrations,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT);\n\
         CREATE TABLE audit (what TEXT);\n\
         CREATE TRIGGER users_audit AFTER INSERT ON users BEGIN INSERT INTO audit VALUES ('added; ' || NEW.name); END;\n\
         INSERT INTO users (name, note) VALUES ('ada', 'semi; colon'), ('grace', NULL);\n",
    )
    .unwrap();
    let out = yun.cli_ok(&["sql", "shop", "--file", migrations.to_str().unwrap()]);
    assert!(out.contains("ok"), "{out}");
    let out = yun.cli_ok(&["sql", "shop", "SELECT name, note FROM users ORDER BY id"]);
    assert!(
        out.contains("ada")
            && out.contains("semi; colon")
            && out.contains("NULL")
            && out.contains("(2 rows)"),
        "{out}"
    );
    let out = yun.cli_ok(&["sql", "shop", "SELECT count(*) AS n FROM audit WHERE what LIKE 'added; %'"]);
    assert!(out.contains("\n2\n") || out.lines().any(|l| l.trim() == "2"), "{out}");

    // Parameters are data, never SQL.
    let payload = "'); DROP TABLE users; --";
    yun.cli_ok(&["sql", "shop", "INSERT INTO users (name) VALUES (?)", "-p", payload]);
    let (_, v) = api
        .json(
            Method::POST,
            "/v1/sql/shop",
            json!({"statements": [{"sql": "SELECT name FROM users WHERE id = 3"}]}),
        )
        .await;
    assert_eq!(v["results"][0]["rows"][0][0], payload);

    // A batch is one transaction: the failing statement is named and nothing of it stays.
    let (s, v) = api
        .json(
            Method::POST,
            "/v1/sql/shop",
            json!({"statements": [
                {"sql": "INSERT INTO users (name) VALUES (?)", "params": ["kept?"]},
                {"sql": "INSERT INTO nowhere VALUES (1)"}
            ]}),
        )
        .await;
    assert_eq!(s, 400);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("statement 1") && msg.contains("nowhere"), "{msg}");
    let (_, v) = api
        .json(Method::POST, "/v1/sql/shop", json!({"statements": [{"sql": "SELECT count(*) FROM users"}]}))
        .await;
    assert_eq!(v["results"][0]["rows"][0][0], 3);

    // A database never reaches another one's file.
    yun.cli_ok(&["sql", "other", "CREATE TABLE secrets (s TEXT); INSERT INTO secrets VALUES ('x')"]);
    let attach = yun.cli(&["sql", "shop", "ATTACH DATABASE 'other.sqlite3' AS o"]);
    assert!(!attach.status.success());
    assert!(String::from_utf8_lossy(&attach.stderr).contains("not allowed"), "{attach:?}");

    // Read-only requests refuse writes; syntax errors are clear; the database keeps working.
    let ro = yun.cli(&["sql", "shop", "--read-only", "DELETE FROM users"]);
    assert!(!ro.status.success(), "{ro:?}");
    let syntax = yun.cli(&["sql", "shop", "SELEC nonsense"]);
    assert!(String::from_utf8_lossy(&syntax.stderr).contains("syntax error"), "{syntax:?}");
    let schema = yun.cli_ok(&["sql", "schema", "shop"]);
    assert!(
        schema.contains("users") && schema.contains("name") && schema.contains("PRIMARY KEY"),
        "{schema}"
    );
    let ls = yun.cli_ok(&["sql", "ls"]);
    assert!(ls.contains("shop") && ls.contains("other"), "{ls}");

    // Durable across a restart; deleting a database removes it.
    drop(api);
    let mut yun = yun;
    yun.stop();
    let yun = yun.restart();
    let out = yun.cli_ok(&["sql", "shop", "SELECT count(*) FROM users"]);
    assert!(out.lines().any(|l| l.trim() == "3"), "{out}");
    yun.cli_ok(&["sql", "rm", "other"]);
    assert!(!yun.cli_ok(&["sql", "ls"]).contains("other"));
}

/// Deploys `examples/kv-python` as process function `counter` with these store flags.
fn deploy_counter(yun: &Yun, stores: &[&str]) {
    let dir = repo_root().join("examples/kv-python").display().to_string();
    let mut args = vec![
        "deploy",
        "counter",
        &dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "python3 app.py",
    ];
    args.extend_from_slice(stores);
    yun.cli_ok(&args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_function_reaches_only_the_stores_it_was_deployed_with() {
    let yun = Yun::start(BIN);
    deploy_counter(&yun, &["--kv", "visits", "--sql", "app"]);
    yun.cli_ok(&["kv", "set", "private", "secret", "s3cr3t"]);
    let http = reqwest::Client::new();
    let get = |q: &str| {
        let req = http.get(format!("{}/fn/counter/?{q}", yun.url()));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let mut calls = Vec::new();
    for _ in 0..20 {
        calls.push(get("incr=hits"));
    }
    for body in futures::future::join_all(calls).await {
        assert!(body.starts_with("200"), "{body}");
    }
    let body = get("count").await;
    let v: Value = serde_json::from_str(body.trim_start_matches("200 ")).unwrap();
    assert_eq!(v, json!({"counter": "20", "rows": 20}), "no increment lost, every visit logged");
    assert_eq!(yun.cli_ok(&["kv", "get", "visits", "hits"]).trim(), "20");
    let out = yun.cli_ok(&["sql", "app", "SELECT count(*) FROM visits WHERE who = 'hits'"]);
    assert!(out.lines().any(|l| l.trim() == "20"), "{out}");

    // REDIS_URL reaches the same store over the Redis protocol, from inside the sandbox.
    let body = get("redis=hits").await;
    assert_eq!(body, "200 +OK :21", "AUTH with the function's token, then INCR");
    let denied = get("store=private&key=secret").await;
    assert!(denied.starts_with("403") && denied.contains("--kv private"), "{denied}");
    assert!(!denied.contains("s3cr3t"));
    // A store in use cannot be removed from under its function.
    let rm = yun.cli(&["kv", "rm-store", "visits"]);
    assert!(String::from_utf8_lossy(&rm.stderr).contains("counter"), "{rm:?}");
}

/// redis-cli (Debian redis-tools) against `yun up`'s Redis endpoint: the same stores as the
/// HTTP API, a function's token limited to its stores, a wrong token refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_reads_and_writes_the_same_stores() {
    if std::process::Command::new("redis-cli").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "redis-cli is missing (apt-get install redis-tools)");
        eprintln!("skipped: redis-cli is not installed");
        return;
    }
    let yun = Yun::start(BIN);
    let addr = yun.redis_addr();
    let token = yun.token();
    let cli = |user: &str, pass: &str, args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string(), "--no-auth-warning"])
            .args(["--user", user, "--pass", pass])
            .args(args)
            .output()
            .unwrap();
        // redis-cli reports a refused AUTH on stderr, then the command's NOAUTH on stdout.
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
            .trim()
            .to_string()
    };
    assert_eq!(cli("shop", &token, &["SET", "greeting", "hi from redis"]), "OK");
    assert_eq!(yun.cli_ok(&["kv", "get", "shop", "greeting"]).trim(), "hi from redis");
    yun.cli_ok(&["kv", "set", "shop", "n", "41"]);
    assert_eq!(cli("shop", &token, &["INCR", "n"]), "42");
    assert_eq!(cli("shop", &token, &["HSET", "h", "a", "1", "b", "2"]), "2");
    assert!(cli("shop", &token, &["GET", "h"]).contains("WRONGTYPE"));
    assert!(cli("shop", "yun_wrong", &["GET", "greeting"]).contains("WRONGPASS"));

    // A function's token opens its own store, not another.
    deploy_counter(&yun, &["--kv", "visits"]);
    let v: Value = serde_json::from_str(&yun.cli_ok(&["describe", "counter", "--json"])).unwrap();
    assert_eq!(v["revisions"][0]["kv"], json!(["visits"]), "{v}");
    let function_token = function_token(&yun, "counter");
    assert_eq!(cli("visits", &function_token, &["SET", "k", "v"]), "OK");
    assert_eq!(cli("default", &function_token, &["GET", "k"]), "v", "no store named: its first");
    assert!(cli("shop", &function_token, &["GET", "greeting"]).contains("WRONGPASS"));
}

/// The scoped token yun gives function `name`, made as the server makes it.
fn function_token(yun: &Yun, name: &str) -> String {
    yun_control_plane::Auth::new(yun.token()).function_token(name)
}
