"""Test helpers for the guard: a fake issuer behind httpx2.MockTransport, keys, tokens.

Tokens are made with joserfc and keys generated here, never with guard code,
so a bug in the guard cannot make its own tests pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, KeyParameters, OKPKey, RSAKey

ISSUER = "https://auth.example.test"
AUDIENCE = "https://orders.example.test"
METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/.well-known/jwks.json"
INTROSPECT_PATH = "/oauth/introspect"
NOW = 1_750_000_000.0


def new_key(kind: str = "RSA", kid: str | None = None) -> Key:
    params: KeyParameters = {"kid": kid or uuid.uuid4().hex[:12]}
    if kind == "RSA":
        return RSAKey.generate_key(2048, parameters=params)
    if kind == "EC":
        return ECKey.generate_key("P-256", parameters=params)
    return OKPKey.generate_key("Ed25519", parameters=params)


ALG_FOR = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}


def claims_for(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-42",
        "aud": AUDIENCE,
        "client_id": "shop-frontend",
        "scope": "orders:read profile",
        "iat": int(now),
        "exp": int(now) + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(
    key: Key,
    claims: Mapping[str, Any] | None = None,
    *,
    alg: str | None = None,
    header: Mapping[str, Any] | None = None,
) -> str:
    """An access token signed by ``key`` the way the Keyturn server signs."""
    alg = alg or ALG_FOR[key.key_type]
    full_header = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **(header or {})}
    full_header = {k: v for k, v in full_header.items() if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # EdDSA is "deprecated" in joserfc
        return jwt.encode(full_header, dict(claims or claims_for()), key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """An ``alg: none`` token, built by hand (a JOSE library would refuse)."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def hs256_with(secret: bytes, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """An HS256 token whose HMAC secret is ``secret`` (e.g. the issuer's public PEM)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


class FakeIssuer:
    """Serves RFC 8414 metadata, the JWKS and RFC 7662 introspection; counts requests.

    The metadata is served at ``metadata_path`` only; the JWKS and the
    introspection endpoint below the issuer's own path.
    """

    def __init__(
        self, *keys: Key, issuer: str = ISSUER, metadata_path: str = METADATA_PATH
    ) -> None:
        self.issuer = issuer
        self.metadata_path = metadata_path
        base = urlsplit(issuer).path.rstrip("/")
        self.jwks_path = base + JWKS_PATH
        self.introspect_path = base + INTROSPECT_PATH
        self.keys: list[Key] = list(keys)
        self.hits: Counter[str] = Counter()
        self.down = False
        self.metadata_issuer = issuer
        self.revoked: set[str] = set()
        self.introspection_auth: list[str] = []
        self.on_request: Callable[[httpx2.Request], None] | None = None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys]}

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.hits[path] += 1
        if self.on_request is not None:
            self.on_request(request)
        if self.down:
            return httpx2.Response(503, text="down")
        if path == self.metadata_path:
            return httpx2.Response(
                200,
                json={
                    "issuer": self.metadata_issuer,
                    "jwks_uri": self.issuer + JWKS_PATH,
                    "introspection_endpoint": self.issuer + INTROSPECT_PATH,
                },
            )
        if path == self.jwks_path:
            return httpx2.Response(200, json=self.jwks())
        if path == self.introspect_path and request.method == "POST":
            self.introspection_auth.append(request.headers.get("authorization", ""))
            form = dict(pair.split("=", 1) for pair in request.content.decode().split("&") if pair)
            token = form.get("token", "")
            payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            return httpx2.Response(200, json={"active": payload["jti"] not in self.revoked})
        return httpx2.Response(404)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handler))

    def async_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handler))
