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
  lintian --fail-on error,warning --no-tag-display-limit --display-info "$deb" || status=1
done
for rpm in "$out"/*.rpm; do
  echo "== rpmlint $(basename "$rpm")"
  rpmlint -c packaging/rpm/rpmlint.toml "$rpm" || status=1
done
exit $status
