#!/usr/bin/env python3
"""Render the tables of a bench/run.sh results directory (Markdown, to stdout).

  python3 bench/report.py bench/results/<run>
"""

import json
import math
import os
import statistics
import sys

GUEST_NAMES = {"rust": "Rust hello", "js": "JS hello", "py": "Python hello"}
GOAL_RPS, GOAL_P99 = 1.0, 1.2


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def pct(vals, p):
    """Nearest-rank percentile (with 10 samples, p99 is the largest)."""
    vals = sorted(vals)
    return vals[max(1, math.ceil(p / 100 * len(vals))) - 1] if vals else float("nan")


def ms(v):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}" if v < 10 else f"{v:.0f}"


def throughput(out):
    rows = lines(os.path.join(out, "throughput.jsonl"))
    if not rows:
        return
    print("### Throughput and latency (median of rounds)\n")
    print("| guest | mode | yun req/s | wasmtime req/s | ratio | yun p50 / p99 (ms) "
          "| wasmtime p50 / p99 (ms) | p99 ratio | goal | errors yun / wasmtime |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
    order = []
    for r in rows:
        key = (r["guest"], r["mode"])
        if key not in order:
            order.append(key)
    for guest, mode in order:
        med = {}
        for server in ("yun", "wasmtime"):
            sel = [r for r in rows if (r["guest"], r["mode"], r["server"]) == (guest, mode, server)]
            med[server] = {
                "rps": statistics.median(r["rps"] for r in sel),
                "p50": statistics.median(r["p50_us"] for r in sel) / 1000,
                "p99": statistics.median(r["p99_us"] for r in sel) / 1000,
                "err": sum(r["err_status"] + r["err_connect"] + r["err_read"] + r["err_write"]
                           + r["err_timeout"] for r in sel),
                "n": len(sel),
            }
        y, w = med["yun"], med["wasmtime"]
        ratio = y["rps"] / w["rps"] if w["rps"] else float("nan")
        p99r = y["p99"] / w["p99"] if w["p99"] else float("nan")
        goal = "met" if ratio >= GOAL_RPS and p99r <= GOAL_P99 else "missed"
        print(f"| {GUEST_NAMES.get(guest, guest)} | {mode} | {y['rps']:.0f} | {w['rps']:.0f} | {ratio:.2f}x "
              f"| {y['p50']:.2f} / {y['p99']:.2f} | {w['p50']:.2f} / {w['p99']:.2f} | {p99r:.2f}x | {goal} "
              f"| {y['err']} / {w['err']} |")
    print()
    print("Each round's figures are in throughput.jsonl; the ratio is yun / wasmtime "
          f"(goal: req/s ratio >= {GOAL_RPS}, p99 ratio <= {GOAL_P99}).\n")


def cold(out, guests):
    rows = []
    for g in guests:
        yr = lines(os.path.join(out, f"restart-{g}-yun.jsonl"))
        wr = lines(os.path.join(out, f"restart-{g}-wasmtime.jsonl"))
        if yr or wr:
            rows.append((g, yr, wr))
    if rows:
        print("### Restart: first response with compiled code on disk (ms, p50 / p99)\n")
        print("| guest | n | yun: first request after restart | yun: process start to first 200 "
              "| wasmtime serve (warm cache): process start to first 200 |")
        print("|---|---:|---:|---:|---:|")
        for g, yr, wr in rows:
            f = [r["first_ms"] for r in yr]
            s = [r["startup_ms"] for r in yr]
            w = [r["startup_ms"] for r in wr]
            print(f"| {GUEST_NAMES.get(g, g)} | {len(yr)} / {len(wr)} | {ms(pct(f, 50))} / {ms(pct(f, 99))} "
                  f"| {ms(pct(s, 50))} / {ms(pct(s, 99))} | {ms(pct(w, 50))} / {ms(pct(w, 99))} |")
        print()
    rows = []
    for g in guests:
        yd = lines(os.path.join(out, f"deploy-{g}-yun.jsonl"))
        wd = lines(os.path.join(out, f"deploy-{g}-wasmtime.jsonl"))
        if yd or wd:
            rows.append((g, yd, wd))
    if rows:
        print("### Deploy: new code to first response, compiling included (ms, p50 / p99)\n")
        print("| guest | n | yun: `yun deploy` start to first 200 | of which `yun deploy` "
              "| wasmtime serve (no cache): process start to first 200 |")
        print("|---|---:|---:|---:|---:|")
        for g, yd, wd in rows:
            t = [r["total_ms"] for r in yd]
            d = [r["deploy_ms"] for r in yd]
            w = [r["startup_ms"] for r in wd]
            print(f"| {GUEST_NAMES.get(g, g)} | {len(yd)} / {len(wd)} | {ms(pct(t, 50))} / {ms(pct(t, 99))} "
                  f"| {ms(pct(d, 50))} / {ms(pct(d, 99))} | {ms(pct(w, 50))} / {ms(pct(w, 99))} |")
        print()
        print("Percentiles are nearest-rank: with 10 samples p99 is the slowest, with 3 it is the "
              "slowest too.\n")


def main():
    out = sys.argv[1]
    env = os.path.join(out, "env.txt")
    if os.path.exists(env):
        print("```")
        print(open(env).read().rstrip())
        print("```\n")
    throughput(out)
    cold(out, ["rust", "js", "py"])


if __name__ == "__main__":
    main()
