#!/usr/bin/env bash
# Lints the packages scripts/package.sh built: lintian on every .deb (errors and warnings
# fail; the overrides, each with its reason, are shipped in the packages from
# packaging/), rpmlint on every .rpm (errors fail; the filtered warnings, each with its
# reason, are in packaging/rpm/rpmlint.toml; packaging/README.md lists what is left).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${CARGO_TARGET_DIR:-target}")/packages
status=0
for deb in "$out"/*.deb; do
  echo "== lintian $(basename "$deb")"
  lintian --fail-on error,warning --tag-display-limit 0 "$deb" || status=1
done
# libposture-dev depends on the exact libposture0 built beside it (cargo-deb cannot
# substitute ${binary:Version}, so posture-ffi/Cargo.toml spells it out).
lib_version=$(dpkg-deb -f "$out"/libposture0_*.deb Version)
if ! dpkg-deb -f "$out"/libposture-dev_*.deb Depends | grep -qF "libposture0 (= $lib_version)"; then
  echo "lint: libposture-dev does not depend on libposture0 (= $lib_version): update posture-ffi/Cargo.toml" >&2
  status=1
fi
for rpm in "$out"/*.rpm; do
  echo "== rpmlint $(basename "$rpm")"
  rpmlint -c packaging/rpm/rpmlint.toml "$rpm" || status=1
done
exit $status
