//! The endpoint over a real `Kv` in a temporary directory on port 0, a test credential policy,
//! and the real clients (redis-py, redis-cli) to drive it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use yun_kv::Kv;
use yun_redis::{Credentials, Grant, RedisEndpoint};

pub const ADMIN: &str = "admin-token";
/// A function's token, deployed with the stores `app` (its first) and `app-cache`, and with
/// `never-made`, which nobody created.
pub const FUNCTION: &str = "fn-token";
pub const FUNCTION_STORES: &[&str] = &["app", "app-cache", "never-made"];

/// The control plane's policy in small: the admin token names any store (creating it), a
/// function's token only its own (never creating one).
pub struct TestCredentials;

impl Credentials for TestCredentials {
    fn grant(&self, user: Option<&str>, password: &str) -> Option<Grant> {
        match password {
            ADMIN => Some(Grant::new(user.unwrap_or("default"), true)),
            FUNCTION => {
                let store = user.unwrap_or(FUNCTION_STORES[0]);
                FUNCTION_STORES.contains(&store).then(|| Grant::new(store, false))
            }
            _ => None,
        }
    }
}

pub struct Server {
    pub port: u16,
    pub kv: Kv,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start() -> Server {
        Server::with(yun_kv::Config::default(), yun_resp::Config::default()).await
    }

    pub async fn with(kv_config: yun_kv::Config, config: yun_resp::Config) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path(), kv_config).unwrap();
        for store in ["app", "app-cache"] {
            kv.create_store(store, false).await.unwrap();
        }
        let endpoint = Arc::new(RedisEndpoint::new(kv.clone(), Arc::new(TestCredentials)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(yun_redis::serve(listener, endpoint, config, async {
            let _ = stopped.await;
        }));
        Server { port, kv, dir, stop: Some(stop), task: Some(task) }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        self.kv.close().await.unwrap();
    }
}

/// Whether a missing client may skip the test: not in CI, where every client must be there.
fn skip_or_fail(what: &str, hint: &str) -> Option<()> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required in CI ({hint})");
    }
    eprintln!("NOTICE: {what} is missing ({hint}); skipping this test");
    None
}

/// A Python with redis-py: `YUN_TEST_PYTHON`, else `python3` if it imports `redis`.
pub async fn python() -> Option<String> {
    let python = std::env::var("YUN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = tokio::process::Command::new(&python)
        .args(["-c", "import redis"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(python)
    } else {
        skip_or_fail(
            &format!("redis-py for {python}"),
            "python3 -m venv /tmp/pyredis && /tmp/pyredis/bin/pip install redis; YUN_TEST_PYTHON=/tmp/pyredis/bin/python",
        )?;
        None
    }
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// Runs `tests/py/<name>` with the server's port; it prints `ok` when every assertion held.
pub async fn run_py(python: &str, name: &str, port: u16, extra: &[&str]) {
    let output = tokio::process::Command::new(python)
        .arg(script(name))
        .arg(port.to_string())
        .args(extra)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.trim_end().ends_with("ok"), "{name}:\n{stdout}\n{stderr}");
}

/// redis-cli with these arguments, or `None` (skip) when it is not installed outside CI.
pub async fn redis_cli(args: &[&str]) -> Option<Output> {
    match tokio::process::Command::new("redis-cli").args(args).output().await {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip_or_fail("redis-cli", "apt-get install redis-tools")?;
            None
        }
        Err(e) => panic!("running redis-cli: {e}"),
    }
}

pub fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim_end().to_string()
}
