#!/usr/bin/env bash
# What recording every invocation costs on the warm hello-world path: the same wrk load against
# yun with recording on (the default: invocation records, REPORT lines, metrics, usage), on with
# OTLP export to a collector, and off (`yun up --recording off`), in the same run, servers
# alternating round by round; `wasmtime serve` as the reference.
#
#   bash bench/recording.sh
#
# Goal (issue 9): recording costs at most 5% of throughput. Raw results go to
# bench/results/<UTC time>-recording/; the table goes to stdout and table.md there.
# Knobs: BENCH_ROUNDS=5 BENCH_DURATION=10 BENCH_WARMUP=2 BENCH_THREADS=2 BENCH_CONNECTIONS=4
#        BENCH_MODES="reuse per-request" BENCH_SKIP_BUILD=1 YUN_BIN WASMTIME_BIN BENCH_YUN_LOG
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

ROUNDS="${BENCH_ROUNDS:-5}"
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-4}"
MODES="${BENCH_MODES:-reuse per-request}"
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-recording"
OUT="$BENCH/results/$RUN_ID"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yun-bench.XXXXXX")"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

need python3 "for the collector and the report"
need curl "to probe the servers"
need cargo "to build yun and the guest"
need_wrk

YUN="${YUN_BIN:-$(target_dir)/release/yun}"
WASM="$(cd examples && target_dir)/wasm32-wasip2/release/hello_rust.wasm"
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building yun (release) and the Rust hello guest"
  nice -n 19 cargo build --release --locked --bin yun 2>&1 | tail -n 2 >&2
  rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2
  (cd examples && nice -n 19 cargo build --release --locked --target wasm32-wasip2 -p hello-rust -p echo 2>&1 | tail -n 2 >&2)
fi
[[ -x "$YUN" ]] || die "no yun binary at $YUN"
[[ -f "$WASM" ]] || die "no guest at $WASM"
WASMTIME="${WASMTIME_BIN:-$(command -v wasmtime || true)}"

{
  echo "run: $RUN_ID"
  echo "command: bash bench/recording.sh"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "yun: $("$YUN" --version) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "wasmtime: ${WASMTIME:+$("$WASMTIME" --version)}"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s after a ${WARMUP}s warm-up; $ROUNDS rounds; median"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# A collector that accepts OTLP/HTTP and throws the spans away: what is measured is yun's side.
COLLECTOR_PORT="$(free_port)"
python3 - "$COLLECTOR_PORT" >"$OUT/collector.log" 2>&1 <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
SERVER_PIDS+=($!)

declare -A URL
declare -A PID
for config in on otlp off; do
  case $config in
    on) flags=() ;;
    otlp) flags=(--otlp-endpoint "http://127.0.0.1:$COLLECTOR_PORT") ;;
    off) flags=(--recording off) ;;
  esac
  start_yun "$WORK/yun-$config" "$OUT/yun-$config.log" "${flags[@]}"
  PID[$config]=$YUN_PID
  for mode in $MODES; do
    YUN_URL="http://127.0.0.1:$YUN_PORT" YUN_DATA_DIR="$WORK/yun-$config" \
      "$YUN" deploy "hello-$mode" "$WASM" --instance "$mode" >>"$OUT/deploys.log" 2>&1 \
      || { tail -n 20 "$OUT/deploys.log" >&2; die "deploying on yun ($config) failed"; }
    URL[$config-$mode]="http://127.0.0.1:$YUN_PORT/fn/hello-$mode/"
    [[ "$(curl -s "${URL[$config-$mode]}")" == "Hello, world!" ]] || die "yun ($config) does not say hello"
  done
done
if [[ -n "$WASMTIME" ]]; then
  for mode in $MODES; do
    port="$(free_port)"
    extra=()
    [[ $mode == reuse ]] && extra=(--max-instance-reuse-count 10000)
    "$WASMTIME" serve -Scli --addr "127.0.0.1:$port" "${extra[@]}" "$WASM" >>"$OUT/wasmtime.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_200 "http://127.0.0.1:$port/" 300 $! || die "wasmtime serve did not answer"
    URL[wasmtime-$mode]="http://127.0.0.1:$port/"
  done
fi

servers=(on otlp off)
[[ -n "$WASMTIME" ]] && servers+=(wasmtime)
for mode in $MODES; do
  for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate the order so no server always runs first (or right after the heaviest).
    order=("${servers[@]:r % ${#servers[@]}}" "${servers[@]:0:r % ${#servers[@]}}")
    for s in "${order[@]}"; do
      wrk_run "$mode-$s-$r" "${URL[$s-$mode]}" "mode=$mode" "server=$s" "round=$r"
    done
  done
done

# Live logs: how long a printed line takes to reach a `yun logs -f` follower (goal: within 1 s).
ECHO_WASM="${WASM%/*}/echo.wasm"
if [[ -f "$ECHO_WASM" ]]; then
  on_url="${URL[on-${MODES%% *}]%/fn/*}"
  YUN_URL="$on_url" YUN_DATA_DIR="$WORK/yun-on" "$YUN" deploy printer "$ECHO_WASM" >>"$OUT/deploys.log" 2>&1
  token="$(cat "$WORK/yun-on/admin-token")"
  python3 "$BENCH/loglatency.py" "$on_url" "$token" printer 100 | tee "$OUT/loglatency.json" >&2
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"

python3 - "$OUT" <<'PY' | tee "$OUT/table.md"
import json, statistics, sys
from collections import defaultdict
out = sys.argv[1]
runs = [json.loads(l) for l in open(f"{out}/throughput.jsonl")]
rps, p99 = defaultdict(list), defaultdict(list)
for r in runs:
    rps[(r["mode"], r["server"])].append(r["rps"])
    p99[(r["mode"], r["server"])].append(r["p99_us"] / 1000)
print(open(f"{out}/env.txt").read().strip().replace("\n", "  \n"))
print()
print("| mode | server | req/s (median) | p99 ms (median) | vs recording off |")
print("|---|---|---:|---:|---:|")
modes = sorted({m for m, _ in rps}, key=lambda m: m != "reuse")
names = {"on": "yun, recording on (default)", "otlp": "yun, recording on + OTLP export",
         "off": "yun, recording off", "wasmtime": "wasmtime serve (reference)"}
for m in modes:
    off = statistics.median(rps[(m, "off")])
    for s in ["on", "otlp", "off", "wasmtime"]:
        if (m, s) not in rps:
            continue
        v = statistics.median(rps[(m, s)])
        rel = f"{(v / off - 1) * 100:+.1f}%"
        print(f"| {m} | {names[s]} | {v:,.0f} | {statistics.median(p99[(m, s)]):.2f} | {rel} |")
print()
print("Cost of recording = 1 - on/off; goal ≤ 5%. Rounds per cell:",
      ", ".join(f"{m}/{s}: {len(v)}" for (m, s), v in sorted(rps.items())))
import os
if os.path.exists(f"{out}/loglatency.json"):
    l = json.loads(open(f"{out}/loglatency.json").read())
    print()
    print(f"Live logs: a printed line reached an SSE follower (`yun logs -f`) in p50 {l['p50_ms']} ms, "
          f"p99 {l['p99_ms']} ms, max {l['max_ms']} ms over {l['n']} lines (goal: within 1 s).")
PY
log "done in $((SECONDS - START_TIME)) s; raw results in ${OUT#"$ROOT/"}"
