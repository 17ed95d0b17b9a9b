#!/usr/bin/env python3
"""Checks the secure_boot finding posture reported in the Secure Boot guest
(tests/vm/guest-secure-boot.sh) against independent evidence: the TPM's PCR values as the
guest kernel read them, the Authenticode hashes of the shim and grub that were booted
and the SHA-256 of the kernel and initramfs (computed here, from the files on the ESP).
Prints `ok - ...` / `not ok - ...` lines; exit 1 when any fails.

Usage: check-secure-boot.py OUT_DIR ESP_DIR IMAGE_DIR
"""
import hashlib
import struct
import sys

from tap import check, finish, one_finding

out, esp, image = sys.argv[1:4]


def authenticode_sha256(path):
    """The PE image hash (Authenticode, as the firmware and shim measure it): the headers
    without the checksum and the certificate table entry, the sections in file order,
    then any data after them except the certificate table."""
    data = open(path, "rb").read()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    opt = pe + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    n_sections = struct.unpack_from("<H", data, pe + 6)[0]
    opt_size = struct.unpack_from("<H", data, pe + 20)[0]
    checksum = opt + 64
    cert_entry = opt + (144 if magic == 0x20B else 128)
    size_of_headers = struct.unpack_from("<I", data, opt + 60)[0]
    cert_size = struct.unpack_from("<I", data, cert_entry + 4)[0]
    h = hashlib.sha256()
    h.update(data[:checksum])
    h.update(data[checksum + 4:cert_entry])
    h.update(data[cert_entry + 8:size_of_headers])
    hashed = size_of_headers
    sections = []
    for i in range(n_sections):
        s = opt + opt_size + 40 * i
        raw_size, raw_ptr = struct.unpack_from("<II", data, s + 16)
        if raw_size:
            sections.append((raw_ptr, raw_size))
    for ptr, size in sorted(sections):
        h.update(data[ptr:ptr + size])
        hashed += size
    if len(data) > hashed + cert_size:
        h.update(data[hashed:len(data) - cert_size])
    return h.hexdigest()


def sha256_file(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


finding = one_finding(f"{out}/secure-boot.json", "secure_boot")
obs = finding["observed"]
print(f"# secure_boot: {finding['status']}: {finding['summary']}")

# The firmware's variables.
check("booted by UEFI", obs.get("uefi") is True, obs.get("uefi"))
check("SecureBoot enabled (efivars)", obs.get("enabled") is True, obs.get("enabled"))
check("not in Setup Mode (platform key enrolled)", obs.get("setup_mode") is False, obs.get("setup_mode"))
lockdown = open(f"{out}/lockdown").read()
check("kernel lockdown: integrity (Debian's kernel locks down under Secure Boot), as the kernel says",
      obs.get("lockdown") == "integrity" and "[integrity]" in lockdown, [obs.get("lockdown"), lockdown])
check("module signature enforcement reported as a boolean", isinstance(obs.get("module_sig_enforce"), bool),
      obs.get("module_sig_enforce"))
dbx_missing = (obs.get("signature_databases", {}).get("dbx_assessment") or {}).get("missing")
check("status: pass, or fail only because dbx lacks revocations",
      finding["status"] == "pass" or (finding["status"] == "fail" and "dbx" in finding["summary"] and dbx_missing),
      [finding["status"], finding["summary"]])

# The signature databases OVMF's Microsoft variable store enrolls.
dbs = obs.get("signature_databases", {})


def subjects(name):
    return [c.get("subject", "") for c in dbs.get(name, {}).get("certificates", [])]


for name in ["PK", "KEK", "db", "dbx"]:
    check(f"{name} read and parsed", name in dbs and "error" not in dbs[name], dbs.get(name))
check("PK holds one certificate", len(subjects("PK")) == 1, subjects("PK"))
check("KEK holds Microsoft Corporation KEK CA 2011",
      any("Microsoft Corporation KEK CA 2011" in s for s in subjects("KEK")), subjects("KEK"))
check("db holds Microsoft Corporation UEFI CA 2011 and Microsoft Windows Production PCA 2011",
      any("Microsoft Corporation UEFI CA 2011" in s for s in subjects("db"))
      and any("Microsoft Windows Production PCA 2011" in s for s in subjects("db")), subjects("db"))
cas = dbs.get("microsoft_cas", {})
check("microsoft_cas: the 2011 UEFI CA is present, not revoked",
      "Microsoft Corporation UEFI CA 2011" in cas.get("ca_2011_present", [])
      and "Microsoft Corporation UEFI CA 2011" not in cas.get("ca_2011_revoked", []), cas)

# The event log, replayed, against the TPM's own PCRs.
mb = obs.get("measured_boot") or {}
check("measured_boot: the event log was read and parsed", mb.get("events", 0) > 0 and "error" not in mb, mb)
check("the SHA-256 bank is replayed", mb.get("replay_bank") == "0x000b", mb.get("replay_bank"))
tpm = {}
for line in open(f"{out}/pcrs.txt"):
    bank, n, value = line.split()
    if bank == "sha256":
        tpm[n] = value.lower()
replayed = {k: v.lower() for k, v in mb.get("replayed_pcrs", {}).items()}
check("the log replays PCRs 0-9", all(str(n) in replayed for n in range(10)), sorted(replayed))
for n, value in sorted(replayed.items(), key=lambda kv: int(kv[0])):
    check(f"replayed PCR {n} equals the TPM's PCR {n} (sha256)", tpm.get(n) == value,
          {"replayed": value, "tpm": tpm.get(n)})

facts = mb.get("facts", {})
check("the log says Secure Boot was enabled", facts.get("secure_boot") is True, facts.get("secure_boot"))
check("SecureBoot, PK, KEK, db, dbx measured into PCR 7",
      all(v in facts.get("measured_variables", []) for v in ["SecureBoot", "PK", "KEK", "db", "dbx"]),
      facts.get("measured_variables"))
apps = facts.get("boot_applications", [])
shim = authenticode_sha256(f"{esp}/shimx64.efi")
grub = authenticode_sha256(f"{esp}/grubx64.efi")
check(f"the first boot application is shim (Authenticode {shim[:16]}...)", apps[:1] == [shim], apps)
check(f"grub was measured as a boot application (Authenticode {grub[:16]}...)", grub in apps, apps)
kernel_pe = authenticode_sha256(f"{image}/vmlinuz")
check(f"the kernel's EFI stub was measured as a boot application after grub (Authenticode {kernel_pe[:16]}...)",
      grub in apps and kernel_pe in apps[apps.index(grub) + 1:], apps)
check("dbx assessed against the reference revocations",
      (dbs.get("dbx_assessment") or {}).get("reference_entries", 0) > 0, dbs.get("dbx_assessment"))
auth = facts.get("authorities", [])
check("shim was authorised by Microsoft Corporation UEFI CA 2011 (db)",
      any("Microsoft Corporation UEFI CA 2011" in a for a in auth), auth)
check("grub was authorised by Debian's Secure Boot CA (shim's vendor certificate)",
      any("Debian Secure Boot CA" in a for a in auth), auth)
kernel = sha256_file(f"{image}/vmlinuz")
initrd = sha256_file(f"{image}/initrd.img")
pcr9 = facts.get("pcr9_digests", [])
check(f"grub measured the kernel into PCR 9 (sha256 {kernel[:16]}...)", kernel in pcr9, pcr9)
check(f"grub measured the initramfs into PCR 9 (sha256 {initrd[:16]}...)", initrd in pcr9, pcr9)
check("the measured IPL events name /vmlinuz and the command line",
      any("/vmlinuz" in e for e in facts.get("ipl", [])) and any("root=/dev/vda" in e for e in facts.get("ipl", [])),
      facts.get("ipl"))

finish()
