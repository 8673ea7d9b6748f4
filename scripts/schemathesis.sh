#!/usr/bin/env bash
# Fuzzes one swimkv node's HTTP API with schemathesis, driven by the node's own
# OpenAPI document (GET /openapi.json, the file assets/openapi.json).
#
#   scripts/schemathesis.sh                          # 50 examples per operation, port 18500
#   PORT=19000 MAX_EXAMPLES=300 SEED=42 scripts/schemathesis.sh
#
# Environment (all optional):
#   PORT              HTTP port of the node (default 18500; it also uses UDP PORT and TCP PORT+10000)
#   MAX_EXAMPLES      test cases per operation and phase (default 50)
#   SEED              schemathesis seed (default: random; schemathesis prints it)
#   VENV              the Python venv (default target/venv-schemathesis)
#   SCHEMATHESIS      pip requirement (default 'schemathesis>=4,<5': the flags below are 4.x's)
#   SKIP_BUILD=1      use the existing target/release/swimkv
#   KEEP=1            keep the node log, configuration and reports (kept anyway on failure)
#   SCHEMATHESIS_ARGS extra arguments for `schemathesis run`
#   AUTH=0            run the node without tokens (default: --auth-tokens with one
#                     admin token, sent on every request, and a cluster secret)
#
# What it does: creates the venv and installs schemathesis if missing, builds the
# release binary, starts ONE node (`swimkv <port>`, as the README says), runs
# every check against every operation except the disruptive ones (tag
# `disruptive`: POST /cluster/leave stops the node), lets `not_a_server_error`
# accept a 503 exactly on the operations that document one, checks that the node
# survived and never saw /cluster/leave, stops the node by its PID, and exits
# with schemathesis' status (1 if the node died or was asked to leave).
# The last line is the summary: "... N passed, N failed ...".

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${PORT:-18500}
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
VENV=${VENV:-$ROOT/target/venv-schemathesis}
SCHEMATHESIS=${SCHEMATHESIS:-schemathesis>=4,<5}
BASE="http://127.0.0.1:$PORT"
started=$(date +%s)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/swimkv-schemathesis.XXXXXX")
NODE_PID=""
status=2
log() { printf '[schemathesis.sh] %s\n' "$*" >&2; }
cleanup() {
    if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [[ "$status" == 0 && "${KEEP:-0}" != 1 ]]; then
        rm -rf "$WORK"
    else
        log "node log, configuration and reports kept in $WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. schemathesis in its own venv.
if [[ ! -x "$VENV/bin/schemathesis" ]]; then
    log "creating $VENV and installing '$SCHEMATHESIS'"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "$SCHEMATHESIS"
fi
log "$("$VENV/bin/schemathesis" --version)"

# 2. The release binary.
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release --bin swimkv"
    cargo build --release --bin swimkv >&2
fi
BIN=$ROOT/target/release/swimkv
[[ -x "$BIN" ]] || { log "no $BIN"; exit 2; }

# 3. One node.
if curl -s -o /dev/null --max-time 1 "$BASE/health"; then
    log "something already answers on $BASE: choose another PORT"
    exit 2
fi
node_args=(--in-memory)
TOKEN=""
if [[ "${AUTH:-1}" != 0 ]]; then
    TOKEN="schemathesis-admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
    printf '%s admin\n' "$TOKEN" >"$WORK/tokens"
    node_args+=(--cluster-secret "schemathesis-cluster-secret" --auth-tokens "$WORK/tokens")
fi
"$BIN" "$PORT" "${node_args[@]}" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
log "node pid $NODE_PID on $BASE"
for _ in $(seq 1 100); do
    curl -sf -o /dev/null --max-time 1 "$BASE/health" && break
    kill -0 "$NODE_PID" 2>/dev/null || { log "the node exited:"; cat "$WORK/node.log" >&2; exit 2; }
    sleep 0.1
done
# A first node waits --first-node-wait-ms (2 s) before it serves alone.
for _ in $(seq 1 100); do
    curl -sf -o /dev/null --max-time 1 "$BASE/ready" && break
    sleep 0.1
done
curl -sf -o "$WORK/openapi.json" "$BASE/openapi.json" || { log "no $BASE/openapi.json"; exit 2; }

# 4. Configuration: a 503 is not a server error where the document promises one;
# a conditional write may answer 412 to schema-valid data (the key changed), and
# 400 (If-Match and If-None-Match together: a rule OpenAPI 3.0 cannot state).
"$VENV/bin/python" - "$WORK/openapi.json" >"$WORK/schemathesis.toml" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for path, item in sorted(doc["paths"].items()):
    for method, op in sorted(item.items()):
        if isinstance(op, dict) and "503" in op.get("responses", {}):
            print("[[operations]]")
            print(f'include-name = "{method.upper()} {path}"')
            print('checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]')
            if "412" in op.get("responses", {}):
                print('checks.positive_data_acceptance.expected-statuses = '
                      '["2xx", "3xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]')
            print()
PY
log "503 allowed on $(grep -c include-name "$WORK/schemathesis.toml") documented operations"

# 5. Fuzz everything but the disruptive operations.
args=(
    run "$BASE/openapi.json"
    --checks all
    --max-examples "$MAX_EXAMPLES"
    --exclude-tag disruptive
    --exclude-path /cluster/leave
    --request-timeout 10
    --report junit --report-dir "$WORK/report"
)
if [[ -n "${SEED:-}" ]]; then args+=(--seed "$SEED"); fi
# shellcheck disable=SC2206
if [[ -n "${SCHEMATHESIS_ARGS:-}" ]]; then args+=($SCHEMATHESIS_ARGS); fi
log "schemathesis ${args[*]}"
if [[ -n "$TOKEN" ]]; then
    # Every request carries the token; a run without it would test only the 401s.
    log "with an admin token in every request (not shown)"
    args+=(--header "Authorization: Bearer $TOKEN")
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/d/probe" | grep -qx 401 ||
        { log "the node does not ask for a token on /d/"; exit 2; }
fi
# schemathesis keeps its crash cache (`st replay <id>`) in ./.schemathesis: keep it out of the tree.
mkdir -p "$ROOT/target/schemathesis"
status=0
(cd "$ROOT/target/schemathesis" &&
    "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" "${args[@]}") |
    tee "$WORK/schemathesis.out" || status=$?

# 6. The node must have survived, and /cluster/leave must never have been called.
if ! kill -0 "$NODE_PID" 2>/dev/null || ! curl -sf -o /dev/null --max-time 5 "$BASE/health"; then
    log "the node did not survive the run; the end of its log:"
    tail -n 50 "$WORK/node.log" >&2
    status=1
else
    metrics=$(curl -sf --max-time 5 "$BASE/metrics" || true)
    if [[ "$metrics" == *'route="/cluster/leave"'* ]]; then
        log "a request reached /cluster/leave"
        status=1
    fi
    if [[ -n "$TOKEN" ]]; then
        refused=$(grep -E '^swimkv_auth_refused_total' <<<"$metrics" | awk '{s += $2} END {print s + 0}')
        served=$(grep -E '^swimkv_http_requests_total\{route="/d/\{key:\.\*\}".*status="200"\}' <<<"$metrics" | awk '{s += $2} END {print s + 0}')
        log "with the token: $served requests on /d/ answered 200, $refused refused by the token check"
        if [[ "$served" == 0 ]]; then
            log "no request on /d/ got through: the token was not sent"
            status=1
        fi
    fi
    # Documented 503s pass the checks; show any 5xx so a healthy node's are noticed.
    fives=$(grep -E '^swimkv_http_requests_total\{.*status="5[0-9][0-9]"\}' <<<"$metrics" || true)
    if [[ -n "$fives" ]]; then
        log "5xx answers the node counted:"
        printf '  %s\n' "$fives" >&2
    fi
fi

# 7. Summary: test cases from schemathesis' own count, operations from its JUnit report.
summary=$("$VENV/bin/python" - "$WORK/report" "$WORK/schemathesis.out" <<'PY'
import glob, re, sys, xml.etree.ElementTree as ET
out = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[2], encoding="utf-8", errors="replace").read())
m = re.search(r"Test cases:\s*\n\s*(\d+) generated(.*)", out)
cases = "no test case count"
if m:
    generated, rest = int(m.group(1)), m.group(2)
    unique = re.search(r"(\d+) unique failures?", rest)
    errored = re.search(r"(\d+) errored", rest)
    if unique or errored:
        # On failure schemathesis reports unique failures, not a pass count.
        failed = (int(unique.group(1)) if unique else 0) + (int(errored.group(1)) if errored else 0)
        cases = f"{generated} test cases, {failed} failed (unique failures and errors)"
    else:
        passed = re.search(r"(\d+) passed", rest)
        cases = f"{passed.group(1) if passed else 0} passed, 0 failed of {generated} test cases"
ok = bad = 0
for f in glob.glob(sys.argv[1] + "/*.xml"):
    for case in ET.parse(f).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            bad += 1
        else:
            ok += 1
print(f"{cases}; {ok} passed, {bad} failed of {ok + bad} suites (operations + stateful)")
PY
) || summary="(no summary)"
echo "schemathesis: $summary; exit status $status; $(($(date +%s) - started))s"
exit "$status"
