#!/usr/bin/env bash
# One-command benchmark: swimkv against the reference server of ../shared/bench/ceiling,
# measured in the same run, alternating the systems (A B C D A B C D ...) and quoting
# medians, as DESIGN.md section 8 asks. Cleans up every process it started.
#
#   bench/compare.sh                 # defaults: 5 s per run, 3 rounds
#   DURATION=10s ROUNDS=5 bench/compare.sh
#   SYSTEMS="ceiling n3 n3m" bench/compare.sh     # a subset (ceiling c24 n1 n3 n3m n3a n3s n24 n24t)
#   N3_ARGS="--http-workers 2" N24_ARGS=... bench/compare.sh   # extra flags for the n3* / n24 nodes
#
# Systems: ceiling (reference, 2 workers), c24 (the ceiling as 24 processes of one worker
# each, on ports 7100-7123: what spreading the same HTTP requests over 24 processes on 2
# cores costs before any peer message, the floor under n24), n1 (3 nodes, N=1), n3 (3 nodes, N=3 R=2 W=2,
# durable, the default --sync periodic), n3m (the same in memory, --in-memory), n3a (the
# same durable with --sync always), n3s (n3m with HTTPS, bearer tokens and a cluster
# secret: the client sends a read/write token over TLS with keep-alive), n24 (24 nodes via init.sh, N=3 R=2 W=2, --in-memory as
# the DESIGN section 8 targets are), n24t (the
# same 24 nodes driven by a token-aware client: each request goes to a replica of its key,
# swimkv-bench --token-aware). Every cluster starts with empty data directories.
# Workloads: GET of preloaded keys, POST of 64-byte values, a 90/10 GET/POST mix; 64
# connections spread over the system's nodes. Reported per system and workload: the
# server's CPU time per request (user + system of all its processes, from /proc; DESIGN
# section 8's primary measure) and its ratio to the ceiling's, req/s and its ratio,
# latency, and the load generator's own CPU; then the 90/10 mix open-loop at half of
# each system's measured mix throughput (p50/p99 beside the ceiling's at its half).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
KEYS=${KEYS:-10000}
SYSTEMS=${SYSTEMS:-"ceiling c24 n1 n3 n3m n24 n24t"}
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
declare -A CPU_PIDS
# start <system> <run dir> <nodes> <first port> <flags>: a cluster with empty data.
start_cluster() {
  local s=$1 dir=$2 nodes=$3 port=$4 flags=$5
  RUN_DIRS+=("$dir")
  RUN_DIR=$dir ./init.sh clean >/dev/null
  local out
  out=$(RUN_DIR=$dir NODES=$nodes BASE_PORT=$port SWIMKV_BIN=target/release/swimkv SWIMKV_ARGS="$flags" ./init.sh)
  echo "${out%%$'\n'*}"
  TARGETS[$s]=$(targets "$port" "$nodes")
  CPU_PIDS[$s]=$(awk '{print $1}' "$dir/pids" | paste -sd, -)
}
for s in $SYSTEMS; do
  case $s in
    ceiling)
      "$CEILING_DIR/target/release/ceiling" 7070 2 >/dev/null 2>&1 &
      PIDS+=($!)
      CPU_PIDS[ceiling]=$!
      TARGETS[ceiling]=127.0.0.1:7070 ;;
    c24)
      c24_pids=()
      for p in $(seq 7100 7123); do
        "$CEILING_DIR/target/release/ceiling" "$p" 1 >/dev/null 2>&1 &
        PIDS+=($!)
        c24_pids+=($!)
      done
      CPU_PIDS[c24]=$(IFS=,; echo "${c24_pids[*]}")
      TARGETS[c24]=$(targets 7100 24) ;;
    n1) start_cluster n1 run/bench-n1 3 9100 "-n 1 -r 1 -w 1" ;;
    n3) start_cluster n3 run/bench-n3 3 9200 "${N3_ARGS:-}" ;;
    n3m) start_cluster n3m run/bench-n3m 3 9400 "--in-memory ${N3_ARGS:-}" ;;
    n3a) start_cluster n3a run/bench-n3a 3 9500 "--sync always ${N3_ARGS:-}" ;;
    n3s)
      mkdir -p run/bench-n3s
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
        -keyout run/bench-n3s/key.pem -out run/bench-n3s/cert.pem 2>/dev/null
      echo "bench-writer-0123456789abcdef write" > run/bench-n3s/tokens
      SWIMKV_TOKEN=bench-writer-0123456789abcdef start_cluster n3s run/bench-n3s 3 9600 \
        "--in-memory --cluster-secret bench-cluster-secret --auth-tokens run/bench-n3s/tokens --tls-cert run/bench-n3s/cert.pem --tls-key run/bench-n3s/key.pem ${N3_ARGS:-}"
      EXTRA[n3s]="--tls --cacert run/bench-n3s/cert.pem --token bench-writer-0123456789abcdef" ;;
    n24|n24t)
      if [ -z "${TARGETS[n24]:-}${TARGETS[n24t]:-}" ]; then
        start_cluster n24 run/bench-n24 24 9300 "--in-memory ${N24_ARGS:-}"
      fi
      TARGETS[$s]=$(targets 9300 24)
      CPU_PIDS[$s]=${CPU_PIDS[n24]}
      [ "$s" = n24t ] && EXTRA[n24t]="--token-aware" ;;
    *) echo "unknown system $s" >&2; exit 2 ;;
  esac
done
sleep 1

echo "== preloading $KEYS keys into each system"
for s in $SYSTEMS; do
  # shellcheck disable=SC2086
  "$BENCH" --targets "${TARGETS[$s]}" --connections "$CONNS" --preload --ops 1 --get 100 --keys "$KEYS" \
    --value-size 64 ${EXTRA[$s]:-} --json > "$OUT/preload-$s.json"
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
    n3m) first=9400; n=3; present=${TARGETS[n3m]:-} ;;
    n3a) first=9500; n=3; present=${TARGETS[n3a]:-} ;;
    n3s) first=9600; n=3; present=${TARGETS[n3s]:-} ;;
    n24) first=9300; n=24; present=${TARGETS[n24]:-}${TARGETS[n24t]:-} ;;
  esac
  [ -n "$present" ] || return 0
  local scheme=http tls=()
  [ "$1" = n3s ] && { scheme=https; tls=(--cacert run/bench-n3s/cert.pem); }
  for p in $(seq "$first" $((first + n - 1))); do
    c=$(curl -s --max-time 2 "${tls[@]}" "$scheme://127.0.0.1:$p/metrics" | awk '/^swimkv_swim_suspicions_total /{print $2}')
    total=$((total + ${c:-0}))
  done
  echo "$total"
}
declare -A SUSPICIONS_BEFORE
for s in n1 n3 n3m n3a n3s n24; do SUSPICIONS_BEFORE[$s]=$(cluster_suspicions "$s"); done

for round in $(seq 1 "$ROUNDS"); do
  for w in $WORKLOADS; do
    for s in $SYSTEMS; do
      # shellcheck disable=SC2046
      json=$("$BENCH" --targets "${TARGETS[$s]}" --connections "$CONNS" --duration "$DURATION" \
        --warmup 1s --keys "$KEYS" --value-size 64 $(mix_args "$w") ${EXTRA[$s]:-} \
        --cpu-pids "${CPU_PIDS[$s]}" --json)
      echo "{\"round\":$round,\"system\":\"$s\",\"workload\":\"$w\",\"result\":$json}" >> "$RESULTS"
      printf "round %s %-7s %-4s %s\n" "$round" "$s" "$w" \
        "$(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%8d req/s %7.1f us CPU/req" % (round(r["ops_per_sec"]), r.get("server_cpu_us_per_op") or 0) + ("  first server error: %s" % r["first_server_error"] if r.get("first_server_error") else ""))')"
    done
  done
done

# Latency at half load (issue 17): the 90/10 mix open-loop at 50% of each system's
# median closed-loop mix throughput above (swimkv-bench --rate), ROUNDS rounds alternating.
if [[ " $WORKLOADS " == *" mix "* ]]; then
  declare -A HALF
  for s in $SYSTEMS; do
    HALF[$s]=$(python3 - "$RESULTS" "$s" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rps = [r["result"]["ops_per_sec"] for r in rows if r["system"] == sys.argv[2] and r["workload"] == "mix"]
print(round(statistics.median(rps) / 2))
PY
)
  done
  for round in $(seq 1 "$ROUNDS"); do
    for s in $SYSTEMS; do
      # shellcheck disable=SC2046
      json=$("$BENCH" --targets "${TARGETS[$s]}" --connections "$CONNS" --duration "$DURATION" \
        --warmup 1s --keys "$KEYS" --value-size 64 $(mix_args mix) --rate "${HALF[$s]}" ${EXTRA[$s]:-} \
        --cpu-pids "${CPU_PIDS[$s]}" --json)
      echo "{\"round\":$round,\"system\":\"$s\",\"workload\":\"mix@50%\",\"result\":$json}" >> "$RESULTS"
      printf "round %s %-7s %-7s %s\n" "$round" "$s" "mix@50%" \
        "$(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%8d req/s (rate %d) p99 %6d us" % (round(r["ops_per_sec"]), r["config"]["rate"], r["latency_us"]["p99"]))')"
    done
  done
fi

# DESIGN section 8: no member may ever be suspected under load.
for s in n1 n3 n3m n3a n3s n24; do
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
    by.setdefault((r["system"], r["workload"]), []).append({
        "rps": res["ops_per_sec"], "p50": res["latency_us"]["p50"], "p99": res["latency_us"]["p99"],
        "errors": errors, "cpu": res.get("server_cpu_us_per_op") or float("nan"),
        "client": (res.get("client_cpu_s") or 0) / max(res.get("duration_s") or 1, 1e-9),
        "rate": res["config"].get("rate"),
    })
# DESIGN section 8 targets: server CPU per request as a multiple of the ceiling's.
targets = {("n3m", "get"): 2.5, ("n3m", "post"): 3.0, ("n24", "get"): 5.0, ("n24", "post"): 5.5}
med = lambda vals, k: statistics.median(v[k] for v in vals)
print(f"{'system':8} {'workload':8} {'CPU us/req':>10} {'x ceil':>7} {'target':>7} {'req/s':>8} {'min-max':>15} {'of ceil':>7} {'p50 us':>7} {'p99 us':>7} {'client':>6} {'errors':>6}")
for (s, w), vals in sorted(by.items()):
    if w == "mix@50%":
        continue
    ceil = by.get(("ceiling", w))
    cpu, rps = med(vals, "cpu"), med(vals, "rps")
    cpu_x = cpu / med(ceil, "cpu") if ceil else float("nan")
    rps_x = rps / med(ceil, "rps") if ceil else float("nan")
    lo, hi = min(v["rps"] for v in vals), max(v["rps"] for v in vals)
    t = targets.get((s, w))
    tgt = f"<={t:.1f}x" if t else ""
    err = sum(v["errors"] for v in vals)
    print(f"{s:8} {w:8} {cpu:10.1f} {cpu_x:6.2f}x {tgt:>7} {rps:8.0f} {lo:7.0f}-{hi:<7.0f} {rps_x:7.1%} {med(vals, 'p50'):7.0f} {med(vals, 'p99'):7.0f} {med(vals, 'client'):5.0%} {err:6d}")
half = {s: vals for (s, w), vals in by.items() if w == "mix@50%"}
if half:
    print()
    print("90/10 mix open-loop at 50% of each system's median closed-loop mix req/s (swimkv-bench --rate); medians")
    print(f"{'system':8} {'rate':>8} {'req/s':>8} {'p50 us':>7} {'p99 us':>7} {'p99 x ceil':>10} {'p99 min-max':>13} {'CPU us/req':>10} {'errors':>6}")
    ceil = half.get("ceiling")
    for s, vals in sorted(half.items()):
        rate = vals[0]["rate"]
        p99x = med(vals, "p99") / med(ceil, "p99") if ceil else float("nan")
        err = sum(v["errors"] for v in vals)
        lo, hi = min(v["p99"] for v in vals), max(v["p99"] for v in vals)
        print(f"{s:8} {rate:8.0f} {med(vals, 'rps'):8.0f} {med(vals, 'p50'):7.0f} {med(vals, 'p99'):7.0f} {p99x:9.2f}x {lo:6.0f}-{hi:<6.0f} {med(vals, 'cpu'):10.1f} {err:6d}")
    print()
for w in ("get", "post", "mix"):
    d, m = by.get(("n3", w)), by.get(("n3m", w))
    if d and m:
        print(f"durable (n3) over in-memory (n3m), {w}: {med(d, 'cpu') / med(m, 'cpu'):.2f}x CPU per request")
    t = by.get(("n3s", w))
    if t and m:
        print(f"TLS + tokens + secret (n3s) over plain (n3m), {w}: {med(t, 'cpu') / med(m, 'cpu'):.2f}x CPU per request (issue 15: <= 1.3x for get)")
PY
