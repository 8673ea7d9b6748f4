#!/usr/bin/env bash
# Where a request's server CPU goes: runs one workload against an in-memory
# cluster started by init.sh and, over the measured phase, counts the cluster's
# context switches and CPU time with `perf stat` (software events: they work
# where hardware counters do not) and samples stacks with `perf record`.
#
#   bench/profile.sh                     # 24 nodes, GET, 10 s
#   NODES=3 WORKLOAD=post bench/profile.sh
#
# Prints per request: server CPU (µs), context switches, system calls (epoll_wait
# among them), and the top symbols of the sampled profile (self time). Needs perf
# (Debian linux-perf; installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-24}
WORKLOAD=${WORKLOAD:-get}
DURATION=${DURATION:-10}
PORT=${PORT:-9700}
CONNS=${CONNS:-64}
DIR=run/profile-$NODES
OUT=${OUT:-target/profile}
mkdir -p "$OUT"
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
cargo build --release --quiet --bin swimkv --bin swimkv-bench
cleanup() { RUN_DIR=$DIR ./init.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
RUN_DIR=$DIR ./init.sh clean >/dev/null
RUN_DIR=$DIR NODES=$NODES BASE_PORT=$PORT SWIMKV_BIN=target/release/swimkv SWIMKV_ARGS="--in-memory" ./init.sh | head -1
pids=$(awk '{print $1}' "$DIR/pids" | paste -sd, -)
targets=$(seq "$PORT" $((PORT + NODES - 1)) | sed 's/^/127.0.0.1:/' | paste -sd, -)
case $WORKLOAD in get) mix="--get 100" ;; post) mix="--put 100" ;; *) mix="--get 90 --put 10" ;; esac
BENCH=target/release/swimkv-bench
# shellcheck disable=SC2086
$BENCH --targets "$targets" --connections "$CONNS" --preload --ops 1 --get 100 --keys 10000 --value-size 64 >/dev/null
# shellcheck disable=SC2086
$BENCH --targets "$targets" --connections "$CONNS" --duration "$((DURATION + 4))s" --warmup 1s \
  --keys 10000 --value-size 64 $mix --json > "$OUT/bench.json" &
bench=$!
sleep 2
perf stat -e task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait -p "$pids" -x, -o "$OUT/stat.csv" -- sleep "$DURATION" &
perf record -F 499 -g -p "$pids" -o "$OUT/perf.data" -- sleep "$DURATION" >/dev/null 2>&1
wait %2 2>/dev/null || true
wait "$bench"
python3 - "$OUT/bench.json" "$OUT/stat.csv" "$DURATION" <<'PY'
import csv, json, sys
b = json.load(open(sys.argv[1])); secs = float(sys.argv[3])
stat = {row[2]: float(row[0]) for row in csv.reader(l for l in open(sys.argv[2]) if l[0].isdigit())}
reqs = b["ops_per_sec"] * secs
print(f"{b['ops_per_sec']:.0f} req/s; per request: {stat['task-clock'] * 1e3 / reqs:.1f} us server CPU (task-clock), "
      f"{stat['context-switches'] / reqs:.2f} context switches, {stat['cpu-migrations'] / reqs:.3f} migrations, "
      f"{stat['raw_syscalls:sys_enter'] / reqs:.2f} system calls ({stat['syscalls:sys_enter_epoll_wait'] / reqs:.2f} epoll_wait)")
PY
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | sed -E 's/ +-? +-? *$//' | cut -c1-140 | head -25
