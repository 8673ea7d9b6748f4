#!/usr/bin/env bash
# Starts a local swimkv cluster: NODES nodes on ports BASE_PORT.. (default 24 on 8080-8103).
# The first node starts alone, the others join through it. Logs go to run/logs/,
# PIDs to run/pids, each node's data to run/data/<port>. Waits until every node
# sees every node alive and answers /ready 200, and says how long it took.
#
#   ./init.sh            start (builds the release binary if needed); a cluster
#                        stopped before comes back with its data
#   ./init.sh stop       stop exactly the processes this script started (SIGTERM:
#                        durable nodes sync, keep their data and their place)
#   ./init.sh clean      remove the data of a stopped cluster (run/data)
#   ./init.sh status     show which of them are running
#   NODES=5 BASE_PORT=9000 ./init.sh     another size or first port
#   SWIMKV_ARGS="-n 3 -r 2 -w 2" ./init.sh   extra flags for every node
#   SWIMKV_TOKEN=<read token> ./init.sh     the token the convergence check sends
#                        (nodes run with --auth-tokens); with --tls-cert FILE in
#                        SWIMKV_ARGS the check speaks HTTPS and trusts FILE
set -euo pipefail
cd "$(dirname "$0")"
NODES=${NODES:-24}
BASE_PORT=${BASE_PORT:-8080}
RUN_DIR=${RUN_DIR:-run}
LOGS="$RUN_DIR/logs"
PIDS="$RUN_DIR/pids"
DATA="$RUN_DIR/data"
BIN=${SWIMKV_BIN:-target/release/swimkv}
WAIT_SECS=${WAIT_SECS:-60}

running_pids() {
  [ -f "$PIDS" ] || return 0
  while read -r pid port; do
    if kill -0 "$pid" 2>/dev/null; then echo "$pid $port"; fi
  done < "$PIDS"
}

stop() {
  [ -f "$PIDS" ] || { echo "no cluster started from here ($PIDS missing)"; return 0; }
  local pids
  pids=$(running_pids | awk '{print $1}')
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 100); do
      pids=$(running_pids | awk '{print $1}')
      [ -z "$pids" ] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
  fi
  rm -f "$PIDS"
  echo "stopped (data kept in $DATA/; ./init.sh clean removes it)"
}

clean() {
  if [ -n "$(running_pids)" ]; then
    echo "the cluster is running: ./init.sh stop first" >&2
    exit 1
  fi
  rm -rf "$DATA"
  echo "removed $DATA/"
}

# Each node's --data-dir (none when SWIMKV_ARGS asks for --in-memory).
data_dir() {
  case " ${SWIMKV_ARGS:-} " in
    *" --in-memory "*) ;;
    *) echo "--data-dir $DATA/$1" ;;
  esac
}

# HTTPS when the nodes serve TLS (trusting their certificate), and the token.
SCHEME=http
CURL_OPTS=()
case " ${SWIMKV_ARGS:-} " in
  *" --tls-cert "*)
    SCHEME=https
    CURL_OPTS+=(--cacert "$(echo " $SWIMKV_ARGS " | sed -E 's/.* --tls-cert ([^ ]+) .*/\1/')") ;;
esac
[ -n "${SWIMKV_TOKEN:-}" ] && CURL_OPTS+=(-H "Authorization: Bearer $SWIMKV_TOKEN")

# /ready 200: joined and serving (a fresh cluster's first node waits
# --first-node-wait-ms before it forms the cluster).
ready() {
  curl -sf -o /dev/null --max-time 1 "${CURL_OPTS[@]}" "$SCHEME://127.0.0.1:$1/ready" 2>/dev/null
}
alive_seen_by() {
  curl -s --max-time 1 "${CURL_OPTS[@]}" "$SCHEME://127.0.0.1:$1/cluster/members" 2>/dev/null | grep -o '"state":"alive"' | wc -l
}

start() {
  if [ -n "$(running_pids)" ]; then
    echo "a cluster started from here is still running: ./init.sh stop first" >&2
    exit 1
  fi
  if [ -z "${SWIMKV_BIN:-}" ]; then
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
    cargo build --release --quiet --bin swimkv
  fi
  mkdir -p "$LOGS"
  : > "$PIDS"
  local t0 last
  t0=$(date +%s%N)
  last=$((BASE_PORT + NODES - 1))
  # shellcheck disable=SC2086
  "$BIN" "$BASE_PORT" $(data_dir "$BASE_PORT") ${SWIMKV_ARGS:-} > "$LOGS/$BASE_PORT.log" 2>&1 &
  echo "$! $BASE_PORT" >> "$PIDS"
  for _ in $(seq 1 100); do
    curl -s --max-time 1 "${CURL_OPTS[@]}" "$SCHEME://127.0.0.1:$BASE_PORT/health" >/dev/null 2>&1 && break
    sleep 0.05
  done
  for port in $(seq $((BASE_PORT + 1)) "$last"); do
    # shellcheck disable=SC2086
    "$BIN" "$port" "$BASE_PORT" $(data_dir "$port") ${SWIMKV_ARGS:-} > "$LOGS/$port.log" 2>&1 &
    echo "$! $port" >> "$PIDS"
  done
  local deadline=$(( $(date +%s) + WAIT_SECS ))
  while :; do
    local ok=1
    for port in $(seq "$BASE_PORT" "$last"); do
      if [ "$(alive_seen_by "$port")" -ne "$NODES" ] || ! ready "$port"; then ok=0; break; fi
    done
    [ $ok -eq 1 ] && break
    if [ "$(date +%s)" -ge $deadline ]; then
      echo "not every node sees $NODES alive and answers /ready 200 after ${WAIT_SECS}s; see $LOGS/" >&2
      exit 1
    fi
    sleep 0.1
  done
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "swimkv: $NODES nodes on ports $BASE_PORT-$last, every node sees $NODES alive and is ready after ${ms} ms"
  echo "  dashboard: $SCHEME://127.0.0.1:$BASE_PORT/"
  echo "  try:       curl -X POST localhost:$BASE_PORT/d/hello -d world; curl localhost:$last/d/hello"
  echo "  logs:      $LOGS/   data: $DATA/   pids: $PIDS   stop: ./init.sh stop"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  clean) clean ;;
  status) running_pids | awk '{print "pid " $1 " port " $2}' ;;
  *) echo "usage: $0 [start|stop|clean|status]" >&2; exit 2 ;;
esac
