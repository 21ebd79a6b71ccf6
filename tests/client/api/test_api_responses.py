"""The processing halves: answers read field by field into typed results or typed errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keyturn.client.api import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    TokenPage,
    TooManyRequestsError,
    client_ops,
    oauth_ops,
    token_ops,
)
from keyturn.client.api._admin import AdminSession
from keyturn.client.api._wire import Endpoints
from keyturn.core.credentials import ClientCredentials
from keyturn.core.errors import (
    InvalidClientError,
    InvalidResponseError,
    OAuthError,
    RateLimitedError,
)
from keyturn.core.http import HttpResponse
from keyturn.testing import FakeClock

EP = Endpoints("https://auth.example")
CREDS = ClientCredentials(client_id="svc", client_secret="pw", token_url=EP.token_url)
AS_CLIENT = AdminSession(EP, FakeClock(), CREDS, None, None)

TOKEN = {
    "token_id": "j1",
    "kind": "access_token",
    "client_id": "svc",
    "subject": None,
    "scopes": ["read"],
    "audience": ["https://api.example"],
    "grant_type": "client_credentials",
    "issued_at": 100,
    "expires_at": 200,
    "revoked_at": None,
    "family_id": None,
    "active": True,
}
CLIENT = {
    "client_id": "svc",
    "name": "",
    "is_public": False,
    "grant_types": ["client_credentials"],
    "scopes": ["read"],
    "audiences": [],
    "redirect_uris": [],
    "token_endpoint_auth_methods": ["client_secret_basic"],
    "access_token_lifetime": None,
    "rate_limit": 0,
    "can_introspect": False,
    "created_at": 1,
    "updated_at": 2,
}


def answer(status: int, data: Any = None, **headers: str) -> HttpResponse:
    if data is None:
        return HttpResponse(status, headers, b"")
    return HttpResponse(
        status, {"content-type": "application/json", **headers}, json.dumps(data).encode()
    )


def test_a_page_of_tokens() -> None:
    process = token_ops.list_pages(EP)(None).process
    page = process(answer(200, {"items": [TOKEN, {**TOKEN, "token_id": "j2"}], "next_cursor": "c"}))
    assert [t.token_id for t in page.items] == ["j1", "j2"]
    assert page.items[0].audience == ("https://api.example",)
    assert page.next_cursor == "c"
    with pytest.raises(InvalidResponseError, match="same cursor"):
        token_ops.next_cursor(page, "c")
    assert token_ops.next_cursor(page, None) == "c"


def test_fields_a_newer_server_adds_are_kept_not_fatal() -> None:
    token = token_ops.get(EP, "j1").process(answer(200, {**TOKEN, "dpop_jkt": "x"}))
    assert token.extra == {"dpop_jkt": "x"}
    client = client_ops.get(EP, "svc").process(answer(200, {**CLIENT, "allow_plain_pkce": False}))
    assert client.extra == {"allow_plain_pkce": False}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"active": "yes"}, "'active' must be true or false"),
        ({"issued_at": True}, "'issued_at' must be an integer"),
        ({"scopes": "read"}, "'scopes' must be a list of strings"),
        ({"subject": 7}, "'subject' must be a string or null"),
        ({"token_id": None}, "'token_id' must be a string"),
    ],
)
def test_a_wrong_field_is_an_invalid_response(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidResponseError, match=message):
        token_ops.get(EP, "j1").process(answer(200, {**TOKEN, **change}))


def test_missing_fields_and_wrong_shapes() -> None:
    missing = {k: v for k, v in TOKEN.items() if k != "kind"}
    with pytest.raises(InvalidResponseError, match="'kind' is missing"):
        token_ops.get(EP, "j1").process(answer(200, missing))
    with pytest.raises(InvalidResponseError, match="not a JSON list"):
        client_ops.list_all(EP).process(answer(200, {"items": []}))
    with pytest.raises(InvalidResponseError, match="expected JSON"):
        client_ops.list_all(EP).process(HttpResponse(200, {"content-type": "text/html"}, b"<p>"))
    with pytest.raises(InvalidResponseError, match="expected HTTP 201, got 200"):
        token_ops.create(EP, client_id="c").process(answer(200, {}))
    with pytest.raises(InvalidResponseError, match="'purged'"):
        token_ops.purge(EP).process(answer(200, {"purged": "3"}))
    assert token_ops.purge(EP).process(answer(200, {"purged": 3})) == 3
    assert token_ops.delete(EP, "j1").process(answer(204)) is None


def test_issued_tokens_and_secrets_stay_out_of_repr() -> None:
    issued = token_ops.renew(EP, "j1").process(
        answer(
            201,
            {
                "token": TOKEN,
                "access_token": "eyJ.secret.value",
                "token_type": "Bearer",
                "expires_in": 60,
                "scope": "read",
            },
        )
    )
    assert issued.authorization == "Bearer eyJ.secret.value"
    assert "secret" not in repr(issued)
    created = client_ops.rotate_secret(EP, "svc").process(
        answer(200, {"client": CLIENT, "client_secret": "kts_shown_once"})
    )
    assert created.client_secret == "kts_shown_once"
    assert "kts_" not in repr(created)
    with pytest.raises(InvalidResponseError, match="'access_token' is empty"):
        token_ops.renew(EP, "j1").process(
            answer(
                201,
                {
                    "token": TOKEN,
                    "access_token": "",
                    "token_type": "Bearer",
                    "expires_in": 60,
                    "scope": "",
                },
            )
        )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, TooManyRequestsError),
        (500, InternalServerError),
        (503, InternalServerError),
        (413, ApiError),
    ],
)
def test_admin_errors_are_typed_by_status(status: int, kind: type[ApiError]) -> None:
    body = {"error": "invalid_request", "error_description": "no such thing"}
    with pytest.raises(kind) as info:
        token_ops.get(EP, "j1").process(answer(status, body, **{"www-authenticate": "Bearer"}))
    err = info.value
    assert type(err) is kind
    assert (err.status_code, err.error, err.description) == (
        status,
        "invalid_request",
        "no such thing",
    )
    assert err.error_description == err.description
    assert str(err) == f"HTTP {status} invalid_request: no such thing"
    assert err.headers == {"www-authenticate": "Bearer"}
    assert not isinstance(err, OAuthError), "an API error is not a provider error"


def test_rate_limit_says_how_long_to_wait() -> None:
    with pytest.raises(TooManyRequestsError) as info:
        client_ops.list_all(EP).process(
            answer(429, {"error": "slow_down"}, **{"retry-after": "12"})
        )
    assert info.value.retry_after == 12.0
    with pytest.raises(TooManyRequestsError) as bare:
        client_ops.list_all(EP).process(answer(429))
    assert bare.value.retry_after is None


def test_a_proxy_error_page_is_still_typed_by_status() -> None:
    html = HttpResponse(502, {"content-type": "text/html"}, b"<h1>Bad gateway</h1>")
    with pytest.raises(InternalServerError) as info:
        token_ops.purge(EP).process(html)
    assert (info.value.status_code, info.value.error, info.value.description) == (502, None, None)


def test_the_standard_endpoints_raise_provider_errors() -> None:
    get = oauth_ops.get_token(
        AdminSession(EP, FakeClock(), None, None, None), client_id="svc", client_secret="pw"
    )
    with pytest.raises(InvalidClientError) as denied:
        get.process(answer(401, {"error": "invalid_client", "error_description": "no"}))
    assert denied.value.status_code == 401
    with pytest.raises(RateLimitedError) as limited:
        get.process(answer(429, {"error": "slow_down"}, **{"retry-after": "30"}))
    assert limited.value.retry_after == 30.0
    token = get.process(
        answer(200, {"access_token": "a.b.c", "token_type": "Bearer", "expires_in": 18000})
    )
    assert (token.expires_in, token.expires_at) == (18000, FakeClock().time() + 18000)

    assert oauth_ops.revoke(AS_CLIENT, "t").process(answer(200)) is None
    introspect = oauth_ops.introspect(AS_CLIENT, "t").process
    assert introspect(answer(200, {"active": False})).active is False
    info = introspect(
        answer(200, {"active": True, "scope": "a b", "aud": "x", "exp": 5, "cnf": {"jkt": "k"}})
    )
    assert (info.scopes, info.aud, info.exp, info.extra) == (
        ("a", "b"),
        ("x",),
        5,
        {"cnf": {"jkt": "k"}},
    )
    assert introspect(answer(200, {"active": True, "aud": ["x", "y"]})).aud == ("x", "y")
    with pytest.raises(InvalidResponseError, match="'active'"):
        introspect(answer(200, {"scope": "a"}))
    with pytest.raises(InvalidResponseError, match="not JSON"):
        introspect(HttpResponse(200, {"content-type": "application/json"}, b"{"))


def test_a_page_model_checks_its_items() -> None:
    with pytest.raises(InvalidResponseError, match="'items' must be a list"):
        TokenPage.from_json({"items": {}, "next_cursor": None})
    with pytest.raises(InvalidResponseError, match="token is not a JSON object"):
        TokenPage.from_json({"items": [1], "next_cursor": None})


def test_reissue_is_a_token_response_with_admin_errors() -> None:
    clock = FakeClock()
    call = token_ops.reissue_id_token(EP, clock, "rt-1")
    assert json.loads(call.request.body) == {"refresh_token": "rt-1"}
    assert call.request.url == "https://auth.example/admin/v1/tokens/reissue-id-token"
    pair = {"access_token": "a.b.c", "token_type": "Bearer", "expires_in": 60, "scope": "openid"}
    token = call.process(answer(200, {**pair, "refresh_token": "rt-2", "id_token": "i.d.t"}))
    assert (token.refresh_token, token.id_token, token.expires_at) == (
        "rt-2",
        "i.d.t",
        clock.time() + 60,
    )
    with pytest.raises(InvalidResponseError, match="no id_token"):
        call.process(answer(200, pair))
    with pytest.raises(BadRequestError) as refused:
        call.process(answer(400, {"error": "invalid_grant", "error_description": "spent"}))
    assert refused.value.error == "invalid_grant"
    with pytest.raises(ValueError, match="empty"):
        token_ops.reissue_id_token(EP, clock, "")
