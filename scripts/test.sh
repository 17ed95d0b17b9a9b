#!/usr/bin/env bash
# Sets everything up and runs every test: lints, docs, unit and integration tests
# (including the swtpm-backed TPM tests and the C programs), brief fuzzing, then the
# packages: build (.deb, .rpm), lint, release checks, and the install test in a systemd guest.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

echo "== fmt";    cargo fmt --all --check
echo "== clippy"; cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== doc";    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# Windows build + Wine tests, Apple type-checks; before the tests: the Wine report test
# among them needs the posture.exe this builds.
echo "== cross";  ./scripts/cross.sh
echo "== tests";  cargo nextest run --workspace --locked --no-fail-fast
echo "== doctests"; cargo test --workspace --doc --locked
echo "== fuzz";  ./scripts/fuzz.sh
# The packaging steps print what each costs (README "Install": measured CI time).
step() { local name=$1 t=$SECONDS; shift; echo "== $name"; "$@"; echo "== $name: $((SECONDS - t)) s"; }
step "packages" sh -c './scripts/package.sh && ./scripts/package.sh --deb-revision 2'
step "package lints" ./scripts/lint-packages.sh
step "release checks" ./scripts/release-check.sh
step "install test in a systemd guest" ./tests/vm/run.sh "$(realpath -m "${CARGO_TARGET_DIR:-target}")/packages"
