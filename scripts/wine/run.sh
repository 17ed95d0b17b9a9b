#!/usr/bin/env bash
# Cargo's target runner for x86_64-pc-windows-gnu (.cargo/config.toml): runs a Windows
# executable under Wine (Debian's wine64), in a Wine prefix of its own below the target
# directory (never ~/.wine), with the ProcessPrng shim DLL (bcryptprimitives.c) on Wine's
# DLL search path. The shim is built with mingw-w64 on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../../target}"
shim_dir="$target/wine-shim"
if [ ! -f "$shim_dir/bcryptprimitives.dll" ] || [ "$here/bcryptprimitives.c" -nt "$shim_dir/bcryptprimitives.dll" ]; then
  mkdir -p "$shim_dir"
  x86_64-w64-mingw32-gcc -O2 -shared -o "$shim_dir/bcryptprimitives.dll" "$here/bcryptprimitives.c" -ladvapi32
fi
export WINEPREFIX="${POSTURE_WINEPREFIX:-$target/wine-prefix}"
export WINEDEBUG="${WINEDEBUG:--all}"
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=}"  # no Mono/Gecko install prompts
export WINEPATH="$(winepath -w "$shim_dir" 2>/dev/null || echo "Z:${shim_dir//\//\\}")"
for wine in wine64 /usr/lib/wine/wine64 wine; do
  if command -v "$wine" >/dev/null 2>&1; then exec "$wine" "$@"; fi
done
echo "wine64 not found: run ./scripts/setup.sh" >&2
exit 127
