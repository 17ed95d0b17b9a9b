#!/usr/bin/env python3
"""Checks the disk_encryption finding posture reported in the storage guest
(tests/vm/guest-storage.sh) against the stacks the guest built. Prints `ok - ...` /
`not ok - ...` lines; exit 1 when any fails.

Usage: check-storage.py OUT_DIR   (the guest's /mnt/host/out: storage.json, disks.txt)
"""
import sys

from tap import check, finish, one_finding

out = sys.argv[1]

finding = one_finding(f"{out}/storage.json", "disk_encryption")
obs = finding["observed"]
print(f"# disk_encryption: {finding['status']}: {finding['summary']}")
volumes = {v["mount_point"]: v for v in obs["volumes"]}


def volume(mount_point):
    v = volumes.get(mount_point)
    check(f"{mount_point} is reported as a volume", v is not None, sorted(volumes))
    return v or {}


def layers(v):
    return v.get("crypt_layers", [])


# The unencrypted root: an encrypted container file on it changes nothing.
root = volume("/")
check("/ is ext4 on vda", root.get("fstype") == "ext4" and "vda" in " ".join(root.get("device_chain", [])), root)
check("/ is not encrypted (encryption none, status fail)",
      root.get("encryption") == "none" and root.get("status") == "fail" and not root.get("full_volume"), root)
check("observed.root is none", obs.get("root") == "none", obs.get("root"))

# btrfs raid1 over two LUKS2 devices; the subvolume is the same volume.
bt = volume("/mnt/btrfs")
check("btrfs on LUKS2: encryption luks2, pass", bt.get("fstype") == "btrfs" and bt.get("encryption") == "luks2"
      and bt.get("status") == "pass" and bt.get("full_volume") is True, bt)
chain = " ".join(bt.get("device_chain", []))
check("btrfs: both members (vdb, vdc) in the device chain", "vdb" in chain and "vdc" in chain, bt.get("device_chain"))
check("btrfs: two LUKS2 layers, one per member, headers on vdb and vdc",
      sorted(lay.get("header_device") for lay in layers(bt)) == ["vdb", "vdc"]
      and all(lay.get("format") == "luks2" and lay.get("header") == "on device" for lay in layers(bt)), layers(bt))
check("btrfs: aes-xts-plain64 with a 512-bit key, version 2, no weakness",
      len(layers(bt)) == 2 and all(lay.get("cipher") == "aes-xts-plain64" and lay.get("key_bits") == 512
                                   and lay.get("version") == 2 and not lay.get("weakness") for lay in layers(bt)), layers(bt))
check("btrfs: the subvolume mount is the same volume (also_mounted_at)",
      "/mnt/btrfs-sub" in bt.get("also_mounted_at", []) and "/mnt/btrfs-sub" not in volumes, bt.get("also_mounted_at"))

# A plain image file on the encrypted btrfs: as encrypted as the btrfs.
inner = volume("/mnt/loopinner")
check("loop file on the btrfs-on-LUKS: encrypted (luks2), pass",
      inner.get("encryption") == "luks2" and inner.get("status") == "pass", inner)
check("loop file on the btrfs-on-LUKS: the btrfs's two LUKS2 layers (vdb, vdc, aes-xts-plain64 512-bit), via the file",
      sorted(lay.get("header_device") for lay in layers(inner)) == ["vdb", "vdc"]
      and all(lay.get("format") == "luks2" and lay.get("cipher") == "aes-xts-plain64" and lay.get("key_bits") == 512
              and lay.get("via_loop_file") == "/mnt/btrfs/inner.img" for lay in layers(inner)), layers(inner))

# Encrypted container file on the plain root, and a plain one.
lc = volume("/mnt/loopcrypt")
check("LUKS2 container file on a loop device: luks2, pass", lc.get("encryption") == "luks2" and lc.get("status") == "pass", lc)
check("container: header read from the loop device, aes-xts-plain64 512-bit",
      len(layers(lc)) == 1 and str(layers(lc)[0].get("header_device", "")).startswith("loop")
      and layers(lc)[0].get("cipher") == "aes-xts-plain64" and layers(lc)[0].get("key_bits") == 512, layers(lc))
lp = volume("/mnt/loopplain")
check("plain image file on the plain root: not encrypted, fail",
      lp.get("encryption") == "none" and lp.get("status") == "fail", lp)

# Weak cipher: LUKS1, AES-128-XTS.
weak = volume("/mnt/weak")
check("LUKS1 aes-xts-plain64 256-bit: encrypted (luks1) but fails as weak",
      weak.get("encryption") == "luks1" and weak.get("status") == "fail", weak)
check("weak: header says version 1, aes-xts-plain64, 256 bits, with a weakness",
      len(layers(weak)) == 1 and layers(weak)[0].get("version") == 1 and layers(weak)[0].get("cipher") == "aes-xts-plain64"
      and layers(weak)[0].get("key_bits") == 256 and "AES-128" in str(layers(weak)[0].get("weakness")), layers(weak))

# dm-integrity under dm-crypt: the header is found below the integrity device.
integ = volume("/mnt/integrity")
check("LUKS2 + dm-integrity: luks2, pass", integ.get("encryption") == "luks2" and integ.get("status") == "pass", integ)
check("integrity: header read on vdg (below the dm-integrity device), integrity hmac(sha256), aes-xts-plain64",
      len(layers(integ)) == 1 and layers(integ)[0].get("header_device") == "vdg"
      and layers(integ)[0].get("integrity") == "hmac(sha256)" and layers(integ)[0].get("cipher") == "aes-xts-plain64"
      and not layers(integ)[0].get("weakness"), layers(integ))
check("integrity: the device chain shows the dm-integrity layer over vdg",
      "vdg" in " ".join(integ.get("device_chain", [])) and len(integ.get("device_chain", [])) >= 3, integ.get("device_chain"))

def cryptsetup_status(name):
    """`cryptsetup status NAME` in the guest as a dict (cipher, keysize, type, device)."""
    with open(f"{out}/{name}-status.txt") as f:
        return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def same_cipher(layer, status):
    """The layer's cipher and key size are cryptsetup's (`aes-xts-plain64`, `512 bits`)."""
    return (status.get("cipher") is not None and layer.get("cipher") == status.get("cipher")
            and f"{layer.get('key_bits')} bits" == status.get("keysize"))


# Detached header: encrypted; the cipher from the kernel's dm table, as cryptsetup says.
det = volume("/mnt/detached")
csd = cryptsetup_status("cr_detached")
check("detached header: luks2, pass", det.get("encryption") == "luks2" and det.get("status") == "pass", det)
check(f"detached header: reported as detached on vdh, cipher from the dm table as cryptsetup status says ({csd.get('cipher')}, {csd.get('keysize')})",
      len(layers(det)) == 1 and str(layers(det)[0].get("header", "")).startswith("detached") and layers(det)[0].get("header_device") == "vdh"
      and "dm table" in layers(det)[0].get("header", "") and layers(det)[0].get("version") == 2
      and same_cipher(layers(det)[0], csd) and not layers(det)[0].get("weakness"), layers(det))

# Plain dm-crypt with a weak cipher on a loop file on /: only the dm table tells.
cbc = volume("/mnt/cbc")
csc = cryptsetup_status("cr_cbc")
check("plain aes-cbc-plain: cryptsetup status says PLAIN, aes-cbc-plain, 256 bits",
      csc.get("type") == "PLAIN" and csc.get("cipher") == "aes-cbc-plain" and csc.get("keysize") == "256 bits", csc)
check("plain aes-cbc-plain: encrypted (plain) but fails as weak",
      cbc.get("encryption") == "plain" and cbc.get("status") == "fail", cbc)
check("plain aes-cbc-plain: one plain layer, cipher and key size as cryptsetup says, with a weakness",
      len(layers(cbc)) == 1 and layers(cbc)[0].get("format") == "plain" and same_cipher(layers(cbc)[0], csc)
      and "CBC" in str(layers(cbc)[0].get("weakness", "")), layers(cbc))

# Swap: one plain dm-crypt with a random key, one in clear.
swap = obs.get("swap", {})
areas = swap.get("areas", [])
check("two swap areas", len(areas) == 2, swap)
enc = [a for a in areas if "vde" in " ".join(a.get("device_chain", []))]
clear = [a for a in areas if a.get("filename") == "/dev/vdf"]
check("swap on vde (plain dm-crypt, random key) is encrypted: plain", len(enc) == 1 and enc[0].get("encryption") == "plain", areas)
css = cryptsetup_status("cswap")
check(f"swap on vde: its plain dm-crypt layer named, cipher from the dm table as cryptsetup status says ({css.get('cipher')}, {css.get('keysize')})",
      len(enc) == 1 and len(enc[0].get("crypt_layers", [])) == 1 and enc[0]["crypt_layers"][0].get("format") == "plain"
      and enc[0]["crypt_layers"][0].get("header_device") == "vde" and same_cipher(enc[0]["crypt_layers"][0], css)
      and not enc[0]["crypt_layers"][0].get("weakness"),
      enc)
check("swap on vdf is not encrypted", len(clear) == 1 and clear[0].get("encryption") == "none", areas)
check("swap state: unencrypted", swap.get("state") == "unencrypted", swap)

# Hibernation resumes from the unencrypted swap.
hib = obs.get("hibernation", {})
check("hibernation resume device /dev/vdf, not encrypted",
      hib.get("resume_device") == "/dev/vdf" and hib.get("encrypted") is False, hib)

# ZFS, against ZFS's own view (`zfs get` in the guest) and cryptsetup's for ZFS on LUKS.
zget = {}
with open(f"{out}/zfs-get.txt") as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            zget[(parts[0], parts[1])] = parts[2]
check("zfs get lists the five datasets", all((d, "encryption") in zget for d in
      ["ptank/secure", "ptank/weak", "ptank/plain", "ptank/locked", "pluks"]), zget)


def zfs_volume(mount_point, dataset):
    v = volume(mount_point)
    check(f"{mount_point}: ZFS dataset {dataset}, and zfs get says it is mounted there",
          v.get("fstype") == "zfs" and v.get("source") == dataset and zget.get((dataset, "mounted")) == "yes"
          and zget.get((dataset, "mountpoint")) == mount_point, v)
    check(f"{mount_point}: encryption and key status as zfs get says ({zget.get((dataset, 'encryption'))}, "
          f"{zget.get((dataset, 'keystatus'))})",
          v.get("zfs_encryption") == zget.get((dataset, "encryption"))
          and v.get("zfs_keystatus") == zget.get((dataset, "keystatus")), v)
    return v


for mount_point, dataset, cipher, bits, status in [("/mnt/zsecure", "ptank/secure", "aes-256-gcm", 256, "pass"),
                                                   ("/mnt/zweak", "ptank/weak", "aes-128-ccm", 128, "fail")]:
    v = zfs_volume(mount_point, dataset)
    check(f"{mount_point}: zfs get says {cipher}, key available", zget.get((dataset, "encryption")) == cipher
          and zget.get((dataset, "keystatus")) == "available", zget)
    check(f"{mount_point}: ZFS native encryption ({cipher}), {status}",
          v.get("encryption") == f"zfs-native ({cipher})" and v.get("status") == status
          and v.get("full_volume") is True, v)
    lay = layers(v)
    check(f"{mount_point}: one zfs-native layer on {dataset}, {cipher}, {bits}-bit, key available",
          len(lay) == 1 and lay[0].get("format") == "zfs-native" and lay[0].get("device") == dataset
          and lay[0].get("cipher") == cipher and lay[0].get("key_bits") == bits
          and "key available" in lay[0].get("header", ""), lay)
    if status == "pass":
        check(f"{mount_point}: no weakness", len(lay) == 1 and not lay[0].get("weakness"), lay)
    else:
        check(f"{mount_point}: weak (a 128-bit key)", len(lay) == 1 and "128-bit" in str(lay[0].get("weakness")), lay)

zplain = zfs_volume("/mnt/zplain", "ptank/plain")
check("/mnt/zplain: zfs get says encryption off", zget.get(("ptank/plain", "encryption")) == "off", zget)
# ZFS partitions a whole disk it is given (vdi1); the only layer recorded is that the
# disk was looked at for Opal (a virtio disk has none).
check("/mnt/zplain: not encrypted (pool on the plain vdi1), fail, no encryption layer",
      zplain.get("encryption") == "none" and zplain.get("status") == "fail"
      and zplain.get("device_chain") == ["ptank/plain (ZFS dataset)", "vdi1"]
      and all(lay.get("format") == "opal" and lay.get("header", "").startswith("no Opal") for lay in layers(zplain)),
      zplain)

check("ptank/locked: zfs get says its key is unavailable and it is not mounted",
      zget.get(("ptank/locked", "keystatus")) == "unavailable" and zget.get(("ptank/locked", "mounted")) == "no", zget)
check("ptank/locked: not a volume (not mounted)", "/mnt/zlocked" not in volumes, sorted(volumes))

with open(f"{out}/cr_zfs-status.txt") as f:
    crz = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}
zluks = zfs_volume("/mnt/zluks", "pluks")
check("/mnt/zluks: zfs get says encryption off (no native encryption)", zget.get(("pluks", "encryption")) == "off", zget)
check("/mnt/zluks: encrypted by LUKS2 below the pool, pass",
      zluks.get("encryption") == "luks2" and zluks.get("status") == "pass" and zluks.get("full_volume") is True, zluks)
check("/mnt/zluks: device chain dataset -> dm-crypt (LUKS2) -> vdj",
      len(zluks.get("device_chain", [])) == 3 and zluks["device_chain"][0] == "pluks (ZFS dataset)"
      and zluks["device_chain"][1].endswith("(LUKS2)") and zluks["device_chain"][2] == "vdj", zluks.get("device_chain"))
check("/mnt/zluks: cryptsetup status says cr_zfs is LUKS2 on /dev/vdj",
      crz.get("type") == "LUKS2" and crz.get("device") == "/dev/vdj", crz)
check(f"/mnt/zluks: one LUKS2 layer, header on vdj, as cryptsetup status says ({crz.get('cipher')}, {crz.get('keysize')})",
      len(layers(zluks)) == 1 and layers(zluks)[0].get("format") == "luks2"
      and layers(zluks)[0].get("header_device") == "vdj" and layers(zluks)[0].get("cipher") == crz.get("cipher")
      and f"{layers(zluks)[0].get('key_bits')} bits" == crz.get("keysize") and not layers(zluks)[0].get("weakness"),
      layers(zluks))

# The verdict and what it names.
summary = finding.get("summary", "")
check("the finding fails", finding.get("status") == "fail", finding.get("status"))
for name in ["/ (", "/mnt/loopplain", "swap /dev/vdf", "hibernation image on /dev/vdf", "weak cipher: /mnt/weak",
             "/mnt/zplain (vdi1)", "/mnt/zweak", "/mnt/cbc"]:
    check(f"the summary names {name!r}", name in summary, summary)
for name in ["/mnt/btrfs", "/mnt/loopcrypt", "/mnt/integrity", "/mnt/detached", "/mnt/loopinner", "/mnt/zsecure",
             "/mnt/zluks", "/mnt/zlocked"]:
    check(f"the summary does not blame {name}", f"{name} (" not in summary and f"{name}," not in summary
          and not summary.endswith(name), summary)

finish()
