//! boto3 and the aws CLI, with their default settings, against `serve()` on port 0: the suite
//! is `tests/s3/suite.py`. The clients come from PyPI once (cached under examples/target/py).

use std::path::PathBuf;
use std::sync::Arc;

use yun_storage::{KeyScope, ObjectStore, S3Server, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_aws_cli() {
    let py = tokio::task::spawn_blocking(|| yun_test_support::pip_target("s3-clients", &["boto3", "awscli"]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let keys = store.keys();
    let rw = keys.create(KeyScope::default()).unwrap();
    let ro = keys.create(KeyScope { buckets: None, read_only: true }).unwrap();
    let scoped =
        keys.create(KeyScope { buckets: Some(vec!["scoped-only".into()]), read_only: false }).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = S3Server {
        store: Arc::new(store.clone()),
        keys: Arc::new(keys),
        region: "us-east-1".into(),
        max_connections: 64,
    };
    let serving = tokio::spawn(serve(listener, server, async {
        let _ = stopped.await;
    }));

    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/s3/suite.py");
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new("python3")
        .arg(&suite)
        .env("PYTHONPATH", &py)
        .env("S3_ENDPOINT", format!("http://{addr}"))
        .env("S3_KEY", &rw.id)
        .env("S3_SECRET", rw.secret.as_ref().unwrap())
        .env("S3_RO_KEY", &ro.id)
        .env("S3_RO_SECRET", ro.secret.as_ref().unwrap())
        .env("S3_SCOPED_KEY", &scoped.id)
        .env("S3_SCOPED_SECRET", scoped.secret.as_ref().unwrap())
        .env("S3_SCOPED_BUCKET", "scoped-only")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .kill_on_drop(true)
        .output()
        .await
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "the S3 suite failed ({}):\n{stdout}\n{stderr}", out.status);
    eprintln!("suite took {:?}", started.elapsed());

    // What the clients did reached the outbox, in order.
    let events = store.events(0, 10_000).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind.name() == "ObjectCreated:CompleteMultipartUpload" && e.key == "multi/big.bin")
    );
    assert!(events.iter().any(|e| e.kind.name() == "ObjectCreated:Copy" && e.key == "copy/one"));
    assert!(events.iter().any(|e| e.kind.name() == "ObjectRemoved:Delete" && e.key == "copy/two"));
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
