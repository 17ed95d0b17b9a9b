#!/usr/bin/env bash
# The Secure Boot guest test: boots the Debian 12 guest the way a laptop does, with UEFI
# Secure Boot on and a TPM 2.0 recording the boot: OVMF with Microsoft's keys enrolled
# (Debian's `ovmf`: OVMF_CODE_4M.secboot.fd + OVMF_VARS_4M.ms.fd, Q35 with SMM), swtpm
# as the TPM (tpm-crb), and Debian's signed chain shim -> grub -> kernel from a GPT disk
# with an EFI system partition (tests/vm/build-esp.sh). In the guest, the real
# `posture check --json --only secure_boot` runs as root (tests/vm/guest-secure-boot.sh);
# tests/vm/check-secure-boot.py checks its finding against the firmware's state, the
# TPM's PCRs and the files that were booted.
#
# Usage: tests/vm/secure-boot.sh POSTURE
#   POSTURE is a `posture` binary, or scripts/package.sh's output directory.
# The ESP is cached in $POSTURE_VM_CACHE/esp-HASH (HASH of build-esp.sh and of the guest
# image). POSTURE_VM_TIMEOUT (default 900 s) bounds the guest. Missing QEMU, OVMF or
# swtpm is a failure, never a skip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"
arg=$(realpath "${1:?usage: tests/vm/secure-boot.sh POSTURE_BINARY|PACKAGES_DIR}")
timeout_s=${POSTURE_VM_TIMEOUT:-900}
vm_require qemu-system-x86_64 debootstrap mkfs.ext4 dpkg-deb debugfs swtpm mkfs.fat mcopy sfdisk python3
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
for f in "$ovmf_code" "$ovmf_vars"; do
  [ -f "$f" ] || { echo "vm: FAIL: $f is missing (scripts/setup.sh installs ovmf)" >&2; exit 1; }
done

image=$(vm_image)
echo "vm: guest image $image"
key=$(cat "$here/build-esp.sh" "$image/vmlinuz" "$image/initrd.img" | sha256sum | cut -c1-16)
esp=$vm_cache/esp-$key
(
  flock 9
  if [ ! -f "$esp/esp.img" ]; then
    rm -rf "$esp.tmp"
    "$here/build-esp.sh" "$esp.tmp" "$image"
    mv "$esp.tmp" "$esp"
    find "$vm_cache" -maxdepth 1 -name 'esp-*' ! -name "esp-$key" -exec rm -rf {} +
  fi
) 9>"$vm_cache/.lock-esp"
echo "vm: EFI system partition $esp ($(tr '\n' ' ' <"$esp/packages.txt"))"

work=$(mktemp -d "${TMPDIR:-/tmp}/posture-vm-sb.XXXXXX")
swtpm_pid=
cleanup() {
  if [ -n "$swtpm_pid" ]; then kill "$swtpm_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
share=$work/share
mkdir -p "$share/out" "$work/tpm"
vm_share_posture "$arg" "$work" "$share"
cp "$here/guest-secure-boot.sh" "$share/guest.sh"
# The firmware's variable store is written by the guest: a copy per run.
cp "$ovmf_vars" "$work/OVMF_VARS.fd"

# A fresh TPM 2.0 per run; it exits when QEMU disconnects.
swtpm socket --tpm2 --tpmstate "dir=$work/tpm" --ctrl "type=unixio,path=$work/swtpm.sock" \
  --terminate --log "file=$work/swtpm.log" &
swtpm_pid=$!
for _ in $(seq 50); do [ -S "$work/swtpm.sock" ] && break; sleep 0.1; done
[ -S "$work/swtpm.sock" ] || { echo "vm: FAIL: swtpm did not start" >&2; cat "$work/swtpm.log" >&2; exit 1; }

echo "vm: booting the Secure Boot guest (OVMF, swtpm; ${vm_accel[1]%%,*}), at most ${timeout_s}s"
start=$(date +%s)
rc=0
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${vm_accel[@]}" \
  -machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \
  -m 1024 -smp 2 -nodefaults -display none -no-reboot -serial "file:$work/console.log" \
  -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code" \
  -drive "if=pflash,format=raw,unit=1,file=$work/OVMF_VARS.fd" \
  -drive "file=$image/rootfs.img,format=raw,if=none,id=root,snapshot=on" -device virtio-blk-pci,drive=root \
  -drive "file=$esp/esp.img,format=raw,if=none,id=esp,snapshot=on" -device virtio-blk-pci,drive=esp,bootindex=0 \
  -chardev "socket,id=chrtpm,path=$work/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0 \
  -virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" \
  -device virtio-rng-pci -nic none || rc=$?
echo "vm: guest ran $(($(date +%s) - start)) s"
sed -n '/guest: /,$p' "$work/console.log" | tr -d '\r'
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "vm: FAIL: the guest did not finish within ${timeout_s}s; last console lines:" >&2
  tail -30 "$work/console.log" | tr -d '\r' >&2
  exit 1
fi
if ! grep -q '^posture-vmtest: exit 0' "$work/console.log"; then
  echo "vm: FAIL: the guest did not boot to the test or it failed (qemu exit $rc); console:" >&2
  tail -40 "$work/console.log" | tr -d '\r' >&2
  exit 1
fi
if [ -n "${POSTURE_VM_KEEP:-}" ]; then mkdir -p "$POSTURE_VM_KEEP" && cp -r "$share/out/." "$POSTURE_VM_KEEP/"; fi
python3 "$here/check-secure-boot.py" "$share/out" "$esp" "$image" || {
  echo "# posture's stderr:"; sed 's/^/    /' "$share/out/secure-boot.stderr"
  exit 1
}
