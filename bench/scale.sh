#!/usr/bin/env bash
# Scale from zero with a burst of 100 concurrent requests, against the same burst on the pool
# that burst left warm, same functions, same run.
#
#   bash bench/scale.sh
#
# Scenarios (BENCH_SCENARIOS), each a function on one `yun up`:
#   wasm-reuse        examples/hello-rust, yun deploy --instance reuse (the default)
#   wasm-per-request  the same component, --instance per-request (a fresh instance per request)
#   proc-c1           examples/native-http (a std-only Rust HTTP server, thread per connection),
#                     --runtime process --mode http --command ./native-http, then
#                     yun scale --concurrency 1 --max 10 (Lambda-style: one request per instance)
#   proc-c100         the same program, yun scale --concurrency 100 --max 10 (one instance takes
#                     the whole burst, Cloud Run-style)
#   proc-cC-maxM      (not in the default set) the same with --concurrency C --max M, e.g.
#                     proc-c1-max1, proc-c1-max2 (proc-cC alone means --max 10)
#   direct            the floor: examples/native-http started directly (no yun), warm bursts only
#
# Each repetition (BENCH_REPS, default 5) goes through the scenarios in turn, and for each:
#   cold   `yun scale NAME --min 0 --idle 1s`, poll `yun describe NAME --json` until the function
#          is at zero (process: .scale.instances.current == 0; wasm: .scale.loaded == false, so
#          the next request loads the precompiled code from disk again), then one burst of
#          BENCH_N requests on BENCH_N connections opened beforehand (bench/burst.py).
#   again  (process only) `yun scale NAME --idle 10m` at once and the same burst again: the pool
#          as the cold burst left it, some 0.2-0.5 s later.
#   warm   process: `yun scale NAME --min K --idle 10m` (K = min(max, ceil(BENCH_N / concurrency)):
#          10 for proc-c1, 1 for proc-c100),
#          poll until .scale.instances.ready == K, then the burst: the function already scaled
#          up. wasm: `yun scale NAME --idle 10m` right after the cold burst, then the burst (the
#          code loaded, and in reuse mode the wasm instances the cold burst left).
# A burst's time per request runs from the release of the burst to the end of that response.
# The table shows, per scenario and phase, the median over repetitions of p50/p99/max and the
# worst; the goal (from the issue) is on the cold burst's p99: wasm <= 5 ms, process <= 50 ms.
#
# yun needs root (the sandbox of process functions). Raw results go to
# bench/results/<UTC time>-scale/ (bursts.jsonl: every burst with every sample; describe
# snapshots; `yun logs` of each function with its REPORT lines; yun's log); the table goes to
# stdout and table.md there. Only 127.0.0.1 is ever targeted. Knobs (environment):
#   BENCH_SCENARIOS="wasm-reuse wasm-per-request proc-c1 proc-c100 direct"
#   BENCH_REPS=5   BENCH_N=100   BENCH_SETTLE=0.3 (s between opening the connections and the burst)
#   BENCH_ZERO_TIMEOUT=60 (s to wait for a function to reach zero)
#   BENCH_YUN_LOG (YUN_LOG for the yun server; yun's default, info, if unset)
#   BENCH_SKIP_BUILD=1 (use the existing binaries)   YUN_BIN   CARGO_TARGET_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

SCENARIOS="${BENCH_SCENARIOS:-wasm-reuse wasm-per-request proc-c1 proc-c100 direct}"
REPS="${BENCH_REPS:-5}"
N="${BENCH_N:-100}"
SETTLE="${BENCH_SETTLE:-0.3}"
ZERO_TIMEOUT="${BENCH_ZERO_TIMEOUT:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yun/target}"

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/$RUN_ID-scale"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yun-scale-bench.XXXXXX")"
chmod 0755 "$WORK"
START_TIME=$SECONDS

log() { printf '[scale-bench %s +%ss] %s\n' "$(date +%T)" "$((SECONDS - START_TIME))" "$*" >&2; }
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

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null || die "$1 is required ($2)"; }
need python3 "for the load generator and the report"
need curl "to probe the servers"
need cargo "to build yun and the examples"
[[ $(id -u) -eq 0 ]] || die "run as root: yun's sandbox needs it for namespaces and cgroups"
for s in $SCENARIOS; do
  [[ $s =~ ^(wasm-reuse|wasm-per-request|direct|proc-c[1-9][0-9]*(-max[1-9][0-9]*)?)$ ]] \
    || die "unknown scenario '$s' (wasm-reuse, wasm-per-request, proc-c1, proc-c100, proc-cC-maxM, direct)"
done

# ---------------------------------------------------------------- builds
YUN="${YUN_BIN:-$CARGO_TARGET_DIR/release/yun}"
EX_TARGET_DIR="$ROOT/examples/target"
WASM="$EX_TARGET_DIR/wasm32-wasip2/release/hello_rust.wasm"
NATIVE_BIN="$EX_TARGET_DIR/release/native-http"
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building yun (release; the first build of wasmtime takes 10-15 min on 2 cores)"
  nice -n 19 cargo build --release --locked --bin yun 2>&1 | tail -n 2 >&2
  log "building the Rust guest (examples/hello-rust)"
  rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2
  (cd examples && CARGO_TARGET_DIR="$EX_TARGET_DIR" nice -n 19 cargo build --release --locked \
    --target wasm32-wasip2 -p hello-rust 2>&1 | tail -n 2 >&2)
  log "building examples/native-http (release)"
  nice -n 19 cargo build --release --locked --manifest-path examples/native-http/Cargo.toml \
    --target-dir "$EX_TARGET_DIR" 2>&1 | tail -n 2 >&2
fi
[[ -x "$YUN" ]] || die "no yun binary at $YUN"
[[ -f "$WASM" ]] || die "no component at $WASM"
[[ -x "$NATIVE_BIN" ]] || die "no native-http binary at $NATIVE_BIN"

APP_DIR="$WORK/app-native"
mkdir -p "$APP_DIR"
cp "$NATIVE_BIN" "$APP_DIR/native-http"
chmod -R a+rX "$APP_DIR"

{
  echo "run: $RUN_ID-scale"
  echo "command: bash bench/scale.sh (BENCH_SCENARIOS=\"$SCENARIOS\" BENCH_REPS=$REPS BENCH_N=$N BENCH_SETTLE=$SETTLE)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -sr)"
  echo "yun: $("$YUN" --version) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes in the tree'); binary built $(date -u -r "$YUN" +%FT%TZ))"
  echo "guest: $WASM ($(stat -c %s "$WASM") bytes)"
  echo "native-http: $(stat -c %s "$NATIVE_BIN") bytes ($(file -b "$NATIVE_BIN" | cut -d, -f1-2,5 2>/dev/null || true))"
  echo "python3: $(python3 --version 2>&1)"
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

fn_name() { echo "s-$1"; }
is_wasm() { [[ $1 == wasm-* ]]; }
proc_concurrency() { local c="${1#proc-c}"; echo "${c%%-*}"; }
proc_max() { if [[ $1 == *-max* ]]; then echo "${1##*-max}"; else echo 10; fi; }

check_body() { # url
  local body
  body="$(curl -s --max-time 60 "$1")"
  [[ "$body" == *"Hello, world!"* ]] || die "unexpected answer from $1: '$body'"
}

for s in $SCENARIOS; do
  [[ $s == direct ]] && continue
  name="$(fn_name "$s")"
  log "deploying $name"
  case $s in
    wasm-reuse) yun deploy "$name" "$WASM" --instance reuse ;;
    wasm-per-request) yun deploy "$name" "$WASM" --instance per-request ;;
    proc-*) yun deploy "$name" "$APP_DIR" --runtime process --mode http --command ./native-http --idle-timeout 10m ;;
  esac >>"$OUT/deploys.log" 2>&1 || { tail -n 20 "$OUT/deploys.log" >&2; die "yun deploy $name failed"; }
  case $s in
    proc-*) yun scale "$name" --concurrency "$(proc_concurrency "$s")" --max "$(proc_max "$s")" ;;
    *) true ;;
  esac >>"$OUT/deploys.log" 2>&1 || { tail -n 20 "$OUT/deploys.log" >&2; die "yun scale $name failed"; }
  check_body "$YUN_URL/fn/$name/"
  yun --json describe "$name" >"$OUT/describe-$name.json"
done

DIRECT_URL=""
if [[ " $SCENARIOS " == *" direct "* ]]; then
  port="$(free_port)"
  (cd "$APP_DIR" && exec env -i HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin PORT="$port" ./native-http) \
    >"$OUT/direct.log" 2>&1 &
  PIDS+=("$!")
  DIRECT_URL="http://127.0.0.1:$port/"
  for ((i = 0; i < 300; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$DIRECT_URL" || true)" == 200 ]] && break
    sleep 0.05
  done
  check_body "$DIRECT_URL"
fi

# ---------------------------------------------------------------- helpers
scale_state() { # name -> "current ready loaded in_flight queued panicking panic_concurrency"
  yun --json describe "$1" | python3 -c '
import json, sys
s = json.load(sys.stdin).get("scale", {})
i, a = s.get("instances", {}), s.get("autoscaler", {})
print(i.get("current", 0), i.get("ready", 0), str(s.get("loaded", False)).lower(), i.get("in_flight", 0),
      i.get("queued", 0), str(a.get("panicking", False)).lower(), a.get("panic_concurrency", 0))'
}

to_zero() { # scenario name: no min, idle 1s, wait until at zero; prints the seconds waited
  local s=$1 name=$2 t0=$SECONDS cur ready loaded rest
  yun scale "$name" --min 0 --idle 1s >/dev/null
  while :; do
    read -r cur ready loaded rest < <(scale_state "$name")
    if is_wasm "$s"; then [[ $loaded == false ]] && break; else ((cur == 0)) && break; fi
    ((SECONDS - t0 < ZERO_TIMEOUT)) || die "$name did not reach zero within $ZERO_TIMEOUT s (current $cur, loaded $loaded)"
    sleep 0.1
  done
  echo $((SECONDS - t0))
}

prewarm() { # name k: min k, idle 10m, wait until k instances are ready; prints the seconds waited
  local name=$1 k=$2 t0=$SECONDS cur ready rest
  yun scale "$name" --min "$k" --idle 10m >/dev/null
  while :; do
    read -r cur ready rest < <(scale_state "$name")
    ((ready >= k)) && break
    ((SECONDS - t0 < ZERO_TIMEOUT)) || die "$name did not get $k ready instances within $ZERO_TIMEOUT s (ready $ready)"
    sleep 0.1
  done
  echo $((SECONDS - t0))
}

burst() { # scenario rep phase url: one burst -> bursts.jsonl (plus the scale state before and after)
  local s=$1 rep=$2 phase=$3 url=$4 before="" after="" line name
  name="$(fn_name "$s")"
  [[ $s == direct ]] || before="$(scale_state "$name")"
  line="$(python3 "$BENCH/burst.py" "$url" --n "$N" --settle "$SETTLE" --expect 'Hello, world!' \
    --label "$s/$rep/$phase" 2>>"$OUT/burst-errors.txt")" || log "  $s $phase: some requests failed (see burst-errors.txt)"
  [[ -n "$line" ]] || die "no result from burst.py for $s/$rep/$phase"
  [[ $s == direct ]] || after="$(scale_state "$name")"
  python3 - "$line" "$s" "$rep" "$phase" "$before" "$after" >>"$OUT/bursts.jsonl" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
keys = ("current", "ready", "loaded", "in_flight", "queued", "panicking", "panic_concurrency")
state = lambda t: dict(zip(keys, t.split())) if t else None
r.update(scenario=sys.argv[2], rep=int(sys.argv[3]), phase=sys.argv[4],
         scale_before=state(sys.argv[5]), scale_after=state(sys.argv[6]))
print(json.dumps(r))
PY
  python3 - "$line" "$s" "$phase" "$after" <<'PY' >&2
import json, sys
r = json.loads(sys.argv[1])
starts = " ".join(f"{k}={v}" for k, v in sorted(r["starts"].items()))
after = sys.argv[4].split()
inst = f", instances after {after[0]}" if after else ""
print(f"  {sys.argv[2]:<16} {sys.argv[3]:<5} p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, "
      f"ok {r['ok']}/{r['n']}, start: {starts}{inst}, load {r['loadavg_1m']}")
PY
}

# ---------------------------------------------------------------- the bursts
log "$REPS repetitions of: ${SCENARIOS} (a burst from zero, again at once (process), then on a warm pool), $N requests each"
for ((rep = 1; rep <= REPS; rep++)); do
  log "repetition $rep/$REPS (load average $(cut -d' ' -f1 /proc/loadavg))"
  for s in $SCENARIOS; do
    if [[ $s == direct ]]; then
      burst direct "$rep" warm "$DIRECT_URL"
      continue
    fi
    name="$(fn_name "$s")"
    waited="$(to_zero "$s" "$name")"
    burst "$s" "$rep" cold "$YUN_URL/fn/$name/"
    # Raising the keep-alive only now: raised while the function is at zero, it makes the policy
    # start an instance (or load the code) again at once, and the burst would not be cold.
    yun scale "$name" --idle 10m >/dev/null
    if is_wasm "$s"; then
      burst "$s" "$rep" warm "$YUN_URL/fn/$name/"
      echo "{\"scenario\": \"$s\", \"rep\": $rep, \"to_zero_s\": $waited}" >>"$OUT/waits.jsonl"
    else
      burst "$s" "$rep" again "$YUN_URL/fn/$name/"
      c="$(proc_concurrency "$s")" m="$(proc_max "$s")"
      k=$(((N + c - 1) / c))
      ((k <= m)) || k=$m
      ready_s="$(prewarm "$name" "$k")"
      burst "$s" "$rep" warm "$YUN_URL/fn/$name/"
      echo "{\"scenario\": \"$s\", \"rep\": $rep, \"to_zero_s\": $waited, \"prewarm_s\": $ready_s, \"min\": $k}" >>"$OUT/waits.jsonl"
    fi
  done
done

for s in $SCENARIOS; do
  [[ $s == direct ]] && continue
  name="$(fn_name "$s")"
  yun --json describe "$name" >"$OUT/describe-end-$name.json" 2>>"$OUT/deploys.log" || true
  yun --json logs "$name" --limit 1000000 >"$OUT/logs-$name.jsonl" 2>>"$OUT/deploys.log" || true
done
stop_pid "$YUN_PID"

# ---------------------------------------------------------------- report
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
python3 "$BENCH/scale_report.py" "$OUT" | tee "$OUT/table.md"
log "done in $((SECONDS - START_TIME)) s; raw results in ${OUT#"$ROOT/"}"
