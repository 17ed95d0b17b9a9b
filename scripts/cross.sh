#!/usr/bin/env bash
# Other operating systems, from this Linux machine (issue 15): the workspace built for
# Windows (x86_64-pc-windows-gnu, mingw-w64) with its Windows tests run under Wine
# (.cargo/config.toml's runner, scripts/wine/run.sh), `posture.exe check --json` run under
# Wine and validated against the report schema, and the workspace type-checked for both
# Apple targets with clippy, tests included (clang with the SDK stand-in headers of
# scripts/macos-sdk-shim).
# Called by scripts/test.sh; each step prints what it costs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { local name=$1 t=$SECONDS; shift; echo "== cross: $name"; "$@"; echo "== cross: $name: $((SECONDS - t)) s"; }
win=x86_64-pc-windows-gnu

step "windows build" cargo build --workspace --locked --target "$win"
# Unit and parser tests of the checks, as Windows executables under Wine (no doctests:
# cargo does not run them for another target).
step "windows tests under wine" cargo test --locked --target "$win" -p posture-checks --lib --tests
# The device key (Platform Crypto Provider, which Wine lacks: the software fallback with
# its reason is what the test must see), owner-only key files (DACL), and the C library's
# verification functions, under Wine.
# (posture-core: its unit tests only; its integration tests run Python and C consumers.)
step "windows key and ffi tests under wine" cargo test --locked --target "$win" \
  -p posture-agent -p posture-ffi --lib --tests
# The daemon's own unit tests (peer checks and SIDs, the pipe's SDDL, the service log's
# rotation, the collector) as a Windows executable.
step "windows daemon unit tests under wine" cargo test --locked --target "$win" -p posture-cli --bin posture
step "windows core unit tests under wine" cargo test --locked --target "$win" -p posture-core --lib
# posture.exe check --json under Wine: schema-valid, every finding unknown with a reason.
step "posture.exe check under wine" cargo nextest run --locked -p posture-integration-tests \
  -E 'test(windows_report_under_wine_is_schema_valid_and_all_unknown)'
# The daemon under Wine: its named pipe (status, allow_sids refusal, squatting) and the
# service under Wine's SCM (sc create/start/stop). About 10 s warm.
step "posture.exe daemon and service under wine" cargo nextest run --locked \
  -p posture-integration-tests -E 'test(/^windows_(daemon|service)_/)'

# ring compiles C for the target even in `cargo check`: clang with the shim headers
# (scripts/macos-sdk-shim/env.sh prints CC_<target> and CFLAGS_<target>). clippy with
# --all-targets type-checks the tests too (a test's cfg once named a Linux-only type).
check_apple() (
  eval "$(scripts/macos-sdk-shim/env.sh "$1")"
  cargo clippy --workspace --all-targets --locked --target "$1" -- -D warnings
)
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  step "check $target" check_apple "$target"
done
