"""The joserfc boundary: which key may verify which algorithm is decided at import,
and the signer that the server (with orjson) and anyone else (without) share."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey

from keyturn.core import jose
from keyturn.core.jose import (
    SUPPORTED_ALGS,
    JoseFailure,
    import_jwks,
    parse_compact,
    signing_registry,
    verify_signature,
)
from keyturn.keys.jwt import Signer, generate_private_key, public_jwk
from tests.guard.guard_support import new_key, sign


def algorithms_of(jwk: Mapping[str, Any]) -> frozenset[str]:
    keys = import_jwks({"keys": [jwk]})
    return keys[str(jwk["kid"])].algorithms if keys else frozenset()


def test_rsa_key_verifies_only_rsa_algorithms() -> None:
    jwk = new_key("RSA", kid="r").as_dict(private=False)
    assert algorithms_of(jwk) == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


def test_jwk_alg_pins_one_algorithm() -> None:
    jwk = new_key("RSA", kid="r").as_dict(private=False)
    assert algorithms_of({**jwk, "alg": "RS256"}) == {"RS256"}


def test_ec_curve_decides_the_algorithm() -> None:
    p256 = new_key("EC", kid="e1").as_dict(private=False)
    p384 = ECKey.generate_key("P-384", parameters={"kid": "e2"}).as_dict(private=False)
    assert algorithms_of(p256) == {"ES256"}
    assert algorithms_of(p384) == {"ES384"}


def test_okp_keys() -> None:
    ed = new_key("OKP", kid="o").as_dict(private=False)
    assert algorithms_of(ed) == {"EdDSA", "Ed25519"}
    x25519 = OKPKey.generate_key("X25519", parameters={"kid": "x"}).as_dict(private=False)
    assert algorithms_of(x25519) == frozenset()  # a key-agreement key verifies nothing


def test_key_pinned_to_another_alg_does_not_verify() -> None:
    key = new_key("RSA", kid="r")
    keys = import_jwks({"keys": [{**key.as_dict(private=False), "alg": "RS512"}]})
    registry = signing_registry(["RS256", "RS512"])
    parsed = parse_compact(sign(key, alg="RS256"), registry)
    with pytest.raises(JoseFailure, match="does not fit"):
        verify_signature(parsed, keys["r"], registry)


def test_signature_that_is_not_base64() -> None:
    key = new_key("RSA", kid="r")
    registry = signing_registry(["RS256"])
    header, payload, _ = sign(key).split(".")
    parsed = parse_compact(f"{header}.{payload}.%%%", registry)
    with pytest.raises(JoseFailure):
        verify_signature(parsed, import_jwks({"keys": [key.as_dict(private=False)]})["r"], registry)


# -- signing: the core Signer needs no orjson, and the core verifier accepts it ----------

CLAIMS = {"iss": "https://issuer.test", "sub": "kt_1", "aud": "https://api.test", "exp": 2**31}


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
def test_core_signer_round_trips_through_the_core_verifier(alg: str) -> None:
    private_key = generate_private_key(alg)
    jwk = public_jwk(private_key, alg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no SecurityWarning for EdDSA, per signer or token
        token = jose.Signer(private_key, alg, jwk["kid"]).sign(CLAIMS)
        keys = import_jwks({"keys": [jwk]})
        registry = signing_registry([alg])
        parsed = parse_compact(token, registry)
        verify_signature(parsed, keys[jwk["kid"]], registry)
    assert parsed.header == {"typ": "at+jwt", "alg": alg, "kid": jwk["kid"]}
    assert parsed.payload() == CLAIMS


def test_core_and_server_signers_write_the_same_token() -> None:
    """The server's orjson fast path is an encoding choice only: same bytes signed."""
    private_key = generate_private_key("EdDSA")  # deterministic signatures
    core = jose.Signer(private_key, "EdDSA", "k").sign(CLAIMS)
    server = Signer(private_key, "EdDSA", "k").sign(CLAIMS)
    assert core == server


def test_core_signer_takes_any_encoder() -> None:
    calls: list[object] = []

    def dumps(value: object) -> bytes:
        calls.append(value)
        return jose.compact_json(value)

    signer = jose.Signer(generate_private_key("ES256"), "ES256", "k", dumps=dumps)
    signer.sign(CLAIMS)
    signer.sign(CLAIMS)
    assert calls == [{"typ": "at+jwt", "alg": "ES256", "kid": "k"}, CLAIMS, CLAIMS]


def test_signer_refuses_an_algorithm_keyturn_does_not_sign_with() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        jose.Signer(generate_private_key("ES256"), "HS256", "k")
