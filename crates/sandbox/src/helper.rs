//! `yun __sandbox`: the single-threaded helper that builds one instance.
//!
//! yun is multi-threaded, and after `fork` a multi-threaded process may only make
//! async-signal-safe calls; the setup here needs far more (allocation, file writes, JSON), so yun
//! re-executes itself as this helper, which may fork and clone freely.
//!
//! Process tree, and who is who:
//! - helper (host root, in yun's namespaces except a private mount namespace of its own where it
//!   builds the new root): writes the uid/gid maps, puts init into the cgroups, supervises.
//! - init (pid 1 of the new pid namespace, instance root = an unprivileged host uid): mounts
//!   `/proc`, pivots into the new root, brings up `lo`, forks the command and reaps zombies.
//! - command (pid 2, instance uid 1000 = another host uid): drops everything, waits for yun's start
//!   byte, execs `/bin/sh -c <command>`.
//!
//! fds from yun: 0-2 are the command's stdio, 3 is a control socket (spec in, `pid N` /
//! `exit ...` / `error ...` lines out; EOF = yun is gone, so kill), 4 is the start pipe.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::seccomp;

pub(crate) const CTRL_FD: RawFd = 3;
pub(crate) const START_FD: RawFd = 4;
/// Instance uid and gid the command runs as.
pub(crate) const SANDBOX_UID: u32 = 1000;

/// What yun sends the helper, as one JSON line on the control socket.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HelperSpec {
    /// Mount point for the new root (shared by all helpers: each mounts it in its own namespace).
    pub root: PathBuf,
    pub code_dir: PathBuf,
    pub command: String,
    pub env: Vec<(String, String)>,
    pub tmp_bytes: u64,
    pub pids_max: u64,
    pub loopback: bool,
    /// Host uid/gid that instance uid/gid 0 maps to; instance 1000 maps to this + 1.
    pub uid_base: u32,
    pub cgroup_procs: Vec<PathBuf>,
}

/// Entry point of `yun __sandbox`; returns the process exit code.
pub fn helper_main() -> i32 {
    // SAFETY: F_GETFD only inspects the descriptor table.
    if unsafe { libc::fcntl(CTRL_FD, libc::F_GETFD) } < 0 {
        eprintln!("yun __sandbox is internal: yun starts it for each sandboxed instance");
        return 2;
    }
    // SAFETY: fd 3 is the control socket yun passed and nothing else in this process owns it.
    let ctrl = unsafe { File::from_raw_fd(CTRL_FD) };
    match run(&ctrl) {
        Ok(()) => 0,
        Err(msg) => {
            let _ = (&ctrl).write_all(format!("error {}\n", msg.replace('\n', " ")).as_bytes());
            1
        }
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn check(ret: libc::c_long, what: impl FnOnce() -> String) -> Result<libc::c_long, String> {
    if ret < 0 { Err(format!("{}: {}", what(), errno())) } else { Ok(ret) }
}

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("path {} contains a NUL byte", p.display()))
}

fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let s = src.map(cstr).transpose()?;
    let d = cstr(dst)?;
    let t = fstype.map(|t| CString::new(t).unwrap_or_default());
    let o = data.map(|o| CString::new(o).unwrap_or_default());
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
    let r = unsafe { libc::mount(p(&s), d.as_ptr(), p(&t), flags, p(&o).cast()) };
    check(r.into(), || {
        format!(
            "cannot mount {} on {} ({})",
            src.map_or_else(|| fstype.unwrap_or("-").to_string(), |s| s.display().to_string()),
            dst.display(),
            fstype.unwrap_or("bind/remount")
        )
    })?;
    Ok(())
}

/// A read-only, nosuid, nodev bind mount (the read-only flag needs a second, remount call).
fn bind_ro(src: &Path, dst: &Path) -> Result<(), String> {
    mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
    mount(
        None,
        dst,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

fn touch(p: &Path) -> Result<(), String> {
    File::create(p).map(drop).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

fn symlink(target: &Path, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| format!("cannot create symlink {}: {e}", link.display()))
}

/// What of the host's /etc a program may need (name resolution, TLS roots, time zone, the
/// dynamic linker's cache) and nothing with secrets: never shadow, gshadow, ssh keys or sudoers.
fn safe_etc_entries() -> Vec<String> {
    let mut v: Vec<String> = [
        "resolv.conf",
        "hosts",
        "nsswitch.conf",
        "host.conf",
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "ssl",
        "localtime",
        "timezone",
        "mime.types",
        "alternatives",
        "protocols",
        "services",
        "gai.conf",
        "os-release",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if let Ok(entries) = std::fs::read_dir("/etc") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ca-certificates") {
                v.push(name);
            }
        }
    }
    v
}

/// Builds the instance's root at `spec.root` in a private mount namespace of the helper; the
/// init process inherits a copy of it (locked: the instance cannot undo the read-only flags).
fn build_root(spec: &HelperSpec) -> Result<(), String> {
    // SAFETY: plain syscall; the helper is single-threaded.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }.into(), || {
        "cannot create a mount namespace (unshare)".into()
    })?;
    // Nothing mounted from here on may propagate back to the host.
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    let r = &spec.root;
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
    mount(Some(Path::new("tmpfs")), r, Some("tmpfs"), nosuid_nodev, Some("mode=0755,size=1m"))?;
    for name in ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else { continue };
        let dst = r.join(name);
        if meta.file_type().is_symlink() {
            // Merged /usr: /bin -> usr/bin and friends.
            let target =
                std::fs::read_link(&host).map_err(|e| format!("cannot read link {}: {e}", host.display()))?;
            symlink(&target, &dst)?;
        } else if meta.is_dir() {
            mkdir(&dst)?;
            bind_ro(&host, &dst)?;
        }
    }
    let etc = r.join("etc");
    mkdir(&etc)?;
    for name in safe_etc_entries() {
        let host = Path::new("/etc").join(&name);
        // Follows symlinks (resolv.conf often points into /run): the bind mount does too.
        let Ok(meta) = std::fs::metadata(&host) else { continue };
        let dst = etc.join(&name);
        if meta.is_dir() {
            mkdir(&dst)?;
        } else {
            touch(&dst)?;
        }
        bind_ro(&host, &dst)?;
    }
    let write = |name: &str, text: &str| {
        std::fs::write(etc.join(name), text)
            .map_err(|e| format!("cannot write /etc/{name} of the new root: {e}"))
    };
    write(
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000:sandbox:/tmp:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )?;
    write("group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n")?;
    write("hostname", "yun\n")?;

    let code = r.join("code");
    mkdir(&code)?;
    bind_ro(&spec.code_dir, &code)?;

    let tmp = r.join("tmp");
    mkdir(&tmp)?;
    mount(
        Some(Path::new("tmpfs")),
        &tmp,
        Some("tmpfs"),
        nosuid_nodev,
        Some(&format!("mode=1777,size={}", spec.tmp_bytes)),
    )?;

    let dev = r.join("dev");
    mkdir(&dev)?;
    mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(node);
        if !host.exists() {
            continue;
        }
        let dst = dev.join(node);
        touch(&dst)?;
        mount(Some(&host), &dst, None, libc::MS_BIND, None)?;
        // Device nodes need the mount without nodev; they stay writable (writing /dev/null is fine).
        mount(None, &dst, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NOEXEC, None)?;
    }
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount(
        Some(Path::new("tmpfs")),
        &shm,
        Some("tmpfs"),
        nosuid_nodev,
        Some(&format!("mode=1777,size={}", spec.tmp_bytes)),
    )?;
    symlink(Path::new("/proc/self/fd"), &dev.join("fd"))?;
    for (i, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
        symlink(Path::new(&format!("/proc/self/fd/{i}")), &dev.join(name))?;
    }
    mount(
        None,
        &dev,
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )?;

    mkdir(&r.join("proc"))?;
    mkdir(&r.join("root"))?;
    symlink(Path::new("/tmp"), &r.join("home"))?;
    mount(None, r, None, libc::MS_REMOUNT | libc::MS_RDONLY | nosuid_nodev, Some("mode=0755,size=1m"))?;
    Ok(())
}

/// argv and envp for execve, built before forking.
struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// A command that is words only (no quotes, variables, redirections or operators) runs
    /// without `/bin/sh` in between, as the shell itself would run it: the first of these
    /// paths that exists, with `direct_argv`. Starting a shell first costs a cold start ~0.5 ms.
    direct: Vec<CString>,
    direct_argv: Vec<CString>,
}

/// The words of a command that needs no shell to run, if it is one.
fn plain_words(command: &str) -> Option<Vec<&str>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || " ._/,:+@%-".contains(c);
    let words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    (!words.is_empty() && command.chars().all(plain)).then_some(words)
}

impl Exec {
    fn new(spec: &HelperSpec) -> Result<Exec, String> {
        let c = |s: &str, what: &str| CString::new(s).map_err(|_| format!("{what} contains a NUL byte"));
        let mut envp = Vec::new();
        for (k, v) in &spec.env {
            if k.is_empty() || k.contains('=') {
                return Err(format!("invalid environment variable name {k:?}"));
            }
            envp.push(c(&format!("{k}={v}"), "an environment variable")?);
        }
        let (mut direct, mut direct_argv) = (Vec::new(), Vec::new());
        if let Some(words) = plain_words(&spec.command) {
            let program = words[0];
            if program.contains('/') {
                direct.push(c(program, "the command")?);
            } else {
                let path =
                    spec.env.iter().find(|(k, _)| k == "PATH").map_or(DEFAULT_PATH, |(_, v)| v.as_str());
                for dir in path.split(':').filter(|d| d.starts_with('/')) {
                    direct.push(c(&format!("{}/{program}", dir.trim_end_matches('/')), "the command")?);
                }
            }
            for w in words {
                direct_argv.push(c(w, "the command")?);
            }
        }
        Ok(Exec {
            path: c("/bin/sh", "")?,
            argv: vec![c("sh", "")?, c("-c", "")?, c(&spec.command, "the command")?],
            envp,
            direct,
            direct_argv,
        })
    }
}

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }.into(), || {
        "cannot create a pipe".into()
    })?;
    // SAFETY: pipe2 just returned these descriptors to us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn run(ctrl: &File) -> Result<(), String> {
    let mut line = String::new();
    BufReader::new(ctrl).read_line(&mut line).map_err(|e| format!("cannot read the instance spec: {e}"))?;
    let spec: HelperSpec = serde_json::from_str(&line).map_err(|e| format!("invalid instance spec: {e}"))?;
    let filters = seccomp::filters().map_err(|e| e.to_string())?;
    let exec = Exec::new(&spec)?;
    build_root(&spec)?;
    let (sync_r, sync_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let (status_r, status_w) = pipe()?;

    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if spec.loopback {
        flags |= libc::CLONE_NEWNET;
    }
    // Raw clone without a new stack behaves like fork (the child continues here on a copy), which
    // is safe because this process is single-threaded.
    // SAFETY: see above; the child never returns from this function.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(format!("cannot create the instance's namespaces (clone): {}", errno()));
    }
    if pid == 0 {
        // SAFETY: closing this process's copies of the parent's pipe ends.
        unsafe {
            libc::close(sync_w.as_raw_fd());
            libc::close(ready_r.as_raw_fd());
            libc::close(status_r.as_raw_fd());
        }
        init_main(&spec, &exec, &filters, sync_r.as_raw_fd(), ready_w.as_raw_fd(), status_w.as_raw_fd());
    }
    let pid = pid as libc::pid_t;
    drop((sync_r, ready_w, status_w));
    let kill_and_reap = || {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    };
    // Kept open until the helper exits: see init_setup.
    let _sync_w = sync_w.try_clone().map_err(|e| format!("cannot duplicate a pipe: {e}"))?;
    if let Err(e) = setup_child(&spec, pid, sync_w, &ready_r) {
        kill_and_reap();
        return Err(e);
    }
    (&*ctrl).write_all(format!("pid {pid}\n").as_bytes()).map_err(|e| {
        kill_and_reap();
        format!("cannot report to yun: {e}")
    })?;
    // The command has its copies of stdio: the helper lets go of them so that yun sees EOF on
    // stdout/stderr exactly when the instance's last process is gone.
    // SAFETY: replacing our own descriptors.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            libc::close(null);
        }
        libc::close(START_FD);
    }
    let (status, yun_gone) = supervise(ctrl, pid);
    if yun_gone {
        // Nobody else will remove the instance's cgroups now (a later yun would, at start).
        remove_cgroups(&spec.cgroup_procs);
        return Ok(());
    }
    let mut buf = [0u8; 4];
    let report = match (&File::from(status_r)).read_exact(&mut buf) {
        // The init process passes on the command's own wait status.
        Ok(()) => describe_status(i32::from_ne_bytes(buf)),
        // init died first: killed by yun (or the OOM killer) before the command ended.
        Err(_) => describe_status(status),
    };
    (&*ctrl)
        .write_all(format!("exit {report}\n").as_bytes())
        .map_err(|e| format!("cannot report to yun: {e}"))?;
    Ok(())
}

fn describe_status(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("code {}", libc::WEXITSTATUS(status))
    }
}

/// Maps the instance's ids, joins the cgroups, then lets init go and waits until it is ready.
fn setup_child(
    spec: &HelperSpec,
    pid: libc::pid_t,
    sync_w: OwnedFd,
    ready_r: &OwnedFd,
) -> Result<(), String> {
    let base = spec.uid_base;
    let map = format!("0 {base} 1\n{SANDBOX_UID} {} 1\n", base + 1);
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &map).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    for procs in &spec.cgroup_procs {
        std::fs::write(procs, pid.to_string())
            .map_err(|e| format!("cannot move the instance into {}: {e}", procs.display()))?;
    }
    (&File::from(sync_w)).write_all(&[1]).map_err(|e| format!("cannot start the instance's init: {e}"))?;
    let mut msg = Vec::new();
    let _ = (&File::from(ready_r.try_clone().map_err(|e| e.to_string())?)).read_to_end(&mut msg);
    match msg.first() {
        Some(b'R') => Ok(()),
        Some(b'E') => Err(String::from_utf8_lossy(&msg[1..]).into_owned()),
        _ => Err("the instance's init process died during setup".into()),
    }
}

/// Removes the instance's cgroup directories, retrying while the kernel drains their tasks.
fn remove_cgroups(procs: &[PathBuf]) {
    let dirs: Vec<&Path> = procs.iter().filter_map(|p| p.parent()).collect();
    for _ in 0..200 {
        let mut left = false;
        for d in &dirs {
            if let Err(e) = std::fs::remove_dir(d) {
                left |= e.kind() != std::io::ErrorKind::NotFound;
            }
        }
        if !left {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits for init to end; kills it if yun goes away (EOF on the control socket). Returns init's
/// wait status and whether yun went away.
fn supervise(ctrl: &File, pid: libc::pid_t) -> (i32, bool) {
    // SAFETY: pidfd_open on our own unreaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    let mut watch_ctrl = true;
    if pidfd >= 0 {
        loop {
            let mut fds = [
                libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
                libc::pollfd {
                    fd: if watch_ctrl { ctrl.as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of two pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                if errno().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if fds[0].revents != 0 {
                break;
            }
            if fds[1].revents != 0 {
                let mut b = [0u8; 64];
                // SAFETY: reading into a local buffer.
                let got = unsafe { libc::read(ctrl.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
                if got <= 0 {
                    // yun is gone (or closed the instance): nobody may keep it running.
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    watch_ctrl = false;
                }
            }
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || errno().kind() != std::io::ErrorKind::Interrupted {
            return (status, !watch_ctrl);
        }
    }
}

/// Writes a message to fd 2 (the instance's stderr) and exits: only for failures in the forked
/// processes, which have nobody else to tell.
fn die(fd: RawFd, code: i32, msg: &str) -> ! {
    let _ = (&*std::mem::ManuallyDrop::new(unsafe_file(fd))).write_all(msg.as_bytes());
    // SAFETY: leaving the forked process without running the helper's destructors.
    unsafe { libc::_exit(code) }
}

fn unsafe_file(fd: RawFd) -> File {
    // SAFETY: used only through ManuallyDrop, so the descriptor is never closed here.
    unsafe { File::from_raw_fd(fd) }
}

/// pid 1 of the instance.
fn init_main(
    spec: &HelperSpec,
    exec: &Exec,
    filters: &[seccompiler::BpfProgram],
    sync_r: RawFd,
    ready_w: RawFd,
    status_w: RawFd,
) -> ! {
    if let Err(msg) = init_setup(spec, sync_r) {
        die(ready_w, 1, &format!("E{msg}"));
    }
    let _ = (&*std::mem::ManuallyDrop::new(unsafe_file(ready_w))).write_all(b"R");
    // SAFETY: closing our own descriptors and blocking signals in a single-threaded process.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::close(ready_w);
        libc::close(CTRL_FD);
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            libc::sigaddset(&mut set, s);
        }
        // Blocked before the fork, so no SIGCHLD can be lost between fork and sigwait.
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
    }
    // SAFETY: single-threaded process.
    let cmd = unsafe { libc::fork() };
    if cmd < 0 {
        die(2, 126, &format!("yun sandbox: cannot fork the command: {}\n", errno()));
    }
    if cmd == 0 {
        // SAFETY: restoring the signal mask the command should start with.
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            libc::close(status_w);
        }
        command_main(spec, exec, filters);
    }
    // SAFETY: the start pipe is the command's business.
    unsafe { libc::close(START_FD) };
    loop {
        // SAFETY: waiting for one of the blocked signals.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: reaping any child (orphans of the namespace are re-parented to us).
                let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if r <= 0 {
                    break;
                }
                if r == cmd {
                    let _ = (&*std::mem::ManuallyDrop::new(unsafe_file(status_w)))
                        .write_all(&status.to_ne_bytes());
                    let code = if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        libc::WEXITSTATUS(status)
                    };
                    // Everything else in the pid namespace is killed by the kernel as we exit.
                    // SAFETY: leaving without destructors.
                    unsafe { libc::_exit(code) };
                }
            }
        } else if sig > 0 {
            // SAFETY: forwarding a termination signal to the command.
            unsafe { libc::kill(cmd, sig) };
        }
    }
}

fn init_setup(spec: &HelperSpec, sync_r: RawFd) -> Result<(), String> {
    // SAFETY: plain syscalls on our own process; ids 0 exist once the helper wrote the maps.
    unsafe {
        let mut b = [0u8; 1];
        if libc::read(sync_r, b.as_mut_ptr().cast(), 1) != 1 {
            libc::_exit(1);
        }
        check(libc::setgroups(0, std::ptr::null()).into(), || "setgroups".into())?;
        check(libc::setresgid(0, 0, 0).into(), || "setresgid(0) in the user namespace".into())?;
        check(libc::setresuid(0, 0, 0).into(), || "setresuid(0) in the user namespace".into())?;
        // If the helper dies, so does init, and with it the whole pid namespace. Set only now:
        // changing credentials clears it.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // The helper holds the sync pipe's write end for its whole life: a hang-up means it died
        // before the death signal was armed.
        let mut pfd = libc::pollfd { fd: sync_r, events: libc::POLLIN, revents: 0 };
        if libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLHUP != 0 {
            libc::_exit(1);
        }
        libc::close(sync_r);
        let host = b"yun";
        check(libc::sethostname(host.as_ptr().cast(), host.len()).into(), || "sethostname".into())?;
    }
    if spec.loopback {
        lo_up()?;
    }
    let root = &spec.root;
    // pivot_root refuses a new root that is locked (inherited from the helper's more privileged
    // mount namespace); a recursive bind made here is this namespace's own. The read-only flags
    // stay locked on every mount it copies.
    mount(Some(root), root, None, libc::MS_BIND | libc::MS_REC, None)?;
    mount(
        Some(Path::new("proc")),
        &root.join("proc"),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
        None,
    )?;
    let r = cstr(root)?;
    // SAFETY: plain syscalls with valid NUL-terminated paths.
    unsafe {
        check(libc::chdir(r.as_ptr()).into(), || format!("chdir {}", root.display()))?;
        // pivot_root(".", ".") stacks the old root on top of the new one; detaching it then
        // leaves only the new root, with no directory needed for the old one.
        check(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()), || "pivot_root".into())?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH).into(), || "detaching the old root".into())?;
        check(libc::chdir(c"/".as_ptr()).into(), || "chdir /".into())?;
    }
    Ok(())
}

/// Brings `lo` up in the new network namespace (it starts down, so 127.0.0.1 would be unreachable).
fn lo_up() -> Result<(), String> {
    // SAFETY: a socket only used for the two ioctls, closed below; ifreq is plain data.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(fd.into(), || "cannot create a socket to configure lo".into())?;
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if r < 0 {
            let e = errno();
            libc::close(fd);
            return Err(format!("cannot read the flags of lo: {e}"));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        let e = errno();
        libc::close(fd);
        if r < 0 {
            return Err(format!("cannot bring lo up: {e}"));
        }
    }
    Ok(())
}

/// pid 2: becomes the function's command.
fn command_main(spec: &HelperSpec, exec: &Exec, filters: &[seccompiler::BpfProgram]) -> ! {
    match command_setup(spec) {
        Ok(true) => {}
        // yun dropped the instance without starting it.
        Ok(false) => unsafe { libc::_exit(125) },
        Err(msg) => die(2, 126, &format!("yun sandbox: {msg}\n")),
    }
    if let Err(msg) = seccomp::apply(filters) {
        die(2, 126, &format!("yun sandbox: {msg}\n"));
    }
    let mut envp: Vec<*const libc::c_char> = exec.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    if !exec.direct.is_empty() {
        let mut argv: Vec<*const libc::c_char> = exec.direct_argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        for path in &exec.direct {
            // SAFETY: NULL-terminated arrays of NUL-terminated strings, alive across the call.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            // Like a shell's PATH search: only "not here" moves on; anything else is for
            // /bin/sh below to run into and report in its own words.
            if !matches!(errno().raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) {
                break;
            }
        }
    }
    let mut argv: Vec<*const libc::c_char> = exec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of NUL-terminated strings, alive across the call.
    unsafe { libc::execve(exec.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    die(2, 127, &format!("yun sandbox: cannot run /bin/sh: {}\n", errno()));
}

/// Drops every privilege; returns false if yun closed the start pipe without starting.
fn command_setup(spec: &HelperSpec) -> Result<bool, String> {
    // SAFETY: plain syscalls on our own process.
    unsafe {
        libc::setsid();
        let mut b = [0u8; 1];
        loop {
            let n = libc::read(START_FD, b.as_mut_ptr().cast(), 1);
            if n == 1 {
                break;
            }
            if n == 0 || errno().kind() != std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
        }
        libc::close(START_FD);
        // The bounding set caps what any later execve could regain; the ambient set what it keeps.
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap);
        }
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        check(libc::setgroups(0, std::ptr::null()).into(), || "setgroups".into())?;
        check(libc::setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID).into(), || "setresgid".into())?;
        // Leaving uid 0 clears the permitted and effective capability sets.
        check(libc::setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID).into(), || "setresuid".into())?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into(), || "PR_SET_NO_NEW_PRIVS".into())?;
        let limits = [
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_NPROC, spec.pids_max),
            (libc::RLIMIT_NOFILE, 1024),
            // Above the /tmp size, so that filling /tmp reports ENOSPC rather than EFBIG.
            (libc::RLIMIT_FSIZE, spec.tmp_bytes.saturating_mul(2).max(1 << 20)),
        ];
        for (res, v) in limits {
            let l = libc::rlimit { rlim_cur: v, rlim_max: v };
            check(libc::setrlimit(res, &l).into(), || format!("setrlimit({res})"))?;
        }
        check(libc::chdir(c"/code".as_ptr()).into(), || "chdir /code".into())?;
        // Nothing of the helper's (pipes, the control socket) may reach the function.
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::plain_words;

    #[test]
    fn only_commands_of_plain_words_skip_the_shell() {
        assert_eq!(plain_words("./native-http"), Some(vec!["./native-http"]));
        assert_eq!(
            plain_words("python3  app.py --port 8080"),
            Some(vec!["python3", "app.py", "--port", "8080"])
        );
        for shell in [
            "FOO=1 app",
            "a && b",
            "echo $HOME",
            "app > out",
            "'quoted' x",
            "a; b",
            "a | b",
            "sleep 1 &",
            "a\tb",
            "",
            "   ",
            "cmd *.py",
            "~/bin/x",
        ] {
            assert_eq!(plain_words(shell), None, "{shell:?} needs /bin/sh");
        }
    }
}
