#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each briefly (default 20 s; FUZZ_SECONDS=N),
# two at a time (FUZZ_JOBS=N): each fuzzer is one busy thread. Each target's output is
# printed whole when it ends; any failure fails the run after all have run.
# Only a stable toolchain is assumed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the nightly
# flags it needs (-Zsanitizer) on stable.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-20}"
jobs="${FUZZ_JOBS:-2}"
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build -O
# shellcheck source=scripts/lib/parallel.sh
. ../scripts/lib/parallel.sh

run_target() {
  local target=$1
  mkdir -p "corpus/$target"
  # corpus/ (git-ignored) collects what the fuzzer finds; seeds/ are committed examples.
  # -timeout: an input that runs for 10 s is a hang and fails the run (libFuzzer's
  # default, 20 minutes, once stalled a run on a der PEM-reader loop).
  cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
}

for target in $targets; do
  if [ "${#parallel_running[@]}" -ge "$jobs" ]; then parallel_finish_oldest; fi
  parallel_start "fuzz $target (${seconds}s)" run_target "$target"
done
if ! parallel_wait_all; then
  echo "fuzz: FAIL: ${parallel_failed[*]} (the crashing input is in fuzz/artifacts/)" >&2
  exit 1
fi
