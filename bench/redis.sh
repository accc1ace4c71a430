#!/usr/bin/env bash
# The Redis endpoint: redis-benchmark against yun's endpoint (crates/redis over the KV engine)
# and against a real redis-server (appendonly yes, appendfsync everysec, no RDB snapshots) in the
# same run, on the same filesystem. yun runs twice: `yun`, durable (group commit, an fsync per
# group before any of its writes is acknowledged), and `yun-everysec` (the engine's
# Durability::None: acknowledged before the fsync, a durable commit every second, which is what
# Redis' appendfsync everysec promises).
#
#   bash bench/redis.sh
#
# Builds crates/redis' example server (release, `nice -n 19`, in $CARGO_TARGET_DIR, default
# ~/.cache/yun/target; BENCH_SKIP_BUILD=1 uses the existing binary): until `yun up
# --redis-listen` exists it runs the same endpoint code as yun would. Installs redis-server and
# redis-tools (Debian packages) when missing. Then, for BENCH_ROUNDS rounds (the order of the
# systems rotated every round), each system gets one redis-benchmark run per pipeline depth:
#
#   redis-benchmark -c BENCH_CLIENTS -n BENCH_REQUESTS -r BENCH_KEYSPACE -t BENCH_TESTS -P <depth>
#
# with AUTH (the same token for all), BENCH_PIPELINES="1 16" (1 is no pipelining). The table
# shows the median req/s per cell and yun/redis; the goal is >= 0.7x on GET and >= 0.5x on SET
# (durable). Durable writes cannot outrun the disk: with one request in flight per client, SET
# is at most clients / (fdatasync latency), so the script measures that floor too (4 KiB write
# + fdatasync in a loop, in the same directory) and prints the bound.
#
# Raw results (results.jsonl, the benchmark's CSV, env.txt, server logs) go to
# bench/results/<UTC time>-redis/; the table goes to stdout and table.md there. Only 127.0.0.1
# is ever targeted. Knobs (environment):
#   BENCH_CLIENTS=50  BENCH_REQUESTS=200000  BENCH_KEYSPACE=100000  BENCH_TESTS=set,get,incr
#   BENCH_PIPELINES="1 16"  BENCH_ROUNDS=3  BENCH_SYSTEMS="yun yun-everysec redis"  BENCH_SKIP_BUILD=1
#   YUN_REDIS_BIN (the example server)  YUN_REDIS_ARGS (extra flags for it)  CARGO_TARGET_DIR
#   TMPDIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

CLIENTS="${BENCH_CLIENTS:-50}"
REQUESTS="${BENCH_REQUESTS:-200000}"
KEYSPACE="${BENCH_KEYSPACE:-100000}"
TESTS="${BENCH_TESTS:-set,get,incr}"
PIPELINES="${BENCH_PIPELINES:-1 16}"
ROUNDS="${BENCH_ROUNDS:-3}"
SYSTEMS="${BENCH_SYSTEMS:-yun yun-everysec redis}"
TOKEN="bench-token-$RANDOM$RANDOM"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yun/target}"

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-redis"
OUT="$BENCH/results/$RUN_ID"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yun-redis-bench.XXXXXX")"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

need python3 "for free ports and the report"
need cargo "to build the endpoint"
has() { [[ " $SYSTEMS " == *" $1 "* ]]; }

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  log "installing redis-server and redis-tools (Debian packages)"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq redis-server redis-tools >/dev/null
fi

SERVE="${YUN_REDIS_BIN:-$CARGO_TARGET_DIR/release/examples/serve}"
has_yun() { has yun || has yun-everysec; }
if has_yun && [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building the endpoint's example server (release)"
  nice -n 19 cargo build --release --locked -p yun-redis --example serve 2>&1 | tail -n 2 >&2
fi
if has_yun; then [[ -x "$SERVE" ]] || die "no example server at $SERVE"; fi

mkdir -p "$WORK/yun" "$WORK/yun-everysec" "$WORK/redis"
{
  echo "run: $RUN_ID"
  echo "command: bash bench/redis.sh (BENCH_CLIENTS=$CLIENTS BENCH_REQUESTS=$REQUESTS BENCH_KEYSPACE=$KEYSPACE BENCH_TESTS=$TESTS BENCH_PIPELINES=\"$PIPELINES\" BENCH_ROUNDS=$ROUNDS BENCH_SYSTEMS=\"$SYSTEMS\")"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -sr)"
  echo "filesystem: $(df -T "$WORK" | awk 'NR == 2 {print $1, $2}') ($(findmnt -no OPTIONS --target "$WORK" 2>/dev/null || echo '?')), both systems in $WORK"
  if has_yun; then echo "yun: crates/redis example serve at $SERVE (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes in the tree'); built $(date -u -r "$SERVE" +%FT%TZ)); yun: fsync per group commit (200 us window), yun-everysec: --no-fsync (0 window)${YUN_REDIS_ARGS:+; flags: $YUN_REDIS_ARGS}"; fi
  echo "redis: $(redis-server --version); appendonly yes, appendfsync everysec, save ''"
  echo "client: $(redis-benchmark --version 2>/dev/null || echo redis-benchmark); -c $CLIENTS -n $REQUESTS -r $KEYSPACE -t $TESTS, pipelines: $PIPELINES; $ROUNDS rounds, systems rotated; medians"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# ---------------------------------------------------------------- servers
declare -A PORT
wait_ping() { # system pid
  local i
  for ((i = 0; i < 300; i++)); do
    [[ "$(redis-cli -p "${PORT[$1]}" -a "$TOKEN" --no-auth-warning ping 2>/dev/null)" == PONG ]] && return 0
    kill -0 "$2" 2>/dev/null || die "$1 exited (see $OUT/$1.log)"
    sleep 0.1
  done
  die "$1 did not answer PING within 30 s (see $OUT/$1.log)"
}

for system in yun yun-everysec; do
  has "$system" || continue
  flags=()
  [[ "$system" == yun-everysec ]] && flags=(--no-fsync)
  PORT[$system]="$(free_port)"
  # shellcheck disable=SC2086 # YUN_REDIS_ARGS is a list of flags
  "$SERVE" --dir "$WORK/$system" --port "${PORT[$system]}" --password "$TOKEN" "${flags[@]}" ${YUN_REDIS_ARGS:-} \
    >"$OUT/$system.log" 2>&1 &
  SERVER_PIDS+=($!)
  wait_ping "$system" $!
  log "$system: redis://127.0.0.1:${PORT[$system]} (pid $!)"
done
if has redis; then
  PORT[redis]="$(free_port)"
  redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes \
    --appendfsync everysec --save '' --requirepass "$TOKEN" --daemonize no --logfile "$OUT/redis.log" \
    >/dev/null 2>&1 &
  SERVER_PIDS+=($!)
  wait_ping redis $!
  log "redis: redis://127.0.0.1:${PORT[redis]} (pid $!)"
fi

# ---------------------------------------------------------------- the disk's floor
fsync_floor() { # label: appends the p50 / p99 of a 4 KiB write + fdatasync to $OUT/fsync.jsonl
  python3 - "$WORK/fsync-probe" "$1" >>"$OUT/fsync.jsonl" <<'PY'
import json, os, sys, time
path, label = sys.argv[1:]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
lat, end = [], time.monotonic() + 2
while time.monotonic() < end:
    t = time.perf_counter()
    os.write(fd, b"x" * 4096)
    os.fdatasync(fd)
    lat.append(time.perf_counter() - t)
os.close(fd)
os.unlink(path)
lat.sort()
print(json.dumps({"label": label, "n": len(lat), "p50_ms": lat[len(lat) // 2] * 1000,
                  "p99_ms": lat[int(len(lat) * 0.99)] * 1000}))
PY
  log "  fdatasync ($1): $(tail -n1 "$OUT/fsync.jsonl")"
}
fsync_floor before

# ---------------------------------------------------------------- runs
read -r -a order <<<"$SYSTEMS"
for ((round = 0; round < ROUNDS; round++)); do
  for pipeline in $PIPELINES; do
    for ((i = 0; i < ${#order[@]}; i++)); do
      system="${order[(i + round) % ${#order[@]}]}"
      csv="$OUT/$system-P$pipeline-r$round.csv"
      load="$(cut -d' ' -f1 /proc/loadavg)"
      redis-benchmark -h 127.0.0.1 -p "${PORT[$system]}" -a "$TOKEN" -c "$CLIENTS" -n "$REQUESTS" \
        -r "$KEYSPACE" -t "$TESTS" -P "$pipeline" --csv >"$csv" 2>"$OUT/$system-P$pipeline-r$round.err" ||
        die "redis-benchmark against $system failed (see $csv)"
      python3 - "$csv" "$system" "$pipeline" "$round" "$load" >>"$OUT/results.jsonl" <<'PY'
import csv, json, sys
path, system, pipeline, round_, load = sys.argv[1:]
rows = list(csv.reader(open(path)))
header = rows[0]
for row in rows[1:]:
    r = dict(zip(header, row))
    print(json.dumps({"system": system, "test": r["test"], "pipeline": int(pipeline), "round": int(round_),
                      "rps": float(r["rps"]), "p50_ms": float(r.get("p50_latency_ms", "nan")),
                      "p99_ms": float(r.get("p99_latency_ms", "nan")), "loadavg_1m": float(load)}))
PY
      log "  round $round, -P $pipeline, $system: $(python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
print(", ".join(f"{r[0]} {float(r[1]):.0f}/s" for r in rows[1:]))
PY
)"
    done
  done
done
fsync_floor after
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"

# ---------------------------------------------------------------- report
python3 - "$OUT/results.jsonl" "$OUT/fsync.jsonl" "$CLIENTS" <<'PY' | tee "$OUT/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
floors = [json.loads(l) for l in open(sys.argv[2])]
clients = int(sys.argv[3])
cells = {}
for r in rows:
    cells.setdefault((r["test"], r["pipeline"]), {}).setdefault(r["system"], []).append(r)
systems = [s for s in ("redis", "yun", "yun-everysec") if any(s in c for c in cells.values())]
goals = {"GET": 0.7, "SET": 0.5}
head = ["test", "pipeline"] + [f"{s} req/s" for s in systems]
head += [f"{s}/redis" for s in systems if s != "redis" and "redis" in systems]
head += ["p50 / p99 ms (" + ", ".join(systems) + ")", "goal (yun)"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * 2 + "---:|" * (len(head) - 4) + "---|---|")
order = {"SET": 0, "GET": 1, "INCR": 2}
for (test, pipeline) in sorted(cells, key=lambda c: (c[1], order.get(c[0], 9), c[0])):
    by = cells[(test, pipeline)]
    med = lambda s, k: statistics.median(r[k] for r in by[s]) if s in by else None
    rps = {s: med(s, "rps") for s in systems}
    line = [test, "none" if pipeline == 1 else str(pipeline)]
    line += [f"{rps[s]:,.0f}" if rps[s] else "-" for s in systems]
    ratios = {s: rps[s] / rps["redis"] for s in systems if s != "redis" and rps.get(s) and rps.get("redis")}
    line += [f"{ratios[s]:.2f}×" if s in ratios else "-" for s in systems if s != "redis" and "redis" in systems]
    line.append("; ".join(f"{med(s, 'p50_ms'):.2f} / {med(s, 'p99_ms'):.2f}" if s in by else "-" for s in systems))
    goal, ratio = goals.get(test), ratios.get("yun")
    line.append("-" if goal is None or ratio is None else (f"≥{goal}× met" if ratio >= goal else f"≥{goal}× missed"))
    print("| " + " | ".join(line) + " |")
loads = [r["loadavg_1m"] for r in rows]
print(f"\nmedians of {max(r['round'] for r in rows) + 1} rounds; 1-minute load average before the runs: "
      f"{min(loads):.2f}-{max(loads):.2f}")
for f in floors:
    print(f"4 KiB write + fdatasync {f['label']} the runs: p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms; "
          f"durable SET with {clients} clients, one request each in flight, is at most "
          f"~{clients / f['p50_ms'] * 1000:,.0f}/s")
PY
