#!/usr/bin/env bash
# Builds the boot disk of the Secure Boot guest (tests/vm/secure-boot.sh): a GPT disk with
# one EFI system partition holding Debian's signed boot chain, booted by OVMF's removable
# media path:
#   /EFI/BOOT/BOOTX64.EFI   shim (shim-signed: signed by Microsoft's UEFI CA 2011)
#   /EFI/BOOT/grubx64.efi   grub (grub-efi-amd64-signed: signed by Debian, checked by shim)
#   /EFI/BOOT/grub.cfg, /EFI/debian/grub.cfg   boots /vmlinuz with /initrd.img
#   /vmlinuz, /initrd.img   the guest image's kernel (Debian's, signed) and initramfs
# The root file system is the install test's cached image (tests/vm/build-image.sh),
# attached as /dev/vda: no second root image to build or keep.
# Usage: tests/vm/build-esp.sh OUT_DIR IMAGE_DIR   (writes OUT_DIR/esp.img)
# No loop mounts: the FAT file system is made in a file (mkfs.fat), filled with mtools
# and copied into the partition of a GPT made by sfdisk.
set -euo pipefail
out=${1:?usage: tests/vm/build-esp.sh OUT_DIR IMAGE_DIR}
image=${2:?usage: tests/vm/build-esp.sh OUT_DIR IMAGE_DIR}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/posture-esp.XXXXXX")
trap 'rm -rf "$work"' EXIT

(cd "$work" && apt-get download -q shim-signed grub-efi-amd64-signed >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
shim=$work/x/usr/lib/shim/shimx64.efi.signed
grub=$work/x/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
[ -s "$shim" ] && [ -s "$grub" ] || { echo "build-esp: shim or grub missing from the packages" >&2; exit 1; }

cat >"$work/grub.cfg" <<'CFG'
set timeout=0
search --no-floppy --file --set=root /posture-esp
linux /vmlinuz root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=error panic=-1
initrd /initrd.img
boot
CFG
: >"$work/posture-esp"

# 48 MiB FAT at 1 MiB in a 50 MiB GPT disk.
esp_mib=48
mkfs.fat -F 32 -n POSTURE-ESP -C "$work/esp.fat" $((esp_mib * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
fat=(-i "$work/esp.fat")
mmd "${fat[@]}" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy "${fat[@]}" "$shim" ::/EFI/BOOT/BOOTX64.EFI
mcopy "${fat[@]}" "$grub" ::/EFI/BOOT/grubx64.efi
mcopy "${fat[@]}" "$work/grub.cfg" ::/EFI/BOOT/grub.cfg
mcopy "${fat[@]}" "$work/grub.cfg" ::/EFI/debian/grub.cfg
mcopy "${fat[@]}" "$image/vmlinuz" ::/vmlinuz
mcopy "${fat[@]}" "$image/initrd.img" ::/initrd.img
mcopy "${fat[@]}" "$work/posture-esp" ::/posture-esp

truncate -s $((esp_mib + 2))M "$work/esp.img"
sfdisk -q "$work/esp.img" <<EOF
label: gpt
start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system partition"
EOF
dd if="$work/esp.fat" of="$work/esp.img" bs=1M seek=1 conv=notrunc status=none
mkdir -p "$out"
mv "$work/esp.img" "$out/esp.img"
# The boot chain's files, for the test to compare with what the event log measured.
cp "$shim" "$out/shimx64.efi"
cp "$grub" "$out/grubx64.efi"
(cd "$work" && ls -1 ./*.deb) >"$out/packages.txt"
echo "build-esp: done: $(cat "$out/packages.txt" | tr '\n' ' ')" >&2
