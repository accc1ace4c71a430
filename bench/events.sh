#!/usr/bin/env bash
# Durable events: asynchronous invocations and queues, against the disk's fsync floor.
#
#   bash bench/events.sh
#
# Builds yun (release, in $CARGO_TARGET_DIR, default ~/.cache/yun/target as in .ci/run) and
# examples/hello-rust (wasm32-wasip2), all `nice -n 19` (BENCH_SKIP_BUILD=1 uses the existing
# binaries), starts `yun up --listen 127.0.0.1:0` on a fresh data directory, deploys the
# component as a no-op function and runs bench/events.py against it, in one run:
#
#  1. the floor: write 100 bytes + fsync in a loop (one thread, BENCH_FLOOR_S seconds) on the
#     data directory's filesystem: every event costs at least one fsync;
#  2. asynchronous invocations: BENCH_N events (`POST /fn/NAME/`, `x-yun-invocation-type: event`)
#     from BENCH_CLIENTS concurrent clients, after BENCH_WARMUP unmeasured ones; the end-to-end
#     rate (N / first send -> last record `succeeded`, found by polling
#     /v1/functions/NAME/invocations), the enqueue rate (202s/s) and updated_ms - created_ms;
#  3. a queue without a function: BENCH_QUEUE_N single sends, as many messages in batches of
#     10, then receive (10) + delete by BENCH_CLIENTS clients until it is empty;
#  4. the floor again.
# For every phase it also records yun's CPU time and the disk's completed flushes
# (/sys/dev/block/.../stat, the whole disk: run it on a quiet machine).
#
# Raw results go to bench/results/<UTC time>-events/ (env.txt, results.json, yun.log); the table
# goes to stdout and table.md there. Only 127.0.0.1 is ever targeted. Knobs (environment):
#   BENCH_N=5000   BENCH_CLIENTS=16   BENCH_QUEUE_N=5000   BENCH_WARMUP=100   BENCH_FLOOR_S=5
#   BENCH_TIMEOUT=600 (s to wait for delivery)   BENCH_YUN_LOG (YUN_LOG for the server)
#   BENCH_SKIP_BUILD=1 (use the existing binaries)   YUN_BIN   CARGO_TARGET_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

N="${BENCH_N:-5000}"
CLIENTS="${BENCH_CLIENTS:-16}"
QUEUE_N="${BENCH_QUEUE_N:-5000}"
WARMUP="${BENCH_WARMUP:-100}"
FLOOR_S="${BENCH_FLOOR_S:-5}"
TIMEOUT="${BENCH_TIMEOUT:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yun/target}"

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/$RUN_ID-events"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yun-events-bench.XXXXXX")"
START_TIME=$SECONDS

log() { printf '[events-bench %s +%ss] %s\n' "$(date +%T)" "$((SECONDS - START_TIME))" "$*" >&2; }
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
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null || die "$1 is required ($2)"; }
need python3 "for the load generator and the report"
need curl "to probe the server"
need cargo "to build yun and the guest"

# ---------------------------------------------------------------- builds
YUN="${YUN_BIN:-$CARGO_TARGET_DIR/release/yun}"
EX_TARGET_DIR="$ROOT/examples/target"
WASM="$EX_TARGET_DIR/wasm32-wasip2/release/hello_rust.wasm"
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building yun (release; the first build of wasmtime takes 10-15 min on 2 cores)"
  nice -n 19 cargo build --release --locked --bin yun 2>&1 | tail -n 2 >&2
  log "building the Rust guest (examples/hello-rust)"
  rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2
  (cd examples && CARGO_TARGET_DIR="$EX_TARGET_DIR" nice -n 19 cargo build --release --locked \
    --target wasm32-wasip2 -p hello-rust 2>&1 | tail -n 2 >&2)
fi
[[ -x "$YUN" ]] || die "no yun binary at $YUN"
[[ -f "$WASM" ]] || die "no component at $WASM"

DATA="$WORK/data"
mkdir -p "$DATA"
{
  echo "run: $RUN_ID-events"
  echo "command: bash bench/events.sh (BENCH_N=$N BENCH_CLIENTS=$CLIENTS BENCH_QUEUE_N=$QUEUE_N BENCH_WARMUP=$WARMUP BENCH_FLOOR_S=$FLOOR_S)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -sr)"
  echo "filesystem: $(df -T "$DATA" | awk 'NR == 2 {print $1, $2}') ($(findmnt -no OPTIONS --target "$DATA" 2>/dev/null || echo '?'))"
  echo "yun: $("$YUN" --version) at $YUN${YUN_BIN:+ (YUN_BIN: the git below is the tree's, not necessarily the binary's)} (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes in the tree'); binary built $(date -u -r "$YUN" +%FT%TZ))"
  echo "guest: $WASM ($(stat -c %s "$WASM") bytes)"
  echo "python3: $(python3 --version 2>&1)"
  echo "YUN_LOG: ${BENCH_YUN_LOG:-(default)}"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# ---------------------------------------------------------------- yun
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
[[ -s "$DATA/admin-token" ]] || die "no admin token in $DATA/admin-token"
yun() { "$YUN" --url "$YUN_URL" --data-dir "$DATA" "$@"; }

FN=ev-noop
log "deploying $FN ($WASM)"
yun deploy "$FN" "$WASM" >>"$OUT/deploys.log" 2>&1 || { tail -n 20 "$OUT/deploys.log" >&2; die "yun deploy $FN failed"; }
body="$(curl -s --max-time 60 "$YUN_URL/fn/$FN/")"
[[ "$body" == *"Hello, world!"* ]] || die "unexpected answer from $YUN_URL/fn/$FN/: '$body'"

# ---------------------------------------------------------------- the measurements
log "running bench/events.py (floor, $N async events, queue of 2 x $QUEUE_N messages, floor)"
python3 "$BENCH/events.py" --url "$YUN_URL" --data-dir "$DATA" --function "$FN" --pid "$YUN_PID" \
  --out "$OUT" --n "$N" --clients "$CLIENTS" --queue-n "$QUEUE_N" --warmup "$WARMUP" \
  --floor-s "$FLOOR_S" --timeout "$TIMEOUT" >"$OUT/table.md"
yun --json describe "$FN" >"$OUT/describe-$FN.json" 2>>"$OUT/deploys.log" || true
ls -l "$DATA" >"$OUT/data-dir.txt" 2>&1 || true
stop_pid "$YUN_PID"

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
cat "$OUT/table.md"
log "done in $((SECONDS - START_TIME)) s; raw results in ${OUT#"$ROOT/"}"
