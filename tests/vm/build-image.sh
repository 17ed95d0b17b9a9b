#!/usr/bin/env bash
# Builds the guest image of the real-systemd tests: a minimal Debian 12 (bookworm) with
# systemd as PID 1, Debian's kernel and initramfs, and what posture's packages depend on
# (so the guest never needs a network). Output, in OUT_DIR:
#   rootfs.img   raw ext4 root file system (made with `mkfs.ext4 -d`, no loop mounts)
#   vmlinuz, initrd.img   the guest's kernel and initramfs, for qemu -kernel/-initrd
# Usage: tests/vm/build-image.sh OUT_DIR
#
# The guest runs /mnt/host/guest.sh from a 9p share (tag `host`) at boot
# (posture-vmtest.service), writes what it prints to the serial console and powers off.
# So the image does not depend on the test: other real-kernel tests can use it by sharing
# another guest.sh. tests/vm/run.sh caches the image under /var/cache/posture-test/, keyed
# by this script's hash: change anything here and the next run rebuilds it.
set -euo pipefail
out=${1:?usage: tests/vm/build-image.sh OUT_DIR}
mirror=${POSTURE_VM_MIRROR:-http://deb.debian.org/debian}

# Runtime dependencies of the posture packages (libtss2 for the TPM device key) and the
# tools the guest test uses (dpkg/apt are in minbase; util-linux has runuser/setpriv).
include=systemd-sysv,udev,kmod,dbus,linux-image-amd64,initramfs-tools,zstd,libtss2-esys-3.0.2-0,libtss2-mu0,libtss2-tctildr0,libtss2-tcti-device0,libtss2-rc0,libtss2-sys1,ca-certificates,procps,iproute2

work=$(mktemp -d "${TMPDIR:-/var/tmp}/posture-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

echo "build-image: debootstrap bookworm into $root" >&2
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -40 "$work/debootstrap.log" >&2; exit 1; }

# Small initramfs with the virtio drivers the guest boots from.
cat >"$root/etc/initramfs-tools/conf.d/posture-vm" <<'CONF'
MODULES=dep
COMPRESS=zstd
CONF
printf '%s\n' virtio_pci virtio_blk virtio_console 9p 9pnet_virtio ext4 >>"$root/etc/initramfs-tools/modules"
# MODULES=dep looks at the build host's devices; list the guest's explicitly instead.
sed -i 's/^MODULES=dep/MODULES=list/' "$root/etc/initramfs-tools/conf.d/posture-vm"
chroot "$root" update-initramfs -u -k all >"$work/initramfs.log" 2>&1 || { cat "$work/initramfs.log" >&2; exit 1; }

echo posture-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 posture-vm\n' >"$root/etc/hosts"
cat >"$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,errors=remount-ro 0 1
host /mnt/host 9p trans=virtio,version=9p2000.L,msize=262144,nofail,x-systemd.device-timeout=10s 0 0
FSTAB
mkdir -p "$root/mnt/host"
# An empty machine-id: systemd creates one on first boot (ConditionFirstBoot semantics).
: >"$root/etc/machine-id"
passwd -R "$root" -d root >/dev/null
# No getty on the serial console: the console carries the test's output.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
# Nothing in the guest reaches a network, and no timer should run during a test.
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

cat >"$root/etc/systemd/system/posture-vmtest.service" <<'UNIT'
[Unit]
Description=posture real-systemd test (runs /mnt/host/guest.sh, then powers off)
After=multi-user.target mnt-host.mount
Requires=mnt-host.mount

[Service]
Type=oneshot
ExecStart=/bin/bash -c 'bash /mnt/host/guest.sh > /dev/ttyS0 2>&1; echo "posture-vmtest: exit $?" > /dev/ttyS0'
ExecStopPost=/bin/systemctl --no-block poweroff
StandardInput=null
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/posture-vmtest.service "$root/etc/systemd/system/multi-user.target.wants/posture-vmtest.service"

# Leave apt's caches out of the image.
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*

mkdir -p "$out"
install -m 0644 "$root"/boot/vmlinuz-* "$out/vmlinuz"
install -m 0644 "$root"/boot/initrd.img-* "$out/initrd.img"
# Room for the packages and the test's state; sparse, so it costs only what is used.
mkfs.ext4 -q -F -L posture-root -d "$root" "$out/rootfs.img" 2G
echo "build-image: done: $(du -sh --apparent-size "$out/rootfs.img" | cut -f1) image, $(du -sh "$out/rootfs.img" | cut -f1) used" >&2
