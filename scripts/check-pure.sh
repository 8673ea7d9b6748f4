#!/usr/bin/env bash
# The pure cores (DESIGN.md section 3) import neither actix nor tokio and read no
# clock or thread RNG. Fails listing the offending lines.
set -euo pipefail
cd "$(dirname "$0")/.."
pure="src/membership/swim.rs src/membership/swim/apply.rs src/membership/swim/probe.rs src/membership/swim/send.rs src/membership/member.rs src/membership/gossip.rs src/membership/suspicion.rs
src/membership/message.rs src/membership/clock.rs src/membership/swim/receive.rs src/membership/swim/contact.rs
src/ring/hash.rs src/ring/ring.rs src/ring/snapshot.rs src/storage/hlc.rs src/storage/record.rs
src/storage/memory.rs src/storage/ops.rs src/storage/replica.rs src/storage/key.rs
src/storage/engine.rs src/storage/segments.rs src/storage/hints.rs src/storage/held.rs src/replication/quorum.rs
src/replication/coordinator.rs src/replication/coordinator/op.rs src/replication/placement.rs
src/replication/handoff.rs src/replication/stabilization.rs src/transport/wire.rs
src/security/tokens.rs src/security/access.rs"
[ -f src/replication/rebalance.rs ] && pure="$pure src/replication/rebalance.rs"
# shellcheck disable=SC2086
if grep -nE 'actix|tokio|Instant::now|SystemTime::now|thread_rng|rand::rng\(\)|std::net|std::thread' $pure; then
  echo "pure cores must not use actix, tokio, sockets, threads, the clock or a thread RNG (lines above)" >&2
  exit 1
fi
echo "pure cores: ok"
