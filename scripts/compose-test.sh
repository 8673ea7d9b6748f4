#!/usr/bin/env bash
# The compose cluster end to end: builds the base image if missing
# (scripts/docker-base.sh), the swimkv image from the release binary, starts
# compose.yaml's 5 nodes under a project name of its own, waits until node1 sees
# 5 members alive (each named by its service's DNS name) and every container
# is healthy (HEALTHCHECK: swimkv healthcheck), round-trips a value through the
# published port, and removes the project's containers, network and volumes.
#
#   scripts/compose-test.sh            # host port 9080 (SWIMKV_PUBLISH to change)
#   SKIP_BUILD=1 scripts/compose-test.sh   # use the existing target/release/swimkv
#
# Needs a Docker engine and docker compose (v2) or docker-compose (v1).
set -euo pipefail
cd "$(dirname "$0")/.."
export SWIMKV_PUBLISH=${SWIMKV_PUBLISH:-9080}
PROJECT=swimkv-compose-test-$$
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
COMPOSE+=(-p "$PROJECT" -f compose.yaml)
log() { printf '[compose-test] %s\n' "$*" >&2; }
cleanup() { "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

[[ "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --quiet --bin swimkv
t0=$(date +%s)
bash scripts/docker-base.sh
"${COMPOSE[@]}" up -d --build >/dev/null 2>&1 || { "${COMPOSE[@]}" up -d --build; exit 1; }
base="http://127.0.0.1:$SWIMKV_PUBLISH"
alive=0
for _ in $(seq 1 120); do
  alive=$(curl -s --max-time 2 "$base/cluster/members" | grep -o '"state":"alive"' | wc -l || true)
  [[ "$alive" -eq 5 ]] && break
  sleep 0.5
done
if [[ "$alive" -ne 5 ]]; then
  log "node1 sees $alive of 5 alive"; "${COMPOSE[@]}" logs --tail 20 >&2; exit 1
fi
names=$(curl -s --max-time 2 "$base/cluster/members" | grep -o '"id":"node[1-5]:8080"' | sort -u | wc -l)
[[ "$names" -eq 5 ]] || { log "members are not named node1..node5:8080"; exit 1; }
healthy=0
for _ in $(seq 1 60); do
  healthy=$("${COMPOSE[@]}" ps | grep -c '(healthy)' || true)
  [[ "$healthy" -eq 5 ]] && break
  sleep 1
done
[[ "$healthy" -eq 5 ]] || { log "$healthy of 5 containers healthy"; "${COMPOSE[@]}" ps >&2; exit 1; }
for _ in $(seq 1 60); do
  curl -sf -o /dev/null --max-time 2 "$base/ready" && break
  sleep 0.5
done
curl -sf --max-time 5 -X POST "$base/d/compose-test" -d "round trip" >/dev/null
got=$(curl -sf --max-time 5 "$base/d/compose-test")
[[ "$got" == "round trip" ]] || { log "read back ${got@Q}"; exit 1; }
echo "compose-test: 5 containers healthy, 5 members alive by DNS name, a value round-tripped through port $SWIMKV_PUBLISH; $(($(date +%s) - t0)) s"
