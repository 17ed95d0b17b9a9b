#!/usr/bin/env bash
# Sets everything up and runs every test: lints, docs, unit and integration tests
# (including the swtpm-backed TPM tests and the C programs), brief fuzzing, then the
# packages: build (.deb, .rpm), lint, release checks, the install test in a systemd guest, and
# the real-kernel storage and Secure Boot tests in guests.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

# Every run here builds from nothing or nearly (CI: a fresh clone), where incremental
# caches only cost disk (about 2 GB) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
free_kib=$(df -k --output=avail "$target_dir" | tail -1 | tr -d ' ')
echo "== disk: $((free_kib / 1048576)) GiB free where target/ is (a fresh run uses about 10 GB)"
# Only a warning: a build already done needs less, and other work may free space.
if [ "$free_kib" -lt $((11 * 1048576)) ]; then
  echo "warning: less than 11 GiB free; a run from a fresh clone may fail with 'No space left on device'" >&2
fi

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
# The three guests run side by side (each is mostly one busy TCG thread, so on two cores
# this saves most of the shorter guests' time); their caches are built under locks
# (tests/vm/lib.sh). Each guest's output is printed whole, in this order, when all end.
packages_dir="$(realpath -m "$target_dir")/packages"
# shellcheck source=scripts/lib/parallel.sh
. scripts/lib/parallel.sh
guests() {
  parallel_start "install test in a systemd guest" ./tests/vm/run.sh "$packages_dir"
  # Real-kernel checks (tests/vm/README.md): the packaged posture in the same guest image.
  parallel_start "storage stacks in a guest" ./tests/vm/storage.sh "$packages_dir"
  parallel_start "Secure Boot guest (OVMF, swtpm)" ./tests/vm/secure-boot.sh "$packages_dir"
  parallel_wait_all
}
step "guests (install, storage, Secure Boot; in parallel)" guests
echo "== disk: target/ $(du -sh "$target_dir" | cut -f1), fuzz/target $(du -sh fuzz/target 2>/dev/null | cut -f1 || echo none)"
