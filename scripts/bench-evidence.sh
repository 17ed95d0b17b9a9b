#!/usr/bin/env bash
# Evidence benchmark: verify-and-decide vs raw ECDSA P-256 verify, and signing latency,
# pinned to one core. Prints the Markdown table recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p posture-core --bench verify --no-run --locked
exec taskset -c 0 cargo bench -p posture-core --bench verify --locked 2>/dev/null
