//! Shared by the integration tests: building and starting the real example functions.

#![allow(dead_code)] // each test crate uses a different part

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use yun_lambda::{FunctionMeta, InitError, Invocation, RuntimeApi, RuntimeError};

/// Generous: the first start of a Python runtime on a loaded 2-core machine is slow.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    // Canonical, so a symlinked checkout still finds examples/ next to crates/.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().unwrap();
    manifest.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// examples/target/release, with hello-lambda and hello-lambda-http freshly built.
pub fn rust_examples() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let started = std::time::Instant::now();
        let status = std::process::Command::new(cargo)
            .arg("build")
            .arg("--release")
            .arg("--locked")
            .arg("--manifest-path")
            .arg(root.join("examples/lambda-rust/Cargo.toml"))
            .arg("--target-dir")
            .arg(root.join("examples/target"))
            .status()
            .expect("run cargo to build examples/lambda-rust");
        assert!(status.success(), "building examples/lambda-rust failed: {status}");
        eprintln!("examples/lambda-rust built in {:.1?}", started.elapsed());
        root.join("examples/target/release")
    })
}

/// The directory holding awslambdaric, or `None` (after saying so loudly) if pip cannot get it.
pub fn python_deps() -> Option<&'static Path> {
    static DEPS: OnceLock<Option<PathBuf>> = OnceLock::new();
    DEPS.get_or_init(|| {
        let app = repo_root().join("examples/lambda-python");
        let deps = app.join(".deps");
        if deps.join("awslambdaric").is_dir() {
            return Some(deps);
        }
        let output = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&deps)
            .arg("-r")
            .arg(app.join("requirements.txt"))
            .output();
        match output {
            Ok(out) if out.status.success() && deps.join("awslambdaric").is_dir() => Some(deps),
            other => {
                let why = match other {
                    Ok(out) => format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
                    Err(err) => err.to_string(),
                };
                eprintln!(
                    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !!! SKIPPING the awslambdaric (Python) Lambda tests: pip could not install\n\
                     !!! awslambdaric into {}:\n!!! {why}\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
                    deps.display()
                );
                None
            }
        }
    })
    .as_deref()
}

/// One function instance: a Runtime API and the process talking to it.
pub struct Instance {
    pub api: Arc<RuntimeApi>,
    pub child: Child,
    _stop: oneshot::Sender<()>,
}

impl Instance {
    pub async fn start(meta: FunctionMeta, command: &mut Command) -> Instance {
        Instance::start_without(meta, command, &[]).await
    }

    /// Starts with the variables named in `without` left out of the environment.
    pub async fn start_without(meta: FunctionMeta, command: &mut Command, without: &[&str]) -> Instance {
        let api = RuntimeApi::new(meta);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(api.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        command.envs(api.meta().env(&addr));
        for name in without {
            command.env_remove(name);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the function process");
        Instance { api, child, _stop: stop }
    }

    /// Ready, or the init error it posted, or the exit error if it died first.
    pub async fn ready(&mut self) -> Result<(), InitError> {
        let api = self.api.clone();
        let outcome = tokio::time::timeout(PATIENCE, async {
            tokio::select! {
                ready = api.ready() => ready,
                status = self.child.wait() => {
                    // Like the platform would: the process is gone, so tell the Runtime API. An
                    // init error it posted before exiting is kept.
                    api.terminate(format!("runtime exited during init: {status:?}"));
                    api.ready().await
                }
            }
        })
        .await;
        outcome.expect("the runtime neither became ready nor exited")
    }

    pub async fn invoke(&self, request_id: &str, event: Value) -> Result<Invocation, RuntimeError> {
        self.invoke_bytes(request_id, Bytes::from(event.to_string())).await
    }

    pub async fn invoke_bytes(&self, request_id: &str, event: Bytes) -> Result<Invocation, RuntimeError> {
        let deadline = SystemTime::now() + Duration::from_secs(30);
        tokio::time::timeout(PATIENCE, self.api.invoke(request_id, deadline, event))
            .await
            .expect("the invocation got no outcome in time")
    }
}
