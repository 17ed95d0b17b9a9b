#!/usr/bin/env bash
# Builds OpenZFS for the guest image's kernel on the host, for the storage guest
# (tests/vm/storage.sh): the guest has Debian's kernel, no compiler and no network.
# Output, in OUT_DIR:
#   modules/*.ko   spl, zfs and their companions, built from Debian's `zfs-dkms` source
#                  against Debian's `linux-headers-<the image's kernel>` (gcc-12, the
#                  compiler Debian built that kernel with)
#   debs/*.deb     zfsutils-linux and its own libraries (libnvpair3linux, libuutil3linux,
#                  libzfs4linux, libzpool5linux), the same OpenZFS version
#   kernel         the kernel release the modules are for
# Usage: tests/vm/build-zfs.sh OUT_DIR IMAGE_DIR
#
# ZFS is in Debian's `contrib` component, which this project's machines' apt sources
# leave out: the packages are downloaded through a private apt configuration (its own
# source list with main and contrib, its own lists, in a temporary directory), never
# through the host's. Nothing is installed on the host. tests/vm/lib.sh's `vm_zfs`
# caches the output as $POSTURE_VM_CACHE/zfs-HASH (HASH of this script and the kernel).
set -euo pipefail
out=${1:?usage: tests/vm/build-zfs.sh OUT_DIR IMAGE_DIR}
image=${2:?usage: tests/vm/build-zfs.sh OUT_DIR IMAGE_DIR}
mirror=${POSTURE_VM_MIRROR:-http://deb.debian.org/debian}
security=${POSTURE_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
kernel=$(debugfs -R 'ls -p /lib/modules' "$image/rootfs.img" 2>/dev/null | awk -F/ '$6 ~ /^[0-9]/ {print $6}')
[ "$(echo "$kernel" | wc -w)" = 1 ] || { echo "build-zfs: expected one kernel in the image, found: $kernel" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/posture-zfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
apt_dir=$work/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$apt_dir/sources.list" <<LIST
deb [signed-by=$keyring] $mirror bookworm main contrib
deb [signed-by=$keyring] $mirror bookworm-updates main contrib
deb [signed-by=$keyring] $security bookworm-security main contrib
LIST
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
echo "build-zfs: apt lists with contrib (private, in $apt_dir)" >&2
apt-get "${apt_opts[@]}" -q update >"$work/apt-update.log" 2>&1 || { cat "$work/apt-update.log" >&2; exit 1; }

# The headers of exactly the image's kernel (its ABI name is in the package name), and
# the kbuild of the same upload.
headers_version=$(apt-cache "${apt_opts[@]}" show --no-all-versions "linux-headers-$kernel" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
[ -n "$headers_version" ] || {
  echo "build-zfs: the mirror has no linux-headers-$kernel (Debian moved on to a newer kernel ABI): delete $(dirname "$image")/vm-* to rebuild the image with the current kernel" >&2
  exit 1
}
common=$(apt-cache "${apt_opts[@]}" show --no-all-versions "linux-headers-$kernel" | sed -n 's/^Depends:.*\(linux-headers-[^ ,]*-common\).*/\1/p' | head -1)
kbuild=$(apt-cache "${apt_opts[@]}" show --no-all-versions "linux-headers-$kernel" | sed -n 's/^Depends:.*\(linux-kbuild-[0-9.]*\).*/\1/p' | head -1)
zfs_version=$(apt-cache "${apt_opts[@]}" show --no-all-versions zfs-dkms | awk '/^Version:/ {print $2; exit}')
mkdir -p "$work/debs" "$work/src"
echo "build-zfs: zfs $zfs_version for $kernel (headers $headers_version)" >&2
(cd "$work/debs" && apt-get "${apt_opts[@]}" -q download "zfs-dkms=$zfs_version" \
  "linux-headers-$kernel=$headers_version" "$common=$headers_version" "$kbuild=$headers_version" \
  "zfsutils-linux=$zfs_version" "libnvpair3linux=$zfs_version" "libuutil3linux=$zfs_version" \
  "libzfs4linux=$zfs_version" "libzpool5linux=$zfs_version" >"$work/download.log" 2>&1) ||
  { cat "$work/download.log" >&2; exit 1; }

# Unpacked, not installed: the headers' Makefile includes the common headers by their
# absolute /usr/src path, pointed at the unpacked copy here.
for deb in "$work/debs"/zfs-dkms_*.deb "$work/debs"/linux-*.deb; do dpkg-deb -x "$deb" "$work/src"; done
obj=$work/src/usr/src/linux-headers-$kernel
sed -i "s|/usr/src/|$work/src/usr/src/|" "$obj/Makefile"
zfs_src=$(echo "$work"/src/usr/src/zfs-*)
start=$(date +%s)
echo "build-zfs: configure and build the modules (a few minutes on 2 cores)" >&2
(cd "$zfs_src" && ./configure --with-config=kernel --with-linux="$work/src/usr/src/$common" \
  --with-linux-obj="$obj" >"$work/configure.log" 2>&1) || { tail -40 "$work/configure.log" >&2; exit 1; }
make -C "$zfs_src/module" -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }

mkdir -p "$out/modules" "$out/debs"
find "$zfs_src/module" -name '*.ko' -exec install -m 0644 {} "$out/modules/" \;
# Without their debug information: 90 MB less to cache and to share with the guest.
strip --strip-debug "$out/modules"/*.ko
# The modules must be for the image's kernel, or the guest refuses them.
for ko in "$out/modules"/*.ko; do
  # Not `strings | grep -q`: grep's early exit would fail the pipeline (pipefail).
  vermagic=$(strings "$ko" | sed -n 's/^vermagic=//p')
  case $vermagic in "$kernel "*) ;; *) echo "build-zfs: $ko is for '$vermagic', not $kernel" >&2; exit 1 ;; esac
done
mv "$work/debs"/zfsutils-linux_*.deb "$work/debs"/lib*linux_*.deb "$out/debs/"
echo "$kernel" >"$out/kernel"
echo "build-zfs: $(ls "$out/modules" | wc -l) modules built in $(($(date +%s) - start)) s" >&2
