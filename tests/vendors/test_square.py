"""The ``squareup`` SDK (its current major), unchanged, against a real ``keyturn serve``.

Pointed at Keyturn by its public ``base_url``; ``Authorization: Client SECRET``
goes in through ``request_options`` as Square's docs say. The merchant is the
Keyturn user who authorized the code (or the client itself for its own token).
The SDK of this major has no RenewToken, so renew is tested by its HTTP shape.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from square import Square
from square.core.api_error import ApiError

from tests.vendors.conftest import SDK_WARNINGS, LiveServer, Surfaces

pytestmark = [pytest.mark.e2e, *SDK_WARNINGS]

REDIRECT = "http://127.0.0.1:9/square-callback"
PASSWORD = "correct horse battery staple"


def square(server: LiveServer, token: str | None = None) -> Square:
    return Square(base_url=server.url, token=token)


def client_auth(secret: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Client {secret}"}, "max_retries": 0}


def seconds(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def merchant_app(server: LiveServer) -> dict[str, Any]:
    return server.create_client(
        "--name",
        "square-app",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--grant",
        "migration_token",
        "--grant",
        "client_credentials",
        "--redirect-uri",
        REDIRECT,
        "--scope",
        "MERCHANT_PROFILE_READ",
        "--scope",
        "PAYMENTS_READ",
    )


def make_user(server: LiveServer) -> tuple[str, str]:
    """A Keyturn user (the merchant): username and user id."""
    username = "merchant-" + secrets.token_hex(4)
    done = server.cli("users", "create", username, "--password", PASSWORD)
    assert done.returncode == 0, done.stderr
    listed = server.cli("users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (user,) = [u for u in json.loads(listed.stdout) if u["username"] == username]
    return username, user["user_id"]


def authorization_code(server: LiveServer, client_id: str, username: str) -> tuple[str, str]:
    """A code from Keyturn's real authorize flow (login and consent pages); and its verifier."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "MERCHANT_PROFILE_READ PAYMENTS_READ",
            "state": "s1",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )

    def hidden(page: str) -> dict[str, str]:
        found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
        return {k: html.unescape(v) for k, v in found}

    with httpx2.Client(base_url=server.url) as http:
        page = http.get("/oauth/authorize?" + query)
        assert page.status_code == 200, page.text
        r = http.post(
            "/oauth/login", data={**hidden(page.text), "username": username, "password": PASSWORD}
        )
        assert r.status_code == 303, r.text
        r = http.get(r.headers["location"])
        if r.status_code == 200:  # the consent page (a remembered consent skips it)
            r = http.post("/oauth/authorize", data={**hidden(r.text), "decision": "allow"})
        assert r.status_code in (302, 303), r.text
        assert r.headers["location"].startswith(REDIRECT)
    answer = parse_qs(urlsplit(r.headers["location"]).query)
    return answer["code"][0], verifier


def test_code_refresh_status_and_revoke_through_the_sdk(
    live_server: LiveServer, surfaces: Surfaces
) -> None:
    app = merchant_app(live_server)
    cid, secret = app["client_id"], app["client_secret"]
    username, merchant = make_user(live_server)
    sq = square(live_server)

    code, verifier = authorization_code(live_server, cid, username)
    got = sq.o_auth.obtain_token(
        client_id=cid,
        client_secret=secret,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
        short_lived=False,
        use_jwt=True,
    )
    assert got.token_type == "bearer"
    assert got.merchant_id == merchant
    assert got.short_lived is False
    assert got.access_token
    assert got.refresh_token
    assert got.expires_at
    assert got.refresh_token_expires_at
    first = surfaces.introspect(got.access_token)
    assert seconds(got.expires_at) == first["exp"]
    assert first["exp"] - first["iat"] == 5 * 3600
    assert seconds(got.refresh_token_expires_at) > seconds(got.expires_at)

    # Token status: the access token asks about itself.
    status = square(live_server, got.access_token).o_auth.retrieve_token_status()
    assert status.client_id == cid
    assert status.merchant_id == merchant
    assert sorted(status.scopes or []) == ["MERCHANT_PROFILE_READ", "PAYMENTS_READ"]
    assert status.expires_at == got.expires_at

    # Refresh with a narrower scopes array.
    refreshed = sq.o_auth.obtain_token(
        client_id=cid,
        client_secret=secret,
        grant_type="refresh_token",
        refresh_token=got.refresh_token,
        scopes=["PAYMENTS_READ"],
    )
    assert refreshed.merchant_id == merchant
    assert refreshed.refresh_token != got.refresh_token
    info = surfaces.introspect(refreshed.access_token)
    assert (info["active"], info["sub"], info["scope"]) == (True, merchant, "PAYMENTS_READ")

    # The same tokens through the admin API and the CLI.
    live = {t["token_id"] for t in surfaces.admin_list(cid, active=True)}
    assert info["jti"] in live
    assert info["jti"] in {t["token_id"] for t in surfaces.cli_list(cid)}

    # Revoke by token, keeping the refresh tokens: only that access token dies.
    done = sq.o_auth.revoke_token(
        client_id=cid,
        access_token=refreshed.access_token,
        revoke_only_access_token=True,
        request_options=client_auth(secret),
    )
    assert done.success is True
    assert surfaces.introspect(refreshed.access_token) == {"active": False}
    kinds = {t["kind"] for t in surfaces.admin_list(cid, active=True)}
    assert "refresh_token" in kinds

    # Revoke by token, the whole authorization: every token of the client-merchant pair.
    again = sq.o_auth.obtain_token(
        client_id=cid,
        client_secret=secret,
        grant_type="refresh_token",
        refresh_token=refreshed.refresh_token,
    )
    own = sq.o_auth.obtain_token(
        client_id=cid, client_secret=secret, grant_type="client_credentials"
    )
    assert own.merchant_id == cid
    sq.o_auth.revoke_token(
        client_id=cid, access_token=again.access_token, request_options=client_auth(secret)
    )
    left = surfaces.admin_list(cid, active=True)
    assert [t["subject"] for t in left if t["kind"] != "legacy"] == [cid], left
    with pytest.raises(ApiError) as caught:
        square(live_server, again.access_token).o_auth.retrieve_token_status(
            request_options={"max_retries": 0}
        )
    assert caught.value.status_code == 401
    assert caught.value.errors[0].code == "ACCESS_TOKEN_REVOKED"
    # The client's own token (another "merchant") was not touched; RFC 7009 revokes it.
    surfaces.rfc_revoke(own.access_token, cid, secret)
    assert surfaces.introspect(own.access_token) == {"active": False}


def test_revoke_by_merchant(live_server: LiveServer, surfaces: Surfaces) -> None:
    app = merchant_app(live_server)
    cid, secret = app["client_id"], app["client_secret"]
    username, merchant = make_user(live_server)
    sq = square(live_server)

    def connect() -> Any:
        code, verifier = authorization_code(live_server, cid, username)
        return sq.o_auth.obtain_token(
            client_id=cid,
            client_secret=secret,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
        )

    first = connect()
    done = sq.o_auth.revoke_token(
        client_id=cid,
        merchant_id=merchant,
        revoke_only_access_token=True,
        request_options=client_auth(secret),
    )
    assert done.success is True
    assert surfaces.introspect(first.access_token) == {"active": False}
    # The refresh token survived: it still gets a new access token.
    renewed = sq.o_auth.obtain_token(
        client_id=cid,
        client_secret=secret,
        grant_type="refresh_token",
        refresh_token=first.refresh_token,
    )
    assert surfaces.introspect(renewed.access_token)["active"] is True

    connect()
    sq.o_auth.revoke_token(client_id=cid, merchant_id=merchant, request_options=client_auth(secret))
    assert [t for t in surfaces.admin_list(cid, active=True) if t["subject"] == merchant] == []
    with pytest.raises(ApiError) as caught:
        sq.o_auth.obtain_token(
            client_id=cid,
            client_secret=secret,
            grant_type="refresh_token",
            refresh_token=renewed.refresh_token,
        )
    assert caught.value.status_code == 400
    assert caught.value.errors[0].code == "INVALID_VALUE"


def test_migration_token(live_server: LiveServer, surfaces: Surfaces) -> None:
    app = merchant_app(live_server)
    cid, secret = app["client_id"], app["client_secret"]
    legacy = "sq0atp-" + secrets.token_urlsafe(24)
    r = surfaces.admin_api(
        "POST",
        "/tokens/import",
        json={
            "tokens": [
                {
                    "client_id": cid,
                    "token": legacy,
                    "subject": "MLEGACY1",
                    "scopes": ["PAYMENTS_READ"],
                    "expires_at": int(time.time()) + 3600,
                }
            ]
        },
    )
    assert r.status_code == 201, r.text
    sq = square(live_server)
    got = sq.o_auth.obtain_token(
        client_id=cid, client_secret=secret, grant_type="migration_token", migration_token=legacy
    )
    assert got.merchant_id == "MLEGACY1"
    assert got.refresh_token
    info = surfaces.introspect(got.access_token)
    assert (info["active"], info["sub"], info["scope"]) == (True, "MLEGACY1", "PAYMENTS_READ")
    with pytest.raises(ApiError) as caught:  # exchanged once only
        sq.o_auth.obtain_token(
            client_id=cid,
            client_secret=secret,
            grant_type="migration_token",
            migration_token=legacy,
        )
    assert caught.value.errors[0].code == "INVALID_VALUE"


def test_a_wrong_secret(live_server: LiveServer) -> None:
    app = merchant_app(live_server)
    sq = square(live_server)
    with pytest.raises(ApiError) as caught:
        sq.o_auth.obtain_token(
            client_id=app["client_id"], client_secret="wrong", grant_type="client_credentials"
        )
    err = caught.value
    assert err.status_code == 401
    assert (err.errors[0].category, err.errors[0].code) == ("AUTHENTICATION_ERROR", "UNAUTHORIZED")
    assert "wrong secret" in (err.errors[0].detail or "")
    with pytest.raises(ApiError) as caught:
        sq.o_auth.revoke_token(
            client_id=app["client_id"], merchant_id="M1", request_options=client_auth("wrong")
        )
    assert caught.value.status_code == 401
    assert caught.value.errors[0].code == "UNAUTHORIZED"


def test_renew_by_its_http_shape(live_server: LiveServer, surfaces: Surfaces) -> None:
    app = merchant_app(live_server)
    cid, secret = app["client_id"], app["client_secret"]
    own = square(live_server).o_auth.obtain_token(
        client_id=cid, client_secret=secret, grant_type="client_credentials"
    )
    url = f"{live_server.url}/oauth2/clients/{cid}/access-token/renew"
    r = httpx2.post(
        url, json={"access_token": own.access_token}, headers={"Authorization": f"Client {secret}"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_at", "merchant_id"}
    assert body["merchant_id"] == cid
    info = surfaces.introspect(body["access_token"])
    assert (info["active"], info["client_id"]) == (True, cid)
    assert surfaces.introspect(own.access_token)["active"] is True  # not cut mid-flight

    r = httpx2.post(
        url, json={"access_token": own.access_token}, headers={"Authorization": "Client wrong"}
    )
    assert r.status_code == 401
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    r = httpx2.post(
        url, json={"access_token": "nope"}, headers={"Authorization": f"Client {secret}"}
    )
    assert r.status_code == 404
    assert r.json()["errors"][0] == {
        "category": "INVALID_REQUEST_ERROR",
        "code": "NOT_FOUND",
        "detail": "no access token of this client has that value",
        "field": "access_token",
    }
    surfaces.rfc_revoke(own.access_token, cid, secret)
    r = httpx2.post(
        url, json={"access_token": own.access_token}, headers={"Authorization": f"Client {secret}"}
    )
    assert r.status_code == 401
    assert r.json()["errors"][0]["code"] == "ACCESS_TOKEN_REVOKED"


def test_bad_inputs_get_square_errors(live_server: LiveServer) -> None:
    app = merchant_app(live_server)
    cid, secret = app["client_id"], app["client_secret"]
    token_url = live_server.url + "/oauth2/token"

    def error(r: httpx2.Response, status: int) -> dict[str, Any]:
        assert r.status_code == status, r.text
        (only,) = r.json()["errors"]
        assert only["detail"]
        return dict(only)

    cc = {"client_id": cid, "client_secret": secret, "grant_type": "client_credentials"}
    assert error(httpx2.post(token_url, data=cc), 415)["code"] == "INVALID_CONTENT_TYPE"
    bad_json = httpx2.post(token_url, content=b"{", headers={"Content-Type": "application/json"})
    assert error(bad_json, 400)["code"] == "EXPECTED_JSON_BODY"
    assert error(httpx2.post(token_url, json=[1]), 400)["code"] == "EXPECTED_JSON_BODY"
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({**cc, "scopes": "PAYMENTS_READ"}, 400, "EXPECTED_ARRAY", "scopes"),
        ({**cc, "scopes": ["PAYMENTS_READ", 3]}, 400, "EXPECTED_ARRAY", "scopes"),
        ({**cc, "scopes": ["two words"]}, 400, "INVALID_VALUE", "scopes"),
        ({**cc, "scopes": ["ORDERS_WRITE"]}, 400, "INVALID_VALUE", "scopes"),
        ({**cc, "short_lived": "yes"}, 400, "EXPECTED_BOOLEAN", "short_lived"),
        ({**cc, "client_secret": 7}, 400, "EXPECTED_STRING", "client_secret"),
        ({**cc, "color": "blue"}, 400, "BAD_REQUEST", "color"),
        ({**cc, "grant_type": "password"}, 400, "INVALID_VALUE", "grant_type"),
        (
            {"client_id": cid, "client_secret": secret},
            400,
            "MISSING_REQUIRED_PARAMETER",
            "grant_type",
        ),
        ({"grant_type": "client_credentials"}, 400, "MISSING_REQUIRED_PARAMETER", "client_id"),
        ({**cc, "grant_type": "authorization_code"}, 400, "BAD_REQUEST", None),
        ({**cc, "grant_type": "authorization_code", "code": "nope"}, 400, "INVALID_VALUE", None),
        (
            {**cc, "grant_type": "refresh_token", "refresh_token": "nope"},
            400,
            "INVALID_VALUE",
            None,
        ),
    ]
    for body, status, code, field in cases:
        got = error(httpx2.post(token_url, json=body), status)
        assert (got["code"], got.get("field")) == (code, field), body
    dup = b'{"client_id": "a", "client_id": "b", "grant_type": "client_credentials"}'
    got = error(
        httpx2.post(token_url, content=dup, headers={"Content-Type": "application/json"}), 400
    )
    assert got["code"] == "BAD_REQUEST"

    revoke_url = live_server.url + "/oauth2/revoke"
    auth = {"Authorization": f"Client {secret}"}
    assert (
        error(httpx2.post(revoke_url, json={"client_id": cid, "merchant_id": "M"}), 401)["category"]
        == "AUTHENTICATION_ERROR"
    )
    got = error(httpx2.post(revoke_url, json={"client_id": cid}, headers=auth), 400)
    assert got["code"] == "MISSING_REQUIRED_PARAMETER"
    both = {"client_id": cid, "merchant_id": "M", "access_token": "t"}
    got = error(httpx2.post(revoke_url, json=both, headers=auth), 400)
    assert got["code"] == "CONFLICTING_PARAMETERS"
    got = error(
        httpx2.post(revoke_url, json={"client_id": cid, "access_token": "t"}, headers=auth), 404
    )
    assert got["code"] == "NOT_FOUND"
    got = error(
        httpx2.post(
            revoke_url,
            json={"client_id": cid, "merchant_id": "M", "revoke_only_access_token": 1},
            headers=auth,
        ),
        400,
    )
    assert got["code"] == "EXPECTED_BOOLEAN"

    status_url = live_server.url + "/oauth2/token/status"
    assert error(httpx2.post(status_url), 401)["code"] == "UNAUTHORIZED"
    got = error(httpx2.post(status_url, headers={"Authorization": "Bearer nope"}), 401)
    assert got["code"] == "UNAUTHORIZED"
    got = error(httpx2.post(status_url, headers={"Authorization": f"Client {secret}"}), 401)
    assert got["code"] == "UNAUTHORIZED"


def test_rate_limited_obtain_is_square_shaped(live_server: LiveServer) -> None:
    app = live_server.create_client("--rate-limit", "1")
    body = {
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "grant_type": "client_credentials",
    }
    assert httpx2.post(live_server.url + "/oauth2/token", json=body).status_code == 200
    r = httpx2.post(live_server.url + "/oauth2/token", json=body)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["errors"][0]["category"] == "RATE_LIMIT_ERROR"
    assert r.json()["errors"][0]["code"] == "RATE_LIMITED"
