"""A WebAuthn relying party built on py_webauthn (PyPI `webauthn`), for posture's tests.

    py_webauthn_rp.py register REQUEST.json   -> prints {"ok": true, ...} or {"ok": false, "error": ...}
    py_webauthn_rp.py assert REQUEST.json
    py_webauthn_rp.py tamper REQUEST.json     -> prints the response with "tamper" applied

REQUEST.json holds what a relying party keeps between its challenge and the response:
  register: {"response": <RegistrationResponseJSON>, "challenge": B64URL, "rp_id": ...,
             "origin": ..., "root_pem": PEM (the trusted attestation root), "require_attestation": true}
  assert:   {"response": <AuthenticationResponseJSON>, "challenge": B64URL, "rp_id": ...,
             "origin": ..., "public_key": B64URL (COSE key from registration), "sign_count": 0}

A register request may name one part of the attestation to corrupt first ("tamper":
"certInfo", "pubArea", "extraData" or "authData"), as an attacker between the TPM and the
relying party would, to show that the library refuses it.

Exit 0 with ok=true when the library accepted, exit 1 with ok=false and the library's error
message when it refused.
"""

import base64
import json
import sys

from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.structs import AttestationFormat


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tamper(response, part):
    """Flips one bit of the named part of the attestation object (re-encoded with cbor2)."""
    import cbor2

    response = json.loads(json.dumps(response))
    obj = cbor2.loads(b64url_decode(response["response"]["attestationObject"]))
    stmt = obj["attStmt"]
    if part == "certInfo":
        # clockInfo.clock, after magic, type, qualifiedSigner and extraData.
        info = bytearray(stmt["certInfo"])
        signer_len = int.from_bytes(info[6:8], "big")
        extra_at = 8 + signer_len
        extra_len = int.from_bytes(info[extra_at : extra_at + 2], "big")
        info[extra_at + 2 + extra_len + 3] ^= 1
        stmt["certInfo"] = bytes(info)
    elif part == "extraData":
        info = bytearray(stmt["certInfo"])
        signer_len = int.from_bytes(info[6:8], "big")
        info[8 + signer_len + 2] ^= 1
        stmt["certInfo"] = bytes(info)
    elif part == "pubArea":
        area = bytearray(stmt["pubArea"])
        area[-5] ^= 1  # inside the key's unique field (modulus or y)
        stmt["pubArea"] = bytes(area)
    elif part == "authData":
        data = bytearray(obj["authData"])
        data[32] |= 0x04  # claim user verification the TPM never attested
        obj["authData"] = bytes(data)
    else:
        raise ValueError(f"unknown part {part}")
    response["response"]["attestationObject"] = b64url_encode(cbor2.dumps(obj))
    return response


def register(req):
    if "tamper" in req:
        req["response"] = tamper(req["response"], req["tamper"])
    verified = verify_registration_response(
        credential=req["response"],
        expected_challenge=b64url_decode(req["challenge"]),
        expected_rp_id=req["rp_id"],
        expected_origin=req["origin"],
        require_user_verification=False,
        # Without a configured root py_webauthn does not check the chain at all.
        pem_root_certs_bytes_by_fmt={AttestationFormat.TPM: [req["root_pem"].encode()]},
    )
    if req.get("require_attestation", True) and verified.fmt != AttestationFormat.TPM:
        raise ValueError(f"attestation format {verified.fmt}, expected tpm")
    return {
        "fmt": str(getattr(verified.fmt, "value", verified.fmt)),
        "credential_id": b64url_encode(verified.credential_id),
        "public_key": b64url_encode(verified.credential_public_key),
        "aaguid": verified.aaguid,
        "sign_count": verified.sign_count,
        "user_verified": verified.user_verified,
    }


def authenticate(req):
    verified = verify_authentication_response(
        credential=req["response"],
        expected_challenge=b64url_decode(req["challenge"]),
        expected_rp_id=req["rp_id"],
        expected_origin=req["origin"],
        credential_public_key=b64url_decode(req["public_key"]),
        credential_current_sign_count=req.get("sign_count", 0),
        require_user_verification=False,
    )
    return {
        "credential_id": b64url_encode(verified.credential_id),
        "new_sign_count": verified.new_sign_count,
    }


def main():
    command, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        req = json.load(f)
    if command == "tamper":
        # Prints the request's response with its "tamper" part corrupted, for other RPs.
        print(json.dumps(tamper(req["response"], req["tamper"])))
        return 0
    try:
        result = register(req) if command == "register" else authenticate(req)
    except Exception as e:  # the library's refusal is the result
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps({"ok": True, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
