#!/usr/bin/env python3
"""Checks the disk_encryption finding posture reported in the storage guest
(tests/vm/guest-storage.sh) against the stacks the guest built. Prints `ok - ...` /
`not ok - ...` lines; exit 1 when any fails.

Usage: check-storage.py OUT_DIR   (the guest's /mnt/host/out: storage.json, disks.txt)
"""
import json
import sys

from tap import check, finish

out = sys.argv[1]

with open(f"{out}/storage.json") as f:
    report = json.load(f)
findings = [x for x in report["findings"] if x["id"] == "disk_encryption"]
if len(findings) != 1:
    print("not ok - exactly one disk_encryption finding")
    sys.exit(1)
finding = findings[0]
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

# Detached header: encrypted, cipher not known, said so.
det = volume("/mnt/detached")
check("detached header: luks2, pass", det.get("encryption") == "luks2" and det.get("status") == "pass", det)
check("detached header: reported as detached on vdh, no cipher claimed",
      len(layers(det)) == 1 and str(layers(det)[0].get("header", "")).startswith("detached") and layers(det)[0].get("header_device") == "vdh"
      and "cipher" not in layers(det)[0], layers(det))

# Swap: one plain dm-crypt with a random key, one in clear.
swap = obs.get("swap", {})
areas = swap.get("areas", [])
check("two swap areas", len(areas) == 2, swap)
enc = [a for a in areas if "vde" in " ".join(a.get("device_chain", []))]
clear = [a for a in areas if a.get("filename") == "/dev/vdf"]
check("swap on vde (plain dm-crypt, random key) is encrypted: plain", len(enc) == 1 and enc[0].get("encryption") == "plain", areas)
check("swap on vdf is not encrypted", len(clear) == 1 and clear[0].get("encryption") == "none", areas)
check("swap state: unencrypted", swap.get("state") == "unencrypted", swap)

# Hibernation resumes from the unencrypted swap.
hib = obs.get("hibernation", {})
check("hibernation resume device /dev/vdf, not encrypted",
      hib.get("resume_device") == "/dev/vdf" and hib.get("encrypted") is False, hib)

# The verdict and what it names.
summary = finding.get("summary", "")
check("the finding fails", finding.get("status") == "fail", finding.get("status"))
for name in ["/ (", "/mnt/loopplain", "swap /dev/vdf", "hibernation image on /dev/vdf", "weak cipher: /mnt/weak"]:
    check(f"the summary names {name!r}", name in summary, summary)
for name in ["/mnt/btrfs", "/mnt/loopcrypt", "/mnt/integrity", "/mnt/detached", "/mnt/loopinner"]:
    check(f"the summary does not blame {name}", f"{name} (" not in summary and f"{name}," not in summary
          and not summary.endswith(name), summary)

finish()
