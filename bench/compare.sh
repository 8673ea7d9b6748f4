#!/usr/bin/env bash
# One-command benchmark: swimkv against the reference server of ../shared/bench/ceiling,
# measured in the same run, alternating the systems (A B C D A B C D ...) and quoting
# medians, as DESIGN.md section 8 asks. Cleans up every process it started.
#
#   bench/compare.sh                 # defaults: 5 s per run, 3 rounds
#   DURATION=10s ROUNDS=5 bench/compare.sh
#   SYSTEMS="ceiling n3" bench/compare.sh     # a subset (ceiling n1 n3 n24 n24t)
#   N3_ARGS="--http-workers 2" N24_ARGS=... bench/compare.sh   # extra flags for the n3 / n24 nodes
#
# Systems: ceiling (reference, 2 workers), n1 (3 nodes, N=1), n3 (3 nodes, N=3 R=2 W=2),
# n24 (24 nodes via init.sh, N=3 R=2 W=2), n24t (the same 24 nodes driven by a token-aware
# client: each request goes to a replica of its key, swimkv-bench --token-aware). Workloads: GET of preloaded keys, POST of
# 64-byte values, a 90/10 GET/POST mix; 64 connections spread over the system's nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
KEYS=${KEYS:-10000}
SYSTEMS=${SYSTEMS:-"ceiling n1 n3 n24 n24t"}
WORKLOADS=${WORKLOADS:-"get post mix"}
CEILING_DIR=${CEILING_DIR:-$ROOT/../shared/bench/ceiling}
OUT=${OUT:-$ROOT/target/bench}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

PIDS=()
RUN_DIRS=()
cleanup() {
  for d in "${RUN_DIRS[@]}"; do RUN_DIR="$d" ./init.sh stop >/dev/null 2>&1 || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== building (release)"
cargo build --release --quiet --bin swimkv --bin swimkv-bench
(cd "$CEILING_DIR" && cargo build --release --quiet)
BENCH="$ROOT/target/release/swimkv-bench"

targets() { # first-port count
  local first=$1 n=$2 out=""
  for p in $(seq "$first" $((first + n - 1))); do out="$out,127.0.0.1:$p"; done
  echo "${out#,}"
}

declare -A TARGETS
declare -A EXTRA
start_n24() {
  RUN_DIRS+=("run/bench-n24")
  RUN_DIR=run/bench-n24 NODES=24 BASE_PORT=9300 SWIMKV_BIN=target/release/swimkv SWIMKV_ARGS="${N24_ARGS:-}" ./init.sh | head -1
}
for s in $SYSTEMS; do
  case $s in
    ceiling)
      "$CEILING_DIR/target/release/ceiling" 7070 2 >/dev/null 2>&1 &
      PIDS+=($!)
      TARGETS[ceiling]=127.0.0.1:7070 ;;
    n1)
      RUN_DIRS+=("run/bench-n1")
      RUN_DIR=run/bench-n1 NODES=3 BASE_PORT=9100 SWIMKV_BIN=target/release/swimkv SWIMKV_ARGS="-n 1 -r 1 -w 1" ./init.sh | head -1
      TARGETS[n1]=$(targets 9100 3) ;;
    n3)
      RUN_DIRS+=("run/bench-n3")
      RUN_DIR=run/bench-n3 NODES=3 BASE_PORT=9200 SWIMKV_BIN=target/release/swimkv SWIMKV_ARGS="${N3_ARGS:-}" ./init.sh | head -1
      TARGETS[n3]=$(targets 9200 3) ;;
    n24|n24t)
      [ -n "${TARGETS[n24]:-}${TARGETS[n24t]:-}" ] || start_n24
      TARGETS[$s]=$(targets 9300 24)
      [ "$s" = n24t ] && EXTRA[n24t]="--token-aware" ;;
    *) echo "unknown system $s" >&2; exit 2 ;;
  esac
done
sleep 1

echo "== preloading $KEYS keys into each system"
for s in $SYSTEMS; do
  "$BENCH" --targets "${TARGETS[$s]}" --connections "$CONNS" --preload --ops 1 --get 100 --keys "$KEYS" \
    --value-size 64 --json > "$OUT/preload-$s.json"
done

mix_args() {
  case $1 in
    get) echo "--get 100" ;;
    post) echo "--put 100" ;;
    mix) echo "--get 90 --put 10" ;;
  esac
}

# Suspicions counted by a cluster's nodes so far (a cluster not started: empty).
cluster_suspicions() {
  local first n present total=0 c p
  case $1 in
    n1) first=9100; n=3; present=${TARGETS[n1]:-} ;;
    n3) first=9200; n=3; present=${TARGETS[n3]:-} ;;
    n24) first=9300; n=24; present=${TARGETS[n24]:-}${TARGETS[n24t]:-} ;;
  esac
  [ -n "$present" ] || return 0
  for p in $(seq "$first" $((first + n - 1))); do
    c=$(curl -s --max-time 2 "http://127.0.0.1:$p/metrics" | awk '/^swimkv_swim_suspicions_total /{print $2}')
    total=$((total + ${c:-0}))
  done
  echo "$total"
}
declare -A SUSPICIONS_BEFORE
for s in n1 n3 n24; do SUSPICIONS_BEFORE[$s]=$(cluster_suspicions "$s"); done

for round in $(seq 1 "$ROUNDS"); do
  for w in $WORKLOADS; do
    for s in $SYSTEMS; do
      # shellcheck disable=SC2046
      json=$("$BENCH" --targets "${TARGETS[$s]}" --connections "$CONNS" --duration "$DURATION" \
        --warmup 1s --keys "$KEYS" --value-size 64 $(mix_args "$w") ${EXTRA[$s]:-} --json)
      echo "{\"round\":$round,\"system\":\"$s\",\"workload\":\"$w\",\"result\":$json}" >> "$RESULTS"
      printf "round %s %-7s %-4s %10s req/s\n" "$round" "$s" "$w" \
        "$(echo "$json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ops_per_sec"]))')"
    done
  done
done

# DESIGN section 8: no member may ever be suspected under load.
for s in n1 n3 n24; do
  [ -n "${SUSPICIONS_BEFORE[$s]:-}" ] || continue
  after=$(cluster_suspicions "$s")
  echo "members suspected during the measured runs, summed over the $s nodes: $((after - SUSPICIONS_BEFORE[$s]))"
done

echo
echo "== medians over $ROUNDS rounds ($DURATION each, $CONNS connections); ratios to the ceiling measured in the same run"
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    res = r["result"]
    errors = sum(res.get("errors", {}).values())
    by.setdefault((r["system"], r["workload"]), []).append((res["ops_per_sec"], res["latency_us"]["p50"], res["latency_us"]["p99"], errors))
targets = {("n3", "get"): 0.50, ("n3", "post"): 0.40, ("n24", "get"): 0.35, ("n24", "post"): 0.35}
print(f"{'system':8} {'workload':8} {'req/s':>10} {'ratio':>7} {'target':>7} {'p50 us':>8} {'p99 us':>8} {'errors':>7}")
for (s, w), vals in sorted(by.items()):
    med = statistics.median(v[0] for v in vals)
    p50 = statistics.median(v[1] for v in vals)
    p99 = statistics.median(v[2] for v in vals)
    err = sum(v[3] for v in vals)
    ceil = by.get(("ceiling", w))
    ratio = med / statistics.median(v[0] for v in ceil) if ceil else float("nan")
    t = targets.get((s, w))
    tgt = f">={t:.0%}" if t else ""
    print(f"{s:8} {w:8} {med:10.0f} {ratio:7.1%} {tgt:>7} {p50:8.0f} {p99:8.0f} {err:7d}")
PY
