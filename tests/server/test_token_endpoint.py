"""The token endpoint with the client-credentials grant, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt as pyjwt
import pytest

from keyturn.server.settings import Settings
from keyturn.storage.records import AUTH_BASIC
from tests.server.conftest import ISSUER, Harness, make_settings, run_harness, send_raw

CC = "client_credentials"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = pyjwt.decode(token, options={"verify_signature": False})
    return payload


def assert_error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert body.get("error_description")
    assert response.headers["cache-control"] == "no-store"
    return body


# -- success ---------------------------------------------------------------------------
def test_form_body_issues_a_signed_jwt(server: Harness) -> None:
    cid, secret = server.create_client(scopes=["read", "write"])
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["pragma"] == "no-cache"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 5 * 3600
    assert body["scope"] == "read write"
    header = pyjwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"]
    claims = claims_of(body["access_token"])
    assert claims["iss"] == ISSUER
    assert claims["sub"] == cid
    assert claims["client_id"] == cid
    assert claims["aud"] == ISSUER
    assert claims["scope"] == "read write"
    assert claims["exp"] - claims["iat"] == 5 * 3600
    assert len(claims["jti"]) >= 16


def test_json_body_and_basic_auth_and_legacy_path(server: Harness) -> None:
    cid, secret = server.create_client()
    assert secret
    r = server.http.post(
        "/auth/v2/token", json={"grant_type": CC, "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 200, r.text
    r = server.http.post("/oauth/token", data={"grant_type": CC}, headers=basic(cid, secret))
    assert r.status_code == 200, r.text


def test_token_verifies_against_served_jwks_alone(server: Harness) -> None:
    cid, secret = server.create_client()
    token = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
    ).json()["access_token"]
    jwks = server.http.get("/.well-known/jwks.json")
    assert jwks.headers["content-type"].startswith("application/jwk-set+json")
    keys = jwks.json()["keys"]
    assert all("d" not in k and "p" not in k for k in keys), "private material published"
    kid = pyjwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in keys if k["kid"] == kid)
    key = pyjwt.PyJWK(jwk)
    claims = pyjwt.decode(token, key, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER)
    assert claims["client_id"] == cid
    pem = server.http.get("/oauth/public-key.pem").text
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert pyjwt.decode(token, pem, algorithms=["RS256"], audience=ISSUER)["sub"] == cid


def test_narrower_scope_audience_and_client_lifetime(server: Harness) -> None:
    cid, secret = server.create_client(
        scopes=["read", "write"],
        audiences=["https://api.one", "https://api.two"],
        access_token_lifetime=120,
    )
    r = server.http.post(
        "/oauth/token",
        data={
            "grant_type": CC,
            "client_id": cid,
            "client_secret": secret,
            "scope": "write",
            "audience": "https://api.two",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "write"
    assert r.json()["expires_in"] == 120
    claims = claims_of(r.json()["access_token"])
    assert claims["aud"] == "https://api.two"
    assert claims["scope"] == "write"
    # Without an audience the client's first one is used.
    r = server.http.post(
        "/oauth/token",
        json={"grant_type": CC, "client_id": cid, "client_secret": secret, "scope": ["read"]},
    )
    assert claims_of(r.json()["access_token"])["aud"] == "https://api.one"


def test_each_issued_token_is_recorded_by_hash_not_in_clear(server: Harness) -> None:
    cid, secret = server.create_client()
    token = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
    ).json()["access_token"]
    jti = claims_of(token)["jti"]
    record = server.call(server.ctx.storage.get_token, jti)
    assert record is not None
    assert record.client_id == cid
    # The keyed hash of header and payload, known before the signature is made
    # (so the write overlaps signing); the signature is stored nowhere.
    signing_input, _, signature = token.rpartition(".")
    assert record.token_hash == server.ctx.hasher.short_hash(signing_input)
    assert signature not in repr(dataclasses.asdict(record))
    assert record.kid == pyjwt.get_unverified_header(token)["kid"]
    assert record.expires_at == claims_of(token)["exp"]
    client = server.call(server.ctx.storage.get_client, cid)
    assert secret not in json.dumps(client.public_dict())
    assert client.secret_hash != secret


def test_client_secret_auth_method_by_client_header(server: Harness) -> None:
    """Square-style ``Authorization: Client <secret>`` with client_id in the body."""
    cid, secret = server.create_client()
    r = server.http.post(
        "/oauth/token",
        data={"grant_type": CC, "client_id": cid},
        headers={"Authorization": f"Client {secret}"},
    )
    assert r.status_code == 200, r.text


# -- bad input -------------------------------------------------------------------------
def test_unsupported_content_type_is_415(server: Harness) -> None:
    r = server.http.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers={"Content-Type": "text/plain"},
    )
    assert_error(r, 415, "invalid_request")
    r = server.http.post("/oauth/token", content=b"grant_type=client_credentials")
    assert_error(r, 415, "invalid_request")


def test_malformed_json_and_non_object_and_non_string_values(server: Harness) -> None:
    headers = {"Content-Type": "application/json"}
    for body in (b"{not json", b"[1, 2]", b'{"grant_type": 5}', b'"x"', b"\xff\xfe"):
        r = server.http.post("/oauth/token", content=body, headers=headers)
        assert_error(r, 400, "invalid_request")


def test_duplicate_parameters_are_rejected(server: Harness) -> None:
    cid, secret = server.create_client()
    r = server.http.post(
        "/oauth/token",
        content=f"grant_type={CC}&client_id={cid}&client_secret={secret}&scope=read&scope=write",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    body = assert_error(r, 400, "invalid_request")
    assert "scope" in body["error_description"]
    r = server.http.post(
        "/oauth/token",
        content=b'{"grant_type": "client_credentials", "grant_type": "password"}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid_request")


def test_oversized_body_is_413(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, max_body_bytes=1024)
    for harness in run_harness(settings):
        r = harness.http.post("/oauth/token", data={"grant_type": CC, "pad": "x" * 2000})
        body = assert_error(r, 413, "invalid_request")
        assert "1024" in body["error_description"]


def test_missing_and_unknown_grant_type(server: Harness) -> None:
    cid, secret = server.create_client()
    r = server.http.post("/oauth/token", data={"client_id": cid, "client_secret": secret})
    assert_error(r, 400, "invalid_request")
    r = server.http.post(
        "/oauth/token",
        data={"grant_type": "urn:made:up", "client_id": cid, "client_secret": secret},
    )
    assert_error(r, 400, "unsupported_grant_type")


def test_unknown_client_and_wrong_secret(server: Harness) -> None:
    cid, secret = server.create_client()
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": "nobody", "client_secret": "x"}
    )
    assert_error(r, 401, "invalid_client")
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret + "x"}
    )
    assert_error(r, 401, "invalid_client")
    assert "www-authenticate" not in r.headers


def test_basic_failure_answers_with_challenge(server: Harness) -> None:
    cid, _ = server.create_client()
    r = server.http.post("/oauth/token", data={"grant_type": CC}, headers=basic(cid, "wrong"))
    assert_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic ")
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC}, headers={"Authorization": "Basic !!!notbase64"}
    )
    assert_error(r, 401, "invalid_client")
    r = server.http.post("/oauth/token", data={"grant_type": CC})
    assert_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic ")


def test_two_auth_methods_at_once_are_rejected(server: Harness) -> None:
    cid, secret = server.create_client()
    assert secret
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_secret": secret}, headers=basic(cid, secret)
    )
    assert_error(r, 400, "invalid_request")


def test_pinned_auth_method(server: Harness) -> None:
    cid, secret = server.create_client(auth_methods=[AUTH_BASIC])
    assert secret
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
    )
    body = assert_error(r, 401, "invalid_client")
    assert "client_secret_basic" in body["error_description"]
    r = server.http.post("/oauth/token", data={"grant_type": CC}, headers=basic(cid, secret))
    assert r.status_code == 200


def test_grant_not_allowed_for_client(server: Harness) -> None:
    cid, secret = server.create_client(grant_types=[])
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
    )
    assert_error(r, 400, "unauthorized_client")


def test_scope_outside_allowed_set(server: Harness) -> None:
    cid, secret = server.create_client(scopes=["read"])
    r = server.http.post(
        "/oauth/token",
        data={"grant_type": CC, "client_id": cid, "client_secret": secret, "scope": "read admin"},
    )
    body = assert_error(r, 400, "invalid_scope")
    assert "admin" in body["error_description"]
    r = server.http.post(
        "/oauth/token",
        data={"grant_type": CC, "client_id": cid, "client_secret": secret, "scope": 'read "x"'},
    )
    assert_error(r, 400, "invalid_scope")


def test_audience_outside_allowed_set(server: Harness) -> None:
    cid, secret = server.create_client(audiences=["https://api.one"])
    r = server.http.post(
        "/oauth/token",
        data={
            "grant_type": CC,
            "client_id": cid,
            "client_secret": secret,
            "audience": "https://evil",
        },
    )
    assert_error(r, 400, "invalid_target")


def test_wrong_method_and_path(server: Harness) -> None:
    r = server.http.get("/oauth/token")
    assert r.status_code == 405
    assert r.json()["error"] == "invalid_request"
    assert server.http.get("/nope").status_code == 404


# -- limits ----------------------------------------------------------------------------
def test_issuance_rate_limit_answers_429_with_retry_after(server: Harness) -> None:
    cid, secret = server.create_client(rate_limit=3)
    form = {"grant_type": CC, "client_id": cid, "client_secret": secret}
    for _ in range(3):
        assert server.http.post("/oauth/token", data=form).status_code == 200
    r = server.http.post("/oauth/token", data=form)
    body = assert_error(r, 429, "slow_down")
    assert "reuse" in body["error_description"]
    assert 1 <= int(r.headers["retry-after"]) <= 20
    # Another client is not affected.
    other, other_secret = server.create_client(rate_limit=3)
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": other, "client_secret": other_secret}
    )
    assert r.status_code == 200


def test_brute_force_lockout(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, auth_failure_limit=3)
    for harness in run_harness(settings):
        cid, secret = harness.create_client()
        for _ in range(3):
            r = harness.http.post(
                "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": "guess"}
            )
            assert r.status_code == 401
        # Locked now: even the right secret waits, so guessing gains nothing.
        r = harness.http.post(
            "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
        )
        assert_error(r, 429, "slow_down")
        assert int(r.headers["retry-after"]) >= 1


# -- errors stay safe ---------------------------------------------------------------------
def test_unexpected_failure_is_a_bare_server_error(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    cid, secret = server.create_client()

    async def broken(*_: Any) -> None:
        raise RuntimeError("database exploded with secret detail")

    server.ctx.storage.record_token = broken  # type: ignore[method-assign]
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 500
    assert r.json()["error"] == "server_error"
    assert "exploded" not in r.text
    assert "Traceback" not in r.text
    assert secret not in caplog.text


def test_metadata_lists_what_is_supported(server: Harness) -> None:
    meta = server.http.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == ISSUER + "/oauth/token"
    assert meta["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert set(meta["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "password",
        "refresh_token",
        "migration_token",
    }
    assert meta["access_token_signing_alg_values_supported"] == ["RS256"]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_selectable_signing_algorithms(tmp_path: Path, alg: str) -> None:
    settings = Settings(data_dir=tmp_path, issuer=ISSUER, signing_alg=alg, client_cache_ttl=0)
    for harness in run_harness(settings):
        cid, secret = harness.create_client()
        token = harness.http.post(
            "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
        ).json()["access_token"]
        header = pyjwt.get_unverified_header(token)
        assert header["alg"] == alg
        jwk = next(
            k
            for k in harness.http.get("/.well-known/jwks.json").json()["keys"]
            if k["kid"] == header["kid"]
        )
        claims = pyjwt.decode(token, pyjwt.PyJWK(jwk), algorithms=[alg], audience=ISSUER)
        assert claims["sub"] == cid


def test_nul_characters_are_a_400_not_a_database_error(server: Harness) -> None:
    cid, secret = server.create_client()
    r = server.http.post(
        "/oauth/token",
        content=f"grant_type={CC}&client_id=a%00b&client_secret=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, 400, "invalid_request")
    r = server.http.post(
        "/oauth/token",
        json={"grant_type": CC, "client_id": cid, "client_secret": secret, "scope": "read\u0000"},
    )
    assert_error(r, 400, "invalid_request")
    r = server.http.get("/oauth/public-key.pem?kid=%00")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


# -- the token fast path (app.KeyturnApp) answers like the rest of the app --------------------
def test_nul_in_the_token_endpoints_query_is_refused(server: Harness) -> None:
    cid, secret = server.create_client()
    form = {"grant_type": CC, "client_id": cid, "client_secret": secret}
    r = server.http.post("/oauth/token?x=%00", data=form)
    assert_error(r, 400, "invalid_request")
    assert server.http.post("/auth/v2/token?x=1", data=form).status_code == 200


def test_a_client_that_leaves_mid_body_gets_no_answer_and_no_error_log(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    messages = [
        {"type": "http.request", "body": b"grant_type=client_", "more_body": True},
        {"type": "http.disconnect"},
    ]
    form = [(b"content-type", b"application/x-www-form-urlencoded")]
    sent = send_raw(server, "/oauth/token", messages, form)
    assert sent == []
    assert "unhandled" not in caplog.text
