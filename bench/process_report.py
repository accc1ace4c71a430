#!/usr/bin/env python3
"""Render the tables of a bench/process.sh results directory (Markdown, to stdout).

  python3 bench/process_report.py bench/results/<run>-process
"""

import json
import math
import os
import statistics
import sys

NAMES = {"native": "native (Rust, std only)", "python": "Python (http.server)",
         "python-nodelay": "Python, TCP_NODELAY"}
GOAL_COLD_RATIO = 1.5
GOAL_ADDED_P50_US = 100


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def pct(vals, p):
    """Nearest-rank percentile."""
    vals = sorted(v for v in vals if v is not None)
    return vals[max(1, math.ceil(p / 100 * len(vals))) - 1] if vals else float("nan")


def f(v, digits=1):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def programs(out, prefix):
    found = []
    for p in ("native", "python"):
        if os.path.exists(os.path.join(out, f"{prefix}{p}.jsonl")):
            found.append(p)
    return found


def listen_times(out, p, samples):
    """yun samples: ms from the request to yun reading the app's first stdout line."""
    logs = lines(os.path.join(out, f"logs-cold-{p}.jsonl"))
    first = {}
    for e in logs:
        inv = e.get("invocation_id")
        if inv and inv not in first and str(e.get("line", "")).startswith("listening on"):
            first[inv] = e.get("ts_ms")
    res = []
    for s in samples:
        ts = first.get(s.get("invocation"))
        res.append(None if ts is None else ts - s["t_send_ns"] / 1e6)
    return res


def cold(out):
    progs = programs(out, "cold-")
    if not progs:
        return
    print("### Cold start: no instance -> first response (ms)\n")
    print("| program | n | floor p50 / p90 | yun p50 / p90 | yun / floor p50 (p90) | goal (p50 <= 1.5x) |")
    print("|---|---:|---:|---:|---:|---|")
    detail = []
    for p in progs:
        rows = lines(os.path.join(out, f"cold-{p}.jsonl"))
        bad = [r for r in rows if not r.get("ok")]
        fl = [r for r in rows if r["kind"] == "floor" and r.get("ok")]
        yu = [r for r in rows if r["kind"] == "yun" and r.get("ok")]
        f50, f90 = pct([r["total_ms"] for r in fl], 50), pct([r["total_ms"] for r in fl], 90)
        y50, y90 = pct([r["total_ms"] for r in yu], 50), pct([r["total_ms"] for r in yu], 90)
        r50, r90 = y50 / f50, y90 / f90
        goal = "met" if r50 <= GOAL_COLD_RATIO else "missed"
        n = f"{len(fl)} + {len(yu)}" + (f" ({len(bad)} failed)" if bad else "")
        print(f"| {NAMES[p]} | {n} | {f(f50, 2)} / {f(f90, 2)} | {f(y50, 2)} / {f(y90, 2)} "
              f"| {r50:.2f}x ({r90:.2f}x) | {goal} |")
        yl = listen_times(out, p, yu)
        detail.append((p, fl, yu, yl))
    print()
    print("n is floor + yun samples. Floor: the program started directly (no yun, no sandbox, no "
          "/bin/sh), spawn -> end of its first response, connecting every ~1 ms. yun: `GET /fn/NAME/` "
          "on a new connection once the previous instance was stopped, request -> end of response.\n")

    print("### Where a cold start goes (ms, p50)\n")
    print("| program | floor: spawn -> app prints `listening` | floor: `listening` -> response "
          "| yun: request -> yun reads `listening` | yun: `listening` -> response "
          "| yun - floor, before `listening` | yun - floor, after `listening` |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p, fl, yu, yl in detail:
        f_listen = pct([r["listen_ms"] for r in fl], 50)
        f_after = pct([r["total_ms"] - r["listen_ms"] for r in fl if r.get("listen_ms") is not None], 50)
        y_listen = pct(yl, 50)
        y_after = pct([r["total_ms"] - t for r, t in zip(yu, yl) if t is not None], 50)
        matched = sum(t is not None for t in yl)
        print(f"| {NAMES[p]} | {f(f_listen, 2)} | {f(f_after, 2)} | {f(y_listen, 1)} | {f(y_after, 1)} "
              f"| {f(y_listen - f_listen, 1)} | {f(y_after - f_after, 1)} |"
              + ("" if matched == len(yu) else f" ({matched}/{len(yu)} yun samples with a log line)"))
    print()
    print("`listening` is the app's first stdout line, printed once its socket listens. For yun it "
          "is timed when yun reads it from the pipe (log timestamp, 1 ms resolution, wall clock); "
          "before it: yun's routing, the sandbox (helper, namespaces, mounts, cgroups, seccomp), "
          "`/bin/sh -c` and the app's own start; after it: yun noticing the app is ready and the "
          "first proxied request.\n")


def warm(out):
    rows = lines(os.path.join(out, "warm.jsonl"))
    if not rows:
        return
    print("### Warm latency: one connection, sequential requests (µs, median of rounds)\n")
    print("| program | direct p50 / p99 | yun p50 / p99 | added p50 | added p99 | direct req/s "
          "| yun req/s | goal (added p50 <= 100 µs) | errors direct / yun |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    order = []
    for r in rows:
        if r["program"] not in order:
            order.append(r["program"])
    for p in order:
        med = {}
        for s in ("direct", "yun"):
            sel = [r for r in rows if r["program"] == p and r["server"] == s]
            med[s] = {
                "p50": statistics.median(r["p50_us"] for r in sel),
                "p99": statistics.median(r["p99_us"] for r in sel),
                "rps": statistics.median(r["rps"] for r in sel),
                "err": sum(r["err_status"] + r["err_connect"] + r["err_read"] + r["err_write"]
                           + r["err_timeout"] for r in sel),
                "n": len(sel),
            }
        d, y = med["direct"], med["yun"]
        added50, added99 = y["p50"] - d["p50"], y["p99"] - d["p99"]
        goal = "met" if added50 <= GOAL_ADDED_P50_US else "missed"
        print(f"| {NAMES.get(p, p)} | {d['p50']:.0f} / {d['p99']:.0f} | {y['p50']:.0f} / {y['p99']:.0f} "
              f"| {added50:+.0f} | {added99:+.0f} | {d['rps']:.0f} | {y['rps']:.0f} | {goal} "
              f"| {d['err']} / {y['err']} |")
    print()
    print("`wrk -t1 -c1 --latency` (one keep-alive connection, the next request sent when the "
          "previous answer arrived); direct = the program started on a free loopback port, "
          "yun = `/fn/NAME/` of a resident instance. Per-round figures: warm.jsonl.\n")


def env(out):
    path = os.path.join(out, "env.txt")
    if os.path.exists(path):
        keep = ("run:", "yun:", "load average")
        for line in open(path):
            if line.startswith(keep):
                print(f"- {line.strip()}")
        print()


def main():
    out = sys.argv[1]
    print(f"## Process functions: {os.path.basename(out.rstrip('/'))}\n")
    env(out)
    cold(out)
    warm(out)


if __name__ == "__main__":
    main()
