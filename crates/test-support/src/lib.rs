//! Test harness for yun's end-to-end tests: builds the guest components from source, starts
//! the real `yun` binary on port 0 with a fresh data directory, and runs its CLI.
//!
//! Only for tests. It talks to yun the way users do (process, port, CLI), never through
//! internal APIs.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository root (the workspace that holds `examples/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support is two levels deep")
        .to_path_buf()
}

/// Builds `examples/` for wasm32-wasip2 once per test process and returns the path of the
/// component `name` (e.g. `echo`, `hello_rust`).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let examples = repo_root().join("examples");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet", "--target-dir"])
            .arg(examples.join("target"))
            .current_dir(&examples)
            .status()
            .expect("running cargo to build the guest components");
        assert!(status.success(), "building examples/ for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)");
        examples.join("target/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A running `yun up`, killed when dropped.
pub struct Yun {
    bin: PathBuf,
    child: Option<Child>,
    addr: SocketAddr,
    data_dir: PathBuf,
    tmp: Arc<tempfile::TempDir>,
    output: Arc<Mutex<String>>,
    s3: Arc<Mutex<Option<SocketAddr>>>,
    redis: Arc<Mutex<Option<SocketAddr>>>,
}

impl Yun {
    /// Starts yun on a fresh data directory.
    pub fn start(bin: &str) -> Self {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(bin, tmp, &[])
    }

    pub fn start_with_args(bin: &str, args: &[&str]) -> Self {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(bin, tmp, args)
    }

    /// Starts another yun on the same data directory (after this one stopped).
    pub fn restart(&self) -> Self {
        Self::start_in(self.bin.to_str().unwrap(), self.tmp.clone(), &[])
    }

    /// Starts another yun on the same data directory with these flags.
    pub fn restart_with_args(&self, args: &[&str]) -> Self {
        Self::start_in(self.bin.to_str().unwrap(), self.tmp.clone(), args)
    }

    fn start_in(bin: &str, tmp: Arc<tempfile::TempDir>, args: &[&str]) -> Self {
        let data_dir = tmp.path().join("data");
        // Tests run side by side: the S3 API gets a free port too, unless the test says.
        let s3_default: &[&str] =
            if args.contains(&"--s3-listen") { &[] } else { &["--s3-listen", "127.0.0.1:0"] };
        let redis_default: &[&str] =
            if args.contains(&"--redis-listen") { &[] } else { &["--redis-listen", "127.0.0.1:0"] };
        let mut child = Command::new(bin)
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(s3_default)
            .args(redis_default)
            .args(args)
            .env("YUN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting yun up");
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let out2 = output.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out2.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out3 = output.clone();
        let s3 = Arc::new(Mutex::new(None));
        let s3_seen = s3.clone();
        let redis = Arc::new(Mutex::new(None));
        let redis_seen = redis.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                out3.lock().unwrap().push_str(&line);
                out3.lock().unwrap().push('\n');
                if let Some(rest) = line.strip_prefix("s3 api on http://") {
                    *s3_seen.lock().unwrap() = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                } else if let Some(rest) = line.strip_prefix("redis api on redis://") {
                    *redis_seen.lock().unwrap() = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                } else if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("a socket address after 'listening on http://'"),
            Err(_) => {
                let _ = child.kill();
                panic!("yun up did not print its address; output:\n{}", output.lock().unwrap());
            }
        };
        Self { bin: PathBuf::from(bin), child: Some(child), addr, data_dir, tmp, output, s3, redis }
    }

    /// The Redis endpoint's address, printed before the main address.
    pub fn redis_addr(&self) -> SocketAddr {
        self.redis.lock().unwrap().expect("yun up printed no `redis api on` line (is --redis-listen off?)")
    }

    /// The S3 API's URL (`http://127.0.0.1:PORT`), printed before the main address.
    pub fn s3_url(&self) -> String {
        let addr = self.s3.lock().unwrap().expect("yun up printed no `s3 api on` line (is --s3-listen off?)");
        format!("http://{addr}")
    }

    /// The server's process id, to read its memory use from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("yun is running").id()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token")).expect("admin token").trim().to_string()
    }

    /// Everything the server printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Runs `yun ARGS` as a client of this server, the way a user would (URL and data dir
    /// from the environment).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("YUN_URL", self.url())
            .env("YUN_DATA_DIR", &self.data_dir)
            .env_remove("YUN_TOKEN")
            .output()
            .expect("running the yun CLI")
    }

    /// Runs the CLI and asserts it succeeded; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "yun {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Deploys `guest(component)` as `name` with extra deploy flags.
    pub fn deploy(&self, name: &str, component: &str, flags: &[&str]) -> String {
        let path = guest(component);
        let mut args = vec!["deploy", name, path.to_str().unwrap()];
        args.extend_from_slice(flags);
        self.cli_ok(&args)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }

    /// Waits for the process to exit (after [`Self::terminate`]).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for yun") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "yun did not exit within {timeout:?}; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        self.wait(Duration::from_secs(30))
    }
}

impl Drop for Yun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Builds `examples/lambda-rust` natively once per test process and returns the directory of
/// its binaries (`hello-lambda`, `hello-lambda-http`).
pub fn lambda_rust_examples() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = repo_root();
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--locked", "--quiet", "--manifest-path"])
                .arg(root.join("examples/lambda-rust/Cargo.toml"))
                .arg("--target-dir")
                .arg(root.join("examples/target"))
                .status()
                .expect("running cargo to build examples/lambda-rust");
            assert!(status.success(), "building examples/lambda-rust failed");
            root.join("examples/target/release")
        })
        .clone()
}

/// Installs Python packages from PyPI into `examples/target/py/<name>` once (reused across
/// runs) and returns that directory, for `PYTHONPATH` or to ship inside a function's code.
pub fn pip_target(name: &str, packages: &[&str]) -> PathBuf {
    // Tests of one binary run in parallel threads; two pips into one directory corrupt it.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = repo_root().join("examples/target/py").join(name);
    let done = dir.join(".installed");
    if done.exists() {
        return dir;
    }
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "--target"])
        .arg(&dir)
        .args(packages)
        .output()
        .expect("running python3 -m pip");
    assert!(
        out.status.success(),
        "pip install {packages:?} failed (PyPI must be reachable):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&done, b"").expect("marking the install done");
    dir
}

/// Copies a file or a directory tree (symlinks followed) into `dest`.
pub fn copy_into(src: &Path, dest: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dest).expect("creating a directory");
        for entry in std::fs::read_dir(src).expect("reading a directory") {
            let entry = entry.expect("reading a directory entry");
            copy_into(&entry.path(), &dest.join(entry.file_name()));
        }
    } else {
        std::fs::copy(src, dest).expect("copying a file");
    }
}
