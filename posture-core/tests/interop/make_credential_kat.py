#!/usr/bin/env python3
"""Known-answer vector for MakeCredential to an ECC NIST P-384 EK with the TCG high-range
template (SHA-384 name, AES-256-CFB), computed independently of posture with Python's
`cryptography` package (Debian: python3-cryptography) from TPM 2.0 Part 1:

- 11.4.10.2 KDFa (SP 800-108 counter mode, HMAC-SHA384),
- 11.4.10.3 KDFe (SP 800-56A concatenation KDF, SHA-384),
- 24.4-24.5 seed = KDFe(Z, "IDENTITY", ephemeral.x, EK.x, 384); symKey =
  KDFa(seed, "STORAGE", Name(AK), "", 256); encIdentity = AES-256-CFB(symKey, iv 0,
  TPM2B(credential)); HMACkey = KDFa(seed, "INTEGRITY", "", "", 384); outerHMAC =
  HMAC-SHA384(HMACkey, encIdentity || Name(AK)),
- Annex C.6.1 one-pass ECDH: Z is the x coordinate of k * EK.

It prints the constants of `make_credential_p384_known_answer` in
posture-core/src/attestation/credential.rs. Run: python3 make_credential_kat.py
"""
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 47 keeps CFB among the "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:
    CFB = modes.CFB

N384 = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973


def scalar(label):
    return int.from_bytes(hashlib.sha384(label).digest(), "big") % N384


def kdfa(key, label, u, v, bits):
    out, counter = b"", 1
    while len(out) * 8 < bits:
        msg = struct.pack(">I", counter) + label + b"\0" + u + v + struct.pack(">I", bits)
        out += hmac.new(key, msg, hashlib.sha384).digest()
        counter += 1
    return out[: bits // 8]


def kdfe(z, label, u, v, bits):
    out, counter = b"", 1
    while len(out) * 8 < bits:
        out += hashlib.sha384(struct.pack(">I", counter) + z + label + b"\0" + u + v).digest()
        counter += 1
    return out[: bits // 8]


def tpm2b(b):
    return struct.pack(">H", len(b)) + b


ek_priv = ec.derive_private_key(scalar(b"posture test EK"), ec.SECP384R1())
ek_nums = ek_priv.public_key().public_numbers()
ek_x, ek_y = ek_nums.x.to_bytes(48, "big"), ek_nums.y.to_bytes(48, "big")
k = scalar(b"posture test ephemeral")
eph_priv = ec.derive_private_key(k, ec.SECP384R1())
eph_nums = eph_priv.public_key().public_numbers()
eph_x, eph_y = eph_nums.x.to_bytes(48, "big"), eph_nums.y.to_bytes(48, "big")
z = eph_priv.exchange(ec.ECDH(), ek_priv.public_key())

# TPMT_PUBLIC of the high-range P-384 EK (TCG EK Credential Profile template H-3).
policy_b_sha384 = bytes.fromhex(
    "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419ca"
    "cb47ba09699646150f9fc000f3f80e12"
)
ek_public = (
    struct.pack(">HHI", 0x0023, 0x000C, 0x000300F2)
    + tpm2b(policy_b_sha384)
    + struct.pack(">HHH", 0x0006, 256, 0x0043)  # AES-256-CFB
    + struct.pack(">HHH", 0x0010, 0x0004, 0x0010)  # scheme NULL, NIST P-384, kdf NULL
    + tpm2b(ek_x)
    + tpm2b(ek_y)
)
ak_name = b"\x00\x0b" + hashlib.sha256(b"posture test AK").digest()
credential = bytes(range(1, 33))

seed = kdfe(z, b"IDENTITY", eph_x, ek_x, 384)
sym_key = kdfa(seed, b"STORAGE", ak_name, b"", 256)
enc = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
enc_identity = enc.update(tpm2b(credential)) + enc.finalize()
hmac_key = kdfa(seed, b"INTEGRITY", b"", b"", 384)
outer = hmac.new(hmac_key, enc_identity + ak_name, hashlib.sha384).digest()

print("EK_PUBLIC", ek_public.hex())
print("EPHEMERAL", k.to_bytes(48, "big").hex())
print("AK_NAME", ak_name.hex())
print("CREDENTIAL", credential.hex())
print("ENCRYPTED_SECRET", (tpm2b(eph_x) + tpm2b(eph_y)).hex())
print("CREDENTIAL_BLOB", (tpm2b(outer) + enc_identity).hex())
