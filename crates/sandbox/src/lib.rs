//! Runs one process-function instance (a Python, Node or native command) as a sandboxed Linux
//! process: its own user, pid, mount, network, ipc and uts namespaces, a unique unprivileged host
//! uid, a read-only root with the code at [`CODE_DIR`], memory/cpu/pids cgroups, no capabilities
//! and a seccomp filter. Each instance is built by `yun __sandbox` ([`helper_main`]), a
//! single-threaded re-execution of the yun binary, because yun itself is multi-threaded.
//!
//! It is not a container runtime: no images, no overlay filesystems, no OCI; the instance sees the
//! host's /usr read-only. It does not speak HTTP or any function protocol either: it hands back
//! stdio pipes and TCP sockets into the instance's network, and `runtime-process` does the rest.
//! With `isolate: false` it runs plain child processes with no isolation at all (development only).

mod cgroup;
mod helper;
mod netns;
mod seccomp;
mod slots;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

pub use cgroup::FreezeFile;
pub use helper::helper_main;

/// Where the function's code appears inside the sandbox; also the command's working directory.
pub const CODE_DIR: &str = "/code";

/// How long spawning may take before the instance is given up on.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The yun binary, re-executed as `yun __sandbox` to set up each instance (single-threaded, so
    /// it may fork/clone freely).
    pub helper_exe: PathBuf,
    /// Scratch directory owned by yun (e.g. DATA/run/sandbox), created if missing (mount points for
    /// new roots live here).
    pub run_dir: PathBuf,
    /// false = `--insecure-no-sandbox`: plain child processes, no isolation at all (development only).
    pub isolate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// This host lacks something isolation needs; the message says what.
    #[error("this host cannot sandbox functions: {0}")]
    Unsupported(String),
    /// An instance could not be created.
    #[error("cannot start sandbox instance `{label}`: {message}")]
    Spawn { label: String, message: String },
    /// A file or directory of the sandbox's own could not be prepared.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// Runs function instances; cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    cgroups: Option<cgroup::Hierarchy>,
}

/// What to run in one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Host directory, mounted read-only at [`CODE_DIR`]. When isolating it must be readable by
    /// others (o+rx): the instance runs as an unprivileged host uid.
    pub code_dir: PathBuf,
    /// Run as `/bin/sh -c <command>` with cwd [`CODE_DIR`].
    pub command: String,
    /// The whole environment; when isolating, PATH=/usr/local/bin:/usr/bin:/bin and HOME=/tmp are
    /// added if absent.
    pub env: Vec<(String, String)>,
    /// cgroup memory limit (no swap).
    pub memory_bytes: u64,
    /// cpu quota in cores (e.g. 1.0).
    pub cpus: f64,
    /// cgroup pids limit (and RLIMIT_NPROC).
    pub pids_max: u64,
    /// Size of the tmpfs at /tmp (and of /dev/shm); also RLIMIT_FSIZE.
    pub tmp_bytes: u64,
    pub network: Network,
    /// E.g. "hello-r3"; used (sanitized) in cgroup names and error messages.
    pub label: String,
    /// Give the command a stdin pipe (stdio/CGI mode); otherwise /dev/null.
    pub stdin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace with only `lo`, up.
    Loopback,
    /// The host's network: outbound allowed.
    Host,
}

/// How an instance's command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => {
                let name = match *s {
                    libc::SIGKILL => " (SIGKILL)",
                    libc::SIGTERM => " (SIGTERM)",
                    libc::SIGSEGV => " (SIGSEGV)",
                    libc::SIGABRT => " (SIGABRT)",
                    libc::SIGINT => " (SIGINT)",
                    libc::SIGSYS => " (SIGSYS)",
                    libc::SIGXFSZ => " (SIGXFSZ)",
                    _ => "",
                };
                write!(f, "killed by signal {s}{name}")
            }
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Keeps `[A-Za-z0-9_.-]`, at most 40 characters: the label becomes a directory name.
fn sanitize_label(label: &str) -> String {
    let s: String = label
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with('.') { format!("i{s}") } else { s }
}

fn check_host() -> Result<cgroup::Hierarchy, SandboxError> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SandboxError::Unsupported(
            "yun must run as root to sandbox functions (cgroups, uid maps); or pass --insecure-no-sandbox"
                .into(),
        ));
    }
    match std::fs::read_to_string("/proc/sys/user/max_user_namespaces") {
        Ok(s) if s.trim() == "0" => {
            return Err(SandboxError::Unsupported(
                "user namespaces are disabled (/proc/sys/user/max_user_namespaces = 0)".into(),
            ));
        }
        Ok(_) => {}
        Err(e) => {
            return Err(SandboxError::Unsupported(format!(
                "user namespaces are not available (/proc/sys/user/max_user_namespaces: {e})"
            )));
        }
    }
    if !Path::new("/proc/self/ns/user").exists() {
        return Err(SandboxError::Unsupported("the kernel has no user namespaces (CONFIG_USER_NS)".into()));
    }
    cgroup::detect().map_err(SandboxError::Unsupported)
}

impl Sandbox {
    /// Checks that this host can isolate, by actually starting a trivial instance (`true`); the
    /// error says exactly what is missing. Also removes cgroups left behind by a previous yun that
    /// crashed.
    pub async fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if !config.isolate {
            return Ok(Sandbox { inner: Arc::new(Inner { config, cgroups: None }) });
        }
        let hierarchy = check_host()?;
        let run = &config.run_dir;
        for dir in [run.clone(), run.join("root"), slots::slot_dir(run), run.join("selftest")] {
            std::fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        }
        let selftest = run.join("selftest");
        std::fs::set_permissions(&selftest, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("cannot make {} readable", selftest.display())))?;
        let removed = cgroup::remove_leftovers(&hierarchy);
        if removed > 0 {
            tracing::info!(removed, "removed cgroups left behind by a previous yun");
        }
        let sandbox = Sandbox { inner: Arc::new(Inner { config, cgroups: Some(hierarchy) }) };
        sandbox.self_test(&selftest).await?;
        Ok(sandbox)
    }

    async fn self_test(&self, code_dir: &Path) -> Result<(), SandboxError> {
        let spec = InstanceSpec {
            code_dir: code_dir.to_path_buf(),
            command: "true".into(),
            env: Vec::new(),
            memory_bytes: 64 << 20,
            cpus: 1.0,
            pids_max: 16,
            tmp_bytes: 1 << 20,
            network: Network::Loopback,
            label: "selftest".into(),
            stdin: false,
        };
        let fail = |m: String| SandboxError::Unsupported(format!("the sandbox self-test failed: {m}"));
        let mut instance = self.spawn(spec).await.map_err(|e| fail(e.to_string()))?;
        instance.start().map_err(|e| fail(e.to_string()))?;
        let mut stderr = instance.stderr.take();
        let exit = tokio::time::timeout(SPAWN_TIMEOUT, instance.wait())
            .await
            .map_err(|_| fail("`true` did not finish within 30 s".into()))?;
        if exit != Exit::Code(0) {
            let mut text = String::new();
            if let Some(s) = stderr.as_mut() {
                let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_string(&mut text)).await;
            }
            return Err(fail(format!("`true` ended with {exit}: {}", text.trim())));
        }
        Ok(())
    }

    pub fn isolates(&self) -> bool {
        self.inner.config.isolate
    }

    /// One line for `yun up` to print.
    pub fn describe(&self) -> String {
        match &self.inner.cgroups {
            Some(h) => format!(
                "sandbox: namespaces (user, pid, mount, net, ipc, uts) + {} + seccomp + no capabilities",
                h.describe()
            ),
            None => "sandbox: NONE (--insecure-no-sandbox: functions run as plain processes with yun's privileges)"
                .into(),
        }
    }

    /// Creates an instance that has NOT started its command yet (so the caller can open listeners
    /// inside its network first).
    pub async fn spawn(&self, spec: InstanceSpec) -> Result<Instance, SandboxError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let label = sanitize_label(&spec.label);
        let result = match &self.inner.cgroups {
            Some(h) if self.inner.config.isolate => self.spawn_isolated(h, id, &label, spec).await,
            _ => spawn_plain(id, &label, spec),
        };
        result.map_err(|message| SandboxError::Spawn { label, message })
    }

    async fn spawn_isolated(
        &self,
        hierarchy: &cgroup::Hierarchy,
        id: u64,
        label: &str,
        spec: InstanceSpec,
    ) -> Result<Instance, String> {
        let meta = std::fs::metadata(&spec.code_dir)
            .map_err(|e| format!("code directory {}: {e}", spec.code_dir.display()))?;
        if !meta.is_dir() || meta.permissions().mode() & 0o005 != 0o005 {
            return Err(format!(
                "code directory {} must be a directory readable by others (o+rx): the instance runs as an \
                 unprivileged user",
                spec.code_dir.display()
            ));
        }
        let run_dir = &self.inner.config.run_dir;
        let slot = slots::take(run_dir).map_err(|e| format!("cannot reserve a sandbox uid: {e}"))?;
        let name = format!("{label}-{}-{id}", std::process::id());
        let limits =
            cgroup::Limits { memory_bytes: spec.memory_bytes, cpus: spec.cpus, pids_max: spec.pids_max };
        let plan = hierarchy.plan(&name, limits);
        plan.create().map_err(|e| e.to_string())?;
        // If this future is dropped half-way, the cgroups must not outlive it.
        let mut guard = PlanGuard(Some(plan.clone()));
        let mut env = spec.env;
        for (k, v) in [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", "/tmp")] {
            if !env.iter().any(|(name, _)| name == k) {
                env.push((k.into(), v.into()));
            }
        }
        let helper_spec = helper::HelperSpec {
            root: run_dir.join("root"),
            code_dir: spec.code_dir,
            command: spec.command,
            env,
            tmp_bytes: spec.tmp_bytes,
            pids_max: spec.pids_max,
            loopback: spec.network == Network::Loopback,
            uid_base: slot.host_uid_base(),
            cgroup_procs: plan.procs.clone(),
        };
        let started = start_helper(&self.inner.config.helper_exe, &helper_spec, spec.stdin).await;
        let (mut child, control, start, pid) = match started {
            Ok(s) => s,
            Err(e) => {
                remove_cgroups(&plan).await;
                return Err(e);
            }
        };
        let opened = (|| {
            // SAFETY: pidfd_open returns a new descriptor or -1. The helper does not reap init before
            // this (it has not started the command), so the pid cannot have been reused.
            let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if pidfd < 0 {
                return Err(format!("pidfd_open({pid}): {}", io::Error::last_os_error()));
            }
            // SAFETY: we own the new descriptor.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
            let netns = if helper_spec.loopback {
                let path = format!("/proc/{pid}/ns/net");
                let f = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
                Some(Arc::new(OwnedFd::from(f)))
            } else {
                None
            };
            Ok((pidfd, netns))
        })();
        let (pidfd, netns) = match opened {
            Ok(x) => x,
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                remove_cgroups(&plan).await;
                return Err(e);
            }
        };
        guard.0 = None;
        Ok(Instance {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            id,
            exit: None,
            kind: Kind::Isolated(Box::new(Isolated {
                helper: Some(child),
                control: Some(control),
                start: Some(start),
                pidfd,
                init_pid: pid,
                netns,
                plan,
                host_uid: helper_spec.uid_base + 1,
                slot: Some(slot),
                oom: AtomicBool::new(false),
                cleaned: false,
                final_usage: None,
            })),
        })
    }
}

/// Removes an instance's cgroups when spawning fails or is cancelled. Directories still busy
/// (the helper already moved init in) are left to the helper, which removes them itself once it
/// sees the control socket close.
struct PlanGuard(Option<cgroup::Plan>);

impl Drop for PlanGuard {
    fn drop(&mut self) {
        if let Some(plan) = self.0.take() {
            plan.remove_once();
        }
    }
}

/// A descriptor moved to a number ≥ 10, so that placing fds 3 and 4 in the child cannot clobber it.
fn high_fd(fd: OwnedFd) -> Result<OwnedFd, String> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(format!("cannot duplicate a descriptor: {}", io::Error::last_os_error()));
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("cannot create a pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned these descriptors to us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Places `control` at fd 3 and `start` at fd 4 of the child being spawned.
fn pass_fds(cmd: &mut tokio::process::Command, control: RawFd, start: RawFd) {
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls (dup2);
    // both sources are ≥ 10, so neither dup2 overwrites the other's source.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(control, 3) < 0 || libc::dup2(start, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

type Started = (tokio::process::Child, tokio::net::UnixStream, OwnedFd, libc::pid_t);

/// Starts `yun __sandbox`, sends it the spec and waits for the instance's init pid.
async fn start_helper(exe: &Path, spec: &helper::HelperSpec, stdin: bool) -> Result<Started, String> {
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    let theirs = high_fd(theirs.into())?;
    let (start_r, start_w) = pipe()?;
    let start_r = high_fd(start_r)?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("__sandbox")
        .env_clear()
        .stdin(if stdin { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    pass_fds(&mut cmd, theirs.as_raw_fd(), start_r.as_raw_fd());
    let mut child =
        cmd.spawn().map_err(|e| format!("cannot run the sandbox helper {}: {e}", exe.display()))?;
    drop((theirs, start_r));
    let mut line =
        serde_json::to_string(spec).map_err(|e| format!("cannot encode the instance spec: {e}"))?;
    line.push('\n');
    let handshake = async {
        use tokio::io::AsyncWriteExt;
        ours.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut control = tokio::net::UnixStream::from_std(ours).map_err(|e| e.to_string())?;
        control
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot send the spec to the helper: {e}"))?;
        // Read one line byte by byte: nothing after it may be consumed here.
        let mut reply = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match control.read(&mut b).await {
                Ok(0) => break,
                Ok(_) if b[0] == b'\n' => break,
                Ok(_) => reply.push(b[0]),
                Err(e) => return Err(format!("cannot read from the helper: {e}")),
            }
        }
        Ok::<_, String>((control, String::from_utf8_lossy(&reply).into_owned()))
    };
    let outcome = tokio::time::timeout(SPAWN_TIMEOUT, handshake).await;
    let fail = |child: &mut tokio::process::Child| {
        let _ = child.start_kill();
    };
    let (control, reply) = match outcome {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            fail(&mut child);
            let _ = child.wait().await;
            return Err(e);
        }
        Err(_) => {
            fail(&mut child);
            let _ = child.wait().await;
            return Err("the sandbox helper did not answer within 30 s".into());
        }
    };
    if let Some(pid) = reply.strip_prefix("pid ").and_then(|p| p.trim().parse::<libc::pid_t>().ok()) {
        return Ok((child, control, start_w, pid));
    }
    let status = child.wait().await;
    let mut message = match reply.strip_prefix("error ") {
        Some(m) => m.to_string(),
        None => format!(
            "the sandbox helper ended without an answer ({})",
            status.map_or_else(|e| e.to_string(), |s| s.to_string())
        ),
    };
    if let Some(mut err) = child.stderr.take() {
        let mut text = String::new();
        let _ = tokio::time::timeout(Duration::from_millis(200), err.read_to_string(&mut text)).await;
        if !text.trim().is_empty() {
            message.push_str(&format!(" (stderr: {})", text.trim()));
        }
    }
    Err(message)
}

fn spawn_plain(id: u64, label: &str, spec: InstanceSpec) -> Result<Instance, String> {
    let (start_r, start_w) = pipe()?;
    let start_r = high_fd(start_r)?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    // The command waits for the start line on fd 3, like an isolated one waits for yun's start byte.
    cmd.arg("-c")
        .arg("read -r _ <&3 || exit 125; exec 3<&-; exec /bin/sh -c \"$1\"")
        .arg("sh")
        .arg(&spec.command)
        .current_dir(&spec.code_dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let fd = start_r.as_raw_fd();
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run /bin/sh for `{label}`: {e}"))?;
    drop(start_r);
    let pgid = child.id().map(|p| p as libc::pid_t).ok_or("the child exited at once")?;
    Ok(Instance {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        id,
        exit: None,
        kind: Kind::Plain { child, pgid, start: Some(start_w) },
    })
}

/// Waits for a port in an instance to accept connections, polling every 100 µs from a thread of
/// its own: Tokio's timers tick in milliseconds, and every millisecond between a program
/// listening and yun noticing is cold-start time a request waits for. The thread enters the
/// instance's network namespace once, which is why it is not one of the runtime's.
pub struct ListenProbe {
    netns: Option<Arc<OwnedFd>>,
    port: u16,
}

impl ListenProbe {
    /// Blocks until the port accepts a connection and returns it, or until `deadline` passes
    /// or `stop` is set (None). Run it on a dedicated thread.
    pub fn wait(&self, deadline: std::time::Instant, stop: &AtomicBool) -> Option<std::net::TcpStream> {
        if let Some(ns) = &self.netns {
            // SAFETY: setns on this thread only, which exists for this probe.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return None;
            }
        }
        let addr = loopback(self.port);
        let began = std::time::Instant::now();
        loop {
            if let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                return Some(stream);
            }
            let now = std::time::Instant::now();
            if stop.load(Ordering::Relaxed) || now >= deadline {
                return None;
            }
            // Fine-grained while a fast program may be about to listen; a slow starter (an
            // interpreter importing for seconds) is not worth 10 000 attempts a second.
            let pause = if now - began < Duration::from_millis(50) { 100 } else { 1000 };
            std::thread::sleep(Duration::from_micros(pause));
        }
    }
}

/// One function instance.
/// What an instance has used so far, where measurable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub max_memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
}

/// Where an instance's usage is read from.
#[derive(Clone, Debug)]
pub struct Meter(MeterKind);

#[derive(Clone, Debug)]
enum MeterKind {
    Cgroup(Arc<cgroup::Plan>),
    Proc(libc::pid_t),
}

impl Meter {
    pub fn usage(&self) -> Usage {
        match &self.0 {
            MeterKind::Cgroup(plan) => {
                let (max_memory_bytes, cpu_usec) = plan.usage();
                Usage { max_memory_bytes, cpu_usec }
            }
            MeterKind::Proc(pid) => plain_usage(*pid),
        }
    }
}

/// A plain child's peak resident set (`VmHWM`) and CPU time (`utime + stime` and its waited-for
/// children's), from `/proc`.
fn plain_usage(pid: libc::pid_t) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let max_memory_bytes = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis don't.
    let cpu_usec = stat.rsplit_once(')').and_then(|(_, rest)| {
        let f: Vec<u64> = rest.split_whitespace().skip(11).take(4).filter_map(|v| v.parse().ok()).collect();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (f.len() == 4 && ticks > 0).then(|| f.iter().sum::<u64>() * 1_000_000 / ticks as u64)
    });
    Usage { max_memory_bytes, cpu_usec }
}

pub struct Instance {
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    id: u64,
    exit: Option<Exit>,
    kind: Kind,
}

enum Kind {
    Plain { child: tokio::process::Child, pgid: libc::pid_t, start: Option<OwnedFd> },
    Isolated(Box<Isolated>),
}

struct Isolated {
    helper: Option<tokio::process::Child>,
    /// Kept open for the instance's life: the helper kills the instance when it sees EOF.
    control: Option<tokio::net::UnixStream>,
    start: Option<OwnedFd>,
    pidfd: OwnedFd,
    init_pid: libc::pid_t,
    netns: Option<Arc<OwnedFd>>,
    plan: cgroup::Plan,
    host_uid: u32,
    /// Released only once every process of the instance is gone.
    slot: Option<slots::Slot>,
    oom: AtomicBool,
    cleaned: bool,
    /// Peak memory and CPU time as the cgroup had them when the instance ended.
    final_usage: Option<(Option<u64>, Option<u64>)>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").field("id", &self.id).field("exit", &self.exit).finish_non_exhaustive()
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Removes an instance's cgroups, retrying while the kernel finishes tearing its tasks down.
async fn remove_cgroups(plan: &cgroup::Plan) {
    for _ in 0..200 {
        if plan.remove_once() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!(dirs = ?plan.remove, "could not remove an instance's cgroups");
}

impl Instance {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The host uid the command runs as (None when not isolating): each live instance has its own.
    pub fn host_uid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Isolated(i) => Some(i.host_uid),
            Kind::Plain { .. } => None,
        }
    }

    /// The host pid of the instance's init process (of the shell when not isolating).
    pub fn host_pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Isolated(i) => Some(i.init_pid as u32),
            Kind::Plain { pgid, .. } => Some(*pgid as u32),
        }
    }

    /// Lets the command run (exec). Before this, only the namespaces exist.
    pub fn start(&mut self) -> Result<(), SandboxError> {
        let start = match &mut self.kind {
            Kind::Plain { start, .. } => start.take(),
            Kind::Isolated(i) => i.start.take(),
        };
        let Some(fd) = start else { return Ok(()) };
        // SAFETY: writing one byte to our pipe; an empty pipe takes it without blocking.
        let n = unsafe { libc::write(fd.as_raw_fd(), b"\n".as_ptr().cast(), 1) };
        if n != 1 {
            return Err(SandboxError::Spawn {
                label: format!("#{}", self.id),
                message: format!("cannot start the command: {}", io::Error::last_os_error()),
            });
        }
        Ok(())
    }

    /// A TCP connection to 127.0.0.1:port as the instance sees it (inside its network namespace;
    /// host loopback with `Network::Host` or when not isolating).
    pub async fn connect_tcp(&self, port: u16) -> io::Result<TcpStream> {
        match self.netns() {
            Some(ns) => {
                let fd = netns::socket(ns).await?;
                TcpSocket::from_std_stream(std::net::TcpStream::from(fd)).connect(loopback(port)).await
            }
            None => TcpStream::connect(loopback(port)).await,
        }
    }

    /// Something that tells, on a thread of its own, when a program in the instance accepts
    /// connections on 127.0.0.1:port (see [`ListenProbe::wait`]).
    pub fn listen_probe(&self, port: u16) -> ListenProbe {
        ListenProbe { netns: self.netns().cloned(), port }
    }

    /// A listener on 127.0.0.1:port inside the instance's network (host loopback with
    /// `Network::Host` or when not isolating). Needs a Tokio runtime context.
    pub fn listen_tcp(&self, port: u16) -> io::Result<TcpListener> {
        match self.netns() {
            Some(ns) => {
                let fd = netns::socket_blocking(ns)?;
                let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
                socket.set_reuseaddr(true)?;
                socket.bind(loopback(port))?;
                socket.listen(1024)
            }
            None => {
                let l = std::net::TcpListener::bind(loopback(port))?;
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            }
        }
    }

    fn netns(&self) -> Option<&Arc<OwnedFd>> {
        match &self.kind {
            Kind::Isolated(i) => i.netns.as_ref(),
            Kind::Plain { .. } => None,
        }
    }

    /// Waits for the command to end (cancel-safe). After it returns no process of the instance is left.
    pub async fn wait(&mut self) -> Exit {
        if self.exit.is_none() {
            let exit = match &mut self.kind {
                Kind::Plain { child, pgid, .. } => {
                    let status = child.wait().await;
                    // The shell's background children share its process group.
                    // SAFETY: the group leader is reaped only now, so the group id is still ours.
                    unsafe { libc::killpg(*pgid, libc::SIGKILL) };
                    match status {
                        Ok(s) => {
                            use std::os::unix::process::ExitStatusExt;
                            s.code()
                                .map(Exit::Code)
                                .or(s.signal().map(Exit::Signal))
                                .unwrap_or(Exit::Code(-1))
                        }
                        Err(_) => Exit::Signal(libc::SIGKILL),
                    }
                }
                Kind::Isolated(iso) => {
                    if let Some(h) = iso.helper.as_mut() {
                        let _ = h.wait().await;
                    }
                    let exit = iso.read_exit();
                    if iso.plan.oom_kills() > 0 {
                        iso.oom.store(true, Ordering::Relaxed);
                    }
                    // The cgroup goes below; what it counted is kept.
                    iso.final_usage = Some(iso.plan.usage());
                    exit
                }
            };
            self.exit = Some(exit);
        }
        if let Kind::Isolated(iso) = &mut self.kind
            && !iso.cleaned
        {
            remove_cgroups(&iso.plan).await;
            iso.cleaned = true;
            iso.slot = None;
            iso.control = None;
        }
        self.exit.unwrap_or(Exit::Signal(libc::SIGKILL))
    }

    /// Kills every process of the instance (the whole pid namespace); idempotent; never blocks.
    pub fn kill(&self) {
        if self.exit.is_some() {
            return;
        }
        match &self.kind {
            // SAFETY: the group leader is not reaped before `exit` is set, so the id is ours.
            Kind::Plain { pgid, .. } => unsafe {
                libc::killpg(*pgid, libc::SIGKILL);
            },
            // SIGKILL to a pid namespace's init kills everything in it. The pidfd cannot hit a
            // recycled pid. A frozen task does not die until thawed (cgroup v1), so thaw after.
            Kind::Isolated(i) => {
                // SAFETY: a signal through our own pidfd.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        i.pidfd.as_raw_fd(),
                        libc::SIGKILL,
                        0usize,
                        0u32,
                    );
                }
                if let Some(f) = &i.plan.freeze {
                    let _ = f.thaw();
                }
            }
        }
    }

    /// The most memory the instance has used (bytes) and its CPU time (µs) so far, where the
    /// host measures them: an isolated instance's cgroup counts all its processes; a plain
    /// one's numbers are its main process's (peak resident set, user + system time).
    pub fn usage(&self) -> Usage {
        if let Kind::Isolated(i) = &self.kind
            && let Some((max_memory_bytes, cpu_usec)) = i.final_usage
        {
            return Usage { max_memory_bytes, cpu_usec };
        }
        self.meter().usage()
    }

    /// Reads [`Self::usage`] for whoever serves the instance while another task owns it.
    pub fn meter(&self) -> Meter {
        match &self.kind {
            Kind::Isolated(i) => Meter(MeterKind::Cgroup(Arc::new(i.plan.clone()))),
            Kind::Plain { pgid, .. } => Meter(MeterKind::Proc(*pgid)),
        }
    }

    /// True once the kernel OOM-killed something in this instance's memory cgroup.
    pub fn memory_exceeded(&self) -> bool {
        match &self.kind {
            Kind::Isolated(i) => i.oom.load(Ordering::Relaxed) || (!i.cleaned && i.plan.oom_kills() > 0),
            Kind::Plain { .. } => false,
        }
    }

    /// The instance's freezer, if the host has one: freezing stops every process of the
    /// instance at once (no CPU, memory kept) until it is thawed.
    pub fn freezer(&self) -> Option<FreezeFile> {
        match &self.kind {
            Kind::Isolated(i) => i.plan.freeze.clone(),
            Kind::Plain { .. } => None,
        }
    }
}

impl Isolated {
    /// The helper's last line, once it has exited (so everything it wrote is readable now).
    fn read_exit(&mut self) -> Exit {
        let mut text = Vec::new();
        if let Some(c) = &self.control {
            let mut buf = [0u8; 256];
            loop {
                match c.try_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => text.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        parse_exit(&String::from_utf8_lossy(&text)).unwrap_or(Exit::Signal(libc::SIGKILL))
    }
}

fn parse_exit(text: &str) -> Option<Exit> {
    let line = text.lines().find_map(|l| l.strip_prefix("exit "))?;
    let (kind, n) = line.split_once(' ')?;
    let n = n.trim().parse().ok()?;
    match kind {
        "code" => Some(Exit::Code(n)),
        "signal" => Some(Exit::Signal(n)),
        _ => None,
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        let Kind::Isolated(iso) = &mut self.kind else { return };
        if iso.cleaned {
            return;
        }
        let helper = iso.helper.take();
        let plan = iso.plan.clone();
        let slot = iso.slot.take();
        let control = iso.control.take();
        let cleanup = async move {
            drop(control);
            if let Some(mut h) = helper {
                let _ = h.wait().await;
            }
            remove_cgroups(&plan).await;
            drop(slot);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(cleanup);
            }
            Err(_) => {
                let _ = std::thread::Builder::new().name("yun-sandbox-cleanup".into()).spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        rt.block_on(cleanup);
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Sandbox>();
        check::<Instance>();
        check::<SandboxError>();
    }

    #[test]
    fn labels_are_sanitized() {
        assert_eq!(sanitize_label("hello-r3"), "hello-r3");
        assert_eq!(sanitize_label("../etc/x y"), "i.._etc_x_y");
        assert_eq!(sanitize_label(""), "i");
        assert_eq!(sanitize_label(&"a".repeat(100)).len(), 40);
    }

    #[test]
    fn exit_lines_parse() {
        assert_eq!(parse_exit("exit code 3\n"), Some(Exit::Code(3)));
        assert_eq!(parse_exit("exit signal 9\n"), Some(Exit::Signal(9)));
        assert_eq!(parse_exit("garbage"), None);
        assert_eq!(Exit::Signal(9).to_string(), "killed by signal 9 (SIGKILL)");
        assert_eq!(Exit::Code(0).to_string(), "exit code 0");
    }
}
