"""The one place Keyturn touches the JOSE library (joserfc): sign, verify, JWKS.

The server signs with it (`Signer`, `public_jwk`, `public_pem`), the guard
verifies with it (`parse_compact`, `verify_signature`, `import_jwks`), and the
SDK may do either; a JOSE library swap touches this file only. It imports
joserfc, cryptography and the standard library, nothing else, so the base
install can use all of it. Reading claims without verifying them needs no
JOSE library and lives in `keyturn.core.jwt_claims`.

joserfc's registry warns on every use of ``EdDSA`` (deprecated by RFC 9864 in
favour of ``Ed25519``). Keyturn still signs and accepts ``EdDSA`` when asked,
so the signer takes its algorithm from the registry's table and the verifier's
`_AllowList` answers from the caller's explicit allow-list: the warning would
otherwise fire on every token.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey
from joserfc.jws import CompactSignature, JWSRegistry
from joserfc.util import urlsafe_b64decode

__all__ = [
    "ACCESS_TOKEN_TYP",
    "SIGNING_ALGORITHMS",
    "SUPPORTED_ALGS",
    "CompactJWS",
    "JoseFailure",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "VerificationKey",
    "as_private_key",
    "compact_json",
    "import_jwks",
    "parse_compact",
    "public_jwk",
    "public_pem",
    "signing_registry",
    "verify_signature",
]

# -- signing ---------------------------------------------------------------

#: What Keyturn signs with.
SUPPORTED_ALGS = ("RS256", "ES256", "EdDSA", "Ed25519")
#: RFC 9068 §2.1: the ``typ`` of a JWT access token.
ACCESS_TOKEN_TYP = "at+jwt"

JoseKey = RSAKey | ECKey | OKPKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_COMPACT = json.JSONEncoder(separators=(",", ":"))


def compact_json(value: Any) -> bytes:
    """JSON without spaces, as UTF-8: the standard library's stand-in for orjson."""
    return _COMPACT.encode(value).encode()


def as_private_key(key: object) -> PrivateKey:
    """``key`` if it is a private key Keyturn can sign with, else ValueError."""
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError("signing key is of an unsupported type")
    return key


def _jose_key(private_key: PrivateKey) -> JoseKey:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return RSAKey.import_key(private_key)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(private_key)
    return OKPKey.import_key(private_key)


KID_CHARS = 8
"""A ``kid`` is this many characters of the key's RFC 7638 thumbprint (48 bits).

A ``kid`` only tells apart the few keys of one key set (RFC 7517 leaves its
form open), and it is in every token's header and, on the server, in every
token row and its (kid, expires_at) index: the whole 43-character thumbprint
cost 69 of the 536 bytes a token row took on SQLite (benchmarks/README.md).
"""


def public_jwk(private_key: PrivateKey, alg: str) -> dict[str, Any]:
    """The public JWK with ``use``, ``alg`` and a ``kid`` cut from its thumbprint."""
    key = _jose_key(private_key)
    data: dict[str, Any] = dict(key.as_dict(private=False))
    data["kid"] = key.thumbprint()[:KID_CHARS]
    data["use"] = "sig"
    data["alg"] = alg
    return data


def public_pem(jwk: dict[str, Any]) -> str:
    """The SubjectPublicKeyInfo PEM of a public JWK."""
    kty = jwk["kty"]
    key: JoseKey
    if kty == "RSA":
        key = RSAKey.import_key(jwk)
    elif kty == "EC":
        key = ECKey.import_key(jwk)
    else:
        key = OKPKey.import_key(jwk)
    return key.as_pem(private=False).decode()


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class Signer:
    """Signs compact JWS with one key; built once per key and reused.

    The signature is joserfc's: its algorithm object signs with the key object
    it imported. ES256's is the exception, made here with cryptography: per
    call, joserfc's resolves the key's operation and builds an ``ECDSA``
    object, 13 of its 44 us, which an ES256 token request pays on the event
    loop. It is the same RFC 7518 §3.4 form, the DER signature's ``r`` and
    ``s`` as two 32-byte big-endian integers. What ``jws.serialize_compact``
    adds per call -- building an algorithm
    registry, checking a header we wrote ourselves, re-checking the key -- is
    done once here, and the protected header, which is the same for every
    token of a key and ``typ``, is encoded once. That took a fifth off an
    ES256 signature (41 to 30 us). RFC 7515 §7.1's compact form is then three
    base64url segments joined by dots; ``tests/keys`` checks every token
    against ``jws.deserialize_compact`` and PyJWT.

    ``dumps`` encodes the header and claims; the server passes orjson's, which
    is 3 us a token faster than `compact_json` and not in the base install.
    """

    __slots__ = (
        "_algorithm",
        "_dumps",
        "_ecdsa",
        "_headers",
        "_key",
        "_private_key",
        "alg",
        "kid",
    )

    def __init__(
        self,
        private_key: PrivateKey,
        alg: str,
        kid: str,
        *,
        dumps: Callable[[Any], bytes] = compact_json,
    ) -> None:
        if alg not in SUPPORTED_ALGS:
            raise ValueError(f"unsupported signing algorithm {alg!r}")
        self._private_key = private_key
        self._key = _jose_key(private_key)
        self._dumps = dumps
        self.alg = alg
        self.kid = kid
        # The table, not get_alg(): that warns on every EdDSA signer (module docstring).
        self._algorithm = JWSRegistry.algorithms[alg]
        self._algorithm.check_key(self._key)
        self._headers: dict[str, bytes] = {}
        self._ecdsa: tuple[ec.EllipticCurvePrivateKey, ec.ECDSA] | None = None
        if alg == "ES256" and isinstance(private_key, ec.EllipticCurvePrivateKey):
            self._ecdsa = (private_key, ec.ECDSA(hashes.SHA256()))  # P-256: check_key

    def _header_segment(self, typ: str) -> bytes:
        segment = self._headers.get(typ)
        if segment is None:
            header = {"typ": typ, "alg": self.alg, "kid": self.kid}
            segment = self._headers[typ] = _b64url(self._dumps(header))
        return segment

    def sign(self, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYP) -> str:
        return self.complete(self.signing_input(claims, typ))

    def complete(self, signing_input: bytes) -> str:
        """The compact JWS of a signing input made by `signing_input`."""
        return self.compact(signing_input, self.signature(signing_input))

    # The three steps of `sign`, apart so that the signature alone can be
    # made elsewhere (`keyturn.keys.signing_processes`).
    def signing_input(self, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYP) -> bytes:
        return self._header_segment(typ) + b"." + _b64url(self._dumps(claims))

    def signature(self, signing_input: bytes) -> bytes:
        if self._ecdsa is not None:
            key, ecdsa = self._ecdsa
            r, s = decode_dss_signature(key.sign(signing_input, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        signature: bytes = self._algorithm.sign(signing_input, self._key)
        return signature

    def verify(self, token: str) -> bool:
        """Whether this key made the compact JWS ``token``'s signature."""
        signing_input, _, encoded = token.rpartition(".")
        try:
            signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            return bool(self._algorithm.verify(signing_input.encode(), signature, self._key))
        except ValueError:  # not base64url, not ASCII, or a malformed signature
            return False

    @staticmethod
    def compact(signing_input: bytes, signature: bytes) -> str:
        return (signing_input + b"." + _b64url(signature)).decode("ascii")

    def private_der(self) -> bytes:
        """The private key as unencrypted PKCS#8 DER, for a signing helper process."""
        return self._private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"Signer(alg={self.alg!r}, kid={self.kid!r})"


# -- verification ----------------------------------------------------------

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
# them; if a misconfigured server publishes one, only the public half is
# imported.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _fits(key: PublicKey, name: str) -> bool:
    """joserfc's own rule: key type, curve, ``use`` and the JWK's ``alg`` fit ``name``."""
    try:
        JWSRegistry.algorithms[name].check_key(key)
    except (JoseError, KeyError):
        return False
    # joserfc's EdDSA check_key accepts any OKP key; X25519/X448 are for key agreement.
    return name != "EdDSA" or key.get("crv") in ("Ed25519", "Ed448")
