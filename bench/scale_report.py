#!/usr/bin/env python3
"""The tables of bench/scale.sh, from a results directory.

  scale_report.py bench/results/<run>-scale

Reads bursts.jsonl (one line per burst, every sample in it), waits.jsonl and logs-*.jsonl
(yun's REPORT line for every invocation), prints Markdown tables on stdout.
"""

import json
import os
import re
import statistics
import sys

GOAL_MS = {"wasm": 5.0, "proc": 50.0}
ORDER = ["wasm-reuse", "wasm-per-request", "proc-c1", "proc-c100", "direct"]
PROC_RE = re.compile(r"^proc-c(\d+)(?:-max(\d+))?$")


def title(s):
    if s in TITLE:
        return TITLE[s]
    m = PROC_RE.match(s)
    if m:
        return f"process, native-http, `--concurrency {m.group(1)} --max {m.group(2) or 10}`"
    return s


TITLE = {
    "wasm-reuse": "wasm, hello-rust, `--instance reuse`",
    "wasm-per-request": "wasm, hello-rust, `--instance per-request`",
    "proc-c1": "process, native-http, `--concurrency 1 --max 10`",
    "proc-c100": "process, native-http, `--concurrency 100 --max 10`",
    "direct": "native-http direct, no yun (floor)",
}
REPORT_RE = re.compile(
    r"REPORT Start: (\w+) Duration: ([\d.]+) ms Total: ([\d.]+) ms Status: (\d+)"
    r"(?: Init Duration: ([\d.]+) ms)?(?: Waited: ([\d.]+) ms)?")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = max(1, -(-len(xs) * p // 100))
    return xs[int(k) - 1]


def f(x, nd=1):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def trio(bursts):
    return f"{f(med(b['p50_ms'] for b in bursts))} / {f(med(b['p99_ms'] for b in bursts))} / {f(med(b['max_ms'] for b in bursts))}"


def main():
    out = sys.argv[1]
    bursts = [json.loads(l) for l in open(os.path.join(out, "bursts.jsonl"))]
    waits = []
    if os.path.exists(os.path.join(out, "waits.jsonl")):
        waits = [json.loads(l) for l in open(os.path.join(out, "waits.jsonl"))]
    env = open(os.path.join(out, "env.txt")).read() if os.path.exists(os.path.join(out, "env.txt")) else ""

    by = {}
    for b in bursts:
        by.setdefault(b["scenario"], {}).setdefault(b["phase"], []).append(b)
    scenarios = [s for s in ORDER if s in by] + [s for s in by if s not in ORDER]
    reps = max(len(p) for s in by.values() for p in s.values())

    # REPORT lines by invocation id; the app's startup line ("listening on ...", which yun
    # attributes to the request whose arrival started the instance) by invocation id
    reports = {}
    ready_lines = {}
    for s in scenarios:
        path = os.path.join(out, f"logs-s-{s}.jsonl")
        if not os.path.exists(path):
            continue
        for line in open(path):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("stream") == "stdout" and e.get("line", "").startswith("listening on"):
                ready_lines.setdefault(e["invocation_id"], []).append(e["ts_ms"])
            m = REPORT_RE.match(e.get("line", ""))
            if m:
                reports[e["invocation_id"]] = {
                    "ts_ms": e["ts_ms"],
                    "start": m.group(1), "run": float(m.group(2)), "total": float(m.group(3)),
                    "status": int(m.group(4)),
                    "init": float(m.group(5)) if m.group(5) else None,
                    "waited": float(m.group(6)) if m.group(6) else 0.0,
                }

    loads = [b["loadavg_1m"] for b in bursts]
    print(f"## Scale from zero: a burst of {bursts[0]['n']} concurrent requests "
          f"(ms from the burst's release to each full response; median over {reps} repetitions "
          f"of each burst's p50 / p99 / max)\n")
    for line in env.splitlines():
        if line.startswith(("run:", "command:", "yun:", "load average")):
            print(f"- {line}")
    print(f"- 1-minute load average during the bursts: {min(loads):.2f}–{max(loads):.2f}\n")

    print("| scenario | cold: p50 / p99 / max | warm: p50 / p99 / max | cold / warm (p50, p99) "
          "| cold p99, worst rep | instances after the cold burst (responses marked cold) | goal: cold p99 |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for s in scenarios:
        cold, warm = by[s].get("cold", []), by[s].get("warm", [])
        if cold and warm:
            r50 = med(b["p50_ms"] for b in cold) / med(b["p50_ms"] for b in warm)
            r99 = med(b["p99_ms"] for b in cold) / med(b["p99_ms"] for b in warm)
            ratio = f"{r50:.1f}× / {r99:.1f}×"
        else:
            ratio = "–"
        if cold:
            worst = f(max(b["p99_ms"] or 0 for b in cold))
            marked = [b["starts"].get("cold", 0) for b in cold]
            if s.startswith("proc"):
                inst = [int(b["scale_after"]["current"]) for b in cold if b.get("scale_after")]
                instances = f"{med(inst):.0f} ({min(marked)}–{max(marked)})"
            else:
                instances = f"code loaded once ({min(marked)}–{max(marked)})"
            goal_ms = GOAL_MS["wasm" if s.startswith("wasm") else "proc"]
            p99 = med(b["p99_ms"] for b in cold)
            goal = f"{'met' if p99 <= goal_ms else '**missed**'} (≤ {goal_ms:.0f} ms)"
        else:
            worst, instances, goal = "–", "–", "–"
        print(f"| {title(s)} | {trio(cold) if cold else '–'} | {trio(warm) if warm else '–'} | {ratio} "
              f"| {worst} | {instances} | {goal} |")

    procs = [s for s in scenarios if "again" in by[s]]
    if procs:
        print("\n### Process: the same burst again at once, on the pool the cold burst left\n")
        print("| scenario | again: p50 / p99 / max | instances ready before it | responses marked cold "
              "| instances after | autoscaler right after the cold burst: panicking, panic-window concurrency |")
        print("|---|---:|---:|---:|---:|---|")
        for s in procs:
            ag = by[s]["again"]
            ready = [int(b["scale_before"]["ready"]) for b in ag if b.get("scale_before")]
            after = [int(b["scale_after"]["current"]) for b in ag if b.get("scale_after")]
            marked = [b["starts"].get("cold", 0) for b in ag]
            views = [b["scale_after"] for b in by[s]["cold"] if b.get("scale_after")]
            panics = sorted({v.get("panicking", "?") for v in views})
            conc = [float(v["panic_concurrency"]) for v in views if v.get("panic_concurrency") is not None]
            view = f"{'/'.join(panics)}, {min(conc):.2f}–{max(conc):.2f}" if conc else "–"
            print(f"| {title(s)} | {trio(ag)} | {min(ready)}–{max(ready)} | {min(marked)}–{max(marked)} "
                  f"| {min(after)}–{max(after)} | {view} |")

    if procs and reports:
        print("\n### Process: instances started by each burst, and how many were ready only after "
              "its last response (median, range over the repetitions)\n")
        print("| scenario | phase | instances started | ready after the last response |")
        print("|---|---|---:|---:|")
        for s in procs:
            for phase in ("cold", "again"):
                started, late = [], []
                for b in by[s][phase]:
                    ids = [x["id"] for x in b["samples"] if x.get("id")]
                    ends = [reports[i]["ts_ms"] for i in ids if i in reports]
                    if not ends:
                        continue
                    ts = [t for i in ids for t in ready_lines.get(i, [])]
                    started.append(len(ts))
                    late.append(sum(1 for t in ts if t > max(ends)))
                if started:
                    print(f"| {title(s)} | {phase} | {med(started):.0f} ({min(started)}–{max(started)}) "
                          f"| {med(late):.0f} ({min(late)}–{max(late)}) |")

    if reports:
        print("\n### Where the time goes: yun's REPORT lines (ms, p50 / max over all responses of all repetitions)\n")
        print("Init: how long the instance (process) or the code load (wasm) the request waited for "
              "took to start; waited: time the request spent waiting for an instance (queue and start); "
              "run: the rest (yun's proxy hop and the function). Client: the burst's own times.\n")
        print("| scenario | phase | start kinds | init | waited | run | client |")
        print("|---|---|---|---:|---:|---:|---:|")
        for s in scenarios:
            for phase in ("cold", "again", "warm"):
                bs = by[s].get(phase)
                if not bs:
                    continue
                rs = [reports[x["id"]] for b in bs for x in b["samples"] if x.get("id") in reports]
                if not rs:
                    continue
                kinds = {}
                for r in rs:
                    kinds[r["start"]] = kinds.get(r["start"], 0) + 1
                kinds_s = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
                inits = [r["init"] for r in rs if r["init"] is not None]
                client = [x["ms"] for b in bs for x in b["samples"]]
                pm = lambda xs: f"{f(pct(xs, 50), 2)} / {f(max(xs) if xs else None, 2)}" if xs else "–"
                print(f"| {s} | {phase} | {kinds_s} | {pm(inits)} | {pm([r['waited'] for r in rs])} "
                      f"| {pm([r['run'] for r in rs])} | {pm(client)} |")

    if waits:
        tz = [w["to_zero_s"] for w in waits]
        pw = [w["prewarm_s"] for w in waits if "prewarm_s" in w]
        print(f"\nScaling to zero took {min(tz)}–{max(tz)} s after `--idle 1s` (whole seconds); "
              + (f"`--min K` to K ready instances {min(pw)}–{max(pw)} s." if pw else ""))
    fails = sum(b["failures"] for b in bursts)
    non200 = sum(v for b in bursts for k, v in b["statuses"].items() if k != "200")
    spread = [b["send_spread_ms"] for b in bursts]
    print(f"Failed requests: {fails} (non-200: {non200}) of {sum(b['n'] for b in bursts)}. "
          f"Writing a burst's {bursts[0]['n']} requests took {f(med(spread), 2)} ms (median; max {f(max(spread), 2)}).")


if __name__ == "__main__":
    main()
