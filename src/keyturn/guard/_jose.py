"""The guard's one point of contact with joserfc, so a JOSE library swap touches one file.

Three jobs: split a compact JWS without trusting it (`parse_compact`), import a
published JWKS as public verification keys, each with the algorithms it may
verify (`import_jwks`), and check a signature with one named key under an
explicit algorithm allow-list (`verify_signature`). Nothing here reads a
clock, a network or a claim.

joserfc's registry warns on every use of ``EdDSA`` (deprecated by RFC 9864 in
favour of ``Ed25519``). The Keyturn server still signs ``EdDSA`` when asked, so
`_AllowList` answers from the caller's explicit allow-list instead: the warning
would otherwise fire on every request.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwk import JWKRegistry, Key
from joserfc.jws import CompactSignature, JWSRegistry
from joserfc.util import urlsafe_b64decode

__all__ = [
    "SIGNING_ALGORITHMS",
    "CompactJWS",
    "JoseFailure",
    "PublicKey",
    "VerificationKey",
    "import_jwks",
    "parse_compact",
    "signing_registry",
    "verify_signature",
]

PublicKey = Key

#: Asymmetric JWS algorithms a resource server may accept. HMAC (``HS*``) and
#: ``none`` are absent on purpose: a resource server holds no shared secret, and
#: accepting HS* with a published public key as the secret is the classic
#: RS/HS confusion attack.
SIGNING_ALGORITHMS: frozenset[str] = frozenset(
    {
        "RS256", "RS384", "RS512",
        "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512",
        "EdDSA", "Ed25519",
    }
)  # fmt: skip


class VerificationKey(NamedTuple):
    """A public key and the algorithms it may verify (decided once, at import)."""

    key: PublicKey
    algorithms: frozenset[str]


class JoseFailure(Exception):
    """Why a token failed at the JOSE layer; ``str()`` is a short public reason."""


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """A compact JWS split and header-decoded, but not yet verified."""

    header: Mapping[str, Any]
    _signature: CompactSignature

    def payload(self) -> Any:
        """The JSON payload; only meaningful after `verify_signature` succeeded."""
        try:
            # Decoding first skips json's encoding sniffing of bytes: measurable here.
            return json.loads(self._signature.payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise JoseFailure("payload is not JSON") from exc


class _AllowList(JWSRegistry):
    """A registry that allows exactly the given algorithms, silently."""

    def get_alg(self, name: str) -> Any:
        if self.allowed is None or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"algorithm {name!r} is not allowed")
        return self.algorithms[name]


def signing_registry(algorithms: Collection[str]) -> JWSRegistry:
    """A registry for the allow-list; raises ValueError for anything not asymmetric."""
    rejected = sorted(set(algorithms) - SIGNING_ALGORITHMS)
    if rejected:
        raise ValueError(
            f"not an asymmetric JWS algorithm a resource server may accept: {rejected}"
        )
    if not algorithms:
        raise ValueError("the algorithm allow-list is empty")
    return _AllowList(algorithms=frozenset(algorithms))


def parse_compact(token: str, registry: JWSRegistry) -> CompactJWS:
    """Split and decode the header of a compact JWS; nothing here is trusted yet."""
    try:
        signature = jws.extract_compact(token.encode("ascii"), registry=registry)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise JoseFailure("token is not a well-formed JWS") from exc
    return CompactJWS(signature.headers(), signature)


def verify_signature(parsed: CompactJWS, key: VerificationKey, registry: JWSRegistry) -> None:
    """Check the signature with ``key`` under the header's (already allowed) ``alg``.

    The key/algorithm fit (family, curve, the JWK's own ``alg``) was decided by
    joserfc's ``check_key`` when the JWKS was imported, so this runs only the
    algorithm's ``verify``: `jws.validate_compact` would redo the fit and a
    generic header check on every request (a third of the guard's overhead in
    benchmarks/verify_overhead.py). The header rules that matter (``alg``,
    ``typ``, ``kid``, no ``crit``) are the guard's own `check_header`, and no
    key is ever taken from the header (``jwk``, ``jku``, ``x5u`` are ignored).
    """
    name = parsed.header.get("alg")
    if not isinstance(name, str) or name not in key.algorithms:
        raise JoseFailure("signing key does not fit the token's algorithm")
    segments = parsed._signature.segments
    try:
        algorithm = registry.get_alg(name)
        signature = urlsafe_b64decode(segments["signature"])
        valid = algorithm.verify(
            segments["header"] + b"." + segments["payload"], signature, key.key
        )
    except (JoseError, ValueError, TypeError) as exc:
        raise JoseFailure("signature verification failed") from exc
    if not valid:
        raise JoseFailure("signature verification failed")


def import_jwks(document: Any) -> dict[str, VerificationKey]:
    """The signature keys of a JWKS by ``kid``, public parts only.

    Keys without a ``kid``, symmetric keys, encryption keys and keys of an
    unknown type are skipped (RFC 7517 §5 says to ignore what is not
    understood), so one odd entry cannot take the whole set down.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JoseFailure("JWKS document has no 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("kty") == "oct":
            continue
        if entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in _PRIVATE_MEMBERS}
        try:
            key = JWKRegistry.import_key(public)
        except (JoseError, ValueError, TypeError):
            continue
        algorithms = frozenset(name for name in SIGNING_ALGORITHMS if _fits(key, name))
        if algorithms:
            keys[kid] = VerificationKey(key, algorithms)
    return keys


# RFC 7518 §6: members that only a private key carries. A JWKS must not hold
# them; if a misconfigured server publishes one, the guard still imports only
# the public half.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _fits(key: PublicKey, name: str) -> bool:
    """joserfc's own rule: key type, curve, ``use`` and the JWK's ``alg`` fit ``name``."""
    try:
        JWSRegistry.algorithms[name].check_key(key)
    except (JoseError, KeyError):
        return False
    # joserfc's EdDSA check_key accepts any OKP key; X25519/X448 are for key agreement.
    return name != "EdDSA" or key.get("crv") in ("Ed25519", "Ed448")
