#!/usr/bin/env python3
"""Verify posture evidence and decide with a policy through libposture, using ctypes only.

Usage:
    verify.py --lib PATH/libposture.so --keys trusted.jwk --policy policy.toml \
              --evidence evidence.jws [--nonce NONCE] [--audience NAME] [--max-age SECS]

Prints the decision ("allow" or "deny") and, when denied, one reason per line. Exits 0 on
allow, 1 on deny, 2 when the evidence is refused or an argument is wrong (the library's
status message goes to stderr).
"""

import argparse
import ctypes
import json
import sys

POSTURE_STATUS_OK = 0
POSTURE_DECISION_ALLOW = 1
POSTURE_DEFAULT_SKEW_SECS = 60
ERROR_MESSAGE_MAX = 127


class Posture:
    """The few libposture entry points a verifier needs, with their C signatures."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        c = ctypes
        u8p = c.POINTER(c.c_uint8)
        handle = c.c_void_p
        lib.posture_version.restype = c.c_char_p
        lib.posture_version.argtypes = []
        lib.posture_error_message.restype = c.c_uint32
        lib.posture_error_message.argtypes = [c.c_uint32, c.c_char_p, c.c_size_t, c.POINTER(c.c_size_t)]
        lib.posture_verifier_new.restype = c.c_uint32
        lib.posture_verifier_new.argtypes = [
            c.c_char_p, c.c_size_t, c.c_char_p, c.c_size_t, c.c_char_p, c.c_size_t,
            c.c_uint32, c.c_uint32, c.POINTER(handle),
        ]
        lib.posture_verifier_free.restype = None
        lib.posture_verifier_free.argtypes = [handle]
        lib.posture_verify.restype = c.c_uint32
        lib.posture_verify.argtypes = [
            handle, c.c_char_p, c.c_size_t, c.c_char_p, c.c_size_t, c.POINTER(handle),
        ]
        lib.posture_result_free.restype = None
        lib.posture_result_free.argtypes = [handle]
        lib.posture_result_decision.restype = c.c_uint32
        lib.posture_result_decision.argtypes = [handle, c.POINTER(c.c_uint32)]
        lib.posture_result_reasons_json.restype = c.c_uint32
        lib.posture_result_reasons_json.argtypes = [handle, c.POINTER(handle)]
        lib.posture_buf_data.restype = u8p
        lib.posture_buf_data.argtypes = [handle]
        lib.posture_buf_len.restype = c.c_size_t
        lib.posture_buf_len.argtypes = [handle]
        lib.posture_buf_free.restype = None
        lib.posture_buf_free.argtypes = [handle]
        self.lib = lib

    def version(self):
        return self.lib.posture_version().decode()

    def message(self, status):
        buf = ctypes.create_string_buffer(ERROR_MESSAGE_MAX + 1)
        written = ctypes.c_size_t(0)
        self.lib.posture_error_message(status, buf, len(buf), ctypes.byref(written))
        return buf.value.decode()

    def check(self, status, what):
        if status != POSTURE_STATUS_OK:
            raise PostureError(status, f"{what}: {self.message(status)} (status {status})")

    def take_buf(self, buf):
        """Copies a posture_buf into Python bytes and frees it."""
        try:
            return ctypes.string_at(self.lib.posture_buf_data(buf), self.lib.posture_buf_len(buf))
        finally:
            self.lib.posture_buf_free(buf)


class PostureError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def verify(posture, keys, policy, audience, max_age, evidence, nonce):
    """Returns (allowed, reasons). Raises PostureError when the evidence is refused."""
    verifier = ctypes.c_void_p()
    posture.check(
        posture.lib.posture_verifier_new(
            keys, len(keys), policy, len(policy), audience, len(audience),
            max_age, POSTURE_DEFAULT_SKEW_SECS, ctypes.byref(verifier)),
        "posture_verifier_new")
    try:
        result = ctypes.c_void_p()
        posture.check(
            posture.lib.posture_verify(verifier, evidence, len(evidence), nonce, len(nonce),
                                       ctypes.byref(result)),
            "posture_verify")
        try:
            decision = ctypes.c_uint32(0)
            posture.check(posture.lib.posture_result_decision(result, ctypes.byref(decision)),
                          "posture_result_decision")
            reasons_buf = ctypes.c_void_p()
            posture.check(posture.lib.posture_result_reasons_json(result, ctypes.byref(reasons_buf)),
                          "posture_result_reasons_json")
            reasons = json.loads(posture.take_buf(reasons_buf))
            return decision.value == POSTURE_DECISION_ALLOW, reasons
        finally:
            posture.lib.posture_result_free(result)
    finally:
        posture.lib.posture_verifier_free(verifier)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", default="libposture.so", help="path of libposture.so")
    parser.add_argument("--keys", required=True, help="trusted keys: JWK, JWK Set or PEM")
    parser.add_argument("--policy", required=True, help="policy, TOML or JSON")
    parser.add_argument("--evidence", required=True, help="compact-JWS evidence")
    parser.add_argument("--nonce", default="", help="the nonce issued for this evidence")
    parser.add_argument("--audience", default="", help="this verifier's name")
    parser.add_argument("--max-age", type=int, default=0, help="maximum age in seconds")
    args = parser.parse_args()

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    posture = Posture(args.lib)
    try:
        allowed, reasons = verify(
            posture, read(args.keys), read(args.policy), args.audience.encode(), args.max_age,
            read(args.evidence).strip(), args.nonce.encode())
    except PostureError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    print("allow" if allowed else "deny")
    for reason in reasons:
        finding = f" [{reason['finding']}]" if "finding" in reason else ""
        print(f"  {reason['rule']}{finding}: {reason['message']}")
    return 0 if allowed else 1


if __name__ == "__main__":
    sys.exit(main())
