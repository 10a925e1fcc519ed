#!/usr/bin/env bash
# make fuzz: runs each fuzz target for SECONDS seconds (nightly and cargo-fuzz needed:
# rustup toolchain install nightly && cargo install cargo-fuzz).
#
# Seeds come from data/fuzz/TARGET (read only); what the fuzzer learns is kept in
# target/fuzz/corpus/TARGET, so a later run starts where the last one stopped. A crash
# or failed assertion is saved under target/fuzz/artifacts/TARGET/ and stops the run
# with exit 1; reproduce it with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz -a TARGET target/fuzz/artifacts/TARGET/crash-…
# Usage: tests/fuzz/run.sh SECONDS [TARGET…] (default: every target).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(list url headers)
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz is missing (cargo install cargo-fuzz)"; exit 1; }
cargo +nightly --version >/dev/null 2>&1 || { echo "fuzz: no nightly toolchain (rustup toolchain install nightly)"; exit 1; }

# Debug assertions on: an overflow is a finding, not a silent wrap.
cargo +nightly fuzz build --fuzz-dir tests/fuzz -a
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "target/fuzz/corpus/$t" "target/fuzz/artifacts/$t"
  log="target/fuzz/$t.log"
  echo "== fuzz $t for ${SECONDS_EACH}s (log: $log)"
  set +e
  cargo +nightly fuzz run --fuzz-dir tests/fuzz -a "$t" "target/fuzz/corpus/$t" "data/fuzz/$t" -- \
    -max_total_time="$SECONDS_EACH" -artifact_prefix="target/fuzz/artifacts/$t/" -print_final_stats=1 \
    > "$log" 2>&1
  code=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(wc -l < <(ls "target/fuzz/corpus/$t"))
  if [ "$code" -eq 0 ]; then
    echo "   $t: ${runs:-?} executions, corpus $corpus inputs, no finding"
  else
    status=1
    echo "   $t: FINDING (exit $code) after ${runs:-?} executions:"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/   /'
  fi
done
exit $status
