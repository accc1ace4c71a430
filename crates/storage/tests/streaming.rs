//! A 1 GiB PUT and GET through the S3 server: bodies stream, so the server's peak resident
//! memory (VmHWM of this process, which runs nothing else) grows by far less than the object.

use std::path::PathBuf;
use std::sync::Arc;

use yun_storage::{KeyScope, ObjectStore, S3Server, serve};

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_streams_with_bounded_memory() {
    let py = tokio::task::spawn_blocking(|| yun_test_support::pip_target("s3-clients", &["boto3", "awscli"]))
        .await
        .unwrap();
    // On disk, not in a tmpfs: the body must really be written and fsynced.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(&base).unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let keys = store.keys();
    let key = keys.create(KeyScope::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = S3Server {
        store: Arc::new(store),
        keys: Arc::new(keys),
        region: "us-east-1".into(),
        max_connections: 16,
    };
    let serving = tokio::spawn(serve(listener, server, async {
        let _ = stopped.await;
    }));

    let before = vm_hwm_kib();
    let started = std::time::Instant::now();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/s3/stream.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .env("PYTHONPATH", &py)
        .env("S3_ENDPOINT", format!("http://{addr}"))
        .env("S3_KEY", &key.id)
        .env("S3_SECRET", key.secret.as_ref().unwrap())
        .env("S3_SIZE", (1u64 << 30).to_string())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let grown_mib = (vm_hwm_kib().saturating_sub(before)) / 1024;
    eprintln!("{stdout}1 GiB up and down in {:?}; peak RSS grew by {grown_mib} MiB", started.elapsed());
    assert!(grown_mib < 200, "the server's peak RSS grew by {grown_mib} MiB for a 1 GiB object");
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
