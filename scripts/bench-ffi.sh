#!/usr/bin/env bash
# FFI overhead benchmark: verifications per second through the C API and the same
# verification called from Rust, on one thread and on every core, in one run.
# The C side links the library as shipped: built and installed by scripts/install-ffi.sh.
# Usage: scripts/bench-ffi.sh [ITERATIONS_PER_THREAD]   (default 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${CARGO_TARGET_DIR:-target}/ffi-bench-prefix"
./scripts/install-ffi.sh "$prefix"
POSTURE_FFI_PREFIX=$(realpath "$prefix") POSTURE_BENCH_ITERATIONS=${1:-3000} \
  cargo bench --locked -p posture-ffi --bench ffi_verify
