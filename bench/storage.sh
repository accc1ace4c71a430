#!/usr/bin/env bash
# Object storage: PUT and GET throughput of yun's S3 API against the raw filesystem floor of the
# same sizes, measured in the same run; `s3s-fs` (the s3s crate's own file-backed server) and a
# null server (the load generator's ceiling) as references.
#
#   bash bench/storage.sh
#
# Builds yun (release, `nice -n 19`, in $CARGO_TARGET_DIR, default ~/.cache/yun/target as in
# .ci/run; BENCH_SKIP_BUILD=1 uses the existing binary), installs boto3 into
# examples/target/py/s3-clients (the directory tests/storage.rs uses) when missing and
# `s3s-fs` 0.14 into examples/target/bench-tools (`cargo install --features binary --locked`, its own target dir;
# skipped with a note when that fails). Then, on one filesystem (a fresh $TMPDIR directory):
#
#  - yun up --s3-listen 127.0.0.1:PORT on a fresh data directory, a key from
#    `yun storage keys create --json`;
#  - s3s-fs --access-key --secret-key on its own directory (it writes without fsync: a peer for
#    the cost of the S3 layer, not for durability);
#  - the null server of bench/s3load.py (answers without storing);
#  - the floor: bench/s3load.py writing the same sizes itself, `write + fsync` and
#    `write + fsync + rename + dir fsync` (yun's blob path: tmp/ -> blobs/<bucket>/), and reading
#    them back (open + read in 256 KiB chunks, from the page cache, as the GETs read).
#
# Each cell (size x PUT|GET x system) is one bench/s3load.py run: BENCH_CLIENTS concurrent
# clients (boto3, one client per thread, SigV4 with its defaults over http: signed payload,
# CRC32 header) spread over BENCH_PROCS processes, BENCH_WARMUP s unmeasured, then BENCH_DURATION
# s counted. PUTs write new keys (removed, unmeasured, after each cell); GETs read one of
# BENCH_OBJECTS objects written beforehand. BENCH_ROUNDS rounds, the order of the systems rotated
# every round; the table shows medians. CPU time of the clients and of the server is sampled at
# both ends of every measured window.
#
# Raw results (results.jsonl, env.txt, server logs) go to bench/results/<UTC time>-storage/; the
# table goes to stdout and table.md there. Only 127.0.0.1 is ever targeted. Knobs (environment):
#   BENCH_DURATION=10  BENCH_WARMUP=2  BENCH_ROUNDS=3  BENCH_CLIENTS=16  BENCH_PROCS=4
#   BENCH_SIZES="4096 8388608"  BENCH_OBJECTS=64  BENCH_SYSTEMS="yun s3s-fs null floor"
#   BENCH_MIN_FREE_GB=8 (stop before a PUT cell when the filesystem has less free)
#   BENCH_SKIP_BUILD=1  YUN_BIN  S3SFS_BIN  BENCH_YUN_LOG  CARGO_TARGET_DIR  TMPDIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
ROUNDS="${BENCH_ROUNDS:-3}"
CLIENTS="${BENCH_CLIENTS:-16}"
PROCS="${BENCH_PROCS:-4}"
SIZES="${BENCH_SIZES:-4096 8388608}"
OBJECTS="${BENCH_OBJECTS:-64}"
SYSTEMS="${BENCH_SYSTEMS:-yun s3s-fs null floor}"
MIN_FREE_GB="${BENCH_MIN_FREE_GB:-8}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yun/target}"

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-storage"
OUT="$BENCH/results/$RUN_ID"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yun-storage-bench.XXXXXX")"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

need python3 "for the load generator and the report"
need curl "to probe the servers"
need cargo "to build yun"
has() { [[ " $SYSTEMS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- yun, the clients, the peer
YUN="${YUN_BIN:-$CARGO_TARGET_DIR/release/yun}"
if has yun; then
  if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "building yun (release)"
    nice -n 19 cargo build --release --locked --bin yun 2>&1 | tail -n 2 >&2
  fi
  [[ -x "$YUN" ]] || die "no yun binary at $YUN"
  "$YUN" up --help | grep -q -- --s3-listen || die "$YUN has no --s3-listen (an older build?)"
fi

PY="$ROOT/examples/target/py/s3-clients"
if ! PYTHONPATH="$PY" python3 -c 'import boto3' 2>/dev/null; then
  log "installing boto3 into ${PY#"$ROOT/"}"
  python3 -m pip install --quiet --target "$PY" boto3 awscli >&2
fi
export PYTHONPATH="$PY${PYTHONPATH:+:$PYTHONPATH}"
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

S3SFS_NOTE=""
if has s3s-fs; then
  TOOLS="$ROOT/examples/target/bench-tools"
  S3SFS="${S3SFS_BIN:-$TOOLS/bin/s3s-fs}"
  if [[ ! -x "$S3SFS" ]]; then
    log "installing s3s-fs 0.14 into ${TOOLS#"$ROOT/"} (cargo install --features binary --locked; its own target dir)"
    if ! (unset CARGO_TARGET_DIR; nice -n 19 cargo install s3s-fs --version '^0.14' --features binary --locked \
      --root "$TOOLS" --target-dir "$TOOLS/build" >"$OUT/s3s-fs-install.log" 2>&1) || [[ ! -x "$S3SFS" ]]; then
      S3SFS_NOTE="s3s-fs: cargo install failed (see s3s-fs-install.log); not measured"
      log "$S3SFS_NOTE"
      SYSTEMS="${SYSTEMS//s3s-fs/}"
    fi
  fi
fi

DATA="$WORK/yun"
FLOOR="$WORK/floor"
S3SFS_ROOT="$WORK/s3s-fs"
mkdir -p "$DATA" "$FLOOR" "$S3SFS_ROOT"
[[ "$(stat -c %d "$DATA")" == "$(stat -c %d "$FLOOR")" ]] || die "the floor is not on yun's filesystem"

{
  echo "run: $RUN_ID"
  echo "command: bash bench/storage.sh (BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_ROUNDS=$ROUNDS BENCH_CLIENTS=$CLIENTS BENCH_PROCS=$PROCS BENCH_SIZES=\"$SIZES\" BENCH_OBJECTS=$OBJECTS BENCH_SYSTEMS=\"$SYSTEMS\")"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -sr)"
  echo "filesystem: $(df -T "$DATA" | awk 'NR == 2 {print $1, $2}') ($(findmnt -no OPTIONS --target "$DATA" 2>/dev/null || echo '?')), all four systems in $WORK"
  if has yun; then echo "yun: $("$YUN" --version) at $YUN (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes in the tree'); binary built $(date -u -r "$YUN" +%FT%TZ))"; fi
  if has s3s-fs; then echo "s3s-fs: $("$S3SFS" --version 2>&1 | head -n1) at $S3SFS"; fi
  [[ -z "$S3SFS_NOTE" ]] || echo "$S3SFS_NOTE"
  echo "clients: $(python3 --version 2>&1), boto3 $(python3 -c 'import boto3; print(boto3.__version__)'), botocore $(python3 -c 'import botocore; print(botocore.__version__)'); $CLIENTS clients (one boto3 client per thread) in $PROCS processes"
  echo "load: per cell ${WARMUP} s warm-up + ${DURATION} s measured; $ROUNDS rounds, systems rotated; medians"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# ---------------------------------------------------------------- servers
declare -A ENDPOINT PID KEY SECRET
if has yun; then
  s3_port="$(free_port)"
  start_yun "$DATA" "$OUT/yun.log" --s3-listen "127.0.0.1:$s3_port"
  grep -q "s3 api on http://127.0.0.1:$s3_port" "$OUT/yun.log" || die "yun printed no s3 api line (see $OUT/yun.log)"
  keyjson="$("$YUN" --url "http://127.0.0.1:$YUN_PORT" --data-dir "$DATA" storage keys create --json)"
  KEY[yun]="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access_key_id"])' <<<"$keyjson")"
  SECRET[yun]="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["secret_access_key"])' <<<"$keyjson")"
  ENDPOINT[yun]="http://127.0.0.1:$s3_port"
  PID[yun]=$YUN_PID
  log "yun: S3 API on ${ENDPOINT[yun]} (pid $YUN_PID)"
fi

wait_port() { # url pid: until the server answers anything
  local i
  for ((i = 0; i < 600; i++)); do
    kill -0 "$2" 2>/dev/null || return 1
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true)" != 000 ]] && return 0
    sleep 0.1
  done
  return 1
}

if has s3s-fs; then
  port="$(free_port)"
  KEY[s3s-fs]="benchkey$RANDOM"
  SECRET[s3s-fs]="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
  "$S3SFS" --host 127.0.0.1 --port "$port" --access-key "${KEY[s3s-fs]}" --secret-key "${SECRET[s3s-fs]}" \
    "$S3SFS_ROOT" >"$OUT/s3s-fs.log" 2>&1 &
  PID[s3s-fs]=$!
  SERVER_PIDS+=("${PID[s3s-fs]}")
  ENDPOINT[s3s-fs]="http://127.0.0.1:$port"
  wait_port "${ENDPOINT[s3s-fs]}/" "${PID[s3s-fs]}" || { tail -n 20 "$OUT/s3s-fs.log" >&2; die "s3s-fs did not start"; }
  log "s3s-fs on ${ENDPOINT[s3s-fs]} (pid ${PID[s3s-fs]})"
fi

if has null; then
  port="$(free_port)"
  python3 "$BENCH/s3load.py" null-server --port "$port" >"$OUT/null.log" 2>&1 &
  PID[null]=$!
  SERVER_PIDS+=("${PID[null]}")
  KEY[null]=null SECRET[null]=null
  ENDPOINT[null]="http://127.0.0.1:$port"
  wait_port "${ENDPOINT[null]}/" "${PID[null]}" || die "the null server did not start"
fi

s3args() { # system: sets S3ARGS, the s3load.py flags that reach it
  S3ARGS=(--target s3 --endpoint "${ENDPOINT[$1]}" --key "${KEY[$1]}" --secret "${SECRET[$1]}" --bucket bench)
}

# ---------------------------------------------------------------- the objects GET reads
for size in $SIZES; do
  for s in yun s3s-fs; do
    has "$s" || continue
    log "writing $OBJECTS objects of $size bytes to $s"
    s3args "$s"
    python3 "$BENCH/s3load.py" prepare "${S3ARGS[@]}" --prefix get --size "$size" --objects "$OBJECTS"
  done
  if has floor; then
    python3 "$BENCH/s3load.py" prepare --target fs --dir "$FLOOR" --size "$size" --objects "$OBJECTS"
  fi
done

# ---------------------------------------------------------------- the cells
check_free() {
  local free_kb
  free_kb="$(df --output=avail -k "$WORK" | tail -n1)"
  ((free_kb > MIN_FREE_GB * 1024 * 1024)) || die "only $((free_kb / 1024 / 1024)) GB free on $WORK (BENCH_MIN_FREE_GB=$MIN_FREE_GB)"
}

run_cell() { # round size cell system
  local r=$1 size=$2 cell=$3 s=$4 removed t0
  local common=(--size "$size" --objects "$OBJECTS" --clients "$CLIENTS" --procs "$PROCS"
    --warmup "$WARMUP" --duration "$DURATION" --round "$r")
  [[ $cell == put ]] && check_free
  case $s in
    write-fsync | write-fsync-rename-dirsync | read)
      python3 "$BENCH/s3load.py" run --target fs --dir "$FLOOR" --op "$s" --system floor \
        --label "$r-$size-$s" "${common[@]}" >>"$OUT/results.jsonl"
      rm -rf "$FLOOR/tmp" "$FLOOR/blobs"
      ;;
    *)
      s3args "$s"
      python3 "$BENCH/s3load.py" run "${S3ARGS[@]}" --op "$cell" --prefix "$([[ $cell == put ]] && echo put || echo get)" \
        --system "$s" --pid "${PID[$s]}" --label "$r-$size-$cell-$s" "${common[@]}" >>"$OUT/results.jsonl"
      if [[ $cell == put && $s != null ]]; then
        t0=$SECONDS
        removed="$(python3 "$BENCH/s3load.py" clean "${S3ARGS[@]}" --prefix put)"
        log "    removed the $removed objects the PUTs wrote to $s (DeleteObjects, $((SECONDS - t0)) s, not measured)"
      fi
      ;;
  esac
}

for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r of $ROUNDS"
  for size in $SIZES; do
    for cell in put get; do
      systems=()
      if has floor; then
        if [[ $cell == put ]]; then systems+=(write-fsync write-fsync-rename-dirsync); else systems+=(read); fi
      fi
      for s in yun s3s-fs null; do has "$s" && systems+=("$s"); done
      # Rotate the order so no system always runs first (or right after the heaviest).
      n=${#systems[@]}
      order=("${systems[@]:r % n}" "${systems[@]:0:r % n}")
      for s in "${order[@]}"; do run_cell "$r" "$size" "$cell" "$s"; done
    done
  done
done

for s in yun s3s-fs null; do
  if has "$s"; then stop_pid "${PID[$s]}"; fi
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
python3 "$BENCH/s3load.py" report --out "$OUT" | tee "$OUT/table.md"
log "done in $((SECONDS - START_TIME)) s; raw results in ${OUT#"$ROOT/"}"
