"""ID-token validation, one OIDC Core §3.1.3.7 check at a time (issue 17, item 2)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyturn.core.id_token import (
    IdTokenError,
    IdTokenExpectations,
    UnknownSigningKey,
    token_hash,
    validate_id_token,
)
from keyturn.core.jose import Signer, import_jwks, public_jwk

NOW = 1_700_000_000
ISS = "https://idp.example/tenant"
KEY = ec.generate_private_key(ec.SECP256R1())
SIGNER = Signer(KEY, "ES256", "k1")
KEYS = import_jwks({"keys": [public_jwk(KEY, "ES256") | {"kid": "k1"}]})
EXPECT = IdTokenExpectations(
    issuer=ISS, client_id="app", nonce="n-1", access_token="at-1", code="code-1"
)


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "alice",
        "aud": "app",
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": "n-1",
        "auth_time": NOW - 10,
        "at_hash": token_hash("at-1", "ES256"),
        "c_hash": token_hash("code-1", "ES256"),
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def check(token: str, expected: IdTokenExpectations = EXPECT, **kw: Any) -> dict[str, Any]:
    return validate_id_token(token, KEYS, expected, now=kw.pop("now", NOW), **kw)


def test_a_good_token_gives_its_claims() -> None:
    assert check(SIGNER.sign(claims(), typ="JWT"))["sub"] == "alice"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://idp.example/other"}, "'iss'"),
        ({"iss": ISS + "/"}, "'iss'"),
        ({"aud": "someone-else"}, "'aud' does not name"),
        ({"aud": ["app", "other"]}, "no 'azp'"),
        ({"aud": ["app", "other"], "azp": "other"}, "'azp'"),
        ({"azp": "other"}, "'azp'"),
        ({"aud": None}, "'aud'"),
        ({"sub": None}, "'sub'"),
        ({"exp": NOW - 61}, "expired"),
        ({"exp": None}, "'exp'"),
        ({"exp": "soon"}, "'exp'"),
        ({"iat": NOW + 120}, "future"),
        ({"iat": None}, "'iat'"),
        ({"nonce": "n-2"}, "'nonce'"),
        ({"nonce": None}, "'nonce'"),
        ({"at_hash": token_hash("at-2", "ES256")}, "'at_hash'"),
        ({"c_hash": token_hash("code-2", "ES256")}, "'c_hash'"),
    ],
)
def test_each_check_refuses(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(IdTokenError, match=reason):
        check(SIGNER.sign(claims(**changes), typ="JWT"))


def test_several_audiences_with_this_client_as_azp() -> None:
    token = SIGNER.sign(claims(aud=["app", "api"], azp="app"), typ="JWT")
    assert check(token)["azp"] == "app"


def test_leeway_on_exp() -> None:
    assert check(SIGNER.sign(claims(exp=NOW - 30), typ="JWT"))


def test_max_age_needs_a_recent_auth_time() -> None:
    strict = IdTokenExpectations(issuer=ISS, client_id="app", max_age=60)
    with pytest.raises(IdTokenError, match="auth_time"):
        check(SIGNER.sign(claims(auth_time=None, nonce=None), typ="JWT"), strict)
    with pytest.raises(IdTokenError, match="max_age"):
        check(SIGNER.sign(claims(auth_time=NOW - 200), typ="JWT"), strict)
    assert check(SIGNER.sign(claims(auth_time=NOW - 30), typ="JWT"), strict)


def test_no_nonce_expected_none_checked() -> None:
    loose = IdTokenExpectations(issuer=ISS, client_id="app")
    assert check(SIGNER.sign(claims(nonce="whatever"), typ="JWT"), loose)


def test_a_refreshed_token_keeps_sub_and_auth_time() -> None:
    first = check(SIGNER.sign(claims(), typ="JWT"))
    refresh = IdTokenExpectations(issuer=ISS, client_id="app", previous=first)
    assert check(SIGNER.sign(claims(nonce=None, iat=NOW + 5), typ="JWT"), refresh)
    assert check(SIGNER.sign(claims(nonce=None, auth_time=None), typ="JWT"), refresh)  # §12.2
    with pytest.raises(IdTokenError, match="'sub'"):
        check(SIGNER.sign(claims(sub="mallory"), typ="JWT"), refresh)
    with pytest.raises(IdTokenError, match="'auth_time'"):
        check(SIGNER.sign(claims(auth_time=NOW), typ="JWT"), refresh)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_signature_alg_and_key_checks() -> None:
    good = SIGNER.sign(claims(), typ="JWT")
    header, payload, signature = good.split(".")
    forged = _b64(json.dumps(claims(sub="mallory")).encode())
    with pytest.raises(IdTokenError, match="signature"):
        check(f"{header}.{forged}.{signature}")
    none_header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    with pytest.raises(IdTokenError, match="alg"):
        check(f"{none_header}.{payload}.")
    hs_header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    with pytest.raises(IdTokenError, match="alg"):
        check(f"{hs_header}.{payload}.{signature}")
    other = Signer(ec.generate_private_key(ec.SECP256R1()), "ES256", "k2")
    with pytest.raises(UnknownSigningKey):
        check(other.sign(claims(), typ="JWT"))
    with pytest.raises(IdTokenError, match="encrypted"):
        check("a.b.c.d.e")
    with pytest.raises(IdTokenError):
        check("not-a-jwt")


def test_a_token_without_kid_uses_the_one_fitting_key() -> None:
    header = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims()).encode())
    signing_input = f"{header}.{body}".encode()
    token = Signer.compact(signing_input, SIGNER.signature(signing_input))
    assert check(token)["sub"] == "alice"


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("Ed25519", ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_hashes_follow_the_algorithm(alg: str, key: Any) -> None:
    signer = Signer(key, alg, "k9")
    keys = import_jwks({"keys": [public_jwk(key, alg) | {"kid": "k9"}]})
    token = signer.sign(
        claims(at_hash=token_hash("at-1", alg), c_hash=token_hash("code-1", alg)), typ="JWT"
    )
    assert validate_id_token(token, keys, EXPECT, now=NOW)["sub"] == "alice"
    assert len(token_hash("x", "Ed25519")) > len(token_hash("x", "RS256"))  # SHA-512 vs 256
