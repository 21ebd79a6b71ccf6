"""Test helpers for code that uses the Keyturn SDK: a fake clock and a fake token server.

`FakeTokenServer` is an in-process OAuth 2.0 server for ``httpx2.MockTransport``:
client credentials, password, authorization code (with PKCE) and refresh
grants, RFC 7009 revocation, RFC 8414 metadata, and a protected API at any
other URL that answers 401 to expired or unknown tokens. Token lifetimes follow
a `FakeClock`, so a test moves time instead of sleeping::

    clock = FakeClock()
    server = FakeTokenServer(clock=clock)
    auth = OAuth2Auth(server.client_credentials(), clock=clock)
    with httpx2.Client(auth=auth, transport=server.transport()) as client:
        client.get("https://api.example/things")
        clock.advance(3600)          # the token expires ...
        client.get("https://api.example/things")   # ... and is fetched again
    assert server.token_requests == 2

Faults are scripted with `FakeTokenServer.enqueue` (e.g. a 429 with
``Retry-After``, an HTML 502, a body without ``expires_in``).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from keyturn.client._http import httpx2
from keyturn.core import pkce
from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientCredentials,
    PasswordCredentials,
)
from keyturn.core.discovery import metadata_urls
from keyturn.core.id_token import token_hash
from keyturn.core.jose import Signer, public_jwk
from keyturn.core.paths import KeyturnUrls

__all__ = ["FakeClock", "FakeTokenServer", "IssuedToken"]


class FakeClock:
    """A clock that moves only when told to; ``sleep`` advances it instead of waiting.

    One fake for every clock Keyturn takes: the SDK's `keyturn.core.clock.Clock`
    (``time``, ``monotonic``, ``sleep``) and the plain wall-clock callables of the
    guard and the key ring (calling it, or reading and setting ``now``).
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._wall = start
        self._mono = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def time(self) -> float:
        with self._lock:
            return self._wall

    def __call__(self) -> float:
        return self.time()

    @property
    def now(self) -> float:
        """The wall clock; setting it moves monotonic time by as much (never back)."""
        return self.time()

    @now.setter
    def now(self, value: float) -> None:
        with self._lock:
            self._mono += max(0.0, value - self._wall)
            self._wall = value

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += seconds
            self._mono += seconds

    def jump_wall_clock(self, seconds: float) -> None:
        """Move only the wall clock (NTP step, VM resume); monotonic time is unaffected."""
        with self._lock:
            self._wall += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@dataclass
class IssuedToken:
    client_id: str
    scope: str | None
    expires_at: float
    subject: str | None = None
    family: int = 0
    auth_time: int | None = None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str | None
    scope: str | None
    subject: str
    nonce: str | None = None
    auth_time: int = 0


@dataclass
class _Rotated:
    client_id: str
    family: int
    at: float
    response: httpx2.Response


@dataclass
class _Scripted:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FakeTokenServer(KeyturnUrls):
    """An in-process OAuth 2.0 server; call it with an ``httpx2.Request``."""

    def __init__(
        self,
        *,
        issuer: str = "https://auth.example",
        clock: FakeClock | None = None,
        clients: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        expires_in: int | None = 3600,
        rotate_refresh_tokens: bool = True,
        redirect_uri: str = "https://app.example/callback",
        server_clock_skew: float = 0.0,
        revoke_access_tokens: bool = True,
        refresh_grace_period: float = 5.0,
        discovery: Collection[str] = ("oauth-authorization-server", "openid-configuration"),
    ) -> None:
        self.issuer = self.base_url = issuer
        self.clock = clock or FakeClock()
        self.clients = dict(clients or {"client-1": "s3cret-value"})
        self.users = dict(users or {"alice": "wonderland"})
        self.expires_in = expires_in
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.redirect_uri = redirect_uri
        self.server_clock_skew = server_clock_skew
        self.revoke_access_tokens = revoke_access_tokens
        """False: answer ``unsupported_token_type`` for access tokens (RFC 7009 §2.2.1),
        as providers with self-contained JWT access tokens do."""
        self.refresh_grace_period = refresh_grace_period
        """Seconds a rotated refresh token still gets the same answer (Keyturn's default)."""
        self._rotated: dict[str, _Rotated] = {}
        self.discovery = frozenset(discovery)
        """Which well-known documents are published (a provider may have only one)."""
        self.token_requests = 0
        self.api_requests = 0
        self.grants: Counter[str] = Counter()
        self.revoked: list[str] = []
        self.access_tokens: dict[str, IssuedToken] = {}
        self.refresh_tokens: dict[str, IssuedToken] = {}
        self.last_token_request: dict[str, str] = {}
        self.before_token: Callable[[httpx2.Request], None] | None = None
        self._codes: dict[str, _Code] = {}
        self._script: list[_Scripted] = []
        self._revocation_script: list[_Scripted] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        self._kid = "fake-1"
        self._signer = Signer(self._signing_key, "ES256", self._kid)
        self.id_token_lifetime = 600
        self.id_token_claims: dict[str, Any] = {}
        """Claims to add to (or, set to ``None``, drop from) every ID token: for fault tests."""

    # -- endpoints and ready-made credentials -------------------------------------

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self._signing_key, "ES256") | {"kid": self._kid}]}

    def rotate_signing_key(self) -> None:
        """Sign ID tokens with a new key (a new ``kid``) from now on."""
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        self._kid = f"fake-{next(self._ids)}"
        self._signer = Signer(self._signing_key, "ES256", self._kid)

    def _first_client(self) -> tuple[str, str]:
        return next(iter(self.clients.items()))

    def client_credentials(self, **options: Any) -> ClientCredentials:
        client_id, secret = self._first_client()
        options.setdefault("token_url", self.token_url)
        options.setdefault("issuer", self.issuer)
        return ClientCredentials(client_id=client_id, client_secret=secret, **options)

    def password_credentials(self, **options: Any) -> PasswordCredentials:
        client_id, secret = self._first_client()
        username, password = next(iter(self.users.items()))
        options.setdefault("token_url", self.token_url)
        options.setdefault("issuer", self.issuer)
        return PasswordCredentials(
            client_id=client_id,
            client_secret=secret,
            username=username,
            password=password,
            **options,
        )

    def authorization_code_credentials(self, **options: Any) -> AuthorizationCodeCredentials:
        client_id, secret = self._first_client()
        options = {
            "issuer": self.issuer,
            "token_url": self.token_url,
            "authorization_url": self.authorization_url,
            "revocation_url": self.revocation_url,
            "redirect_uri": self.redirect_uri,
            **options,
        }
        return AuthorizationCodeCredentials(client_id=client_id, client_secret=secret, **options)

    def transport(self) -> httpx2.MockTransport:
        """A transport for ``httpx2.Client`` and ``httpx2.AsyncClient``."""
        return httpx2.MockTransport(self)

    # -- scripting faults -----------------------------------------------------

    def enqueue(
        self,
        status: int,
        json_body: Any = None,
        *,
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
        endpoint: Literal["token", "revocation"] = "token",
    ) -> None:
        """Answer the next request to ``endpoint`` with this instead of the real answer."""
        hdrs = dict(headers or {})
        if text is not None:
            body = text.encode()
            hdrs.setdefault("Content-Type", "text/html")
        else:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        script = self._script if endpoint == "token" else self._revocation_script
        with self._lock:
            script.append(_Scripted(status, body, hdrs))

    def rate_limit(self, retry_after: float | None = 30, times: int = 1) -> None:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        for _ in range(times):
            self.enqueue(429, {"error": "slow_down"}, headers=headers)

    def expire_all(self) -> None:
        """Make every access token the server issued invalid now (e.g. a key rotation)."""
        with self._lock:
            for record in self.access_tokens.values():
                record.expires_at = self.clock.time() - 1

    def authorize(self, url: str, *, username: str | None = None, deny: bool = False) -> str:
        """Play the user at the authorization URL: return the redirect the browser would get."""
        query = dict(parse_qsl(urlsplit(url).query))
        redirect = query.get("redirect_uri", "")
        if redirect != self.redirect_uri or query.get("client_id") not in self.clients:
            raise ValueError("unknown client or redirect_uri")
        params = {"state": query["state"]} if "state" in query else {}
        if deny:
            params.update(error="access_denied", error_description="the user said no")
        else:
            code = f"code-{next(self._ids)}"
            with self._lock:
                self._codes[code] = _Code(
                    query["client_id"],
                    redirect,
                    query.get("code_challenge"),
                    query.get("scope"),
                    username or next(iter(self.users)),
                    query.get("nonce"),
                    int(self.clock.time()),
                )
            params["code"] = code
        params["iss"] = self.issuer
        return f"{redirect}?{urlencode(params)}"

    # -- HTTP ---------------------------------------------------------------

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url.startswith(self.token_url):
            return self._token(request)
        if url.startswith(self.revocation_url):
            return self._revoke(request)
        rfc8414, openid = metadata_urls(self.issuer)
        if url == self.jwks_url:
            return self._json(200, self.jwks())
        if url in (rfc8414, openid):
            if (url == rfc8414 and "oauth-authorization-server" not in self.discovery) or (
                url == openid and "openid-configuration" not in self.discovery
            ):
                return self._error(404, "invalid_request", "no such document")
            return self._json(200, self.metadata())
        return self._api(request)

    def metadata(self) -> dict[str, Any]:
        """The discovery document (RFC 8414; OpenID Connect's is the same here)."""
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_url,
            "authorization_endpoint": self.authorization_url,
            "revocation_endpoint": self.revocation_url,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["ES256"],
        }

    def _json(
        self, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> httpx2.Response:
        hdrs = {
            "Cache-Control": "no-store",
            "Date": formatdate(self.clock.time() + self.server_clock_skew, usegmt=True),
            **(headers or {}),
        }
        return httpx2.Response(status, json=body, headers=hdrs)

    def _error(self, status: int, code: str, description: str) -> httpx2.Response:
        return self._json(status, {"error": code, "error_description": description})

    def _api(self, request: httpx2.Request) -> httpx2.Response:
        with self._lock:
            self.api_requests += 1
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        record = self.access_tokens.get(value) if scheme.lower() == "bearer" else None
        if record is None or record.expires_at <= self.clock.time():
            return httpx2.Response(
                401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return self._json(200, {"client_id": record.client_id, "sub": record.subject})

    def _params(self, request: httpx2.Request) -> dict[str, str]:
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            data = json.loads(request.content or b"{}")
            return {k: str(v) for k, v in data.items()}
        return dict(parse_qsl(request.content.decode()))

    def _client_id(self, request: httpx2.Request, params: dict[str, str]) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            raw = base64.b64decode(auth[6:]).decode()
            client_id, _, secret = raw.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        expected = self.clients.get(client_id)
        if expected is None or (expected and secret != expected):
            return None
        return client_id

    def _token(self, request: httpx2.Request) -> httpx2.Response:
        if self.before_token is not None:
            self.before_token(request)
        with self._lock:
            self.token_requests += 1
            scripted = self._script.pop(0) if self._script else None
        if scripted is not None:
            return httpx2.Response(scripted.status, content=scripted.body, headers=scripted.headers)
        params = self._params(request)
        self.last_token_request = {k: v for k, v in params.items() if "secret" not in k}
        client_id = self._client_id(request, params)
        if client_id is None:
            return self._error(401, "invalid_client", "client authentication failed")
        grant = params.get("grant_type", "")
        with self._lock:
            self.grants[grant] += 1
            if grant == "client_credentials":
                return self._issue(client_id, params.get("scope"), None, refresh=False)
            if grant == "password":
                if self.users.get(params.get("username", "")) != params.get("password"):
                    return self._error(400, "invalid_grant", "wrong username or password")
                return self._issue(
                    client_id,
                    params.get("scope"),
                    params["username"],
                    refresh=True,
                    auth_time=int(self.clock.time()),
                )
            if grant == "authorization_code":
                return self._redeem(client_id, params)
            if grant == "refresh_token":
                return self._refresh(client_id, params)
        return self._error(400, "unsupported_grant_type", f"grant {grant!r} is not supported")

    def _issue(
        self,
        client_id: str,
        scope: str | None,
        subject: str | None,
        *,
        refresh: bool,
        family: int | None = None,
        auth_time: int | None = None,
        nonce: str | None = None,
    ) -> httpx2.Response:
        n = next(self._ids)
        lifetime = self.expires_in if self.expires_in is not None else 3600
        record = IssuedToken(
            client_id,
            scope,
            self.clock.time() + lifetime,
            subject,
            family if family else n,
            auth_time,
        )
        access = f"at-{n}"
        self.access_tokens[access] = record
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if scope:
            body["scope"] = scope
        if refresh:
            refresh_token = f"rt-{n}"
            self.refresh_tokens[refresh_token] = record
            body["refresh_token"] = refresh_token
        if subject is not None and auth_time is not None and "openid" in (scope or "").split():
            body["id_token"] = self._id_token(client_id, subject, auth_time, nonce, access)
        return self._json(200, body)

    def _id_token(
        self, client_id: str, subject: str, auth_time: int, nonce: str | None, access: str
    ) -> str:
        """OIDC Core §2 / §3.1.3.6, as the real server makes them (ES256 here)."""
        now = int(self.clock.time() + self.server_clock_skew)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": client_id,
            "exp": now + self.id_token_lifetime,
            "iat": now,
            "auth_time": auth_time,
            "at_hash": token_hash(access, "ES256"),
        }
        if nonce:
            claims["nonce"] = nonce
        for name, value in self.id_token_claims.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self._signer.sign(claims, typ="JWT")

    def _redeem(self, client_id: str, params: dict[str, str]) -> httpx2.Response:
        code = self._codes.pop(params.get("code", ""), None)
        if code is None or code.client_id != client_id:
            return self._error(400, "invalid_grant", "unknown or used code")
        if params.get("redirect_uri") != code.redirect_uri:
            return self._error(400, "invalid_grant", "redirect_uri mismatch")
        if code.challenge is not None:
            try:
                verified = pkce.verify(params.get("code_verifier", ""), code.challenge)
            except ValueError:  # not an RFC 7636 verifier
                verified = False
            if not verified:
                return self._error(400, "invalid_grant", "PKCE verification failed")
        return self._issue(
            client_id,
            code.scope,
            code.subject,
            refresh=True,
            auth_time=code.auth_time,
            nonce=code.nonce,
        )

    def _refresh(self, client_id: str, params: dict[str, str]) -> httpx2.Response:
        refresh_token = params.get("refresh_token", "")
        record = self.refresh_tokens.get(refresh_token)
        if record is None and refresh_token in self._rotated:
            return self._replay_or_reuse(client_id, refresh_token)
        if record is None or record.client_id != client_id:
            return self._error(400, "invalid_grant", "unknown or used refresh token")
        if self.rotate_refresh_tokens:
            del self.refresh_tokens[refresh_token]
            response = self._issue(
                client_id,
                record.scope,
                record.subject,
                refresh=True,
                family=record.family,
                auth_time=record.auth_time,
            )
            self._rotated[refresh_token] = _Rotated(
                client_id, record.family, self.clock.time(), response
            )
            return response
        response = self._issue(
            client_id, record.scope, record.subject, refresh=False, auth_time=record.auth_time
        )
        return response

    def _replay_or_reuse(self, client_id: str, refresh_token: str) -> httpx2.Response:
        """As the real server: inside the grace window a rotated refresh token gets the
        same answer again (a concurrent refresh lost the race), while its successor
        lives; otherwise it is reuse, and the whole family is revoked (RFC 9700 §4.14)."""
        rotated = self._rotated[refresh_token]
        if rotated.client_id != client_id:
            return self._error(400, "invalid_grant", "unknown or used refresh token")
        successor = json.loads(rotated.response.content).get("refresh_token")
        in_grace = self.clock.time() - rotated.at <= self.refresh_grace_period
        if in_grace and successor in self.refresh_tokens:
            first = rotated.response
            return httpx2.Response(first.status_code, content=first.content, headers=first.headers)
        for table in (self.access_tokens, self.refresh_tokens):
            for key in [k for k, v in table.items() if v.family == rotated.family]:
                del table[key]
        return self._error(400, "invalid_grant", "refresh token reused: the grant is revoked")

    def _revoke(self, request: httpx2.Request) -> httpx2.Response:
        with self._lock:
            scripted = self._revocation_script.pop(0) if self._revocation_script else None
        if scripted is not None:
            return httpx2.Response(scripted.status, content=scripted.body, headers=scripted.headers)
        params = self._params(request)
        if self._client_id(request, params) is None:
            return self._error(401, "invalid_client", "client authentication failed")
        token = params.get("token", "")
        if not self.revoke_access_tokens and token in self.access_tokens:
            return self._error(400, "unsupported_token_type", "access tokens cannot be revoked")
        with self._lock:
            self.revoked.append(token)
            record = self.refresh_tokens.pop(token, None) or self.access_tokens.pop(token, None)
            if record is not None:
                # Revoking one token of a grant revokes the whole family (RFC 7009 §2.1).
                tables = [self.refresh_tokens]
                if self.revoke_access_tokens:  # else they live until they expire
                    tables.append(self.access_tokens)
                for table in tables:
                    for key in [k for k, v in table.items() if v.family == record.family]:
                        del table[key]
        return httpx2.Response(200)
