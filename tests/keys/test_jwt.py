"""The Signer's compact JWS, checked by two independent JOSE implementations."""

from __future__ import annotations

import base64
import json
import warnings

import jwt as pyjwt
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from keyturn.keys.jwt import SUPPORTED_ALGS, Signer, generate_private_key, public_jwk

CLAIMS = {"iss": "https://issuer.test", "sub": "kt_1", "aud": "https://api.test", "exp": 2**31}


def _segment(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
@pytest.mark.parametrize("typ", ["at+jwt", "JWT"])
def test_tokens_verify_with_joserfc_and_pyjwt(alg: str, typ: str) -> None:
    private_key = generate_private_key(alg)
    jwk = public_jwk(private_key, alg)
    signer = Signer(private_key, alg, jwk["kid"])
    token = signer.sign(CLAIMS, typ)

    header_segment, payload_segment, _ = token.split(".")
    assert json.loads(_segment(header_segment)) == {"typ": typ, "alg": alg, "kid": jwk["kid"]}
    assert json.loads(_segment(payload_segment)) == CLAIMS
    assert "=" not in token

    key = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}[jwk["kty"]].import_key(jwk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags the pre-RFC 9864 "EdDSA" name
        obj = jws.deserialize_compact(token, key, algorithms=[alg])
    assert json.loads(obj.payload) == CLAIMS

    if alg != "Ed25519":  # PyJWT knows Ed25519 keys only under the name EdDSA
        public = pyjwt.PyJWK(jwk).key
        decoded = pyjwt.decode(token, public, algorithms=[alg], audience="https://api.test")
        assert decoded == CLAIMS


def test_a_tampered_token_does_not_verify() -> None:
    private_key = generate_private_key("ES256")
    jwk = public_jwk(private_key, "ES256")
    token = Signer(private_key, "ES256", jwk["kid"]).sign(CLAIMS)
    header, _, signature = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"admin"}').rstrip(b"=").decode()
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(f"{header}.{forged}.{signature}", pyjwt.PyJWK(jwk).key, algorithms=["ES256"])


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA", "Ed25519"])
def test_a_signer_verifies_its_own_signatures_only(alg: str) -> None:
    signer = Signer(generate_private_key(alg), alg, "k1")
    other = Signer(generate_private_key(alg), alg, "k2")
    token = signer.sign(CLAIMS)
    header, payload, signature = token.split(".")
    assert signer.verify(token)
    assert not other.verify(token)
    for bad in (
        f"{header}.{payload}.",
        f"{header}.{payload}.{signature[:-4]}",
        f"{header}.{payload}.{signature[::-1]}",
        f"{header}.{payload}.{signature}.",
        f"{header}.{payload}x.{signature}",
        f"{header}.{payload}.é{signature}",
        f"{header}.{payload}.{signature[:-1]}",
        "not a token",
        "",
    ):
        assert not signer.verify(bad), bad


def test_each_signature_is_fresh() -> None:
    """ES256 signatures are randomised: two tokens of the same claims differ."""
    private_key = generate_private_key("ES256")
    signer = Signer(private_key, "ES256", "k")
    assert signer.sign(CLAIMS) != signer.sign(CLAIMS)


def test_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Signer(generate_private_key("ES256"), "HS256", "k")


def test_es256_signatures_are_r_and_s_in_32_bytes_each() -> None:
    """ES256 is signed here, not by joserfc (`Signer`): each of many signatures (so
    some have an ``r`` or ``s`` with leading zero bytes, about 1 in 128 each) is
    64 bytes and verifies with joserfc, PyJWT and the public key itself."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    private_key = generate_private_key("ES256")
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    jwk = public_jwk(private_key, "ES256")
    signer = Signer(private_key, "ES256", jwk["kid"])
    key = ECKey.import_key(jwk)
    public = pyjwt.PyJWK(jwk).key
    short = 0
    for n in range(5000):  # until 300 signatures and 2 short ones (1 in 128: a dozen by 800)
        if n >= 300 and short >= 2:
            break
        token = signer.sign({**CLAIMS, "n": n})
        signing_input, _, encoded = token.rpartition(".")
        signature = _segment(encoded)
        assert len(signature) == 64
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        short += r < 2**248 or s < 2**248
        der = encode_dss_signature(r, s)
        private_key.public_key().verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        obj = jws.deserialize_compact(token, key, algorithms=["ES256"])
        assert json.loads(obj.payload)["n"] == n
        claims = pyjwt.decode(token, public, algorithms=["ES256"], audience="https://api.test")
        assert claims["n"] == n
    assert short >= 2  # the padded case was exercised
