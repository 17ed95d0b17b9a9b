"""Independent JOSE checks for posture's interop test, using jwcrypto (Debian's
python3-jwcrypto, on top of python3-cryptography / OpenSSL), not posture's code.

    jose_check.py verify TOKEN_FILE JWK_FILE [set]  -> JSON {header, claims, thumbprint}
    jose_check.py sign PEM_FILE HEADER_FILE CLAIMS_FILE -> compact JWS on stdout
"""

import base64
import json
import sys

from jwcrypto import jwk, jws, jwt


def verify(token_path, jwk_path, kind="evidence"):
    with open(token_path) as f:
        token = f.read().strip()
    with open(jwk_path) as f:
        key = jwk.JWK.from_json(f.read())
    # jwt.JWT verifies the ES256 signature and validates exp/nbf (with its default
    # 60 s leeway); algs pins the algorithm as posture's verifier does. Evidence must
    # carry exp; SETs have none (RFC 8417 §2.2).
    required = {} if kind == "set" else {"exp": None}
    checked = jwt.JWT(jwt=token, key=key, algs=["ES256"], check_claims=required)
    header = json.loads(checked.header)
    claims = json.loads(checked.claims)
    json.dump(
        {"header": header, "claims": claims, "thumbprint": key.thumbprint()},
        sys.stdout,
    )


def sign(pem_path, header_path, claims_path):
    with open(pem_path, "rb") as f:
        key = jwk.JWK.from_pem(f.read())
    with open(header_path) as f:
        header = f.read()
    with open(claims_path, "rb") as f:
        claims = f.read()
    token = jws.JWS(claims)
    token.add_signature(key, None, header)
    sys.stdout.write(low_s(token.serialize(compact=True)))


# The order of the P-256 group.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def low_s(compact):
    """posture verifiers accept only low-S ES256 signatures (s <= n/2), so that tokens
    are not malleable; OpenSSL signs with either form, so normalize as a signer must."""
    head, payload, sig = compact.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    if s > P256_N // 2:
        s = P256_N - s
    raw = r + s.to_bytes(32, "big")
    return ".".join([head, payload, base64.urlsafe_b64encode(raw).rstrip(b"=").decode()])


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(*sys.argv[2:5])
    elif sys.argv[1] == "sign":
        sign(*sys.argv[2:5])
    else:
        sys.exit("usage: jose_check.py verify|sign ...")
