#!/usr/bin/env bash
# Instructions per operation, counted by callgrind (instructions, not seconds: the
# same for the same binary and load whatever else the machine is doing). Node C of
# a 3-node in-memory cluster runs under valgrind, A and B natively; each phase
# drives a fixed, light rate (every request its own wake-up, as at 24 nodes) for
# 10 s between `callgrind_control -z` and `-d`, and the instructions of two idle
# phases (SWIM, anti-entropy) are subtracted. Then the ceiling under callgrind at
# the same rate, for scale.
#
#   bench/callgrind.sh            # about 3 minutes; prints one line per phase
#   RATE=300 SECS=10 bench/callgrind.sh
#   SWIMKV_BIN=/path/to/another/swimkv bench/callgrind.sh   # the same count for another build
#
# Needs valgrind (Debian's package; installed if missing). Ports 9450-9452, 7077.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-300}
SECS=${SECS:-10}
CEILING_DIR=${CEILING_DIR:-../shared/bench/ceiling}
OUT=${OUT:-target/callgrind}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
cargo build --release --quiet --bin swimkv --bin swimkv-bench
[ -x "$CEILING_DIR/target/release/ceiling" ] || (cd "$CEILING_DIR" && cargo build --release --quiet)
rm -rf "$OUT" && mkdir -p "$OUT"
S=${SWIMKV_BIN:-target/release/swimkv}
B=target/release/swimkv-bench
PIDS=()
# Stops what this script started: SIGKILL, since a node stopped by SIGTERM hands its
# data off first (seconds, under valgrind), and the next run needs the ports.
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

$S 9450 --in-memory > "$OUT/a.log" 2>&1 &
PIDS+=($!)
sleep 1
$S 9451 127.0.0.1:9450 --in-memory > "$OUT/b.log" 2>&1 &
PIDS+=($!)
valgrind --tool=callgrind --callgrind-out-file="$OUT/node.%p.out" \
  $S 9452 127.0.0.1:9450 --in-memory --request-timeout-ms 10000 > "$OUT/c.log" 2>&1 &
C=$!
PIDS+=("$C")
ready=0
for _ in $(seq 1 120); do
  if curl -sf 127.0.0.1:9452/ready >/dev/null && curl -sf 127.0.0.1:9450/ready >/dev/null; then ready=1; break; fi
  sleep 0.5
done
[ $ready -eq 1 ] || { echo "the cluster did not become ready; see $OUT/" >&2; exit 1; }
$B --targets 127.0.0.1:9450,127.0.0.1:9451 --connections 8 --preload --ops 1 --get 100 \
  --keys 2000 --value-size 64 >/dev/null

served() { curl -s 127.0.0.1:9452/metrics | awk '/^swimkv_rpc_served/ {s += $2} END {print s + 0}'; }
# Instructions recorded by process $1 since the last zeroing, dumped as $2.
dump() {
  callgrind_control -d "$2" "$1" >/dev/null 2>&1
  local f
  f=$(ls -t "$OUT"/*.out.* | head -1)
  awk '/^summary:/ {print $2}' "$f"
}
# phase <name> <targets or none> <mix>: prints "name instructions operations".
phase() {
  local r0 r1 n ins json
  r0=$(served)
  callgrind_control -z "$C" >/dev/null 2>&1
  if [ "$2" = none ]; then
    sleep "$SECS"
    n=0
  else
    # shellcheck disable=SC2086
    json=$($B --targets "$2" --connections 4 --duration "${SECS}s" --rate "$RATE" --keys 2000 \
      --value-size 64 $3 --json)
    n=$(echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["ok"])')
  fi
  ins=$(dump "$C" "$1")
  r1=$(served)
  case $1 in replica_*) n=$((r1 - r0)) ;; esac
  echo "$1 $ins $n"
}
{
  phase idle_1 none ""
  phase replica_get 127.0.0.1:9450,127.0.0.1:9451 "--get 100"
  phase coordinated_get 127.0.0.1:9452 "--get 100"
  phase replica_put 127.0.0.1:9450,127.0.0.1:9451 "--put 100"
  phase coordinated_put 127.0.0.1:9452 "--put 100"
  phase idle_2 none ""
} > "$OUT/phases.txt"
cleanup
PIDS=()

valgrind --tool=callgrind --callgrind-out-file="$OUT/ceiling.%p.out" \
  "$CEILING_DIR/target/release/ceiling" 7077 1 > "$OUT/ceiling.log" 2>&1 &
CE=$!
PIDS+=("$CE")
for _ in $(seq 1 60); do curl -s -o /dev/null 127.0.0.1:7077/d/x && break; sleep 0.5; done
$B --targets 127.0.0.1:7077 --connections 4 --duration 2s --get 100 --keys 2000 >/dev/null
callgrind_control -z "$CE" >/dev/null 2>&1
n=$($B --targets 127.0.0.1:7077 --connections 4 --duration "${SECS}s" --rate "$RATE" --keys 2000 \
  --get 100 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["ok"])')
echo "ceiling $(dump "$CE" ceiling) $n" >> "$OUT/phases.txt"

python3 - "$OUT/phases.txt" <<'PY'
import sys
rows = {name: (int(ins), int(n)) for name, ins, n in (l.split() for l in open(sys.argv[1]))}
idle = (rows["idle_1"][0] + rows["idle_2"][0]) / 2
print(f"idle: {rows['idle_1'][0]:,} and {rows['idle_2'][0]:,} instructions per phase (subtracted)")
for name, (ins, n) in rows.items():
    if name.startswith("idle") or n == 0:
        continue
    net = ins if name == "ceiling" else ins - idle
    print(f"{name:16} {n:6} operations  {net / n:9,.0f} instructions each")
PY
echo "profiles: $OUT/*.out.* (callgrind_annotate --inclusive=yes FILE)"
