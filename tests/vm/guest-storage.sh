#!/bin/bash
# Runs inside the guest (tests/vm/storage.sh shares it as /mnt/host/guest.sh): builds real
# storage stacks with Debian's kernel and tools on the extra virtual disks, runs
# `posture check --json --only disk_encryption` and leaves its output (and what the
# tools say about the stacks) in /mnt/host/out for tests/vm/check-storage.py.
#
# Disks (virtio, in this order after the root /dev/vda, an unencrypted ext4):
#   vdb, vdc  LUKS2 each, one btrfs raid1 over both (+ a subvolume mounted again)
#   vdd       LUKS1 aes-xts-plain64 with a 256-bit key (AES-128: weak), ext4
#   vde       plain dm-crypt swap with a random key (crypttab's `swap` recipe)
#   vdf       swap without encryption, also set as the hibernation resume device
#   vdg       LUKS2 with dm-integrity (hmac-sha256) under dm-crypt, ext4
#   vdh       LUKS2 with a detached header (the header is a file on /), ext4
#   vdi       ZFS pool ptank: datasets with native encryption (aes-256-gcm; aes-128-ccm,
#             weak; one with its key unloaded, so not mounted) and one without
#   vdj       LUKS2, ZFS pool pluks on it (ZFS on LUKS), no native encryption
# plus, on the root filesystem, a LUKS2 container file on a loop device (must not make
# / count as encrypted) and a plain ext4 image file on a loop device (as clear as /), and
# a plain ext4 image file on the encrypted btrfs (as encrypted as the btrfs), and a
# plain dm-crypt aes-cbc-plain (weak) mapping on a loop file on the root.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
host=/mnt/host
out=$host/out
failed=0
step() { # description, command...: setup steps; a failure stops nothing but is reported
  local what=$1 log; shift
  if log=$("$@" 2>&1); then echo "ok - $what"; else failed=$((failed + 1)); echo "not ok - $what"; echo "$log" | tail -15 | sed 's/^/    /'; fi
}
echo; echo "guest: $(uname -r), $(nproc) cpu"
mkdir -p "$out"

step "install cryptsetup and btrfs-progs (local repository)" sh -c "dpkg -i $host/repo/*.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }"
step "load dm-crypt, dm-integrity, btrfs, loop" modprobe -a dm_crypt dm_integrity btrfs loop

# Low PBKDF cost: the key derivation is not what is tested, and TCG is slow.
key=/root/key
head -c 64 /dev/urandom >"$key"
fmt=(cryptsetup luksFormat --batch-mode --key-file "$key" --pbkdf-force-iterations 1000)
luks2=("${fmt[@]}" --type luks2 --pbkdf pbkdf2 --cipher aes-xts-plain64 --key-size 512)

# btrfs raid1 over two LUKS2 devices, a subvolume mounted a second time, and a plain
# image file on it behind a loop device.
step "LUKS2 on vdb and vdc" sh -c "$(printf '%q ' "${luks2[@]}") /dev/vdb && $(printf '%q ' "${luks2[@]}") /dev/vdc"
step "open cr_b, cr_c" sh -c "cryptsetup open --key-file $key /dev/vdb cr_b && cryptsetup open --key-file $key /dev/vdc cr_c"
step "btrfs raid1 over cr_b and cr_c" mkfs.btrfs -q -f -L pbtrfs -d raid1 -m raid1 /dev/mapper/cr_b /dev/mapper/cr_c
mkdir -p /mnt/btrfs /mnt/btrfs-sub /mnt/loopinner
step "mount the btrfs at /mnt/btrfs" sh -c "btrfs device scan >/dev/null && mount /dev/mapper/cr_b /mnt/btrfs"
step "subvolume sub mounted at /mnt/btrfs-sub" sh -c "btrfs subvolume create /mnt/btrfs/sub && mount -o subvol=sub /dev/mapper/cr_b /mnt/btrfs-sub"
step "plain ext4 image on the btrfs, loop-mounted at /mnt/loopinner" sh -c "
  truncate -s 16M /mnt/btrfs/inner.img && mkfs.ext4 -q -F /mnt/btrfs/inner.img &&
  mount -o loop /mnt/btrfs/inner.img /mnt/loopinner"

# A weak cipher: AES-128 in XTS (a 256-bit XTS key), LUKS1.
mkdir -p /mnt/weak
step "LUKS1 aes-xts-plain64 256-bit on vdd, ext4 at /mnt/weak" sh -c "
  $(printf '%q ' "${fmt[@]}") --type luks1 --cipher aes-xts-plain64 --key-size 256 /dev/vdd &&
  cryptsetup open --key-file $key /dev/vdd cr_weak && mkfs.ext4 -q /dev/mapper/cr_weak &&
  mount /dev/mapper/cr_weak /mnt/weak"

# Swap: encrypted with a random key at each boot (no header), and one in clear that is
# also the hibernation resume device.
step "plain dm-crypt swap with a random key on vde" sh -c "
  cryptsetup open --type plain --key-file /dev/urandom --cipher aes-xts-plain64 --key-size 512 /dev/vde cswap &&
  mkswap -q /dev/mapper/cswap && swapon /dev/mapper/cswap"
step "unencrypted swap on vdf" sh -c "mkswap -q /dev/vdf && swapon /dev/vdf"
step "vdf is the hibernation resume device" sh -c "cat /sys/class/block/vdf/dev >/sys/power/resume && [ \"\$(cat /sys/power/resume)\" = \"\$(cat /sys/class/block/vdf/dev)\" ]"

# dm-integrity under dm-crypt (LUKS2 authenticated encryption).
mkdir -p /mnt/integrity
step "LUKS2 with hmac-sha256 integrity on vdg, ext4 at /mnt/integrity" sh -c "
  $(printf '%q ' "${fmt[@]}") --type luks2 --pbkdf pbkdf2 --cipher aes-xts-plain64 --integrity hmac-sha256 /dev/vdg &&
  cryptsetup open --key-file $key /dev/vdg cr_integrity && mkfs.ext4 -q /dev/mapper/cr_integrity &&
  mount /dev/mapper/cr_integrity /mnt/integrity"

# A detached header: the device holds only ciphertext.
mkdir -p /mnt/detached
step "LUKS2 with a detached header on vdh, ext4 at /mnt/detached" sh -c "
  truncate -s 16M /root/vdh-header.img &&
  $(printf '%q ' "${luks2[@]}") --header /root/vdh-header.img /dev/vdh &&
  cryptsetup open --key-file $key --header /root/vdh-header.img /dev/vdh cr_detached &&
  mkfs.ext4 -q /dev/mapper/cr_detached && mount /dev/mapper/cr_detached /mnt/detached"

# An encrypted container file beside the unencrypted root, and a plain one.
mkdir -p /mnt/loopcrypt /mnt/loopplain
step "LUKS2 container file on /, loop device, ext4 at /mnt/loopcrypt" sh -c "
  truncate -s 48M /var/tmp/container.img && loop=\$(losetup -f --show /var/tmp/container.img) &&
  $(printf '%q ' "${luks2[@]}") \$loop && cryptsetup open --key-file $key \$loop cr_loop &&
  mkfs.ext4 -q /dev/mapper/cr_loop && mount /dev/mapper/cr_loop /mnt/loopcrypt"
step "plain ext4 image file on /, loop-mounted at /mnt/loopplain" sh -c "
  truncate -s 16M /var/tmp/plain.img && mkfs.ext4 -q -F /var/tmp/plain.img &&
  mount -o loop /var/tmp/plain.img /mnt/loopplain"
# Plain dm-crypt with a weak cipher (CBC with a plain IV), on a loop file on /: no
# header, so only the kernel's dm table says how it is encrypted.
mkdir -p /mnt/cbc
step "plain dm-crypt aes-cbc-plain 256-bit on a loop file, ext4 at /mnt/cbc" sh -c "
  truncate -s 16M /var/tmp/cbc.img && loop=\$(losetup -f --show /var/tmp/cbc.img) &&
  cryptsetup open --type plain --key-file /dev/urandom --cipher aes-cbc-plain --key-size 256 \$loop cr_cbc &&
  mkfs.ext4 -q /dev/mapper/cr_cbc && mount /dev/mapper/cr_cbc /mnt/cbc"

# ZFS: OpenZFS built on the host for this kernel (tests/vm/build-zfs.sh), the modules
# and zfsutils-linux shared in $host/zfs. zfsutils-linux is installed without its python3
# dependency (only arc_summary/arcstat use it) and without starting its services.
zfs_start=$(date +%s)
step "load the ZFS modules built for this kernel" sh -c "
  dir=/lib/modules/\$(uname -r)/extra/zfs && mkdir -p \$dir && cp $host/zfs/modules/*.ko \$dir/ &&
  depmod -a && modprobe zfs zfs_arc_max=67108864"
step "install zfsutils-linux and its libraries (no python3, no services)" sh -c "
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d &&
  { dpkg -i --force-depends $host/zfs/debs/*.deb >/tmp/dpkg-zfs.log 2>&1 || { cat /tmp/dpkg-zfs.log; exit 1; }; } &&
  rm /usr/sbin/policy-rc.d && zfs version"
zpass=/root/zfs-passphrase
echo "posture-vmtest-passphrase" >"$zpass"
zenc=(-o keyformat=passphrase -o "keylocation=file://$zpass")
step "ZFS pool ptank on vdi (its root dataset not mounted)" zpool create -f -O mountpoint=none ptank /dev/vdi
step "ptank/secure: aes-256-gcm, key loaded, at /mnt/zsecure" \
  zfs create -o encryption=aes-256-gcm "${zenc[@]}" -o mountpoint=/mnt/zsecure ptank/secure
step "ptank/weak: aes-128-ccm, key loaded, at /mnt/zweak" \
  zfs create -o encryption=aes-128-ccm "${zenc[@]}" -o mountpoint=/mnt/zweak ptank/weak
step "ptank/plain: no encryption, at /mnt/zplain" zfs create -o mountpoint=/mnt/zplain ptank/plain
step "ptank/locked: aes-256-gcm, unmounted and its key unloaded" sh -c "
  zfs create -o encryption=aes-256-gcm $(printf '%q ' "${zenc[@]}") -o mountpoint=/mnt/zlocked ptank/locked &&
  zfs unmount ptank/locked && zfs unload-key ptank/locked"
step "LUKS2 on vdj, ZFS pool pluks on it at /mnt/zluks" sh -c "
  $(printf '%q ' "${luks2[@]}") /dev/vdj && cryptsetup open --key-file $key /dev/vdj cr_zfs &&
  zpool create -f -O mountpoint=/mnt/zluks pluks /dev/mapper/cr_zfs"
echo "# the ZFS setup took $(($(date +%s) - zfs_start)) s under TCG"

# What the tools say, for the host's assertions and for reading a failure.
{
  echo "# lsblk"; lsblk -o NAME,MAJ:MIN,TYPE,FSTYPE,MOUNTPOINTS
  for m in cr_b cr_c cr_weak cswap cr_integrity cr_detached cr_loop cr_zfs cr_cbc; do echo "# cryptsetup status $m"; cryptsetup status "$m"; done
  echo "# dmsetup table (keys not shown)"; dmsetup table
  echo "# /proc/swaps"; cat /proc/swaps
  echo "# /sys/power/resume"; cat /sys/power/resume
} >"$out/storage-tools.txt" 2>&1
# ZFS's own view, the independent evidence for the datasets.
zfs get -H -o name,property,value encryption,keystatus,mounted,mountpoint -r ptank pluks >"$out/zfs-get.txt" 2>&1
zpool status -P >"$out/zpool-status.txt" 2>&1
cryptsetup status cr_zfs >"$out/cr_zfs-status.txt" 2>&1
# The ciphers of the mappings without a header on the device, as cryptsetup sees them.
for m in cswap cr_detached cr_cbc; do cryptsetup status "$m" >"$out/$m-status.txt" 2>&1; done
for d in vdb vdc vdd vde vdf vdg vdh vdi vdj; do echo "$d $(cat /sys/class/block/$d/dev)"; done >"$out/disks.txt"
losetup -l -n -O NAME,BACK-FILE >"$out/loops.txt"

# The real thing: the CLI as root (it reads the LUKS headers).
# TCG runs ~20 times slower than the hardware: the default 5 s per-check timeout is
# not what is tested here.
printf '[checks]\ntimeout = "300s"\n' >/root/posture-vmtest.toml
start=$(date +%s%N)
"$host/posture" --config /root/posture-vmtest.toml check --json --only disk_encryption >"$out/storage.json" 2>"$out/storage.stderr"
rc=$?; echo "# posture check --only disk_encryption took $((($(date +%s%N) - start) / 1000000)) ms under TCG"
echo "posture check exited $rc ($(wc -c <"$out/storage.json") bytes of JSON)"
sync
# Tidy shutdown: the loop-mounted file on the btrfs first (systemd would otherwise fail
# to unmount the btrfs at power-off, a harmless but confusing console line).
umount /mnt/loopinner /mnt/btrfs-sub /mnt/btrfs
zpool export ptank pluks
echo "$failed setup steps failed"
[ "$failed" = 0 ]
