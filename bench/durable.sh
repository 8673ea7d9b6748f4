#!/usr/bin/env bash
# Durable storage at scale (DESIGN section 8/9, issue "Durable storage"): starts 3
# durable nodes (N=3, so each holds every key) in a temporary directory, loads
# KEYS keys (default 1,000,000; 64-byte values), then measures on one node:
#   - RSS with the default cache, and idle CPU over IDLE_S seconds (default 60);
#   - a restart: SIGTERM, start again on the same directory, time until /health
#     answers (open), until /ready answers 200 (serving, caught up: /ready is 200
#     only once the node has joined, is not pending and its view settled), and
#     the keys it counts after the restart.
# Stops exactly the processes it started. Usage: bash bench/durable.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
IDLE_S=${IDLE_S:-60}
BASE=${BASE_PORT:-9700}
BIN=target/release/swimkv
BENCH=target/release/swimkv-bench
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet --bins
WORK=$(mktemp -d /tmp/swimkv-durable-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
start() { # port [introducer]
  "$BIN" "$1" ${2:-} --data-dir "$WORK/$1" --peer-port $(($1 + 5000)) >>"$WORK/$1.log" 2>&1 &
  PIDS+=($!); LAST_PID=$!
}
ready() { curl -sf "127.0.0.1:$1/ready" >/dev/null; }
wait_for() { # what port seconds
  local i; for i in $(seq 1 $(($3 * 20))); do
    if [ "$1" = health ]; then curl -sf "127.0.0.1:$2/health" >/dev/null && return 0; else ready "$2" && return 0; fi
    sleep 0.05
  done; echo "node $2 not $1 after $3 s" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
keys_on() { curl -sf "127.0.0.1:$1/metrics" | awk '/^swimkv_keys_stored[ {]/ {print $NF; exit}'; }

start $BASE; wait_for health $BASE 20
start $((BASE + 1)) $BASE; P1=$LAST_PID
start $((BASE + 2)) $BASE
for p in $BASE $((BASE + 1)) $((BASE + 2)); do wait_for ready $p 60; done
echo "loading $KEYS keys through 3 nodes..."
t0=$(date +%s.%N)
"$BENCH" --targets "127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))" \
  --keys "$KEYS" --preload --ops 1 --get 100 --warmup 0s --connections 64 >"$WORK/load.txt" 2>&1
echo "loaded in $(echo "$(date +%s.%N) - $t0" | bc) s"
sleep 15 # let flushes and compactions of the load finish
N=$((BASE + 1)); PN=$P1
echo "node $N: $(keys_on $N) keys, RSS $(rss_mb $PN) MB, $(du -sm "$WORK/$N" | cut -f1) MB on disk"
hz=$(getconf CLK_TCK); c0=$(cpu_ticks $PN); sleep "$IDLE_S"; c1=$(cpu_ticks $PN)
echo "idle CPU of node $N over ${IDLE_S} s: $(echo "scale=3; ($c1 - $c0) * 100 / $hz / $IDLE_S" | bc)% of a core"
kill -TERM "$PN"; while kill -0 "$PN" 2>/dev/null; do sleep 0.05; done
t0=$(date +%s.%N); start $N $BASE; PN=$LAST_PID
wait_for health $N 120; t1=$(date +%s.%N)
wait_for ready $N 300; t2=$(date +%s.%N)
echo "restart of node $N: open (/health) after $(echo "$t1 - $t0" | bc) s, serving and caught up (/ready 200) after $(echo "$t2 - $t0" | bc) s, $(keys_on $N) keys"
echo "RSS after restart $(rss_mb $PN) MB"
