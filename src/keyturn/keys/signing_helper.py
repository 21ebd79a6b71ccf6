"""A helper process that makes JWS signatures for one server process.

Started by `signing_processes` as ``python -m keyturn.keys.signing_helper FD``,
where FD is its end of a socketpair with the server. It is a plain blocking
loop: read every frame that has arrived, sign each, answer them all with one
write. Answers come back in the order of the requests, so the server needs no
request ids. It exits when the server closes its end (or dies: the kernel
closes it then), so it never outlives its server.

The wire format is written here rather than taken from ``multiprocessing``
because each frame must cost the server's event loop as little as possible: a
4-byte length and a 1-byte op, no pickling.

Requests (server to helper), ``!IB`` = length of what follows the length, op:
- ``OP_KEY``: ``kid \\0 alg \\0`` PKCS#8 DER of the private key. The key stays in
  this process's memory only, as it does in the server's; the socketpair is
  private to the two processes.
- ``OP_SIGN``: ``kid \\0`` then the JWS signing input; answered.
- ``OP_FORGET``: ``kid``; the key is dropped (it left the key ring).

Answers (helper to server): ``!IB`` = length, status; then the signature
(``OK``) or a message (``FAILED``).
"""

from __future__ import annotations

import signal
import socket
import struct
import sys

from cryptography.hazmat.primitives import serialization

from keyturn.core.jose import as_private_key
from keyturn.keys.jwt import Signer

FRAME = struct.Struct("!IB")
OP_KEY, OP_SIGN, OP_FORGET = 1, 2, 3
OK, FAILED = 0, 1


def frame(op: int, payload: bytes) -> bytes:
    return FRAME.pack(len(payload) + 1, op) + payload


def split_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete frame off the front of ``buffer``: ``(op, payload)``."""
    frames = []
    pos = 0
    end_of_data = len(buffer)
    while end_of_data - pos >= FRAME.size:
        length, op = FRAME.unpack_from(buffer, pos)
        end = pos + 4 + length
        if end > end_of_data:
            break
        frames.append((op, bytes(buffer[pos + FRAME.size : end])))
        pos = end
    del buffer[:pos]
    return frames


def _answer(signers: dict[str, Signer], op: int, payload: bytes) -> bytes | None:
    if op == OP_SIGN:
        kid, _, signing_input = payload.partition(b"\0")
        signer = signers.get(kid.decode())
        if signer is None:
            return frame(FAILED, b"unknown key " + kid)
        try:
            return frame(OK, signer.signature(signing_input))
        except Exception as exc:  # the server signs this one itself
            return frame(FAILED, repr(exc).encode())
    if op == OP_KEY:
        kid, alg, der = payload.split(b"\0", 2)
        try:
            signers[kid.decode()] = _signer(der, alg.decode(), kid.decode())
        except Exception as exc:  # its signing requests will say "unknown key"
            sys.stderr.write(f"keyturn signing helper: cannot load key {kid!r}: {exc!r}\n")
    elif op == OP_FORGET:
        signers.pop(payload.decode(), None)
    return None


def _signer(der: bytes, alg: str, kid: str) -> Signer:
    """The server's own key, which its key ring checked when it loaded it: OpenSSL's
    RSA key check (40 ms for RSA-2048) is not paid again in every helper."""
    key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    return Signer(as_private_key(key), alg, kid)


def serve(sock: socket.socket) -> None:
    signers: dict[str, Signer] = {}
    buffer = bytearray()
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        buffer += data
        answers = [_answer(signers, op, payload) for op, payload in split_frames(buffer)]
        out = b"".join(a for a in answers if a is not None)
        if out:
            sock.sendall(out)


def main() -> None:
    # Ctrl-C reaches the whole process group; the server decides when helpers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):  # the server went away
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    main()
