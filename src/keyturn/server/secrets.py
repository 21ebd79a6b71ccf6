"""Server-side secrets: the pepper, client secrets and the keyed hash of tokens.

Client secrets and tokens are generated here with >= 256 bits of entropy, so a
fast keyed hash (HMAC-SHA-256 with a pepper kept outside the database) is the
right storage form: a slow password KDF would only cap token throughput, and
brute force of a 256-bit value is out of reach either way. User passwords are
different and use argon2 (see ``passwords``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Protocol

from keyturn.storage.database import ensure_private_dir

CLIENT_SECRET_PREFIX = "kts_"


def _identifier(nbytes: int) -> str:
    """URL-safe random id that never starts with '-' (a command line would read an option)."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def generate_client_id() -> str:
    return _identifier(16)


def generate_client_secret() -> str:
    """256 bits of entropy; the prefix lets secret scanners recognise a leak."""
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


def generate_token_id() -> str:
    """A unique identifier (``jti``) whose order follows issuance time.

    48 bits of milliseconds then 80 random bits, in base32hex (RFC 4648 §7),
    whose alphabet sorts like the bytes it encodes, in lower case: 26
    characters. Time-ordered ids are appended at the end of the token table's
    primary-key index instead of landing on a random page of it: on SQLite
    that halved the cost of an insert into a table of 50,000 tokens (72 to
    33 us per row, measured), and it spares PostgreSQL's B-tree the same.
    The id says when the token was issued, which ``iat`` says already; the
    random part keeps ids unguessable and unique across processes.
    """
    stamp = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    return base32hex_lower(stamp + _ID_RANDOM.take(10))


class RandomBytes:
    """The operating system's random bytes, read 4 KiB at a time and handed out in
    slices: one ``getrandom`` call per 400 token ids instead of one per id (the
    call was 2 % of a token request's samples under load).

    Only for values that are unique and unguessable but not secret, such as a
    ``jti``, which every holder of its token reads: a secret (a client secret,
    a refresh token) still comes from `secrets` itself. A forked child starts
    with an empty buffer, so no two processes hand out the same bytes, and a
    lock keeps two threads from taking the same slice.
    """

    __slots__ = ("_buffer", "_lock", "_size", "_used")

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._buffer = b""
        self._used = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self.clear)

    def clear(self) -> None:
        self._buffer = b""
        self._used = 0
        self._lock = threading.Lock()  # a lock held at the fork stays held in the child

    def take(self, count: int) -> bytes:
        with self._lock:
            start = self._used
            end = start + count
            if end > len(self._buffer):
                self._buffer = os.urandom(max(self._size, count))
                start, end = 0, count
            self._used = end
            return self._buffer[start:end]


_ID_RANDOM = RandomBytes()


_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"  # RFC 4648 §7, lower case
_PAIRS = [a + b for a in _BASE32HEX for b in _BASE32HEX]
_SHIFTS = tuple(range(120, -1, -10))


def base32hex_lower(data: bytes) -> str:
    """16 bytes in unpadded lower-case base32hex: what
    ``base64.b32hexencode(data).decode().rstrip("=").lower()`` gives, in 4 us
    instead of 9 (the standard library's encoder is Python, five bytes a turn).

    Two characters (ten bits) a step: 128 bits and 2 zero bits of padding.
    """
    if len(data) != 16:
        raise ValueError("base32hex_lower encodes 16 bytes")
    bits = int.from_bytes(data, "big") << 2
    return "".join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])


REFRESH_TOKEN_PREFIX = "ktr_"


def generate_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def legacy_lookup_value(token: str) -> str:
    """What an imported legacy token is hashed as: its SHA-256, labelled.

    Importers may only have the SHA-256 of their old tokens, so both import
    paths store the keyed hash of this value.
    """
    return "legacy-sha256:" + hashlib.sha256(token.encode()).hexdigest()


SHORT_HASH_BYTES = 16
SHORT_HASH_CHARS = 22
"""`Hasher.short_hash`'s length: 16 bytes in unpadded base64url."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Mac(Protocol):
    """What `Hasher` uses of an HMAC object: ``hmac.HMAC`` or the C one it wraps."""

    def copy(self) -> _Mac: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


class Hasher:
    """HMAC-SHA-256 under the pepper; one instance per process, reused.

    Each hash copies an HMAC already keyed with the pepper rather than keying a
    new one: 1.5 us instead of 4.3 under OpenSSL 3, and a token request or an
    introspection hashes two or three values. It copies the C object that
    ``hmac.HMAC`` wraps when OpenSSL provides one, not the wrapper, whose copy
    is Python code: 1.4 us a hash instead of 3.1 (same digest; tested).
    """

    __slots__ = ("_keyed",)

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 32:
            raise ValueError("the pepper must be at least 32 bytes")
        keyed = hmac.new(pepper, digestmod=hashlib.sha256)
        # hmac.HMAC keeps OpenSSL's keyed HMAC in `_hmac` (None when it hashes in
        # Python); both have copy, update, digest and hexdigest.
        self._keyed: _Mac = getattr(keyed, "_hmac", None) or keyed

    def _mac(self, data: bytes) -> _Mac:
        mac = self._keyed.copy()
        mac.update(data)
        return mac

    def hash(self, value: str) -> str:
        return self._mac(value.encode()).hexdigest()

    def short_hash(self, value: str) -> str:
        """The first 128 bits of `hash`, in base64url: 22 characters instead of 64.

        For what is only ever checked, never looked up: an access token's record
        binds its signing input this way (its ``jti`` finds it). A 128-bit keyed
        MAC is out of reach of forgery, and every token row is 42 bytes smaller
        (about 8 % of a token's disk use; benchmarks/README.md).
        """
        return _b64url(self._mac(value.encode()).digest()[:SHORT_HASH_BYTES])

    def derive_key(self, label: str, value: str) -> bytes:
        """A 256-bit key bound to the pepper, a purpose and a value (HMAC as a PRF)."""
        return self._mac(f"{label}\x00{value}".encode()).digest()

    def verify(self, value: str, expected_hash: str | None) -> bool:
        """Constant-time check against a `hash` or a `short_hash`, told apart by
        length; a missing hash never matches (but costs the same)."""
        short = expected_hash is not None and len(expected_hash) == SHORT_HASH_CHARS
        actual = self.short_hash(value) if short else self.hash(value)
        return hmac.compare_digest(actual, expected_hash or "0" * len(actual))

    def __repr__(self) -> str:
        return "Hasher(<pepper hidden>)"


MIN_PEPPER_BYTES = 32
PEPPER_FIX = "set KEYTURN_PEPPER to 64 hex characters, e.g. the output of: openssl rand -hex 32"


class PepperError(ValueError):
    """The pepper given, or its file, is unusable: an operator error, not a bug."""

    def __init__(self, problem: str, fix: str = PEPPER_FIX) -> None:
        super().__init__(problem)
        self.fix = fix


def pepper_bytes(value: str) -> bytes:
    """The key a ``KEYTURN_PEPPER`` value stands for.

    Hex (as documented: at least 64 hex characters) decodes to its bytes; any
    other value of at least 32 bytes is taken as it is, as it always was:
    refusing it now would stop a running deployment, whose stored hashes are
    keyed with it.
    """
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        decoded = b""
    if len(decoded) >= MIN_PEPPER_BYTES:
        return decoded
    raw = value.encode()
    if len(raw) >= MIN_PEPPER_BYTES:
        return raw
    raise PepperError(
        f"KEYTURN_PEPPER is too short ({len(raw)} bytes): it must be at least "
        f"{2 * MIN_PEPPER_BYTES} hex characters ({MIN_PEPPER_BYTES} bytes)"
    )


def load_or_create_pepper(data_dir: Path, *, create: bool = True) -> bytes:
    """The pepper file in the data directory, created once with mode 0600.

    Created with O_EXCL so that several workers starting together agree on one.
    With ``create`` off a missing file is a `PepperError`: a new pepper would not
    match what the database's secrets and keys were made with.
    """
    path = data_dir / "pepper"
    fix = (
        f"restore {path} from a backup, or set KEYTURN_PEPPER (a new pepper makes "
        "every stored client secret stop matching)"
    )
    if create:
        ensure_private_dir(data_dir)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    elif not path.exists():
        raise PepperError(f"no pepper: {path} does not exist and KEYTURN_PEPPER is unset", fix)
    for _ in range(50):
        text = path.read_text().strip()
        if len(text) >= 2 * MIN_PEPPER_BYTES:
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise PepperError(f"the pepper file {path} is not hex", fix) from None
        # Another process created it and is still writing it.
        time.sleep(0.01)
    raise PepperError(f"the pepper file {path} is empty or too short", fix)


def pepper_from_settings(pepper: str | None, data_dir: Path, *, create: bool = True) -> bytes:
    if pepper:
        return pepper_bytes(pepper)
    return load_or_create_pepper(data_dir, create=create)
