#!/usr/bin/env bash
# Release hygiene, after scripts/package.sh (it reuses that release build):
#  1. cargo deny: licenses, bans (duplicate versions are listed as warnings), sources, and
#     advisories against the RustSec database. The database is fetched from GitHub, else
#     taken from a local clone named by POSTURE_ADVISORY_DB; with neither the advisories
#     check says NOT RUN and the rest still runs; POSTURE_REQUIRE_ADVISORIES=1 makes that
#     a failure.
#  2. cargo-auditable: the dependency list is embedded in each packaged binary.
#  3. the CycloneDX SBOM scripts/package.sh wrote lists what Cargo.lock has.
#  4. reproducibility: posture and posture-server built again from a clean clone of the
#     same commit, at another path and in another target directory, must be
#     byte-identical to the packaged ones. POSTURE_SKIP_REPRO=1 skips this second full
#     release build (and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
packages=$target/packages

echo "== cargo deny (licenses, bans, sources)"
cargo deny --locked --offline check licenses bans sources
# A local clone of the RustSec database (POSTURE_ADVISORY_DB: a path or git URL of a
# clone of github.com/rustsec/advisory-db) is used when GitHub cannot be reached. cargo
# deny looks for its database under db-path in a directory named after the URL's last
# segment and a hash of the URL (cargo-deny 0.20's naming for the default URL), so the
# clone goes there, and a copy of deny.toml points db-path at it.
adv=$(mktemp -d)
trap 'rm -rf "$adv"' EXIT
if cargo deny --locked fetch db 2>/dev/null; then
  echo "== cargo deny advisories (database fetched from GitHub)"
  cargo deny --locked --offline check advisories
elif [ -n "${POSTURE_ADVISORY_DB:-}" ]; then
  git clone -q "$POSTURE_ADVISORY_DB" "$adv/advisory-db-3157b0e258782691"
  sed '/^\[advisories\]/a db-path = "'"$adv"'"' deny.toml >"$adv/deny.toml"
  echo "== cargo deny advisories (local database $POSTURE_ADVISORY_DB, last change" \
    "$(git -C "$adv/advisory-db-3157b0e258782691" log -1 --format=%cs))"
  cargo deny --locked --offline --config "$adv/deny.toml" check advisories
elif [ "${POSTURE_REQUIRE_ADVISORIES:-}" = 1 ]; then
  echo "cargo deny advisories: FAIL: cannot fetch the RustSec database" >&2
  exit 1
else
  echo "== cargo deny advisories: NOT RUN (cannot fetch the RustSec database from GitHub;"
  echo "   set POSTURE_ADVISORY_DB to a clone of it)"
fi

echo "== cargo-auditable: the dependency list embedded in each binary (stripping keeps it)"
# objcopy is given an output file to throw away: without one it rewrites its input, and
# the reproducibility check below compares these very files.
dep=$(mktemp -d)
trap 'rm -rf "$adv" "$dep"' EXIT
for bin in posture posture-server libposture.so; do
  objcopy --dump-section .dep-v0="$dep/dep-v0" "$target/release/$bin" "$dep/scratch"
  python3 -c '
import json, sys, zlib
deps = json.loads(zlib.decompress(sys.stdin.buffer.read()))["packages"]
names = {p["name"] for p in deps}
root = {"posture": "posture-cli", "posture-server": "posture-server", "libposture.so": "posture-ffi"}[sys.argv[1]]
assert {root, "posture-core"} <= names, names
print(f"{sys.argv[1]}: {len(deps)} packages embedded")' "$bin" <"$dep/dep-v0"
done

echo "== SBOMs: CycloneDX, every component from Cargo.lock"
for sbom in posture posture-server libposture; do
python3 - "$packages/$sbom.cdx.json" <<'PY'
import json, sys, tomllib
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX", bom.get("bomFormat")
comps = {(c["name"], c["version"]) for c in bom.get("components", [])}
lock = {(p["name"], p["version"]) for p in tomllib.load(open("Cargo.lock", "rb"))["package"]}
unknown = comps - lock
assert not unknown, f"components not in Cargo.lock: {sorted(unknown)[:5]}"
assert ("posture-core", bom["metadata"]["component"]["version"]) in comps
print(f"{sys.argv[1]}: CycloneDX {bom['specVersion']}, {len(comps)} components, all from Cargo.lock")
PY
done

if [ "${POSTURE_SKIP_REPRO:-}" = 1 ]; then
  echo "== reproducibility: NOT RUN (POSTURE_SKIP_REPRO=1)"
  exit 0
fi
echo "== reproducibility: a second build from a clean clone at another path"
clone=$(mktemp -d /tmp/posture-repro.XXXXXX)
trap 'rm -rf "$adv" "$clone" "$dep"' EXIT
head=$(git rev-parse HEAD)
git clone -q --no-hardlinks . "$clone/src"
git -C "$clone/src" checkout -q "$head"
start=$(date +%s)
# The same command and environment as scripts/package.sh (scripts/release-env.sh maps the
# clone's paths to the same names).
(cd "$clone/src" && export CARGO_TARGET_DIR="$clone/target" && source scripts/release-env.sh &&
  cargo auditable build --release --locked -p posture-cli -p posture-server)
echo "second build: $(($(date +%s) - start)) s"
status=0
for bin in posture posture-server; do
  a=$(sha256sum <"$target/release/$bin" | cut -d' ' -f1)
  b=$(sha256sum <"$clone/target/release/$bin" | cut -d' ' -f1)
  if [ "$a" = "$b" ]; then
    echo "reproducibility: $bin identical ($a)"
  else
    echo "reproducibility: FAIL: $bin differs: $a (packaged) vs $b (second build)" >&2
    status=1
  fi
done
exit $status
