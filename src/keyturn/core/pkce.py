"""RFC 7636 PKCE: a random verifier and its S256 challenge, and the server's check.

Only the standard library is needed: ``secrets`` for the verifier, SHA-256
and base64url for the challenge (RFC 7636 §4.1-4.2). A client is never offered
``plain`` (RFC 9700 §2.1.1 says S256 whenever possible); `verify` still
checks it for the servers that let a client opt in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["Pkce", "code_challenge", "generate_verifier", "verify"]

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def generate_verifier(nbytes: int = 32) -> str:
    """A high-entropy verifier: 32 random bytes give the 43-character minimum."""
    verifier = secrets.token_urlsafe(nbytes)
    if not 43 <= len(verifier) <= 128:
        raise ValueError("a PKCE verifier must be 43 to 128 characters (RFC 7636 §4.1)")
    return verifier


def code_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(verifier)))`` without padding."""
    if not 43 <= len(verifier) <= 128 or not set(verifier) <= _UNRESERVED:
        raise ValueError("invalid PKCE verifier (RFC 7636 §4.1)")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str, challenge: str, method: str = "S256") -> bool:
    """Whether ``verifier`` answers ``challenge`` (RFC 7636 §4.6), in constant time.

    Raises ValueError when an ``S256`` verifier is not 43-128 unreserved
    characters (§4.1), so the caller can say so, or when ``method`` is
    neither ``S256`` nor ``plain``. A ``plain`` verifier is only compared: the
    challenge it must equal was checked when the client sent it.
    """
    if method == "S256":
        expected = code_challenge(verifier)
    elif method == "plain":
        expected = verifier
    else:
        raise ValueError(f"unsupported code_challenge_method {method!r}")
    return hmac.compare_digest(expected.encode(), challenge.encode())


@dataclass(frozen=True, slots=True)
class Pkce:
    """A verifier and its S256 challenge."""

    verifier: str
    challenge: str
    method: str = "S256"

    @classmethod
    def generate(cls) -> Pkce:
        verifier = generate_verifier()
        return cls(verifier, code_challenge(verifier))

    def __repr__(self) -> str:
        return f"Pkce(method={self.method!r})"
