#!/usr/bin/env python3
"""Sandbox escape probe: a CGI-style (stdio) process function that tries each classic way out of
its sandbox and reports, as JSON, "denied: <errno name>" or "ALLOWED" for each.

Deploy:  yun deploy probe examples/probe --runtime process --mode stdio --command "python3 probe.py"
Query:   list=<path>         a host path to try listing (default: $PROBE_LIST or /root)
         connect=<host:port> a TCP address to try reaching (default: $PROBE_CONNECT or 127.0.0.1:8080)

A sandboxed instance must answer "denied: ..." everywhere except `write_tmp` (the function's own
scratch space). Run with --insecure-no-sandbox, most answers become ALLOWED.
"""
import ctypes
import errno
import json
import os
import platform
import socket
import sys
import tempfile
from urllib.parse import parse_qs

query = {k: v[-1] for k, v in parse_qs(os.environ.get("QUERY_STRING", "")).items()}
list_path = query.get("list", os.environ.get("PROBE_LIST", "/root"))
connect_to = query.get("connect", os.environ.get("PROBE_CONNECT", "127.0.0.1:8080"))

# Syscall numbers differ per architecture; these are the ones the probe makes directly.
NR = {
    "x86_64": {"mount": 165, "umount2": 166, "ptrace": 101, "unshare": 272, "setns": 308, "bpf": 321,
               "chroot": 161, "setuid": 105, "perf_event_open": 298, "keyctl": 250},
    "aarch64": {"mount": 40, "umount2": 39, "ptrace": 117, "unshare": 97, "setns": 268, "bpf": 280,
                "chroot": 51, "setuid": 146, "perf_event_open": 241, "keyctl": 219},
}.get(platform.machine(), {})
libc = ctypes.CDLL(None, use_errno=True)


def name(e):
    return errno.errorcode.get(e, str(e))


def attempt(f):
    try:
        detail = f()
        return "ALLOWED" + (f": {detail}" if detail else "")
    except OSError as e:
        return f"denied: {name(e.errno) if e.errno else type(e).__name__}"
    except Exception as e:  # noqa: BLE001 - report anything else as it is
        return f"denied: {type(e).__name__}: {e}"


def syscall(call, *args):
    def f():
        if call not in NR:
            raise OSError(errno.ENOSYS, "unknown syscall number on this architecture")
        if libc.syscall(NR[call], *args) < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return ""
    return f


def in_child(f):
    """Runs a probe in a forked child, so that one that succeeds (unshare, chroot, setuid...)
    changes nothing in this process; the exit code carries the errno."""
    def run():
        pid = os.fork()
        if pid == 0:
            try:
                f()
                os._exit(0)
            except OSError as e:
                os._exit(e.errno or 255)
            except BaseException:  # noqa: BLE001
                os._exit(255)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code != 0:
            raise OSError(code if code > 0 else errno.EINTR, "probe failed")
        return ""
    return run


def ptrace_a_sibling():
    # The target is a child of ours, so a (wrongly) allowed attach disturbs nobody else.
    target = os.fork()
    if target == 0:
        import time
        time.sleep(30)
        os._exit(0)
    try:
        return in_child(syscall("ptrace", 16, target, 0, 0))()  # PTRACE_ATTACH
    finally:
        os.kill(target, 9)
        os.waitpid(target, 0)


def try_mount():
    # A scratch directory of our own as the target: if mounting is (wrongly) allowed, nothing of
    # anyone else's is covered, and the mount is undone at once.
    target = tempfile.mkdtemp(prefix="probe-mnt-")
    try:
        syscall("mount", b"none", target.encode(), b"tmpfs", 0, None)()
        syscall("umount2", target.encode(), 2)()
        return "mounted and unmounted " + target
    finally:
        os.rmdir(target)


def read(path):
    def f():
        with open(path) as fh:
            return fh.read(60).strip()
    return f


def write_tmp():
    with open("/tmp/probe", "w") as fh:
        fh.write("ok")
    return ""


def write_code():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe-was-here")
    with open(path, "w") as fh:
        fh.write("x")
    os.unlink(path)
    return ""


def connect():
    host, _, port = connect_to.rpartition(":")
    s = socket.create_connection((host, int(port)), timeout=2)
    s.close()
    return connect_to


CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
results = {
    "read_etc_shadow": attempt(read("/etc/shadow")),
    "list_path": attempt(lambda: ", ".join(sorted(os.listdir(list_path))[:10]) or "(empty)"),
    "read_host_hostname_via_proc1": attempt(read("/proc/1/root/etc/hostname")),
    "read_proc1_environ": attempt(read("/proc/1/environ")),
    "mount_tmpfs": attempt(try_mount),
    "ptrace_attach": attempt(ptrace_a_sibling),
    "unshare_user_ns": attempt(in_child(syscall("unshare", CLONE_NEWUSER))),
    "unshare_net_ns": attempt(in_child(syscall("unshare", CLONE_NEWNET))),
    "setns": attempt(in_child(syscall("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0))),
    "bpf": attempt(syscall("bpf", 0, 0, 0)),
    "perf_event_open": attempt(syscall("perf_event_open", 0, 0, -1, -1, 0)),
    "keyctl": attempt(syscall("keyctl", 0, 0)),
    "chroot": attempt(in_child(syscall("chroot", b"/tmp"))),
    "setuid_root": attempt(in_child(syscall("setuid", 0))),
    # Signal 0: checks permission to signal pid 1 without sending anything.
    "signal_pid1": attempt(lambda: os.kill(1, 0) or ""),
    "write_code_dir": attempt(write_code),
    "write_tmp": attempt(write_tmp),
    "connect": attempt(connect),
}
facts = {
    "uid": os.getuid(),
    "pid": os.getpid(),
    "cwd": os.getcwd(),
    "interfaces": [n for _, n in socket.if_nameindex()],
    "list_path": list_path,
    "connect_to": connect_to,
}

sys.stdout.write("Content-Type: application/json\r\n\r\n")
sys.stdout.write(json.dumps({"results": results, "facts": facts}, indent=2) + "\n")
