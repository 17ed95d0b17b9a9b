#!/usr/bin/env bash
# The real-kernel storage test: boots the Debian 12 guest (tests/vm/build-image.sh, its
# stock kernel) with nine extra virtual disks, builds btrfs on LUKS (two devices),
# an encrypted loop file beside the unencrypted root, encrypted and unencrypted swap,
# dm-integrity under dm-crypt, a detached LUKS header, a weak cipher, ZFS native
# encryption and ZFS on LUKS in it (tests/vm/guest-storage.sh), runs `posture check
# --json --only disk_encryption` there and checks the finding against what was built
# and what the guest's tools say (tests/vm/check-storage.py).
#
# Usage: tests/vm/storage.sh POSTURE
#   POSTURE is a `posture` binary, or scripts/package.sh's output directory (the binary is
#   taken from posture_VERSION-1_amd64.deb).
# cryptsetup and btrfs-progs reach the guest (which has no network) as .debs from a local
# repository, downloaded on the host once and cached in $POSTURE_VM_CACHE/storage-debs-*.
# OpenZFS is built on the host for the guest's kernel once (tests/vm/build-zfs.sh) and
# cached in $POSTURE_VM_CACHE/zfs-*, with zfsutils-linux.
# POSTURE_VM_TIMEOUT (default 900 s) bounds the guest. Missing QEMU is a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"
arg=$(realpath "${1:?usage: tests/vm/storage.sh POSTURE_BINARY|PACKAGES_DIR}")
timeout_s=${POSTURE_VM_TIMEOUT:-900}
vm_require qemu-system-x86_64 debootstrap mkfs.ext4 dpkg-deb debugfs dpkg-scanpackages python3 \
  gcc-12 make strings

image=$(vm_image)
echo "vm: guest image $image"
work=$(mktemp -d "${TMPDIR:-/tmp}/posture-vm-storage.XXXXXX")
trap 'rm -rf "$work"' EXIT
share=$work/share
mkdir -p "$share/out"
vm_share_posture "$arg" "$work" "$share"
repo=$(vm_local_repo storage-debs "$image" cryptsetup-bin btrfs-progs)
cp -r "$repo" "$share/repo"
echo "vm: $(ls "$share/repo"/*.deb | wc -l) packages for the guest (cryptsetup, btrfs-progs) in a local repository"
zfs=$(vm_zfs "$image")
cp -r "$zfs" "$share/zfs"
echo "vm: OpenZFS for the guest's kernel $(cat "$zfs/kernel"): $(ls "$zfs/modules" | wc -l) modules, $(ls "$zfs/debs" | wc -l) packages ($zfs)"
cp "$here/guest-storage.sh" "$share/guest.sh"

# The extra disks: sparse raw files, written only by the test.
disks=()
for spec in vdb:256M vdc:256M vdd:64M vde:32M vdf:32M vdg:64M vdh:64M vdi:128M vdj:128M; do
  truncate -s "${spec#*:}" "$work/${spec%%:*}.raw"
  disks+=(-drive "file=$work/${spec%%:*}.raw,format=raw,if=virtio,cache=unsafe")
done

echo "vm: booting the storage guest (${vm_accel[1]%%,*}), at most ${timeout_s}s"
start=$(date +%s)
rc=0
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${vm_accel[@]}" -m 1024 -smp 2 \
  -nodefaults -display none -no-reboot -serial "file:$work/console.log" \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=error panic=-1" \
  -drive "file=$image/rootfs.img,format=raw,if=virtio,snapshot=on" "${disks[@]}" \
  -virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" \
  -device virtio-rng-pci -nic none || rc=$?
echo "vm: guest ran $(($(date +%s) - start)) s"
sed -n '/guest: /,$p' "$work/console.log" | tr -d '\r'
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "vm: FAIL: the guest did not finish within ${timeout_s}s; last console lines:" >&2
  tail -30 "$work/console.log" >&2
  exit 1
fi
if ! grep -q '^posture-vmtest: exit 0' "$work/console.log"; then
  echo "vm: FAIL: the guest's setup failed (qemu exit $rc)" >&2
  grep -q '^guest: ' "$work/console.log" || tail -40 "$work/console.log" >&2
  exit 1
fi
if [ -n "${POSTURE_VM_KEEP:-}" ]; then mkdir -p "$POSTURE_VM_KEEP" && cp -r "$share/out/." "$POSTURE_VM_KEEP/"; fi
python3 "$here/check-storage.py" "$share/out" || {
  echo "# what the guest's tools said:"; sed 's/^/    /' "$share/out/storage-tools.txt"
  echo "# posture's stderr:"; sed 's/^/    /' "$share/out/storage.stderr"
  exit 1
}
