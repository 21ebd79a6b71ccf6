"""The joserfc boundary: which key may verify which algorithm is decided at import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey

from keyturn.guard._jose import (
    JoseFailure,
    import_jwks,
    parse_compact,
    signing_registry,
    verify_signature,
)
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
