#!/usr/bin/env python3
"""Thaw against cold start for process functions: one request to an instance that was frozen
(`yun scale --freeze`), against one to a function at zero (a new instance in a spare sandbox),
for the same program, alternating, on a running yun.

  python3 bench/thaw.py --yun YUN_BIN --url URL --data-dir DIR --name NAME [--n 15]

NAME must already be deployed (a resident http-mode process function). For each sample the
script sets the function up (`--idle 1s` with `--freeze 10m` for thaw, `--freeze 0s` for cold),
sends one request, waits until the instance is frozen or gone (`yun describe --json`), then
times one GET on a new connection: request to full response, client's wall clock, with the
`x-yun-start` and `x-yun-init-ms` yun reports. Prints one JSON line per sample and a summary.
Only the given URL (127.0.0.1) is targeted.
"""

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit


def yun(args, *cli):
    out = subprocess.run(
        [args.yun, "--url", args.url, "--data-dir", args.data_dir, *cli],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def describe(args):
    return json.loads(yun(args, "--json", "describe", args.name))["scale"]


def get(args):
    u = urlsplit(args.url)
    start = time.perf_counter_ns()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", f"/fn/{args.name}/")
    r = conn.getresponse()
    r.read()
    took = (time.perf_counter_ns() - start) / 1e6
    conn.close()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}")
    return took, r.getheader("x-yun-start"), float(r.getheader("x-yun-init-ms") or "nan")


def wait(args, pred, what):
    deadline = time.monotonic() + 60
    while not pred(describe(args)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sample(args, kind):
    yun(args, "scale", args.name, "--idle", "1s", "--freeze", "10m" if kind == "thaw" else "0s")
    get(args)  # an instance to freeze or to stop
    if kind == "thaw":
        wait(args, lambda s: s["instances"]["frozen"] >= 1 and s["instances"]["ready"] == 0, "frozen")
    else:
        wait(args, lambda s: s["instances"]["current"] == 0 and s["instances"]["frozen"] == 0, "zero")
        time.sleep(0.3)  # the spare sandbox is made again in the background
    took, start, init = get(args)
    return {"kind": kind, "ms": took, "start": start, "init_ms": init}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--yun", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--n", type=int, default=15)
    args = p.parse_args()
    results = {"thaw": [], "cold": []}
    for i in range(args.n):
        for kind in (("thaw", "cold") if i % 2 == 0 else ("cold", "thaw")):
            r = sample(args, kind)
            expected = "thawed" if kind == "thaw" else "cold"
            if r["start"] != expected:
                raise RuntimeError(f"sample {i}: expected x-yun-start {expected}, got {r['start']}")
            print(json.dumps(r), flush=True)
            results[kind].append(r)
    yun(args, "scale", args.name, "--freeze", "0s")
    for kind, rs in results.items():
        ms = sorted(r["ms"] for r in rs)
        init = sorted(r["init_ms"] for r in rs)
        print(
            f"{args.name} {kind}: n={len(ms)} request p50 {statistics.median(ms):.2f} ms "
            f"(min {ms[0]:.2f}, max {ms[-1]:.2f}); yun's init p50 {statistics.median(init):.2f} ms",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
