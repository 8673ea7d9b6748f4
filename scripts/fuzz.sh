#!/usr/bin/env bash
# Fuzzes the decoders a node runs on network input (cargo-fuzz / libFuzzer).
#
# Targets (fuzz/fuzz_targets/): `datagram` (UDP bytes -> envelope -> SWIM datagram
# -> SWIM core) and `rpc_frame` (TCP bytes -> length-delimited codec -> envelope ->
# ReplicaRequest / ReplicaResponse -> replica ops). Each runs for FUZZ_SECONDS.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_TARGETS    targets to run (default: "datagram rpc_frame")
#   FUZZ_SANITIZER  address (default) or none (faster, catches panics only)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-max_len=65536", or
#                   "-fork=1 -ignore_crashes=1" to keep going past a known crash
#
# The machine has a stable toolchain only: cargo-fuzz needs nightly flags
# (-Zsanitizer, sancov passes), which RUSTC_BOOTSTRAP=1 unlocks on stable.
# The working corpus is fuzz/corpus/<target> (not kept), seeded from the valid
# encodings in fuzz/seeds/<target> (kept); a crash is written to
# fuzz/artifacts/<target>/ and replayed with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a <target> <artifact>)
# and then belongs, minimised, in fuzz/regressions/<target>/ (replayed by
# `cargo test` in fuzz/) beside a unit test next to the fixed code.
# Exits non-zero when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-datagram rpc_frame}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq g++
  else
    echo "a C++ compiler is needed to build libFuzzer" >&2
    exit 1
  fi
fi

# -O: optimised; -a: with debug assertions and overflow checks, so an arithmetic
# overflow on hostile input is a crash, not a silent wrap.
cargo fuzz build -O -a --sanitizer "$sanitizer"

failed=""
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  echo "== fuzzing $t for ${seconds}s (sanitizer: $sanitizer)"
  # shellcheck disable=SC2086
  if cargo fuzz run -O -a --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -dict="$t.dict" ${FUZZ_ARGS:-} >"$log" 2>&1; then
    grep -E '^#[0-9]+ +(DONE|NEW|REDUCE|pulse)' "$log" | tail -n 1 || true
    grep -E '^(Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' "$log" || true
  else
    echo "!! $t crashed or failed; log: fuzz/$log" >&2
    grep -E 'panicked|ERROR: |SUMMARY|Test unit written to' "$log" >&2 || tail -n 30 "$log" >&2
    failed="$failed $t"
  fi
done

if [ -n "$failed" ]; then
  echo "fuzzing failed:$failed (artifacts under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crash in:$(printf ' %s' $targets)"
