#!/usr/bin/env python3
"""One burst of N concurrent HTTP requests for bench/scale.sh, timed per response.

  burst.py URL [--n 100] [--settle 0.3] [--timeout 120] [--expect TEXT] [--label L]

Opens N TCP connections to URL first (TCP_NODELAY; then waits --settle seconds so the server
has accepted them all), then releases the burst: one thread writes the N requests back to back
(`GET PATH HTTP/1.1`, `Connection: close`) on the already open connections, and an epoll loop
reads the responses. Connection setup is not counted. For every request it records:

  ms       burst release (just before the first write) -> end of that full response
  own_ms   its own write -> end of its response (ms minus the time the earlier writes took)
  status, and the x-yun-start / x-yun-init-ms / x-yun-invocation-id headers when present

Prints one JSON object: the samples and p50/p99/max (nearest rank) of ms, counts by status and
by x-yun-start, how long the writes of the burst took (send_spread_ms), how long the read loop
was busy outside epoll_wait (client_busy_ms), and the 1-minute load average. Exits non-zero if any request fails (connection error, no complete response in time,
or an unexpected body with --expect). Only loopback URLs are accepted.

The client is one Python thread: when several responses are ready together it reads them one
after another (a few microseconds each), which bounds its own skew to well under a millisecond
for 100 responses; run it against a server with a known fast answer to see its floor (scale.sh
does, against examples/native-http started directly).
"""

import argparse
import gc
import json
import math
import re
import select
import socket
import sys
import time
import urllib.parse

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.I)


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


class Conn:
    __slots__ = ("sock", "buf", "head_end", "headers", "status", "length", "chunked", "done",
                 "t_send", "t_done", "error")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.head_end = -1
        self.headers = {}
        self.status = None
        self.length = None
        self.chunked = False
        self.done = False
        self.t_send = None
        self.t_done = None
        self.error = None

    def parse_head(self):
        """All the headers, once the burst is over (the hot loop only finds where they end)."""
        lines = bytes(self.buf[:self.head_end - 4]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def complete(self):
        """Whether the buffer holds the whole response (EOF is handled by the caller). Kept
        short: it runs in the timed loop."""
        buf = self.buf
        if self.head_end < 0:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return False
            self.head_end = i + 4
            m = CONTENT_LENGTH.search(buf, 0, i + 2)
            if m:
                self.length = int(m.group(1))
            elif CHUNKED.search(buf, 0, i + 2):
                self.chunked = True
        if self.length is not None:
            return len(buf) - self.head_end >= self.length
        if self.chunked:
            return buf.endswith(b"0\r\n\r\n")
        return False

    def body(self):
        raw = bytes(self.buf[self.head_end:]) if self.head_end >= 0 else b""
        if not self.chunked:
            return raw
        out, rest = bytearray(), raw
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--expect", default=None)
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    u = urllib.parse.urlsplit(a.url)
    host, port = u.hostname, u.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"burst.py: refusing non-loopback URL {a.url}")
    path = (u.path or "/") + (("?" + u.query) if u.query else "")
    request = (f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUser-Agent: yun-bench-burst\r\n"
               f"Accept: */*\r\nConnection: close\r\n\r\n").encode()

    conns = []
    for _ in range(a.n):
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        conns.append(Conn(s))
    time.sleep(a.settle)

    ep = select.epoll(sizehint=a.n)
    by_fd = {}
    for c in conns:
        by_fd[c.sock.fileno()] = c
        ep.register(c.sock.fileno(), select.EPOLLIN)

    gc.collect()
    gc.disable()
    clock = time.perf_counter
    t0 = clock()
    for c in conns:
        c.t_send = clock()
        n = c.sock.send(request)  # small and the socket buffer is empty: written whole
        if n != len(request):
            c.error = f"short write {n}"
    t_sent = clock()

    pending = sum(1 for c in conns if c.error is None)
    deadline = t0 + a.timeout
    busy = 0.0  # time the loop spent outside epoll_wait: the client's own share of the times
    poll, unregister = ep.poll, ep.unregister
    while pending:
        left = deadline - clock()
        if left <= 0:
            break
        events = poll(left)
        t_woke = clock()
        for fd, _ev in events:
            c = by_fd[fd]
            if c.done:
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                data, c.error = b"", f"recv: {e}"
            if data:
                c.buf += data
                if not c.complete():
                    continue
            elif c.error is None and c.head_end < 0 and not c.complete():
                c.error = "connection closed before a response"
            c.t_done = clock()
            c.done = True
            unregister(fd)
            pending -= 1
        busy += clock() - t_woke
    gc.enable()

    samples, failures = [], []
    for i, c in enumerate(conns):
        if c.head_end >= 0:
            try:
                c.parse_head()
            except (ValueError, IndexError) as e:
                c.error = c.error or f"bad response head: {e}"
        if not c.done and c.error is None:
            c.error = "no complete response in time"
        if c.error is None and a.expect is not None and a.expect not in c.body().decode("utf-8", "replace"):
            c.error = f"unexpected body {c.body()[:200]!r}"
        rec = {
            "i": i,
            "status": c.status,
            "start": c.headers.get("x-yun-start"),
            "init_ms": float(c.headers["x-yun-init-ms"]) if "x-yun-init-ms" in c.headers else None,
            "id": c.headers.get("x-yun-invocation-id"),
            "ms": round((c.t_done - t0) * 1000, 3) if c.t_done else None,
            "own_ms": round((c.t_done - c.t_send) * 1000, 3) if c.t_done else None,
        }
        if c.error:
            rec["error"] = c.error
            failures.append(rec)
        samples.append(rec)
        c.sock.close()

    ok = sorted(r["ms"] for r in samples if r["ms"] is not None and r["status"] == 200 and "error" not in r)
    statuses, starts = {}, {}
    for r in samples:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        starts[str(r["start"])] = starts.get(str(r["start"]), 0) + 1
    out = {
        "label": a.label,
        "url": a.url,
        "n": a.n,
        "ok": len(ok),
        "failures": len(failures),
        "p50_ms": pct(ok, 50),
        "p99_ms": pct(ok, 99),
        "max_ms": ok[-1] if ok else None,
        "min_ms": ok[0] if ok else None,
        "send_spread_ms": round((t_sent - t0) * 1000, 3),
        "client_busy_ms": round(busy * 1000, 3),
        "statuses": statuses,
        "starts": starts,
        "loadavg_1m": float(open("/proc/loadavg").read().split()[0]),
        "wall_time": time.time(),
        "samples": samples,
    }
    print(json.dumps(out))
    if failures:
        for r in failures[:5]:
            print(f"burst.py: request {r['i']}: status {r['status']}: {r.get('error')}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
