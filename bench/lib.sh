# Shared bookkeeping of the bench/ scripts: logging, server processes, free ports, probing, wrk
# runs. Source it after setting ROOT, BENCH, OUT and WORK:
#
#   source "$BENCH/lib.sh"
#
# It installs an EXIT trap that stops every pid in SERVER_PIDS and removes $WORK.

START_TIME=$SECONDS
SERVER_PIDS=()

log() { printf '[bench %s +%ss] %s\n' "$(date +%T)" "$((SECONDS - START_TIME))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

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

bench_cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_200() { # url timeout_s pid
  local url=$1 deadline=$((SECONDS + $2)) pid=$3
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$url" || true)" == 200 ]] && return 0
    sleep 0.05
  done
  return 1
}

need() { command -v "$1" >/dev/null || die "$1 is required ($2)"; }

need_wrk() {
  command -v wrk >/dev/null && return 0
  log "installing wrk (Debian package)"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
}

target_dir() { # the cargo target directory of the workspace in the current directory
  cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# start_yun data_dir log [yun up flags...]: sets YUN_PID and YUN_PORT.
start_yun() {
  local data=$1 logf=$2 i
  YUN_PORT="$(free_port)"
  if [[ -n "${BENCH_YUN_LOG:-}" ]]; then export YUN_LOG="$BENCH_YUN_LOG"; fi
  # Several servers run side by side: the S3 API and the Redis endpoint get no fixed port
  # unless the caller says.
  local s3=(--s3-listen off) redis=(--redis-listen off)
  [[ " ${*:3} " == *" --s3-listen "* ]] && s3=()
  [[ " ${*:3} " == *" --redis-listen "* ]] && redis=()
  "$YUN" up --data-dir "$data" --listen "127.0.0.1:$YUN_PORT" "${s3[@]}" "${redis[@]}" "${@:3}" >>"$logf" 2>&1 &
  YUN_PID=$!
  SERVER_PIDS+=("$YUN_PID")
  for ((i = 0; i < 600; i++)); do
    grep -qs "listening on http://127.0.0.1:$YUN_PORT" "$logf" && return 0
    kill -0 "$YUN_PID" 2>/dev/null || { tail -n 20 "$logf" >&2; die "yun up exited"; }
    sleep 0.1
  done
  die "yun up did not start listening within 60 s (see $logf)"
}

# wrk_run label url: a warm-up, then the measured run; appends one JSON line (wrk-report.lua's,
# plus label and load average) to $OUT/throughput.jsonl and logs a summary.
wrk_run() {
  local label=$1 url=$2 line
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >"$OUT/wrk-$label.warmup.txt" 2>&1
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$BENCH/wrk-report.lua" "$url" \
    >"$OUT/wrk-$label.txt" 2>&1
  line="$(grep '^{"requests"' "$OUT/wrk-$label.txt" | tail -n1)"
  [[ -n "$line" ]] || die "no report from wrk (see $OUT/wrk-$label.txt)"
  python3 - "$line" "$label" "${@:3}" >>"$OUT/throughput.jsonl" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
r["label"] = sys.argv[2]
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    r[k] = v
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
