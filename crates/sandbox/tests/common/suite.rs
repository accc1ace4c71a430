// Real sandboxed instances, checked from the outside as a function's user would see them.
// Shared by this crate's tests (helper = the `sandbox-helper` example) and yun's tests/sandbox.rs
// (helper = the yun binary), which `include!` this file after defining `helper_exe()`.
//
// Needs root, user namespaces and the memory/cpu/pids cgroups: this machine and CI have them, and
// a test fails with a clear message where they are missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yun_sandbox::{Exit, Instance, InstanceSpec, Network, Sandbox, SandboxConfig};

struct Env {
    sandbox: Sandbox,
    _run: tempfile::TempDir,
}

fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the sandbox tests need root (cgroups, uid maps, namespaces); run them as root"
    );
}

async fn env_with(isolate: bool) -> Env {
    require_root();
    let run = tempfile::tempdir().expect("temp dir");
    let config = SandboxConfig { helper_exe: helper_exe(), run_dir: run.path().join("sandbox"), isolate };
    let sandbox =
        Sandbox::new(config).await.unwrap_or_else(|e| panic!("this host cannot run the sandbox tests: {e}"));
    Env { sandbox, _run: run }
}

async fn env() -> Env {
    env_with(true).await
}

/// A world-readable code directory holding `files`.
fn code(files: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write code file");
    }
    dir
}

fn spec(code: &Path, label: &str, command: &str) -> InstanceSpec {
    InstanceSpec {
        code_dir: code.to_path_buf(),
        command: command.into(),
        env: vec![("LANG".into(), "C.UTF-8".into())],
        memory_bytes: 256 << 20,
        cpus: 1.0,
        pids_max: 64,
        tmp_bytes: 8 << 20,
        network: Network::Loopback,
        label: label.into(),
        stdin: false,
    }
}

struct Output {
    exit: Exit,
    stdout: String,
    stderr: String,
}

async fn collect(mut instance: Instance) -> (Output, Instance) {
    instance.start().expect("start");
    let mut out = instance.stdout.take().expect("stdout");
    let mut err = instance.stderr.take().expect("stderr");
    let (mut o, mut e) = (String::new(), String::new());
    let (r1, r2) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
    r1.expect("read stdout");
    r2.expect("read stderr");
    let exit =
        tokio::time::timeout(Duration::from_secs(60), instance.wait()).await.expect("instance did not end");
    (Output { exit, stdout: o, stderr: e }, instance)
}

async fn run(env: &Env, spec: InstanceSpec) -> Output {
    let instance = env.sandbox.spawn(spec).await.expect("spawn");
    collect(instance).await.0
}

/// Host processes whose real uid is `uid`.
fn processes_of(uid: u32) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if !e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else { continue };
        let real =
            status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
        if real == Some(uid.to_string().as_str()) {
            n += 1;
        }
    }
    n
}

/// Cgroup directories of instances whose name starts with `label-`.
fn cgroups_of(label: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for ctrl in ["memory", "cpu", "pids", "cpu,cpuacct", "."] {
        let parent = Path::new("/sys/fs/cgroup").join(ctrl).join("yun");
        for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("{label}-")) {
                found.push(e.path());
            }
        }
    }
    found
}

async fn assert_nothing_left(label: &str, uid: Option<u32>) {
    // The helper's cleanup is asynchronous after a drop: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = uid.map_or(0, |u| processes_of(u) + processes_of(u - 1));
        let groups = cgroups_of(label);
        // Instance roots are mounted only in the helpers' own mount namespaces, never on the host.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mountinfo.contains("/sandbox/root"), "an instance mount leaked to the host:\n{mountinfo}");
        if procs == 0 && groups.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "leaked after `{label}`: {procs} processes, cgroups {groups:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_exit_code_env_and_identity() {
    let env = env().await;
    let dir = code(&[]);
    let mut s =
        spec(dir.path(), "basics", "echo out; echo err >&2; echo \"$FOO\"; pwd; id -u; hostname; exit 3");
    s.env.push(("FOO".into(), "bar baz".into()));
    let out = run(&env, s).await;
    assert_eq!(out.exit, Exit::Code(3));
    assert_eq!(out.stdout, "out\nbar baz\n/code\n1000\nyun\n");
    assert_eq!(out.stderr, "err\n");
    assert_nothing_left("basics", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_pipe_reaches_the_command() {
    let env = env().await;
    let dir = code(&[]);
    let mut s = spec(dir.path(), "stdin", "tr a-z A-Z");
    s.stdin = true;
    let mut instance = env.sandbox.spawn(s).await.expect("spawn");
    let mut stdin = instance.stdin.take().expect("stdin");
    stdin.write_all(b"hello\n").await.unwrap();
    drop(stdin);
    let (out, _) = collect(instance).await;
    assert_eq!(out.stdout, "HELLO\n");
    assert_eq!(out.exit, Exit::Code(0));
}

const FS_PROBE: &str = r#"
import errno, os, sys
def attempt(name, f):
    try:
        f()
        print(name, "ALLOWED")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))
attempt("write_code", lambda: open("/code/new", "w"))
attempt("write_tmp", lambda: open("/tmp/ok", "w").write("x"))
attempt("read_shadow", lambda: open("/etc/shadow").read())
attempt("list_data", lambda: os.listdir(sys.argv[1]))
attempt("list_other_code", lambda: os.listdir(sys.argv[2]))
attempt("proc1_root", lambda: open("/proc/1/root/etc/shadow").read())
def fill():
    with open("/tmp/big", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
attempt("fill_tmp", fill)
attempt("write_usr", lambda: open("/usr/x", "w"))
attempt("write_proc_sys", lambda: open("/proc/sys/kernel/hostname", "w").write("x"))
print("ls_root", sorted(os.listdir("/")))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_is_confined() {
    let env = env().await;
    let dir = code(&[("probe.py", FS_PROBE)]);
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("secret"), "s").unwrap();
    let other = code(&[("other.py", "")]);
    let command = format!("python3 probe.py {} {}", data.path().display(), other.path().display());
    let out = run(&env, spec(dir.path(), "fs", &command)).await;
    assert_eq!(out.exit, Exit::Code(0), "stderr: {}", out.stderr);
    let want = [
        "write_code EROFS",
        "write_tmp ALLOWED",
        "read_shadow ENOENT",
        "list_data ENOENT",
        "list_other_code ENOENT",
        "proc1_root EACCES",
        "fill_tmp ENOSPC",
        "write_usr EROFS",
        "write_proc_sys EROFS",
    ];
    for w in want {
        assert!(out.stdout.lines().any(|l| l == w), "expected `{w}` in:\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("'shadow'"));
    assert_nothing_left("fs", None).await;
}

const SYSCALL_PROBE: &str = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def sc(name, nr, *args):
    r = libc.syscall(nr, *args)
    e = ctypes.get_errno()
    print(name, "ALLOWED" if r >= 0 else errno.errorcode.get(e, e))
sc("mount", 165, b"none", b"/tmp", b"tmpfs", 0, None)
sc("umount2", 166, b"/tmp", 2)
sc("ptrace", 101, 16, 1, 0, 0)
sc("unshare_user", 272, 0x10000000)
sc("unshare_net", 272, 0x40000000)
sc("setns", 308, 0, 0)
sc("bpf", 321, 0, 0, 0)
sc("perf_event_open", 298, 0, 0, -1, -1, 0)
sc("keyctl", 250, 0, 0)
sc("userfaultfd", 323, 0)
sc("io_uring_setup", 425, 1, 0)
sc("clone_newuser", 56, 0x10000000 | 17, 0, 0, 0, 0)
sc("clone3", 435, 0, 0)
sc("chroot", 161, b"/tmp")
sc("setuid0", 105, 0)
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitpid(pid, 0)[1] >> 8)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_syscalls_fail() {
    let env = env().await;
    let dir = code(&[("probe.py", SYSCALL_PROBE)]);
    let out = run(&env, spec(dir.path(), "syscalls", "python3 probe.py")).await;
    assert_eq!(out.exit, Exit::Code(0), "stderr: {}", out.stderr);
    for w in [
        "mount EPERM",
        "umount2 EPERM",
        "ptrace EPERM",
        "unshare_user EPERM",
        "unshare_net EPERM",
        "setns EPERM",
        "bpf EPERM",
        "perf_event_open EPERM",
        "keyctl EPERM",
        "userfaultfd EPERM",
        "io_uring_setup EPERM",
        "clone_newuser EPERM",
        "clone3 ENOSYS",
        "chroot EPERM",
        "setuid0 EPERM",
        "fork 7",
    ] {
        assert!(out.stdout.lines().any(|l| l == w), "expected `{w}` in:\n{}", out.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_network_only() {
    let env = env().await;
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let probe = format!(
        r#"
import errno, socket
print("interfaces", [n for _, n in socket.if_nameindex()])
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", {port}))
    print("host_port ALLOWED")
except OSError as e:
    print("host_port", errno.errorcode.get(e.errno, e))
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("1.1.1.1", 53))
    print("outside ALLOWED")
except OSError as e:
    print("outside", errno.errorcode.get(e.errno, e))
"#
    );
    let dir = code(&[("probe.py", &probe)]);
    let out = run(&env, spec(dir.path(), "net", "python3 probe.py")).await;
    assert_eq!(out.exit, Exit::Code(0), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("interfaces ['lo']"), "{}", out.stdout);
    assert!(out.stdout.contains("host_port ECONNREFUSED"), "{}", out.stdout);
    assert!(out.stdout.contains("outside ENETUNREACH"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tcp_reaches_a_server_inside() {
    let env = env().await;
    let dir = code(&[("index.html", "hello from inside\n")]);
    let mut instance = env
        .sandbox
        .spawn(spec(dir.path(), "http", "exec python3 -m http.server 8000 --bind 127.0.0.1"))
        .await
        .expect("spawn");
    instance.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match instance.connect_tcp(8000).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "server never came up: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    assert!(reply.ends_with("hello from inside\n"), "{reply}");
    // The same port on the host's loopback is someone else's (or nobody's).
    assert!(tokio::net::TcpStream::connect("127.0.0.1:8000").await.is_err() || cfg!(any()));
    let uid = instance.host_uid();
    instance.kill();
    assert_eq!(instance.wait().await, Exit::Signal(libc::SIGKILL));
    assert_nothing_left("http", uid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_tcp_before_start() {
    let env = env().await;
    let dir = code(&[(
        "client.py",
        "import socket\ns = socket.create_connection(('127.0.0.1', 9000))\ns.sendall(b'hello yun')\ns.close()\n",
    )]);
    let mut instance =
        env.sandbox.spawn(spec(dir.path(), "listen", "python3 client.py")).await.expect("spawn");
    let listener = instance.listen_tcp(9000).expect("listen inside");
    instance.start().unwrap();
    let (mut conn, _) =
        tokio::time::timeout(Duration::from_secs(20), listener.accept()).await.unwrap().unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "hello yun");
    assert_eq!(instance.wait().await, Exit::Code(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_oom_killed() {
    let env = env().await;
    let dir = code(&[]);
    let mut s = spec(dir.path(), "hog", "python3 -c 'b = bytearray(640 << 20); print(len(b))'");
    s.memory_bytes = 64 << 20;
    let instance = env.sandbox.spawn(s).await.expect("spawn");
    let (out, instance) = collect(instance).await;
    assert_eq!(out.stdout, "");
    assert!(matches!(out.exit, Exit::Signal(libc::SIGKILL) | Exit::Code(137)), "{}", out.exit);
    assert!(instance.memory_exceeded(), "memory_exceeded() after {}", out.exit);
    let uid = instance.host_uid();
    drop(instance);
    assert_nothing_left("hog", uid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_program_is_not_flagged_for_memory() {
    let env = env().await;
    let dir = code(&[]);
    let instance =
        env.sandbox.spawn(spec(dir.path(), "nohog", "python3 -c 'print(1)'")).await.expect("spawn");
    let (out, instance) = collect(instance).await;
    assert_eq!(out.exit, Exit::Code(0));
    assert!(!instance.memory_exceeded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_bomb_is_contained_and_killed() {
    let env = env().await;
    let dir = code(&[]);
    let mut s = spec(dir.path(), "forkbomb", "f(){ f | f & }; f; sleep 30");
    s.pids_max = 32;
    let mut instance = env.sandbox.spawn(s).await.expect("spawn");
    let uid = instance.host_uid().expect("isolated");
    instance.start().unwrap();
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        // The cgroup's own count: a /proc scan is not atomic and overcounts a churning bomb.
        let current = cgroups_of("forkbomb")
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join("pids.current")).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .expect("pids.current of the instance");
        peak = peak.max(current);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(peak <= 32, "{peak} processes despite pids_max 32");
    instance.kill();
    let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait()).await.expect("wait after kill");
    assert_eq!(exit, Exit::Signal(libc::SIGKILL));
    let mut stderr = String::new();
    instance.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    assert!(stderr.contains("fork"), "the bomb never hit the limit (peak {peak}); stderr: {stderr}");
    assert_eq!(processes_of(uid), 0);
    assert_nothing_left("forkbomb", Some(uid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ignoring_spinner_and_grandchild_are_killed() {
    let env = env().await;
    let dir = code(&[]);
    let command = "trap '' TERM; (trap '' TERM; while :; do :; done) & sh -c 'trap \"\" TERM; while :; do :; done' & \
                   echo started; while :; do :; done";
    let mut instance = env.sandbox.spawn(spec(dir.path(), "spinner", command)).await.expect("spawn");
    let uid = instance.host_uid().expect("isolated");
    instance.start().unwrap();
    let mut out = instance.stdout.take().unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(10), out.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"started\n");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(processes_of(uid) >= 3, "spinners not running");
    let t = Instant::now();
    instance.kill();
    instance.kill();
    let exit = tokio::time::timeout(Duration::from_secs(5), instance.wait()).await.expect("wait after kill");
    assert_eq!(exit, Exit::Signal(libc::SIGKILL));
    assert!(t.elapsed() < Duration::from_secs(2), "kill took {:?}", t.elapsed());
    assert_eq!(processes_of(uid), 0, "processes left right after wait()");
    // stdout reaches EOF: nobody holds it any more.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), out.read_to_end(&mut rest))
        .await
        .expect("stdout EOF")
        .unwrap();
    assert_nothing_left("spinner", Some(uid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_unstarted_instance_leaves_nothing() {
    let env = env().await;
    let dir = code(&[]);
    let instance = env.sandbox.spawn(spec(dir.path(), "dropped", "echo never")).await.expect("spawn");
    let uid = instance.host_uid();
    drop(instance);
    assert_nothing_left("dropped", uid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instances_get_distinct_uids() {
    let env = env().await;
    let dir = code(&[]);
    let a = env.sandbox.spawn(spec(dir.path(), "uids", "true")).await.unwrap();
    let b = env.sandbox.spawn(spec(dir.path(), "uids", "true")).await.unwrap();
    assert_ne!(a.host_uid(), b.host_uid());
    assert_ne!(a.id(), b.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_code_dir_is_a_clear_error() {
    let env = env().await;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = env.sandbox.spawn(spec(dir.path(), "private", "true")).await.unwrap_err();
    assert!(err.to_string().contains("readable by others"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_names_the_layers() {
    let env = env().await;
    assert!(env.sandbox.isolates());
    let d = env.sandbox.describe();
    assert!(d.contains("namespaces") && d.contains("cgroup") && d.contains("seccomp"), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_mode_runs_plain_processes() {
    let env = env_with(false).await;
    assert!(!env.sandbox.isolates());
    let dir = code(&[]);
    let mut s = spec(dir.path(), "plain", "echo \"$FOO\"; pwd; exit 4");
    s.env = vec![("FOO".into(), "x".into())];
    let out = run(&env, s).await;
    assert_eq!(out.exit, Exit::Code(4));
    let pwd = dir.path().canonicalize().unwrap();
    assert_eq!(out.stdout, format!("x\n{}\n", pwd.display()));

    let mut spinner =
        env.sandbox.spawn(spec(dir.path(), "plain2", "sleep 100 & sleep 100 & wait")).await.unwrap();
    spinner.start().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pgid = spinner.host_pid().unwrap();
    spinner.kill();
    assert_eq!(spinner.wait().await, Exit::Signal(libc::SIGKILL));
    // Killed members may linger briefly as zombies until their new parent reaps them.
    let deadline = Instant::now() + Duration::from_secs(3);
    // SAFETY: probing a process group with signal 0.
    while unsafe { libc::killpg(pgid as i32, 0) } == 0 {
        assert!(Instant::now() < deadline, "the group survived kill()");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Not an assertion: prints how long an instance takes from spawn() to its first byte of output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_figures() {
    let dir = code(&[]);
    for isolate in [true, false] {
        let env = env_with(isolate).await;
        for (name, command) in [("sh echo", "echo hi"), ("python3", "python3 -c 'print(1)'")] {
            let mut times = Vec::new();
            for _ in 0..10 {
                let t = Instant::now();
                let mut instance = env.sandbox.spawn(spec(dir.path(), "cold", command)).await.unwrap();
                let spawned = t.elapsed();
                instance.start().unwrap();
                let mut b = [0u8; 1];
                instance.stdout.as_mut().unwrap().read_exact(&mut b).await.unwrap();
                times.push((spawned, t.elapsed()));
                instance.wait().await;
            }
            times.sort_by_key(|t| t.1);
            let (spawned, first) = times[times.len() / 2];
            println!(
                "cold start ({}) {name}: spawn {:.1} ms, first output {:.1} ms (median of 10)",
                if isolate { "isolated" } else { "plain" },
                spawned.as_secs_f64() * 1e3,
                first.as_secs_f64() * 1e3
            );
        }
    }
}

/// examples/probe/probe.py of the workspace.
fn probe_script() -> String {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let p = d.join("examples/probe/probe.py");
        if p.exists() {
            return std::fs::read_to_string(p).expect("read probe.py");
        }
        dir = d.parent();
    }
    panic!("examples/probe/probe.py not found above {}", env!("CARGO_MANIFEST_DIR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_probe_is_denied_everywhere() {
    let env = env().await;
    let dir = code(&[("probe.py", &probe_script())]);
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "probe", "python3 probe.py");
    s.env.push((
        "QUERY_STRING".into(),
        format!("list={}&connect=127.0.0.1:{}", data.path().display(), host.local_addr().unwrap().port()),
    ));
    let out = run(&env, s).await;
    assert_eq!(out.exit, Exit::Code(0), "stderr: {}", out.stderr);
    let body = out.stdout.split_once("\r\n\r\n").expect("CGI header block").1;
    println!("{body}");
    let report: serde_json::Value = serde_json::from_str(body).expect("probe JSON");
    for (name, verdict) in report["results"].as_object().expect("results") {
        let verdict = verdict.as_str().unwrap();
        if name == "write_tmp" {
            assert_eq!(verdict, "ALLOWED");
        } else {
            assert!(verdict.starts_with("denied: "), "{name}: {verdict}\n{body}");
        }
    }
    assert_eq!(report["facts"]["interfaces"], serde_json::json!(["lo"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_reaches_host_loopback() {
    let env = env().await;
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = host.local_addr().unwrap().port();
    let dir = code(&[]);
    let mut s = spec(
        dir.path(),
        "hostnet",
        &format!(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port})).sendall(b\"out\")'"
        ),
    );
    s.network = Network::Host;
    let mut instance = env.sandbox.spawn(s).await.expect("spawn");
    instance.start().unwrap();
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(20), host.accept()).await.unwrap().unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "out");
    assert_eq!(instance.wait().await, Exit::Code(0));
    // connect_tcp and listen_tcp use the host's loopback too.
    let listener = instance.listen_tcp(0).expect("listen on host loopback");
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
    instance.connect_tcp(port).await.expect("connect on host loopback");
    accepted.await.unwrap().unwrap();
}
