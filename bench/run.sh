#!/usr/bin/env bash
# yun vs `wasmtime serve`: throughput, latency and cold paths, same machine, same run.
#
#   bash bench/run.sh
#
# Installs what is missing (wrk from Debian, wasmtime-cli 48.0.8 from crates.io), builds yun
# (release) and the guests (Rust, JavaScript, Python hello components), then:
#
#  1. Throughput: for each guest and each process model, the same wrk load against yun and
#     against `wasmtime serve`, alternating servers round by round (A B, B A, A B, ...), a
#     warm-up before every measured run; the table shows the median of the rounds.
#       per-request: yun deploy --instance per-request   vs  wasmtime serve -Scli
#       reuse:       yun deploy --instance reuse         vs  wasmtime serve -Scli --max-instance-reuse-count 10000
#  2. Restart: stop yun, start it on the same data directory, time the first request
#     (lazy load of precompiled code); compared with `wasmtime serve` start-to-first-200 with a
#     warm compilation cache.
#  3. Deploy: from starting `yun deploy` (of bytes yun has never seen, so it compiles) to the
#     first 200; compared with `wasmtime serve` start-to-first-200 with no compilation cache.
#
# Raw results go to bench/results/<UTC time>/; the tables go to stdout and table.md there.
# Only 127.0.0.1 is ever targeted. Knobs (environment):
#   BENCH_GUESTS="rust js py"   BENCH_ROUNDS=3   BENCH_DURATION=10 (s)   BENCH_WARMUP=2 (s)
#   BENCH_THREADS=2   BENCH_CONNECTIONS=4   BENCH_RESTART_REPS=10   BENCH_DEPLOY_REPS=10
#   BENCH_DEPLOY_REPS_BIG=3 (JS/Python components take ~25 s of CPU to compile)
#   BENCH_YUN_LOG (YUN_LOG for the yun server; yun's default, info, if unset)
#   BENCH_SKIP_BUILD=1 (use the existing binaries and .wasm files)   YUN_BIN   WASMTIME_BIN
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

GUESTS="${BENCH_GUESTS:-rust js py}"
ROUNDS="${BENCH_ROUNDS:-3}"
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-4}"
RESTART_REPS="${BENCH_RESTART_REPS:-10}"
DEPLOY_REPS="${BENCH_DEPLOY_REPS:-10}"
DEPLOY_REPS_BIG="${BENCH_DEPLOY_REPS_BIG:-3}"
WASMTIME_VERSION=48.0.8
REUSE_COUNT=10000

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/$RUN_ID"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yun-bench.XXXXXX")"
START_TIME=$SECONDS

log() { printf '[bench %s +%ss] %s\n' "$(date +%T)" "$((SECONDS - START_TIME))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- process bookkeeping
SERVER_PIDS=()

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
  for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_200() { # url timeout_s pid
  local url=$1 timeout=$2 pid=$3 deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$url" || true)" == 200 ]] && return 0
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null || die "$1 is required ($2)"; }
need python3 "for timing and the report"
need curl "to probe the servers"
need cargo "to build yun and the Rust guests"

if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq wrk >/dev/null
fi
WASMTIME="${WASMTIME_BIN:-$(command -v wasmtime || true)}"
if [[ -z "$WASMTIME" ]]; then
  log "installing wasmtime-cli $WASMTIME_VERSION (cargo install; takes a while)"
  nice -n 19 cargo install --locked "wasmtime-cli@$WASMTIME_VERSION"
  WASMTIME="$(command -v wasmtime || echo "$HOME/.cargo/bin/wasmtime")"
fi
if ! "$WASMTIME" --version | grep -q " $WASMTIME_VERSION"; then
  log "warning: $("$WASMTIME" --version) is not wasmtime $WASMTIME_VERSION, the version yun embeds"
fi

# ---------------------------------------------------------------- builds
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
YUN="${YUN_BIN:-$TARGET_DIR/release/yun}"
EX_TARGET_DIR="$(cd examples && cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

declare -A WASM=(
  [rust]="$EX_TARGET_DIR/wasm32-wasip2/release/hello_rust.wasm"
  [js]="$ROOT/examples/hello-js/hello_js.wasm"
  [py]="$ROOT/examples/hello-py/hello_py.wasm"
)

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building yun (release)"
  nice -n 19 cargo build --release --locked --bin yun 2>&1 | tail -n 3 >&2
  for g in $GUESTS; do
    case $g in
      rust)
        log "building the Rust guest"
        rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2
        (cd examples && nice -n 19 cargo build --release --locked --target wasm32-wasip2 -p hello-rust 2>&1 | tail -n 2 >&2)
        ;;
      js | py)
        dir="$ROOT/examples/hello-$g"
        if [[ -f "${WASM[$g]}" ]] && [[ -z "$(find "$dir" -path "$dir/node_modules" -prune -o -newer "${WASM[$g]}" -type f \( -name 'app.*' -o -name '*.wit' -o -name 'package*.json' -o -name requirements.txt \) -print)" ]]; then
          log "the $g guest is up to date"
        else
          log "building the $g guest"
          nice -n 19 bash "$dir/build.sh" 2>&1 | grep -v 'Unknown user config' | tail -n 3 >&2 || true
        fi
        ;;
      *) die "unknown guest '$g' (rust, js, py)" ;;
    esac
  done
fi
[[ -x "$YUN" ]] || die "no yun binary at $YUN"
AVAILABLE=""
for g in $GUESTS; do
  if [[ -f "${WASM[$g]}" ]]; then AVAILABLE+="$g "; else log "warning: ${WASM[$g]} missing; skipping the $g guest"; fi
done
GUESTS="$AVAILABLE"
[[ -n "$GUESTS" ]] || die "no guest component to benchmark"

{
  echo "run: $RUN_ID"
  echo "command: bash bench/run.sh"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -sr)"
  echo "yun: $("$YUN" --version) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes'))"
  echo "wasmtime: $("$WASMTIME" --version)"
  echo "wrk: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s after a ${WARMUP}s warm-up; $ROUNDS rounds; median"
  echo "YUN_LOG: ${BENCH_YUN_LOG:-(default)}"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  for g in $GUESTS; do echo "guest $g: ${WASM[$g]} ($(stat -c %s "${WASM[$g]}") bytes)"; done
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# wasmtime's compilation cache, private to this run (the throughput servers and the warm
# restart comparison use it; the deploy comparison runs with -C cache=n).
printf '[cache]\ndirectory = "%s"\n' "$WORK/wasmtime-cache" >"$WORK/wasmtime-cache.toml"
WT_CACHE=(-C "cache-config=$WORK/wasmtime-cache.toml")

# ---------------------------------------------------------------- yun helpers
YUN_PID=""
YUN_PORT=""
yun_env() { # run a yun client command against the current server
  YUN_URL="http://127.0.0.1:$YUN_PORT" YUN_DATA_DIR="$1" "$YUN" "${@:2}"
}

start_yun() { # data_dir log
  local data=$1 logf=$2 i
  YUN_PORT="$(free_port)"
  if [[ -n "${BENCH_YUN_LOG:-}" ]]; then export YUN_LOG="$BENCH_YUN_LOG"; fi
  "$YUN" up --data-dir "$data" --listen "127.0.0.1:$YUN_PORT" >>"$logf" 2>&1 &
  YUN_PID=$!
  SERVER_PIDS+=("$YUN_PID")
  for ((i = 0; i < 600; i++)); do
    grep -qs "listening on http://127.0.0.1:$YUN_PORT" "$logf" && return 0
    kill -0 "$YUN_PID" 2>/dev/null || { tail -n 20 "$logf" >&2; die "yun up exited"; }
    sleep 0.1
  done
  die "yun up did not start listening within 60 s (see $logf)"
}

stop_yun() { stop_pid "$YUN_PID"; YUN_PID=""; }

start_wasmtime() { # port log wasm [extra serve flags...]; sets WT_PID
  local port=$1 logf=$2 wasm=$3
  "$WASMTIME" serve -Scli "${WT_CACHE[@]}" --addr "127.0.0.1:$port" "${@:4}" "$wasm" >>"$logf" 2>&1 &
  WT_PID=$!
  SERVER_PIDS+=("$WT_PID")
  wait_200 "http://127.0.0.1:$port/" 300 "$WT_PID" || { tail -n 20 "$logf" >&2; die "wasmtime serve did not answer 200"; }
}

check_body() { # url
  local body
  body="$(curl -s --max-time 60 "$1")"
  [[ "$body" == "Hello, world!" ]] || die "unexpected body from $1: '$body'"
}

# ---------------------------------------------------------------- 1. throughput
load() { # guest mode server round url: warm-up, then the measured run -> throughput.jsonl
  local guest=$1 mode=$2 server=$3 round=$4 url=$5
  local label="$guest-$mode-$server-$round" line
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >"$OUT/wrk-$label.warmup.txt" 2>&1
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$BENCH/wrk-report.lua" "$url" \
    >"$OUT/wrk-$label.txt" 2>&1
  line="$(grep '^{"requests"' "$OUT/wrk-$label.txt" | tail -n1)"
  [[ -n "$line" ]] || die "no report from wrk (see $OUT/wrk-$label.txt)"
  python3 - "$line" "$guest" "$mode" "$server" "$round" >>"$OUT/throughput.jsonl" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
r.update(guest=sys.argv[2], mode=sys.argv[3], server=sys.argv[4], round=int(sys.argv[5]))
r["loadavg_1m"] = float(open("/proc/loadavg").read().split()[0])
print(json.dumps(r))
PY
  log "  $label: $(python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
print(f"{r['rps']:.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, "
      f"non-2xx/3xx {r['err_status']}, socket errors {errors}")
PY
)"
}

log "throughput: starting yun"
TP_DATA="$WORK/yun-throughput"
start_yun "$TP_DATA" "$OUT/yun-throughput.log"
for g in $GUESTS; do
  for mode in per-request reuse; do
    log "deploying tp-$g-$mode"
    yun_env "$TP_DATA" deploy "tp-$g-$mode" "${WASM[$g]}" --instance "$mode" >>"$OUT/deploys.log" 2>&1 \
      || { tail -n 20 "$OUT/deploys.log" >&2; die "yun deploy tp-$g-$mode failed"; }
    check_body "http://127.0.0.1:$YUN_PORT/fn/tp-$g-$mode/"
  done
done

for g in $GUESTS; do
  for mode in per-request reuse; do
    wt_port="$(free_port)"
    if [[ $mode == reuse ]]; then extra=(--max-instance-reuse-count "$REUSE_COUNT"); else extra=(); fi
    log "throughput $g/$mode: starting wasmtime serve ${extra[*]:-}"
    start_wasmtime "$wt_port" "$OUT/wasmtime-$g-$mode.log" "${WASM[$g]}" "${extra[@]}"
    check_body "http://127.0.0.1:$wt_port/"
    yun_url="http://127.0.0.1:$YUN_PORT/fn/tp-$g-$mode/"
    wt_url="http://127.0.0.1:$wt_port/"
    for ((r = 1; r <= ROUNDS; r++)); do
      if ((r % 2 == 1)); then order=(yun wasmtime); else order=(wasmtime yun); fi
      for s in "${order[@]}"; do
        if [[ $s == yun ]]; then url=$yun_url; else url=$wt_url; fi
        load "$g" "$mode" "$s" "$r" "$url"
      done
    done
    stop_pid "$WT_PID"
  done
done
stop_yun

# ---------------------------------------------------------------- 2. restart (warm code on disk)
COLD_DATA="$WORK/yun-cold"
log "restart: deploying cold-* on a fresh data directory"
start_yun "$COLD_DATA" "$OUT/yun-cold.log"
for g in $GUESTS; do
  yun_env "$COLD_DATA" deploy "cold-$g" "${WASM[$g]}" --instance reuse >>"$OUT/deploys.log" 2>&1 \
    || { tail -n 20 "$OUT/deploys.log" >&2; die "yun deploy cold-$g failed"; }
done
stop_yun

for g in $GUESTS; do
  log "restart $g: $RESTART_REPS x (yun up on the same data dir -> first 200), then wasmtime serve (warm cache)"
  for ((i = 1; i <= RESTART_REPS; i++)); do
    port="$(free_port)"
    YUN_LOG="${BENCH_YUN_LOG:-info}" python3 "$BENCH/coldstart.py" serve "http://127.0.0.1:$port/fn/cold-$g/" "$OUT/yun-restart.log" -- \
      "$YUN" up --data-dir "$COLD_DATA" --listen "127.0.0.1:$port" >>"$OUT/restart-$g-yun.jsonl"
  done
  for ((i = 1; i <= RESTART_REPS; i++)); do
    port="$(free_port)"
    python3 "$BENCH/coldstart.py" serve "http://127.0.0.1:$port/" "$OUT/wasmtime-restart.log" -- \
      "$WASMTIME" serve -Scli "${WT_CACHE[@]}" --addr "127.0.0.1:$port" "${WASM[$g]}" >>"$OUT/restart-$g-wasmtime.jsonl"
  done
done

# ---------------------------------------------------------------- 3. deploy -> first response
log "deploy: starting yun"
start_yun "$COLD_DATA" "$OUT/yun-deploy.log"
for g in $GUESTS; do
  reps=$DEPLOY_REPS
  [[ $g == rust ]] || reps=$DEPLOY_REPS_BIG
  log "deploy $g: $reps x (yun deploy of new bytes -> first 200), then wasmtime serve -C cache=n"
  for ((i = 1; i <= reps; i++)); do
    wasm="$WORK/dep-$g-$i.wasm"
    python3 "$BENCH/coldstart.py" uniq "${WASM[$g]}" "$wasm" "$RUN_ID-$g-$i"
    python3 "$BENCH/coldstart.py" deploy "http://127.0.0.1:$YUN_PORT/fn/dep-$g-$i/" -- \
      env YUN_URL="http://127.0.0.1:$YUN_PORT" YUN_DATA_DIR="$COLD_DATA" "$YUN" deploy "dep-$g-$i" "$wasm" --instance reuse \
      >>"$OUT/deploy-$g-yun.jsonl"
    yun_env "$COLD_DATA" rm "dep-$g-$i" >/dev/null 2>&1 || true
  done
  for ((i = 1; i <= reps; i++)); do
    port="$(free_port)"
    python3 "$BENCH/coldstart.py" serve "http://127.0.0.1:$port/" "$OUT/wasmtime-deploy.log" -- \
      "$WASMTIME" serve -Scli -C cache=n --addr "127.0.0.1:$port" "${WASM[$g]}" >>"$OUT/deploy-$g-wasmtime.jsonl"
  done
done
stop_yun

# ---------------------------------------------------------------- report
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
python3 "$BENCH/report.py" "$OUT" | tee "$OUT/table.md"
log "done in $((SECONDS - START_TIME)) s; raw results in ${OUT#"$ROOT/"}"
