"""The ``candidhealth`` SDK, unchanged, against a real ``keyturn serve``.

The SDK is pointed at Keyturn with its public ``environment`` argument:
``candid_api`` (where it fetches tokens) is Keyturn, ``pre_encounter`` is a
tiny local API stand-in on another loopback port that records the
``Authorization`` header of every call it gets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import jwt as pyjwt
import pytest
from candid import CandidApiClient
from candid.core.api_error import ApiError
from candid.environment import CandidApiClientEnvironment
from candid.resources.auth.resources.default.errors import (
    InvalidContentTypeError,
    TooManyRequestsError,
)

from tests.vendors.conftest import SDK_WARNINGS, LiveServer, Surfaces

pytestmark = [pytest.mark.e2e, *SDK_WARNINGS]


class StandIn:
    """An API on another port: answers 204 and remembers who called with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                stand_in.calls.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(204)
                self.end_headers()

            do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    api = StandIn()
    yield api
    api.close()


def environment(server: LiveServer, api: StandIn | None = None) -> CandidApiClientEnvironment:
    return CandidApiClientEnvironment(
        candid_api=server.url, pre_encounter=api.url if api else server.url
    )


def test_the_sdk_fetches_one_token_and_sends_it_on_every_call(
    live_server: LiveServer, stand_in: StandIn, surfaces: Surfaces
) -> None:
    creds = live_server.create_client("--scope", "read")
    cid = creds["client_id"]
    client = CandidApiClient(
        environment=environment(live_server, stand_in),
        client_id=cid,
        client_secret=creds["client_secret"],
    )
    client.pre_encounter.tags.v_1.deactivate(id="tag-1", version="1")
    client.pre_encounter.tags.v_1.deactivate(id="tag-2", version="1")

    bearers = {auth for _, _, auth in stand_in.calls}
    assert len(stand_in.calls) == 2
    assert len(bearers) == 1
    (header,) = bearers
    assert header is not None
    assert header.startswith("Bearer ")
    token = header.removeprefix("Bearer ")
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert (claims["client_id"], claims["sub"], claims["scope"]) == (cid, cid, "read")
    assert claims["exp"] - claims["iat"] == 5 * 3600

    # One token request: one record, the one the API calls carried.
    listed = surfaces.admin_list(cid)
    assert [t["token_id"] for t in listed] == [claims["jti"]]
    assert listed[0]["grant_type"] == "client_credentials"


def test_get_token_and_the_token_everywhere(live_server: LiveServer, surfaces: Surfaces) -> None:
    creds = live_server.create_client("--scope", "read", "--scope", "write")
    cid, secret = creds["client_id"], creds["client_secret"]
    client = CandidApiClient(
        environment=environment(live_server), client_id=cid, client_secret=secret
    )

    # Built with credentials, the SDK sends its own Bearer token on this call too:
    # the credentials in the body count, the header is ignored.
    token = client.auth.default.get_token(client_id=cid, client_secret=secret)
    assert token.token_type == "Bearer"
    assert token.expires_in == 5 * 3600
    jti = pyjwt.decode(token.access_token, options={"verify_signature": False})["jti"]

    # Visible through RFC 7662, the admin API and the CLI.
    info = surfaces.introspect(token.access_token)
    assert (info["active"], info["client_id"], info["jti"]) == (True, cid, jti)
    assert jti in {t["token_id"] for t in surfaces.admin_list(cid, active=True)}
    assert jti in {t["token_id"] for t in surfaces.cli_list(cid)}

    # Revoked through the CLI: dead for introspection and the admin API.
    assert surfaces.cli("tokens", "revoke", jti)["token_ids"] == [jti]
    assert surfaces.introspect(token.access_token) == {"active": False}
    assert jti not in {t["token_id"] for t in surfaces.admin_list(cid, active=True)}

    # RFC 7009 revocation of another Candid token, by its own client.
    other = client.auth.default.get_token(client_id=cid, client_secret=secret)
    surfaces.rfc_revoke(other.access_token, cid, secret)
    assert surfaces.introspect(other.access_token) == {"active": False}

    # A token client built with a token callable (the SDK's other mode) works the same.
    by_token = CandidApiClient(
        environment=environment(live_server), token=lambda: "anything-the-api-would-take"
    )
    third = by_token.auth.default.get_token(client_id=cid, client_secret=secret)
    assert surfaces.introspect(third.access_token)["active"] is True


def test_the_documented_bodies_json_and_form(live_server: LiveServer) -> None:
    creds = live_server.create_client()
    body = {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    for path in ("/auth/v2/token", "/api/auth/v2/token"):
        as_json = httpx2.post(live_server.url + path, json=body)
        as_form = httpx2.post(live_server.url + path, data=body)
        for r in (as_json, as_form):
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"] == "no-store"
            assert set(r.json()) >= {"access_token", "expires_in", "token_type"}
    # Not on the RFC endpoint: there grant_type stays required.
    r = httpx2.post(live_server.token_url, json=body)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_a_wrong_secret(live_server: LiveServer) -> None:
    creds = live_server.create_client()
    client = CandidApiClient(
        environment=environment(live_server),
        client_id=creds["client_id"],
        client_secret="not-the-secret",
    )
    with pytest.raises(ApiError) as caught:
        client.pre_encounter.tags.v_1.deactivate(id="t", version="1")
    err = caught.value
    assert err.status_code == 401
    assert isinstance(err.body, dict)
    assert err.body["error"] == "invalid_client"
    assert err.body["errorName"] == "UnauthorizedError"
    assert "wrong secret" in err.body["content"]["message"]


def test_a_rate_limited_client_gets_the_typed_error(live_server: LiveServer) -> None:
    creds = live_server.create_client("--rate-limit", "1")
    cid, secret = creds["client_id"], creds["client_secret"]
    client = CandidApiClient(environment=environment(live_server), token=lambda: "unused")
    client.auth.default.get_token(client_id=cid, client_secret=secret)
    with pytest.raises(TooManyRequestsError) as caught:
        client.auth.default.get_token(client_id=cid, client_secret=secret)
    err = caught.value
    assert err.status_code == 429
    assert err.headers is not None
    assert int(err.headers["retry-after"]) > 0
    assert "reuse the token" in err.body.message


def test_bad_inputs_get_candid_errors(live_server: LiveServer) -> None:
    creds = live_server.create_client()
    url = live_server.url + "/api/auth/v2/token"

    r = httpx2.post(url, content=b"client_id=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["errorName"] == "InvalidContentTypeError"
    assert r.json()["error"] == "invalid_request"

    # The SDK raises its typed error for that one too.
    client = CandidApiClient(environment=environment(live_server), token=lambda: "unused")
    options = {"additional_headers": {"Content-Type": "text/plain"}}
    with pytest.raises(InvalidContentTypeError):
        client.auth.default.get_token(client_id="x", client_secret="y", request_options=options)

    cases = [
        ({"client_secret": creds["client_secret"]}, 401, "invalid_client"),
        ({"client_id": creds["client_id"], "client_secret": 5}, 400, "invalid_request"),
        (
            {"client_id": creds["client_id"], "client_secret": "x", "grant_type": "nope"},
            400,
            "unsupported_grant_type",
        ),
        (
            {
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
                "scope": "admin",
            },
            400,
            "invalid_scope",
        ),
    ]
    for body, status, error in cases:
        r = httpx2.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        got = r.json()
        assert got["error"] == error
        assert got["content"]["message"] == got["error_description"]
        assert got["errorName"] in {"HttpRequestValidationError", "UnauthorizedError"}

    # A Bearer header alone is no client authentication.
    r = httpx2.post(
        url, json={"client_id": creds["client_id"]}, headers={"Authorization": "Bearer abc"}
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    r = httpx2.post(url, content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["errorName"] == "HttpRequestValidationError"
