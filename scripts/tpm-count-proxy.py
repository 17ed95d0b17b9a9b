#!/usr/bin/env python3
"""Counts the TPM commands that really cross the wire to a swtpm.

Listens on PORT (data) and PORT+1 (control) on loopback and relays to swtpm on
SWTPM_PORT / SWTPM_PORT+1. The swtpm TCTI sends raw TPM 2.0 commands on the data
channel (no framing): each is a 10-byte header (tag u16, size u32, commandCode u32,
big-endian) followed by size-10 bytes, answered by one response of the same shape. Every
command code is appended to LOG, one per line (hex and name), so a caller can count the
commands of one program run. The control channel is relayed unparsed.

swtpm has no resource manager, and tpm2-tools (like any TSS client) relies on one to
flush the objects and sessions a tool leaves loaded when it exits. The swtpm TCTI opens a
new data connection per command, so the end of a client cannot be seen on the data
channel; instead a connection to PORT+2 says "a client process has exited", and the
relay then does what the kernel's /dev/tpmrm0 does at close: it flushes the transient
objects and sessions still loaded, and answers "ok". These clean-up commands are the
resource manager's, not the client's, and are not logged (posture flushes what it loads
itself, and those flushes are counted).

usage: tpm-count-proxy.py PORT SWTPM_PORT LOG   (listens on PORT, PORT+1, PORT+2)
"""

import socket
import struct
import sys
import threading

NAMES = {
    0x11F: "NV_DefineSpace", 0x121: "EvictControl", 0x131: "CreatePrimary",
    0x144: "StartUp", 0x147: "ActivateCredential", 0x148: "Certify",
    0x14E: "NV_Read", 0x151: "PolicySecret", 0x153: "Create", 0x157: "Load",
    0x158: "Quote", 0x15D: "Sign", 0x161: "ContextLoad", 0x162: "ContextSave",
    0x165: "FlushContext", 0x169: "NV_ReadPublic", 0x173: "ReadPublic",
    0x176: "StartAuthSession", 0x17A: "GetCapability", 0x17B: "GetRandom",
    0x17D: "Hash", 0x17E: "PCR_Read", 0x17F: "PolicyPCR", 0x189: "PolicyGetDigest",
    0x18F: "TestParms", 0x16B: "PolicyCommandCode", 0x16F: "PolicyOR",
}

lock = threading.Lock()


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(sock):
    header = recv_exact(sock, 10)
    if header is None:
        return None, None
    _tag, size, code = struct.unpack(">HII", header)
    body = recv_exact(sock, size - 10) if size > 10 else b""
    if body is None:
        return None, None
    return header + body, code


def transact(sock, command):
    sock.sendall(command)
    response, _ = read_frame(sock)
    return response


def flush_leftovers(upstream):
    """Flushes loaded transient objects (0x80) and loaded sessions (0x02). Saved sessions
    (0x03) are kept: tpm2-tools passes a policy session from one tool to the next."""
    for first in (0x80000000, 0x02000000):
        get_cap = struct.pack(">HII" + "III", 0x8001, 22, 0x17A, 1, first, 64)
        response = transact(upstream, get_cap)
        if response is None or len(response) < 19:
            return
        _tag, _size, rc = struct.unpack(">HII", response[:10])
        if rc != 0:
            continue
        (count,) = struct.unpack(">I", response[15:19])
        handles = struct.unpack(">" + "I" * count, response[19 : 19 + 4 * count])
        for handle in handles:
            transact(upstream, struct.pack(">HIII", 0x8001, 14, 0x165, handle))


def data_session(client, upstream_port, log):
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    try:
        while True:
            command, code = read_frame(client)
            if command is None:
                return
            with lock, open(log, "a") as f:
                f.write(f"0x{code:03x} {NAMES.get(code, '?')}\n")
            upstream.sendall(command)
            response, _ = read_frame(upstream)
            if response is None:
                return
            client.sendall(response)
    finally:
        upstream.close()
        client.close()


def pipe(src, dst):
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def ctrl_session(client, upstream_port):
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)


def rm_session(client, upstream_port):
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    try:
        with lock:
            flush_leftovers(upstream)
        client.sendall(b"ok\n")
    finally:
        upstream.close()
        client.close()


def serve(port, handler):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)
    while True:
        client, _ = server.accept()
        threading.Thread(target=handler, args=(client,), daemon=True).start()


def main():
    port, upstream, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    threading.Thread(
        target=serve, args=(port + 1, lambda c: ctrl_session(c, upstream + 1)), daemon=True
    ).start()
    threading.Thread(
        target=serve, args=(port + 2, lambda c: rm_session(c, upstream)), daemon=True
    ).start()
    serve(port, lambda c: data_session(c, upstream, log))


if __name__ == "__main__":
    main()
