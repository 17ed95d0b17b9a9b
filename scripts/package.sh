#!/usr/bin/env bash
# Builds posture's packages into $CARGO_TARGET_DIR/packages (default target/packages):
#   posture_VERSION-1_amd64.deb, posture-VERSION-1.x86_64.rpm   the agent (binary, unit,
#       sysusers.d, tmpfiles.d, config, example policy, man page, completions)
#   libposture0_*.deb, libposture-dev_*.deb, libposture-*.rpm, libposture-devel-*.rpm
#   posture-server_*.deb, posture-server-*.rpm   the fleet verifier service
#   posture.cdx.json, posture-server.cdx.json, libposture.cdx.json   CycloneDX SBOMs
#       (from Cargo.lock)
# The binaries are built with cargo-auditable (the dependency list is embedded in a
# `.dep-v0` section: `cargo audit bin`, syft and trivy read it). The man page and
# completions are generated here from the clap definition, never committed.
# Usage: scripts/package.sh [--deb-revision N]   (N > 1 makes a "newer build" of the same
# version, used by the upgrade test in tests/vm/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
revision=1
if [ "${1:-}" = "--deb-revision" ]; then revision=${2:?}; fi
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export CARGO_TARGET_DIR=$target
out=$target/packages
gen=$target/release/generated
mkdir -p "$out" "$gen"
# Reproducible binaries: no build path in them (panic locations of generated code name
# OUT_DIR; registry sources name CARGO_HOME). scripts/release-check.sh builds again
# elsewhere with the same mapping and compares.
source scripts/release-env.sh

if [ "$revision" = 1 ]; then
  echo "== package: build posture and posture-server (cargo auditable, release)"
  time cargo auditable build --release --locked -p posture-cli -p posture-server
  echo "== package: build libposture (cargo auditable, release, LTO, SONAME libposture.so.0)"
  # As scripts/install-ffi.sh, plus the SONAME a shared library package needs.
  time cargo auditable rustc --release --locked -p posture-ffi --lib --crate-type cdylib,staticlib \
    -- -C link-arg=-Wl,-soname,libposture.so.0

  # Generated from clap by the binary just built.
  "$target/release/posture" man | gzip -9n >"$gen/posture.1.gz"
  "$target/release/posture" completions bash >"$gen/posture.bash"
  "$target/release/posture" completions zsh >"$gen/_posture"
  "$target/release/posture" completions fish >"$gen/posture.fish"
  "$target/release/posture-server" man | gzip -9n >"$gen/posture-server.1.gz"
  # libposture's pkg-config file, for the Debian/Fedora multiarch library directory.
  version=$(cargo pkgid -p posture-ffi); version=${version##*[#@]}
  for flavour in deb rpm; do
    if [ $flavour = deb ]; then libdir=/usr/lib/x86_64-linux-gnu; else libdir=/usr/lib64; fi
    sed -e "s|@PREFIX@|/usr|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|/usr/include|" \
      -e "s|@VERSION@|$version|" -e "s|@REQUIRES_PRIVATE@|Requires.private: tss2-esys tss2-mu tss2-tctildr|" \
      posture-ffi/posture.pc.in >"$gen/posture-$flavour.pc"
  done
  # cargo-generate-rpm strips nothing: stripped copies for the .rpm (the .dep-v0 section
  # of cargo-auditable is allocated, strip keeps it).
  strip --strip-unneeded -o "$gen/posture" "$target/release/posture"
  strip --strip-unneeded -o "$gen/posture-server" "$target/release/posture-server"
  # cargo-deb strips executables only; the shared library is installed 644.
  strip --strip-unneeded -o "$gen/libposture.so.0" "$target/release/libposture.so"
  # The -dev link to the SONAME, in a directory of its own: cargo-deb packages a symlink
  # as a symlink only when it does not resolve where it is built.
  mkdir -p "$gen/dev"
  ln -sfn libposture.so.0 "$gen/dev/libposture.so"
  # The -devel one: cargo-generate-rpm cannot package symlinks, so a GNU ld script.
  printf '/* GNU ld script: -lposture links the shared library by its SONAME */\nINPUT(/usr/lib64/libposture.so.0)\n' >"$gen/libposture-rpm.so"
fi

# Reproducible archives: file times from the commit, not from the build. (Set after the
# build: a value that changes with every commit must not reach cargo's fingerprints.)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
echo "== package: .deb (cargo-deb)"
cargo deb --no-build --locked -p posture-cli --deb-revision "$revision" -o "$out/"
if [ "$revision" = 1 ]; then
  lib_deb=$(cargo deb --no-build --locked -p posture-ffi --variant lib -o "$out/")
  # cargo-deb writes no shlibs control file; dpkg-shlibdeps of programs linking
  # libposture needs it (the ABI of libposture.so.0 only grows within a SONAME).
  repack=$(mktemp -d)
  dpkg-deb -R "$lib_deb" "$repack/pkg"
  echo "libposture 0 libposture0 (>= $version)" >"$repack/pkg/DEBIAN/shlibs"
  find "$repack/pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz -b "$repack/pkg" "$lib_deb" >/dev/null
  rm -rf "$repack"
  echo "$lib_deb (with DEBIAN/shlibs)"
  cargo deb --no-build --locked -p posture-ffi --variant dev -o "$out/"
  echo "== package: .rpm (cargo-generate-rpm)"
  cargo generate-rpm -p posture-cli -o "$out/"
  cargo generate-rpm -p posture-ffi --variant lib -o "$out/"
  cargo generate-rpm -p posture-ffi --variant devel -o "$out/"
  cargo deb --no-build --locked -p posture-server -o "$out/"
  cargo generate-rpm -p posture-server -o "$out/"
  echo "== package: SBOM (CycloneDX 1.5, from Cargo.lock; normal dependencies for x86_64 Linux)"
  # cargo-cyclonedx writes one file beside every workspace member's Cargo.toml; keep the
  # packaged crates' and remove the rest.
  cargo cyclonedx --manifest-path posture-cli/Cargo.toml --format json --spec-version 1.5 \
    --target x86_64-unknown-linux-gnu --no-build-deps --override-filename sbom.cdx
  mv posture-cli/sbom.cdx.json "$out/posture.cdx.json"
  mv posture-server/sbom.cdx.json "$out/posture-server.cdx.json"
  mv posture-ffi/sbom.cdx.json "$out/libposture.cdx.json"
  rm -f ./*/sbom.cdx.json
fi
ls -l "$out"
