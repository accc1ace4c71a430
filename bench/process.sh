#!/usr/bin/env bash
# Process functions: cold start and warm latency through yun, against the same programs run
# directly on the same machine in the same run.
#
#   bash bench/process.sh
#
# Two programs, each deployed with `yun deploy NAME DIR --runtime process --mode http`:
#   native  examples/native-http (a std-only Rust HTTP server), DIR = the built binary alone,
#           --command ./native-http
#   python  examples/python-http/app.py (http.server.ThreadingHTTPServer), --command "python3 app.py"
#   python-nodelay (warm only)  the same app.py run by bench/process_nodelay.py, which turns on
#           TCP_NODELAY (http.server sends head and body separately; with Nagle on, delayed ACKs
#           stall keep-alive responses by ~40 ms, directly and through yun alike)
#
#  1. Cold start: with --idle-timeout 1s, after each sample wait until the instance was stopped
#     (BENCH_SETTLE seconds since the request, and no process of the function left), then time one
#     `GET /fn/NAME/` on a new connection, request to full response (client's wall clock).
#     The floor: the same program started directly (no yun, no sandbox, no /bin/sh) with PORT set,
#     from spawn until the end of its first response to `GET /`, connecting every ~1 ms.
#     Floor and yun samples alternate (floor, yun; yun, floor; ...). Goal: yun p50 <= 1.5x floor p50.
#  2. Warm latency: one resident instance, one connection with keep-alive, sequential requests:
#     `wrk -t1 -c1 -d${BENCH_WARM_DURATION}s --latency` through yun and directly to the program on
#     a free loopback port, alternating round by round after a warm-up; median of the rounds.
#     Goal: added p50 (yun p50 - direct p50) <= 100 us.
#
# yun needs root here (user/pid/mount/net namespaces, cgroups). Raw results go to
# bench/results/<UTC time>-process/; the tables go to stdout and table.md there.
# Only 127.0.0.1 is ever targeted. Knobs (environment):
#   BENCH_PROGRAMS="native python" (cold)   BENCH_WARM_PROGRAMS="native python python-nodelay"
#   BENCH_COLD_N=20   BENCH_SETTLE=2 (s)   BENCH_IDLE=1s
#   BENCH_WARM_ROUNDS=3   BENCH_WARM_DURATION=10 (s)   BENCH_WARMUP=2 (s)
#   BENCH_YUN_LOG (YUN_LOG for the yun server; yun's default, info, if unset)
#   BENCH_SKIP_BUILD=1 (use the existing binaries)   YUN_BIN
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

PROGRAMS="${BENCH_PROGRAMS:-native python}"
WARM_PROGRAMS="${BENCH_WARM_PROGRAMS:-native python python-nodelay}"
COLD_N="${BENCH_COLD_N:-20}"
SETTLE="${BENCH_SETTLE:-2}"
IDLE="${BENCH_IDLE:-1s}"
WARM_ROUNDS="${BENCH_WARM_ROUNDS:-3}"
WARM_DURATION="${BENCH_WARM_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/$RUN_ID-process"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yun-process-bench.XXXXXX")"
chmod 0755 "$WORK"
START_TIME=$SECONDS

log() { printf '[process-bench %s +%ss] %s\n' "$(date +%T)" "$((SECONDS - START_TIME))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- process bookkeeping
PIDS=()

stop_pid() { # pid: SIGTERM, then SIGKILL after 30 s
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "pid $pid ignored SIGTERM for 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  # yun's data directory holds read-only mounts only inside the instances' own namespaces;
  # nothing is mounted in ours, so removing it is safe.
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fg() { # run a command in the background and wait for it: bash runs the INT/TERM trap only once a
  # foreground child has ended, and a wait is interrupted at once; the EXIT trap then stops it
  "$@" &
  local pid=$!
  PIDS+=("$pid")
  wait "$pid"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_200() { # url timeout_s pid
  local url=$1 deadline=$((SECONDS + $2)) pid=$3
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$url" || true)" == 200 ]] && return 0
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null || die "$1 is required ($2)"; }
need python3 "for timing and the report"
need curl "to probe the servers"
need cargo "to build yun and examples/native-http"
[[ $(id -u) -eq 0 ]] || die "run as root: yun's sandbox needs it for namespaces and cgroups"
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
for p in $PROGRAMS; do
  case $p in native | python) ;; *) die "unknown program '$p' (native, python)" ;; esac
done
for p in $WARM_PROGRAMS; do
  case $p in native | python | python-nodelay) ;; *) die "unknown program '$p' (native, python, python-nodelay)" ;; esac
done

# ---------------------------------------------------------------- builds
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
YUN="${YUN_BIN:-$TARGET_DIR/release/yun}"
NATIVE_BIN="$ROOT/examples/target/release/native-http"
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building yun (release)"
  nice -n 19 cargo build --release --locked --bin yun 2>&1 | tail -n 2 >&2
  log "building examples/native-http (release)"
  nice -n 19 cargo build --release --locked --manifest-path examples/native-http/Cargo.toml \
    --target-dir examples/target 2>&1 | tail -n 2 >&2
fi
[[ -x "$YUN" ]] || die "no yun binary at $YUN"
[[ -x "$NATIVE_BIN" ]] || die "no native-http binary at $NATIVE_BIN"

# The deployed directories, also where the direct runs start (same files, same cwd layout).
declare -A APP_DIR=([native]="$WORK/app-native" [python]="$WORK/app-python" [python-nodelay]="$WORK/app-python-nodelay")
declare -A APP_CMD=([native]="./native-http" [python]="python3 app.py" [python-nodelay]="python3 nodelay.py")
declare -A APP_EXPECT=([native]="Hello, world!" [python]='"runtime": "python"' [python-nodelay]='"runtime": "python"')
mkdir -p "${APP_DIR[native]}" "${APP_DIR[python]}" "${APP_DIR[python-nodelay]}"
cp "$NATIVE_BIN" "${APP_DIR[native]}/native-http"
cp "$ROOT/examples/python-http/app.py" "${APP_DIR[python]}/app.py"
cp "$ROOT/examples/python-http/app.py" "${APP_DIR[python-nodelay]}/app.py"
cp "$BENCH/process_nodelay.py" "${APP_DIR[python-nodelay]}/nodelay.py"
chmod -R a+rX "$WORK"/app-*

{
  echo "run: $RUN_ID-process"
  echo "command: bash bench/process.sh"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -sr)"
  echo "yun: $("$YUN" --version) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes'))"
  echo "python3 (sandbox PATH): $(PATH=/usr/local/bin:/usr/bin:/bin command -v python3) $(PATH=/usr/local/bin:/usr/bin:/bin python3 --version 2>&1)"
  echo "native-http: $(stat -c %s "$NATIVE_BIN") bytes"
  echo "wrk: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
  echo "cold: n=$COLD_N per side, idle timeout $IDLE, settle ${SETTLE}s; warm: wrk -t1 -c1 -d${WARM_DURATION}s after ${WARMUP}s, $WARM_ROUNDS rounds, median"
  echo "YUN_LOG: ${BENCH_YUN_LOG:-(default)}"
  echo "nice: $(nice)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# ---------------------------------------------------------------- yun
DATA="$WORK/data"
if [[ -n "${BENCH_YUN_LOG:-}" ]]; then export YUN_LOG="$BENCH_YUN_LOG"; fi
log "starting yun"
"$YUN" up --listen 127.0.0.1:0 --data-dir "$DATA" >"$OUT/yun.log" 2>&1 &
YUN_PID=$!
PIDS+=("$YUN_PID")
YUN_URL=""
for ((i = 0; i < 600; i++)); do
  YUN_URL="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$OUT/yun.log" | head -n1 | cut -d' ' -f3 || true)"
  [[ -n "$YUN_URL" ]] && break
  kill -0 "$YUN_PID" 2>/dev/null || { tail -n 20 "$OUT/yun.log" >&2; die "yun up exited"; }
  sleep 0.1
done
[[ -n "$YUN_URL" ]] || die "yun up did not print its address within 60 s (see $OUT/yun.log)"
[[ "$YUN_URL" == http://127.0.0.1:* ]] || die "yun listens on $YUN_URL, not on 127.0.0.1"
grep -i sandbox "$OUT/yun.log" >&2 || true
yun() { "$YUN" --url "$YUN_URL" --data-dir "$DATA" "$@"; }

MARK="YUN_BENCH_RUN=$RUN_ID"
deploy() { # kind program idle
  local kind=$1 p=$2 idle=$3 body
  log "deploying $kind-$p (--idle-timeout $idle)"
  yun deploy "$kind-$p" "${APP_DIR[$p]}" --runtime process --mode http --command "${APP_CMD[$p]}" \
    --idle-timeout "$idle" --env "$MARK-$kind-$p" >>"$OUT/deploys.log" 2>&1 \
    || { tail -n 20 "$OUT/deploys.log" >&2; die "yun deploy $kind-$p failed"; }
  body="$(curl -s --max-time 30 "$YUN_URL/fn/$kind-$p/")"
  [[ "$body" == *"${APP_EXPECT[$p]}"* ]] || die "unexpected answer from $kind-$p: $body"
}
for p in $PROGRAMS; do deploy cold "$p" "$IDLE"; done
for p in $WARM_PROGRAMS; do deploy warm "$p" 30m; done

# ---------------------------------------------------------------- 1. cold start
for p in $PROGRAMS; do
  log "cold $p: $COLD_N floor and $COLD_N yun samples, alternating (~$((COLD_N * 2 * ${SETTLE%.*} + COLD_N)) s)"
  fg python3 "$BENCH/process_timing.py" cold --url "$YUN_URL/fn/cold-$p/" --marker "$MARK-cold-$p" \
    --dir "${APP_DIR[$p]}" --cmd "${APP_CMD[$p]}" --n "$COLD_N" --settle "$SETTLE" \
    --expect "${APP_EXPECT[$p]}" >"$OUT/cold-$p.jsonl" 2>"$OUT/cold-$p.progress.txt" \
    || { tail -n 5 "$OUT/cold-$p.progress.txt" >&2; die "cold $p failed"; }
  tail -n 2 "$OUT/cold-$p.progress.txt" >&2
  # The app's startup line ("listening on ...") with the timestamp yun read it at, attributed to
  # the request that started the instance: splits a cold start into before/after the listen.
  yun --json logs "cold-$p" --limit 100000 >"$OUT/logs-cold-$p.jsonl" 2>>"$OUT/deploys.log" || true
done

# ---------------------------------------------------------------- 2. warm latency
wrk_run() { # program server round url -> warm.jsonl
  local p=$1 server=$2 round=$3 url=$4 label="$1-$2-$3" line
  fg wrk -t1 -c1 -d"${WARMUP}s" "$url" >"$OUT/wrk-$label.warmup.txt" 2>&1
  fg wrk -t1 -c1 -d"${WARM_DURATION}s" --latency -s "$BENCH/wrk-report.lua" "$url" >"$OUT/wrk-$label.txt" 2>&1
  line="$(grep '^{"requests"' "$OUT/wrk-$label.txt" | tail -n1)"
  [[ -n "$line" ]] || die "no report from wrk (see $OUT/wrk-$label.txt)"
  python3 - "$line" "$p" "$server" "$round" >>"$OUT/warm.jsonl" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
r.update(program=sys.argv[2], server=sys.argv[3], round=int(sys.argv[4]))
r["loadavg_1m"] = float(open("/proc/loadavg").read().split()[0])
print(json.dumps(r))
PY
  log "  $label: $(python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"] + r["err_status"]
print(f"{r['rps']:.0f} req/s, p50 {r['p50_us']} us, p99 {r['p99_us']} us, errors {errors}")
PY
)"
}

for p in $WARM_PROGRAMS; do
  port="$(free_port)"
  log "warm $p: starting it directly on 127.0.0.1:$port"
  (cd "${APP_DIR[$p]}" && exec env -i HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 PYTHONUNBUFFERED=1 \
    PORT="$port" ${APP_CMD[$p]}) >"$OUT/direct-$p.log" 2>&1 &
  direct_pid=$!
  PIDS+=("$direct_pid")
  wait_200 "http://127.0.0.1:$port/" 30 "$direct_pid" || die "$p did not answer directly on port $port"
  yun_url="$YUN_URL/fn/warm-$p/"
  direct_url="http://127.0.0.1:$port/"
  body="$(curl -s --max-time 30 "$yun_url")"
  [[ "$body" == *"${APP_EXPECT[$p]}"* ]] || die "unexpected answer from warm-$p: $body"
  for ((r = 1; r <= WARM_ROUNDS; r++)); do
    if ((r % 2 == 1)); then order=(yun direct); else order=(direct yun); fi
    for s in "${order[@]}"; do
      if [[ $s == yun ]]; then url=$yun_url; else url=$direct_url; fi
      wrk_run "$p" "$s" "$r" "$url"
    done
  done
  stop_pid "$direct_pid"
done

stop_pid "$YUN_PID"

# ---------------------------------------------------------------- report
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
python3 "$BENCH/process_report.py" "$OUT" | tee "$OUT/table.md"
log "done in $((SECONDS - START_TIME)) s; raw results in ${OUT#"$ROOT/"}"
