#!/usr/bin/env bash
# What an idle node of a 24-node cluster costs (DESIGN section 8: < 10 MB resident,
# < 0.3% of a core): starts the cluster with init.sh, lets it settle, then reads
# every node's resident memory and CPU time (/proc/<pid>/status and stat) over a
# quiet minute. Stops the cluster it started.
#
#   bench/idle.sh                         # durable nodes (the default)
#   SWIMKV_ARGS=--in-memory bench/idle.sh
#   NODES=24 SECS=60 SETTLE=10 bench/idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-24}
SECS=${SECS:-60}
SETTLE=${SETTLE:-10}
PORT=${PORT:-9900}
DIR=run/idle
cargo build --release --quiet --bin swimkv
cleanup() { RUN_DIR=$DIR ./init.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
RUN_DIR=$DIR ./init.sh clean >/dev/null
RUN_DIR=$DIR NODES=$NODES BASE_PORT=$PORT SWIMKV_BIN=target/release/swimkv \
  SWIMKV_ARGS="${SWIMKV_ARGS:-}" ./init.sh | head -1
sleep "$SETTLE"
pids=$(awk '{print $1}' "$DIR/pids")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A t0
for p in $pids; do t0[$p]=$(ticks "$p"); done
sleep "$SECS"
hz=$(getconf CLK_TCK)
for p in $pids; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status")
  echo "$p $rss $(( $(ticks "$p") - ${t0[$p]} ))"
done | python3 -c '
import sys
hz, secs = float(sys.argv[1]), float(sys.argv[2])
rows = [l.split() for l in sys.stdin]
rss = [int(r[1]) / 1000 for r in rows]
cpu = [int(r[2]) / hz / secs * 100 for r in rows]
print(f"{len(rows)} nodes idle for {secs:.0f} s: resident {min(rss):.1f}-{max(rss):.1f} MB per node, "
      f"CPU {min(cpu):.2f}-{max(cpu):.2f}% of a core per node (mean {sum(cpu) / len(cpu):.2f}%)")
' "$hz" "$SECS"
