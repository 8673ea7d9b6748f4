#!/usr/bin/env bash
# A/B of two swimkv builds: a fresh in-memory cluster of each (init.sh), alternating
# A B A B ..., GET then POST for 5 s each with 64 connections, and the server CPU
# per request (swimkv-bench --cpu-pids) of every run, then the medians.
#
#   OLD=/tmp/swimkv-before NEW=target/release/swimkv bench/ab.sh
#   NODES=3 ROUNDS=5 OLD=... NEW=... bench/ab.sh
#
# Build each binary first (copy the older build aside). Ports 9300 and up.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OLD:?OLD=path of the first swimkv binary}" "${NEW:?NEW=path of the second}"
NODES=${NODES:-24}
ROUNDS=${ROUNDS:-4}
PORT=${PORT:-9300}
DIR=run/ab
B=target/release/swimkv-bench
cargo build --release --quiet --bin swimkv-bench
cleanup() { RUN_DIR=$DIR ./init.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
targets=$(seq "$PORT" $((PORT + NODES - 1)) | sed 's/^/127.0.0.1:/' | paste -sd, -)
results=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for which in OLD NEW; do
    RUN_DIR=$DIR ./init.sh clean >/dev/null
    RUN_DIR=$DIR NODES=$NODES BASE_PORT=$PORT SWIMKV_BIN=${!which} SWIMKV_ARGS="--in-memory ${ARGS:-}" \
      ./init.sh >/dev/null
    pids=$(awk '{print $1}' "$DIR/pids" | paste -sd, -)
    $B --targets "$targets" --connections 64 --preload --ops 1 --get 100 --keys 10000 --value-size 64 >/dev/null
    for workload in get put; do
      json=$($B --targets "$targets" --connections 64 --duration 5s --warmup 1s --keys 10000 \
        --value-size 64 "--$workload" 100 --cpu-pids "$pids" --json)
      line=$(echo "$json" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["server_cpu_us_per_op"], round(d["ops_per_sec"]), d["failed"])')
      echo "round $round $which $workload: $line (us/req, req/s, failed)"
      echo "$which $workload $line" >> "$results"
    done
    cleanup
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for workload in ("get", "put"):
    for which in ("OLD", "NEW"):
        cpu = [float(r[2]) for r in rows if r[0] == which and r[1] == workload]
        print(f"{which} {workload}: median {statistics.median(cpu):.1f} us/req (min {min(cpu):.1f}, max {max(cpu):.1f})")
PY
rm -f "$results"
