#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each briefly (default 20 s; FUZZ_SECONDS=N).
# Only a stable toolchain is assumed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the nightly
# flags it needs (-Zsanitizer) on stable.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build -O
for target in $targets; do
  echo "== fuzz $target (${seconds}s)"
  mkdir -p "corpus/$target"
  # corpus/ (git-ignored) collects what the fuzzer finds; seeds/ are committed examples.
  # -timeout: an input that runs for 10 s is a hang and fails the run (libFuzzer's
  # default, 20 minutes, once stalled a run on a der PEM-reader loop).
  cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
done
