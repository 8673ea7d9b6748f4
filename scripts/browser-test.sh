#!/usr/bin/env bash
# Browser test of the live dashboard (GET /, assets/dashboard.html) in headless Chromium.
#
# Starts a 24-node cluster with ./init.sh in its own run folder, writes a few hundred
# keys, then loads the dashboard the way a browser does (Chromium's --dump-dom and
# --screenshot; nothing else to install) and checks its contract:
#   1. healthy:    #status reads "live", <table id="members"> has one
#                  <tr data-member data-state="alive"> per node, <svg id="ring"> has a
#                  mark for every member          -> screenshots/healthy-24.png
#   2. two killed: after kill -9 of two nodes the page shows exactly those two rows
#                  data-state="dead" and the others alive within DETECT_SECS
#                                                 -> screenshots/two-killed.png
# Ends with "browser test: N passed, N failed"; exit status 0 only if both passed.
#
#   scripts/browser-test.sh                   ports 8080-8103 (+10000 for peer RPC)
#   BASE_PORT=9200 scripts/browser-test.sh    another port range (e.g. in CI)
#
# Other knobs: RUN_DIR (default run/browser), KILL_OFFSETS (default "5 13": node indexes
# to kill, never 0, which serves the page; these two rows are visible in the 1400x1100
# screenshot), DETECT_SECS (20), CHECK_EVERY (2), KEYS (300), CHROMIUM (/usr/bin/chromium;
# Debian's package is installed with apt-get if it is missing, which needs root).
#
# The dashboard's JavaScript fills the page after load (a plain --dump-dom sees an empty
# table), so every Chromium run uses --virtual-time-budget: the page's timers run (two or
# three 1 s polls) and virtual time stands still while its fetches are in flight. Each
# check is a fresh page load (about 1-2 s of wall time), so the detection time printed
# has the resolution of one check; request rates on the page are per virtual second and
# only count requests made while that page was open.
set -euo pipefail
cd "$(dirname "$0")/.."

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
T_START=$(now_ms)

NODES=${NODES:-24}
BASE_PORT=${BASE_PORT:-8080}
RUN_DIR=${RUN_DIR:-run/browser}
KILL_OFFSETS=${KILL_OFFSETS:-5 13}
DETECT_SECS=${DETECT_SECS:-20}
CHECK_EVERY=${CHECK_EVERY:-2}
KEYS=${KEYS:-300}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
CHROME_TIMEOUT=${CHROME_TIMEOUT:-30}
DUMP_BUDGET_MS=${DUMP_BUDGET_MS:-2500}
SHOT_BUDGET_MS=${SHOT_BUDGET_MS:-5000}
SHOTS=screenshots
URL="http://127.0.0.1:$BASE_PORT/"
TOTAL=2 PASSED=0 FAILED=0
STARTED=0 CHROME_PID= TMP_BASE=

log() { echo "browser test: $*"; }
pass() { PASSED=$((PASSED + 1)); log "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); log "FAIL $*" >&2; }
die() { log "error: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$CHROME_PID" ]; then kill "$CHROME_PID" 2>/dev/null; wait "$CHROME_PID" 2>/dev/null; fi
  if [ "$STARTED" = 1 ]; then RUN_DIR="$RUN_DIR" ./init.sh stop >/dev/null 2>&1; fi
  [ -n "$TMP_BASE" ] && rm -rf "$TMP_BASE"
  local not_run=$((TOTAL - PASSED - FAILED))
  [ "$not_run" -gt 0 ] && { log "$not_run test(s) not run" >&2; FAILED=$((FAILED + not_run)); }
  [ "$FAILED" -gt 0 ] && [ "$rc" -eq 0 ] && rc=1
  log "total runtime $(secs $(( $(now_ms) - T_START ))) s"
  echo "browser test: $PASSED passed, $FAILED failed"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. Chromium
if [ ! -x "$CHROMIUM" ]; then
  [ "$CHROMIUM" = /usr/bin/chromium ] || die "CHROMIUM=$CHROMIUM is not executable"
  [ "$(id -u)" -eq 0 ] || die "/usr/bin/chromium is missing; install it (apt-get install chromium) or run as root"
  command -v apt-get >/dev/null || die "/usr/bin/chromium is missing and there is no apt-get to install it"
  log "installing chromium with apt-get"
  t=$(now_ms)
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || die "apt-get install chromium failed"
  [ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is missing"
  log "chromium installed in $(secs $(( $(now_ms) - t ))) s"
fi
command -v curl >/dev/null || die "curl not found"
log "using $("$CHROMIUM" --version 2>/dev/null | head -n1)"

TMP_BASE=$(mktemp -d "${TMPDIR:-/tmp}/swimkv-browser.XXXXXX")
mkdir -p "$RUN_DIR" "$SHOTS"
CHROME_LOG="$RUN_DIR/chromium.log"
: > "$CHROME_LOG"
rm -f "$RUN_DIR"/failure-*.png "$RUN_DIR"/dom-*.html*

# chrome <args...>: one headless Chromium run with a fresh profile, bounded by CHROME_TIMEOUT.
chrome() {
  local prof rc=0
  prof=$(mktemp -d "$TMP_BASE/profile.XXXXXX")
  timeout -k 5 "$CHROME_TIMEOUT" "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$prof" --window-size=1400,1100 "$@" 2>>"$CHROME_LOG" &
  CHROME_PID=$!
  wait "$CHROME_PID" || rc=$?
  CHROME_PID=
  rm -rf "$prof"
  return "$rc"
}
# dump <file>: the page's DOM after its first polls.
dump() { chrome --virtual-time-budget="$DUMP_BUDGET_MS" --dump-dom "$URL" > "$1"; }
# shot <file.png>
shot() {
  rm -f "$1"
  chrome --virtual-time-budget="$SHOT_BUDGET_MS" --screenshot="$1" "$URL" >/dev/null || true
  [ -s "$1" ] || { log "no screenshot written to $1 (see $CHROME_LOG)" >&2; return 1; }
}
# parse <dom-file>: sets STATUS, ROWS (count), ALIVE/SUSPECT/DEAD (counts), RING (members with
# ring marks); writes "<id> <state>" lines to <dom-file>.rows and ring member ids to <dom-file>.ring.
parse() {
  local dom=$1
  tr '\n' ' ' < "$dom" | grep -o '<table id="members".*</table>' \
    | grep -o '<tr data-member="[^"]*" data-state="[^"]*"' \
    | sed -E 's/<tr data-member="([^"]*)" data-state="([^"]*)"/\1 \2/' > "$dom.rows" || true
  tr '\n' ' ' < "$dom" | grep -o '<svg id="ring".*</svg>' | grep -o '<path class="vn[^>]*data-member="[^"]*"' \
    | sed -E 's/.*data-member="([^"]*)"/\1/' | sort -u > "$dom.ring" || true
  STATUS=$(grep -o '<span id="status"[^>]*>[^<]*' "$dom" | sed 's/.*>//' | head -n1 || true)
  ROWS=$(wc -l < "$dom.rows")
  ALIVE=$(grep -c ' alive$' "$dom.rows" || true)
  SUSPECT=$(grep -c ' suspect$' "$dom.rows" || true)
  DEAD=$(grep -c ' dead$' "$dom.rows" || true)
  RING=$(wc -l < "$dom.ring")
}
summary() { echo "status \"${STATUS:-?}\", $ROWS rows: $ALIVE alive, $SUSPECT suspect, $DEAD dead; ring marks for $RING members"; }

# ---- 2. cluster
for off in $KILL_OFFSETS; do
  [ "$off" -ge 1 ] && [ "$off" -lt "$NODES" ] || die "KILL_OFFSETS must be node indexes 1..$((NODES - 1)) (0 serves the page)"
done
[ "$(echo "$KILL_OFFSETS" | wc -w)" -eq 2 ] || die "KILL_OFFSETS must name exactly two nodes"
if [ -n "$(RUN_DIR="$RUN_DIR" ./init.sh status)" ]; then
  die "a cluster started from $RUN_DIR is still running; stop it first: RUN_DIR=$RUN_DIR ./init.sh stop"
fi
for port in $(seq "$BASE_PORT" $((BASE_PORT + NODES - 1))); do
  for p in "$port" $((port + 10000)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "port $p is already in use; pick a free range with BASE_PORT=... (needs $BASE_PORT-$((BASE_PORT + NODES - 1)) and +10000)"
    fi
  done
done
RUN_DIR="$RUN_DIR" ./init.sh clean >/dev/null 2>&1 || true # no earlier run's data
log "starting $NODES nodes on ports $BASE_PORT-$((BASE_PORT + NODES - 1)) (RUN_DIR=$RUN_DIR)"
STARTED=1
if ! out=$(NODES=$NODES BASE_PORT=$BASE_PORT RUN_DIR=$RUN_DIR ./init.sh 2>&1); then
  echo "$out" >&2
  die "init.sh could not start the cluster (logs in $RUN_DIR/logs/)"
fi
echo "$out" | head -n1
[ "$(RUN_DIR="$RUN_DIR" ./init.sh status | wc -l)" -eq "$NODES" ] || die "init.sh did not leave $NODES nodes running"

# ---- 3. some data, so the page has keys to count
t=$(now_ms)
codes=$(
  for i in $(seq 0 $((NODES - 1))); do
    args=()  # one curl per node, its keys over one keep-alive connection
    for k in $(seq "$i" "$NODES" $((KEYS - 1))); do args+=(-o /dev/null "http://127.0.0.1:$((BASE_PORT + i))/d/browser-test-$k"); done
    [ ${#args[@]} -gt 0 ] && curl -s -w '%{http_code}\n' --max-time 5 -X POST -d "value of a browser test key" "${args[@]}" || true
  done
)
ok=$(echo "$codes" | grep -c '^200$' || true)
log "wrote $ok/$KEYS keys in $(secs $(( $(now_ms) - t ))) s"
[ "$ok" -eq "$KEYS" ] && [ "$KEYS" -gt 0 ] || log "warning: $((KEYS - ok)) writes were not acknowledged with 200"

# ---- 4. healthy page
DOM="$RUN_DIR/dom-healthy.html"
if dump "$DOM"; then
  parse "$DOM"
  log "healthy page: $(summary)"
  problems=()
  [ "$STATUS" = live ] || problems+=("#status reads \"$STATUS\", not \"live\"")
  [ "$ROWS" -eq "$NODES" ] || problems+=("members table has $ROWS rows, not $NODES")
  [ "$ALIVE" -eq "$NODES" ] || problems+=("$ALIVE rows are data-state=\"alive\", not $NODES")
  for port in $(seq "$BASE_PORT" $((BASE_PORT + NODES - 1))); do
    grep -qx "127.0.0.1:$port alive" "$DOM.rows" || problems+=("no alive row for 127.0.0.1:$port")
  done
  [ "$RING" -eq "$NODES" ] || problems+=("svg#ring has marks for $RING members, not $NODES")
  if shot "$SHOTS/healthy-24.png"; then :; else problems+=("screenshot failed"); fi
  if [ ${#problems[@]} -eq 0 ]; then
    pass "healthy: all $NODES members alive, status live ($SHOTS/healthy-24.png)"
  else
    fail "healthy: $(IFS=';'; echo "${problems[*]}") (DOM in $DOM)"
  fi
else
  fail "healthy: chromium could not dump $URL (see $CHROME_LOG)"
fi

# ---- 5. kill -9 two nodes, watch the page
declare -a kill_pids=() kill_ids=()
for off in $KILL_OFFSETS; do
  port=$((BASE_PORT + off))
  pid=$(awk -v p="$port" '$2 == p { print $1 }' "$RUN_DIR/pids")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || die "no running node on port $port in $RUN_DIR/pids"
  kill_pids+=("$pid"); kill_ids+=("127.0.0.1:$port")
done
printf '%s dead\n' "${kill_ids[@]}" | sort > "$TMP_BASE/expected-dead"
log "kill -9 ${kill_ids[*]} (pids ${kill_pids[*]})"
t_kill=$(now_ms)
kill -9 "${kill_pids[@]}"
deadline=$((t_kill + DETECT_SECS * 1000))
DOM="$RUN_DIR/dom-killed.html"
seen=0 prev=
while :; do
  t_check=$(now_ms)
  if dump "$DOM"; then
    parse "$DOM"
    log "  +$(secs $((t_check - t_kill))) s: $(summary)"
    if [ "$STATUS" = live ] && [ "$ROWS" -eq "$NODES" ] && [ "$DEAD" -eq 2 ] && [ "$ALIVE" -eq $((NODES - 2)) ] \
      && grep ' dead$' "$DOM.rows" | sort | cmp -s - "$TMP_BASE/expected-dead"; then
      seen=1; break
    fi
  else
    log "  +$(secs $((t_check - t_kill))) s: chromium could not dump the page" >&2
  fi
  prev=$t_check
  [ "$(now_ms)" -lt "$deadline" ] || break
  wait_ms=$((t_check + CHECK_EVERY * 1000 - $(now_ms)))
  [ "$wait_ms" -gt 0 ] && sleep "$(secs "$wait_ms")"
done
if [ "$seen" = 1 ]; then
  detect="$(secs $((t_check - t_kill))) s"
  [ -n "$prev" ] && detect="$detect (the check at +$(secs $((prev - t_kill))) s did not show it yet)"
  log "the page showed ${kill_ids[*]} dead and $((NODES - 2)) alive $detect after kill -9"
  # Members still alive should keep their ring marks; dead ones may have left the ring.
  missing=$(grep ' alive$' "$DOM.rows" | cut -d' ' -f1 | sort | comm -23 - "$DOM.ring")
  if [ -n "$missing" ]; then
    fail "two killed: alive members without ring marks: $missing (DOM in $DOM)"
  elif shot "$SHOTS/two-killed.png"; then
    pass "two killed: exactly ${kill_ids[*]} dead, $((NODES - 2)) alive on the page after $(secs $((t_check - t_kill))) s ($SHOTS/two-killed.png)"
  else
    fail "two killed: screenshot failed"
  fi
else
  shot "$RUN_DIR/failure-two-killed.png" || true
  fail "two killed: within ${DETECT_SECS} s the page never showed exactly ${kill_ids[*]} dead and $((NODES - 2)) alive; last: $(summary) (DOM in $DOM, screenshot $RUN_DIR/failure-two-killed.png)"
fi

# ---- 6. stop
RUN_DIR="$RUN_DIR" ./init.sh stop >/dev/null
STARTED=0
log "cluster stopped"
[ "$FAILED" -eq 0 ]
