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
logs=$(mktemp -d "${TMPDIR:-/tmp}/posture-fuzz.XXXXXX")
trap 'rm -rf "$logs"' EXIT

run_target() {
  local target=$1
  mkdir -p "corpus/$target"
  # corpus/ (git-ignored) collects what the fuzzer finds; seeds/ are committed examples.
  # -timeout: an input that runs for 10 s is a hang and fails the run (libFuzzer's
  # default, 20 minutes, once stalled a run on a der PEM-reader loop).
  cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
}

failed=()
running=()
finish() { # waits for the oldest running target and prints its output
  local target=${running[0]}
  running=("${running[@]:1}")
  wait "${pids[$target]}" || failed+=("$target")
  echo "== fuzz $target (${seconds}s)"
  cat "$logs/$target.log"
}
declare -A pids
for target in $targets; do
  if [ "${#running[@]}" -ge "$jobs" ]; then finish; fi
  run_target "$target" >"$logs/$target.log" 2>&1 &
  pids[$target]=$!
  running+=("$target")
done
while [ "${#running[@]}" -gt 0 ]; do finish; done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAIL: ${failed[*]} (the crashing input is in fuzz/artifacts/)" >&2
  exit 1
fi
