#!/bin/sh
# Prints the environment for type-checking the workspace for an Apple target on Linux
# with Debian's clang and the shim headers beside this script (see README.md).
# Usage: eval "$(scripts/macos-sdk-shim/env.sh aarch64-apple-darwin)"
set -eu
target=${1:?usage: env.sh aarch64-apple-darwin|x86_64-apple-darwin}
case "$target" in
    aarch64-apple-darwin | x86_64-apple-darwin) ;;
    *) echo "env.sh: not an Apple target: $target" >&2; exit 2 ;;
esac
dir=$(cd "$(dirname "$0")" && pwd)
var=$(printf '%s' "$target" | tr '-' '_')
echo "export CC_${var}=clang"
echo "export CFLAGS_${var}='--target=${target} -ffreestanding -nostdlibinc -isystem ${dir}'"
