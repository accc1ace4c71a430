//! End-to-end: yun's object storage through the real `yun` binary (S3 API and management API on
//! port 0). boto3 and the aws CLI with their defaults against `yun up`, keys made with
//! `yun storage keys`, `yun storage` moving files in and out, a bucket notification invoking a
//! function with the S3 event, and kill -9 during concurrent uploads, repeated.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

fn key(yun: &Yun, flags: &[&str]) -> (String, String) {
    let mut args = vec!["storage", "keys", "create", "--json"];
    args.extend_from_slice(flags);
    let v: Value = serde_json::from_str(&yun.cli_ok(&args)).unwrap();
    (v["access_key_id"].as_str().unwrap().to_string(), v["secret_access_key"].as_str().unwrap().to_string())
}

fn clients() -> PathBuf {
    yun_test_support::pip_target("s3-clients", &["boto3", "awscli"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_work_against_yun_up() {
    let py = tokio::task::spawn_blocking(clients).await.unwrap();
    let yun = Yun::start(BIN);
    let (rw, rw_secret) = key(&yun, &[]);
    let (ro, ro_secret) = key(&yun, &["--read-only"]);
    let (scoped, scoped_secret) = key(&yun, &["--bucket", "scoped-only"]);
    let suite = yun_test_support::repo_root().join("crates/storage/tests/s3/suite.py");
    let out = tokio::process::Command::new("python3")
        .arg(&suite)
        .env("PYTHONPATH", &py)
        .env("S3_ENDPOINT", yun.s3_url())
        .env("S3_KEY", &rw)
        .env("S3_SECRET", &rw_secret)
        .env("S3_RO_KEY", &ro)
        .env("S3_RO_SECRET", &ro_secret)
        .env("S3_SCOPED_KEY", &scoped)
        .env("S3_SCOPED_SECRET", &scoped_secret)
        .env("S3_SCOPED_BUCKET", "scoped-only")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .kill_on_drop(true)
        .output()
        .await
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the S3 suite failed against yun up:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the clients wrote is what yun's own API lists, and a removed key stops working.
    let ls = yun.cli_ok(&["storage", "ls"]);
    assert!(ls.contains("S3 API at http://127.0.0.1:"), "{ls}");
    yun.cli_ok(&["storage", "keys", "rm", &rw]);
    let keys = yun.cli_ok(&["storage", "keys", "ls"]);
    assert!(!keys.contains(&rw) && keys.contains(&ro), "{keys}");
}

#[tokio::test]
async fn yun_storage_moves_files_in_and_out_and_refuses_bad_names() {
    let yun = Yun::start(BIN);
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    yun.cli_ok(&["storage", "mb", "files"]);
    let out = yun.cli_ok(&["storage", "cp", big.to_str().unwrap(), "s3://files/in/big.bin"]);
    assert!(out.contains("5000000 bytes"), "{out}");
    let back = dir.path().join("back.bin");
    yun.cli_ok(&["storage", "cp", "s3://files/in/big.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "the round trip changed the bytes");
    let ls = yun.cli_ok(&["storage", "ls", "s3://files"]);
    assert!(ls.contains("PRE") && ls.contains("in/"), "{ls}");
    let ls = yun.cli_ok(&["storage", "ls", "s3://files/in/"]);
    assert!(ls.contains("5000000") && ls.contains("in/big.bin"), "{ls}");
    // A key that looks like a path outside the bucket is just a key.
    let evil = dir.path().join("evil.txt");
    std::fs::write(&evil, b"x").unwrap();
    yun.cli_ok(&["storage", "cp", evil.to_str().unwrap(), "s3://files/../../../../etc/yun-evil"]);
    assert!(!std::path::Path::new("/etc/yun-evil").exists());
    assert!(yun.cli_ok(&["storage", "ls", "s3://files", "-r"]).contains("../../../../etc/yun-evil"));
    for bad in [
        vec!["storage", "mb", "Not_A_Bucket"],
        vec!["storage", "rb", "files"],
        vec!["storage", "rm", "s3://nope/x"],
    ] {
        let out = yun.cli(&bad);
        assert!(!out.status.success(), "{bad:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bucket"), "{bad:?}: {err}");
    }
    yun.cli_ok(&["storage", "rm", "s3://files/in/big.bin"]);
    yun.cli_ok(&["storage", "rm", "s3://files/../../../../etc/yun-evil"]);
    yun.cli_ok(&["storage", "rb", "files"]);
}

/// A bucket notification: a PUT through the S3 API invokes the function asynchronously with the
/// S3 event JSON in a CloudEvent; a removal too; keys outside the filter do not.
#[tokio::test]
async fn a_bucket_notification_invokes_a_function_with_the_s3_event() {
    let yun = Yun::start(BIN);
    yun.deploy("thumbs", "echo", &[]);
    yun.cli_ok(&["storage", "mb", "photos"]);
    let out = yun.cli(&["trigger", "add", "thumbs", "nope", "--bucket", "missing"]);
    assert!(!out.status.success(), "a trigger on a missing bucket is refused");
    yun.cli_ok(&[
        "trigger", "add", "thumbs", "uploads", "--bucket", "photos", "--prefix", "in/", "--suffix", ".jpg",
    ]);
    // The echo guest answers with the request body: the outcome destination shows what it got.
    yun.cli_ok(&["queue", "create", "done"]);
    yun.cli_ok(&["async", "thumbs", "--on-success", "queue:done"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cat.jpg");
    std::fs::write(&file, b"meow").unwrap();
    yun.cli_ok(&["storage", "cp", file.to_str().unwrap(), "s3://photos/in/cat.jpg"]);
    yun.cli_ok(&["storage", "cp", file.to_str().unwrap(), "s3://photos/out/cat.jpg"]);
    yun.cli_ok(&["storage", "rm", "s3://photos/in/cat.jpg"]);

    let started = Instant::now();
    let runs = loop {
        let v: Value =
            serde_json::from_str(&yun.cli_ok(&["invocations", "thumbs", "--json", "--trigger", "storage"]))
                .unwrap();
        let runs = v["invocations"].as_array().cloned().unwrap_or_default();
        if runs.len() >= 2 {
            break runs;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no storage invocations: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    let mut events = Vec::new();
    while events.len() < 2 {
        let v: Value =
            serde_json::from_str(&yun.cli_ok(&["queue", "receive", "done", "--wait", "5s", "--json"]))
                .unwrap();
        for m in v["messages"].as_array().unwrap() {
            let outcome: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
            let s3: Value = serde_json::from_str(outcome["responsePayload"].as_str().unwrap()).unwrap();
            events.push(s3["Records"][0].clone());
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the outcomes never arrived");
    }
    let names: Vec<&str> = events.iter().map(|e| e["eventName"].as_str().unwrap()).collect();
    assert!(names.contains(&"ObjectCreated:Put") && names.contains(&"ObjectRemoved:Delete"), "{events:?}");
    let put = events.iter().find(|e| e["eventName"] == "ObjectCreated:Put").unwrap();
    assert_eq!(put["s3"]["bucket"]["name"], "photos");
    assert_eq!(put["s3"]["object"]["key"], "in%2Fcat.jpg");
    assert_eq!(put["s3"]["object"]["size"], 4);
    assert_eq!(put["s3"]["configurationId"], "uploads");
    let v: Value =
        serde_json::from_str(&yun.cli_ok(&["invocations", "thumbs", "--json", "--trigger", "storage"]))
            .unwrap();
    assert_eq!(v["invocations"].as_array().unwrap().len(), 2, "out/cat.jpg is outside the prefix: {v}");
    // Removing the bucket while a trigger uses it is refused.
    yun.cli_ok(&["storage", "rm", "s3://photos/out/cat.jpg"]);
    let out = yun.cli(&["storage", "rb", "photos"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("triggers thumbs"), "{out:?}");
}

/// kill -9 while clients upload, repeated: every acknowledged object is whole and byte-identical
/// after the restart, and no partial object is ever listed or readable.
#[tokio::test]
async fn acknowledged_objects_survive_kill_9_and_partial_ones_never_show() {
    let mut yun = Yun::start(BIN);
    yun.cli_ok(&["storage", "mb", "crash"]);
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    for round in 0..5 {
        let url = yun.url();
        let token = yun.token();
        let mut uploads = Vec::new();
        for i in 0..8 {
            let (url, token) = (url.clone(), token.clone());
            uploads.push(tokio::spawn(async move {
                let key = format!("r{round}/o{i}");
                let body: Vec<u8> =
                    (0..(200_000 + i * 50_000)).map(|b| ((b + round * 7 + i) % 256) as u8).collect();
                let r = reqwest::Client::new()
                    .put(format!("{url}/v1/storage/buckets/crash/object?key={key}"))
                    .bearer_auth(token)
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => Some((key, body)),
                    _ => None,
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(40 + round as u64 * 15)).await;
        unsafe { libc::kill(yun.pid() as i32, libc::SIGKILL) };
        for u in uploads {
            if let Some(ok) = u.await.unwrap() {
                acked.push(ok);
            }
        }
        let _ = yun.wait(Duration::from_secs(10));
        yun = yun.restart();
        let listed: Value =
            serde_json::from_str(&yun.cli_ok(&["storage", "ls", "s3://crash", "-r", "--json"])).unwrap();
        let listed = listed["objects"].as_array().unwrap().clone();
        for (k, body) in &acked {
            let r = reqwest::Client::new()
                .get(format!("{}/v1/storage/buckets/crash/object?key={k}", yun.url()))
                .bearer_auth(yun.token())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "acknowledged {k} is gone after kill -9");
            assert!(r.bytes().await.unwrap() == body.as_slice(), "{k} changed");
        }
        for o in &listed {
            let k = o["key"].as_str().unwrap();
            let r = reqwest::Client::new()
                .get(format!("{}/v1/storage/buckets/crash/object?key={k}", yun.url()))
                .bearer_auth(yun.token())
                .send()
                .await
                .unwrap();
            let size = o["size"].as_u64().unwrap();
            assert_eq!(r.bytes().await.unwrap().len() as u64, size, "{k} is listed but not whole");
        }
    }
    println!("{} uploads acknowledged across 5 kill -9 rounds, all intact", acked.len());
}

/// A process function deployed with `--bucket` uses boto3 unchanged: yun gives it the S3
/// endpoint (relayed into its sandbox) and a key scoped to its buckets.
#[tokio::test]
async fn a_process_function_uses_its_buckets_with_boto3_and_nothing_else() {
    let yun = Yun::start(BIN);
    yun.cli_ok(&["storage", "mb", "notes"]);
    yun.cli_ok(&["storage", "mb", "other"]);
    let code = tempfile::tempdir().unwrap();
    yun_test_support::copy_into(
        &yun_test_support::repo_root().join("examples/python-s3/app.py"),
        &code.path().join("app.py"),
    );
    let deps =
        tokio::task::spawn_blocking(|| yun_test_support::pip_target("boto3", &["boto3"])).await.unwrap();
    yun_test_support::copy_into(&deps, code.path());
    let dir = code.path().to_str().unwrap();
    yun.cli_ok(&[
        "deploy",
        "notes",
        dir,
        "--runtime",
        "process",
        "--mode",
        "http",
        "--command",
        "python3 app.py",
        "--bucket",
        "notes",
    ]);
    let get = |q: &str| {
        let url = format!("{}/fn/notes/?{q}", yun.url());
        async move {
            let r = reqwest::Client::new().get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, v) = get("bucket=notes&put=first.txt&text=hello").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["keys"], serde_json::json!(["first.txt"]), "{v}");
    let back = yun.cli_ok(&["storage", "cp", "s3://notes/first.txt", "-"]);
    assert_eq!(back, "hello");
    let (status, v) = get("bucket=other&put=x&text=y").await;
    assert_eq!((status, v["error"].as_str()), (403, Some("AccessDenied")), "{v}");
    assert!(!yun.cli_ok(&["storage", "ls", "s3://other"]).contains('x'), "nothing written out of scope");
}

/// A wasm function reaches the object store through yun's in-process API (`yun.internal`) with
/// its scoped token: only the buckets it was deployed with.
#[tokio::test]
async fn a_wasm_function_reads_its_buckets_through_yun_internal() {
    let yun = Yun::start(BIN);
    yun.cli_ok(&["storage", "mb", "notes"]);
    yun.cli_ok(&["storage", "mb", "other"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"note").unwrap();
    yun.cli_ok(&["storage", "cp", file.to_str().unwrap(), "s3://notes/a.txt"]);
    yun.cli_ok(&["storage", "cp", file.to_str().unwrap(), "s3://other/a.txt"]);
    yun.deploy("reader", "echo", &["--bucket", "notes"]);
    yun.deploy("stranger", "echo", &[]);
    let fetch = |function: &str, bucket: &str| {
        let target = format!("http://yun.internal/v1/storage/buckets/{bucket}/object?key=a.txt");
        let q: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let url = format!("{}/fn/{function}/?fetch={q}", yun.url());
        async move { reqwest::Client::new().get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(fetch("reader", "notes").await.contains("upstream status 200"));
    assert!(fetch("reader", "other").await.contains("upstream status 401"));
    assert!(fetch("stranger", "notes").await.contains("upstream status 401"));
}

/// The `yun:storage/objects` host interface: a wasm guest that imports it stores, reads, lists
/// and removes objects in its own buckets, and is refused any other.
#[tokio::test]
async fn a_wasm_guest_uses_the_storage_host_interface_on_its_buckets_only() {
    let yun = Yun::start(BIN);
    yun.cli_ok(&["storage", "mb", "notes"]);
    yun.cli_ok(&["storage", "mb", "other"]);
    yun.deploy("notes", "notes_wasm", &["--bucket", "notes"]);
    let get = |q: &str| {
        let url = format!("{}/fn/notes/?{q}", yun.url());
        async move {
            let r = reqwest::Client::new().get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("bucket=notes&put=todo.txt&text=milk").await, (200, "stored todo.txt\n".into()));
    assert_eq!(get("bucket=notes&get=todo.txt").await, (200, "milk".into()));
    assert_eq!(get("bucket=notes").await, (200, "todo.txt\n".into()));
    assert_eq!(yun.cli_ok(&["storage", "cp", "s3://notes/todo.txt", "-"]), "milk");
    assert_eq!(get("bucket=notes&get=missing.txt").await.0, 404);
    assert_eq!(get("bucket=other&put=x&text=y").await.0, 403);
    assert_eq!(get("bucket=other").await.0, 403);
    assert_eq!(get("bucket=notes&delete=todo.txt").await, (200, "deleted\n".into()));
    assert_eq!(get("bucket=notes").await, (200, String::new()));
}
