#!/usr/bin/env python3
"""Failure-detection benchmark: kill -9 of K of NODES init.sh nodes, ROUNDS times.

For every round it starts a fresh cluster with ./init.sh (its own RUN_DIR and ports),
preloads KEYS keys, waits SETTLE seconds, kills K random nodes with SIGKILL and polls
every survivor's /cluster/members until all of them see every victim dead (bounded by
TIMEOUT seconds). The detection time of a survivor is the `last_change_ms` it reports
for the victim minus the wall-clock time of the kill, so polling granularity does not
enter the numbers. It then reads every preloaded key back through survivors and counts
the false suspicions (refutations by survivors, from /metrics).
Stops every node it started.

    python3 bench/detect.py                      # 5 rounds, 2 of 24, default timings
    ROUNDS=10 SWIMKV_ARGS="--suspicion-mult 2" python3 bench/detect.py

Needs a release build (cargo build --release) and Python 3 (standard library only).
"""

import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = int(os.environ.get("NODES", "24"))
KILL = int(os.environ.get("KILL", "2"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
BASE_PORT = int(os.environ.get("BASE_PORT", "9500"))
KEYS = int(os.environ.get("KEYS", "2000"))
SETTLE = float(os.environ.get("SETTLE", "5"))
TIMEOUT = float(os.environ.get("TIMEOUT", "30"))
ARGS = os.environ.get("SWIMKV_ARGS", "")
BIN = os.path.join(ROOT, "target/release/swimkv")
BENCH = os.path.join(ROOT, "target/release/swimkv-bench")
RUN_DIR = os.path.join(ROOT, "run/detect")


def get(port, path, timeout=1.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def members(port):
    try:
        _, body = get(port, "/cluster/members")
        return {m["id"]: m for m in json.loads(body)["members"]}
    except Exception:  # a survivor busy for a moment: ask again next poll
        return None


def counter(port, name):
    try:
        _, body = get(port, "/metrics")
    except Exception:
        return None
    m = re.search(rf"^{name} (\d+)", body.decode(), re.M)
    return int(m.group(1)) if m else None


def init(cmd=""):
    env = dict(os.environ, NODES=str(NODES), BASE_PORT=str(BASE_PORT), RUN_DIR=RUN_DIR,
               SWIMKV_BIN=BIN, SWIMKV_ARGS=ARGS)
    return subprocess.run(["./init.sh"] + ([cmd] if cmd else []), cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)


def one_round(rng):
    out = init()
    if out.returncode != 0:
        sys.exit(f"init.sh failed: {out.stderr or out.stdout}")
    pids = {}
    with open(os.path.join(RUN_DIR, "pids")) as f:
        for line in f:
            pid, port = line.split()
            pids[int(port)] = int(pid)
    ports = sorted(pids)
    targets = ",".join(f"127.0.0.1:{p}" for p in ports)
    subprocess.run([BENCH, "--targets", targets, "--preload", "--ops", "1", "--get", "100",
                    "--keys", str(KEYS), "--value-size", "64", "--json"],
                   capture_output=True, check=True)
    time.sleep(SETTLE)
    victims = rng.sample(ports, KILL)
    survivors = [p for p in ports if p not in victims]
    refuted = {p: counter(p, "swimkv_swim_refutations_total") or 0 for p in survivors}
    killed_ms = time.time() * 1000
    for v in victims:
        os.kill(pids[v], signal.SIGKILL)
    seen = {}  # (survivor, victim) -> detection seconds
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and len(seen) < len(survivors) * KILL:
        for s in survivors:
            ms = members(s)
            if ms is None:
                continue
            for v in victims:
                m = ms.get(f"127.0.0.1:{v}")
                if m and m["state"] == "dead" and (s, v) not in seen:
                    seen[(s, v)] = (m["last_change_ms"] - killed_ms) / 1000
        time.sleep(0.1)
    # A live member that was suspected refutes it: its refutation counter counts
    # the false suspicions about it.
    false_suspicions = sum((counter(p, "swimkv_swim_refutations_total") or 0) - refuted[p]
                           for p in survivors)
    unreadable = 0
    for i in range(KEYS):
        port = survivors[i % len(survivors)]
        try:
            status, _ = get(port, f"/d/bench-{i}", timeout=3)
        except Exception:
            status = 0
        unreadable += status != 200
    init("stop")
    times = sorted(seen.values())
    missing = len(survivors) * KILL - len(times)
    return times, missing, false_suspicions, unreadable


def main():
    for exe in (BIN, BENCH):
        if not os.path.exists(exe):
            sys.exit(f"{exe} missing: run `cargo build --release` first")
    rng = random.Random(int(os.environ.get("SEED", str(int(time.time())))))
    worst = []
    print(f"kill -9 of {KILL} of {NODES} nodes, {ROUNDS} rounds, SWIMKV_ARGS='{ARGS}'")
    print("round  last survivor sees all dead  median  never  false suspicions  unreadable")
    for r in range(ROUNDS):
        times, missing, false_suspicions, unreadable = one_round(rng)
        last = times[-1] if times else float("nan")
        med = statistics.median(times) if times else float("nan")
        worst.append(last if not missing else float("inf"))
        print(f"{r + 1:5}  {last:26.2f} s  {med:5.2f} s  {missing:5}  {false_suspicions:16}  {unreadable:10}")
    under = sum(w < 5 for w in worst)
    print(f"all survivors saw every victim dead: median {statistics.median(worst):.2f} s, "
          f"max {max(worst):.2f} s, under 5 s in {under} of {ROUNDS} rounds")


if __name__ == "__main__":
    try:
        main()
    finally:
        init("stop")
