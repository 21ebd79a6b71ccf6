"""Authorization code + PKCE with login and consent, the password grant, ID tokens.

Every attack of RFC 9700 that applies gets its own test: code replay, PKCE
mismatch or missing, redirect-URI mismatch, cross-client code use, CSRF.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt as pyjwt
import pytest
from starlette.testclient import TestClient

from keyturn.server.app import create_app
from keyturn.server.clients import build_client
from keyturn.server.context import ServerContext
from keyturn.server.users import build_user
from tests.server.conftest import make_settings

ISSUER = "http://localhost"
REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"


@dataclass
class Flow:
    http: TestClient
    ctx: ServerContext
    client_id: str
    username: str

    def call(self, fn: Any, *args: Any) -> Any:
        return self.http.portal.call(fn, *args)  # type: ignore[union-attr]

    def client(self, **options: Any) -> tuple[str, str | None]:
        options.setdefault("rate_limit", 0)
        new = build_client(self.ctx.hasher, **options)
        self.call(self.ctx.storage.create_client, new.client)
        return new.client.client_id, new.secret


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def unescape(value: str) -> str:
    import html

    return html.unescape(value)


@pytest.fixture
def flow(tmp_path: Path, database_url: str) -> Iterator[Flow]:
    settings = make_settings(tmp_path, database_url, issuer=ISSUER)
    holder: list[ServerContext] = []
    with TestClient(
        create_app(settings, context_hook=holder.append),
        base_url=ISSUER,
        raise_server_exceptions=False,
    ) as http:
        ctx = holder[0]
        new = build_client(
            ctx.hasher,
            name="Photo App",
            public=True,
            grant_types=["authorization_code", "refresh_token"],
            scopes=["openid", "profile", "photos:read"],
            redirect_uris=[REDIRECT],
        )
        http.portal.call(ctx.storage.create_client, new.client)  # type: ignore[union-attr]
        username = "alice-" + secrets.token_hex(4)
        http.portal.call(
            ctx.storage.create_user,  # type: ignore[union-attr]
            build_user(username, PASSWORD, name="Alice Liddell"),
        )
        yield Flow(http, ctx, new.client.client_id, username)


def authorize_url(flow: Flow, challenge: str | None, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": flow.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile photos:read",
        "state": "st-123",
        "nonce": "n-456",
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return "/oauth/authorize?" + urlencode(params)


def login(flow: Flow, url: str, password: str = PASSWORD) -> Any:
    page = flow.http.get(url)
    assert page.status_code == 200, page.text
    assert "Sign in" in page.text
    fields = {k: unescape(v) for k, v in hidden(page.text).items()}
    return flow.http.post(
        "/oauth/login",
        data={**fields, "username": flow.username, "password": password},
        follow_redirects=False,
    )


def consent(flow: Flow, url: str, decision: str = "allow") -> Any:
    page = flow.http.get(url, follow_redirects=False)
    assert page.status_code == 200, page.text
    assert "wants access" in page.text
    fields = {k: unescape(v) for k, v in hidden(page.text).items()}
    return flow.http.post(
        "/oauth/authorize", data={**fields, "decision": decision}, follow_redirects=False
    )


def code_from(response: Any) -> dict[str, str]:
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def full_flow(flow: Flow, challenge: str | None) -> dict[str, str]:
    url = authorize_url(flow, challenge)
    r = login(flow, url)
    assert r.status_code == 303
    return code_from(consent(flow, r.headers["location"]))


def redeem(
    flow: Flow, code: str, verifier: str | None, client_id: str | None = None, **extra: str
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id or flow.client_id,
        **extra,
    }
    if verifier:
        data["code_verifier"] = verifier
    return flow.http.post("/oauth/token", data=data)


def introspect(flow: Flow, token: str) -> dict[str, Any]:
    body: dict[str, Any] = flow.http.post(
        "/oauth/introspect", data={"token": token, "client_id": flow.client_id}
    ).json()
    return body


# -- the happy path ---------------------------------------------------------------------
def test_code_flow_with_pkce_issues_tokens_and_id_token(flow: Flow) -> None:
    verifier, challenge = pkce()
    result = full_flow(flow, challenge)
    assert result["state"] == "st-123"
    assert result["iss"] == ISSUER
    r = redeem(flow, result["code"], verifier)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["scope"] == "openid profile photos:read"
    assert tokens["refresh_token"].startswith("ktr_")
    jwks = flow.http.get("/.well-known/jwks.json").json()["keys"]
    header = pyjwt.get_unverified_header(tokens["id_token"])
    assert header["typ"] == "JWT"
    key = pyjwt.PyJWK(next(k for k in jwks if k["kid"] == header["kid"]))
    claims = pyjwt.decode(
        tokens["id_token"], key, algorithms=["RS256"], audience=flow.client_id, issuer=ISSUER
    )
    assert claims["nonce"] == "n-456"
    assert claims["preferred_username"] == flow.username
    assert claims["name"] == "Alice Liddell"
    assert claims["auth_time"] <= claims["iat"]
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    access = pyjwt.decode(tokens["access_token"], key, algorithms=["RS256"], audience=ISSUER)
    assert access["sub"] == claims["sub"]
    assert access["client_id"] == flow.client_id
    info = flow.http.get(
        "/oauth/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert info.json() == {
        "sub": claims["sub"],
        "preferred_username": flow.username,
        "name": "Alice Liddell",
    }
    # The public client refreshes with no secret; rotation applies.
    r = flow.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": flow.client_id,
        },
    )
    assert r.status_code == 200, r.text


def test_session_cookie_and_page_headers(flow: Flow) -> None:
    r = login(flow, authorize_url(flow, pkce()[1]))
    cookie = r.headers["set-cookie"]
    assert "kt_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie, "plain-HTTP localhost keeps cookies usable"
    page = flow.http.get(r.headers["location"])
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    stored = flow.call(
        flow.ctx.storage.get_session, flow.ctx.hasher.hash(flow.http.cookies["kt_session"]), 0
    )
    assert stored is not None, "the session is stored by keyed hash"


def test_remembered_consent_skips_the_page_unless_prompt_consent(flow: Flow) -> None:
    full_flow(flow, pkce()[1])
    again = flow.http.get(authorize_url(flow, pkce()[1]), follow_redirects=False)
    assert "code" in code_from(again)
    forced = flow.http.get(authorize_url(flow, pkce()[1], prompt="consent"))
    assert forced.status_code == 200
    assert "wants access" in forced.text


def test_prompt_none_without_session_is_login_required(flow: Flow) -> None:
    r = flow.http.get(authorize_url(flow, pkce()[1], prompt="none"), follow_redirects=False)
    result = code_from(r)
    assert result["error"] == "login_required"
    assert result["state"] == "st-123"


def test_max_age_makes_an_old_login_sign_in_again(flow: Flow) -> None:
    """OIDC Core §3.1.2.1 (issue 17, item 10a): a session 3 s old does not satisfy
    max_age=1; the user signs in again and the ID token's auth_time says when."""
    verifier, challenge = pkce()
    full_flow(flow, challenge)  # signed in, consented
    signed_in = int(flow.ctx.clock())
    real = flow.ctx.clock
    flow.ctx.clock = lambda: real() + 3  # the session is now (at least) 3 s old
    fresh = flow.http.get(authorize_url(flow, challenge, max_age="60"), follow_redirects=False)
    assert "code" in code_from(fresh)  # young enough: a code at once
    url = authorize_url(flow, challenge, max_age="1")
    page = flow.http.get(url, follow_redirects=False)
    assert page.status_code == 200
    assert "Sign in" in page.text  # not a code
    silent = flow.http.get(
        authorize_url(flow, challenge, max_age="1", prompt="none"), follow_redirects=False
    )
    assert code_from(silent)["error"] == "login_required"
    r = login(flow, url)
    assert r.status_code == 303
    result = code_from(flow.http.get(r.headers["location"], follow_redirects=False))
    tokens = redeem(flow, result["code"], verifier).json()
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["auth_time"] >= signed_in + 3  # the new login's time


@pytest.mark.parametrize("max_age", ["-1", "1.5", "soon", "", "12345678901"])
def test_a_malformed_max_age_is_invalid_request(flow: Flow, max_age: str) -> None:
    r = flow.http.get(authorize_url(flow, pkce()[1], max_age=max_age), follow_redirects=False)
    result = code_from(r)
    assert result["error"] == "invalid_request"
    assert "max_age" in result["error_description"]


def test_deny_redirects_access_denied_with_state(flow: Flow) -> None:
    r = login(flow, authorize_url(flow, pkce()[1]))
    result = code_from(consent(flow, r.headers["location"], decision="deny"))
    assert result["error"] == "access_denied"
    assert result["state"] == "st-123"
    assert "code" not in result


def test_wrong_password_shows_the_form_again(flow: Flow) -> None:
    r = login(flow, authorize_url(flow, pkce()[1]), password="wrong password")
    assert r.status_code == 401
    assert "Wrong username or password" in r.text
    assert "kt_session" not in r.headers.get("set-cookie", "")


# -- attacks ----------------------------------------------------------------------------
def test_code_replay_fails_and_revokes_what_it_issued(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = full_flow(flow, challenge)["code"]
    first = redeem(flow, code, verifier).json()
    assert introspect(flow, first["access_token"])["active"] is True
    replay = redeem(flow, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert introspect(flow, first["access_token"]) == {"active": False}
    assert introspect(flow, first["refresh_token"]) == {"active": False}


def test_pkce_mismatch_and_missing_verifier(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = full_flow(flow, challenge)["code"]
    r = redeem(flow, code, None)
    assert r.json()["error"] == "invalid_grant"
    assert "code_verifier is required" in r.json()["error_description"]
    r = redeem(flow, code, pkce()[0])
    assert r.json()["error"] == "invalid_grant"
    assert "does not match" in r.json()["error_description"]
    r = redeem(flow, code, "short")
    assert r.json()["error"] == "invalid_grant"
    # Failed attempts did not consume it: the right verifier still works.
    assert redeem(flow, code, verifier).status_code == 200


def test_public_client_must_use_pkce_and_plain_is_refused(flow: Flow) -> None:
    r = flow.http.get(authorize_url(flow, None), follow_redirects=False)
    result = code_from(r)
    assert result["error"] == "invalid_request"
    assert "PKCE" in result["error_description"]
    _, challenge = pkce()
    r = flow.http.get(
        authorize_url(flow, None, code_challenge=challenge, code_challenge_method="plain"),
        follow_redirects=False,
    )
    assert code_from(r)["error"] == "invalid_request"


def test_redirect_uri_mismatch_is_an_error_page_never_a_redirect(flow: Flow) -> None:
    for bad in (
        "https://evil.example/callback",
        REDIRECT + "/x",
        REDIRECT + "?a=1",
        "https://app.example/CALLBACK",
    ):
        r = flow.http.get(authorize_url(flow, pkce()[1], redirect_uri=bad), follow_redirects=False)
        assert r.status_code == 400
        assert "location" not in r.headers
        assert "not registered" in r.text
    r = flow.http.get(
        "/oauth/authorize?response_type=code&client_id=nobody", follow_redirects=False
    )
    assert r.status_code == 400
    assert "not registered" in r.text


def test_redirect_uri_at_token_endpoint_must_match(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = full_flow(flow, challenge)["code"]
    r = redeem(flow, code, verifier, redirect_uri="https://app.example/other")
    assert r.json()["error"] == "invalid_grant"


def test_cross_client_code_use(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = full_flow(flow, challenge)["code"]
    other, _ = flow.client(
        public=True, grant_types=["authorization_code"], redirect_uris=[REDIRECT], scopes=["openid"]
    )
    r = redeem(flow, code, verifier, client_id=other)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    assert redeem(flow, code, verifier).status_code == 200


def test_expired_code(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = full_flow(flow, challenge)["code"]
    real = flow.ctx.clock
    flow.ctx.clock = lambda: real() + 61
    try:
        r = redeem(flow, code, verifier)
    finally:
        flow.ctx.clock = real
    assert r.json()["error"] == "invalid_grant"
    assert "expired" in r.json()["error_description"]


def test_consent_form_without_csrf_token_is_refused(flow: Flow) -> None:
    r = login(flow, authorize_url(flow, pkce()[1]))
    page = flow.http.get(r.headers["location"])
    fields = {k: unescape(v) for k, v in hidden(page.text).items()}
    fields.pop("csrf_token")
    r = flow.http.post(
        "/oauth/authorize", data={**fields, "decision": "allow"}, follow_redirects=False
    )
    assert r.status_code == 403
    assert "location" not in r.headers
    fields["csrf_token"] = "forged"
    r = flow.http.post(
        "/oauth/authorize", data={**fields, "decision": "allow"}, follow_redirects=False
    )
    assert r.status_code == 403


def test_login_form_without_csrf_or_with_foreign_next_is_refused(flow: Flow) -> None:
    page = flow.http.get(authorize_url(flow, pkce()[1]))
    fields = {k: unescape(v) for k, v in hidden(page.text).items()}
    r = flow.http.post(
        "/oauth/login",
        data={"next": fields["next"], "username": flow.username, "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 403
    r = flow.http.post(
        "/oauth/login",
        data={
            **fields,
            "next": "https://evil.example/",
            "username": flow.username,
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert r.status_code == 400
    assert "location" not in r.headers


def test_login_lockout(flow: Flow) -> None:
    url = authorize_url(flow, pkce()[1])
    for _ in range(flow.ctx.settings.login_failure_limit):
        assert login(flow, url, password="nope nope").status_code == 401
    r = login(flow, url)
    assert r.status_code == 429
    assert "Too many failed attempts" in r.text


# -- password grant ---------------------------------------------------------------------
def test_password_grant_is_off_unless_allowed(flow: Flow) -> None:
    cid, secret = flow.client(scopes=["openid", "photos:read"])
    data = {
        "grant_type": "password",
        "username": flow.username,
        "password": PASSWORD,
        "client_id": cid,
        "client_secret": secret,
    }
    r = flow.http.post("/oauth/token", data=data)
    assert r.json()["error"] == "unauthorized_client"
    allowed, allowed_secret = flow.client(
        grant_types=["password", "refresh_token"], scopes=["openid", "photos:read"]
    )
    data.update(client_id=allowed, client_secret=allowed_secret, scope="openid photos:read")
    r = flow.http.post("/oauth/token", data=data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"access_token", "refresh_token", "id_token"} <= set(body)
    claims = pyjwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["aud"] == allowed
    r = flow.http.post("/oauth/token", data={**data, "password": "wrong"})
    assert r.json()["error"] == "invalid_grant"
    r = flow.http.post("/oauth/token", data={**data, "username": "nobody"})
    assert r.json()["error"] == "invalid_grant"
    assert r.json()["error_description"] == "wrong username or password"


def test_openid_configuration(flow: Flow) -> None:
    meta = flow.http.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == ISSUER + "/oauth/authorize"
    assert meta["userinfo_endpoint"] == ISSUER + "/oauth/userinfo"
    assert meta["response_types_supported"] == ["code"]
    assert "S256" in meta["code_challenge_methods_supported"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]


def test_userinfo_needs_openid_scope(flow: Flow) -> None:
    cid, secret = flow.client(scopes=["photos:read"])
    token = flow.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
    ).json()["access_token"]
    r = flow.http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"
    r = flow.http.get("/oauth/userinfo")
    assert r.status_code == 401


def test_refresh_of_an_openid_grant_reissues_the_id_token(flow: Flow) -> None:
    verifier, challenge = pkce()
    tokens = redeem(flow, full_flow(flow, challenge)["code"], verifier).json()
    original = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    r = flow.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": flow.client_id,
        },
    )
    refreshed = r.json()
    claims = pyjwt.decode(refreshed["id_token"], options={"verify_signature": False})
    assert claims["sub"] == original["sub"]
    assert claims["auth_time"] == original["auth_time"], "the user did not sign in again"
    assert "nonce" not in claims

    admin_id, admin_secret = flow.client(scopes=["keyturn:admin"])
    admin_token = flow.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": admin_id,
            "client_secret": admin_secret,
        },
    ).json()["access_token"]
    headers = {"Authorization": "Bearer " + admin_token}
    r = flow.http.post(
        "/admin/v1/tokens/reissue-id-token",
        headers=headers,
        json={"refresh_token": refreshed["refresh_token"]},
    )
    assert r.status_code == 200, r.text
    reissued = r.json()
    assert reissued["refresh_token"] != refreshed["refresh_token"]
    assert (
        pyjwt.decode(reissued["id_token"], options={"verify_signature": False})["sub"]
        == (original["sub"])
    )
    # The spent refresh token is rotated like any other.
    assert introspect(flow, refreshed["refresh_token"]) == {"active": False}
    r = flow.http.post(
        "/admin/v1/tokens/reissue-id-token", headers=headers, json={"refresh_token": "ktr_unknown"}
    )
    assert r.status_code == 404


def test_nul_in_authorization_request_is_a_page_error(flow: Flow) -> None:
    r = flow.http.get("/oauth/authorize?response_type=code&client_id=a%00b", follow_redirects=False)
    assert r.status_code == 400
    assert "location" not in r.headers
