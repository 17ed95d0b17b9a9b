#!/bin/bash
# Runs inside the Secure Boot guest (tests/vm/secure-boot.sh shares it as
# /mnt/host/guest.sh; OVMF -> shim -> grub -> kernel, swtpm as the TPM): runs
# `posture check --json --only secure_boot` as root and leaves its output, the TPM's PCR
# values as the kernel reads them and the raw event log in /mnt/host/out for
# tests/vm/check-secure-boot.py.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
host=/mnt/host
out=$host/out
mkdir -p "$out"
echo; echo "guest: $(uname -r), $(nproc) cpu"
# The TPM driver is a module (tpm_crb), loaded by udev; wait for it.
for _ in $(seq 60); do [ -e /sys/kernel/security/tpm0/binary_bios_measurements ] && break; sleep 1; done
ls /sys/firmware/efi/efivars >/dev/null 2>&1 && echo "ok - booted by UEFI (efivars visible)" || echo "not ok - booted by UEFI"
# The PCRs as the TPM holds them (the kernel reads them with TPM2_PCR_Read).
for bank in sha1 sha256; do
  for n in $(seq 0 23); do
    [ -r /sys/class/tpm/tpm0/pcr-$bank/$n ] && echo "$bank $n $(cat /sys/class/tpm/tpm0/pcr-$bank/$n)"
  done
done >"$out/pcrs.txt"
cp /sys/kernel/security/tpm0/binary_bios_measurements "$out/binary_bios_measurements" 2>/dev/null
cat /sys/kernel/security/lockdown >"$out/lockdown" 2>/dev/null
cat /proc/cmdline >"$out/cmdline"
dmesg | grep -i 'secure boot\|secureboot\|lockdown\|tpm' >"$out/dmesg.txt"
# TCG runs ~20 times slower than the hardware: the default 5 s per-check timeout is
# not what is tested here.
printf '[checks]\ntimeout = "300s"\n' >/root/posture-vmtest.toml
start=$(date +%s%N)
"$host/posture" --config /root/posture-vmtest.toml check --json --only secure_boot >"$out/secure-boot.json" 2>"$out/secure-boot.stderr"
rc=$?; echo "# posture check --only secure_boot took $((($(date +%s%N) - start) / 1000000)) ms under TCG"
echo "posture check exited $rc ($(wc -c <"$out/secure-boot.json") bytes of JSON)"
sync
[ -s "$out/secure-boot.json" ] && [ -s "$out/pcrs.txt" ]
