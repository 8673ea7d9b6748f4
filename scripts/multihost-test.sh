#!/usr/bin/env bash
# Multi-host test of swimkv: 5 "hosts" = 5 network namespaces, each with its own address.
#
# NEEDS ROOT (ip netns, veth pairs, a bridge). Runs no cargo: it uses the built binary.
#
# Topology (everything named after this script's PID, so parallel runs don't collide):
#   namespaces swimkv-mh-<PID>-1 .. -5   node i at <NET>.1i/24 (10.77.0.11 .. 10.77.0.15), lo up
#   namespace  swimkv-mh-<PID>-sw        holds the bridge that joins the five nodes
#   root veth  skmh<PID>                 <NET>.1/24 in the root namespace, a port of that bridge:
#                                        the load generator / checker runs in the root namespace
#                                        and reaches every node through it.
#   The bridge lives in its own namespace, not in the root one, because on hosts with Docker
#   (br_netfilter loaded, iptables FORWARD policy DROP) bridged traffic in the root namespace
#   goes through the host's firewall and is dropped; a fresh namespace has no rules, so the
#   test needs no iptables and changes nothing on the host's firewall. Partitions are
#   blackhole /32 routes inside the node namespaces (both sides), not iptables rules.
#   <NET> is 10.77.0 unless that /24 is already routed or addressed on the host; then the
#   first free one of 10.78.0 .. 10.99.0.
#
# Every node listens on port 8080 (HTTP + SWIM UDP; peer RPC TCP 18080) on its own address,
# with a cluster secret; nodes 2-5 join through node 1 (<NET>.11:8080). Durable data dirs
# and RUST_LOG=info logs are kept in the work dir.
#
# scripts/multihost_check.py drives the timeline, with a background load generator
# (about 2,000 distinct keys, plus overwrites and ~10% deletes of acknowledged keys,
# through random live nodes, one HTTP connection per request, 5 s timeout):
#   1. start 5 nodes, wait until every node sees 5 alive
#   2. steady load for a few seconds
#   3. partition {1,2} | {3,4,5} for 20 s (blackhole /32 routes inside the namespaces,
#      verified to cut TCP and UDP both ways), measure detection and heal times
#   4. kill -9 node 4, wait until the others see it dead
#   5. SIGTERM node 5 (graceful stop), wait for it to exit
#   6. SIGSTOP node 3 for 10 s, then SIGCONT
#   7. restart nodes 4 and 5 (same command and data dir), wait for 5 alive and /ready 200
#   8. stop the load, read every key through 2 different nodes and check it against the
#      history: 0 "lost" (acknowledged write not read back) and 0 "resurrected"
#      (acknowledged delete whose key reads an unexplained value) are required.
# Prints errors (non-200 answers, transport errors) per phase and a summary line
#   multihost: 5 nodes, 2000 keys, partition detected in X s, healed in Y s, ...
# Exit status 0 only if the check passes and every node sees all 5 alive at the end.
#
# Environment:
#   BREAK=1        show the checker is not vacuous: run the nodes with -n 3 -r 1 -w 1
#                  --allow-weak-quorum and, instead of step 4, cut node 4 off from its
#                  peers, write a burst of keys through it (acknowledged by its copy alone),
#                  kill -9 it, destroy its orphaned TCP sockets (ss -K: they would still
#                  deliver its queued replica writes after the heal, which a dead host
#                  would not), wipe its data dir and restart it empty at step 7: the
#                  script must then FAIL, reporting lost keys.
#   SWIMKV_BIN     binary to test (default target/release/swimkv)
#   KEYS           distinct keys the load writes (default 2000)
#   RATE           load operations per second, all threads together (default 70)
#   PORT           port of every node (default 8080)
#   WORK_DIR       work dir (default: a new temp dir, removed at exit)
#   KEEP_WORK=1    keep the work dir (data dirs, node logs, history.json) at exit
#   SEED           random seed of the load generator (default: random, printed)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "multihost: $*"; }
die() { echo "multihost: FAIL: $*" >&2; exit 1; }

BIN=${SWIMKV_BIN:-target/release/swimkv}
PORT=${PORT:-8080}
NODES=5
BREAK=${BREAK:-0}
KEEP_WORK=${KEEP_WORK:-0}
WORK_DIR=${WORK_DIR:-}

if [[ $(id -u) -ne 0 ]]; then
    echo "multihost: needs root: it creates network namespaces, veth pairs and a bridge (ip netns); run it as root (e.g. sudo)" >&2
    exit 1
fi
command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing"
command -v python3 >/dev/null || die "python3 is missing"
if ! ip netns list >/dev/null 2>&1; then
    echo "multihost: 'ip netns' is not usable here: $(ip netns list 2>&1 | head -1)" >&2
    exit 1
fi
[[ -x $BIN ]] || die "no binary at $BIN (build it first: cargo build --release)"
BIN=$(readlink -f "$BIN")

ME=$$
NS_PREFIX="swimkv-mh-$ME"
ROOT_LINK="skmh$ME"          # at most 4 + 7 characters: fits IFNAMSIZ (15)
SW_NS="$NS_PREFIX-sw"
CREATED_NS=()
CREATED_WORK=""
PY_PID=""

# Processes started by this run: the helper writes one node PID per line here.
pid_file() { if [[ -n $WORK_DIR ]]; then echo "$WORK_DIR/pids"; fi; }

is_our_swimkv() { # pid: the process runs our binary
    local exe
    exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
    [[ $exe == "$BIN" || $exe == "$BIN (deleted)" ]]
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $PY_PID ]] && kill -0 "$PY_PID" 2>/dev/null; then
        kill -TERM "$PY_PID" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 "$PY_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PY_PID" 2>/dev/null
    fi
    local pf
    pf=$(pid_file)
    if [[ -n $pf && -f $pf ]]; then
        while read -r pid; do
            [[ $pid =~ ^[0-9]+$ ]] || continue
            if is_our_swimkv "$pid"; then kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; fi
        done <"$pf"
        while read -r pid; do
            [[ $pid =~ ^[0-9]+$ ]] || continue
            for _ in $(seq 1 50); do is_our_swimkv "$pid" || break; sleep 0.1; done
        done <"$pf"
    fi
    for ns in "${CREATED_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    for _ in $(seq 1 50); do ip link show "$ROOT_LINK" >/dev/null 2>&1 || break; sleep 0.1; done
    ip link del "$ROOT_LINK" 2>/dev/null
    if [[ -n $CREATED_WORK && -d $CREATED_WORK ]]; then
        if [[ $KEEP_WORK == 1 ]]; then say "work dir kept: $CREATED_WORK"; else rm -rf "$CREATED_WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- leftovers of earlier runs of this script that died without cleaning up -----------------
stale_pid() { # pid: that run is gone (no such process, or it is not this script)
    [[ $1 != "$ME" ]] || return 1
    ! grep -qa multihost-test "/proc/$1/cmdline" 2>/dev/null
}
for ns in $(ip netns list | awk '{print $1}' | grep -E '^swimkv-mh-[0-9]+-' || true); do
    pid=${ns#swimkv-mh-}; pid=${pid%%-*}
    stale_pid "$pid" || continue
    say "removing leftover namespace $ns (run $pid is gone)"
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) == swimkv ]] && kill -KILL "$p" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
done
for link in $(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^skmh[0-9]+$' || true); do
    pid=${link#skmh}
    stale_pid "$pid" || continue
    say "removing leftover link $link (run $pid is gone)"
    ip link del "$link" 2>/dev/null || true
done

# --- a subnet nobody uses -------------------------------------------------------------------
exec 9>"/run/lock/swimkv-multihost.lock" 2>/dev/null || exec 9>"/tmp/swimkv-multihost.lock"
flock -w 30 9 || die "could not take the setup lock"
subnet_in_use() { # a.b.c: routed (other than by the default route) or addressed here
    local net=$1
    [[ -n $(ip -4 route show table all to match "$net.0/24" 2>/dev/null | grep -v '^default' | grep -v '^broadcast\|^local' || true) ]] && return 0
    [[ -n $(ip -4 route show table all root "$net.0/24" 2>/dev/null || true) ]] && return 0
    ip -4 -o addr show | grep -q " inet $net\." && return 0
    return 1
}
NET=""
for third in $(seq 77 99); do
    if subnet_in_use "10.$third.0"; then
        say "10.$third.0.0/24 is already in use on this host, trying the next one"
        continue
    fi
    NET="10.$third.0"; break
done
[[ -n $NET ]] || die "no free subnet in 10.77.0.0/24 .. 10.99.0.0/24"

# --- namespaces, bridge, veths --------------------------------------------------------------
ip netns add "$SW_NS"; CREATED_NS+=("$SW_NS")
ip -n "$SW_NS" link set lo up
ip -n "$SW_NS" link add br0 type bridge
ip -n "$SW_NS" link set dev br0 up
ip link add "$ROOT_LINK" type veth peer name uplink netns "$SW_NS"
ip -n "$SW_NS" link set dev uplink master br0
ip -n "$SW_NS" link set dev uplink up
ip addr add "$NET.1/24" dev "$ROOT_LINK"
ip link set dev "$ROOT_LINK" up
NS_LIST=()
for i in $(seq 1 $NODES); do
    ns="$NS_PREFIX-$i"
    ip netns add "$ns"; CREATED_NS+=("$ns"); NS_LIST+=("$ns")
    ip -n "$ns" link set lo up
    ip -n "$SW_NS" link add "p$i" type veth peer name eth0 netns "$ns"
    ip -n "$SW_NS" link set dev "p$i" master br0
    ip -n "$SW_NS" link set dev "p$i" up
    ip -n "$ns" addr add "$NET.1$i/24" dev eth0
    ip -n "$ns" link set dev eth0 up
done
flock -u 9
say "network: $NODES namespaces $NS_PREFIX-{1..$NODES} at $NET.11-$NET.1$NODES, root $ROOT_LINK $NET.1/24, bridge in $SW_NS"

if [[ -n $WORK_DIR ]]; then
    mkdir -p "$WORK_DIR"
else
    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/swimkv-multihost.XXXXXX")
    CREATED_WORK=$WORK_DIR
fi
: >"$WORK_DIR/pids"
say "work dir $WORK_DIR, binary $BIN"

ARGS=(--bin "$BIN" --work "$WORK_DIR" --net "$NET" --port "$PORT" --ns-prefix "$NS_PREFIX"
      --nodes "$NODES" --keys "${KEYS:-2000}" --rate "${RATE:-70}")
[[ -n ${SEED:-} ]] && ARGS+=(--seed "$SEED")
[[ $BREAK == 1 ]] && ARGS+=(--break)

python3 scripts/multihost_check.py "${ARGS[@]}" &
PY_PID=$!
rc=0
wait "$PY_PID" || rc=$?
PY_PID=""
if [[ $BREAK == 1 && $rc -ne 0 ]]; then
    say "BREAK=1: the check failed, as it must with a deliberately broken cluster"
fi
exit "$rc"
