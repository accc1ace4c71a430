//! End-to-end: a wasm guest (examples/counter-wasm) uses yun's KV stores through
//! `wasi:keyvalue` and its SQL databases through the SQLite interface (`fermyon:spin/sqlite`),
//! against the real `yun up`: concurrent increments all land, each one's row is recorded, CAS
//! appends under contention all land once, what the guest writes is what the HTTP API reads, and
//! a store or database the function was not deployed with is refused.

use serde_json::{Value, json};
use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn api(yun: &Yun, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("{}{path}", yun.url())).bearer_auth(yun.token())
}

async fn ok_json(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A call to the counter function: status and body.
async fn call(yun: &Yun, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
    let url = format!("{}/fn/counter{path}", yun.url());
    let r = reqwest::Client::new().request(method, url).body(body.to_string()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// yun with the counter deployed on store `counts` and database `app`, neither of which exists
/// yet (both come into being on their first write), and a store `secret` it was not given.
async fn setup() -> Yun {
    let yun = Yun::start(BIN);
    let created = api(&yun, reqwest::Method::PUT, "/v1/kv/secret").send().await.unwrap();
    assert_eq!(created.status(), 201, "creating KV store secret");
    yun.deploy("counter", "counter_wasm", &["--kv", "counts", "--sql", "app"]);
    yun
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_all_land_in_kv_and_each_records_a_row_in_sql() {
    let yun = setup().await;
    // Neither the store nor the database has been written: the guest reads an empty count.
    let (status, body) = call(&yun, reqwest::Method::GET, "/", "").await;
    assert_eq!((status, parse(&body)), (200, json!({"count": 0, "rows": 0})), "{body}");
    const N: usize = 40;
    let started = std::time::Instant::now();
    let calls = (0..N).map(|_| call(&yun, reqwest::Method::POST, "/incr", ""));
    let results = futures::future::join_all(calls).await;
    println!("{N} concurrent increments (each 5 in-process API calls) in {:?}", started.elapsed());
    let mut counts: Vec<i64> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            parse(body)["count"].as_i64().unwrap()
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=N as i64).collect::<Vec<_>>(), "every increment saw a distinct count");

    let (status, body) = call(&yun, reqwest::Method::GET, "/", "").await;
    assert_eq!((status, parse(&body)), (200, json!({"count": N, "rows": N})), "{body}");

    // The values are yun's, not the guest's: the HTTP API reads the same counter and rows.
    let counter = api(&yun, reqwest::Method::GET, "/v1/kv/counts/key?key=hits").send().await.unwrap();
    assert_eq!(counter.text().await.unwrap(), N.to_string());
    let rows = ok_json(
        api(&yun, reqwest::Method::POST, "/v1/sql/app")
            .json(&json!({"statements": [{"sql": "SELECT count FROM hits ORDER BY count"}]})),
    )
    .await;
    let recorded: Vec<i64> =
        rows["results"][0]["rows"].as_array().unwrap().iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(recorded, (1..=N as i64).collect::<Vec<_>>(), "one row per increment, holding its count");
    assert_eq!(yun.cli_ok(&["kv", "get", "counts", "hits"]).trim(), N.to_string());
    let table = yun.cli_ok(&["sql", "app", "SELECT COUNT(*) AS n FROM hits"]);
    assert!(table.contains(&N.to_string()), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_written_by_the_guest_and_by_the_api_are_one_and_the_same() {
    let yun = setup().await;
    assert_eq!(call(&yun, reqwest::Method::PUT, "/kv/greeting", "hello").await.0, 200);
    assert_eq!(call(&yun, reqwest::Method::GET, "/kv/greeting", "").await, (200, "hello".into()));
    let from_api = api(&yun, reqwest::Method::GET, "/v1/kv/counts/key?key=greeting").send().await.unwrap();
    assert_eq!(from_api.text().await.unwrap(), "hello");
    assert_eq!(yun.cli_ok(&["kv", "get", "counts", "greeting"]).trim(), "hello");

    let put = api(&yun, reqwest::Method::PUT, "/v1/kv/counts/key?key=from-api").body("set outside");
    ok_json(put).await;
    assert_eq!(call(&yun, reqwest::Method::GET, "/kv/from-api", "").await, (200, "set outside".into()));
    assert_eq!(call(&yun, reqwest::Method::GET, "/kv/absent", "").await.0, 404);

    let (status, body) = call(&yun, reqwest::Method::GET, "/many?keys=greeting,absent,from-api", "").await;
    assert_eq!(
        (status, parse(&body)),
        (200, json!({"greeting": "hello", "absent": null, "from-api": "set outside"})),
        "{body}"
    );

    // More keys than one page of the listing: the guest follows the cursor to the end.
    let set: Vec<Value> = (0..1500).map(|i| json!({"key": format!("k{i:04}"), "value": "v"})).collect();
    ok_json(api(&yun, reqwest::Method::POST, "/v1/kv/counts/batch").json(&json!({"set": set}))).await;
    let (status, body) = call(&yun, reqwest::Method::GET, "/keys", "").await;
    assert_eq!(status, 200, "{body}");
    let listed = parse(&body);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1502, "{}", listed["pages"]);
    assert!(listed["pages"].as_i64().unwrap() > 1, "the listing came in pages: {}", listed["pages"]);

    assert_eq!(
        call(&yun, reqwest::Method::DELETE, "/kv/greeting", "").await,
        (200, "{\"deleted\":true}".into())
    );
    let gone = api(&yun, reqwest::Method::GET, "/v1/kv/counts/key?key=greeting").send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_appends_under_contention_each_land_once() {
    let yun = setup().await;
    const N: usize = 16;
    let calls = (0..N).map(|i| {
        let yun = &yun;
        async move {
            call(yun, reqwest::Method::POST, "/append/log", &format!("{},", (b'a' + i as u8) as char)).await
        }
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    let log = api(&yun, reqwest::Method::GET, "/v1/kv/counts/key?key=log").send().await.unwrap();
    let mut parts: Vec<String> =
        log.text().await.unwrap().split(',').filter(|p| !p.is_empty()).map(str::to_string).collect();
    parts.sort();
    let expected: Vec<String> = (0..N).map(|i| ((b'a' + i as u8) as char).to_string()).collect();
    assert_eq!(parts, expected, "every append is there exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_is_refused_stores_and_databases_it_was_not_deployed_with() {
    let yun = setup().await;
    ok_json(api(&yun, reqwest::Method::PUT, "/v1/kv/secret/key?key=hits").body("41")).await;
    // The store exists, but the function was deployed with `counts` only.
    let (status, body) = call(&yun, reqwest::Method::POST, "/incr?store=secret", "").await;
    assert_eq!((status, parse(&body)), (403, json!({"error": "access-denied"})), "{body}");
    let (status, body) = call(&yun, reqwest::Method::GET, "/kv/hits?store=secret", "").await;
    assert_eq!((status, parse(&body)), (403, json!({"error": "access-denied"})), "{body}");
    let (status, body) = call(&yun, reqwest::Method::POST, "/sql?db=elsewhere", "SELECT 1").await;
    assert_eq!((status, parse(&body)), (403, json!({"error": "access-denied"})), "{body}");
    // Nothing was written out of scope.
    let untouched = api(&yun, reqwest::Method::GET, "/v1/kv/secret/key?key=hits").send().await.unwrap();
    assert_eq!(untouched.text().await.unwrap(), "41");
    // The guest's own database works, with SQLite's types intact, and SQL errors come back.
    let (status, body) = call(
        &yun,
        reqwest::Method::POST,
        "/sql",
        "SELECT 1 AS i, 2.5 AS r, 'x' AS t, x'00ff' AS b, NULL AS n",
    )
    .await;
    assert_eq!(
        (status, parse(&body)),
        (
            200,
            json!({"columns": ["i", "r", "t", "b", "n"], "rows": [[
                {"integer": 1}, {"real": 2.5}, {"text": "x"}, {"blob": [0, 255]}, null
            ]]})
        ),
        "{body}"
    );
    let (status, body) = call(&yun, reqwest::Method::POST, "/sql", "SELEC 1").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("syntax error"), "{body}");
}
