#!/usr/bin/env bash
# Release hygiene, after scripts/package.sh:
#  1. cargo deny: licenses, bans (duplicate versions are listed), sources. The advisories
#     check needs the RustSec database from GitHub, which these machines cannot reach: it
#     runs only when POSTURE_ADVISORY_DB points at a local copy, and says so otherwise.
#  2. the dependencies embedded by cargo-auditable are in the packaged binary.
#  3. reproducibility: the agent built again from a fresh clone of the same commit, at
#     another path and in another target directory, must be byte-identical to the one
#     packaged (POSTURE_SKIP_REPRO=1 skips this full second build, and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")

echo "== cargo deny (licenses, bans, sources)"
cargo deny --locked check --disable-fetch licenses bans sources
if [ -n "${POSTURE_ADVISORY_DB:-}" ]; then
  echo "== cargo deny advisories ($POSTURE_ADVISORY_DB)"
  cargo deny --locked check --disable-fetch advisories --config <(sed "s|^db-path = .*|db-path = \"$POSTURE_ADVISORY_DB\"|" deny.toml)
else
  echo "== cargo deny advisories: NOT RUN (the RustSec database is fetched from GitHub, unreachable here; set POSTURE_ADVISORY_DB)"
fi

echo "== cargo-auditable: dependency list embedded in the binary"
objcopy --dump-section .dep-v0=/dev/stdout "$target/release/posture" | python3 -c '
import json, sys, zlib
deps = json.loads(zlib.decompress(sys.stdin.buffer.read()))["packages"]
names = {p["name"] for p in deps}
assert {"posture-cli", "posture-core", "tokio"} <= names, names
print(f"{len(deps)} packages embedded")'

if [ "${POSTURE_SKIP_REPRO:-}" = 1 ]; then
  echo "== reproducibility: NOT RUN (POSTURE_SKIP_REPRO=1)"
  exit 0
fi
echo "== reproducibility: a second build from a fresh clone at another path"
clone=$(mktemp -d /tmp/posture-repro.XXXXXX)
trap 'rm -rf "$clone"' EXIT
git clone -q --no-hardlinks . "$clone/src"
git -C "$clone/src" checkout -q "$(git rev-parse HEAD)"
(cd "$clone/src" && CARGO_TARGET_DIR="$clone/target" cargo auditable build --release --locked -p posture-cli)
a=$(sha256sum <"$target/release/posture" | cut -d' ' -f1)
b=$(sha256sum <"$clone/target/release/posture" | cut -d' ' -f1)
echo "first build:  $a"
echo "second build: $b"
if [ "$a" != "$b" ]; then
  echo "reproducibility: FAIL: the two builds differ" >&2
  exit 1
fi
echo "reproducibility: identical"
