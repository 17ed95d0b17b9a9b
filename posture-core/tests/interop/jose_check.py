"""Independent JOSE checks for posture's interop test, using jwcrypto (Debian's
python3-jwcrypto, on top of python3-cryptography / OpenSSL), not posture's code.

    jose_check.py verify TOKEN_FILE JWK_FILE [set]  -> JSON {header, claims, thumbprint}
    jose_check.py sign PEM_FILE HEADER_FILE CLAIMS_FILE -> compact JWS on stdout
"""

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
    sys.stdout.write(token.serialize(compact=True))


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(*sys.argv[2:5])
    elif sys.argv[1] == "sign":
        sign(*sys.argv[2:5])
    else:
        sys.exit("usage: jose_check.py verify|sign ...")
