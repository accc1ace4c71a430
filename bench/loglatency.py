"""How long a line a function prints takes to reach a `yun logs -f` follower (server-sent events).

    python3 bench/loglatency.py BASE_URL TOKEN FUNCTION [N]

Follows the function's logs as SSE, then sends N requests that each print a unique marker, one at
a time, and times each from sending the request to the marker arriving on the stream. Prints one
JSON line: {"n", "p50_ms", "p99_ms", "max_ms"}. The function must be the echo-style guest that
prints `?print=TEXT` (examples/echo), or any that writes its query to stdout.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse
import urllib.request

base, token, function = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 50
u = urllib.parse.urlparse(base)

arrived = {}
ready = threading.Event()


def follow():
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", f"/v1/functions/{function}/logs?follow=true&contains=mark-",
                 headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"})
    resp = conn.getresponse()
    ready.set()
    while True:
        line = resp.fp.readline()
        if not line:
            return
        if line.startswith(b"data: "):
            entry = json.loads(line[6:])
            for word in entry.get("line", "").split():
                if word.startswith("mark-"):
                    arrived[word] = time.perf_counter()


threading.Thread(target=follow, daemon=True).start()
ready.wait(10)
time.sleep(0.2)
lat = []
for i in range(n):
    mark = f"mark-{i}-{time.time_ns()}"
    sent = time.perf_counter()
    urllib.request.urlopen(f"{base}/fn/{function}/?print={mark}", timeout=30).read()
    deadline = time.perf_counter() + 5
    while mark not in arrived and time.perf_counter() < deadline:
        time.sleep(0.0005)
    if mark not in arrived:
        print(json.dumps({"error": f"{mark} never arrived"}))
        sys.exit(1)
    lat.append((arrived[mark] - sent) * 1000)
lat.sort()
print(json.dumps({"n": n, "p50_ms": round(lat[n // 2], 2), "p99_ms": round(lat[min(n - 1, int(n * 0.99))], 2),
                  "max_ms": round(lat[-1], 2)}))
