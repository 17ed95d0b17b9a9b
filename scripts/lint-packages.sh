#!/usr/bin/env bash
# Lints the packages scripts/package.sh built: lintian on every .deb (errors and warnings
# fail; overrides, each with its reason, are in packaging/debian/), rpmlint on every .rpm
# (errors fail; its warnings are printed for review: packaging/README.md says which are
# expected and why).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${CARGO_TARGET_DIR:-target}")/packages
status=0
for deb in "$out"/*.deb; do
  echo "== lintian $(basename "$deb")"
  # --fail-on warning: anything above info (not overridden) fails.
  lintian --fail-on error,warning --no-tag-display-limit --suppress-tags-from-file /dev/null "$deb" || status=1
done
for rpm in "$out"/*.rpm; do
  echo "== rpmlint $(basename "$rpm")"
  rpmlint -r packaging/rpm/rpmlint.toml "$rpm" || status=1
done
exit $status
