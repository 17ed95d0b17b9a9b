#!/usr/bin/env bash
# Builds the C library (release, with LTO) and installs libposture.so, libposture.a,
# posture.h and posture.pc under PREFIX.
# Usage: scripts/install-ffi.sh PREFIX [--verifier-only]
#
# --verifier-only builds libposture without the agent (no collection, no device key, no
# TPM): what an IdP or proxy that only verifies evidence links. It needs no tpm2-tss.
#
# `cargo rustc --crate-type cdylib,staticlib` builds only the final artifacts, so the
# release profile's LTO applies; a plain `cargo build --release` builds them together with
# the rlib the tests need, without LTO (16% slower verification).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath -m "${1:?usage: scripts/install-ffi.sh PREFIX [--verifier-only]}")
target_dir=${CARGO_TARGET_DIR:-target}
features=()
requires_private="Requires.private: tss2-esys tss2-mu tss2-tctildr"
if [ "${2:-}" = "--verifier-only" ]; then
  features=(--no-default-features)
  requires_private=""
elif [ -n "${2:-}" ]; then
  echo "usage: scripts/install-ffi.sh PREFIX [--verifier-only]" >&2
  exit 2
fi

cargo rustc --release --locked -p posture-ffi "${features[@]}" --lib --crate-type cdylib,staticlib
pkgid=$(cargo pkgid -p posture-ffi)
version=${pkgid##*[#@]}

libdir="$prefix/lib"
includedir="$prefix/include"
install -d "$libdir/pkgconfig" "$includedir"
install -m 0755 "$target_dir/release/libposture.so" "$libdir/"
install -m 0644 "$target_dir/release/libposture.a" "$libdir/"
install -m 0644 posture-ffi/include/posture.h "$includedir/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
  -e "s|@VERSION@|$version|" -e "s|@REQUIRES_PRIVATE@|$requires_private|" \
  posture-ffi/posture.pc.in >"$libdir/pkgconfig/posture.pc"
echo "installed libposture $version under $prefix"
