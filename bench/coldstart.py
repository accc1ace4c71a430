#!/usr/bin/env python3
"""Cold-path timings for bench/run.sh: how long until a server gives its first 200.

Sub-commands (each prints one JSON object on stdout):

  serve URL LOG -- CMD...   start CMD (a server; its output goes to LOG), wait until URL answers
                            200, then stop the server (SIGTERM, SIGKILL after 30 s).
                            startup_ms:  from spawning CMD to the end of the first 200
                            first_ms:    the first HTTP request alone: sent as soon as the port
                                         accepts a TCP connection, timed to the end of its 200
  deploy URL -- CMD...      run CMD (e.g. `yun deploy ...`) to completion, then wait for URL to
                            answer 200.
                            total_ms:    from starting CMD to the end of the first 200
                            deploy_ms:   CMD alone
                            first_ms:    the first HTTP request after CMD returned
  uniq IN OUT TAG           copy the component IN to OUT with a custom section holding TAG
                            appended, so that OUT has a digest of its own (yun does not
                            recompile an artifact it already has)
  stats FILE KEY            p50/p99/min/max/n of KEY over the JSON lines of FILE

Only loopback URLs are accepted.
"""

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

POLL_S = 0.002
DEADLINE_S = 300.0


def parse_url(url):
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"coldstart.py: refusing non-loopback URL {url}")
    return host, port, (u.path or "/") + (("?" + u.query) if u.query else "")


def now():
    return time.monotonic()


def wait_port(host, port, deadline, proc=None):
    """Wait until host:port accepts a TCP connection; return the connected socket."""
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            if now() > deadline:
                raise RuntimeError(f"{host}:{port} did not accept connections in time")
            time.sleep(POLL_S)


def get(host, port, path, sock=None):
    """One GET; returns (status, seconds). Reuses an already connected socket if given."""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    if sock is not None:
        conn.sock = sock
    t0 = now()
    conn.request("GET", path, headers={"connection": "close"})
    resp = conn.getresponse()
    resp.read()
    t1 = now()
    conn.close()
    return resp.status, t1 - t0


def first_200(host, port, path, deadline, proc=None):
    """Poll until a 200; returns (seconds of the first request, attempts, last status)."""
    first = None
    attempts = 0
    status = None
    while True:
        sock = wait_port(host, port, deadline, proc)
        attempts += 1
        try:
            status, took = get(host, port, path, sock)
        except (OSError, http.client.HTTPException):
            status, took = None, None
        if first is None and took is not None:
            first = took
        if status == 200:
            return first, attempts, status
        if now() > deadline:
            raise RuntimeError(f"no 200 from {host}:{port}{path} in time (last status {status})")
        time.sleep(POLL_S)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmd_serve(argv):
    url, log, sep, *cmd = argv
    assert sep == "--" and cmd, "usage: serve URL LOG -- CMD..."
    host, port, path = parse_url(url)
    with open(log, "ab") as out:
        t0 = now()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            first, attempts, _ = first_200(host, port, path, t0 + DEADLINE_S, proc)
            t1 = now()
        finally:
            stop(proc)
    print(json.dumps({
        "startup_ms": round((t1 - t0) * 1000, 2),
        "first_ms": round(first * 1000, 2),
        "attempts": attempts,
    }))


def cmd_deploy(argv):
    url, sep, *cmd = argv
    assert sep == "--" and cmd, "usage: deploy URL -- CMD..."
    host, port, path = parse_url(url)
    t0 = now()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t1 = now()
    if done.returncode != 0:
        sys.stderr.write(done.stdout.decode(errors="replace"))
        sys.exit(f"coldstart.py: {cmd[0]} exited with {done.returncode}")
    first, attempts, _ = first_200(host, port, path, t1 + DEADLINE_S)
    t2 = now()
    print(json.dumps({
        "total_ms": round((t2 - t0) * 1000, 2),
        "deploy_ms": round((t1 - t0) * 1000, 2),
        "first_ms": round(first * 1000, 2),
        "attempts": attempts,
    }))


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def cmd_uniq(argv):
    src, dst, tag = argv
    data = open(src, "rb").read()
    name = b"yun-bench"
    payload = leb128(len(name)) + name + tag.encode()
    with open(dst, "wb") as f:
        f.write(data + b"\x00" + leb128(len(payload)) + payload)


def percentile(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return float("nan")
    k = max(1, math.ceil(p / 100 * len(sorted_vals)))
    return sorted_vals[k - 1]


def cmd_stats(argv):
    path, key = argv
    vals = sorted(json.loads(line)[key] for line in open(path) if line.strip().startswith("{"))
    print(json.dumps({
        "n": len(vals),
        "p50": percentile(vals, 50),
        "p99": percentile(vals, 99),
        "min": vals[0] if vals else None,
        "max": vals[-1] if vals else None,
    }))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sub, argv = sys.argv[1], sys.argv[2:]
    {"serve": cmd_serve, "deploy": cmd_deploy, "uniq": cmd_uniq, "stats": cmd_stats}[sub](argv)


if __name__ == "__main__":
    main()
