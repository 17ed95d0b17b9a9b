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
# libsqlite3-sys (sqlx's SQLite, in posture-server) would compile the bundled sqlite3.c,
# which needs the whole C library's headers. For a type-check it need not: told to use a
# system SQLite, it only prints link flags (never used: nothing is linked) and takes its
# pre-generated bindings. Only `cargo check` for an Apple target may use this.
echo "export LIBSQLITE3_SYS_USE_PKG_CONFIG=1"
echo "export SQLITE3_LIB_DIR=/nonexistent-macos-sdk"
