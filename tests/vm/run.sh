#!/usr/bin/env bash
# The real-systemd install test: boots a Debian 12 guest (systemd as PID 1, Debian's
# kernel) under QEMU, installs the posture .deb in it and checks what a user and an
# administrator see (tests/vm/guest-install.sh). TCG (POSTURE_VM_ACCEL=kvm for KVM).
#
# Usage: tests/vm/run.sh PACKAGES_DIR
#   PACKAGES_DIR (scripts/package.sh's output) holds posture_VERSION-1 and a newer build
#   posture_VERSION-2 (for the upgrade test), libposture0 and posture-server.
#
# The guest image (tests/vm/build-image.sh) is cached in $POSTURE_VM_CACHE (default
# /var/cache/posture-test/), keyed by the hash of build-image.sh; the guest boots with
# -snapshot, so the cached image is never written. The whole run is bounded
# (POSTURE_VM_TIMEOUT, default 1200 s): the guest powers itself off when its test ends,
# and QEMU is killed if it has not by then. Missing QEMU is a failure, never a skip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
packages=$(realpath "${1:?usage: tests/vm/run.sh PACKAGES_DIR}")
version=$(cargo pkgid --manifest-path "$repo/Cargo.toml" -p posture-cli); version=${version##*[#@]}
deb1=$packages/posture_${version}-1_amd64.deb
deb2=$packages/posture_${version}-2_amd64.deb
timeout_s=${POSTURE_VM_TIMEOUT:-1200}

# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"
vm_require qemu-system-x86_64 debootstrap mkfs.ext4 dpkg-deb debugfs dpkg-scanpackages pkg-config cc
image=$(vm_image)
echo "vm: guest image $image"

work=$(mktemp -d "${TMPDIR:-/tmp}/posture-vm-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
share=$work/share
mkdir -p "$share"
cp "$deb1" "$share/posture_1.deb"
cp "$deb2" "$share/posture_2.deb"
cp "$packages/libposture0_${version}-1_amd64.deb" "$share/libposture0.deb"
cp "$packages/posture-server_${version}-1_amd64.deb" "$share/posture-server.deb"
cp "$here/guest-install.sh" "$share/guest.sh"
dpkg-deb -f "$deb2" Version >"$share/version-2"
# libposture-dev: a C program is compiled on the host against the header and pkg-config
# file *from the .debs* (the guest has no compiler) and run in the guest, where only the
# installed libposture0 provides libposture.so.0.
devroot=$work/devroot
dpkg-deb -x "$packages/libposture0_${version}-1_amd64.deb" "$devroot"
dpkg-deb -x "$packages/libposture-dev_${version}-1_amd64.deb" "$devroot"
cp "$packages/libposture-dev_${version}-1_amd64.deb" "$share/libposture-dev.deb"
# PKG_CONFIG_SYSROOT_DIR prefixes the .pc's -I/-L with the extracted tree: the flags are
# the package's own. (Its Requires.private, tpm2-tss, resolves on this build machine.)
pc_flags=$(PKG_CONFIG_SYSROOT_DIR=$devroot \
  PKG_CONFIG_PATH=$devroot/usr/lib/x86_64-linux-gnu/pkgconfig pkg-config --cflags --libs posture)
echo "vm: pkg-config --cflags --libs posture (from libposture-dev): $pc_flags"
# shellcheck disable=SC2086 # the flags are words
cc -Wall -Wextra -Werror -o "$share/libposture-roundtrip" "$here/libposture-roundtrip.c" $pc_flags
if ! readelf -d "$share/libposture-roundtrip" | grep -q 'NEEDED.*\[libposture.so.0\]' ||
  readelf -d "$share/libposture-roundtrip" | grep -q 'RUNPATH\|RPATH'; then
  echo "vm: FAIL: the C program must need libposture.so.0 by SONAME, without a run path" >&2
  exit 1
fi
# libposture-dev depends on libtss2-dev (its static library needs tpm2-tss), which pulls
# packages the guest image does not have, and the guest has no network: the missing
# ones (the dependency closure minus what the image has installed) are downloaded on the
# host once, cached, and offered to the guest's apt as a local repository.
# Compared as name=version: a package the image has in an older version than the one
# the host's lists offer (a point release since the image was built) is offered too.
repo_cache=$(vm_local_repo debs "$image" libtss2-dev)
cp -r "$repo_cache" "$share/repo"
echo "vm: $(find "$repo_cache" -name '*.deb' | wc -l) dependency packages for libposture-dev in a local repository"
# The scores the README records for the units (its "Install" section).
score() { sed -n "s/.*Overall exposure level for $1.service: \([0-9.]*\).*/\1/p" "$repo/README.md" | head -1; }
score posture >"$share/expected-exposure"
score posture-server >"$share/expected-exposure-server"

echo "vm: booting the guest (${vm_accel[1]%%,*}), at most ${timeout_s}s"
start=$(date +%s)
rc=0
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${vm_accel[@]}" -m 1536 -smp 2 \
  -nodefaults -display none -no-reboot -serial "file:$work/console.log" \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=error panic=-1" \
  -drive "file=$image/rootfs.img,format=raw,if=virtio,snapshot=on" \
  -virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" \
  -device virtio-rng-pci -nic none || rc=$?
echo "vm: guest ran $(($(date +%s) - start)) s"
# The test's output (everything after the kernel's boot messages).
sed -n '/^guest: /,$p' "$work/console.log" | tr -d '\r'
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "vm: FAIL: the guest did not finish within ${timeout_s}s; last console lines:" >&2
  tail -30 "$work/console.log" >&2
  exit 1
fi
if ! grep -q '^posture-vmtest: exit 0' "$work/console.log"; then
  echo "vm: FAIL (qemu exit $rc)" >&2
  grep -q '^guest: ' "$work/console.log" || tail -40 "$work/console.log" >&2
  exit 1
fi
