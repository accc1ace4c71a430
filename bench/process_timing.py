#!/usr/bin/env python3
"""Cold-start timings for bench/process.sh: a process function through yun against the same
program started directly (the floor), samples alternating, one JSON line per sample on stdout.

  cold --url URL --marker K=V --dir DIR --cmd CMD --n N [--settle S] [--expect TEXT]

  floor sample: spawn CMD (split like a shell would, executed directly: no /bin/sh, no
                sandbox) in DIR with the environment yun gives a process function (PATH, HOME,
                LANG, PYTHONUNBUFFERED) and PORT = a free loopback port; try to connect every
                ~1 ms and, once connected, send `GET /`; stop at the end of the first complete
                response. Then SIGKILL the program.
                  total_ms:   spawn -> end of the first response
                  listen_ms:  spawn -> the program's first stdout line ("listening on ...")
                  connect_ms: spawn -> first accepted TCP connection
  yun sample:   `GET URL` on a new connection, timed from just before connecting to the end
                of the response (the instance of the function must be gone: the driver first
                waits until no process carries MARKER in its environment and SETTLE seconds
                have passed since the previous yun request, so the idle timeout has stopped it).
                  total_ms:   request -> end of the response
                  t_send_ns:  wall clock at the request (to match yun's log timestamps)
                  invocation: x-yun-invocation-id of the response

  Order alternates: floor, yun; yun, floor; ...  Every sample starts after the same settle
  wait, so none overlaps the teardown of an instance.

  pct FILE KEY [FILTER=VALUE]   p50/p90/min/max/n of KEY over JSON lines (nearest rank)

Only loopback URLs are accepted.
"""

import argparse
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

POLL_S = 0.001
DEADLINE_S = 30.0
YUN_ENV = {"HOME": "/tmp", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}


def mono():
    return time.monotonic_ns()


def ms(ns):
    return round(ns / 1e6, 3)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_response(sock):
    """Reads one HTTP/1.1 response (Content-Length or close-delimited); returns (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        want = int(headers["content-length"])
        while len(body) < want:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed mid-body")
            body += chunk
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed mid-body")
            body += chunk
    else:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, headers, body


def request(sock, host, port, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    return read_response(sock)


def floor_sample(args):
    port = free_port()
    env = dict(YUN_ENV, PORT=str(port))
    argv = shlex.split(args.cmd)
    listened = {}

    def watch(stream):
        first = stream.readline()
        listened["ns"] = mono()
        listened["line"] = first.decode(errors="replace").strip()
        for _ in iter(lambda: stream.read(65536), b""):
            pass

    t0 = mono()
    proc = subprocess.Popen(argv, cwd=args.dir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reader = threading.Thread(target=watch, args=(proc.stdout,), daemon=True)
    reader.start()
    attempts = 0
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args.cmd} exited with {proc.returncode} before answering")
            if mono() - t0 > DEADLINE_S * 1e9:
                raise RuntimeError(f"{args.cmd} did not answer within {DEADLINE_S} s")
            attempts += 1
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                time.sleep(POLL_S)
                continue
            t_conn = mono()
            try:
                status, _, body = request(s, "127.0.0.1", port, "/")
            except OSError:
                s.close()
                time.sleep(POLL_S)
                continue
            t1 = mono()
            s.close()
            break
    finally:
        proc.kill()
        proc.wait()
        reader.join(timeout=5)
    return {
        "kind": "floor",
        "status": status,
        "ok": status == 200 and (args.expect is None or args.expect.encode() in body),
        "total_ms": ms(t1 - t0),
        "connect_ms": ms(t_conn - t0),
        "listen_ms": ms(listened["ns"] - t0) if "ns" in listened else None,
        "attempts": attempts,
    }


def yun_sample(args, host, port, path):
    t_wall = time.time_ns()
    t0 = mono()
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    status, headers, body = request(s, host, port, path)
    t1 = mono()
    s.close()
    return {
        "kind": "yun",
        "status": status,
        "ok": status == 200 and (args.expect is None or args.expect.encode() in body),
        "total_ms": ms(t1 - t0),
        "t_send_ns": t_wall,
        "invocation": headers.get("x-yun-invocation-id"),
        "error": None if status == 200 else body[:300].decode(errors="replace"),
    }


def marked_pids(marker):
    """Host pids whose environment holds MARKER (the function's sandboxed processes)."""
    needle = marker.encode() + b"\0"
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env or env.endswith(marker.encode()):
            pids.append(int(name))
    return pids


def wait_gone(marker, last_yun, settle):
    """Waits SETTLE s after the last yun request and until no marked process is left."""
    waited_for_exit = False
    pause = settle - (time.monotonic() - last_yun)
    if pause > 0:
        time.sleep(pause)
    deadline = time.monotonic() + 30
    while marked_pids(marker):
        waited_for_exit = True
        if time.monotonic() > deadline:
            raise RuntimeError(f"a process with {marker} is still running 30 s after the settle time")
        time.sleep(0.05)
    if waited_for_exit:
        time.sleep(0.2)  # let yun reap it and remove its cgroups
    return waited_for_exit


def cmd_cold(argv):
    p = argparse.ArgumentParser(prog="process_timing.py cold")
    p.add_argument("--url", required=True)
    p.add_argument("--marker", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cmd", required=True)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--expect")
    args = p.parse_args(argv)
    u = urllib.parse.urlsplit(args.url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        sys.exit(f"process_timing.py: refusing non-loopback URL {args.url}")
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    last_yun = time.monotonic() - args.settle
    for i in range(args.n):
        order = ("floor", "yun") if i % 2 == 0 else ("yun", "floor")
        for kind in order:
            waited = wait_gone(args.marker, last_yun, args.settle)
            if kind == "floor":
                r = floor_sample(args)
            else:
                r = yun_sample(args, host, port, path)
                last_yun = time.monotonic()
            r.update(i=i, waited_for_exit=waited, loadavg_1m=float(open("/proc/loadavg").read().split()[0]))
            print(json.dumps(r), flush=True)
            print(f"  {kind:5} #{i + 1}: {r['total_ms']:.2f} ms{'' if r['ok'] else ' NOT OK: ' + str(r)}",
                  file=sys.stderr, flush=True)


def pct(vals, p):
    vals = sorted(vals)
    return vals[max(1, math.ceil(p / 100 * len(vals))) - 1] if vals else float("nan")


def cmd_pct(argv):
    path, key, *filters = argv
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    for f in filters:
        k, _, v = f.partition("=")
        rows = [r for r in rows if str(r.get(k)) == v]
    vals = [r[key] for r in rows if r.get(key) is not None]
    print(json.dumps({"n": len(vals), "p50": pct(vals, 50), "p90": pct(vals, 90),
                      "min": min(vals, default=None), "max": max(vals, default=None)}))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("cold", "pct"):
        sys.exit(__doc__)
    {"cold": cmd_cold, "pct": cmd_pct}[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
